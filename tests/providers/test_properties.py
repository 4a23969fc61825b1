"""Properties of the provider core over generated event sequences (hypothesis)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.providers.core import (
    BreakerState,
    HealthStatus,
    History,
    Observation,
    Outcome,
    Thresholds,
    admit,
    breaker_document,
    health_document,
)
from tests.providers.helpers import T0, small_thresholds

TH = small_thresholds(
    failure_rate_min_events=5,
    cooldown_s=20,
    health_min_events=3,
    history_max=10,
    window_max_calls=12,
)

step = st.tuples(
    st.sampled_from(["success", "success", "failure", "timeout", "tick"]),
    st.integers(min_value=0, max_value=25_000),  # gap in ms
    st.integers(min_value=0, max_value=15_000),  # latency in ms
)


def build(steps: list[tuple[str, int, int]]) -> list[Observation]:
    out, t = [], T0
    for i, (kind, gap_ms, latency) in enumerate(steps):
        t += timedelta(milliseconds=gap_ms)
        if kind == "tick":
            out.append(Observation(at=t, event_id=f"tick:{i:04d}"))
        else:
            out.append(
                Observation(
                    at=t,
                    event_id=f"e{i:04d}",
                    outcome=Outcome(kind),
                    latency_ms=float(latency),
                    error=None if kind == "success" else kind,
                )
            )
    return out


def merge(into: dict[str, Any], fields: dict[str, Any]) -> None:
    for k, v in fields.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            merge(into[k], v)
        else:
            into[k] = v


def feed(observations: list[Observation], th: Thresholds = TH):
    """Admit in the given order; return the history, admissions and the alert store."""
    history = History()
    store: dict[str, dict[str, Any]] = {}
    admissions = []
    seen: set[str] = set()  # processed_provider_events: each event_id counts once
    for obs in observations:
        if obs.event_id in seen and not obs.is_tick:
            continue
        seen.add(obs.event_id)
        a = admit("openai", history, obs, th)
        history = a.history
        admissions.append(a)
        for w in a.alert_writes:
            if w.op == "create":
                assert w.alert_id not in store or store[w.alert_id]["context"]["retracted"]
            merge(store.setdefault(w.alert_id, {}), dict(w.fields))
    return history, admissions, store


def live_alerts(store: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {aid: d for aid, d in store.items() if not d["context"].get("retracted")}


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=1, max_size=60))
def test_state_invariants_hold_after_every_event(steps) -> None:
    _, admissions, _ = feed(build(steps))
    for a in admissions:
        s = a.state
        if s.breaker == BreakerState.OPEN:
            assert s.opened_at is not None
            assert s.status == HealthStatus.UNAVAILABLE
        if s.breaker == BreakerState.CLOSED:
            assert s.opened_at is None
        if s.breaker != BreakerState.HALF_OPEN:
            assert s.half_open_attempts == 0
        assert 0 <= s.half_open_successes <= s.half_open_attempts <= TH.half_open_max_attempts
        assert s.consecutive_failures == 0 or s.consecutive_successes == 0
        assert 0.0 <= a.replay.stats.success_rate <= 1.0
        h = health_document("openai", a)
        assert h["circuit_breaker_open"] == (s.breaker == BreakerState.OPEN)
        assert h["half_open_state"] == (s.breaker == BreakerState.HALF_OPEN)
        assert (h["circuit_opened_at"] is not None) == (s.breaker != BreakerState.CLOSED)
        assert len(a.history.tail) <= TH.history_max


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=1, max_size=60))
def test_alerts_only_on_transitions(steps) -> None:
    observations = build(steps)
    _, admissions, _ = feed(observations)
    previous = None
    for obs, a in zip(observations, admissions, strict=True):
        created = [w for w in a.alert_writes if w.op == "create"]
        for w in created:
            # In order, an alert is only ever raised by the event that caused it ...
            assert w.fields["created_at"] == obs.at
            assert w.fields["context"]["event_id"] == obs.event_id
        moved = previous is None or (
            (previous.breaker, previous.status) != (a.state.breaker, a.state.status)
        )
        # ... and only when the breaker or the health status changed.
        assert (
            not created
            or moved
            or any(w.fields["type"] == "CIRCUIT_BREAKER_CLOSED" for w in created)
        )
        # Nothing is retracted when events arrive in order.
        assert not any(w.fields.get("context") == {"retracted": True} for w in a.alert_writes)
        previous = a.state


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=1, max_size=60), st.integers(0, 2**32), st.integers(1, 4))
def test_any_order_with_duplicates_gives_the_same_state(steps, seed, spread) -> None:
    observations = build(steps)
    rng = random.Random(seed)
    # Reorder within chunks (late by fewer than history_max events) and redeliver some.
    shuffled: list[Observation] = []
    for i in range(0, len(observations), spread + 1):
        chunk = observations[i : i + spread + 1]
        rng.shuffle(chunk)
        shuffled += chunk
    for obs in rng.sample(observations, k=min(len(observations), 5)):
        shuffled.insert(rng.randrange(len(shuffled) + 1), obs)

    h1, a1, store1 = feed(observations)
    h2, a2, store2 = feed(shuffled)
    assert h2.base == h1.base
    assert h2.tail == h1.tail
    assert h2.context == h1.context
    assert h2.error_buckets == h1.error_buckets
    assert health_document("openai", a2[-1]) == health_document("openai", a1[-1])
    assert breaker_document("openai", a2[-1], TH) == breaker_document("openai", a1[-1], TH)
    assert live_alerts(store2) == live_alerts(store1)


@settings(max_examples=60, deadline=None)
@given(st.lists(step, min_size=11, max_size=60))
def test_folding_into_the_checkpoint_changes_nothing(steps) -> None:
    observations = build(steps)
    _, small, store_small = feed(observations)
    _, big, store_big = feed(observations, TH.model_copy(update={"history_max": 1000}))
    assert small[-1].state == big[-1].state
    assert live_alerts(store_small) == live_alerts(store_big)
