"""The pure core of provider operations: health, circuit breaker and their alerts.

Everything here is plain Python over values (no I/O, no clock). A provider's state is a
function of the SET of its events: observations are replayed in event-time order
(``occurred_at``, then ``event_id``) from a checkpoint (``History.base``) over a bounded tail
of recent observations (``History.tail``). An event that arrives late is inserted at its
place in the tail and the tail is replayed, so the same events in any order (and with
duplicates) give the same state, as long as no event arrives after ``history_max`` newer
ones were folded into the checkpoint (such an event is "late": it still counts in
``error_count_24h`` and in quotas, but no longer in the breaker; see docs/providers.md).

Alerts are derived from the replay too: one alert per transition, with an id that is a
function of (provider, alert type, the event that caused the transition), so a redelivery
or a re-replay never creates a second one.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Outcome(StrEnum):
    """What one provider call did; everything but ``success`` counts as a failure."""

    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"


class BreakerState(StrEnum):
    """``circuit_breakers.state``."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class HealthStatus(StrEnum):
    """``model_provider_health.status`` (seed 000)."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNAVAILABLE = "unavailable"


class AlertType(StrEnum):
    """``model_router_alerts.type`` (seed 000)."""

    QUOTA_WARNING = "QUOTA_WARNING"
    QUOTA_CRITICAL = "QUOTA_CRITICAL"
    QUOTA_EXHAUSTED = "QUOTA_EXHAUSTED"
    PROVIDER_DEGRADED = "PROVIDER_DEGRADED"
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"
    CIRCUIT_BREAKER_OPENED = "CIRCUIT_BREAKER_OPENED"
    CIRCUIT_BREAKER_CLOSED = "CIRCUIT_BREAKER_CLOSED"


class Severity(StrEnum):
    """``model_router_alerts.severity`` (seed 000)."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"
    EMERGENCY = "emergency"


SEVERITY: dict[AlertType, Severity] = {
    AlertType.QUOTA_WARNING: Severity.WARNING,
    AlertType.QUOTA_CRITICAL: Severity.CRITICAL,
    AlertType.QUOTA_EXHAUSTED: Severity.EMERGENCY,
    AlertType.PROVIDER_DEGRADED: Severity.WARNING,
    AlertType.PROVIDER_UNAVAILABLE: Severity.CRITICAL,
    AlertType.CIRCUIT_BREAKER_OPENED: Severity.CRITICAL,
    AlertType.CIRCUIT_BREAKER_CLOSED: Severity.INFO,
}


