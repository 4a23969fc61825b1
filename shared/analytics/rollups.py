"""The profit rollups on Firestore: daily, monthly, yearly and all-time aggregates.

The daily rollup reads the day's per-user counters (``usage_user_days``, one document per
active user) and the day's counter shards, never the usage logs themselves; it checks the
counters against the logs with one server-side ``count()`` (``data_completeness_percent``).
Monthly, yearly and all-time aggregates are sums of the smaller periods' aggregate
documents, plus the per-user period counters for the distinct-user figures. Every write is
a full replacement computed only from stored data, so a rerun gives the same figures
(``updated_at`` and ``calculation_duration_ms`` are run metadata).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from shared.analytics.counters import (
    ACTIVE_DAYS,
    DAY_SHARDS_COLLECTION,
    USER_DAYS,
    USER_PERIODS,
    day_key,
)
from shared.analytics.rules import (
    ALL_TIME_ID,
    ONE_MICROSECOND,
    Breakdown,
    Tally,
    UserUsage,
    aggregate_fields,
    completeness_percent,
    daily_id,
    day_start,
    days_of_month,
    month_bounds,
    monthly_id,
    yearly_id,
)
from shared.logs import get_logger, log

AGGREGATES = "profit_aggregates"
USAGE_LOGS = "usage_logs"
RECHECK_DAYS = 7
AGGREGATION_ENTRIES_PER_READ = 1000

logger = get_logger(__name__)

Now = Callable[[], datetime]


@dataclass
class RollupReport:
    """What one rollup run did (for logs, tests and the bench)."""

    written: list[str] = field(default_factory=list)
    documents_read: int = 0
    aggregation_reads: int = 0
    rechecked: list[str] = field(default_factory=list)

    @property
    def reads(self) -> int:
        """Billed reads: documents plus one per 1,000 index entries an aggregation scans."""
        return self.documents_read + self.aggregation_reads


def _users_of(
    db: firestore.Client, collection: str, key: str, value: str, report: RollupReport
) -> list[UserUsage]:
    users = []
    query = db.collection(collection).where(filter=FieldFilter(key, "==", value))
    for snap in query.stream():
        report.documents_read += 1
        data = snap.to_dict() or {}
        users.append(UserUsage(str(data.get("user_id") or snap.id), Breakdown.from_counter(data)))
    return users


def _users_of_day(db: firestore.Client, day: date, report: RollupReport) -> list[UserUsage]:
    """The day's per-user usage: ``days.{DD}`` of the month documents whose
    ``active_days.{DD}`` is ``day``, plus
    any ``usage_user_days`` document of a user whose month document does not carry that
    date (days counted before the day documents were folded into the month documents)."""
    key = day_key(day)
    users: dict[str, UserUsage] = {}
    query = db.collection(USER_PERIODS).where(
        filter=FieldFilter(FieldPath(ACTIVE_DAYS, key).to_api_repr(), "==", day.isoformat())
    )
    for snap in query.stream():
        report.documents_read += 1
        data = snap.to_dict() or {}
        entry = (data.get("days") or {}).get(key) or {}
        user_id = str(data.get("user_id") or snap.id)
        users[user_id] = UserUsage(user_id, Breakdown.from_counter(entry))
    report.documents_read += 0 if users else 1  # an empty query is billed one read
    for legacy in _users_of(db, USER_DAYS, "day", day.isoformat(), report):
        users.setdefault(legacy.user_id, legacy)
    return list(users.values())


def _stored_logs(db: firestore.Client, start: datetime, end: datetime, report: RollupReport) -> int:
    """Usage logs stored with ``start <= created_at < end`` (server-side count)."""
    query = (
        db.collection(USAGE_LOGS)
        .where(filter=FieldFilter("created_at", ">=", start))
        .where(filter=FieldFilter("created_at", "<", end))
    )
    result: Any = query.count(alias="n").get()  # type: ignore[call-arg]
    stored = int(result[0][0].value) if result and result[0] else 0
    report.aggregation_reads += max(1, -(-stored // AGGREGATION_ENTRIES_PER_READ))
    return stored


def day_shard_totals(db: firestore.Client, day: date, report: RollupReport) -> Tally:
    """The day's totals from its counter shards (only the shards written are read)."""
    query = db.collection(DAY_SHARDS_COLLECTION).where(
        filter=FieldFilter("day", "==", day.isoformat())
    )
    total = Tally()
    found = 0
    for snap in query.stream():
        found += 1
        total.add(Tally.from_counter(snap.to_dict()))
    report.documents_read += max(1, found)  # a query is billed one read even when empty
    return total


