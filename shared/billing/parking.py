"""Parked Stripe events: kept with their payload and reason, answered 200, replayed later.

An event is parked when it cannot be applied as it stands — no user for its customer, an
attribution conflict, an unknown price, a paid amount that does not cover the credits, a
payment not credited (yet), or an object our models reject. Nothing of its effect is
written; ``stripe_parked_events/{event_id}`` keeps the raw payload, the ``reason`` and the
keys (``customer_id``, ``payment_intent_id``) whose arrival replays it automatically.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.cloud import firestore

from shared.atomic import Unit, run_atomically
from shared.billing.context import (
    CUSTOMERS,
    EVENTS,
    INVOICE_PAYMENTS,
    PARKED,
    PAYMENTS,
    SHORTFALLS,
    STRIPE_ID,
    Outcome,
)
from shared.billing.events import ref_id
from shared.billing.rules import instant

# The detail of a parked event that waits for a link another event will bring.
WAITING_PREFIXES = ("no user for customer", "no credited payment")


def park_keys(event_type: str, obj: Any) -> dict[str, Any]:
    """What a parked event waits for: its customer and its payment (intent or charge)."""
    obj = obj if isinstance(obj, dict) else {}
    payment = ref_id(obj.get("payment_intent"))
    customer = ref_id(obj.get("customer"))
    if event_type == "charge.refunded":
        payment = payment or ref_id(obj)
    elif event_type.startswith("charge.dispute."):
        payment = payment or ref_id(obj.get("charge"))
    elif event_type in {"customer.created", "customer.updated"}:
        customer = ref_id(obj)
    return {"customer_id": customer, "payment_intent_id": payment, "object_id": ref_id(obj)}


def park(
    db: firestore.Client,
    *,
    event_id: str,
    event_type: str | None,
    created: int | None,
    api_version: str | None,
    payload: str,
    obj: Any,
    reason: str,
    now: datetime,
    replay: bool,
    profile: str,
    audit: Callable[[Unit, Outcome], None] | None = None,
) -> Outcome:
    """Keep an event we cannot apply yet, with its payload, for an automatic replay.

    ``audit``: called in the same unit with the ``parked`` outcome (an operator's replay)."""
    parked_ref = db.collection(PARKED).document(event_id)
    record_ref = db.collection(EVENTS).document(event_id)
    kind = event_type or ""

    def work(unit: Unit) -> Outcome:
        record, parked = unit.get_all([record_ref, parked_ref])
        if record.exists and not (replay and record.get("status") == "parked"):
            return Outcome(event_id, kind, "duplicate")
        if parked.exists:
            data = parked.to_dict() or {}
            unit.update(
                parked_ref,
                {
                    "status": "parked",
                    "reason": reason,
                    "attempts": int(data.get("attempts") or 0) + 1,
                    "last_attempt_at": now,
                },
            )
        else:
            unit.create(
                parked_ref,
                {
                    "type": event_type,
                    "created": instant(created),
                    "reason": reason,
                    "status": "parked",
                    "payload": payload,
                    **park_keys(kind, obj),
                    "parked_at": now,
                    "last_attempt_at": now,
                    "attempts": 1,
                },
            )
        unit.set(
            record_ref,
            {
                "type": event_type,
                "created": instant(created),
                "api_version": api_version,
                "status": "parked",
                "user_id": None,
                "detail": reason,
                "profile": profile,
                "processed_at": now,
            },
        )
        outcome = Outcome(event_id, kind, "parked", detail=reason)
        if audit is not None:
            audit(unit, outcome)
        return outcome

    return run_atomically(db, work)


def now_resolvable(db: firestore.Client, event_type: str, obj: Any) -> bool:
    """Whether what a just-parked event lacked (customer link, credited payment) exists now."""
    keys = park_keys(event_type, obj)
    payment, customer = keys["payment_intent_id"], keys["customer_id"]
    if event_type.startswith("charge.") and payment and STRIPE_ID.match(payment):
        if db.collection(PAYMENTS).document(payment).get().exists:
            return True
        if event_type != "charge.refunded":
            return False
        # A Kaiwa invoice that bought no credits: its refund needs only the payment link.
        links = (
            db.collection(INVOICE_PAYMENTS)
            .where(filter=firestore.FieldFilter("payment_keys", "array_contains", payment))
            .limit(5)
        )
        return any((link.to_dict() or {}).get("kaiwa_payment_id") for link in links.stream())
    if customer and STRIPE_ID.match(customer):
        return bool(db.collection(CUSTOMERS).document(customer).get().exists)
    return False


def list_parked_events(
    db: firestore.Client, *, include_replayed: bool = False, limit: int = 100
) -> list[dict[str, Any]]:
    """Parked events, oldest first (without their payloads), for operators."""
    query: Any = db.collection(PARKED)
    if not include_replayed:
        query = query.where(filter=firestore.FieldFilter("status", "==", "parked"))
    found = []
    for snap in query.limit(max(1, min(limit, 1000))).stream():
        data = snap.to_dict() or {}
        data.pop("payload", None)
        data["event_id"] = snap.id
        found.append(data)
    found.sort(key=lambda d: (str(d.get("parked_at")), d["event_id"]))
    return found


def list_shortfalls(db: firestore.Client, *, limit: int = 100) -> list[dict[str, Any]]:
    """Clawbacks that could not take back everything (credits already spent)."""
    return [
        {"event_id": s.id, **(s.to_dict() or {})}
        for s in db.collection(SHORTFALLS).limit(max(1, min(limit, 1000))).stream()
    ]
