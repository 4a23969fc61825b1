"""The pure decision of a slip top-up's credit and of a promotion redemption's writes
(``shared.bigeye.grants.decide_topup``, ``promotions.plan_redemption``; no emulator)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from shared.bigeye.grants import (
    SlipAlreadyUsed,
    TopupReads,
    decide_topup,
    total_topup_baht,
)
from shared.bigeye.promotions import (
    Conditions,
    PromoStatus,
    Promotion,
    PromoType,
    Quote,
    Redemptions,
    Reward,
    RewardType,
    plan_redemption,
)
from shared.bigeye.slip2go import Outcome, SlipData, Verification
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
SLIP = SlipData("REF 1", Decimal(100), "123", "Somchai", None)
CHECK = Verification("200000", "ok", Outcome.VALID, 200, {"code": "200000"}, SLIP)
USER = {"status": "active", "created_at": NOW, "total_topup_baht": 50}


def _promo(
    promo_id: str = "p1", *, bonus: int = 40, limit: int | None = None, code: str | None = None
) -> Promotion:
    return Promotion(
        promo_id,
        f"Promo {promo_id}",
        PromoType.FLAT_BONUS,
        PromoStatus.ACTIVE,
        Reward(RewardType.BONUS_CREDITS, bonus_credits=bonus),
        Conditions(max_redemptions=limit, require_code=code is not None),
        code=code,
    )


def _decide(reads: TopupReads, *, code: str | None = None, baht: Decimal = Decimal(100)) -> Any:
    return decide_topup(
        reads,
        user_id="u1",
        slip_id="s1",
        baht=baht,
        code=code,
        rate=Decimal(4),
        slip=SLIP,
        check=CHECK,
        method="AUTO_API",
        redemption_id="tx1",
        home=5,
        now=NOW,
    )


def _reads(**overrides: Any) -> TopupReads:
    fields: dict[str, Any] = {
        "user": USER,
        "legacy_posted": False,
        "promos": (),
        "counts": {},
        "shards": {},
    }
    fields.update(overrides)
    return TopupReads(**fields)


def test_refusals_come_in_the_order_user_then_legacy_key_then_promo_code() -> None:
    with pytest.raises(NotFound, match="unknown user"):
        _decide(_reads(user=None, legacy_posted=True))
    with pytest.raises(Forbidden):
        _decide(_reads(user={**USER, "status": "suspended"}, legacy_posted=True))
    with pytest.raises(SlipAlreadyUsed, match="already been used"):
        _decide(_reads(legacy_posted=True), code="NOPE")
    with pytest.raises((InvalidInput, Conflict)):
        _decide(_reads(), code="NOPE")


def test_a_credit_without_promotion_plans_the_slip_and_the_new_total() -> None:
    plan = _decide(_reads())
    assert plan.quote == Quote(400, 0, None)
    assert plan.redemption is None
    assert plan.total_topup_baht == 150
    assert plan.slip_fields == {
        "verification_result.raw_response": {"code": "200000"},
        "amount_detected": 100,
        "bank_ref": "REF 1",
        "metadata.sender_name": "Somchai",
        "metadata.receiver_account": "123",
        "status": "VERIFIED",
        "amount_credited": 400,
        "reject_reason": None,
        "verified_at": NOW,
        "verification_method": "AUTO_API",
    }


def test_total_topup_baht_adds_exactly_and_ignores_a_non_number() -> None:
    assert total_topup_baht({"total_topup_baht": 0.1}, Decimal("0.2")) == 0.3
    assert total_topup_baht({"total_topup_baht": True}, Decimal("10.50")) == 10.5
    assert total_topup_baht({"total_topup_baht": "9"}, Decimal(1)) == 1
    assert total_topup_baht({}, Decimal(7)) == 7


def test_an_unlimited_promotion_counts_in_the_home_shard() -> None:
    promo = _promo()
    home = {"promo_id": "p1", "redemptions": 3, "stats": {"total_redemptions": 3}, "x": 1}
    reads = _reads(
        promos=(promo,),
        counts={"p1": Redemptions(by_user=0)},
        shards={"p1": {5: home}},
    )
    plan = _decide(reads)
    assert plan.quote.promo_id == "p1" and plan.quote.bonus_credits == 40
    r = plan.redemption
    assert r is not None and r.redemption_id == "tx1" and r.user_id == "u1"
    assert r.redemption["topup_baht"] == 100 and r.redemption["slip_id"] == "s1"
    assert r.redemption["total_credits"] == 440
    assert r.user_counter["redemptions"] == 1
    assert r.shards == (
        (
            5,
            {
                "promo_id": "p1",
                "redemptions": 4,
                "x": 1,
                "stats": {
                    "total_redemptions": 4,
                    "total_bonus_credits": 40,
                    "total_satang_collected": 10000,
                    "unique_users": 1,
                },
                "updated_at": NOW,
            },
        ),
    )


def test_a_limited_promotion_counts_in_its_slot_and_writes_a_new_split_everywhere() -> None:
    promo = _promo(limit=4)
    counts = Redemptions(total=1, by_user=2, sharded=True, slot=1, quotas=(1, 2, 1))
    shards: dict[int, dict[str, Any] | None] = {0: {"redemptions": 1}, 1: None, 2: None}
    plan = plan_redemption(
        promo=promo,
        quote=Quote(0, 40, promo),
        user_id="u1",
        redemption_id="r1",
        counts=counts,
        home=0,
        shards=shards,
        topup_baht=Decimal(0),
        slip_id=None,
        now=NOW,
    )
    assert [k for k, _ in plan.shards] == [0, 2, 1]  # the slot last
    written = dict(plan.shards)
    assert written[0] == {
        "redemptions": 1,
        "promo_id": "p1",
        "quota": 1,
        "quota_for": 4,
        "updated_at": NOW,
    }
    assert written[2]["redemptions"] == 0 and written[2]["quota"] == 1
    slot = written[1]
    assert slot["redemptions"] == 1 and slot["quota"] == 2 and slot["quota_for"] == 4
    # not the user's first redemption, no baht: neither unique_users nor satang
    assert slot["stats"] == {"total_redemptions": 1, "total_bonus_credits": 40}
    assert plan.user_counter["redemptions"] == 3


def test_a_sold_out_limited_promotion_cannot_be_recorded() -> None:
    promo = _promo(limit=1)
    with pytest.raises(ValueError, match="no redemption left"):
        plan_redemption(
            promo=promo,
            quote=Quote(0, 40, promo),
            user_id="u1",
            redemption_id="r1",
            counts=Redemptions(total=1, sharded=True, slot=None),
            home=0,
            shards={},
            topup_baht=Decimal(0),
            slip_id=None,
            now=NOW,
        )
