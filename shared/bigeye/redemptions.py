"""Promotion redemptions on Firestore: counts read under a precondition, records written.

Limits must hold when two top-ups take the last redemption at once, so the counts the
engine decides on are documents the same atomic unit writes back:

- ``promo_counters/{promo_id}``: ``redemptions`` (all users). A promotion with
  ``max_redemptions`` reads it and writes it back (the "unchanged since read" precondition
  lets only one of two racing units commit; the other re-runs and sees the new count);
  an unlimited promotion bumps it with a blind ``Increment`` (no contention).
- ``promo_counters/{promo_id}/users/{user_id}``: ``redemptions`` by that user, always read
  and written back (it decides ``max_per_user`` and ``stats.unique_users``).

``promotions/{id}.stats.*`` are commutative ``Increment`` merges in the same unit, and the
``promo_redemptions`` document has a deterministic id, so a re-run unit writes each once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from google.cloud import firestore

from shared.atomic import Unit
from shared.bigeye.promotions import (
    PROMOTIONS_COLLECTION,
    REDEMPTIONS_COLLECTION,
    Promotion,
    Quote,
    Redemptions,
)
from shared.ledger.profiles import number

COUNTERS_COLLECTION = "promo_counters"


def counter_ref(db: Any, promo_id: str) -> firestore.DocumentReference:
    return db.collection(COUNTERS_COLLECTION).document(promo_id)


def user_counter_ref(db: Any, promo_id: str, user_id: str) -> firestore.DocumentReference:
    return counter_ref(db, promo_id).collection("users").document(user_id)


def _count(snap: Any) -> int:
    if snap is None or not snap.exists:
        return 0
    value = (snap.to_dict() or {}).get("redemptions")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def read_redemptions(
    unit: Unit, promotions: Iterable[Promotion], user_id: str
) -> dict[str, Redemptions]:
    """Redemption counts of every promotion for ``user_id``, read in one round trip."""
    promos = list(promotions)
    refs = [user_counter_ref(unit.db, p.promo_id, user_id) for p in promos]
    refs += [counter_ref(unit.db, p.promo_id) for p in promos if p.limited]
    snaps = unit.get_all(refs) if refs else []
    by_path = {s.reference.path: s for s in snaps}
    counts = {}
    for p in promos:
        total = by_path.get(counter_ref(unit.db, p.promo_id).path) if p.limited else None
        by_user = by_path.get(user_counter_ref(unit.db, p.promo_id, user_id).path)
        counts[p.promo_id] = Redemptions(total=_count(total), by_user=_count(by_user))
    return counts


def record_redemption(
    unit: Unit,
    *,
    promo: Promotion,
    quote: Quote,
    user_id: str,
    redemption_id: str,
    counts: Redemptions,
    topup_baht: Decimal,
    slip_id: str | None,
    now: datetime,
) -> None:
    """Write the redemption, its counters and the promotion's ``stats.*`` in ``unit``."""
    db = unit.db
    unit.create(
        db.collection(REDEMPTIONS_COLLECTION).document(redemption_id),
        {
            "promo_id": promo.promo_id,
            "user_id": user_id,
            "topup_baht": number(topup_baht),
            "base_credits": quote.base_credits,
            "bonus_credits": quote.bonus_credits,
            "total_credits": quote.total_credits,
            "promo_name": promo.name,
            "slip_id": slip_id,
            "created_at": now,
        },
    )
    unit.set(
        user_counter_ref(db, promo.promo_id, user_id),
        {
            "promo_id": promo.promo_id,
            "user_id": user_id,
            "redemptions": counts.by_user + 1,
            "updated_at": now,
        },
    )
    total_ref = counter_ref(db, promo.promo_id)
    if promo.limited:
        unit.set(
            total_ref,
            {"promo_id": promo.promo_id, "redemptions": counts.total + 1, "updated_at": now},
        )
    else:
        unit.merge(
            total_ref,
            {"promo_id": promo.promo_id, "redemptions": firestore.Increment(1), "updated_at": now},
        )
    stats: dict[str, Any] = {
        "total_redemptions": firestore.Increment(1),
        "total_bonus_credits": firestore.Increment(quote.bonus_credits),
    }
    baht = number(topup_baht)
    if baht:
        stats["total_baht_collected"] = firestore.Increment(baht)
    if counts.by_user == 0:
        stats["unique_users"] = firestore.Increment(1)
    unit.merge(db.collection(PROMOTIONS_COLLECTION).document(promo.promo_id), {"stats": stats})