def _write(db: firestore.Client, doc_id: str, data: dict[str, Any], report: RollupReport) -> None:
    db.collection(AGGREGATES).document(doc_id).set(data)
    report.written.append(doc_id)


def _sum_tallies(users: list[UserUsage]) -> Breakdown:
    sums = Breakdown()
    for user in users:
        sums.add(user.usage)
    return sums


# -- daily -------------------------------------------------------------------------------
def rollup_day(
    db: firestore.Client,
    day: date,
    *,
    now: Now,
    report: RollupReport | None = None,
    cascade: bool = True,
) -> RollupReport:
    """Write ``profit_aggregates/daily_YYYY_MM_DD`` from the day's counters."""
    report = report or RollupReport()
    started = time.perf_counter()
    start = day_start(day)
    end = start + timedelta(days=1)
    users = _users_of_day(db, day, report)
    sums = _sum_tallies(users)
    shards = day_shard_totals(db, day, report)
    if shards != sums.total:
        log(
            logger,
            logging.ERROR,
            "day counters disagree",
            day=day.isoformat(),
            shards_n=shards.n,
            users_n=sums.total.n,
        )
    stored = _stored_logs(db, start, end, report)
    doc = {
        "period_id": daily_id(day),
        "period_type": "daily",
        "period_start": start,
        "period_end": end - ONE_MICROSECOND,
        **aggregate_fields(sums, users),
        "data_completeness_percent": completeness_percent(sums.total.n, stored),
        "updated_at": now(),
        "calculation_duration_ms": int((time.perf_counter() - started) * 1000),
    }
    _write(db, daily_id(day), doc, report)
    if cascade:
        _cascade(db, day.year, day.month, now=now, report=report)
    return report


def recheck_days(
    db: firestore.Client,
    day: date,
    *,
    now: Now,
    report: RollupReport | None = None,
    days: int = RECHECK_DAYS,
) -> RollupReport:
    """Rerun any of the ``days`` closed days before ``day`` whose counters moved (late data)."""
    report = report or RollupReport()
    for back in range(days, 0, -1):
        other = day - timedelta(days=back)
        shards = day_shard_totals(db, other, report)
        snap = db.collection(AGGREGATES).document(daily_id(other)).get()
        report.documents_read += 1
        if snap.exists:
            written = Breakdown.from_aggregate(snap.to_dict() or {}).total
            if written == shards:
                continue
        elif shards.n == 0:
            continue
        log(
            logger,
            logging.INFO,
            "late usage: rerunning a closed day",
            day=other.isoformat(),
            counted=shards.n,
        )
        report.rechecked.append(other.isoformat())
        rollup_day(db, other, now=now, report=report)
    return report


# -- monthly, yearly, all time -----------------------------------------------------------
def _expected_from(doc: dict[str, Any]) -> int:
    """The usage a sub-period aggregate knew to exist (its count over its completeness)."""
    count = int(doc.get("total_generations") or 0)
    pct = Decimal(str(doc.get("data_completeness_percent") or 100))
    if count == 0 or pct <= 0:
        return count
    return int((Decimal(count) * 100 / pct).to_integral_value())


def _users_of_period(
    db: firestore.Client,
    counter_period: str,
    after_month: str | None,
    until: str,
    report: RollupReport,
) -> list[UserUsage]:
    """Per-user usage of a counter period less its months after ``after_month`` (not yet
    rolled up), so the distinct-user figures cover exactly the months the sums cover."""
    users = {u.user_id: u for u in _users_of(db, USER_PERIODS, "period", counter_period, report)}
    if after_month is None:
        return list(users.values())
    query = (
        db.collection(USER_PERIODS)
        .where(filter=FieldFilter("period", ">", after_month))
        .where(filter=FieldFilter("period", "<=", until))
    )
    for snap in query.stream():
        report.documents_read += 1
        data = snap.to_dict() or {}
        if len(str(data.get("period") or "")) != 7:  # months only (YYYY-MM)
            continue
        user = users.get(str(data.get("user_id") or ""))
        if user is not None:
            user.usage.add(Breakdown.from_counter(data).negated())
    return list(users.values())


