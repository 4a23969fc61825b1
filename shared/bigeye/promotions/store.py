"""BigEye promotions, the store: the ``promotions`` documents read from Firestore."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from google.cloud import firestore

from shared.bigeye.promotions.model import (
    PROMOTIONS_COLLECTION,
    InvalidPromotion,
    PromoStatus,
    Promotion,
    parse_promotion,
)
from shared.bigeye.promotions.rules import client_list
from shared.clock import ensure_utc
from shared.logs import get_logger, log

_log = get_logger(__name__)


def load_active(db: firestore.Client) -> list[Promotion]:
    """Every readable ACTIVE promotion (unreadable documents are logged and skipped)."""
    query = db.collection(PROMOTIONS_COLLECTION).where(
        filter=firestore.FieldFilter("status", "==", PromoStatus.ACTIVE.value)
    )
    found = []
    for snap in query.stream():
        try:
            found.append(parse_promotion(snap.id, snap.to_dict() or {}))
        except InvalidPromotion as exc:
            log(_log, logging.ERROR, f"promotion ignored: {exc}", promo_id=snap.id)
    return found


def active_for_client(db: firestore.Client, now: datetime) -> list[dict[str, Any]]:
    """``active_promos`` of ``GET /api/v1/credit/balance``."""
    return client_list(load_active(db), ensure_utc(now))
