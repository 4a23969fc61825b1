"""The pure rules of Kaiwa's monthly rollover: which tier, and what is banked."""

from __future__ import annotations

from shared.analytics.rules import rollover_banked
from shared.usage.config import active_tier

BANKING = {"monthlySeconds": 600, "sessionBankingEnabled": True}


def test_active_tier_is_the_first_active_entry() -> None:
    subs = [
        {"tierId": "pro", "isActive": False, "status": "canceled"},
        {"tierId": "", "isActive": True},
        {"tierId": "basic", "status": "trialing"},
        {"tierId": "premium", "isActive": True},
    ]
    assert active_tier(subs) == "basic"
    assert active_tier([{"tierId": "pro", "isActive": "true"}]) is None
    assert active_tier([]) is None


def test_rollover_banks_what_was_left_capped_at_one_month() -> None:
    assert rollover_banked(BANKING, {"secondsUsed": 200}) == 400
    assert rollover_banked(BANKING, {"secondsUsed": 0, "bankedSeconds": 300}) == 600
    carried = {"secondsUsed": 650, "bankedSeconds": 100, "bankedSecondsUsed": 50}
    assert rollover_banked(BANKING, carried) == 0
    assert rollover_banked(BANKING, {"secondsUsed": 500, "bankedSeconds": 100}) == 200


def test_rollover_banks_nothing_without_banking_or_a_tier() -> None:
    assert rollover_banked({"monthlySeconds": 600}, {"secondsUsed": 0}) == 0
    assert rollover_banked({}, {"secondsUsed": 0}) == 0
    assert rollover_banked({"monthlySeconds": "600", "sessionBankingEnabled": True}, {}) == 0
