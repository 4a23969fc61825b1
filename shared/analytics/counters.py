"""Write-time usage counters, added to the same atomic unit as the usage log they count.

``count_usage`` is called by the usage-events handler exactly once for every new usage log,
inside the unit that creates the log, so a counter moves exactly when its log is written
(and never twice: a retried unit re-runs from scratch and commits once). Every counter is
a blind ``merge`` of ``firestore.Increment`` values of integers (micro-USD, counts), so
counters never conflict and sums are exact.

Documents (one key per group, so the rollups read O(groups), never O(logs)):
- ``usage_user_periods/{period}_{user_id}`` with period ``YYYY-MM``, ``YYYY`` and ``all``:
  one user's usage over a month, a year and all time (distinct-user figures of the
  monthly, yearly and all-time aggregates); the month document also holds each day under
  ``days.{DD}`` (read by the hourly loss scan and the daily rollup) and the day's date in
  ``active_days.{DD}``, by which the daily rollup finds the day's users (one equality on
  an automatically indexed field; ``days`` itself is exempt from indexing). A day used
  to have its own ``usage_user_days/{YYYY-MM-DD}_{user_id}`` document with the same
  tallies: one more write per usage event, no longer made (the rollup still reads the
  ones written before, see ``rollups.rollup_day``);
- ``usage_day_shards/{YYYY-MM-DD}_{shard}``: the day's totals, spread over
  ``DAY_SHARDS`` documents by a hash of the request id because every log of the day
  touches them (the only app-wide counter); the rollup reconciles them with the
  per-user documents and with the logs themselves, and the late-usage recheck reads them
  instead of every user's day. ``DAY_SHARDS`` is sized from the production load model of
  docs/benchmarks.md: 1,000 usage events/s over 1,024 shards is under one sustained write
  per second on each. Readers query the day's shards by their ``day`` field, so a change
  of the count never strands a shard.
Per-user documents are exactly as hot as the user's balance, which the same unit writes.
Each document holds ``n``, ``cost_micros``, ``revenue_micros`` and (per-user documents)
the same three under ``plans.{plan}`` and ``engines.{engine_id}``.
"""

from __future__ import annotations

import hashlib
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
DAY_SHARDS_COLLECTION = "usage_day_shards"
DAY_SHARDS = 1024
UNKNOWN = "unknown"


def user_day_id(day: date, user_id: str) -> str:
    return f"{day.isoformat()}_{user_id}"


def day_key(day: date) -> str:
    """The key of ``day`` under a month document's ``days`` map (``DD``)."""
    return f"{day.day:02d}"


def user_period_id(period: str, user_id: str) -> str:
    return f"{period}_{user_id}"


def day_shard_id(day: date, shard: int) -> str:
    return f"{day.isoformat()}_{shard:02d}"


def shard_of(key: str) -> int:
    """A stable shard number for a request (independent of the process's hash seed)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big") % DAY_SHARDS


def periods_of(day: date) -> tuple[str, str, str]:
    """The month, year and all-time period keys a day belongs to."""
    return f"{day:%Y-%m}", f"{day:%Y}", "all"


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
    """(collection, document id, merge data) of every counter one usage log moves."""
    user_id = str(log.get("user_id") or "")
    if not user_id:
        raise ValueError("a usage log needs a user_id")
    day = log_day(log)
    plan = str(log.get("subscription_plan") or UNKNOWN)
    engine = str(log.get("engine_id") or UNKNOWN)
    cost, revenue = log_amounts(log)
    key = str(log.get("request_id") or f"{user_id}:{log.get('created_at')}")

    def per_user() -> dict[str, Any]:
        # A fresh dict each time: a unit merges later writes into these in place.
        return {
            **_tally(cost, revenue),
            "user_id": user_id,
            "plans": {plan: _tally(cost, revenue)},
            "engines": {engine: _tally(cost, revenue)},
        }

    month, year, all_time = periods_of(day)
    # The month document also keeps each day (``days.DD``, its date under
    # ``active_days.DD`` for the daily rollup's query), so the hourly loss scan reads at
    # most two documents per user for its 30-day window and the daily rollup one per
    # active user.
    day_entry = per_user()
    del day_entry["user_id"]
    writes = [
        (
            USER_PERIODS,
            user_period_id(month, user_id),
            {
                **per_user(),
                "period": month,
                "days": {day_key(day): day_entry},
                ACTIVE_DAYS: {day_key(day): day.isoformat()},
            },
        )
    ]
    for period in (year, all_time):
        writes.append(
            (USER_PERIODS, user_period_id(period, user_id), {**per_user(), "period": period})
        )
    writes.append(
        (
            DAY_SHARDS_COLLECTION,
            day_shard_id(day, shard_of(key)),
            {**_tally(cost, revenue), "day": day.isoformat()},
        )
    )
    return writes


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
