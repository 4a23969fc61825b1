"""The pure decision of usage metering (``decide_usage``): no emulator, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from google.cloud import firestore

from shared.errors import Conflict, InvalidInput, NotFound
from shared.usage.model import UsageEvent
from shared.usage.pricing import EngineCost
from shared.usage.service import (
    Metered,
    UsageReads,
    decide_usage,
    moment_of,
    monthly_tier_id,
    needs_receipt,
    needs_tier_lookup,
)

AT = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
NOW = AT + timedelta(minutes=5)
MOMENT = moment_of(AT, NOW, "UTC")
ENGINE = {
    "cost_per_unit": 0.002,
    "unit_type": "tokens",
    "ai_type": "chat",
    "is_active": True,
    "updated_at": AT - timedelta(days=1),
}
PLAN = {"engine_prices_usd": {"gpt": 0.005}, "default_markup": 3, "user_type": "subscribed"}


def _event(**changes: Any) -> UsageEvent:
    body = {"request_id": "r1", "user_id": "u1", "engine_id": "gpt", "usage_units": 1000}
    return UsageEvent.model_validate({**body, **changes})


def _reads(**changes: Any) -> UsageReads:
    base: dict[str, Any] = {
        "user": {},
        "plan_id": "pro",
        "plan": PLAN,
        "engine": ENGINE,
        "token_limits": {"trial": None, "subscribed": {"tokenLimit": 50_000}},
    }
    return UsageReads(**{**base, **changes})


def _decide(event: UsageEvent, reads: UsageReads) -> Any:
    return decide_usage(event, reads, log_id="L", digest="d1", moment=MOMENT)


def test_prices_with_the_plan_override_and_rounds_once() -> None:
    plan = _decide(_event(), _reads())
    log = plan.log
    assert (log["real_cost_usd"], log["revenue_estimated_usd"], log["profit_usd"]) == (
        2.0,
        5.0,
        3.0,
    )
    assert log["profit_margin_percent"] == 60.0
    assert log["pricing_source"] == "plan_override"
    assert log["subscription_plan"] == "pro"
    assert log["created_at"] == AT and log["processed_at"] == NOW
    assert log["expires_at"] == AT + timedelta(days=90)
    assert plan.receipt is None  # the log outlives every redelivery: it is the record
    assert plan.debit is None and plan.daily is None and plan.monthly is None


def test_default_markup_when_the_plan_has_no_override() -> None:
    reads = _reads(plan={"default_markup": "1.5", "user_type": "trial"})
    log = _decide(_event(), reads).log
    assert log["revenue_estimated_usd"] == 3.0 and log["pricing_source"] == "engine_default"


def test_short_balance_is_a_partial_deduction_with_the_shortfall_noted() -> None:
    plan = _decide(_event(credits_used=40), _reads(balance=25))
    assert plan.debit is not None and plan.debit.amount == 40
    assert (
        plan.debit.description
        == "Usage of gpt (r1); 15 credits not covered by the balance (shortfall)"
    )
    assert (plan.log["credits_deducted"], plan.log["credits_shortfall"]) == (25, 15)
    covered = _decide(_event(credits_used=40), _reads(balance=40))
    assert covered.debit is not None and covered.debit.description == "Usage of gpt (r1)"
    assert covered.log["credits_shortfall"] == 0


def test_a_receipt_only_when_the_log_expires_within_60_days_of_receipt() -> None:
    """A log lives 90 days from the event's time; the once-only record must last 60 days
    from receipt. An event received up to 30 days late is covered by its log alone."""
    assert not needs_receipt(AT, AT + timedelta(days=30))
    assert needs_receipt(AT, AT + timedelta(days=30, microseconds=1))
    late = moment_of(AT, AT + timedelta(days=31), "UTC")
    plan = decide_usage(
        _event(credits_used=40), _reads(balance=25), log_id="L", digest="d1", moment=late
    )
    assert plan.receipt is not None
    assert plan.receipt["expires_at"] == AT + timedelta(days=31 + 90)
    assert (plan.receipt["credits_deducted"], plan.receipt["credits_shortfall"]) == (25, 15)
    assert plan.receipt["message_sha256"] == "d1" and plan.receipt["request_id"] == "r1"


def test_daily_tokens_use_the_plans_user_type_limit_and_the_events_day() -> None:
    daily = _decide(_event(tokens=700), _reads()).daily
    assert daily is not None
    assert daily["tokenLimit"] == 50_000 and daily["userType"] == "subscribed"
    assert isinstance(daily["tokensUsed"], firestore.Increment)
    assert daily["date"] == "2026-03-31"
    assert daily["resetAt"] == datetime(2026, 4, 1, tzinfo=UTC)
    trial = _decide(_event(tokens=1), _reads(plan={"default_markup": 1})).daily
    assert trial is not None and (trial["userType"], trial["tokenLimit"]) == ("trial", 10_000)


def test_monthly_seconds_past_the_allowance_come_out_of_the_bank() -> None:
    tier = {"monthlySeconds": 600, "sessionBankingEnabled": True}
    usage = {
        "secondsUsed": 500,
        "bankedSeconds": 300,
        "bankedSecondsUsed": 0,
        "conversationsUsed": 2,
    }
    event = _event(conversation_seconds=250, conversation_id="c1", conversation_mode="realtime")
    plan = _decide(event, _reads(monthly=usage, tier=tier))
    assert plan.monthly_exists and plan.monthly is not None
    assert plan.monthly["secondsUsed"] == 600 and plan.monthly["bankedSecondsUsed"] == 150
    assert plan.monthly["conversationsUsed"] == 3 and plan.monthly["realtimeSessionsUsed"] == 1
    assert "bankedSeconds" not in plan.monthly
    assert plan.marker is not None and plan.marker["period"] == "2026-03"
    assert plan.marker["expiresAt"] == datetime(2026, 5, 2, tzinfo=UTC)


def test_a_conversation_already_seen_this_month_counts_no_new_session() -> None:
    event = _event(conversation_seconds=10, conversation_id="c1", conversation_mode="realtime")
    plan = _decide(event, _reads(conversation_seen=True))
    assert plan.marker is None and plan.monthly is not None
    assert plan.monthly["conversationsUsed"] == 0 and plan.monthly["realtimeSessionsUsed"] == 0
    assert not plan.monthly_exists and plan.monthly["bankedSeconds"] == 0


def test_a_replay_writes_nothing_and_other_content_is_a_conflict() -> None:
    earlier = {"message_sha256": "d1", "credits_deducted": 7, "credits_shortfall": 3}
    plan = _decide(_event(), UsageReads(earlier=earlier))
    assert plan.replay == Metered("L", True, 7, 3)
    assert plan.debit is None and plan.log == {}
    with pytest.raises(Conflict):
        _decide(_event(), UsageReads(earlier={**earlier, "message_sha256": "other"}))


def test_refusals_in_order() -> None:
    with pytest.raises(NotFound):
        _decide(_event(), UsageReads(plan=PLAN, engine=ENGINE))
    with pytest.raises(InvalidInput, match="no plan_pricing"):
        _decide(_event(), _reads(plan=None, engine=None))
    with pytest.raises(InvalidInput, match="unknown engine"):
        _decide(_event(), _reads(engine=None))
    with pytest.raises(InvalidInput, match="not active"):
        _decide(_event(), _reads(engine={**ENGINE, "is_active": False}))


def test_an_event_older_than_the_live_cost_is_priced_at_its_version() -> None:
    live = {**ENGINE, "cost_per_unit": 0.01, "updated_at": AT + timedelta(hours=1)}
    old = EngineCost("gpt", Decimal("0.001"), "tokens", "chat", True, AT - timedelta(days=3))
    log = _decide(_event(), _reads(engine=live, engine_history=(old,))).log
    assert log["real_cost_usd"] == 1.0 and log["cost_per_unit_usd"] == 0.001


def test_whose_tier_is_looked_up() -> None:
    assert needs_tier_lookup(_event(), {"tier": "pro"}, kaiwa=True)
    assert not needs_tier_lookup(_event(), {"tier": "pro"}, kaiwa=False)
    assert needs_tier_lookup(_event(), {}, kaiwa=False)
    assert not needs_tier_lookup(_event(subscription_plan="pro"), {}, kaiwa=True)
    assert monthly_tier_id(None, kaiwa=True) == "free"
    assert monthly_tier_id(None, kaiwa=False) is None
    assert monthly_tier_id("gold", kaiwa=True) == "gold"
