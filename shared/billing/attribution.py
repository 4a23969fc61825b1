"""Who a Stripe event is for: read the customer's links, decide the user, link once.

Read: the users the event names (``client_reference_id``, ``metadata.user_id``, the
subscription's ``metadata.user_id``, the user stored for its subscription) and the user
its customer is already linked to — ``stripe_customers/{customer}`` (ours), the profile's
customer field on ``users`` (``stripe_customer_id`` / ``stripeCustomerId``, written by the
app), or the Firebase extension's ``customers/{uid}.stripeId``. Decide:
``rules.decide_user`` (a conflict parks the event, never resolved silently). Apply: a
customer seen for the first time is linked, once; it is never relinked by an event.
"""

from __future__ import annotations

import logging
from typing import Any

from google.cloud import firestore

from shared.atomic import Unit
from shared.billing.context import (
    CUSTOMERS,
    EXTENSION_CUSTOMERS,
    USER_CUSTOMER_FIELD,
    Context,
    Outcome,
    done,
    safe_id,
    update_user,
    valid_doc_id,
)
from shared.billing.events import Customer
from shared.billing.rules import Unresolvable, decide_user
from shared.logs import get_logger, log

logger = get_logger("billing")

Named = list[tuple[str, str | None]]


def customer_owner(unit: Unit, ctx: Context, customer: str | None) -> tuple[str, str] | None:
    """(source, user id) the customer is already linked to, or None when it is not."""
    if not customer:
        return None
    snap = unit.get(ctx.db.collection(CUSTOMERS).document(safe_id(customer, "customer")))
    if snap.exists:
        return ("stripe_customers", str(snap.get("user_id")))
    owners: dict[str, str] = {}
    field = USER_CUSTOMER_FIELD.get(ctx.profile)
    if field is not None:
        users = ctx.db.collection(ctx.ledger.profile.users_collection)
        query = users.where(filter=firestore.FieldFilter(field, "==", customer)).limit(2)
        owners.update({s.id: f"users.{field}" for s in unit.query(query)})
    extension = ctx.db.collection(EXTENSION_CUSTOMERS)
    query = extension.where(filter=firestore.FieldFilter("stripeId", "==", customer)).limit(2)
    for snap in unit.query(query):
        owners.setdefault(snap.id, "customers.stripeId")
    if len(owners) > 1:
        raise Unresolvable(
            f"attribution conflict: customer {customer} is linked to several users "
            f"({', '.join(sorted(owners))})"
        )
    return next(((source, uid) for uid, source in owners.items()), None)


def resolve_user(
    unit: Unit, ctx: Context, *, named: Named, customer: str | None
) -> tuple[str, dict[str, Any]]:
    """The user an event is for, and their document; Unresolvable when unknown or in doubt."""
    linked = customer_owner(unit, ctx, customer)
    if linked is None and not any(uid for _, uid in named):
        raise Unresolvable(
            f"no user for customer {customer}" if customer else "the event names no user"
        )
    user_id = decide_user(named, linked)
    if not valid_doc_id(user_id):
        raise Unresolvable(f"user id {user_id!r} is not a valid document id")
    snap = unit.get(ctx.ledger.user_ref(user_id))
    if not snap.exists:
        raise Unresolvable(f"unknown user {user_id}")
    return user_id, snap.to_dict() or {}


def link_customer(
    unit: Unit, ctx: Context, user_id: str, user: dict[str, Any], customer: str | None
) -> None:
    """Link a customer seen for the first time to the user, and fill the user's field.

    ``resolve_user`` already parked any event whose customer belongs to someone else, so
    an existing link is left as it is. The user's own customer field is written only when
    empty: a user who pays through a second customer keeps the first one there.
    """
    if not customer:
        return
    ref = ctx.db.collection(CUSTOMERS).document(safe_id(customer, "customer"))
    if not unit.get(ref).exists:
        unit.create(ref, {"user_id": user_id, "linked_at": ctx.now, "event_id": ctx.event.id})
        ctx.linked.append(("customer_id", customer))
    field = USER_CUSTOMER_FIELD.get(ctx.profile)
    if field is None or user.get(field) == customer:
        return
    if user.get(field):
        log(
            logger,
            logging.WARNING,
            "user already has another Stripe customer; left unchanged",
            event_id=ctx.event.id,
            user_id=user_id,
            customer=customer,
        )
        return
    update_user(unit, ctx, user_id, {field: customer})


def customer_event(unit: Unit, ctx: Context, cust: Customer) -> Outcome:
    """``customer.created`` / ``.updated``: ``metadata.firebaseUID`` links the customer."""
    firebase_uid = cust.metadata.get("firebaseUID")
    if not firebase_uid:
        return done(unit, ctx, "ignored", object_id=cust.id, detail="no metadata.firebaseUID")
    user_id, user = resolve_user(
        unit, ctx, named=[("metadata.firebaseUID", firebase_uid)], customer=cust.id
    )
    link_customer(unit, ctx, user_id, user, cust.id)
    return done(unit, ctx, "linked", user_id=user_id, object_id=cust.id)
