"""Invoices: a grant per paid invoice, past_due on failure, and the payment <-> invoice link.

Read the invoice's subscription state, user and what earlier events recorded
(``read_invoice_paid``); decide with ``rules.decide_invoice_paid`` (pure: the grant of
``rules.decide_grant`` -- the plan line's monthly credits, the prorated difference for an
upgrade, nothing for a $0 invoice -- and every document it writes); apply one
SUBSCRIPTION_GRANT keyed by the invoice, ``processed_invoices`` and the payment record that
refunds and disputes find.

From API 2025-03-31 on an invoice names no payment intent and a charge no invoice: the
link is ``invoice_payment.paid``. ``stripe_invoice_payments/{invoice_id}`` joins the
grant and the payments whichever arrives first; once both are known,
``stripe_payments/{payment}`` is written and parked refunds of it are replayed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from shared.atomic import Unit
from shared.billing.attribution import link_customer, resolve_user
from shared.billing.clawback import record_payment, write_payment_record
from shared.billing.context import (
    INVOICE_PAYMENTS,
    KAIWA_PAYMENTS,
    PAYMENTS,
    PROCESSED_INVOICES,
    STRIPE_ID,
    SUBSCRIPTIONS,
    Context,
    Outcome,
    done,
    safe_id,
)
from shared.billing.events import Invoice, InvoicePayment
from shared.billing.rules import (
    InvoicePaidPlan,
    SubscriptionSnapshot,
    decide_grant,
    decide_invoice_paid,
    invoice_key,
    invoice_payment_keys,
    is_newer,
    kaiwa_id,
    kaiwa_payment_doc,
    order_key,
    stored_key,
)
from shared.billing.subscriptions import subscription_state, write_subscription
from shared.ledger import Kind, Refs
from shared.logs import get_logger, log

logger = get_logger("billing")


def _invoice_subscriber(
    unit: Unit, ctx: Context, inv: Invoice
) -> tuple[str, Any, dict[str, Any], str, dict[str, Any]]:
    """The invoice's subscription id, its ordering state (ref, data) and its user."""
    sub_id = safe_id(inv.subscription_id, "subscription id")
    state_ref, state = subscription_state(unit, ctx, sub_id)
    user_id, user = resolve_user(
        unit,
        ctx,
        named=[
            ("subscription metadata.user_id", inv.subscription_metadata.get("user_id")),
            ("invoice metadata.user_id", inv.metadata.get("user_id")),
            ("stripe_subscription_state", state.get("user_id")),
        ],
        customer=inv.customer,
    )
    return sub_id, state_ref, state, user_id, user


@dataclass(frozen=True)
class InvoicePaidRead:
    """What ``invoice.paid`` reads, all through the unit."""

    sub_id: str
    state_ref: Any
    state: dict[str, Any]
    user_id: str
    user: dict[str, Any]
    processed: bool
    link_ref: Any
    link: dict[str, Any]
    #: ``stripe_payments/{key}`` that exist, of the invoice's payment keys (read only when
    #: the invoice grants credits: the records a grant writes).
    recorded: frozenset[str]


def read_invoice_paid(unit: Unit, ctx: Context, inv: Invoice) -> InvoicePaidRead:
    """The subscriber, ``processed_invoices``, the payment link (both prefetched with the
    event record), then in one round trip the payment records the grant would write."""
    sub_id, state_ref, state, user_id, user = _invoice_subscriber(unit, ctx, inv)
    processed_ref = ctx.db.collection(PROCESSED_INVOICES).document(safe_id(inv.id, "invoice id"))
    link_ref = ctx.db.collection(INVOICE_PAYMENTS).document(inv.id)
    processed, link_snap = unit.get_all([processed_ref, link_ref])
    link = (link_snap.to_dict() or {}) if link_snap.exists else {}
    recorded: frozenset[str] = frozenset()
    if not processed.exists and decide_grant(inv, ctx.config, ctx.profile, state).credits > 0:
        keys = [k for k in invoice_payment_keys(inv, link) if STRIPE_ID.match(k)]
        snaps = unit.get_all([ctx.db.collection(PAYMENTS).document(k) for k in keys])
        recorded = frozenset(k for k, snap in zip(keys, snaps, strict=True) if snap.exists)
    return InvoicePaidRead(
        sub_id, state_ref, state, user_id, user, processed.exists, link_ref, link, recorded
    )