class Thresholds(BaseModel):
    """Every tunable of health, breaker, quotas and routing (docs/providers.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Circuit breaker.
    failure_threshold: int = Field(default=5, ge=1, le=1000)
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    failure_rate_min_events: int = Field(default=10, ge=1, le=10_000)
    window_s: int = Field(default=300, ge=1, le=86_400)
    cooldown_s: int = Field(default=60, ge=0, le=86_400)
    half_open_successes: int = Field(default=3, ge=1, le=100)
    half_open_max_attempts: int = Field(default=5, ge=1, le=100)
    # Health.
    degraded_success_rate: float = Field(default=0.95, ge=0, le=1)
    unavailable_success_rate: float = Field(default=0.5, ge=0, le=1)
    degraded_latency_ms: float = Field(default=10_000, gt=0)
    health_min_events: int = Field(default=5, ge=1, le=10_000)
    recovery_margin: float = Field(default=0.02, ge=0, le=0.5)
    # Bookkeeping: calls kept in the history's tail; calls a window holds at most.
    history_max: int = Field(default=200, ge=10, le=1000)
    window_max_calls: int = Field(default=200, ge=10, le=1000)
    # Quotas (percent of the limit used).
    quota_warning_pct: int = Field(default=80, ge=1, le=100)
    quota_critical_pct: int = Field(default=95, ge=1, le=100)
    # Routing score weights.
    weight_health: float = Field(default=0.5, ge=0)
    weight_quota: float = Field(default=0.3, ge=0)
    weight_cost: float = Field(default=0.2, ge=0)

    @model_validator(mode="after")
    def _coherent(self) -> Thresholds:
        if self.half_open_successes > self.half_open_max_attempts:
            raise ValueError("half_open_successes must be <= half_open_max_attempts")
        if self.unavailable_success_rate > self.degraded_success_rate:
            raise ValueError("unavailable_success_rate must be <= degraded_success_rate")
        if self.quota_warning_pct > self.quota_critical_pct:
            raise ValueError("quota_warning_pct must be <= quota_critical_pct")
        if self.weight_health + self.weight_quota + self.weight_cost <= 0:
            raise ValueError("at least one routing weight must be positive")
        return self


@dataclass(frozen=True, order=True)
class Observation:
    """One provider call (or, with ``outcome=None``, a clock tick from the schedule)."""

    at: datetime
    event_id: str
    outcome: Outcome | None = field(default=None, compare=False)
    latency_ms: float | None = field(default=None, compare=False)
    error: str | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[datetime, str]:
        return (self.at, self.event_id)

    @property
    def is_tick(self) -> bool:
        return self.outcome is None

    @property
    def ok(self) -> bool:
        return self.outcome == Outcome.SUCCESS


@dataclass(frozen=True)
class ProviderState:
    """Breaker and health of one provider after some observations (a replay checkpoint)."""

    breaker: BreakerState = BreakerState.CLOSED
    opened_at: datetime | None = None
    closed_at: datetime | None = None
    half_open_attempts: int = 0
    half_open_successes: int = 0
    consecutive_successes: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    status: HealthStatus = HealthStatus.HEALTHY
    last_key: tuple[datetime, str] | None = None
    breaker_alert_id: str | None = None
    health_alert_id: str | None = None
    opened_count: int = 0

    @property
    def as_of(self) -> datetime | None:
        return self.last_key[0] if self.last_key else None


@dataclass(frozen=True)
class Alert:
    """One ``model_router_alerts`` document as the core derives it."""

    alert_id: str
    type: AlertType
    provider: str
    message: str
    created_at: datetime
    context: dict[str, Any]
    model_id: str | None = None
    resolved_at: datetime | None = None

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.type]

    def digest(self) -> str:
        """A short fingerprint of what the alert says (its figures may move with late events)."""
        text = repr((self.message, sorted((k, repr(v)) for k, v in self.context.items())))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def document(self) -> dict[str, Any]:
        """The document fields exactly as seed 000 names them."""
        return {
            "type": self.type.value,
            "severity": self.severity.value,
            "provider": self.provider,
            "model_id": self.model_id,
            "message": self.message,
            "context": {**self.context, "retracted": False},
            "acknowledged": False,
            "created_at": self.created_at,
            "resolved_at": self.resolved_at,
        }


def alert_id(provider: str, kind: AlertType, cause: str) -> str:
    """The deterministic id of the alert for one transition (caused by event ``cause``)."""
    digest = hashlib.sha256(f"{provider}|{kind.value}|{cause}".encode()).hexdigest()[:20]
    return f"{provider}_{kind.value}_{digest}"


@dataclass(frozen=True)
class WindowStats:
    """Calls within ``window_s`` of event time before the evaluation instant."""

    count: int
    successes: int
    latency_sum_ms: float
    latency_count: int

    @property
    def success_rate(self) -> float:
        return self.successes / self.count if self.count else 1.0

    @property
    def failure_rate(self) -> float:
        return 1.0 - self.success_rate if self.count else 0.0

    @property
    def avg_latency_ms(self) -> float:
        return self.latency_sum_ms / self.latency_count if self.latency_count else 0.0


def window_stats(calls: Iterable[Observation]) -> WindowStats:
    count = successes = 0
    latencies: list[float] = []
    for obs in calls:
        count += 1
        successes += obs.outcome == Outcome.SUCCESS
        if obs.latency_ms is not None:
            latencies.append(obs.latency_ms)
    return WindowStats(count, successes, math.fsum(latencies), len(latencies))


class _Window:
    """The calls inside the health window, with their figures kept as they move.

    A replay evaluates the window after every call; recounting it each time made a replay
    of ``history_max`` calls quadratic. Counts are updated as calls enter and leave; the
    latency sum is ``math.fsum`` of the latencies in the window (exactly rounded, so equal
    to ``window_stats`` of the same calls whatever their order).
    """

    def __init__(self, calls: Iterable[Observation]) -> None:
        self.calls: deque[Observation] = deque()
        self._latencies: deque[float] = deque()
        self._successes = 0
        for obs in calls:
            self.append(obs)

    def append(self, obs: Observation) -> None:
        self.calls.append(obs)
        self._successes += obs.outcome == Outcome.SUCCESS
        if obs.latency_ms is not None:
            self._latencies.append(obs.latency_ms)

    def drop_before(self, t: datetime, max_calls: int) -> None:
        """Drop the calls at or before ``t`` and the oldest beyond ``max_calls``."""
        calls = self.calls
        while calls and (calls[0].at <= t or len(calls) > max_calls):
            obs = calls.popleft()
            self._successes -= obs.outcome == Outcome.SUCCESS
            if obs.latency_ms is not None:
                self._latencies.popleft()

    def stats(self) -> WindowStats:
        n = len(self._latencies)
        return WindowStats(len(self.calls), self._successes, math.fsum(self._latencies), n)


def classify(
    previous: HealthStatus, breaker: BreakerState, stats: WindowStats, th: Thresholds
) -> HealthStatus:
    """Health status from the breaker and the window (a margin damps flapping on recovery)."""
    if breaker == BreakerState.OPEN:
        return HealthStatus.UNAVAILABLE
    status = HealthStatus.HEALTHY
    if stats.count >= th.health_min_events:
        rate = stats.success_rate
        up_margin = th.recovery_margin if previous == HealthStatus.UNAVAILABLE else 0.0
        ok_margin = th.recovery_margin if previous != HealthStatus.HEALTHY else 0.0
        if rate < th.unavailable_success_rate + up_margin:
            status = HealthStatus.UNAVAILABLE
        elif (
            rate < min(1.0, th.degraded_success_rate + ok_margin)
            or stats.avg_latency_ms > th.degraded_latency_ms
        ):
            status = HealthStatus.DEGRADED
    if breaker == BreakerState.HALF_OPEN and status == HealthStatus.HEALTHY:
        status = HealthStatus.DEGRADED
    return status


@dataclass
class Replay:
    """The result of replaying observations from a checkpoint."""

    state: ProviderState
    stats: WindowStats
    alerts: dict[str, Alert]  # created during this replay (resolved_at may be set)
    resolved: dict[str, datetime]  # alerts of the checkpoint resolved during this replay
    transitions: list[tuple[str, str, datetime]]  # (what, to, at), for tests and logs


def replay(
    provider: str,
    base: ProviderState,
    observations: Sequence[Observation],
    th: Thresholds,
    context: Sequence[Observation] = (),
) -> Replay:
    """Apply ``observations`` (sorted by key, after ``base.last_key``) to ``base``.

    ``context`` holds the calls already folded into ``base`` that are still within the
    window, so that a replay from a checkpoint sees the same window as a replay from the
    start would.
    """
    state = base
    calls = _Window(context)
    window = calls.calls
    out = Replay(state, WindowStats(0, 0, 0.0, 0), {}, {}, [])
    span = timedelta(seconds=th.window_s)
    cooldown = timedelta(seconds=th.cooldown_s)

    def resolve(aid: str | None, at: datetime) -> None:
        if aid is None:
            return
        if aid in out.alerts:
            out.alerts[aid] = replace(out.alerts[aid], resolved_at=at)
        else:
            out.resolved[aid] = at

    def raise_alert(a: Alert) -> None:
        out.alerts[a.alert_id] = a

    for obs in observations:
        t = obs.at
        if not obs.is_tick:
            calls.append(obs)
        calls.drop_before(t - span, th.window_max_calls)

        # Open -> half-open once the cooldown has elapsed (by event time).
        opened_at = state.opened_at
        if state.breaker == BreakerState.OPEN and opened_at and t >= opened_at + cooldown:
            state = replace(
                state,
                breaker=BreakerState.HALF_OPEN,
                half_open_attempts=0,
                half_open_successes=0,
            )
            out.transitions.append(("breaker", "half_open", opened_at + cooldown))

        # ``last_key`` is set with the counters (nothing below reads it): one copy of the
        # state per call instead of two.
        if obs.is_tick:
            state = replace(state, last_key=obs.key)
        elif obs.ok:
            state = replace(
                state,
                consecutive_successes=state.consecutive_successes + 1,
                consecutive_failures=0,
                last_key=obs.key,
            )
        else:
            state = replace(
                state,
                consecutive_successes=0,
                consecutive_failures=state.consecutive_failures + 1,
                last_error=(obs.error or obs.outcome or "failure")[:500],
                last_error_at=t,
                last_key=obs.key,
            )
        if not obs.is_tick:
            state = _breaker_step(provider, state, obs, window, th, out, resolve, raise_alert)

        stats = calls.stats()
        status = classify(state.status, state.breaker, stats, th)
        if status != state.status:
            resolve(state.health_alert_id, t)
            new_alert: str | None = None
            if status != HealthStatus.HEALTHY:
                kind = (
                    AlertType.PROVIDER_UNAVAILABLE
                    if status == HealthStatus.UNAVAILABLE
                    else AlertType.PROVIDER_DEGRADED
                )
                new_alert = alert_id(provider, kind, obs.event_id)
                raise_alert(
                    Alert(
                        new_alert,
                        kind,
                        provider,
                        f"{provider} is {status.value} "
                        f"(success rate {stats.success_rate:.2f} over {stats.count} calls, "
                        f"breaker {state.breaker.value})",
                        t,
                        {
                            "previous_status": state.status.value,
                            "success_rate": round(stats.success_rate, 4),
                            "avg_latency_ms": round(stats.avg_latency_ms, 1),
                            "window_calls": stats.count,
                            "circuit_state": state.breaker.value,
                            "event_id": obs.event_id,
                        },
                    )
                )
            out.transitions.append(("health", status.value, t))
            state = replace(state, status=status, health_alert_id=new_alert)
        out.stats = stats
    out.state = state
    return out


def _breaker_step(
    provider: str,
    state: ProviderState,
    obs: Observation,
    window: deque[Observation],
    th: Thresholds,
    out: Replay,
    resolve: Any,
    raise_alert: Any,
) -> ProviderState:
    t = obs.at

    def open_(reason: str, stats: WindowStats | None) -> ProviderState:
        was_closed = state.breaker == BreakerState.CLOSED
        new = replace(
            state,
            breaker=BreakerState.OPEN,
            opened_at=t,
            half_open_attempts=0,
            half_open_successes=0,
            opened_count=state.opened_count + 1,
        )
        out.transitions.append(("breaker", "open", t))
        if not was_closed:
            # Re-opening from half-open belongs to the same outage: its alert stays open.
            return new
        aid = alert_id(provider, AlertType.CIRCUIT_BREAKER_OPENED, obs.event_id)
        raise_alert(
            Alert(
                aid,
                AlertType.CIRCUIT_BREAKER_OPENED,
                provider,
                f"circuit breaker for {provider} opened: {reason}",
                t,
                {
                    "circuit_state": BreakerState.OPEN.value,
                    "reason": reason,
                    "consecutive_failures": state.consecutive_failures,
                    "failure_rate": None if stats is None else round(stats.failure_rate, 4),
                    "window_calls": None if stats is None else stats.count,
                    "cooldown_s": th.cooldown_s,
                    "event_id": obs.event_id,
                    "last_error": state.last_error,
                },
            )
        )
        return replace(new, breaker_alert_id=aid)

    if state.breaker == BreakerState.CLOSED:
        if obs.ok:
            return state
        if state.consecutive_failures >= th.failure_threshold:
            return open_(f"{state.consecutive_failures} consecutive failures", None)
        since = state.closed_at
        stats = window_stats(o for o in window if since is None or o.at > since)
        if stats.count >= th.failure_rate_min_events and stats.failure_rate >= th.failure_rate:
            return open_(f"failure rate {stats.failure_rate:.2f} over {stats.count} calls", stats)
        return state
    if state.breaker == BreakerState.HALF_OPEN:
        if state.half_open_attempts >= th.half_open_max_attempts:
            return state  # more trial results than allowed: they no longer move the breaker
        state = replace(state, half_open_attempts=state.half_open_attempts + 1)
        if not obs.ok:
            return open_("a trial call failed while half-open", None)
        state = replace(state, half_open_successes=state.half_open_successes + 1)
        if state.half_open_successes >= th.half_open_successes:
            resolve(state.breaker_alert_id, t)
            aid = alert_id(provider, AlertType.CIRCUIT_BREAKER_CLOSED, obs.event_id)
            raise_alert(
                Alert(
                    aid,
                    AlertType.CIRCUIT_BREAKER_CLOSED,
                    provider,
                    f"circuit breaker for {provider} closed after "
                    f"{state.half_open_successes} successful trial calls",
                    t,
                    {
                        "circuit_state": BreakerState.CLOSED.value,
                        "opened_at": state.opened_at,
                        "half_open_attempts": state.half_open_attempts,
                        "event_id": obs.event_id,
                    },
                    resolved_at=t,  # informational: nothing stays wrong
                )
            )
            out.transitions.append(("breaker", "closed", t))
            return replace(
                state,
                breaker=BreakerState.CLOSED,
                opened_at=None,
                closed_at=t,
                half_open_attempts=0,
                half_open_successes=0,
                breaker_alert_id=None,
            )
        return state
    return state  # open: a call reported during the cooldown only moves the counters


# -- the bounded history -----------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """A provider's checkpoint, its recent observations and its alert bookkeeping."""

    base: ProviderState = ProviderState()
    tail: tuple[Observation, ...] = ()
    context: tuple[Observation, ...] = ()  # folded calls still inside the window
    error_buckets: dict[str, int] = field(default_factory=dict)
    tracked: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def as_of(self) -> datetime | None:
        if self.tail:
            return self.tail[-1].at
        return self.base.as_of


