"""Read-only credit views: the balance with rates and promotions, and the history."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from google.cloud import firestore

from shared.bigeye.appsettings import AppSettings
from shared.bigeye.models import TRANSACTIONS
from shared.bigeye.promotions import active_for_client
from shared.clock import ensure_utc
from shared.errors import InvalidInput
from shared.ledger.profiles import number
from shared.settings import get_settings

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
_RATE_KEYS = (
    "istock_photo",
    "istock_video",
    "adobe_photo",
    "adobe_video",
    "shutterstock_photo",
    "shutterstock_video",
)


def balance(
    db: firestore.Client, *, user: dict[str, Any], settings: AppSettings, now: datetime
) -> dict[str, Any]:
    """``GET /api/v1/credit/balance``."""
    rates = settings.credit_rates
    return {
        "credits": int(user.get("credits") or 0),
        "credit_rates": {key: rates.get(key) for key in _RATE_KEYS},
        "exchange_rate": settings.exchange_rate,
        "active_promos": active_for_client(db, now),
    }


def page_size(raw: str | None) -> int:
    """The ``limit`` query parameter: 1..100, default 50."""
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


def display_date(value: Any) -> str:
    """``YYYY-MM-DD HH:MM`` in ``settings.display_timezone``."""
    if not isinstance(value, datetime):
        return ""
    zone = ZoneInfo(get_settings().display_timezone)
    return ensure_utc(value).astimezone(zone).strftime("%Y-%m-%d %H:%M")


def history(
    db: firestore.Client,
    *,
    user_id: str,
    user: dict[str, Any],
    limit: int,
    cursor: str | None,
) -> tuple[dict[str, Any], str | None]:
    """One page of the user's transactions, newest first, and the next page's cursor."""
    query = (
        db.collection(TRANSACTIONS)
        .where(filter=firestore.FieldFilter("user_id", "==", user_id))
        .order_by("created_at", direction=firestore.Query.DESCENDING)
        .order_by("__name__", direction=firestore.Query.DESCENDING)
    )
    if cursor is not None:
        if not cursor or len(cursor) > 100 or "/" in cursor or cursor.startswith("__"):
            raise InvalidInput("cursor is not valid")
        anchor = db.collection(TRANSACTIONS).document(cursor).get()
        if not anchor.exists or (anchor.to_dict() or {}).get("user_id") != user_id:
            raise InvalidInput("cursor is not valid")
        query = query.start_after(anchor)
    snaps = list(query.limit(limit + 1).stream())
    more = len(snaps) > limit
    snaps = snaps[:limit]
    transactions = []
    for snap in snaps:
        tx = snap.to_dict() or {}
        transactions.append(
            {
                "date": display_date(tx.get("created_at")),
                "description": tx.get("description", ""),
                "amount": number(tx.get("amount")),
                "type": tx.get("type"),
            }
        )
    body = {"transactions": transactions, "balance": int(user.get("credits") or 0)}
    return body, (snaps[-1].id if more and snaps else None)
