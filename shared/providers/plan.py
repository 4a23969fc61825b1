"""What provider events and the hourly schedule write, decided from what was read (pure).

The service (``shared.providers.service``) reads through its unit of work, hands the values
to one function here, and writes the plan it gets back:

- ``decide_group``: a group of one provider's events -> markers, history, health, breaker,
  counted quotas and alert changes (``GroupPlan``);
- ``decide_tick``: the schedule's clock tick for one provider (``TickPlan``);
- ``decide_reset``: the quotas whose window ended (``ResetPlan``);
- ``needs_tick``: which providers the schedule re-evaluates.

No I/O and no clock here: every instant comes in as a value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.providers.core import (
    Admission,
    History,
    Observation,
    Thresholds,
    admit,
    breaker_document,
    health_document,
)
from shared.providers.quotas import Quota, QuotaType, count, quota_id, reset_due, roll

#: A processed event's marker expires this long after the event (TTL on ``expire_at``).
MARKER_TTL = timedelta(days=30)


@dataclass(frozen=True)
class Call:
    """One provider event as the rules need it."""

    obs: Observation
    model_id: str
    tokens: int
    cost_micro: int  # cost_usd in integer micro-dollars
    now: datetime  # when it was received (the marker's processed_at)

    def amount(self, quota_type: QuotaType) -> int:
        if quota_type == QuotaType.REQUESTS:
            return 1
        if quota_type == QuotaType.TOKENS:
            return self.tokens
        return self.cost_micro


@dataclass(frozen=True)
class EventResult:
    """What recording one provider event did."""

    event_id: str
    provider: str
    duplicate: bool = False
    late: bool = False
    status: str | None = None
    breaker: str | None = None
    quotas_counted: int = 0
    alerts_written: int = 0


@dataclass(frozen=True)
class StoredAlert:
    """A quota alert as read: whether it exists and whether it is resolved."""

    exists: bool
    resolved: bool = False


@dataclass
class AlertChanges:
    """Alert writes in order: merges (raised or rewritten alerts; several merges of one
    alert combine, as ``Unit.merge`` does) and ``resolved_at`` updates of alerts read."""

    merges: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    resolutions: dict[str, datetime] = field(default_factory=dict)

    def resolve_window(
        self, resolved: Iterable[tuple[str, datetime]], stored: Mapping[str, StoredAlert]
    ) -> int:
        """Resolve the alerts of a quota window that ended; how many writes that takes.

        An alert raised in this plan is resolved in the plan; one that was read is resolved
        if it exists and is not resolved yet; any other one does not exist.
        """
        raised = {aid for aid, _ in self.merges}
        written = 0
        for aid, at in resolved:
            if aid in raised:
                self.merges.append((aid, {"resolved_at": at}))
                written += 1
            elif aid not in self.resolutions:
                alert = stored.get(aid)
                if alert is not None and alert.exists and not alert.resolved:
                    self.resolutions[aid] = at
                    written += 1
        return written


@dataclass(frozen=True)
class GroupRead:
    """What a group's unit read: the provider's history, the events already counted, the
    models' quotas (those that exist) and the quota alerts a window roll may resolve."""

    history: History
    counted: frozenset[str]
    quotas: Mapping[str, Quota]  # quota document id -> quota
    alerts: Mapping[str, StoredAlert] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupPlan:
    """Everything one group's unit writes, and each event's result (in the group's order)."""

    results: tuple[EventResult, ...]
    markers: tuple[tuple[str, dict[str, Any]], ...]  # (event id, marker document): creates
    history: History | None  # None: nothing new was admitted (no provider write)
    health: dict[str, Any] | None
    breaker: dict[str, Any] | None
    quotas: dict[str, dict[str, Any]]  # quota id -> its new document (updates)
    alerts: AlertChanges


def quota_ids(provider: str, calls: Iterable[Call]) -> list[str]:
    """The quota documents of the models of ``calls`` (each model's three, in order)."""
    models = dict.fromkeys(c.model_id for c in calls)
    return [quota_id(provider, m, t) for m in models for t in QuotaType]


def rolled_alert_ids(
    quotas: Mapping[str, Quota], calls: Sequence[Call], provider: str, th: Thresholds
) -> list[str]:
    """The stored alerts of the quotas whose window the calls will roll over: the ones to
    read before deciding (alerts raised by the group itself are known to the plan)."""
    out: list[str] = []
    for qid in quota_ids(provider, calls):
        q = quotas.get(qid)
        if q is None:
            continue
        latest = max(c.obs.at for c in calls if c.model_id == q.model_id)
        out.extend(aid for aid, _ in roll(q, latest, th)[1])
    return out


