"""``checkout.session.*``: credit packs (mode payment) and subscription sign-ups.

Read the session's user and customer link; decide the pack with ``rules.pack_purchase``
(credits only as far as the paid ``amount_subtotal`` confirms them); apply one PURCHASE
keyed by the session, the payment record for clawbacks and the customer link.
"""

from __future__ import annotations

import logging

from shared.atomic import Unit
from shared.billing.attribution import Named, link_customer, resolve_user
from shared.billing.clawback import record_payment
from shared.billing.context import KAIWA_PAYMENTS, Context, Outcome, done, safe_id
from shared.billing.events import CheckoutSession
from shared.billing.rules import checkout_key, kaiwa_id, kaiwa_payment_doc, pack_purchase
from shared.ledger import Kind, Refs
from shared.logs import get_logger, log

logger = get_logger("billing")


def named_users(session: CheckoutSession) -> Named:
    return [
        ("client_reference_id", session.client_reference_id),
        ("metadata.user_id", session.metadata.get("user_id")),
    ]


def checkout(unit: Unit, ctx: Context, session: CheckoutSession) -> Outcome:
    if ctx.event.type == "checkout.session.async_payment_failed":
        log(
            logger,
            logging.WARNING,
            "asynchronous payment failed; nothing credited",
            event_id=ctx.event.id,
            session_id=session.id,
        )
        return done(unit, ctx, "payment_failed", object_id=session.id)
    if session.mode == "subscription":
        user_id, user = resolve_user(
            unit, ctx, named=named_users(session), customer=session.customer
        )
        link_customer(unit, ctx, user_id, user, session.customer)
        return done(unit, ctx, "linked", user_id=user_id, object_id=session.id)
    if session.mode != "payment":
        return done(unit, ctx, "ignored", object_id=session.id, detail=f"mode {session.mode}")
    if session.payment_status not in {"paid", "no_payment_required"}:
        return done(
            unit,
            ctx,
            "awaiting_payment",
            object_id=session.id,
            detail=f"payment_status {session.payment_status}",
        )
    user_id, user = resolve_user(unit, ctx, named=named_users(session), customer=session.customer)
    pack = pack_purchase(session.metadata, session.amount_subtotal, session.currency, ctx.config)
    pi = session.payment_intent
    result = ctx.ledger.credit(
        unit,
        user_id=user_id,
        kind=Kind.PURCHASE,
        amount=pack.credits,
        key=checkout_key(safe_id(session.id, "session id")),
        description=f"Credit pack purchase: {pack.credits} credits",
        refs=Refs(stripe_payment_intent_id=pi),
    )
    if result.replayed:
        return done(
            unit,
            ctx,
            "duplicate_payment",
            user_id=user_id,
            object_id=session.id,
            transaction_id=result.transaction_id,
            detail="session already credited",
        )
    link_customer(unit, ctx, user_id, user, session.customer)
    kaiwa_payment = kaiwa_id("payment", pi or session.id)
    record_payment(
        unit,
        ctx,
        pi,
        {
            "user_id": user_id,
            "transaction_id": result.transaction_id,
            "credits": pack.credits,
            "amount": session.amount_total or 0,
            "currency": session.currency,
            "source": "checkout",
            "checkout_session_id": session.id,
            "invoice_id": session.invoice,
            "subscription_id": None,
            "price_ids": [pack.price_id],
            "kaiwa_payment_id": kaiwa_payment if ctx.profile == "kaiwa" else None,
        },
    )
    if ctx.profile == "kaiwa":
        unit.set(
            ctx.db.collection(KAIWA_PAYMENTS).document(kaiwa_payment),
            kaiwa_payment_doc(
                user_id=user_id,
                subscription_id=None,
                payment_intent=pi,
                invoice_id=session.invoice,
                amount=session.amount_total or 0,
                currency=session.currency,
                status="succeeded",
            ),
        )
    return done(
        unit,
        ctx,
        "applied",
        user_id=user_id,
        object_id=session.id,
        transaction_id=result.transaction_id,
        credits=pack.credits,
    )
