"""The model router the app's workers import: score candidates, choose, record the decision.

``score_candidates`` and ``choose`` are pure (health, breaker and quota documents in, a
decision out); ``route`` reads those documents and ``pipeline_config`` in one round trip and
records the decision in ``routing_decisions`` (seed 000 fields). The score is documented in
docs/providers.md:

    score = (w_health * health + w_quota * headroom + w_cost * cheapness) / (sum of weights)

- health = success_rate x 0.7 when degraded x 0.5 when half-open (1.0 with no data);
- headroom = the smallest (remaining - this call's need) / limit over the model's quotas
  (1.0 with no quota, or when the quota's window has ended);
- cheapness = cheapest eligible estimate / this estimate (1.0 for free calls).

A candidate is not eligible when its provider's breaker is open and cooling down, when it is
half-open with every trial attempt used, when the provider is ``unavailable`` (breaker
closed), or when one of its quotas is exhausted or would be exceeded by this call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from google.cloud import firestore

from shared.clock import get_clock
from shared.errors import InvalidInput, Unavailable
from shared.providers.core import Thresholds
from shared.providers.quotas import QuotaType, quota_id, usd_to_micro
from shared.providers.service import BREAKERS, HEALTH, QUOTAS, thresholds
from shared.settings import get_settings

DECISIONS = "routing_decisions"
PIPELINE_CONFIG = "pipeline_config"

# Flags of pipeline_config and their defaults (settings.pipeline_flags overrides them, the
# pipeline_config document overrides both).
DEFAULT_FLAGS: dict[str, bool] = {
    "planner_enabled": False,
    "model_routing_enabled": True,
    "record_routing_decisions": True,
}

DEGRADED_FACTOR = 0.7
HALF_OPEN_FACTOR = 0.5


class TaskType(StrEnum):
    """``routing_decisions.task_type`` (seed 000)."""

    LLM = "LLM"
    TTS = "TTS"
    TRANSCRIPTION = "TRANSCRIPTION"


@dataclass(frozen=True)
class Candidate:
    """A model the worker could call, with its estimated cost (USD) and token use."""

    provider: str
    model_id: str
    estimated_cost: Decimal = Decimal(0)
    estimated_tokens: int = 0


@dataclass(frozen=True)
class Scored:
    """A candidate with its score (0 when not eligible) and why."""

    candidate: Candidate
    score: float
    eligible: bool
    reason: str

    def entry(self) -> dict[str, Any]:
        return {"model": self.candidate.model_id, "score": self.score, "reason": self.reason}


@dataclass(frozen=True)
class RoutingDecision:
    """The choice, as returned to the worker and recorded in ``routing_decisions``."""

    task_type: str
    selected_model: str
    provider: str
    score: float
    selection_reason: str
    estimated_cost: float
    fallback_chain: list[str]
    all_candidates: list[dict[str, Any]]
    timestamp: datetime
    job_id: str | None = None
    decision_id: str | None = None
    flags: dict[str, bool] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "task_type": self.task_type,
            "selected_model": self.selected_model,
            "score": self.score,
            "selection_reason": self.selection_reason,
            "estimated_cost": self.estimated_cost,
            "fallback_chain": list(self.fallback_chain),
            "all_candidates": list(self.all_candidates),
            "timestamp": self.timestamp,
        }


def _breaker_gate(
    breaker: Mapping[str, Any] | None, now: datetime, th: Thresholds
) -> tuple[bool, bool, str]:
    """(eligible, half_open, reason) from the provider's breaker, evaluated at ``now``."""
    if not breaker:
        return True, False, ""
    state = breaker.get("state") or "closed"
    if state == "open":
        opened_at = breaker.get("opened_at")
        cooldown = timedelta(seconds=int(breaker.get("cooldown_s") or th.cooldown_s))
        if opened_at is not None and now >= opened_at + cooldown:
            return True, True, "circuit half-open after cooldown (trial call)"
        until = "" if opened_at is None else f" until {(opened_at + cooldown).isoformat()}"
        return False, False, f"circuit breaker open{until}"
    if state == "half_open":
        limit = int(breaker.get("half_open_max_attempts") or th.half_open_max_attempts)
        if int(breaker.get("half_open_attempts") or 0) >= limit:
            return False, True, "circuit half-open: every trial attempt in use"
        return True, True, "circuit half-open (trial call)"
    return True, False, ""