def decide_group(
    provider: str, read: GroupRead, calls: Sequence[Call], th: Thresholds
) -> GroupPlan:
    """Admit ``calls`` one after the other (arrival order) into what was read.

    An event already counted (a marker exists, or it came twice in the group) is a
    duplicate: nothing is written for it. Quotas count each new event in the window of its
    ``occurred_at``; health and breaker are the full state after the last admission.
    """
    history = read.history
    quotas = dict(read.quotas)
    alerts = AlertChanges()
    results: list[EventResult] = []
    markers: list[tuple[str, dict[str, Any]]] = []
    updated: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    last: Admission | None = None
    for call in calls:
        obs = call.obs
        if obs.event_id in read.counted or obs.event_id in seen:
            results.append(EventResult(obs.event_id, provider, duplicate=True))
            continue
        seen.add(obs.event_id)
        admission = admit(provider, history, obs, th)
        history, last = admission.history, admission
        markers.append(
            (
                obs.event_id,
                {
                    "provider": provider,
                    "model_id": call.model_id,
                    "outcome": None if obs.outcome is None else obs.outcome.value,
                    "occurred_at": obs.at,
                    "processed_at": call.now,
                    "late": admission.late,
                    "expire_at": obs.at + MARKER_TTL,
                },
            )
        )
        alerts.merges.extend((w.alert_id, w.fields) for w in admission.alert_writes)
        written = len(admission.alert_writes)
        counted = 0
        for t in QuotaType:
            qid = quota_id(provider, call.model_id, t)
            quota = quotas.get(qid)
            if quota is None:
                continue
            change = count(quota, obs.at, call.amount(t), th)
            if not change.changed:
                continue
            quotas[qid] = change.quota
            updated[qid] = change.quota.document()
            counted += change.counted
            alerts.merges.extend((a.alert_id, a.document()) for a in change.raised)
            written += len(change.raised) + alerts.resolve_window(change.resolved, read.alerts)
        results.append(
            EventResult(
                obs.event_id,
                provider,
                late=admission.late,
                status=admission.state.status.value,
                breaker=admission.state.breaker.value,
                quotas_counted=counted,
                alerts_written=written,
            )
        )
    return GroupPlan(
        results=tuple(results),
        markers=tuple(markers),
        history=None if last is None else history,
        health=None if last is None else health_document(provider, last),
        breaker=None if last is None else breaker_document(provider, last, th),
        quotas=updated,
        alerts=alerts,
    )


@dataclass(frozen=True)
class TickPlan:
    """What the schedule's clock tick writes for one provider."""

    history: History
    health: dict[str, Any]
    breaker: dict[str, Any]
    alerts: tuple[tuple[str, dict[str, Any]], ...]  # merges


def tick_observation(at: datetime) -> Observation:
    """The schedule's clock tick at ``at`` (no outcome: it moves time, not the counts)."""
    return Observation(at=at, event_id=f"tick:{at.strftime('%Y%m%dT%H%M%S')}")


def decide_tick(
    provider: str, history: History | None, at: datetime, th: Thresholds
) -> TickPlan | None:
    """Re-evaluate a provider at ``at`` (cooldown elapsed? window moved?); None: no change
    to write (no history yet, events newer than ``at`` already moved it, or this tick was
    applied already)."""
    if history is None:
        return None
    if history.as_of is not None and history.as_of >= at:
        return None
    admission = admit(provider, history, tick_observation(at), th)
    if admission.duplicate or admission.late:
        return None
    return TickPlan(
        history=admission.history,
        health=health_document(provider, admission),
        breaker=breaker_document(provider, admission, th),
        alerts=tuple((w.alert_id, w.fields) for w in admission.alert_writes),
    )


def needs_tick(breaker: Mapping[str, Any], health: Mapping[str, Any] | None) -> bool:
    """Whether the schedule re-evaluates a provider: its breaker is not closed or its
    health is not healthy (a healthy, closed provider has nothing a clock can change)."""
    status = (health or {}).get("status")
    return not (breaker.get("state") == "closed" and status in (None, "healthy"))


@dataclass(frozen=True)
class ResetPlan:
    """What one chunk of ``cron-reset-quotas`` writes."""

    quotas: dict[str, dict[str, Any]]  # quota id -> its new document (updates)
    alerts: AlertChanges

    @property
    def alerts_resolved(self) -> int:
        return len(self.alerts.resolutions)


def reset_alert_ids(quotas: Mapping[str, Quota], at: datetime, th: Thresholds) -> list[str]:
    """The stored alerts that resetting ``quotas`` at ``at`` may resolve (to read first)."""
    return [aid for q in quotas.values() for aid, _ in reset_due(q, at, th).resolved]


def decide_reset(
    quotas: Mapping[str, Quota],
    alerts: Mapping[str, StoredAlert],
    at: datetime,
    th: Thresholds,
) -> ResetPlan:
    """Start the window containing ``at`` for every quota whose window ended by then, and
    resolve its ended window's alerts (those that exist and are not resolved)."""
    updated: dict[str, dict[str, Any]] = {}
    changes = AlertChanges()
    for qid, q in quotas.items():
        change = reset_due(q, at, th)
        if not change.rolled:
            continue
        updated[qid] = change.quota.document()
        changes.resolve_window(change.resolved, alerts)
    return ResetPlan(updated, changes)
