"""Rollups on the emulator: every aggregate equals a brute force over the raw logs."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from google.cloud import firestore

from shared.analytics.jobs import daily_rollup
from shared.analytics.rollups import rollup_day, rollup_month
from shared.analytics.rules import days_of_month
from tests.analytics.support import (
    brute_force,
    day_bounds,
    in_period,
    make_log,
    metrics,
    random_logs,
    stored_logs,
    write_log_one_by_one,
    write_logs,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def now() -> datetime:
    return NOW


def _agg(db, doc_id: str) -> dict:
    snap = db.collection("profit_aggregates").document(doc_id).get()
    assert snap.exists, doc_id
    return snap.to_dict()


def test_randomized_months_equal_brute_force(db) -> None:
    rng = random.Random(20240229)
    users = [f"user-{i}" for i in range(9)]
    # Dec 2023 .. Mar 2024: a year boundary, a leap day and empty days.
    start = datetime(2023, 12, 30, tzinfo=UTC)
    logs = random_logs(rng, start, 64, 700, users)
    logs = [x for x in logs if x["created_at"].date() != date(2024, 1, 10)]  # an empty day
    write_logs(db, logs)
    for x in logs[:5]:
        x2 = dict(x, request_id=x["request_id"] + "-single")
        write_log_one_by_one(db, x2)
        logs.append(x2)
    raw = stored_logs(db)
    assert len(raw) == len(logs)
    months = [(2023, 12), (2024, 1), (2024, 2)]
    for year, month in months:
        rollup_month(db, year, month, now=now)
    for year, month in months:
        for day in days_of_month(year, month):
            if day < date(2023, 12, 30):
                continue
            doc = _agg(db, f"daily_{day:%Y_%m_%d}")
            expected = brute_force(in_period(raw, *day_bounds(day)))
            assert metrics(doc) == expected, day
            assert doc["data_completeness_percent"] == 100.0
            assert doc["period_type"] == "daily"
        start_m = datetime(year, month, 1, tzinfo=UTC)
        end_m = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        doc = _agg(db, f"monthly_{year}_{month:02d}")
        assert metrics(doc) == brute_force(in_period(raw, start_m, end_m)), (year, month)
        assert doc["data_completeness_percent"] == 100.0
    leap = _agg(db, "daily_2024_02_29")
    assert leap["total_generations"] == len(in_period(raw, *day_bounds(date(2024, 2, 29))))
    empty = _agg(db, "daily_2024_01_10")
    assert empty["total_generations"] == 0 and empty["cost_by_engine"] == {}
    assert empty["profit_margin_percent"] == 0.0 and "worst_performing_engine" not in empty
    y2024 = _agg(db, "yearly_2024")
    assert metrics(y2024) == brute_force(
        in_period(raw, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    )
    y2023 = _agg(db, "yearly_2023")
    assert metrics(y2023) == brute_force(
        in_period(raw, datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))
    )
    all_time = _agg(db, "all_time")
    assert metrics(all_time) == brute_force(
        in_period(raw, datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    )


def test_rerun_is_identical_and_late_data_flows_up(db) -> None:
    rng = random.Random(7)
    day = date(2025, 12, 31)
    start = datetime(2025, 12, 31, tzinfo=UTC)
    write_logs(db, random_logs(rng, start, 1, 60, ["a", "b", "c"]))
    rollup_month(db, 2025, 12, now=now)
    first = _agg(db, "daily_2025_12_31")
    rollup_day(db, day, now=now)
    again = _agg(db, "daily_2025_12_31")
    drop = ("calculation_duration_ms",)
    assert {k: v for k, v in first.items() if k not in drop} == {
        k: v for k, v in again.items() if k not in drop
    }
    # Late usage for the closed day: the next nightly run (for Jan 1) reruns Dec 31.
    late = make_log(
        rng,
        user_id="late-user",
        at=start + timedelta(hours=23),
        plan="pro",
        engine="seddream_video",
    )
    write_log_one_by_one(db, late)
    db.collection("daily_token_usage").document("late-user_2025-12-31").set(
        {"userId": "late-user", "date": "2025-12-31", "tokensUsed": 500, "userType": "trial"}
    )
    report = daily_rollup(db, date(2026, 1, 1), now=now)
    assert "2025-12-31" in report.rechecked
    raw = stored_logs(db)
    dec = in_period(raw, *day_bounds(day))
    assert metrics(_agg(db, "daily_2025_12_31")) == brute_force(dec)
    assert metrics(_agg(db, "monthly_2025_12")) == brute_force(dec)
    assert metrics(_agg(db, "yearly_2025")) == brute_force(dec)
    assert _agg(db, "all_time")["total_generations"] == len(dec)
    history = db.collection("token_usage_history").document("late-user_2025_12").get()
    assert history.get("dailyUsage")["31"] == 500


def test_single_user_one_engine_zero_revenue_plan(db) -> None:
    rng = random.Random(3)
    at = datetime(2026, 1, 4, 10, tzinfo=UTC)
    logs = [
        make_log(
            rng, user_id="solo", at=at + timedelta(minutes=i), engine="openai_tts", plan="free"
        )
        for i in range(5)
    ]
    write_logs(db, logs)
    rollup_day(db, date(2026, 1, 4), now=now)
    doc = _agg(db, "daily_2026_01_04")
    assert metrics(doc) == brute_force(logs)
    assert doc["total_users"] == 1 and doc["loss_users_count"] == 1
    assert doc["profit_by_plan"]["free"]["profit_margin_percent"] == -100.0
    assert doc["loss_plans"] == ["free"]
    assert doc["worst_performing_engine"] == "openai_tts"
    assert doc["period_id"] == "daily_2026_01_04"
    assert doc["period_start"] == datetime(2026, 1, 4, tzinfo=UTC)


def test_logs_without_counters_lower_completeness(db) -> None:
    rng = random.Random(5)
    at = datetime(2026, 1, 4, 10, tzinfo=UTC)
    counted = [make_log(rng, user_id="u", at=at) for _ in range(3)]
    write_logs(db, counted)
    stray = make_log(rng, user_id="u", at=at)
    db.collection("usage_logs").document("stray").set(stray)
    rollup_day(db, date(2026, 1, 4), now=now)
    doc = _agg(db, "daily_2026_01_04")
    assert doc["total_generations"] == 3
    assert doc["data_completeness_percent"] == 75.0


def test_a_day_counted_before_the_fold_is_still_rolled_up(db) -> None:
    """Days counted when each had its own ``usage_user_days`` document (no
    ``active_days`` on the month document) roll up exactly, alone and beside users
    counted the new way on the same day."""
    rng = random.Random(7)
    day = date(2024, 3, 5)
    at = datetime(2024, 3, 5, 10, tzinfo=UTC)
    old = [make_log(rng, user_id="legacy-user", at=at + timedelta(minutes=i)) for i in range(3)]
    new = [make_log(rng, user_id="new-user", at=at + timedelta(minutes=i)) for i in range(2)]
    write_logs(db, old + new)
    # Make the legacy user's day look as it was written before the fold: its own day
    # document with the tallies, and no date under the month document's active_days.
    month_ref = db.collection("usage_user_periods").document("2024-03_legacy-user")
    month_doc = month_ref.get().to_dict()
    day_entry = month_doc["days"]["05"]
    db.collection("usage_user_days").document("2024-03-05_legacy-user").set(
        {**day_entry, "user_id": "legacy-user", "day": day.isoformat()}
    )
    month_ref.update({"active_days": firestore.DELETE_FIELD})
    rollup_day(db, day, now=now, cascade=False)
    doc = _agg(db, f"daily_{day:%Y_%m_%d}")
    assert metrics(doc) == brute_force(in_period(stored_logs(db), *day_bounds(day)))
    assert doc["data_completeness_percent"] == 100.0


def test_user_years_are_written_through_the_last_month_rolled_up(db) -> None:
    """The yearly rollup writes each user's year from the month documents, through the
    last month rolled up, replacing a year document counted per event before (which also
    held a month not rolled up yet); all time sums those year documents exactly."""
    rng = random.Random(11)
    jan = [make_log(rng, user_id="y-user", at=datetime(2024, 1, 9, 8, tzinfo=UTC))]
    jan.append(make_log(rng, user_id="y-other", at=datetime(2024, 1, 20, 8, tzinfo=UTC)))
    feb = [make_log(rng, user_id="y-user", at=datetime(2024, 2, 2, 8, tzinfo=UTC))]
    feb.append(make_log(rng, user_id="y-late", at=datetime(2024, 2, 3, 8, tzinfo=UTC)))
    write_logs(db, jan + feb)
    periods = db.collection("usage_user_periods")
    # A year document counted per event (Jan + Feb), as written before the fold.
    legacy = {"user_id": "y-user", "period": "2024", "n": 2, "cost_micros": 1, "plans": {}}
    periods.document("2024_y-user").set(legacy)
    rollup_month(db, 2024, 1, now=now)
    year = periods.document("2024_y-user").get().to_dict()
    assert year["through"] == "2024-01" and year["n"] == 1
    late_only = periods.document("2024_y-late").get().to_dict()
    assert late_only["n"] == 0  # active only in a month not rolled up yet
    jan_only = brute_force(jan)
    assert metrics(_agg(db, "yearly_2024")) == jan_only
    assert metrics(_agg(db, "all_time")) == jan_only
    assert _agg(db, "all_time")["data_completeness_percent"] == 100.0
    rollup_month(db, 2024, 2, now=now)
    assert periods.document("2024_y-user").get().get("n") == 2
    both = brute_force(jan + feb)
    assert metrics(_agg(db, "yearly_2024")) == both
    assert metrics(_agg(db, "all_time")) == both


def test_the_recheck_reads_both_months_of_its_window_and_reruns_only_late_days(db) -> None:
    """The 7-day recheck at a month's start spans two months: late usage on either side
    of the boundary reruns exactly those days; a day counted before the fold (its own day
    document, no ``active_days``) is found equal and not rerun."""
    rng = random.Random(19)
    logs = [
        make_log(rng, user_id="m-a", at=datetime(2026, 1, 29, 9, tzinfo=UTC)),
        make_log(rng, user_id="m-b", at=datetime(2026, 1, 31, 9, tzinfo=UTC)),
        make_log(rng, user_id="m-legacy", at=datetime(2026, 1, 30, 9, tzinfo=UTC)),
        make_log(rng, user_id="m-c", at=datetime(2026, 2, 1, 9, tzinfo=UTC)),
    ]
    write_logs(db, logs)
    month_ref = db.collection("usage_user_periods").document("2026-01_m-legacy")
    entry = month_ref.get().to_dict()["days"]["30"]
    db.collection("usage_user_days").document("2026-01-30_m-legacy").set(
        {**entry, "user_id": "m-legacy", "day": "2026-01-30"}
    )
    month_ref.update({"active_days": firestore.DELETE_FIELD})
    for day in (date(2026, 1, 29), date(2026, 1, 30), date(2026, 1, 31), date(2026, 2, 1)):
        rollup_day(db, day, now=now, cascade=False)
    late = [
        make_log(rng, user_id="m-a", at=datetime(2026, 1, 31, 22, tzinfo=UTC)),
        make_log(rng, user_id="m-d", at=datetime(2026, 2, 1, 23, tzinfo=UTC)),
    ]
    for log in late:
        write_log_one_by_one(db, log)
    report = daily_rollup(db, date(2026, 2, 3), now=now)
    assert sorted(report.rechecked) == ["2026-01-31", "2026-02-01"]
    raw = stored_logs(db)
    for day in (date(2026, 1, 29), date(2026, 1, 30), date(2026, 1, 31), date(2026, 2, 1)):
        assert metrics(_agg(db, f"daily_{day:%Y_%m_%d}")) == brute_force(
            in_period(raw, *day_bounds(day))
        ), day
    again = daily_rollup(db, date(2026, 2, 3), now=now)
    assert again.rechecked == []
