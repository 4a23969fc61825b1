"""The profit rollups on Firestore: daily, monthly, yearly and all-time aggregates.

The only write-time counter is one user's month document (``usage_user_periods/
{YYYY-MM}_{user}``, each day under ``days.{DD}``; see ``counters``). The daily rollup reads
the day's entries of the month documents of the day's users, never the usage logs
themselves; it checks the counters against the logs with one server-side ``count()``
(``data_completeness_percent``). The late-usage recheck reads the month documents of the
window's months once each. Monthly, yearly and all-time aggregates are sums of the smaller
periods' aggregate documents, plus per-user figures for the distinct-user figures: the
month documents for a month; for a year, the year's month documents, from which the
yearly rollup also writes each user's year (``{YYYY}_{user}``, through the last month
rolled up); for all time, those year documents. Every write is a full replacement computed
only from stored data, so a rerun gives the same figures (``updated_at`` and
``calculation_duration_ms`` are run metadata).
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
    USER_DAYS,
    USER_PERIODS,
    day_key,
    is_month_period,
    month_of,
    user_period_id,
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
BATCH_WRITES = 500
#: Firestore's limit on the values of one ``in`` filter.
IN_VALUES = 30

logger = get_logger(__name__)

Now = Callable[[], datetime]


@dataclass
class RollupReport:
    """What one rollup run did (for logs, tests and the bench)."""

    written: list[str] = field(default_factory=list)
    #: Per-user year documents written by the yearly rollups of this run.
    user_years_written: int = 0
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
        data = snap.to_dict() or {}
        users.append(UserUsage(str(data.get("user_id") or snap.id), Breakdown.from_counter(data)))
    report.documents_read += max(1, len(users))  # a query is billed one read even when empty
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


def window_totals(
    db: firestore.Client, days: list[date], report: RollupReport
) -> dict[date, Tally]:
    """Each day's totals, counted as ``rollup_day`` counts them, reading each month
    document of the days' months once (one query per month), plus any day document written
    before the fold (one query per day)."""
    totals = {d: Tally() for d in days}
    seen: dict[date, set[str]] = {d: set() for d in days}
    for month in sorted({month_of(d) for d in days}):
        in_month = [d for d in days if month_of(d) == month]
        query = db.collection(USER_PERIODS).where(filter=FieldFilter("period", "==", month))
        found = 0
        for snap in query.stream():
            found += 1
            data = snap.to_dict() or {}
            active = data.get(ACTIVE_DAYS) or {}
            entries = data.get("days") or {}
            user_id = str(data.get("user_id") or snap.id)
            for d in in_month:
                if active.get(day_key(d)) == d.isoformat():
                    totals[d].add(Tally.from_counter(entries.get(day_key(d))))
                    seen[d].add(user_id)
        report.documents_read += max(1, found)  # a query is billed one read even when empty
    for d in days:
        for legacy in _users_of(db, USER_DAYS, "day", d.isoformat(), report):
            if legacy.user_id not in seen[d]:
                totals[d].add(legacy.usage.total)
    return totals


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
    others = [day - timedelta(days=back) for back in range(days, 0, -1)]
    counted = window_totals(db, others, report)
    refs = [db.collection(AGGREGATES).document(daily_id(other)) for other in others]
    written = {snap.id: snap for snap in db.get_all(refs)}
    report.documents_read += len(refs)
    for other in others:
        now_counted = counted[other]
        snap = written.get(daily_id(other))
        if snap is not None and snap.exists:
            if Breakdown.from_aggregate(snap.to_dict() or {}).total == now_counted:
                continue
        elif now_counted.n == 0:
            continue
        log(
            logger,
            logging.INFO,
            "late usage: rerunning a closed day",
            day=other.isoformat(),
            counted=now_counted.n,
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


def _breakdown_doc(usage: Breakdown) -> dict[str, Any]:
    """A Breakdown in the counter documents' shape (``n``, ``cost_micros``, ...)."""

    def tally(t: Tally) -> dict[str, int]:
        return {"n": t.n, "cost_micros": t.cost, "revenue_micros": t.revenue}

    return {
        **tally(usage.total),
        "plans": {name: tally(t) for name, t in sorted(usage.plans.items())},
        "engines": {name: tally(t) for name, t in sorted(usage.engines.items())},
    }


