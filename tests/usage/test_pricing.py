"""Pure rules of usage metering: money, versions, calendar, validation (no emulator)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from shared.entry import parse_model
from shared.errors import InvalidInput
from shared.usage.limits import monthly_report
from shared.usage.model import LimitsCheck, UsageEvent, decode_usage_event
from shared.usage.pricing import (
    ENGINE_DEFAULT,
    PLAN_OVERRIDE,
    EngineCost,
    PlanPricing,
    margin_percent,
    month_period,
    pick_version,
    price_usage,
    token_day,
    usage_log_id,
)
from shared.usage.scenarios import Contribution, apply_delta

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def engine(cost: str, *, active: bool = True, at: datetime | None = T0, eid: str = "e1"):
    return EngineCost(eid, Decimal(cost), "image", "image", active, at)


PRO = PlanPricing("pro", {"e1": Decimal("0.10")}, Decimal("2.5"), "subscribed")
FREE = PlanPricing("free", {}, Decimal(0), "trial")


def test_plan_override_hand_computed() -> None:
    p = price_usage(Decimal(3), engine("0.04"), PRO)
    assert p.real_cost_usd == Decimal("0.120000")
    assert p.revenue_estimated_usd == Decimal("0.300000")
    assert p.profit_usd == Decimal("0.180000")
    assert p.profit_margin_percent == Decimal("60.00")
    assert p.pricing_source == PLAN_OVERRIDE


def test_engine_default_hand_computed() -> None:
    p = price_usage(Decimal("2.5"), engine("0.12", eid="video"), PRO)
    assert p.real_cost_usd == Decimal("0.300000")
    assert p.revenue_estimated_usd == Decimal("0.750000")  # 2.5 * 0.12 * 2.5
    assert p.profit_usd == Decimal("0.450000")
    assert p.profit_margin_percent == Decimal("60.00")
    assert p.pricing_source == ENGINE_DEFAULT


def test_no_revenue_is_a_full_loss_margin() -> None:
    p = price_usage(Decimal("2.5"), engine("0.03"), FREE)
    assert (p.real_cost_usd, p.revenue_estimated_usd) == (Decimal("0.075000"), Decimal(0))
    assert p.profit_usd == Decimal("-0.075000")
    assert p.profit_margin_percent == Decimal("-100.00")
    assert margin_percent(Decimal(0), Decimal(0)) == Decimal("0.00")


def test_rounding_half_up_to_micro_dollars_and_cents_of_percent() -> None:
    p = price_usage(Decimal("1.5"), engine("0.0000033"), FREE)
    assert p.real_cost_usd == Decimal("0.000005")  # 0.00000495 -> 0.000005
    plan = PlanPricing("x", {"e1": Decimal("0.3")}, Decimal(0), "trial")
    p = price_usage(Decimal(1), engine("0.2"), plan)
    assert p.profit_margin_percent == Decimal("33.33")
    # Never float arithmetic: 0.1 + 0.2 style sums stay exact.
    p = price_usage(Decimal("3"), engine("0.1"), FREE)
    assert p.real_cost_usd == Decimal("0.3")


def test_inactive_engine_is_refused() -> None:
    with pytest.raises(InvalidInput):
        price_usage(Decimal(1), engine("0.04", active=False), PRO)


def test_version_in_force_at_the_event_time() -> None:
    old = engine("0.04", at=datetime(2026, 1, 1, tzinfo=UTC))
    new = engine("0.05", at=datetime(2026, 1, 10, tzinfo=UTC))
    assert pick_version(new, [old], datetime(2026, 1, 5, tzinfo=UTC)) is old
    assert pick_version(new, [old], datetime(2026, 1, 10, tzinfo=UTC)) is new
    # An event older than every version: the earliest known cost.
    assert pick_version(new, [old], datetime(2025, 1, 1, tzinfo=UTC)) is old
    assert pick_version(None, [], T0) is None


def test_token_day_and_reset_in_the_configured_zone() -> None:
    at = datetime(2026, 1, 4, 23, 59, 59, tzinfo=UTC)
    assert token_day(at, "UTC") == ("2026-01-04", datetime(2026, 1, 5, tzinfo=UTC))
    # 23:59 UTC is 06:59 the next day in Bangkok (UTC+7); its day ends at 17:00 UTC.
    assert token_day(at, "Asia/Bangkok") == (
        "2026-01-05",
        datetime(2026, 1, 5, 17, tzinfo=UTC),
    )
    assert month_period(datetime(2026, 12, 31, 23, 59, tzinfo=UTC), "UTC") == (
        "2026-12",
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert month_period(datetime(2026, 2, 1, tzinfo=UTC), "UTC")[0] == "2026-02"


def test_log_id_is_deterministic() -> None:
    assert usage_log_id("gen-1") == usage_log_id("gen-1") != usage_log_id("gen-2")


GOOD = {"request_id": "r", "user_id": "u", "engine_id": "e", "usage_units": 2.5}


def _parse(body: object) -> UsageEvent:
    import json

    return parse_model(UsageEvent, decode_usage_event(json.dumps(body).encode()))


def test_message_numbers_are_exact_decimals() -> None:
    event = _parse({**GOOD, "usage_units": 0.1})
    assert event.usage_units == Decimal("0.1")


@pytest.mark.parametrize(
    "body",
    [
        {k: v for k, v in GOOD.items() if k != "request_id"},
        {k: v for k, v in GOOD.items() if k != "user_id"},
        {k: v for k, v in GOOD.items() if k != "engine_id"},
        {k: v for k, v in GOOD.items() if k != "usage_units"},
        {**GOOD, "usage_units": 0},
        {**GOOD, "usage_units": -1},
        {**GOOD, "usage_units": "2.5"},
        {**GOOD, "usage_units": True},
        {**GOOD, "credits_used": -1},
        {**GOOD, "credits_used": 1.5},
        {**GOOD, "credits_used": "5"},
        {**GOOD, "tokens": -3},
        {**GOOD, "user_id": 12},
        {**GOOD, "user_id": "a/b"},
        {**GOOD, "created_at": "yesterday"},
        {**GOOD, "request_meta": {"generation_time_ms": "fast"}},
        [GOOD],
    ],
)
def test_invalid_messages(body: object) -> None:
    with pytest.raises(InvalidInput):
        _parse(body)


def test_not_json() -> None:
    with pytest.raises(InvalidInput):
        decode_usage_event(b"\xff not json")


def test_limits_request_validation() -> None:
    assert parse_model(LimitsCheck, {"user_id": "u", "tokens": 0}).tokens == 0
    for bad in (
        {"user_id": "u"},
        {"user_id": "u", "tokens": -1},
        {"user_id": "u", "tokens": "9"},
        {"user_id": "u", "tokens": True},
        {"tokens": 1},
        {"user_id": "u", "tokens": 1, "x": 1},
    ):
        with pytest.raises(InvalidInput):
            parse_model(LimitsCheck, bad)


def test_monthly_report_boundaries() -> None:
    tier = {"monthlyConversations": 10, "monthlySeconds": 600, "sessionBankingEnabled": True}
    reset = datetime(2026, 2, 1, tzinfo=UTC)
    at_limit = monthly_report(
        "plus", tier, {"conversationsUsed": 9, "secondsUsed": 540}, "2026-01", reset, 60
    )
    assert at_limit["allowed"] is True
    above = monthly_report(
        "plus", tier, {"conversationsUsed": 9, "secondsUsed": 541}, "2026-01", reset, 60
    )
    assert above["allowed"] is False
    banked = monthly_report(
        "plus",
        tier,
        {"conversationsUsed": 9, "secondsUsed": 541, "bankedSeconds": 30},
        "2026-01",
        reset,
        60,
    )
    assert banked["allowed"] is True and banked["secondsAvailable"] == 630
    full = monthly_report("plus", tier, {"conversationsUsed": 10}, "2026-01", reset, 0)
    assert full["allowed"] is False
    unlimited = monthly_report(
        "premium", {"monthlyConversations": -1}, {"conversationsUsed": 99}, "2026-01", reset, 10**6
    )
    assert unlimited["allowed"] is True and unlimited["monthlyConversations"] is None


def test_scenario_aggregates_from_differences() -> None:
    first = {
        "timesAttempted": 2,
        "timesCompleted": 1,
        "isSaved": True,
        "userRating": 4,
        "totalTimeSpentSeconds": 100,
    }
    second = {
        "timesAttempted": 3,
        "timesCompleted": 3,
        "isSaved": False,
        "userRating": 2,
        "totalTimeSpentSeconds": 200,
    }
    state = apply_delta({}, Contribution.of(first).minus(Contribution()))
    state = apply_delta(state, Contribution.of(second).minus(Contribution()))
    assert state["totalAttempts"] == 5 and state["totalTimesUsed"] == 4
    assert state["amountSavedCount"] == 1 and state["ratingsCount"] == 2
    assert state["averageRating"] == 3.0
    assert state["completionRate"] == 0.8
    assert state["averageTimeSpent"] == 60.0
    # The first user un-saves and removes the rating; then the second is deleted.
    changed = {**first, "isSaved": False, "userRating": None}
    state = apply_delta(state, Contribution.of(changed).minus(Contribution.of(first)))
    state = apply_delta(state, Contribution().minus(Contribution.of(second)))
    assert state["amountSavedCount"] == 0 and state["ratingsCount"] == 0
    assert state["averageRating"] == 0.0 and state["totalAttempts"] == 2
