"""Provider operations on the emulators, through the real Pub/Sub wiring and HTTP push."""

from __future__ import annotations

import base64
import json
import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from devstack.demo import providers as demo
from shared.clock import SystemClock
from shared.errors import Unavailable
from shared.providers.routing import Candidate, route
from shared.providers.service import (
    ALERTS,
    BREAKERS,
    HEALTH,
    MARKERS,
    QUOTAS,
    WINDOWS,
    ProviderEvent,
    history_from_doc,
    record_event,
    reset_quotas,
)
from shared.settings import override_settings
from tests.helpers import all_documents, wait_for

del SystemClock

NOW = datetime.now(UTC).replace(microsecond=0)
HOUR = NOW.replace(minute=0, second=0)  # events in the current quota window


def event(i: int, outcome: str = "success", provider: str = "openai", **extra: Any) -> dict:
    body = {
        "event_id": f"pe-{provider}-{i}",
        "provider": provider,
        "model_id": "gpt-4o" if provider == "openai" else "claude-sonnet-4",
        "task_type": "LLM",
        "outcome": outcome,
        "latency_ms": 100 + i,
        "tokens": 1000,
        "cost_usd": 0.012,
        "error": None if outcome == "success" else f"upstream {i}",
        "occurred_at": (HOUR + timedelta(seconds=i)).isoformat(),
    }
    body.update(extra)
    return body


def publish(stack, body: dict | bytes) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    stack.publish("provider-events", data)


