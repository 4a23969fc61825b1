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

from shared.analytics.rules import banked_seconds_next, next_month
from shared.atomic import chunked

USER_USAGE = "userUsage"
TIERS = "tiers"
SUBSCRIPTIONS = "subscriptions"
DEFAULT_TIER = "free"


def user_usage_id(user_id: str, period: str) -> str:
    """The usage engineer's convention (``shared/usage``): ``{userId}_{YYYY-MM}``."""
    return f"{user_id}_{period}"


@dataclass(frozen=True)
class RolloverReport:
    users: int
    banked_users: int
    banked_seconds: int


def _tier_of(db: firestore.Client, user_id: str) -> str:
    """The user's tier: an active Kaiwa ``subscriptions`` entry's ``tierId``, else free."""
    query = db.collection(SUBSCRIPTIONS).where(filter=FieldFilter("userId", "==", user_id))
    for snap in query.limit(20).stream():
        data = snap.to_dict() or {}
        active = data.get("isActive") is True or data.get("status") in {"active", "trialing"}
        tier = data.get("tierId")
        if active and isinstance(tier, str) and tier:
            return tier
    return DEFAULT_TIER


def rollover_month(
    db: firestore.Client, year: int, month: int, *, updated_at: Any
) -> RolloverReport:
    """Open the period after ``year-month`` for every user with usage in it."""
    period = f"{year:04d}-{month:02d}"
    ny, nm = next_month(year, month)
    next_period = f"{ny:04d}-{nm:02d}"
    query = db.collection(USER_USAGE).where(filter=FieldFilter("period", "==", period))
    tiers: dict[str, dict[str, Any]] = {}
    users = banked_users = banked_total = 0
    for chunk in chunked(query.stream(), 400):
        batch = db.batch()
        for snap in chunk:
            data = snap.to_dict() or {}
            user_id = data.get("userId")
            if not isinstance(user_id, str) or not user_id:
                continue
            tier_id = _tier_of(db, user_id)
            if tier_id not in tiers:
                tier_snap = db.collection(TIERS).document(tier_id).get()
                tiers[tier_id] = (tier_snap.to_dict() or {}) if tier_snap.exists else {}
            tier = tiers[tier_id]
            monthly = tier.get("monthlySeconds")
            banked = banked_seconds_next(
                monthly_seconds=int(monthly) if isinstance(monthly, int | float) else 0,
                seconds_used=int(data.get("secondsUsed") or 0),
                banked_seconds=int(data.get("bankedSeconds") or 0),
                banked_seconds_used=int(data.get("bankedSecondsUsed") or 0),
                banking_enabled=tier.get("sessionBankingEnabled") is True,
            )
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