def invoice_paid(unit: Unit, ctx: Context, inv: Invoice) -> Outcome:
    if not inv.subscription_id:
        return done(unit, ctx, "ignored", object_id=inv.id, detail="not a subscription invoice")
    read = read_invoice_paid(unit, ctx, inv)
    if read.processed:
        return done(
            unit,
            ctx,
            "duplicate_invoice",
            user_id=read.user_id,
            object_id=inv.id,
            detail="invoice already processed",
        )
    plan = decide_invoice_paid(
        inv,
        config=ctx.config,
        profile=ctx.profile,
        sub_id=read.sub_id,
        user_id=read.user_id,
        state=read.state,
        link=read.link,
        now=ctx.now,
    )
    return _apply_invoice_paid(unit, ctx, inv, read, plan)


def _apply_invoice_paid(
    unit: Unit, ctx: Context, inv: Invoice, read: InvoicePaidRead, plan: InvoicePaidPlan
) -> Outcome:
    grant = plan.grant
    transaction_id = None
    if grant.credits > 0:
        result = ctx.ledger.credit(
            unit,
            user_id=read.user_id,
            kind=Kind.SUBSCRIPTION_GRANT,
            amount=grant.credits,
            key=invoice_key(inv.id),
            description=grant.description,
            refs=Refs(subscription_id=read.sub_id, stripe_payment_intent_id=inv.payment_intent),
        )
        transaction_id = result.transaction_id
    unit.create(
        ctx.db.collection(PROCESSED_INVOICES).document(safe_id(inv.id, "invoice id")),
        plan.processed,
    )
    unit.set(read.state_ref, plan.state)
    if plan.granted_this_period is not None:
        unit.update(
            ctx.db.collection(SUBSCRIPTIONS).document(read.sub_id),
            {"credits_granted_this_period": plan.granted_this_period},
        )
    record: dict[str, Any] | None = None
    if plan.payment_record is not None and transaction_id is not None:
        record = {**plan.payment_record, "transaction_id": transaction_id}
        for key in plan.payment_keys:
            write_payment_record(unit, ctx, key, record, exists=key in read.recorded)
    unit.set(read.link_ref, {**plan.link, "grant": record})
    if plan.kaiwa_payment is not None:
        if record is None:
            # No credits bought: a refund parked for this payment needs only this document.
            ctx.linked.extend(("payment_intent_id", key) for key in plan.payment_keys)
        unit.set(
            ctx.db.collection(KAIWA_PAYMENTS).document(kaiwa_id("invoice", inv.id)),
            plan.kaiwa_payment,
        )
    link_customer(unit, ctx, read.user_id, read.user, inv.customer)
    return done(
        unit,
        ctx,
        "applied",
        user_id=read.user_id,
        object_id=inv.id,
        transaction_id=transaction_id,
        credits=grant.credits,
        detail=grant.detail,
    )


