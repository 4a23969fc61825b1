"""Invoices: a grant per paid invoice, past_due on failure, and the payment <-> invoice link.

Read the invoice's subscription state, user and what earlier events recorded; decide the
grant with ``decide_grant`` (pure: the plan line's monthly credits, the prorated difference
for an upgrade, nothing for a $0 invoice); apply one SUBSCRIPTION_GRANT keyed by the
invoice, ``processed_invoices`` and the payment record that refunds and disputes find.

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
from shared.billing.clawback import record_payment
from shared.billing.context import (
    INVOICE_PAYMENTS,
    KAIWA_PAYMENTS,
    PROCESSED_INVOICES,
    SUBSCRIPTIONS,
    Context,
    Outcome,
    done,
    safe_id,
)
from shared.billing.events import Invoice, InvoicePayment, LineItem
from shared.billing.rules import (
    BillingConfig,
    Plan,
    SubscriptionSnapshot,
    Unresolvable,
    granted_this_period,
    invoice_key,
    is_newer,
    kaiwa_id,
    kaiwa_payment_doc,
    order_key,
    proration_credits,
    stored_key,
    subscription_plan,
    with_granted,
)
from shared.billing.subscriptions import subscription_state, write_subscription
from shared.ledger import Kind, Refs
from shared.logs import get_logger, log

logger = get_logger("billing")


@dataclass(frozen=True)
class Grant:
    """What a paid invoice grants: credits, for which plan, and which period it marks."""

    credits: int
    plan: Plan | None
    period_start: int | None
    description: str
    detail: str


def _full_amount(line: LineItem, config: BillingConfig) -> int:
    """A proration line's price for a whole period (the line's, else the configured one)."""
    assert line.price is not None
    unit_amount = line.unit_amount
    if unit_amount is None:
        rule = config.prices.get(line.price.id)
        unit_amount = rule.unit_amount if rule else None
    if unit_amount is None:
        raise Unresolvable(f"price {line.price.id} has no unit amount to prorate credits with")
    return unit_amount * line.quantity


def decide_grant(inv: Invoice, config: BillingConfig, profile: str, state: dict[str, Any]) -> Grant:
    """The grant of a paid subscription invoice (pure).

    - nothing paid (a trial's or a fully discounted $0 invoice): nothing granted, and the
      period is not marked granted;
    - a plan line (the subscription item line of this subscription, not a proration):
      that plan's monthly credits, marking its period;
    - only prorations (a mid-period change): the prorated difference between the new and
      the old plan's credits (``rules.proration_credits``), never the old plan's credits;
    - an invoice without lines (API versions that omit them) for a new or renewed
      period: the stored subscription's plan.
    """
    if inv.paid_total <= 0:
        return Grant(0, None, None, "", "nothing paid (trial or full discount): nothing granted")
    line = inv.plan_line()
    if line is not None and line.price is not None:
        plan = subscription_plan(line.price, config, profile)
        description = f"{plan.tier} monthly credits (invoice {inv.id})"
        return Grant(plan.monthly_credits, plan, line.period_start, description, "")
    prorations = inv.proration_lines()
    if prorations:
        parts = []
        for ln in prorations:
            assert ln.price is not None and ln.amount is not None
            parts.append(
                (subscription_plan(ln.price, config, profile), ln.amount, _full_amount(ln, config))
            )
        credits = proration_credits(parts)
        new_plan = next((plan for plan, amount, _ in parts if amount > 0), parts[0][0])
        description = f"{new_plan.tier} prorated credits for a plan change (invoice {inv.id})"
        detail = "" if credits else "plan change without more credits: nothing granted"
        return Grant(credits, new_plan, None, description, detail)
    snapshot = state.get("snapshot")
    if (
        not inv.lines
        and snapshot
        and inv.billing_reason in {"subscription_create", "subscription_cycle"}
    ):
        snap = SubscriptionSnapshot.from_dict(snapshot)
        plan = Plan(snap.price_id, snap.tier, snap.monthly_credits)
        description = f"{plan.tier} monthly credits (invoice {inv.id})"
        return Grant(plan.monthly_credits, plan, inv.period_end, description, "")
    return Grant(0, None, None, "", "no plan line: nothing granted")


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


def invoice_paid(unit: Unit, ctx: Context, inv: Invoice) -> Outcome:
    if not inv.subscription_id:
        return done(unit, ctx, "ignored", object_id=inv.id, detail="not a subscription invoice")
    sub_id, state_ref, state, user_id, user = _invoice_subscriber(unit, ctx, inv)
    processed_ref = ctx.db.collection(PROCESSED_INVOICES).document(safe_id(inv.id, "invoice id"))
    link_ref = ctx.db.collection(INVOICE_PAYMENTS).document(inv.id)
    processed, link_snap = unit.get_all([processed_ref, link_ref])
    if processed.exists:
        return done(
            unit,
            ctx,
            "duplicate_invoice",
            user_id=user_id,
            object_id=inv.id,
            detail="invoice already processed",
        )
    grant = decide_grant(inv, ctx.config, ctx.profile, state)
    transaction_id = None
    if grant.credits > 0:
        result = ctx.ledger.credit(
            unit,
            user_id=user_id,
            kind=Kind.SUBSCRIPTION_GRANT,
            amount=grant.credits,
            key=invoice_key(inv.id),
            description=grant.description,
            refs=Refs(subscription_id=sub_id, stripe_payment_intent_id=inv.payment_intent),
        )
        transaction_id = result.transaction_id
    unit.create(
        processed_ref,
        {
            "subscription_id": sub_id,
            "processed_at": ctx.now,
            "amount": inv.amount_paid,
            "currency": inv.currency,
        },
    )
    granted = list(state.get("granted_periods") or [])
    if grant.credits > 0 and grant.period_start is not None:
        granted = with_granted(granted, grant.period_start)
    unit.set(
        state_ref,
        {
            **state,
            "subscription_id": sub_id,
            "user_id": user_id,
            "customer_id": state.get("customer_id") or inv.customer,
            "snapshot": state.get("snapshot"),
            "granted_periods": granted,
            "deleted": bool(state.get("deleted")),
            "updated_at": ctx.now,
        },
    )
    snapshot = state.get("snapshot")
    if snapshot and ctx.profile != "kaiwa":
        start = snapshot.get("current_period_start")
        unit.update(
            ctx.db.collection(SUBSCRIPTIONS).document(sub_id),
            {"credits_granted_this_period": granted_this_period(start, granted)},
        )
    link = link_snap.to_dict() or {} if link_snap.exists else {}
    keys = set(link.get("payment_keys") or [])
    if inv.payment_intent or inv.charge:  # API versions before 2025-03-31 name it
        keys.add(str(inv.payment_intent or inv.charge))
    kaiwa_payment = kaiwa_id("invoice", inv.id)
    payment_intent = inv.payment_intent or link.get("payment_intent")
    record: dict[str, Any] | None = None
    if transaction_id is not None:
        record = {
            "user_id": user_id,
            "transaction_id": transaction_id,
            "credits": grant.credits,
            "amount": inv.amount_paid,
            "currency": inv.currency,
            "source": "invoice",
            "checkout_session_id": None,
            "invoice_id": inv.id,
            "subscription_id": sub_id,
            "price_ids": [grant.plan.price_id] if grant.plan else [],
            "kaiwa_payment_id": kaiwa_payment if ctx.profile == "kaiwa" else None,
        }
        for key in sorted(keys):
            record_payment(unit, ctx, key, record)
    unit.set(
        link_ref,
        {
            **link,
            "invoice_id": inv.id,
            "payment_keys": sorted(keys),
            "payment_intent": payment_intent,
            "grant": record,
            "kaiwa_payment_id": kaiwa_payment if ctx.profile == "kaiwa" else None,
            "granted_at": ctx.now,
        },
    )
    if ctx.profile == "kaiwa":
        if record is None:
            # No credits bought: a refund parked for this payment needs only this document.
            ctx.linked.extend(("payment_intent_id", key) for key in sorted(keys))
        unit.set(
            ctx.db.collection(KAIWA_PAYMENTS).document(kaiwa_payment),
            kaiwa_payment_doc(
                user_id=user_id,
                subscription_id=kaiwa_id("subscription", sub_id),
                payment_intent=payment_intent,
                invoice_id=inv.id,
                amount=inv.amount_paid,
                currency=inv.currency,
                status="succeeded",
            ),
        )
    link_customer(unit, ctx, user_id, user, inv.customer)
    return done(
        unit,
        ctx,
        "applied",
        user_id=user_id,
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
