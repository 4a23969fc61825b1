"""Token history (003): ``token_usage_history/{userId}_{year}_{month}`` from ``daily_token_usage``.

The daily rollup copies each user's ``tokensUsed`` of the day into the month's
``dailyUsage["DD"]`` (a set, not an increment: reruns and late usage give the same map),
then recomputes every figure from the whole map. ``createdAt`` is the start of the first
day rolled into the document, ``updatedAt`` the end of the latest day rolled into it, so a
rerun writes identical documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.analytics.rules import ONE_MICROSECOND, day_start, token_history_fields
from shared.atomic import chunked

DAILY_TOKEN_USAGE = "daily_token_usage"
TOKEN_USAGE_HISTORY = "token_usage_history"


def history_id(user_id: str, year: int, month: int) -> str:
    return f"{user_id}_{year:04d}_{month:02d}"


@dataclass(frozen=True)
class TokenHistoryReport:
    users: int
    documents_read: int


def roll_token_day(db: firestore.Client, day: date) -> TokenHistoryReport:
    """Fold every user's ``daily_token_usage`` of ``day`` into their month's history."""
    query = db.collection(DAILY_TOKEN_USAGE).where(
        filter=FieldFilter("date", "==", day.isoformat())
    )
    daily: dict[str, dict[str, Any]] = {}
    read = 0
    for snap in query.stream():
        read += 1
        data = snap.to_dict() or {}
        user_id = data.get("userId")
        if isinstance(user_id, str) and user_id:
            daily[user_id] = data
    key = f"{day.day:02d}"
    day_begin = day_start(day)
    day_end = day_begin + timedelta(days=1) - ONE_MICROSECOND
    history = db.collection(TOKEN_USAGE_HISTORY)
    for users in chunked(sorted(daily), 250):
        refs = [history.document(history_id(u, day.year, day.month)) for u in users]
        existing = {s.id: (s.to_dict() or {}) for s in db.get_all(refs) if s.exists}
        read += len(refs)
        batch = db.batch()
        for user_id, ref in zip(users, refs, strict=True):
            before = existing.get(ref.id, {})
            usage = {str(k): int(v) for k, v in (before.get("dailyUsage") or {}).items()}
            usage[key] = int(daily[user_id].get("tokensUsed") or 0)
            through = max(int(k) for k in usage)
            previous_update = before.get("updatedAt")
            created = before.get("createdAt")
            doc = {
                "userId": user_id,
                "year": day.year,
                "month": day.month,
                **token_history_fields(usage, through),
                "userType": _user_type(before, daily[user_id], day),
                "createdAt": min(created, day_begin) if created else day_begin,
                "updatedAt": max(previous_update, day_end) if previous_update else day_end,
            }
            batch.set(ref, doc)
        batch.commit()
    return TokenHistoryReport(users=len(daily), documents_read=read)


def _user_type(before: dict[str, Any], daily: dict[str, Any], day: date) -> str:
    """The user type of the latest day rolled (an earlier day's rerun keeps the later one)."""
    current = str(daily.get("userType") or before.get("userType") or "trial")
    if before.get("userType") and before.get("dailyUsage"):
        latest = max(int(k) for k in before["dailyUsage"])
        if latest > day.day:
            return str(before["userType"])
    return current