def _headroom(
    c: Candidate, quotas: Mapping[str, Mapping[str, Any]], now: datetime
) -> tuple[float, str | None]:
    """(smallest headroom after this call, reason it is not allowed or None)."""
    headroom = 1.0
    for qt in QuotaType:
        q = quotas.get(quota_id(c.provider, c.model_id, qt))
        if not q:
            continue
        reset_at = q.get("reset_at")
        if reset_at is not None and reset_at <= now:
            continue  # the window ended: the next call starts a fresh one
        limit = int(q.get("limit") or 0)
        used = int(q.get("used") or 0)
        need = {
            QuotaType.REQUESTS: 1,
            QuotaType.TOKENS: c.estimated_tokens,
            QuotaType.COST: usd_to_micro(c.estimated_cost),
        }[qt]
        if q.get("status") == "exhausted" or limit <= 0 or used >= limit:
            return 0.0, f"{qt.value} quota exhausted"
        if used + need > limit:
            return 0.0, f"{qt.value} quota would be exceeded"
        headroom = min(headroom, (limit - used - need) / limit)
    return headroom, None


def score_candidates(
    candidates: Sequence[Candidate],
    health: Mapping[str, Mapping[str, Any]],
    breakers: Mapping[str, Mapping[str, Any]],
    quotas: Mapping[str, Mapping[str, Any]],
    now: datetime,
    th: Thresholds,
) -> list[Scored]:
    """Score every candidate (pure); keeps the input order."""
    gated: list[tuple[Candidate, bool, str, float, float]] = []
    for c in candidates:
        ok, half_open, why = _breaker_gate(breakers.get(c.provider), now, th)
        h = health.get(c.provider) or {}
        status = h.get("status") or "healthy"
        if ok and status == "unavailable" and not half_open:
            ok, why = False, "provider unavailable"
        headroom, quota_why = _headroom(c, quotas, now)
        if ok and quota_why:
            ok, why = False, quota_why
        health_score = float(h.get("success_rate", 1.0) if h else 1.0)
        if status == "degraded":
            health_score *= DEGRADED_FACTOR
        if half_open:
            health_score *= HALF_OPEN_FACTOR
        notes = ", ".join([status] + ([why] if why else []))
        gated.append((c, ok, notes, health_score, headroom))
    costs = [c.estimated_cost for c, ok, *_ in gated if ok]
    cheapest = min(costs) if costs else Decimal(0)
    total_w = th.weight_health + th.weight_quota + th.weight_cost
    out: list[Scored] = []
    for c, ok, notes, health_score, headroom in gated:
        if not ok:
            out.append(Scored(c, 0.0, False, f"not eligible: {notes}"))
            continue
        cheap = 1.0 if c.estimated_cost <= 0 else float(cheapest / c.estimated_cost)
        score = (
            th.weight_health * health_score + th.weight_quota * headroom + th.weight_cost * cheap
        ) / total_w
        reason = (
            f"{notes}; health {health_score:.3f}, quota headroom {headroom:.3f}, "
            f"cost ${c.estimated_cost} ({cheap:.3f} of cheapest)"
        )
        out.append(Scored(c, round(score, 4), True, reason))
    return out


