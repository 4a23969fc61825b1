"""Analytics bench: the daily rollup against streaming the day's logs once with select().

Workload: N usage logs in one UTC day (10,000 and 100,000; 2,000 and 20,000 with --quick)
from a fixed population of users, written with batched writes (500 per batch) together
with the counters ``count_usage`` would have written for them (summed per document).
Figures, all from this run on this emulator:
- the naive baseline: stream the day's logs once with ``select()`` of the fields a
  rollup needs; the daily rollup of the same day; the ratio baseline / rollup;
- billed reads of the rollup (documents + one per 1,000 entries a count() scans) for the
  small and the large day: the ratio large / small;
- the 1,000,000-log day, extrapolated: the rollup's parts that grow with logs (the
  completeness count()) scaled 10x from the large day, plus the per-user counter reads
  at the large day's measured rate for 10x the users (an upper bound: active users grow
  more slowly than logs).
"""

from __future__ import annotations

import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from bench.common import BenchContext, Result, result
from shared.analytics.counters import merged_counter_writes
from shared.analytics.jobs import daily_rollup
from shared.analytics.rollups import RollupReport, _stored_logs
from shared.analytics.rules import day_start

ENGINES = {
    "dalle_3_standard": "0.04",
    "seddream_video": "0.12",
    "openai_chat_gpt4": "0.03",
    "openai_tts": "0.015",
    "dalle_3_hd": "0.08",
}
PLANS = {"free": "0", "pro": "2.5", "ultra": "2"}
FIELDS = ["user_id", "subscription_plan", "engine_id", "real_cost_usd", "revenue_estimated_usd"]


def _logs(rng: random.Random, day: date, count: int, users: int) -> list[dict[str, Any]]:
    start = day_start(day)
    engines = sorted(ENGINES)
    plans = sorted(PLANS)
    out = []
    for i in range(count):
        engine = engines[rng.randrange(len(engines))]
        plan = plans[i % len(plans)]
        units = Decimal(rng.randint(1, 500)) / 10
        cost = Decimal(ENGINES[engine]) * units
        revenue = cost * Decimal(PLANS[plan])
        out.append(
            {
                "user_id": f"bench-user-{rng.randrange(users)}",
                "subscription_plan": plan,
                "ai_type": "image",
                "engine_id": engine,
                "usage_units": float(units),
                "credits_used": 1,
                "created_at": start + timedelta(microseconds=rng.randrange(86_400_000_000)),
                "real_cost_usd": float(cost),
                "revenue_estimated_usd": float(revenue),
                "profit_usd": float(revenue - cost),
                "profit_margin_percent": float(
                    ((revenue - cost) / revenue * 100).quantize(Decimal("0.01"))
                )
                if revenue
                else 0.0,
                "pricing_source": "engine_default",
                "request_id": f"bench-{uuid.UUID(int=rng.getrandbits(128))}",
            }
        )
    return out


def _write(db: firestore.Client, logs: list[dict[str, Any]]) -> None:
    """Logs in batches of 500, then the counters they move (summed per document)."""
    coll = db.collection("usage_logs")

    def commit(chunk: list[dict[str, Any]]) -> None:
        batch = db.batch()
        for log in chunk:
            batch.create(coll.document(str(uuid.uuid5(uuid.NAMESPACE_URL, log["request_id"]))), log)
        batch.commit()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(commit, [logs[i : i + 500] for i in range(0, len(logs), 500)]))
    counters = list(merged_counter_writes(logs).items())
    for i in range(0, len(counters), 500):
        batch = db.batch()
        for (collection, doc_id), data in counters[i : i + 500]:
            batch.set(db.collection(collection).document(doc_id), data, merge=True)
        batch.commit()


def _stream_once(db: firestore.Client, day: date) -> tuple[float, int]:
    start = day_start(day)
    query = (
        db.collection("usage_logs")
        .where(filter=FieldFilter("created_at", ">=", start))
        .where(filter=FieldFilter("created_at", "<", start + timedelta(days=1)))
        .select(FIELDS)
    )
    began = time.perf_counter()
    count = sum(1 for _ in query.stream())
    return time.perf_counter() - began, count


def _rollup(db: firestore.Client, day: date) -> tuple[float, RollupReport]:
    """The scheduled job's whole service: token history, the day, the late-data re-check."""
    began = time.perf_counter()
    report = daily_rollup(db, day, now=lambda: datetime.now(UTC))
    return time.perf_counter() - began, report


def run(ctx: BenchContext) -> list[Result]:
    db = ctx.db
    rng = random.Random(6)
    small_n, large_n = (2_000, 20_000) if ctx.quick else (10_000, 100_000)
    users = 500 if ctx.quick else 2_000
    small_day, large_day = date(2026, 1, 4), date(2026, 1, 5)
    out: list[Result] = []

    began = time.perf_counter()
    _write(db, _logs(rng, small_day, small_n, users))
    large = _logs(rng, large_day, large_n, users)
    _write(db, large)
    write_s = time.perf_counter() - began
    out.append(
        result(
            f"analytics: write {small_n + large_n} logs + counters",
            (small_n + large_n) / write_s,
            "logs/s",
        )
    )

    _rollup(db, date(2026, 1, 3))  # warm-up (an empty day): the emulator's first queries
    small_s, small_report = _rollup(db, small_day)
    stream_s, streamed = _stream_once(db, large_day)
    assert streamed == large_n, (streamed, large_n)
    large_s, large_report = _rollup(db, large_day)
    doc = db.collection("profit_aggregates").document(f"daily_{large_day:%Y_%m_%d}").get()
    assert doc.get("total_generations") == large_n
    assert doc.get("data_completeness_percent") == 100.0

    out.append(
        result(
            f"analytics: daily rollup, {large_n} logs",
            large_s,
            "s",
            f"stream {large_n} logs once with select()",
            stream_s,
            higher_is_better=False,
        )
    )
    out.append(
        result(
            f"analytics: rollup reads, {large_n} logs",
            large_report.reads,
            "reads",
            f"rollup reads, {small_n} logs",
            small_report.reads,
        )
    )
    out.append(result(f"analytics: daily rollup, {small_n} logs", small_s, "s"))

    # 1,000,000 logs: what grows with logs is the count() (the emulator scans the whole
    # collection for a filtered aggregation); what grows with users is the counter reads.
    count_began = time.perf_counter()
    _stored_logs(db, day_start(large_day), day_start(large_day) + timedelta(days=1), RollupReport())
    count_s = time.perf_counter() - count_began
    user_docs = max(1, large_report.documents_read)
    per_doc_s = max(0.0, large_s - count_s) / user_docs
    scale = 1_000_000 / large_n
    extrapolated = count_s * scale + per_doc_s * user_docs * scale
    out.append(result(f"analytics: completeness count(), {large_n} logs", count_s, "s"))
    out.append(
        result(
            "analytics: daily rollup, 1,000,000 logs (extrapolated)",
            extrapolated,
            "s",
            "Cloud Functions event limit",
            540.0,
            higher_is_better=False,
        )
    )
    return out