@dataclass(frozen=True)
class AlertWrite:
    """A change to one alert document: ``create`` (full document) or ``update`` fields."""

    alert_id: str
    op: str  # "create" | "update"
    fields: dict[str, Any]


@dataclass(frozen=True)
class Admission:
    """What admitting one observation did."""

    history: History
    replay: Replay
    duplicate: bool
    late: bool
    alert_writes: tuple[AlertWrite, ...]

    @property
    def state(self) -> ProviderState:
        return self.replay.state

    def error_count_24h(self) -> int:
        return error_count_24h(self.history.error_buckets, self.history.as_of)


def hour_key(at: datetime) -> str:
    return at.strftime("%Y%m%d%H")


def error_count_24h(buckets: dict[str, int], as_of: datetime | None) -> int:
    """Failures in the 24 hourly buckets ending with the hour of ``as_of``."""
    if as_of is None:
        return 0
    first = hour_key(as_of - timedelta(hours=23))
    last = hour_key(as_of)
    return sum(n for k, n in buckets.items() if first <= k <= last)


def admit(provider: str, history: History, obs: Observation, th: Thresholds) -> Admission:
    """Insert ``obs`` at its event-time place, fold overflow, replay, diff the alerts."""
    tail = list(history.tail)
    ids = {o.event_id for o in tail}
    base = history.base
    context = history.context
    buckets = dict(history.error_buckets)
    duplicate = obs.event_id in ids
    late = not duplicate and base.last_key is not None and obs.key <= base.last_key
    if not duplicate and not obs.is_tick and not obs.ok:
        key = hour_key(obs.at)
        buckets[key] = buckets.get(key, 0) + 1
    if not duplicate and not late:
        tail.append(obs)
        tail.sort(key=lambda o: o.key)
    frozen: dict[str, datetime | None] = {}
    if len(tail) > th.history_max:
        cut = len(tail) - th.history_max
        folded = replay(provider, base, tail[:cut], th, context)
        base = folded.state
        # Transitions folded into the checkpoint are final: their alerts leave the bookkeeping.
        frozen = {aid: a.resolved_at for aid, a in folded.alerts.items()}
        frozen.update(folded.resolved)
        folded_as_of = base.as_of
        horizon = None if folded_as_of is None else folded_as_of - timedelta(seconds=th.window_s)
        context = tuple(
            o
            for o in (*context, *tail[:cut])
            if not o.is_tick and (horizon is None or o.at > horizon)
        )[-th.window_max_calls :]
        tail = tail[cut:]
    result = replay(provider, base, tail, th, context)
    as_of = tail[-1].at if tail else base.as_of
    if as_of is not None and buckets:
        oldest = hour_key(as_of - timedelta(hours=47))
        buckets = {k: n for k, n in buckets.items() if k >= oldest}

    # Bookkeeping per alert id: when it was resolved and a digest of what it says, so that a
    # late event that changes an alert's figures (not its transition) rewrites it.
    desired: dict[str, dict[str, Any]] = {
        aid: {"resolved_at": a.resolved_at, "digest": a.digest()}
        for aid, a in result.alerts.items()
    }
    for aid in (base.breaker_alert_id, base.health_alert_id):
        if aid is not None:
            digest = (history.tracked.get(aid) or {}).get("digest")
            desired[aid] = {"resolved_at": result.resolved.get(aid), "digest": digest}
    writes: list[AlertWrite] = []
    for aid, want in desired.items():
        had = history.tracked.get(aid)
        if had is None:
            if aid in result.alerts:
                writes.append(AlertWrite(aid, "create", result.alerts[aid].document()))
            elif want["resolved_at"] is not None:
                writes.append(AlertWrite(aid, "update", {"resolved_at": want["resolved_at"]}))
        elif aid in result.alerts and had.get("digest") != want["digest"]:
            fields = result.alerts[aid].document()
            del fields["acknowledged"]  # an operator's acknowledgement stays
            writes.append(AlertWrite(aid, "update", fields))
        elif had.get("resolved_at") != want["resolved_at"]:
            writes.append(AlertWrite(aid, "update", {"resolved_at": want["resolved_at"]}))
    for aid, had in history.tracked.items():
        if aid in frozen and aid not in desired:
            if had.get("resolved_at") != frozen[aid]:
                writes.append(AlertWrite(aid, "update", {"resolved_at": frozen[aid]}))
        elif aid not in desired:
            # A late event changed the history: this transition no longer happened.
            writes.append(
                AlertWrite(aid, "update", {"resolved_at": as_of, "context": {"retracted": True}})
            )
    new_history = History(base, tuple(tail), context, buckets, desired)
    return Admission(new_history, result, duplicate, late, tuple(writes))


