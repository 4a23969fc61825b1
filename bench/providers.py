"""Provider events through the real wiring (publish -> push -> function -> Firestore).

5,000 events (``--quick``: 600) for 3 providers, so every event lands on one of three hot
documents, plus redeliveries of 5 % of them; then the exact counters are checked. The
baseline is the raw client rate of the same reads and writes (no preconditions, no
contention) measured in the same run, with 8 writers.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc

from bench import raw_push
from bench.common import BenchContext, Result, latency_results, percentile, result
from devstack.demo import providers as demo
from devstack.server import Watch
from shared.providers.service import (
    HEALTH,
    MARKERS,
    QUOTAS,
    WINDOWS,
    ProviderEvent,
    history_from_doc,
    record_event,
)

WRITERS = 8
PROVIDERS = (("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4"), ("google", "gemini-2.0-flash"))


def _events(n: int, hour: datetime, run_id: str) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        provider, model = PROVIDERS[i % 3]
        out.append(
            {
                "event_id": f"bench-{run_id}-{i}",
                "provider": provider,
                "model_id": model,
                "task_type": "LLM",
                "outcome": "failure" if i % 150 < 3 else "success",  # 1 in 50 per provider
                "latency_ms": 200 + i % 300,
                "tokens": 100 + i % 7,
                "cost_usd": "0.0015",
                "error": None,
                "occurred_at": (hour + timedelta(milliseconds=5 * i)).isoformat(),
            }
        )
    return out


def _count(db: Any, coll: str) -> int:
    return int(db.collection(coll).count().get()[0][0].value)


def _raw_rate(db: Any, n: int) -> tuple[float, list[float]]:
    """8 writers: read 5 documents, commit one batch of 7 writes (their own documents)."""
    latencies: list[float] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        refs = [db.collection("raw_provider").document(f"{w}-{k}") for k in range(5)]
        for i in range(n):
            start = time.perf_counter()
            list(db.get_all(refs))
            batch = db.batch()
            batch.create(db.collection("raw_markers").document(f"{w}-{i}"), {"i": i})
            for k, ref in enumerate(refs):
                batch.set(ref, {"i": i, "k": k, "tail": list(range(20))})
            batch.set(db.collection("raw_health").document(str(w)), {"i": i})
            batch.commit()
            with lock:
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(writer, range(WRITERS)))
    return WRITERS * n / (time.perf_counter() - start), latencies


def _serve_raw_push(ctx: BenchContext) -> str:
    """Serve ``bench.raw_push`` on the stack with its own push subscription; its topic."""
    import functions_framework
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    from devstack.wiring import ensure_topic
    from shared.clients import publisher_client

    project, name = ctx.stack.config.project, "bench-raw-push"
    dispatcher = ctx.stack.server.dispatcher
    if name not in dispatcher.apps:
        source = Path(__file__).with_name("raw_push.py")
        app = functions_framework.create_app("raw_push", str(source), "cloudevent")
        dispatcher.add_event_function(name, app)
    topic = ensure_topic(publisher_client(), project, name)
    subscriber = pubsub_v1.SubscriberClient()
    try:
        with contextlib.suppress(gexc.AlreadyExists):
            subscriber.create_subscription(
                request={
                    "name": subscriber.subscription_path(project, f"{name}-push"),
                    "topic": topic,
                    "push_config": {"push_endpoint": f"{ctx.stack.base_url}/{name}"},
                    "ack_deadline_seconds": 60,
                }
            )
    finally:
        subscriber.close()
    return topic


def _push(
    ctx: BenchContext,
    topic: str,
    function: str,
    bodies: list[bytes],
    done: Callable[[], int],
    want: int,
    timeout_s: float,
) -> tuple[float, Watch]:
    """Publish ``bodies``, wait until ``done()`` reaches ``want``; (seconds, the watch of
    ``function``'s deliveries meanwhile)."""
    from shared.clients import publisher_client

    publisher = publisher_client()
    watch = ctx.stack.server.dispatcher.watch(function)
    start = time.perf_counter()
    futures = [publisher.publish(topic, body) for body in bodies]
    message_ids = [str(f.result(timeout=60)) for f in futures]
    deadline = time.monotonic() + timeout_s
    while (got := done()) < want:
        if time.monotonic() > deadline:
            raise AssertionError(f"{function}: only {got} of {want} handled")
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    watch.stop()
    # Every message acknowledged (the redeliveries of counted events drained) before checks.
    dispatcher = ctx.stack.server.dispatcher
    while len(dispatcher.acked(function, message_ids)) < len(message_ids):
        if time.monotonic() > deadline:
            raise AssertionError(f"{function}: messages still not acknowledged")
        time.sleep(0.2)
    return seconds, watch


def run(ctx: BenchContext) -> list[Result]:
    db = ctx.db
    n = 600 if ctx.quick else 5000
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    demo.seed(db, now)
    run_id = uuid.uuid4().hex[:6]

    raw_rate, raw_lat = _raw_rate(db, 20 if ctx.quick else 60)

    # 0. The raw work through the same push path (the emulator's push delivery included).
    raw_topic = _serve_raw_push(ctx)
    r = 400 if ctx.quick else 1600
    raw_bodies = [json.dumps({"w": i % WRITERS, "i": i}).encode() for i in range(r)]
    raw_push_s, raw_watch = _push(
        ctx, raw_topic, "bench-raw-push", raw_bodies, lambda: _count(db, raw_push.MARKERS), r,
        300 if ctx.quick else 900,
    )  # fmt: skip
    raw_push_rate = r / raw_push_s

    # 1. Through the real wiring, with 5 % redelivered.
    events = _events(n, hour, run_id)
    rng = random.Random(5)
    stream = events + rng.sample(events, n // 20)
    rng.shuffle(stream)
    from shared.clients import publisher_client

    topic = publisher_client().topic_path(ctx.stack.config.project, "provider-events")
    wired_s, watch = _push(
        ctx, topic, "provider-events", [json.dumps(e).encode() for e in stream],
        lambda: _count(db, MARKERS), n, 300 if ctx.quick else 900,
    )  # fmt: skip
    _check_counters(db, events)

    # 2. 8 concurrent deliveries on ONE provider, straight into the service.
    m = 80 if ctx.quick else 400
    hot = [
        {**e, "event_id": f"hot-{run_id}-{i}", "provider": "elevenlabs",
         "model_id": "eleven_multilingual_v2"}
        for i, e in enumerate(_events(m, hour, run_id))
    ]  # fmt: skip
    latencies: list[float] = []
    lock = threading.Lock()

    def deliver(k: int) -> None:
        for body in hot[k::WRITERS]:
            t0 = time.perf_counter()
            record_event(db, ProviderEvent.model_validate(body), now=datetime.now(UTC))
            with lock:
                latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(deliver, range(WRITERS)))
    hot_s = time.perf_counter() - start
    used = db.collection(QUOTAS).document("elevenlabs_eleven_multilingual_v2_requests").get()
    assert used.get("used") == m, f"hot provider counted {used.get('used')} of {m}"

    push_note = "Pub/Sub emulator push"
    return [
        result("raw client read+7-write batch rate, 8 writers", raw_rate, "ops/s"),
        result(
            f"raw read+7-write batch via {push_note} ({r} messages)",
            raw_push_rate,
            "ops/s",
            "raw client read+7-write batch rate",
            raw_rate,
        ),
        result(
            f"provider events via Pub/Sub push, 3 hot providers ({n} + {n // 20} dup)",
            n / wired_s,
            "events/s",
            "raw client read+7-write batch rate",
            raw_rate,
        ),
        result(
            f"provider events via {push_note} vs the raw batch via the same push",
            n / wired_s,
            "events/s",
            f"raw read+7-write batch via {push_note}",
            raw_push_rate,
        ),
        result(
            "push deliveries in flight at once, provider events (max)",
            watch.peak,
            "deliveries",
            "raw batch via push (max)",
            raw_watch.peak,
        ),
        result(
            "push deliveries in flight, provider events (time average)",
            watch.mean_inflight(),
            "deliveries",
            "raw batch via push (time average)",
            raw_watch.mean_inflight(),
        ),
        *latency_results(
            "provider event handling under push p{pct}",
            watch.durations,
            "raw batch handling under push p{pct}",
            raw_watch.durations,
        ),
        result(
            "provider events, 8 concurrent on ONE provider (service)",
            m / hot_s,
            "events/s",
            "raw client read+7-write batch rate",
            raw_rate,
        ),
        result("one-provider event latency p50", percentile(latencies, 50) * 1000, "ms",
               "raw p50", percentile(raw_lat, 50) * 1000, higher_is_better=False),
        result("one-provider event latency p99", percentile(latencies, 99) * 1000, "ms",
               "raw p99", percentile(raw_lat, 99) * 1000, higher_is_better=False),
    ]  # fmt: skip


def _check_counters(db: Any, events: list[dict[str, Any]]) -> None:
    """Every counter equals what the distinct events say, exactly."""
    for provider, model in PROVIDERS:
        mine = [e for e in events if e["provider"] == provider]
        failures = sum(e["outcome"] != "success" for e in mine)
        requests = db.collection(QUOTAS).document(f"{provider}_{model}_requests").get()
        tokens = db.collection(QUOTAS).document(f"{provider}_{model}_tokens").get()
        cost = db.collection(QUOTAS).document(f"{provider}_{model}_cost").get()
        assert requests.get("used") == len(mine), (provider, requests.get("used"), len(mine))
        assert tokens.get("used") == sum(e["tokens"] for e in mine), provider
        assert cost.get("used") == 1500 * len(mine), provider
        health = db.collection(HEALTH).document(provider).get()
        assert health.get("error_count_24h") == failures, (provider, health.get("error_count_24h"))
        window = history_from_doc(db.collection(WINDOWS).document(provider).get().to_dict())
        assert len(window.tail) == min(len(mine), 200), provider
        assert health.get("status") == "healthy", (provider, health.get("status"))