def invoice_payment_paid(unit: Unit, ctx: Context, payment: InvoicePayment) -> Outcome:
    """``invoice_payment.paid``: remember which payment paid the invoice; if the invoice's
    grant is known, write the payment record (refunds parked for it are then replayed)."""
    key = payment.payment_key
    if not key:
        return done(
            unit, ctx, "ignored", object_id=payment.id, detail="no payment intent or charge"
        )
    safe_id(key, "payment key")
    link_ref = ctx.db.collection(INVOICE_PAYMENTS).document(safe_id(payment.invoice, "invoice"))
    link_snap = unit.get(link_ref)
    link = link_snap.to_dict() or {} if link_snap.exists else {}
    keys = sorted(set(link.get("payment_keys") or []) | {key})
    grant = link.get("grant")
    unit.set(
        link_ref,
        {
            **link,
            "invoice_id": payment.invoice,
            "payment_keys": keys,
            "payment_intent": link.get("payment_intent") or payment.payment_intent,
            "grant": grant,
            "updated_at": ctx.now,
        },
    )
    kaiwa_payment = link.get("kaiwa_payment_id")
    if kaiwa_payment and payment.payment_intent and not link.get("payment_intent"):
        unit.update(
            ctx.db.collection(KAIWA_PAYMENTS).document(str(kaiwa_payment)),
            {"stripePaymentIntentId": payment.payment_intent},
        )
    if kaiwa_payment and not grant:
        # A Kaiwa invoice that bought no credits: a refund parked for this payment can now
        # find its ``payments`` document (replayed after this commit).
        ctx.linked.append(("payment_intent_id", key))
    if not grant:
        return done(
            unit,
            ctx,
            "linked",
            object_id=payment.id,
            detail=f"payment {key} recorded for invoice {payment.invoice} (no grant yet)",
        )
    record_payment(unit, ctx, key, grant)
    return done(
        unit,
        ctx,
        "linked",
        user_id=str(grant.get("user_id")),
        object_id=payment.id,
        transaction_id=grant.get("transaction_id"),
        detail=f"payment {key} linked to the grant of invoice {payment.invoice}",
    )


def _kaiwa_failed_payment(
    unit: Unit, ctx: Context, inv: Invoice, sub_id: str, user_id: str
) -> None:
    """Kaiwa's ``payments/{uuid5(invoice)}`` with status ``failed`` and the amount due.

    The same document ``invoice.paid`` writes: a later successful retry replaces it with
    ``succeeded``; a failure delivered after the payment (Stripe does not keep order) never
    turns a paid, refunded or disputed payment back into a failed one.
    """
    ref = ctx.db.collection(KAIWA_PAYMENTS).document(kaiwa_id("invoice", inv.id))
    snap = unit.get(ref)
    found = (snap.to_dict() or {}) if snap.exists else {}
    if snap.exists and found.get("status") != "failed":
        return
    doc = kaiwa_payment_doc(
        user_id=user_id,
        subscription_id=kaiwa_id("subscription", sub_id),
        payment_intent=inv.payment_intent or found.get("stripePaymentIntentId"),
        invoice_id=inv.id,
        amount=inv.amount_due,
        currency=inv.currency,
        status="failed",
    )
    if doc != found:
        unit.set(ref, doc)


def invoice_failed(unit: Unit, ctx: Context, inv: Invoice) -> Outcome:
    if not inv.subscription_id:
        return done(unit, ctx, "ignored", object_id=inv.id, detail="not a subscription invoice")
    sub_id, state_ref, state, user_id, _user = _invoice_subscriber(unit, ctx, inv)
    log(
        logger,
        logging.WARNING,
        "subscription payment failed",
        event_id=ctx.event.id,
        invoice_id=inv.id,
        subscription_id=sub_id,
        user_id=user_id,
    )
    if ctx.profile == "kaiwa":
        _kaiwa_failed_payment(unit, ctx, inv, sub_id, user_id)
    key = order_key(ctx.event.created, ctx.event.type, ctx.event.id)
    snapshot = state.get("snapshot")
    if not snapshot or state.get("deleted") or not is_newer(key, stored_key(state)):
        return done(
            unit,
            ctx,
            "stale",
            user_id=user_id,
            object_id=inv.id,
            detail="no older subscription state to mark past_due",
        )
    snap = replace(SubscriptionSnapshot.from_dict(snapshot), status="past_due")
    granted = list(state.get("granted_periods") or [])
    unit.set(
        state_ref,
        {
            **state,
            "event_created": key[0],
            "event_rank": key[1],
            "event_id": key[2],
            "snapshot": snap.as_dict(),
            "updated_at": ctx.now,
        },
    )
    write_subscription(unit, ctx, snap, user_id, granted)
    return done(
        unit,
        ctx,
        "applied",
        user_id=user_id,
        object_id=inv.id,
        detail="subscription past_due; nothing granted",
    )
