"""Kaiwa's ``scenarioMetadata/{scenarioId}`` aggregates, kept from ``userScenarioProgress``.

Each write of a progress document contributes the DIFFERENCE between its new and old
contribution, so creating, updating and deleting a progress document all keep the sums
exact and the order of events does not matter. Definitions (docs/usage.md):
- ``totalAttempts`` = sum of ``timesAttempted``; ``totalTimesUsed`` = sum of
  ``timesCompleted``; ``completionRate`` = totalTimesUsed / totalAttempts (0..1, 0 when none);
- ``amountSavedCount`` = progress documents with ``isSaved`` true;
- ``ratingsCount`` = progress documents with a numeric ``userRating``; ``averageRating`` =
  ``ratingsSum`` / ratingsCount (0 when none);
- ``averageTimeSpent`` = ``totalTimeSpentSeconds`` / totalAttempts, seconds per attempt.
``ratingsSum`` and ``totalTimeSpentSeconds`` are stored beside the seed's fields so that
averages stay exact. Each event is applied once: its id is recorded in
``scenario_progress_events`` in the same atomic unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from google.cloud import firestore

from shared.atomic import Unit, run_atomically
from shared.errors import InvalidInput

METADATA = "scenarioMetadata"
PROCESSED = "scenario_progress_events"
PROCESSED_TTL = timedelta(days=7)
_COUNTS = ("totalAttempts", "totalTimesUsed", "amountSavedCount", "ratingsCount")
_SUMS = ("ratingsSum", "totalTimeSpentSeconds")


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return 0
    return int(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True)
class Contribution:
    """What one progress document adds to its scenario's aggregates."""

    totalAttempts: int = 0
    totalTimesUsed: int = 0
    amountSavedCount: int = 0
    ratingsCount: int = 0
    ratingsSum: float = 0.0
    totalTimeSpentSeconds: float = 0.0

    @classmethod
    def of(cls, doc: Mapping[str, Any] | None) -> Contribution:
        if doc is None:
            return cls()
        rating = _number(doc.get("userRating"))
        spent = _number(doc.get("totalTimeSpentSeconds"))
        return cls(
            totalAttempts=_count(doc.get("timesAttempted")),
            totalTimesUsed=_count(doc.get("timesCompleted")),
            amountSavedCount=1 if doc.get("isSaved") is True else 0,
            ratingsCount=1 if rating is not None else 0,
            ratingsSum=rating or 0.0,
            totalTimeSpentSeconds=max(0.0, spent or 0.0),
        )

    def minus(self, other: Contribution) -> dict[str, float]:
        return {name: getattr(self, name) - getattr(other, name) for name in (*_COUNTS, *_SUMS)}


def apply_delta(current: Mapping[str, Any], delta: Mapping[str, float]) -> dict[str, Any]:
    """The aggregate fields after adding ``delta`` (pure)."""
    out: dict[str, Any] = {}
    for name in _COUNTS:
        out[name] = max(0, int(current.get(name) or 0) + int(delta.get(name, 0)))
    for name in _SUMS:
        out[name] = max(0.0, float(current.get(name) or 0) + float(delta.get(name, 0.0)))
    if out["ratingsCount"] == 0:
        out["ratingsSum"] = 0.0
    out["averageRating"] = (
        round(out["ratingsSum"] / out["ratingsCount"], 4) if out["ratingsCount"] else 0.0
    )
    attempts = out["totalAttempts"]
    out["completionRate"] = (
        round(min(1.0, out["totalTimesUsed"] / attempts), 4) if attempts else 0.0
    )
    out["averageTimeSpent"] = round(out["totalTimeSpentSeconds"] / attempts, 2) if attempts else 0.0
    return out


def scenario_id_of(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> str:
    """The scenario a progress document belongs to (``scenarioId``)."""
    for doc in (after, before):
        value = (doc or {}).get("scenarioId")
        if isinstance(value, str) and value and "/" not in value:
            return value
    raise InvalidInput("userScenarioProgress document has no scenarioId")


def apply_progress_change(
    db: firestore.Client,
    *,
    event_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    now: datetime,
) -> bool:
    """Apply one progress change to its scenario's metadata once; False for a replay."""
    if not event_id:
        raise InvalidInput("the event has no id")
    scenario_id = scenario_id_of(before, after)
    old_scenario = (before or {}).get("scenarioId")
    changes: list[tuple[str, dict[str, float]]] = []
    if before is not None and isinstance(old_scenario, str) and old_scenario != scenario_id:
        # The progress moved to another scenario: take it out of the old one.
        changes.append((old_scenario, Contribution().minus(Contribution.of(before))))
        changes.append((scenario_id, Contribution.of(after).minus(Contribution())))
    else:
        changes.append((scenario_id, Contribution.of(after).minus(Contribution.of(before))))
    if all(not any(delta.values()) for _, delta in changes):
        return False
    marker = db.collection(PROCESSED).document(event_id)

    def work(unit: Unit) -> bool:
        refs = [db.collection(METADATA).document(sid) for sid, _ in changes]
        snaps = unit.get_all([marker, *refs])
        if snaps[0].exists:
            return False
        for ref, snap, (sid, delta) in zip(refs, snaps[1:], changes, strict=True):
            current = snap.to_dict() or {} if snap.exists else {}
            fields = apply_delta(current, delta)
            fields["scenarioId"] = sid
            fields["createdAt"] = current.get("createdAt") or now
            fields["updatedAt"] = now
            unit.set(ref, {**current, **fields})
        unit.create(
            marker,
            {
                "scenarioIds": [sid for sid, _ in changes],
                "appliedAt": now,
                "expiresAt": now + PROCESSED_TTL,
            },
        )
        return True

    return run_atomically(db, work)