def _user_years(
    db: firestore.Client, year: int, through: str, report: RollupReport
) -> list[UserUsage]:
    """Each user's usage of ``year`` through the month ``through`` (the last rolled up),
    from the year's month documents; written to ``usage_user_periods/{YYYY}_{user}`` for
    the all-time rollup. Every user with a month document in the year is written, even at
    zero (so a year document counted per event before the fold is replaced)."""
    users: dict[str, Breakdown] = {}
    query = (
        db.collection(USER_PERIODS)
        .where(filter=FieldFilter("period", ">=", f"{year:04d}-01"))
        .where(filter=FieldFilter("period", "<=", f"{year:04d}-12"))
    )
    found = 0
    for snap in query.stream():
        found += 1
        data = snap.to_dict() or {}
        period = data.get("period")
        if not is_month_period(period):
            continue
        usage = users.setdefault(str(data.get("user_id") or ""), Breakdown())
        if str(period) <= through:
            usage.add(Breakdown.from_counter(data))
    report.documents_read += max(1, found)
    users.pop("", None)
    batch = db.batch()
    pending = 0
    for user_id, usage in sorted(users.items()):
        doc = {
            **_breakdown_doc(usage),
            "user_id": user_id,
            "period": f"{year:04d}",
            "through": through,
        }
        batch.set(db.collection(USER_PERIODS).document(user_period_id(f"{year:04d}", user_id)), doc)
        pending += 1
        if pending == BATCH_WRITES:
            batch.commit()
            batch, pending = db.batch(), 0
    if pending:
        batch.commit()
    report.user_years_written += len(users)
    return [UserUsage(user_id, usage) for user_id, usage in users.items()]


def _users_of_years(
    db: firestore.Client, years: list[str], report: RollupReport
) -> list[UserUsage]:
    """Each user's usage over ``years``, summed from the per-user year documents."""
    users: dict[str, Breakdown] = {}
    for i in range(0, len(years), IN_VALUES):
        chunk = years[i : i + IN_VALUES]
        query = db.collection(USER_PERIODS).where(filter=FieldFilter("period", "in", chunk))
        found = 0
        for snap in query.stream():
            found += 1
            data = snap.to_dict() or {}
            user_id = str(data.get("user_id") or "")
            if user_id:
                users.setdefault(user_id, Breakdown()).add(Breakdown.from_counter(data))
        report.documents_read += max(1, found)
    return [UserUsage(user_id, usage) for user_id, usage in users.items()]


def _combine(
    db: firestore.Client,
    *,
    period_id: str,
    period_type: str,
    start: datetime,
    end: datetime,
    parts: list[dict[str, Any]],
    users: list[UserUsage],
    began: float,
    now: Now,
    report: RollupReport,
) -> None:
    sums = Breakdown()
    expected = 0
    for part in parts:
        sums.add(Breakdown.from_aggregate(part))
        expected += _expected_from(part)
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
    began = time.perf_counter()
    users = _users_of(db, USER_PERIODS, "period", f"{year:04d}-{month:02d}", report)
    _combine(
        db,
        period_id=monthly_id(year, month),
        period_type="monthly",
        start=start,
        end=end,
        parts=parts,
        users=users,
        began=began,
        now=now,
        report=report,
    )
    rollup_year(db, year, now=now, report=report)
    return report


def rollup_year(
    db: firestore.Client, year: int, *, now: Now, report: RollupReport | None = None
) -> RollupReport:
    """``yearly_YYYY`` from the year's monthly aggregates, then ``all_time``; each user's
    year document from their month documents through the last month rolled up."""
    report = report or RollupReport()
    began = time.perf_counter()
    refs = [db.collection(AGGREGATES).document(monthly_id(year, m)) for m in range(1, 13)]
    parts = []
    last = 0
    for snap in db.get_all(refs):
        if snap.exists:
            report.documents_read += 1
            parts.append(snap.to_dict() or {})
            last = max(last, int(snap.id[-2:]))
    if not parts:
        return report
    start, _ = month_bounds(year, 1)
    _, end = month_bounds(year, 12)
    users = _user_years(db, year, f"{year:04d}-{last:02d}", report)
    _combine(
        db,
        period_id=yearly_id(year),
        period_type="yearly",
        start=start,
        end=end,
        parts=parts,
        users=users,
        began=began,
        now=now,
        report=report,
    )
    rollup_all_time(db, now=now, report=report)
    return report


def rollup_all_time(
    db: firestore.Client, *, now: Now, report: RollupReport | None = None
) -> RollupReport:
    """``all_time`` from every yearly aggregate; its distinct-user figures from the
    per-user year documents the yearly rollups wrote (each through the months rolled up)."""
    report = report or RollupReport()
    began = time.perf_counter()
    query = db.collection(AGGREGATES).where(filter=FieldFilter("period_type", "==", "yearly"))
    parts = []
    years = []
    for snap in query.stream():
        report.documents_read += 1
        parts.append(snap.to_dict() or {})
        years.append(snap.id[len("yearly_") :])
    if not parts:
        return report
    start = min(p["period_start"] for p in parts)
    end = max(p["period_end"] for p in parts)
    users = _users_of_years(db, sorted(years), report)
    _combine(
        db,
        period_id=ALL_TIME_ID,
        period_type="all_time",
        start=start,
        end=end,
        parts=parts,
        users=users,
        began=began,
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
