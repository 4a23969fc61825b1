"""Pure rules: exact money, margins, periods, token history, banking (no emulator)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from shared.analytics.audit import audit_entry
from shared.analytics.counters import counter_writes, merged_counter_writes
from shared.analytics.jobs import DayRequest, MonthRequest, day_ended, month_ended
from shared.analytics.loss import days_in_loss
from shared.analytics.rules import (
    Breakdown,
    Tally,
    UserUsage,
    aggregate_fields,
    avg_usd,
    banked_seconds_next,
    completeness_percent,
    margin_percent,
    to_micros,
    token_history_fields,
    usd,
)
from shared.entry import parse_model
from shared.errors import InvalidInput


def test_money_is_rounded_once_half_even_to_micro_usd() -> None:
    assert to_micros(0.04) == 40_000
    assert to_micros(0.1 + 0.2) == 300_000  # 0.30000000000000004 -> 0.300000
    assert to_micros(Decimal("0.0000005")) == 0  # half-even: down to even
    assert to_micros(Decimal("0.0000015")) == 2
    assert to_micros("1.25") == 1_250_000
    assert to_micros(None) == 0
    assert usd(1_234_567_891) == 1234.567891
    assert avg_usd(10, 4) == 0.000002  # 2.5 micro -> 2 (half-even)
    assert avg_usd(5, 0) == 0.0


def test_margins_including_zero_revenue() -> None:
    assert margin_percent(0, 0) == 0.0
    assert margin_percent(0, 5) == -100.0
    assert margin_percent(3_000_000, 1_000_000) == 66.67
    assert margin_percent(1_000_000, 3_000_000) == -200.0
    assert completeness_percent(0, 0) == 100.0
    assert completeness_percent(3, 4) == 75.0
    assert completeness_percent(5, 4) == 100.0  # logs gone by retention, counters remain


def test_aggregate_of_nothing() -> None:
    fields = aggregate_fields(Breakdown(), [])
    assert fields["total_generations"] == 0 and fields["total_users"] == 0
    assert fields["cost_by_engine"] == {} and fields["loss_plans"] == []
    assert "worst_performing_engine" not in fields
    assert fields["avg_cost_per_user"] == 0.0


def test_worst_engine_and_loss_plans() -> None:
    usage = Breakdown(
        total=Tally(3, 300, 250),
        plans={"pro": Tally(2, 100, 250), "free": Tally(1, 200, 0)},
        engines={"a": Tally(2, 100, 250), "b": Tally(1, 200, 0)},
    )
    fields = aggregate_fields(usage, [UserUsage("u", usage)])
    assert fields["loss_plans"] == ["free"]
    assert fields["worst_performing_engine"] == "b"
    assert fields["loss_users_count"] == 1
    assert fields["revenue_by_plan"]["free"] == {
        "revenue_usd": 0.0,
        "user_count": 1,
        "generation_count": 1,
    }


def test_counter_writes_of_one_log() -> None:
    log = {
        "user_id": "u1",
        "subscription_plan": "pro",
        "engine_id": "e",
        "request_id": "r",
        "created_at": datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC),
        "real_cost_usd": 0.04,
        "revenue_estimated_usd": 0.1,
    }
    writes = {(c, d): data for c, d, data in counter_writes(log)}
    # One document per log: the user's month (the year, all time and the day's app-wide
    # totals are derived from month documents by the rollups).
    assert set(writes) == {("usage_user_periods", "2024-02_u1")}
    month = writes[("usage_user_periods", "2024-02_u1")]
    assert month["n"].value == 1 and month["user_id"] == "u1" and month["period"] == "2024-02"
    day = month["days"]["29"]  # the day lives in the month document, found by its date
    assert month["active_days"] == {"29": "2024-02-29"}
    assert day["cost_micros"].value == 40_000 and day["revenue_micros"].value == 100_000
    assert day["plans"]["pro"]["n"].value == 1
    merged = merged_counter_writes([log, dict(log, request_id="r2")])
    merged_day = merged[("usage_user_periods", "2024-02_u1")]["days"]["29"]
    assert merged_day["engines"]["e"]["n"].value == 2
    with pytest.raises(ValueError):
        counter_writes({**log, "created_at": None})


def test_token_history_fields_fill_gaps_and_pick_the_peak() -> None:
    fields = token_history_fields({"01": 850, "02": 1200, "04": 2100, "05": 1750}, 5)
    assert fields["dailyUsage"] == {"01": 850, "02": 1200, "03": 0, "04": 2100, "05": 1750}
    assert fields["totalMonthlyTokens"] == 5900
    assert fields["averageDailyUsage"] == 1180.0
    assert (fields["peakUsageDate"], fields["peakUsageTokens"]) == ("04", 2100)
    tie = token_history_fields({"01": 5, "02": 5}, 2)
    assert tie["peakUsageDate"] == "01"


def test_banking_rule() -> None:
    kw = {"monthly_seconds": 1800, "banked_seconds_used": 0, "banking_enabled": True}
    assert banked_seconds_next(seconds_used=600, banked_seconds=0, **kw) == 1200
    assert banked_seconds_next(seconds_used=600, banked_seconds=900, **kw) == 1800  # capped
    assert banked_seconds_next(seconds_used=2000, banked_seconds=300, **kw) == 100
    assert banked_seconds_next(seconds_used=5000, banked_seconds=0, **kw) == 0
    assert (
        banked_seconds_next(seconds_used=0, banked_seconds=0, **{**kw, "banking_enabled": False})
        == 0
    )


def test_periods_come_from_the_schedule_time() -> None:
    at = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    assert day_ended(DayRequest(), at) == date(2025, 12, 31)
    assert day_ended(DayRequest(date="2024-02-29"), at) == date(2024, 2, 29)
    assert month_ended(MonthRequest(), datetime(2026, 1, 1, 0, 5, tzinfo=UTC)) == (2025, 12)
    assert month_ended(MonthRequest(month="2024-02"), at) == (2024, 2)
    for bad in ({"date": "2024-02-30"}, {"date": 5}, {"when": "x"}):
        with pytest.raises(InvalidInput):
            parse_model(DayRequest, bad)
    for bad in ({"month": "2024-13"}, {"month": "2024-1"}):
        with pytest.raises(InvalidInput):
            parse_model(MonthRequest, bad)


def test_days_in_loss_counts_days() -> None:
    detected = datetime(2026, 1, 4, 23, 0, tzinfo=UTC)
    assert days_in_loss(detected, datetime(2026, 1, 4, 23, 59, tzinfo=UTC)) == 1
    assert days_in_loss(detected, datetime(2026, 1, 5, 0, 0, tzinfo=UTC)) == 2
    assert days_in_loss(detected, datetime(2026, 1, 7, 12, 0, tzinfo=UTC)) == 4


def test_audit_entry() -> None:
    t = datetime(2026, 1, 4, tzinfo=UTC)
    before = {"cost_per_unit": 0.04, "updated_by": "a"}
    after = {"cost_per_unit": 0.05, "updated_by": "b", "notes": "vendor raise", "updated_at": t}
    entry = audit_entry(
        action_type="cost_updated",
        entity_type="engine",
        entity_id="e",
        before=before,
        after=after,
        event_time=datetime(2030, 1, 1, tzinfo=UTC),
    )
    assert entry is not None
    assert entry["changed_by"] == "b" and entry["changed_at"] == t
    assert entry["reason"] == "vendor raise"
    assert entry["before_value"] == before and entry["after_value"] == after
    assert (
        audit_entry(
            action_type="x",
            entity_type="engine",
            entity_id="e",
            before=after,
            after=after,
            event_time=t,
        )
        is None
    )
    deleted = audit_entry(
        action_type="cost_updated",
        entity_type="engine",
        entity_id="e",
        before=before,
        after=None,
        event_time=t,
    )
    assert deleted is None
    created = audit_entry(
        action_type="cost_updated",
        entity_type="engine",
        entity_id="e",
        before=None,
        after={"updated_by": "a"},
        event_time=t,
    )
    assert created is not None and created["reason"] == "created" and created["changed_at"] == t
