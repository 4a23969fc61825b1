"""Kaiwa monthly rollover: ``userUsage/{userId}_{YYYY-MM}`` of the next period with its bank.

For every ``userUsage`` document of the closed period, the next period's document gets
``bankedSeconds`` = what was left of the closed period's allowance (``rules.
banked_seconds_next``: capped at one month of the tier's ``monthlySeconds``; zero when the
tier has no ``sessionBankingEnabled``). The value is *set*, never added, and the usage
counters of the new period are only initialised (``Increment(0)``), never overwritten, so a
rerun, or usage already metered in the new period, gives the same result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.analytics.rules import next_month, rollover_banked
from shared.atomic import chunked
from shared.usage.config import DEFAULT_PLAN as DEFAULT_TIER
from shared.usage.config import SUBSCRIPTIONS, TIERS, USER_USAGE, active_tier


def user_usage_id(user_id: str, period: str) -> str:
    """The usage engineer's convention (``shared/usage``): ``{userId}_{YYYY-MM}``."""
    return f"{user_id}_{period}"


@dataclass(frozen=True)
class RolloverReport:
    users: int
    banked_users: int
    banked_seconds: int


def _tiers_of(db: firestore.Client, user_ids: list[str]) -> dict[str, str]:
    """Each user's tier: an active Kaiwa ``subscriptions`` entry's ``tierId``
    (``usage.config.active_tier``), else free; one query per 30 users."""
    found: dict[str, list[dict[str, Any]]] = {user_id: [] for user_id in user_ids}
    for group in chunked(sorted(found), 30):  # Firestore's limit on an ``in`` filter
        query = db.collection(SUBSCRIPTIONS).where(filter=FieldFilter("userId", "in", group))
        for snap in query.stream():
            data = snap.to_dict() or {}
            if data.get("userId") in found:
                found[data["userId"]].append(data)
    return {user_id: active_tier(subs) or DEFAULT_TIER for user_id, subs in found.items()}


def rollover_month(
    db: firestore.Client, year: int, month: int, *, updated_at: Any
) -> RolloverReport:
    """Open the period after ``year-month`` for every user with usage in it.

    Per chunk of 400 usage documents: the users' tiers (one subscriptions query per 30
    users), the tier documents not read yet (one ``get_all``), then the pure
    ``rules.rollover_banked`` of each user, then one batch of writes.
    """
    period = f"{year:04d}-{month:02d}"
    ny, nm = next_month(year, month)
    next_period = f"{ny:04d}-{nm:02d}"
    query = db.collection(USER_USAGE).where(filter=FieldFilter("period", "==", period))
    tiers: dict[str, dict[str, Any]] = {}
    users = banked_users = banked_total = 0
    for chunk in chunked(query.stream(), 400):
        rows: list[tuple[str, dict[str, Any]]] = []
        for snap in chunk:
            data = snap.to_dict() or {}
            user_id = data.get("userId")
            if isinstance(user_id, str) and user_id:
                rows.append((user_id, data))
        if not rows:
            continue
        tier_of = _tiers_of(db, [user_id for user_id, _ in rows])
        unread = sorted(set(tier_of.values()) - set(tiers))
        if unread:
            for tier_snap in db.get_all([db.collection(TIERS).document(t) for t in unread]):
                tiers[tier_snap.id] = (tier_snap.to_dict() or {}) if tier_snap.exists else {}
        batch = db.batch()
        for user_id, data in rows:
            banked = rollover_banked(tiers.get(tier_of[user_id], {}), data)
            users += 1
            if banked:
                banked_users += 1
                banked_total += banked
            ref = db.collection(USER_USAGE).document(user_usage_id(user_id, next_period))
            batch.set(
                ref,
                {
                    "userId": user_id,
                    "period": next_period,
                    "conversationsUsed": firestore.Increment(0),
                    "secondsUsed": firestore.Increment(0),
                    "realtimeSessionsUsed": firestore.Increment(0),
                    "bankedSeconds": banked,
                    "bankedSecondsUsed": firestore.Increment(0),
                    "updatedAt": updated_at,
                },
                merge=True,
            )
        batch.commit()
    return RolloverReport(users, banked_users, banked_total)