def _combine(
    db: firestore.Client,
    *,
    period_id: str,
    period_type: str,
    start: datetime,
    end: datetime,
    parts: list[dict[str, Any]],
    counter_period: str,
    after_month: str | None,
    until: str,
    now: Now,
    report: RollupReport,
) -> None:
    began = time.perf_counter()
    sums = Breakdown()
    expected = 0
    for part in parts:
        sums.add(Breakdown.from_aggregate(part))
        expected += _expected_from(part)
    users = _users_of_period(db, counter_period, after_month, until, report)
    counted_by_users = sum(u.usage.total.n for u in users)
    doc = {
        "period_id": period_id,
        "period_type": period_type,
        "period_start": start,
        "period_end": end,
        **aggregate_fields(sums, users),
        "data_completeness_percent": completeness_percent(
            sums.total.n, max(expected, counted_by_users)
        ),
        "updated_at": now(),
        "calculation_duration_ms": int((time.perf_counter() - began) * 1000),
    }
    _write(db, period_id, doc, report)


def rollup_month(
    db: firestore.Client,
    year: int,
    month: int,
    *,
    now: Now,
    as_of: date | None = None,
    report: RollupReport | None = None,
) -> RollupReport:
    """``monthly_YYYY_MM`` (building any missing closed day first), then year and all time."""
    report = report or RollupReport()
    days = days_of_month(year, month)
    refs = [db.collection(AGGREGATES).document(daily_id(d)) for d in days]
    snaps = list(db.get_all(refs))
    report.documents_read += len(snaps)
    by_id = {s.id: s for s in snaps}
    for day in days:
        if by_id[daily_id(day)].exists or (as_of is not None and day >= as_of):
            continue
        rollup_day(db, day, now=now, report=report, cascade=False)
        by_id[daily_id(day)] = db.collection(AGGREGATES).document(daily_id(day)).get()
        report.documents_read += 1
    parts = [by_id[daily_id(d)].to_dict() or {} for d in days if by_id[daily_id(d)].exists]
    start, end = month_bounds(year, month)
    _combine(
        db,
        period_id=monthly_id(year, month),
        period_type="monthly",
        start=start,
        end=end,
        parts=parts,
        counter_period=f"{year:04d}-{month:02d}",
        after_month=None,
        until="",
        now=now,
        report=report,
    )
    rollup_year(db, year, now=now, report=report)
    return report


def rollup_year(
    db: firestore.Client, year: int, *, now: Now, report: RollupReport | None = None
) -> RollupReport:
    """``yearly_YYYY`` from the year's monthly aggregates, then ``all_time``."""
    report = report or RollupReport()
    refs = [db.collection(AGGREGATES).document(monthly_id(year, m)) for m in range(1, 13)]
    parts = []
    last = 0
    for snap in db.get_all(refs):
        if snap.exists:
            report.documents_read += 1
            parts.append(snap.to_dict() or {})
            last = max(last, int(snap.id[-2:]))
    start, _ = month_bounds(year, 1)
    _, end = month_bounds(year, 12)
    _combine(
        db,
        period_id=yearly_id(year),
        period_type="yearly",
        start=start,
        end=end,
        parts=parts,
        counter_period=f"{year:04d}",
        after_month=f"{year:04d}-{last:02d}",
        until=f"{year:04d}-12",
        now=now,
        report=report,
    )
    rollup_all_time(db, now=now, report=report)
    return report


def rollup_all_time(
    db: firestore.Client, *, now: Now, report: RollupReport | None = None
) -> RollupReport:
    """``all_time`` from every yearly aggregate."""
    report = report or RollupReport()
    query = db.collection(AGGREGATES).where(filter=FieldFilter("period_type", "==", "yearly"))
    parts = []
    for snap in query.stream():
        report.documents_read += 1
        parts.append(snap.to_dict() or {})
    if not parts:
        return report
    start = min(p["period_start"] for p in parts)
    end = max(p["period_end"] for p in parts)
    months = db.collection(AGGREGATES).where(filter=FieldFilter("period_type", "==", "monthly"))
    last = ""
    for snap in months.select(["period_id"]).stream():
        report.documents_read += 1
        key = snap.id[len("monthly_") :].replace("_", "-")
        last = max(last, key)
    _combine(
        db,
        period_id=ALL_TIME_ID,
        period_type="all_time",
        start=start,
        end=end,
        parts=parts,
        counter_period="all",
        after_month=last or None,
        until="9999-12",
        now=now,
        report=report,
    )
    return report


def _cascade(
    db: firestore.Client, year: int, month: int, *, now: Now, report: RollupReport
) -> None:
    """A rerun of a day in a month already rolled up brings the month, year, all time along."""
    snap = db.collection(AGGREGATES).document(monthly_id(year, month)).get()
    report.documents_read += 1
    if snap.exists:
        rollup_month(db, year, month, now=now, report=report)