def choose(
    task_type: str,
    scored: Sequence[Scored],
    now: datetime,
    *,
    job_id: str | None = None,
    routing_enabled: bool = True,
) -> RoutingDecision:
    """The best eligible candidate (ties keep the caller's order) and its fallbacks."""
    eligible = [s for s in scored if s.eligible]
    if not routing_enabled:
        first = scored[0]
        return RoutingDecision(
            task_type,
            first.candidate.model_id,
            first.candidate.provider,
            first.score,
            "model routing disabled in pipeline_config: the first candidate",
            float(first.candidate.estimated_cost),
            [s.candidate.model_id for s in scored[1:]],
            [s.entry() for s in scored],
            now,
            job_id,
        )
    if not eligible:
        detail = "; ".join(f"{s.candidate.model_id}: {s.reason}" for s in scored)
        raise Unavailable(f"no eligible model for {task_type}: {detail}")
    ranked = sorted(eligible, key=lambda s: -s.score)  # stable: ties keep input order
    best = ranked[0]
    return RoutingDecision(
        task_type,
        best.candidate.model_id,
        best.candidate.provider,
        best.score,
        f"highest score {best.score} of {len(eligible)} eligible "
        f"(of {len(scored)} candidates): {best.reason}",
        float(best.candidate.estimated_cost),
        [s.candidate.model_id for s in ranked[1:]],
        [s.entry() for s in scored],
        now,
        job_id,
    )


def _flags_from(doc: Mapping[str, Any] | None) -> dict[str, bool]:
    flags = dict(DEFAULT_FLAGS)
    flags.update(get_settings().pipeline_flags)
    for name, value in (doc or {}).items():
        if isinstance(value, bool):
            flags[name] = value
    return flags


def pipeline_flags(db: firestore.Client) -> dict[str, bool]:
    """The runtime feature flags of ``pipeline_config`` over the settings' defaults."""
    ref = db.collection(PIPELINE_CONFIG).document(get_settings().pipeline_config_document)
    return _flags_from(ref.get().to_dict())


def route(
    db: firestore.Client,
    task_type: str,
    candidates: Sequence[Candidate],
    *,
    job_id: str | None = None,
    now: datetime | None = None,
    th: Thresholds | None = None,
) -> RoutingDecision:
    """Choose a model for ``task_type`` from ``candidates`` and record the decision."""
    if task_type not in TaskType.__members__:
        raise InvalidInput(f"task_type must be one of {', '.join(TaskType)}")
    if not candidates:
        raise InvalidInput("at least one candidate model is required")
    if len({(c.provider, c.model_id) for c in candidates}) != len(candidates):
        raise InvalidInput("candidates must be distinct")
    th = th or thresholds()
    now = now or get_clock().now()
    providers = sorted({c.provider for c in candidates})
    refs = [db.collection(PIPELINE_CONFIG).document(get_settings().pipeline_config_document)]
    refs += [db.collection(HEALTH).document(p) for p in providers]
    refs += [db.collection(BREAKERS).document(p) for p in providers]
    qids = [quota_id(c.provider, c.model_id, qt) for c in candidates for qt in QuotaType]
    refs += [db.collection(QUOTAS).document(q) for q in qids]
    snaps = {s.reference.path: s.to_dict() for s in db.get_all(refs) if s.exists}

    def doc(ref: Any) -> dict[str, Any] | None:
        return snaps.get(ref.path)

    flags = _flags_from(doc(refs[0]))
    health = {p: doc(db.collection(HEALTH).document(p)) or {} for p in providers}
    breakers = {p: doc(db.collection(BREAKERS).document(p)) or {} for p in providers}
    quotas = {q: doc(db.collection(QUOTAS).document(q)) or {} for q in qids}
    scored = score_candidates(candidates, health, breakers, quotas, now, th)
    decision = choose(
        task_type, scored, now, job_id=job_id, routing_enabled=flags["model_routing_enabled"]
    )
    decision_id = None
    if flags["record_routing_decisions"]:
        ref = db.collection(DECISIONS).document()
        ref.set(decision.document())
        decision_id = ref.id
    return RoutingDecision(**{**decision.__dict__, "decision_id": decision_id, "flags": flags})
