"""The pure provider core: every breaker transition and boundary, health, alerts, history."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.providers.core import (
    AlertType,
    BreakerState,
    HealthStatus,
    History,
    Observation,
    Outcome,
    Thresholds,
    WindowStats,
    admit,
    breaker_document,
    classify,
    error_count_24h,
    health_document,
)
from shared.schema_extensions import declared_fields
from tests.providers.helpers import T0, small_thresholds

TH = small_thresholds()


def call(i: int, ok: bool, at_s: float, latency: float = 100.0) -> Observation:
    return Observation(
        at=T0 + timedelta(seconds=at_s),
        event_id=f"e{i:04d}",
        outcome=Outcome.SUCCESS if ok else Outcome.FAILURE,
        latency_ms=latency,
        error=None if ok else f"error {i}",
    )


def run(observations, th: Thresholds = TH, history: History | None = None):
    history = history or History()
    admissions = []
    for obs in observations:
        a = admit("openai", history, obs, th)
        history = a.history
        admissions.append(a)
    return history, admissions


def creates(admissions, kind: AlertType) -> list[str]:
    return [
        w.alert_id
        for a in admissions
        for w in a.alert_writes
        if w.op == "create" and w.fields["type"] == kind.value
    ]


# -- closed -> open ----------------------------------------------------------------------


def test_breaker_stays_closed_one_failure_below_the_threshold() -> None:
    _, adm = run([call(i, False, i) for i in range(2)])
    assert adm[-1].state.breaker == BreakerState.CLOSED
    assert adm[-1].state.consecutive_failures == 2


def test_breaker_opens_at_exactly_n_consecutive_failures() -> None:
    _, adm = run([call(i, False, i) for i in range(3)])
    s = adm[-1].state
    assert s.breaker == BreakerState.OPEN
    assert s.opened_at == T0 + timedelta(seconds=2)
    assert (
        creates(adm, AlertType.CIRCUIT_BREAKER_OPENED)
        and len(creates(adm, AlertType.CIRCUIT_BREAKER_OPENED)) == 1
    )
    assert s.status == HealthStatus.UNAVAILABLE


def test_a_success_resets_the_consecutive_count() -> None:
    seq = [call(0, False, 0), call(1, False, 1), call(2, True, 2), call(3, False, 3)]
    _, adm = run(seq)
    assert adm[-1].state.breaker == BreakerState.CLOSED
    assert adm[-1].state.consecutive_failures == 1


def test_failure_rate_opens_only_with_enough_calls_in_the_window() -> None:
    th = TH.model_copy(update={"failure_threshold": 100})
    # 5 calls, 3 failures (60 %): below the 6-call minimum -> closed.
    seq = [call(0, True, 0), call(1, False, 1), call(2, True, 2), call(3, False, 3)]
    seq += [call(4, False, 4)]
    _, adm = run(seq, th)
    assert adm[-1].state.breaker == BreakerState.CLOSED
    # The 6th call, a failure: 4/6 failed >= 50 % -> open.
    _, adm = run([*seq, call(5, False, 5)], th)
    assert adm[-1].state.breaker == BreakerState.OPEN


def test_failure_rate_exactly_at_the_threshold_opens_and_below_does_not() -> None:
    th = TH.model_copy(update={"failure_threshold": 100})
    at_threshold = [call(i, i % 2 == 0, i) for i in range(6)]  # 3 of 6 failed, last fails
    _, adm = run(at_threshold, th)
    assert adm[-1].state.breaker == BreakerState.OPEN
    below = [call(i, i not in (1, 5), i) for i in range(6)]  # 2 of 6 failed
    _, adm = run(below, th)
    assert adm[-1].state.breaker == BreakerState.CLOSED


def test_failures_outside_the_window_do_not_count_towards_the_rate() -> None:
    th = TH.model_copy(update={"failure_threshold": 100})
    old = [call(i, False, i) for i in range(5)]  # t = 0..4
    recent = [call(10 + i, True, 100 + i) for i in range(5)] + [call(20, False, 106)]
    _, adm = run(old + recent, th)
    assert adm[-1].state.breaker == BreakerState.CLOSED


def test_success_never_opens_the_breaker() -> None:
    th = TH.model_copy(update={"failure_threshold": 100})
    seq = [call(i, False, i) for i in range(5)] + [call(9, True, 5)]
    _, adm = run(seq, th)
    assert adm[-1].state.breaker == BreakerState.CLOSED


# -- open -> half-open -> closed / open ------------------------------------------------


def opened(extra=()):
    return [call(i, False, i) for i in range(3)] + list(extra)  # opens at t=2


def test_open_stays_open_until_the_cooldown_has_elapsed() -> None:
    _, adm = run(opened([call(10, True, 31.999)]))
    s = adm[-1].state
    assert s.breaker == BreakerState.OPEN
    assert s.half_open_attempts == 0


def test_open_becomes_half_open_exactly_at_the_cooldown() -> None:
    _, adm = run(opened([call(10, True, 32)]))
    s = adm[-1].state
    assert s.breaker == BreakerState.HALF_OPEN
    assert (s.half_open_attempts, s.half_open_successes) == (1, 1)
    assert s.opened_at == T0 + timedelta(seconds=2)


def test_a_clock_tick_moves_open_to_half_open() -> None:
    tick = Observation(at=T0 + timedelta(seconds=40), event_id="tick:1")
    _, adm = run(opened([tick]))
    s = adm[-1].state
    assert s.breaker == BreakerState.HALF_OPEN
    assert s.half_open_attempts == 0
    assert s.consecutive_failures == 3  # a tick is not a call
    assert s.status == HealthStatus.UNAVAILABLE or s.status == HealthStatus.DEGRADED


def test_half_open_closes_after_m_successes() -> None:
    _, adm = run(opened([call(10, True, 32), call(11, True, 33)]))
    s = adm[-1].state
    assert s.breaker == BreakerState.CLOSED
    assert s.opened_at is None and s.half_open_attempts == 0
    closed = creates(adm, AlertType.CIRCUIT_BREAKER_CLOSED)
    assert len(closed) == 1
    writes = {w.alert_id: w for w in adm[-1].alert_writes}
    opened_id = creates(adm, AlertType.CIRCUIT_BREAKER_OPENED)[0]
    assert writes[opened_id].fields == {"resolved_at": T0 + timedelta(seconds=33)}
    assert writes[closed[0]].fields["severity"] == "info"


def test_half_open_failure_reopens_without_a_second_opened_alert() -> None:
    _, adm = run(opened([call(10, True, 32), call(11, False, 33)]))
    s = adm[-1].state
    assert s.breaker == BreakerState.OPEN
    assert s.opened_at == T0 + timedelta(seconds=33)
    assert s.half_open_attempts == 0
    assert len(creates(adm, AlertType.CIRCUIT_BREAKER_OPENED)) == 1
    assert s.opened_count == 2


def test_half_open_attempts_are_bounded() -> None:
    th = TH.model_copy(update={"half_open_successes": 3, "half_open_max_attempts": 3})
    seq = opened([call(10, True, 32), call(11, True, 33)])
    _, adm = run(seq, th)
    assert adm[-1].state.half_open_attempts == 2
    _, adm = run([*seq, call(12, True, 34)], th)
    assert adm[-1].state.breaker == BreakerState.CLOSED


def test_calls_reported_while_open_only_move_the_counters() -> None:
    _, adm = run(opened([call(10, False, 5), call(11, True, 6)]))
    s = adm[-1].state
    assert s.breaker == BreakerState.OPEN and s.opened_at == T0 + timedelta(seconds=2)
    assert s.consecutive_successes == 1


def test_rate_window_restarts_when_the_breaker_closes() -> None:
    th = TH.model_copy(update={"failure_threshold": 100, "failure_rate_min_events": 3})
    seq = [call(i, False, i) for i in range(3)]  # opens by rate at t=2
    seq += [call(10, True, 32), call(11, True, 33)]  # closes at t=33
    seq += [call(12, False, 34)]  # 1 failure since closing: not enough calls
    _, adm = run(seq, th)
    assert adm[-1].state.breaker == BreakerState.CLOSED


# -- health ------------------------------------------------------------------------------


def stats(n: int, ok: int, lat: float = 100.0) -> WindowStats:
    return WindowStats(n, ok, lat * n, n)


@pytest.mark.parametrize(
    ("n", "ok", "lat", "previous", "expected"),
    [
        (3, 0, 100, HealthStatus.HEALTHY, HealthStatus.HEALTHY),  # too few calls
        (4, 0, 100, HealthStatus.HEALTHY, HealthStatus.UNAVAILABLE),
        (100, 50, 100, HealthStatus.HEALTHY, HealthStatus.DEGRADED),  # 0.50 = threshold
        (100, 49, 100, HealthStatus.HEALTHY, HealthStatus.UNAVAILABLE),
        (100, 95, 100, HealthStatus.HEALTHY, HealthStatus.HEALTHY),  # 0.95 = threshold
        (100, 94, 100, HealthStatus.HEALTHY, HealthStatus.DEGRADED),
        (100, 100, 10_001, HealthStatus.HEALTHY, HealthStatus.DEGRADED),  # slow
        (100, 100, 10_000, HealthStatus.HEALTHY, HealthStatus.HEALTHY),
        (100, 96, 100, HealthStatus.DEGRADED, HealthStatus.DEGRADED),  # recovery margin
        (100, 97, 100, HealthStatus.DEGRADED, HealthStatus.HEALTHY),
        (100, 51, 100, HealthStatus.UNAVAILABLE, HealthStatus.UNAVAILABLE),
        (100, 52, 100, HealthStatus.UNAVAILABLE, HealthStatus.DEGRADED),
    ],
)
def test_health_boundaries(n, ok, lat, previous, expected) -> None:
    assert classify(previous, BreakerState.CLOSED, stats(n, ok, lat), TH) == expected


def test_open_breaker_means_unavailable_and_half_open_at_best_degraded() -> None:
    assert classify(HealthStatus.HEALTHY, BreakerState.OPEN, stats(100, 100), TH) == (
        HealthStatus.UNAVAILABLE
    )
    assert classify(HealthStatus.HEALTHY, BreakerState.HALF_OPEN, stats(100, 100), TH) == (
        HealthStatus.DEGRADED
    )


def test_health_alerts_one_per_transition_and_resolved_when_it_clears() -> None:
    th = TH.model_copy(update={"failure_threshold": 100, "failure_rate": 1.0})
    seq = [call(i, True, i) for i in range(4)] + [call(4, False, 4)]  # 4/5 = 0.8 -> degraded
    seq += [call(5, False, 5)]  # still degraded: no new alert
    seq += [call(10 + i, True, 200 + i) for i in range(4)]  # old calls leave the window
    _, adm = run(seq, th)
    degraded = creates(adm, AlertType.PROVIDER_DEGRADED)
    assert len(degraded) == 1
    assert adm[-1].state.status == HealthStatus.HEALTHY
    resolved = [w for a in adm for w in a.alert_writes if w.alert_id == degraded[0]]
    assert resolved[-1].fields["resolved_at"] is not None


def test_health_and_breaker_documents_have_the_seed_fields() -> None:
    _, adm = run(opened())
    h = health_document("openai", adm[-1])
    assert set(h) == declared_fields("model_provider_health")  # the seed's, plus declared
    assert h["circuit_breaker_open"] is True and h["error_count_24h"] == 3
    assert h["last_error"] == "error 2"
    b = breaker_document("openai", adm[-1], TH)
    assert b["state"] == "open" and b["opened_at"] == T0 + timedelta(seconds=2)
    assert b["next_attempt_at"] == T0 + timedelta(seconds=32)
    assert b["half_open_attempts"] == 0


# -- history: duplicates, order, folding, late events -------------------------------------


def test_a_duplicate_changes_nothing() -> None:
    h, _adm = run(opened())
    again = admit("openai", h, opened()[1], TH)
    assert again.duplicate and not again.alert_writes
    assert again.history == h


def test_reordered_arrival_gives_the_same_state_and_retracts_what_did_not_happen() -> None:
    in_order = [call(0, False, 0), call(1, False, 1), call(2, True, 2), call(3, False, 3)]
    in_order += [call(4, False, 4)]
    h1, _ = run(in_order)
    # The success at t=2 arrives last: until then, three failures in a row opened it.
    shuffled = [in_order[0], in_order[1], in_order[3], in_order[4], in_order[2]]
    h2, adm = run(shuffled)
    assert h2 == h1
    assert adm[-1].state.breaker == BreakerState.CLOSED
    retracted = [w for w in adm[-1].alert_writes if w.fields.get("context") == {"retracted": True}]
    assert {w.alert_id for w in retracted} == set(creates(adm, AlertType.CIRCUIT_BREAKER_OPENED))


def test_folding_keeps_the_state_and_late_events_are_counted_only_as_errors() -> None:
    th = TH.model_copy(update={"history_max": 10, "failure_threshold": 100})
    seq = [call(i, i % 3 != 0, 5 * i) for i in range(30)]  # 12 calls per 60 s window
    h, adm = run(seq, th)
    assert len(h.tail) == 10
    # Replaying everything from scratch with a large history gives the same state.
    _big, adm_big = run(seq, th.model_copy(update={"history_max": 1000}))
    assert adm[-1].state == adm_big[-1].state
    assert adm[-1].replay.stats == adm_big[-1].replay.stats
    late = admit("openai", h, call(99, False, 2.5), th)
    assert late.late
    assert late.state == adm[-1].state
    assert sum(late.history.error_buckets.values()) == sum(h.error_buckets.values()) + 1


def test_error_count_24h_uses_hourly_buckets_by_event_time() -> None:
    buckets = {"2026010410": 2, "2026010311": 5, "2026010310": 7}
    assert error_count_24h(buckets, T0) == 7  # 2026-01-03 11:00 .. 2026-01-04 10:59
    assert error_count_24h({}, None) == 0


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValueError):
        Thresholds(half_open_successes=5, half_open_max_attempts=3)
    with pytest.raises(ValueError):
        Thresholds(quota_warning_pct=96, quota_critical_pct=95)
