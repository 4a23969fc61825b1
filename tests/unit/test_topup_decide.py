"""The pure decision of a slip top-up's credit and of a promotion redemption's writes
(``shared.bigeye.grants.decide_topup``, ``promotions.plan_redemption``; no emulator)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from shared.bigeye.grants import (
    DeviceRefused,
    Grant,
    Nothing,
    Replay,
    RewardReads,
    SlipAlreadyUsed,
    TopupReads,
    checks_device,
    decide_reward,
    decide_topup,
    total_topup_baht,
)
from shared.bigeye.promotions import (
    Conditions,
    Occasion,
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


# -- rewards -------------------------------------------------------------------------------
def _welcome_promo() -> Promotion:
    return Promotion(
        "w1",
        "Welcome",
        PromoType.WELCOME_BONUS,
        PromoStatus.ACTIVE,
        Reward(RewardType.BONUS_CREDITS, bonus_credits=100),
    )


def _reward(reads: RewardReads, occasion: Occasion = Occasion.SIGNUP) -> Any:
    return decide_reward(
        reads,
        user_id="u2",
        occasion=occasion,
        credits_used=0,
        redemption_id="tx2",
        home=3,
        now=NOW,
    )


def _reward_reads(**overrides: Any) -> RewardReads:
    promo = _welcome_promo()
    fields: dict[str, Any] = {
        "posting": None,
        "user": {"status": "active", "hardware_id": "HW-1"},
        "hardware_id": "HW-1",
        "promos": (promo,),
        "counts": {"w1": Redemptions()},
        "shards": {"w1": {3: None}},
    }
    fields.update(overrides)
    return RewardReads(**fields)


def test_a_reward_posted_before_is_a_replay_whatever_else_was_read() -> None:
    assert _reward(_reward_reads(posting={"amount": 100}, user=None)) == Replay(100)
    assert _reward(_reward_reads(posting={})) == Replay(0)


def test_a_missing_or_refused_user_gets_nothing_and_nothing_is_marked() -> None:
    assert _reward(_reward_reads(user=None)) == Nothing()
    banned = {"status": "Banned", "hardware_id": "HW-1"}
    assert _reward(_reward_reads(user=banned, device_marker={"user_id": "u1"})) == Nothing()


def test_a_device_another_user_had_the_bonus_on_is_refused_and_audited_once() -> None:
    first = _reward(_reward_reads(device_marker={"user_id": "u1"}))
    assert first == DeviceRefused({"hardware_id": "HW-1", "first_user_id": "u1"})
    again = _reward(_reward_reads(device_marker={"user_id": "u1"}, refused_recorded=True))
    assert again == DeviceRefused(None)
    # the same user's marker (a redelivery after a lost answer) does not refuse
    assert isinstance(_reward(_reward_reads(device_marker={"user_id": "u2"})), Grant)


def test_a_welcome_bonus_grants_the_promotion_and_marks_the_device() -> None:
    grant = _reward(_reward_reads())
    assert isinstance(grant, Grant)
    assert grant.quote.bonus_credits == 100 and grant.promo.promo_id == "w1"
    assert grant.device_marker == {"user_id": "u2", "promo_id": "w1", "created_at": NOW}
    assert grant.redemption.redemption["topup_baht"] == 0
    assert grant.redemption.redemption["slip_id"] is None
    assert [k for k, _ in grant.redemption.shards] == [3]
    no_device = _reward(_reward_reads(hardware_id=None))
    assert isinstance(no_device, Grant) and no_device.device_marker is None


def test_no_promotion_or_a_zero_bonus_is_nothing() -> None:
    assert _reward(_reward_reads(promos=(), counts={})) == Nothing()
    assert _reward(_reward_reads(), Occasion.USAGE) == Nothing()  # no usage promotion


def test_only_a_welcome_bonus_with_the_setting_on_checks_a_real_hardware_id() -> None:
    user = {"hardware_id": " hw\u200b-1 "}
    assert checks_device(user, Occasion.SIGNUP, once_per_device=True) == " hw\u200b-1 "
    assert checks_device(user, Occasion.SIGNUP, once_per_device=False) is None
    assert checks_device(user, Occasion.USAGE, once_per_device=True) is None
    assert checks_device({"hardware_id": " \u200b"}, Occasion.SIGNUP, once_per_device=True) is None
    assert checks_device({"hardware_id": 7}, Occasion.SIGNUP, once_per_device=True) is None