def health_document(provider: str, admission: Admission) -> dict[str, Any]:
    """``model_provider_health/{provider}`` fields (seed 000) plus ``last_event_at``."""
    state, stats = admission.state, admission.replay.stats
    return {
        "provider": provider,
        "status": state.status.value,
        "success_rate": round(stats.success_rate, 6),
        "avg_latency_ms": round(stats.avg_latency_ms, 3),
        "error_count_24h": admission.error_count_24h(),
        "circuit_breaker_open": state.breaker == BreakerState.OPEN,
        "circuit_opened_at": state.opened_at,
        "half_open_state": state.breaker == BreakerState.HALF_OPEN,
        "consecutive_successes": state.consecutive_successes,
        "consecutive_failures": state.consecutive_failures,
        "last_error": state.last_error,
        "last_event_at": admission.history.as_of,
    }


def breaker_document(provider: str, admission: Admission, th: Thresholds) -> dict[str, Any]:
    """``circuit_breakers/{provider}``: the seed's fields plus what the router needs."""
    state = admission.state
    retry_at = (
        state.opened_at + timedelta(seconds=th.cooldown_s)
        if state.breaker == BreakerState.OPEN and state.opened_at is not None
        else None
    )
    return {
        "provider": provider,
        "state": state.breaker.value,
        "opened_at": state.opened_at,
        "half_open_attempts": state.half_open_attempts,
        "half_open_successes": state.half_open_successes,
        "half_open_max_attempts": th.half_open_max_attempts,
        "consecutive_failures": state.consecutive_failures,
        "failure_threshold": th.failure_threshold,
        "cooldown_s": th.cooldown_s,
        "next_attempt_at": retry_at,
        "closed_at": state.closed_at,
        "opened_count": state.opened_count,
        "last_event_at": admission.history.as_of,
    }
