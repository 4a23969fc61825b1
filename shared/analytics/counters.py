"""Write-time usage counters, added to the same atomic unit as the usage log they count.

``count_usage`` is called by the usage-events handler exactly once for every new usage log,
inside the unit that creates the log, so a counter moves exactly when its log is written
(and never twice: a retried unit re-runs from scratch and commits once). The counter is
a blind ``merge`` of ``firestore.Increment`` values of integers (micro-USD, counts), so
it never conflicts and sums are exact.

ONE document per usage log: ``usage_user_periods/{YYYY-MM}_{user_id}``, one user's usage
over a month, which also holds each day under ``days.{DD}`` (read by the hourly loss
scan and the daily rollup) and the day's date in ``active_days.{DD}``, by which the daily
rollup finds the day's users (one equality on an automatically indexed field; ``days``
itself is exempt from indexing). Everything else is derived from these month documents
by the schedules (``rollups``), not written per event:
- the day's app-wide totals: the sum of the day's per-user entries (the app-wide
  ``usage_day_shards/{YYYY-MM-DD}_{n}`` documents, one more write per event, are no
  longer written; retention deletes the ones left);
- one user's year (``usage_user_periods/{YYYY}_{user_id}``): written by the monthly
  rollup from the user's month documents, through the last month rolled up (two writes
  per event, the year and the all-time ``all_{user_id}`` documents, are no longer made;
  ``all_`` documents are no longer read);
- a day used to have its own ``usage_user_days/{YYYY-MM-DD}_{user_id}`` document with the
  same tallies as ``days.{DD}``: no longer written (the rollup still reads the ones written
  before, see ``rollups.rollup_day``).
A user's month document is exactly as hot as the user's balance, which the same unit
writes. It holds ``n``, ``cost_micros``, ``revenue_micros`` and the same three under
``plans.{plan}`` and ``engines.{engine_id}``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from google.cloud import firestore

from shared.analytics.rules import to_micros
from shared.atomic import Unit
from shared.clock import ensure_utc

USER_DAYS = "usage_user_days"
USER_PERIODS = "usage_user_periods"
#: The month document's map of the days the user was active: ``{DD: "YYYY-MM-DD"}``.
ACTIVE_DAYS = "active_days"
#: No longer written (see the module docstring); retention deletes what is left.
DAY_SHARDS_COLLECTION = "usage_day_shards"
UNKNOWN = "unknown"


def user_day_id(day: date, user_id: str) -> str:
    return f"{day.isoformat()}_{user_id}"


def day_key(day: date) -> str:
    """The key of ``day`` under a month document's ``days`` map (``DD``)."""
    return f"{day.day:02d}"


def user_period_id(period: str, user_id: str) -> str:
    return f"{period}_{user_id}"


def month_of(day: date) -> str:
    """The month period key (``YYYY-MM``) of a day."""
    return f"{day:%Y-%m}"


def year_of_month(month: str) -> str:
    return month[:4]


def is_month_period(period: object) -> bool:
    """Whether a ``usage_user_periods`` period is a month (``YYYY-MM``), not a year."""
    return isinstance(period, str) and len(period) == 7 and period[4] == "-"


def log_day(log: dict[str, Any]) -> date:
    created = log.get("created_at")
    if not isinstance(created, datetime):
        raise ValueError("a usage log needs a created_at datetime")
    return ensure_utc(created).date()


def log_amounts(log: dict[str, Any]) -> tuple[int, int]:
    """(cost, revenue) of one log in micro-USD, rounded half-even once (the precision rule)."""
    return to_micros(log.get("real_cost_usd")), to_micros(log.get("revenue_estimated_usd"))


def _tally(cost: int, revenue: int) -> dict[str, Any]:
    return {
        "n": firestore.Increment(1),
        "cost_micros": firestore.Increment(cost),
        "revenue_micros": firestore.Increment(revenue),
    }


def counter_writes(log: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(collection, document id, merge data) of every counter one usage log moves: its
    user's month document, with the day under ``days.{DD}``."""
    user_id = str(log.get("user_id") or "")
    if not user_id:
        raise ValueError("a usage log needs a user_id")
    day = log_day(log)
    plan = str(log.get("subscription_plan") or UNKNOWN)
    engine = str(log.get("engine_id") or UNKNOWN)
    cost, revenue = log_amounts(log)

    def breakdown() -> dict[str, Any]:
        # A fresh dict each time: a unit merges later writes into these in place.
        return {
            **_tally(cost, revenue),
            "plans": {plan: _tally(cost, revenue)},
            "engines": {engine: _tally(cost, revenue)},
        }

    month = month_of(day)
    return [
        (
            USER_PERIODS,
            user_period_id(month, user_id),
            {
                **breakdown(),
                "user_id": user_id,
                "period": month,
                "days": {day_key(day): breakdown()},
                ACTIVE_DAYS: {day_key(day): day.isoformat()},
            },
        )
    ]


def count_usage(unit: Unit, log: dict[str, Any]) -> None:
    """Add the counter updates for one new ``usage_logs`` document to ``unit``."""
    for collection, doc_id, data in counter_writes(log):
        unit.merge(unit.db.collection(collection).document(doc_id), data)


def merged_counter_writes(
    logs: list[dict[str, Any]],
) -> dict[tuple[str, str], dict[str, Any]]:
    """The counter writes of many logs summed per document (backfills, benchmarks).

    Committing these merges has the same effect as ``count_usage`` once per log.
    """
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for log in logs:
        for collection, doc_id, data in counter_writes(log):
            key = (collection, doc_id)
            if key in merged:
                _add_into(merged[key], data)
            else:
                merged[key] = data
    return merged


def _add_into(into: dict[str, Any], data: dict[str, Any]) -> None:
    for name, value in data.items():
        current = into.get(name)
        if isinstance(value, dict) and isinstance(current, dict):
            _add_into(current, value)
        elif isinstance(value, firestore.Increment) and isinstance(current, firestore.Increment):
            into[name] = firestore.Increment(current.value + value.value)
        else:
            into[name] = value
