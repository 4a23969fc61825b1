"""Fixed-window rate limits shared by every instance of the function.

Cloud Functions runs many instances, so counters live in Firestore:
``rate_limits/{scope}_{sha256(key)[:32]}_{window}`` where ``window`` is the minute since
the epoch. A request bumps its counters with a blind ``Increment`` (never conflicts, one
commit for all the counters of the request) and reads the incremented values back from the
commit's transform results; over the limit -> 429. Rejected requests count too (otherwise
a client hammering the API with bad requests would never be slowed down). Each counter
carries ``expires_at`` (window end + 1 hour) for a Firestore TTL policy.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from google.cloud import firestore

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


def check(db: firestore.Client, limits: list[Limit], now: datetime) -> None:
    """Count one request against each limit; RateLimited when any is exceeded."""
    active = [limit for limit in limits if limit.per_window > 0]
    if not active:
        return
    window = int(now.timestamp()) // WINDOW_S
    window_end = datetime.fromtimestamp((window + 1) * WINDOW_S, tz=now.tzinfo)
    batch = db.batch()
    for limit in active:
        ref = db.collection(RATE_LIMITS).document(_counter_id(limit, window))
        batch.set(
            ref,
            {
                "scope": limit.scope,
                "count": firestore.Increment(1),
                "window_start": window_end - timedelta(seconds=WINDOW_S),
                "expires_at": window_end + timedelta(hours=1),
            },
            merge=True,
        )
    results = batch.commit()
    for limit, result in zip(active, results, strict=True):
        transforms = list(result.transform_results)
        count = int(transforms[0].integer_value) if transforms else 0
        if count > limit.per_window:
            retry_after = max(1, math.ceil((window_end - now).total_seconds()))
            raise RateLimited(
                f"Rate limit exceeded; retry in {retry_after} s", retry_after_s=retry_after
            )
