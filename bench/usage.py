"""usage-events throughput through the real push wiring, against raw batched writes.

10,000 usage events (``ctx.quick``: 1,000), 10 % of them duplicates of others, are
published to the emulator's ``usage-events`` topic and consumed by the function through its
push subscription. Checked: exactly the unique count of ``usage_logs`` and of deductions,
and every balance equal to its start minus its unique events. Compared with: writing the
very documents the metering produced (logs, transactions, postings, balances, daily
counters, analytics counters...) again, raw, in WriteBatches of 500, in the same run.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from typing import Any

from bench.common import BenchContext, Result, result
from devstack.demo import usage as demo_usage
from shared.atomic import chunked
from shared.clients import publisher_client

USERS = 200
START_CREDITS = 1_000
ENGINES = ("dalle_3_standard", "openai_chat_gpt4", "seddream_video", "openai_tts")


def _count(db: Any, collection: str) -> int:
    result_ = db.collection(collection).count().get()
    return int(result_[0][0].value)


def _wait_count(db: Any, collection: str, expected: int, timeout_s: float) -> float:
    """Seconds until ``collection`` holds ``expected`` documents (raises on timeout)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if _count(db, collection) >= expected:
            return time.perf_counter() - start
        time.sleep(0.25)
    raise RuntimeError(f"{collection} did not reach {expected} within {timeout_s}s")


def run(ctx: BenchContext) -> list[Result]:
    db = ctx.db
    total = 1_000 if ctx.quick else 10_000
    duplicates = total // 10
    unique = total - duplicates
    rng = random.Random(7)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    demo_usage.seed(db, demo_usage_time())
    for chunk in chunked(range(USERS), 400):
        batch = db.batch()
        for i in chunk:
            batch.set(
                db.collection("users").document(f"bu-{i}"),
                {
                    "email": f"bu-{i}@example.com",
                    "credits_balance": START_CREDITS,
                    "total_credits_used": 0,
                    "tier": rng.choice(["FREE", "PRO"]),
                },
            )
        batch.commit()
    run_id = uuid.uuid4().hex[:8]
    messages = []
    for i in range(unique):
        messages.append(
            json.dumps(
                {
                    "request_id": f"bench-{run_id}-{i}",
                    "user_id": f"bu-{i % USERS}",
                    "engine_id": rng.choice(ENGINES),
                    "usage_units": rng.randint(1, 400) / 10,
                    "credits_used": 1,
                    "tokens": rng.randint(10, 2000),
                    "created_at": now,
                }
            ).encode()
        )
    messages += rng.sample(messages, duplicates)
    rng.shuffle(messages)

    publisher = publisher_client()
    topic = publisher.topic_path(ctx.stack.config.project, "usage-events")
    start = time.perf_counter()
    futures = [publisher.publish(topic, data) for data in messages]
    for future in futures:
        future.result(timeout=120)
    publish_s = time.perf_counter() - start
    _wait_count(db, "usage_logs", unique, timeout_s=900)
    elapsed = time.perf_counter() - start
    # Let the duplicates still in flight drain, then check nothing was doubled.
    time.sleep(3)
    logged = _count(db, "usage_logs")
    deductions = _count(db, "credit_transactions")
    balances = sum(
        int((s.to_dict() or {}).get("credits_balance") or 0)
        for s in db.collection("users").stream()
    )
    exact = logged == unique and deductions == unique and balances == USERS * START_CREDITS - unique
    if not exact:
        raise RuntimeError(
            f"usage bench not exact: logs {logged}, deductions {deductions}, unique {unique}"
        )

    # Baseline: the same documents, written again raw in batches of 500.
    written: list[tuple[str, dict[str, Any]]] = []
    for coll in db.collections():
        if coll.id.startswith("raw_"):
            continue
        for snap in coll.stream():
            written.append((f"raw_{coll.id}", {**(snap.to_dict() or {}), "_id": snap.id}))
    raw_start = time.perf_counter()
    for group in chunked(written, 500):
        batch = db.batch()
        for coll_id, doc in group:
            batch.set(db.collection(coll_id).document(), doc)
        batch.commit()
    raw_s = time.perf_counter() - raw_start
    events_per_s = unique / elapsed
    raw_events_per_s = unique / raw_s
    return [
        result(
            "usage events metered/s (push wiring, 10% dups)",
            events_per_s,
            "events/s",
            "raw batched writes of the same docs",
            raw_events_per_s,
        ),
        result("usage events published/s", total / publish_s, "msgs/s"),
        result(
            "usage logs written (exactly the unique count)", logged, "docs", "unique events", unique
        ),
        result("documents stored per unique event", len(written) / unique, "docs"),
    ]


def demo_usage_time() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(days=1)