def push(stack, body: dict | bytes, message_id: str = "m-1") -> httpx.Response:
    """POST a Pub/Sub push envelope to the function, as the subscription does."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    envelope = {
        "message": {
            "data": base64.b64encode(data).decode(),
            "messageId": message_id,
            "publishTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
        "subscription": "projects/demo-test/subscriptions/provider-events-push",
    }
    return httpx.post(f"{stack.base_url}/provider-events", json=envelope, timeout=30)


def markers(db) -> int:
    return len(list(db.collection(MARKERS).stream()))


def doc(db, coll: str, doc_id: str) -> dict[str, Any]:
    return db.collection(coll).document(doc_id).get().to_dict() or {}


def provider_state(db, provider: str) -> dict[str, Any]:
    """Everything the events decide for one provider (alerts: the live ones)."""
    alerts = {
        s.id: {k: v for k, v in (s.to_dict() or {}).items() if k != "acknowledged"}
        for s in db.collection(ALERTS).stream()
        if not (s.to_dict() or {}).get("context", {}).get("retracted")
    }
    quotas = {s.id: s.to_dict() for s in db.collection(QUOTAS).stream()}
    return {
        "health": doc(db, HEALTH, provider),
        "breaker": doc(db, BREAKERS, provider),
        "window": doc(db, WINDOWS, provider),
        "quotas": quotas,
        "alerts": alerts,
    }


def test_events_through_pubsub_open_the_breaker_count_quotas_and_alert(db, stack) -> None:
    demo.seed(db, NOW)
    for i in range(5):
        publish(stack, event(i, "failure" if i else "success"))
    publish(stack, event(5, "timeout"))
    wait_for(lambda: markers(db) == 6)
    health = doc(db, HEALTH, "openai")
    breaker = doc(db, BREAKERS, "openai")
    assert breaker["state"] == "open"
    assert breaker["opened_at"] is not None and health["circuit_breaker_open"] is True
    assert health["status"] == "unavailable"
    assert health["consecutive_failures"] == 5 and health["error_count_24h"] == 5
    assert health["success_rate"] == pytest.approx(1 / 6, abs=1e-6)
    requests = doc(db, QUOTAS, "openai_gpt-4o_requests")
    tokens = doc(db, QUOTAS, "openai_gpt-4o_tokens")
    cost = doc(db, QUOTAS, "openai_gpt-4o_cost")
    assert (requests["used"], tokens["used"], cost["used"]) == (6, 6000, 72_000)
    assert requests["remaining"] == requests["limit"] - 6
    alerts = [s.to_dict() for s in db.collection(ALERTS).stream()]
    opened = [a for a in alerts if a["type"] == "CIRCUIT_BREAKER_OPENED"]
    assert len(opened) == 1
    assert opened[0]["severity"] == "critical" and opened[0]["acknowledged"] is False
    assert opened[0]["resolved_at"] is None and opened[0]["provider"] == "openai"
    assert opened[0]["context"]["circuit_state"] == "open"


def test_duplicates_and_reordering_through_pubsub_give_the_same_state(db, stack) -> None:
    rng = random.Random(7)
    outcomes = ["success"] * 3 + ["failure"] * 3 + ["success"] * 2 + ["failure"] * 2
    outcomes += ["success"] * 10
    stream = [event(i, o, provider="anthropic") for i, o in enumerate(outcomes)]
    with override_settings(provider_thresholds={"failure_threshold": 3, "cooldown_s": 5}):
        demo.seed(db, NOW)
        for body in stream:
            record_event(db, ProviderEvent.model_validate(body), now=datetime.now(UTC))
        expected = provider_state(db, "anthropic")
        assert expected["breaker"]["state"] == "closed"
        assert expected["breaker"]["opened_count"] == 1

        stack.wipe()
        demo.seed(db, NOW)
        shuffled = stream + rng.sample(stream, 8)
        rng.shuffle(shuffled)
        for body in shuffled:
            publish(stack, body)
        wait_for(lambda: markers(db) == len(stream))
        got = provider_state(db, "anthropic")
        for key in expected:
            assert got[key] == expected[key], key


def test_bad_events_are_acknowledged_and_write_nothing(db, stack) -> None:
    demo.seed(db, NOW)
    before = all_documents(db)
    missing_provider = event(1)
    del missing_provider["provider"]
    bad: list[dict | bytes] = [
        b"not json",
        b"\xff\xfe",
        event(2, "exploded"),
        event(3, latency_ms=-1),
        missing_provider,
        event(4, event_id="a/b"),
        event(5, occurred_at=(NOW + timedelta(hours=2)).isoformat()),
        event(6, tokens=-5),
        ["a", "list"],  # type: ignore[list-item]
    ]
    for i, body in enumerate(bad):
        assert push(stack, body, message_id=f"bad-{i}").status_code < 300
        publish(stack, body if isinstance(body, bytes) else json.dumps(body).encode())
    # A good event published after them: once it is in, the bad ones were delivered too.
    publish(stack, event(99))
    wait_for(lambda: markers(db) == 1)
    after = all_documents(db)
    changed = {p for p in set(after) | set(before) if after.get(p) != before.get(p)}
    assert changed == {
        "processed_provider_events/pe-openai-99",
        "provider_event_windows/openai",
        "model_provider_health/openai",
        "circuit_breakers/openai",
        "model_quotas/openai_gpt-4o_requests",
        "model_quotas/openai_gpt-4o_tokens",
        "model_quotas/openai_gpt-4o_cost",
    }


def test_eight_concurrent_deliveries_on_one_provider_count_exactly(db, stack) -> None:
    demo.seed(db, NOW)
    bodies = [event(i, "failure" if i % 10 == 0 else "success") for i in range(64)]
    work = bodies + bodies[:16]  # 16 redeliveries, concurrent with the originals
    random.Random(3).shuffle(work)
    errors: list[int] = []

    def deliver(k: int) -> None:
        for j, body in enumerate(work[k::8]):
            response = push(stack, body, message_id=f"c-{k}-{j}")
            if response.status_code >= 300:
                errors.append(response.status_code)

    threads = [threading.Thread(target=deliver, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert markers(db) == 64
    assert doc(db, QUOTAS, "openai_gpt-4o_requests")["used"] == 64
    assert doc(db, QUOTAS, "openai_gpt-4o_tokens")["used"] == 64_000
    window = doc(db, WINDOWS, "openai")
    assert len(history_from_doc(window).tail) == 64
    assert sum(window["error_buckets"].values()) == 7
    health = doc(db, HEALTH, "openai")
    assert health["error_count_24h"] == 7
    assert health["consecutive_successes"] == 3  # events 61..63 after the failure at 60


def test_cron_reset_quotas_resets_windows_resolves_alerts_and_half_opens(db, stack) -> None:
    demo.seed(db, NOW)
    hour = NOW.replace(minute=0, second=0) - timedelta(hours=3)
    with override_settings(provider_thresholds={"failure_threshold": 2, "cooldown_s": 60}):
        ref = db.collection(QUOTAS).document("openai_gpt-4o_requests")
        ref.update({"limit": 2, "reset_at": hour + timedelta(hours=1)})
        for i in range(2):
            body = event(i, "failure", occurred_at=(hour + timedelta(seconds=i)).isoformat())
            record_event(db, ProviderEvent.model_validate(body), now=NOW)
        record_event(db, ProviderEvent.model_validate(event(5, occurred_at=(
            hour + timedelta(seconds=5)).isoformat())), now=NOW)  # fmt: skip
        assert doc(db, QUOTAS, "openai_gpt-4o_requests")["status"] == "exhausted"
        assert doc(db, BREAKERS, "openai")["state"] == "open"
        quota_alerts = [s for s in db.collection(ALERTS).stream() if "QUOTA" in s.id]
        assert len(quota_alerts) == 3  # warning, critical and exhausted at 100 %

        at = hour + timedelta(hours=2)
        stack.publish("cron-reset-quotas", json.dumps({"at": at.isoformat()}).encode())

        def reset() -> bool:
            q = doc(db, QUOTAS, "openai_gpt-4o_requests")
            return q["used"] == 0 and doc(db, BREAKERS, "openai")["state"] == "half_open"

        wait_for(reset)
        q = doc(db, QUOTAS, "openai_gpt-4o_requests")
        assert q["status"] == "available" and q["remaining"] == 2
        assert q["reset_at"] == at + timedelta(hours=1)
        for s in db.collection(ALERTS).stream():
            if "QUOTA" in s.id:
                assert s.get("resolved_at") == hour + timedelta(hours=1)
        snapshot = all_documents(db)
        # A rerun for the same instant changes nothing.
        stack.publish("cron-reset-quotas", json.dumps({"at": at.isoformat()}).encode())
        # A sentinel on another provider, published after the rerun: once it is counted, the
        # rerun has been delivered too; it may change only the sentinel's own documents.
        publish(stack, event(50, provider="google", model_id="gemini-2.0-flash"))
        wait_for(lambda: markers(db) == 4)
        again = all_documents(db)
        changed = {p for p in again if again[p] != snapshot.get(p)}
        assert changed and all("google" in p for p in changed), changed
        assert reset_quotas(db, at).quotas_reset == 0


def test_route_scores_records_the_decision_and_honours_pipeline_config(db) -> None:
    demo.seed(db, NOW)
    db.collection(BREAKERS).document("openai").set(
        {"provider": "openai", "state": "open", "opened_at": NOW, "cooldown_s": 60}
    )
    candidates = [
        Candidate("openai", "gpt-4o", Decimal("0.010"), 1000),
        Candidate("anthropic", "claude-sonnet-4", Decimal("0.015"), 1000),
        Candidate("google", "gemini-2.0-flash", Decimal("0.002"), 1000),
    ]
    decision = route(db, "LLM", candidates, job_id="job-1", now=NOW)
    assert decision.selected_model == "gemini-2.0-flash"
    assert decision.fallback_chain == ["claude-sonnet-4"]
    stored = doc(db, "routing_decisions", decision.decision_id or "")
    assert set(stored) == {
        "job_id", "task_type", "selected_model", "score", "selection_reason",
        "estimated_cost", "fallback_chain", "all_candidates", "timestamp",
    }  # fmt: skip
    assert stored["all_candidates"][0]["model"] == "gpt-4o"
    assert stored["all_candidates"][0]["score"] == 0.0
    assert "circuit breaker open" in stored["all_candidates"][0]["reason"]
    db.collection("pipeline_config").document("global").update({"model_routing_enabled": False})
    decision = route(db, "LLM", candidates, now=NOW)
    assert decision.selected_model == "gpt-4o" and "disabled" in decision.selection_reason
    db.collection("pipeline_config").document("global").update(
        {"model_routing_enabled": True, "record_routing_decisions": False}
    )
    with pytest.raises(Unavailable):
        route(db, "LLM", candidates[:1], now=NOW)
    assert len(list(db.collection("routing_decisions").stream())) == 2
