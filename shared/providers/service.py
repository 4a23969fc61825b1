"""Provider operations on Firestore: one atomic unit per provider event, and the hourly reset.

Per group of events of one provider, ONE optimistic unit (``shared.atomic``) reads each
event's marker (``processed_provider_events/{event_id}``), the provider's history
(``provider_event_windows/{provider}``) and the models' quotas, admits the events one after
the other, and commits together: the markers (so each event counts once), the new history
(guarded by "unchanged since read": the per-provider serialisation point),
``model_provider_health/{provider}``, ``circuit_breakers/{provider}``, the counted
``model_quotas`` and every alert change. Health and breaker documents are blind merges:
only units that won the history precondition write them, so they never go backwards.

A group is every event of the provider that arrived in this process while the previous
group was committing (plus, with ``provider_group_linger_ms``, whatever arrives while its
leader waits): the provider's documents are written once per commit, not once per event
(docs/benchmarks.md: 88 events/s on the busiest provider at the production load). The
state is the same as one unit per event in arrival order: the history replays its events
in time order either way. If a group's unit fails, each of its events is retried in a unit
of its own, so one bad event never holds back the others.

Every unit has one shape: read through the unit (``read_group``; the reset's chunks and
the tick likewise), decide with a pure function of what was read (``shared.providers.plan``:
``decide_group``, ``decide_reset``, ``decide_tick``), then write the plan (``apply_group``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.atomic import Unit, chunked, run_atomically
from shared.clock import ensure_utc
from shared.errors import InvalidInput
from shared.logs import get_logger, log
from shared.providers.core import (
    BreakerState,
    HealthStatus,
    History,
    Observation,
    Outcome,
    ProviderState,
    Thresholds,
)
from shared.providers.plan import (
    AlertChanges,
    Call,
    EventResult,
    GroupPlan,
    GroupRead,
    ResetPlan,
    StoredAlert,
    decide_group,
    decide_reset,
    decide_tick,
    needs_tick,
    quota_ids,
    reset_alert_ids,
    rolled_alert_ids,
)
from shared.providers.quotas import Quota, usd_to_micro
from shared.settings import get_settings

logger = get_logger(__name__)

HEALTH = "model_provider_health"
BREAKERS = "circuit_breakers"
QUOTAS = "model_quotas"
ALERTS = "model_router_alerts"
WINDOWS = "provider_event_windows"
MARKERS = "processed_provider_events"

MAX_CLOCK_SKEW = timedelta(minutes=5)
ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
MODEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}$"
EVENT_ID_PATTERN = r"^[^/\s_][^/\s]{0,199}$"  # a Firestore document id: no "/", no "__x__"


class ProviderEvent(BaseModel):
    """One ``provider-events`` message (docs/contract.md, message shapes)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: str = Field(pattern=EVENT_ID_PATTERN)
    provider: str = Field(pattern=ID_PATTERN)
    model_id: str = Field(pattern=MODEL_PATTERN)
    task_type: str | None = Field(default=None, max_length=40)
    outcome: Outcome
    latency_ms: float | None = Field(default=None, ge=0, le=3_600_000)
    tokens: int = Field(default=0, ge=0, le=100_000_000)
    cost_usd: Decimal = Field(default=Decimal(0), ge=0, le=Decimal(100_000))
    error: str | None = None
    occurred_at: datetime | None = None

    @field_validator("event_id")
    @classmethod
    def _document_id(cls, value: str) -> str:
        if value in (".", ".."):
            raise ValueError("must be usable as a document id")
        return value

    @field_validator("error")
    @classmethod
    def _short_error(cls, value: str | None) -> str | None:
        return None if value is None else value[:2000]  # a long error is kept, not rejected

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else ensure_utc(value)

    @field_validator("latency_ms", "cost_usd", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        return value


def thresholds() -> Thresholds:
    """The configured thresholds (``PROVIDER_THRESHOLDS`` JSON over the defaults)."""
    overrides = getattr(get_settings(), "provider_thresholds", None) or {}
    try:
        return Thresholds(**overrides)
    except ValueError as exc:
        # Not InvalidInput: a configuration mistake must not make every event look poisonous
        # (they would be acknowledged and lost); raising makes Pub/Sub redeliver until fixed.
        raise RuntimeError(f"PROVIDER_THRESHOLDS is invalid: {exc}") from None


# -- (de)serialisation of the history document --------------------------------------------


def _state_doc(s: ProviderState) -> dict[str, Any]:
    return {
        "breaker": s.breaker.value,
        "opened_at": s.opened_at,
        "closed_at": s.closed_at,
        "half_open_attempts": s.half_open_attempts,
        "half_open_successes": s.half_open_successes,
        "consecutive_successes": s.consecutive_successes,
        "consecutive_failures": s.consecutive_failures,
        "last_error": s.last_error,
        "last_error_at": s.last_error_at,
        "status": s.status.value,
        "last_at": s.last_key[0] if s.last_key else None,
        "last_event_id": s.last_key[1] if s.last_key else None,
        "breaker_alert_id": s.breaker_alert_id,
        "health_alert_id": s.health_alert_id,
        "opened_count": s.opened_count,
    }


def _state_from(d: dict[str, Any]) -> ProviderState:
    last_at, last_id = d.get("last_at"), d.get("last_event_id")
    return ProviderState(
        breaker=BreakerState(d.get("breaker") or "closed"),
        opened_at=d.get("opened_at"),
        closed_at=d.get("closed_at"),
        half_open_attempts=int(d.get("half_open_attempts") or 0),
        half_open_successes=int(d.get("half_open_successes") or 0),
        consecutive_successes=int(d.get("consecutive_successes") or 0),
        consecutive_failures=int(d.get("consecutive_failures") or 0),
        last_error=d.get("last_error"),
        last_error_at=d.get("last_error_at"),
        status=HealthStatus(d.get("status") or "healthy"),
        last_key=(last_at, last_id) if last_at is not None and last_id is not None else None,
        breaker_alert_id=d.get("breaker_alert_id"),
        health_alert_id=d.get("health_alert_id"),
        opened_count=int(d.get("opened_count") or 0),
    )


def _obs_from(o: dict[str, Any]) -> Observation:
    return Observation(
        at=ensure_utc(o["at"]),
        event_id=str(o["id"]),
        outcome=None if o.get("outcome") is None else Outcome(o["outcome"]),
        latency_ms=o.get("latency_ms"),
        error=o.get("error"),
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def pack_observations(observations: Iterable[Observation]) -> str:
    """The calls of a history as one compact JSON text (``[[at_us, id, outcome, latency_ms,
    error], ...]``, ``at_us``: microseconds since the epoch, exact).

    One string field instead of an array of up to 400 maps: encoding and decoding the
    maps cost more than the rest of an event's handling (docs/providers.md).
    """
    return json.dumps(
        [
            [
                (o.at - _EPOCH) // _MICROSECOND,
                o.event_id,
                None if o.outcome is None else o.outcome.value,
                o.latency_ms,
                None if o.error is None else o.error[:120],
            ]
            for o in observations
        ],
        separators=(",", ":"),
    )


def unpack_observations(value: Any) -> tuple[Observation, ...]:
    """The calls written by ``pack_observations`` (or, from before it, a list of maps)."""
    if not value:
        return ()
    if not isinstance(value, str):
        return tuple(_obs_from(o) for o in value)
    return tuple(
        Observation(
            at=_EPOCH + timedelta(microseconds=at_us),
            event_id=event_id,
            outcome=None if outcome is None else Outcome(outcome),
            latency_ms=latency_ms,
            error=error,
        )
        for at_us, event_id, outcome, latency_ms, error in json.loads(value)
    )


def history_to_doc(provider: str, h: History) -> dict[str, Any]:
    return {
        "provider": provider,
        "base": _state_doc(h.base),
        "tail": pack_observations(h.tail),
        "context": pack_observations(h.context),
        "error_buckets": dict(h.error_buckets),
        "alerts": dict(h.tracked),
        "as_of": h.as_of,
    }


def history_from_doc(d: dict[str, Any] | None) -> History:
    if not d:
        return History()
    return History(
        base=_state_from(d.get("base") or {}),
        tail=unpack_observations(d.get("tail")),
        context=unpack_observations(d.get("context")),
        error_buckets={str(k): int(v) for k, v in (d.get("error_buckets") or {}).items()},
        tracked={str(k): dict(v) for k, v in (d.get("alerts") or {}).items()},
    )


# -- one event ---------------------------------------------------------------------------


_locks_guard = threading.Lock()
_locks: dict[str, threading.Lock] = {}


def _provider_lock(provider: str) -> threading.Lock:
    with _locks_guard:
        lock = _locks.get(provider)
        if lock is None:
            lock = _locks[provider] = threading.Lock()
        return lock


#: At most this many events in one commit (each adds its marker; Firestore allows 500 writes).
MAX_GROUP = 200


@dataclass
class _Pending:
    """One event waiting for its group's commit."""

    call: Call
    done: threading.Event = field(default_factory=threading.Event)
    result: EventResult | None = None
    error: BaseException | None = None


_queues_guard = threading.Lock()
_queues: dict[str, list[_Pending]] = {}


def record_event(
    db: firestore.Client,
    event: ProviderEvent,
    *,
    now: datetime,
    th: Thresholds | None = None,
) -> EventResult:
    """Count one provider call once: health, breaker, quotas and alerts, atomically."""
    th = th or thresholds()
    at = event.occurred_at or now
    if at > now + MAX_CLOCK_SKEW:
        raise InvalidInput(f"occurred_at {at.isoformat()} is in the future")
    obs = Observation(
        at=at,
        event_id=event.event_id,
        outcome=event.outcome,
        latency_ms=event.latency_ms,
        error=event.error,
    )
    provider = event.provider
    call = Call(obs, event.model_id, event.tokens, usd_to_micro(event.cost_usd), now)
    pending = _Pending(call)
    with _queues_guard:
        _queues.setdefault(provider, []).append(pending)
    # Whoever holds the provider's lock commits what is queued for it (up to MAX_GROUP),
    # so by the time this thread holds the lock its event is done or it leads a group.
    while not pending.done.is_set():
        with _provider_lock(provider):
            if pending.done.is_set():
                break
            linger = get_settings().provider_group_linger_ms
            if linger:
                time.sleep(linger / 1000)
            with _queues_guard:
                queued = _queues.pop(provider, [])
                group, rest = queued[:MAX_GROUP], queued[MAX_GROUP:]
                if rest:
                    _queues[provider] = rest
            _commit_group(db, provider, group, th)
    if pending.error is not None:
        raise pending.error
    result = pending.result
    assert result is not None
    if result.late:
        log(
            logger,
            logging.WARNING,
            "provider event older than the retained history",
            event_id=event.event_id,
            provider=provider,
            occurred_at=obs.at.isoformat(),
        )
    return result


def _commit_group(
    db: firestore.Client, provider: str, group: list[_Pending], th: Thresholds
) -> None:
    """Commit ``group`` in one unit; on failure, each event in a unit of its own."""
    attempts = get_settings().ledger_max_attempts
    try:
        try:
            results = run_atomically(
                db, lambda unit: _admit_group(unit, provider, group, th), max_attempts=attempts
            )
            for p, r in zip(group, results, strict=True):
                p.result = r
        except Exception:
            if len(group) == 1:
                raise
            for p in group:

                def alone(unit: Unit, p: _Pending = p) -> EventResult:
                    return _admit_group(unit, provider, [p], th)[0]

                try:
                    p.result = run_atomically(db, alone, max_attempts=attempts)
                except BaseException as exc:  # handed to its own caller
                    p.error = exc
    except BaseException as exc:  # handed to its own caller
        group[0].error = exc
    finally:
        for p in group:
            p.done.set()


def _alert_ref(db: firestore.Client, alert_id: str) -> firestore.DocumentReference:
    return db.collection(ALERTS).document(alert_id)


def _stored_alerts(unit: Unit, alert_ids: list[str]) -> dict[str, StoredAlert]:
    """The quota alerts ``alert_ids`` as read through ``unit`` (one round trip, if any)."""
    if not alert_ids:
        return {}
    snaps = unit.get_all([_alert_ref(unit.db, aid) for aid in alert_ids])
    return {
        aid: StoredAlert(snap.exists, snap.exists and snap.get("resolved_at") is not None)
        for aid, snap in zip(alert_ids, snaps, strict=True)
    }


def _quota_of(snap: Any) -> Quota | None:
    return Quota.from_document(snap.to_dict() or {}) if snap.exists else None


def read_group(unit: Unit, provider: str, calls: list[Call], th: Thresholds) -> GroupRead:
    """Read what a group decides on: its markers, the provider's history and the models'
    quotas in one round trip, then (only when a quota's window will roll) the alerts the
    roll may resolve in a second one."""
    db = unit.db
    window_ref = db.collection(WINDOWS).document(provider)
    markers = [db.collection(MARKERS).document(c.obs.event_id) for c in calls]
    qids = quota_ids(provider, calls)
    snaps = unit.get_all([window_ref, *markers, *(db.collection(QUOTAS).document(q) for q in qids)])
    marker_snaps, quota_snaps = snaps[1 : 1 + len(markers)], snaps[1 + len(markers) :]
    found = {qid: _quota_of(snap) for qid, snap in zip(qids, quota_snaps, strict=True)}
    quotas = {qid: q for qid, q in found.items() if q is not None}
    return GroupRead(
        history=history_from_doc(snaps[0].to_dict()),
        counted=frozenset(
            c.obs.event_id for c, m in zip(calls, marker_snaps, strict=True) if m.exists
        ),
        quotas=quotas,
        alerts=_stored_alerts(unit, rolled_alert_ids(quotas, calls, provider, th)),
    )


def _apply_alerts(unit: Unit, alerts: AlertChanges) -> None:
    for aid, fields in alerts.merges:
        unit.merge(_alert_ref(unit.db, aid), fields)
    for aid, at in alerts.resolutions.items():
        unit.update(_alert_ref(unit.db, aid), {"resolved_at": at})


def apply_group(unit: Unit, provider: str, plan: GroupPlan) -> list[EventResult]:
    """Write a group's plan in its unit (one commit)."""
    db = unit.db
    for event_id, marker in plan.markers:
        unit.create(db.collection(MARKERS).document(event_id), marker)
    for qid, document in plan.quotas.items():
        unit.update(db.collection(QUOTAS).document(qid), document)
    _apply_alerts(unit, plan.alerts)
    if plan.history is not None and plan.health is not None and plan.breaker is not None:
        # Full-state documents of the last admission: the same as merging each in turn.
        unit.set(db.collection(WINDOWS).document(provider), history_to_doc(provider, plan.history))
        unit.merge(db.collection(HEALTH).document(provider), plan.health)
        unit.merge(db.collection(BREAKERS).document(provider), plan.breaker)
    return list(plan.results)


def _admit_group(
    unit: Unit, provider: str, group: list[_Pending], th: Thresholds
) -> list[EventResult]:
    """One group's unit: read, decide, apply."""
    calls = [p.call for p in group]
    read = read_group(unit, provider, calls, th)
    return apply_group(unit, provider, decide_group(provider, read, calls, th))


# -- the schedule ------------------------------------------------------------------------


@dataclass(frozen=True)
class ResetReport:
    """What one run of ``cron-reset-quotas`` did."""

    at: datetime
    quotas_reset: int
    alerts_resolved: int
    providers_ticked: int


def tick_provider(db: firestore.Client, provider: str, at: datetime, th: Thresholds) -> bool:
    """Re-evaluate a provider at ``at`` (cooldown elapsed? window moved?); True if written."""
    window_ref = db.collection(WINDOWS).document(provider)

    def work(unit: Unit) -> bool:
        snap = unit.get(window_ref)
        plan = decide_tick(provider, history_from_doc(snap.to_dict()) if snap.exists else None,
                           at, th)  # fmt: skip
        if plan is None:
            return False
        unit.set(window_ref, history_to_doc(provider, plan.history))
        unit.merge(db.collection(HEALTH).document(provider), plan.health)
        unit.merge(db.collection(BREAKERS).document(provider), plan.breaker)
        _apply_alerts(unit, AlertChanges(merges=list(plan.alerts)))
        return True

    return run_atomically(db, work)


def _reset_chunk(unit: Unit, refs: list[Any], at: datetime, th: Thresholds) -> ResetPlan:
    """One chunk of the reset: read its quotas (and the alerts their rolls may resolve),
    decide, write."""
    snaps = unit.get_all(refs)
    quotas = {snap.id: q for snap in snaps if (q := _quota_of(snap)) is not None}
    alerts = _stored_alerts(unit, reset_alert_ids(quotas, at, th))
    plan = decide_reset(quotas, alerts, at, th)
    for qid, document in plan.quotas.items():
        unit.update(unit.db.collection(QUOTAS).document(qid), document)
    _apply_alerts(unit, plan.alerts)
    return plan


def reset_quotas(
    db: firestore.Client, at: datetime, *, th: Thresholds | None = None
) -> ResetReport:
    """Reset every quota whose window ended by ``at``; re-evaluate providers that are not well.

    Idempotent: a rerun for the same ``at`` finds nothing due and writes nothing.
    """
    th = th or thresholds()
    due = [
        snap.reference
        for snap in db.collection(QUOTAS)
        .where(filter=firestore.FieldFilter("reset_at", "<=", at))
        .stream()
    ]
    reset = resolved = 0
    for refs in chunked(due, 100):

        def work(unit: Unit, refs: list[Any] = refs) -> ResetPlan:
            return _reset_chunk(unit, refs, at, th)

        plan = run_atomically(db, work)
        reset += len(plan.quotas)
        resolved += plan.alerts_resolved
    breakers = {snap.id: snap.to_dict() or {} for snap in db.collection(BREAKERS).stream()}
    health_refs = [db.collection(HEALTH).document(p) for p in breakers]
    health = {snap.id: snap.to_dict() for snap in db.get_all(health_refs)} if health_refs else {}
    ticked = 0
    for provider, breaker in breakers.items():
        if needs_tick(breaker, health.get(provider)):
            ticked += tick_provider(db, provider, at, th)
    return ResetReport(at, reset, resolved, ticked)
