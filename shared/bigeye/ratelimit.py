"""Fixed-window rate limits shared by every instance of the function.

Cloud Functions runs many instances, so counters live in Firestore:
``rate_limits/{scope}_{sha256(key)[:32]}_{window}`` where ``window`` is the minute since
the epoch. Over the limit -> 429. Rejected requests count too (otherwise a client
hammering the API with bad requests would never be slowed down). Each counter carries
``expires_at`` (window end + 1 hour) for a Firestore TTL policy. Two ways to count:

- ``check``: a blind ``Increment`` of every counter of the request in one commit of its
  own (never conflicts), the incremented values read back from the commit's transform
  results; then the request's work. Used by requests without a unit of work of their own,
  and to count a request that was refused.
- ``count_in_unit``: inside the request's own atomic unit (job reserve and finalize): the
  counters are read with the unit's other documents (no extra round trip), checked, and
  written back as ``count + 1`` in the unit's commit under its "unchanged since read"
  precondition, so the limit is exact under concurrency and the request costs no
  separate commit. Over a limit, the unit writes nothing and raises; the caller then
  counts the refused request with ``check`` (as it does for every other refusal).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from google.cloud import firestore

from shared.atomic import Unit
from shared.errors import RateLimited

RATE_LIMITS = "rate_limits"
WINDOW_S = 60


@dataclass(frozen=True)
class Limit:
    """At most ``per_window`` requests of ``scope`` per ``key`` per minute."""

    scope: str
    key: str
    per_window: int


def _counter_id(limit: Limit, window: int) -> str:
    digest = hashlib.sha256(limit.key.encode("utf-8")).hexdigest()[:32]
    return f"{limit.scope}_{digest}_{window}"


def _window(now: datetime) -> tuple[int, datetime]:
    window = int(now.timestamp()) // WINDOW_S
    return window, datetime.fromtimestamp((window + 1) * WINDOW_S, tz=now.tzinfo)


def _refused(now: datetime, window_end: datetime) -> RateLimited:
    retry_after = max(1, math.ceil((window_end - now).total_seconds()))
    return RateLimited(f"Rate limit exceeded; retry in {retry_after} s", retry_after_s=retry_after)


def _fields(limit: Limit, window_end: datetime, count: Any) -> dict[str, Any]:
    return {
        "scope": limit.scope,
        "count": count,
        "window_start": window_end - timedelta(seconds=WINDOW_S),
        "expires_at": window_end + timedelta(hours=1),
    }


def counter_refs(
    db: firestore.Client, limits: list[Limit], now: datetime
) -> list[firestore.DocumentReference]:
    """The counter documents of ``limits`` in the window of ``now`` (active limits only)."""
    window, _ = _window(now)
    return [
        db.collection(RATE_LIMITS).document(_counter_id(limit, window))
        for limit in limits
        if limit.per_window > 0
    ]


def check(db: firestore.Client, limits: list[Limit], now: datetime) -> None:
    """Count one request against each limit; RateLimited when any is exceeded."""
    active = [limit for limit in limits if limit.per_window > 0]
    if not active:
        return
    _, window_end = _window(now)
    batch = db.batch()
    for limit, ref in zip(active, counter_refs(db, active, now), strict=True):
        batch.set(ref, _fields(limit, window_end, firestore.Increment(1)), merge=True)
    results = batch.commit()
    for limit, result in zip(active, results, strict=True):
        transforms = list(result.transform_results)
        count = int(transforms[0].integer_value) if transforms else 0
        if count > limit.per_window:
            raise _refused(now, window_end)


def count_in_unit(unit: Unit, limits: list[Limit], now: datetime) -> None:
    """Count one request in ``unit``: RateLimited (nothing written) when any limit would
    be exceeded, else each counter written back as ``count + 1`` in the unit's commit."""
    active = [limit for limit in limits if limit.per_window > 0]
    if not active:
        return
    _, window_end = _window(now)
    refs = counter_refs(unit.db, active, now)
    snaps = unit.get_all(refs)
    counts = [_stored_count(snap) for snap in snaps]
    if any(n + 1 > limit.per_window for limit, n in zip(active, counts, strict=True)):
        raise _refused(now, window_end)
    for limit, ref, snap, n in zip(active, refs, snaps, counts, strict=True):
        if snap.exists:
            # A plain update: group commit chains one account's requests in one batch.
            unit.update(ref, {"count": n + 1})
        else:
            unit.create(ref, _fields(limit, window_end, 1))


def _stored_count(snap: Any) -> int:
    if not snap.exists:
        return 0
    value = (snap.to_dict() or {}).get("count")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0
