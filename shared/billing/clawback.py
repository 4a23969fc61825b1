"""Money going back: refunds and disputes claw back what a payment bought.

Read ``stripe_payments/{payment key}`` (written by the purchase or the invoice grant that
the payment bought) and the original posting; decide with ``rules.clawback_target`` /
``clawback_delta`` (proportional, cumulative, never more than bought); apply one
``ledger.refund`` keyed by the event, and record any shortfall. A refund or dispute whose
payment is not known yet is parked and replayed when the payment record is written.

Kaiwa (profile ``kaiwa``): a refund also marks the payment in Kaiwa's ``payments``
``refunded`` / ``partially_refunded`` with ``amountRefunded`` (Stripe's cumulative amount,
so a redelivery or an older refund event arriving late changes nothing). A Kaiwa invoice
that granted no credits (its tiers carry limits, not credits) has no payment record: its
refund only updates ``payments``.
"""

from __future__ import annotations

import logging
from typing import Any

from google.cloud.firestore import FieldFilter

from shared.atomic import Unit
from shared.billing.context import (
    INVOICE_PAYMENTS,
    KAIWA_PAYMENTS,
    PAYMENTS,
    SHORTFALLS,
    Context,
    Outcome,
    done,
    safe_id,
)
from shared.billing.events import Charge, Dispute
from shared.billing.rules import (
    Unresolvable,
    clawback_delta,
    clawback_target,
    event_key,
    kaiwa_id,
)
from shared.ledger import Refs
from shared.logs import get_logger, log

logger = get_logger("billing")


def record_payment(
    unit: Unit,
    ctx: Context,
    payment_intent: str | None,
    data: dict[str, Any],
) -> None:
    """``stripe_payments/{payment key}``: what a payment bought (for clawbacks), once.

    The key is the payment intent, or the charge for a payment made without one.
    """
    if not payment_intent:
        return
    ref = ctx.db.collection(PAYMENTS).document(safe_id(payment_intent, "payment key"))
    if unit.get(ref).exists:
        return
    unit.create(
        ref,
        {
            **data,
            "refund_clawed": 0,
            "dispute_clawed": 0,
            "clawed_credits": 0,
            "shortfall": 0,
            "amount_refunded": 0,
            "disputes": [],
            "created_at": ctx.now,
            "event_id": ctx.event.id,
        },
    )
    ctx.linked.append(("payment_intent_id", payment_intent))


def _payment(unit: Unit, ctx: Context, payment_intent: str | None) -> tuple[Any, dict[str, Any]]:
    if not payment_intent:
        raise Unresolvable("the event names no payment intent or charge")
    ref = ctx.db.collection(PAYMENTS).document(safe_id(payment_intent, "payment key"))
    snap = unit.get(ref)
    if not snap.exists:
        raise Unresolvable(f"no credited payment for payment intent {payment_intent}")
    return ref, snap.to_dict() or {}


def _claw_back(
    unit: Unit,
    ctx: Context,
    *,
    pay_ref: Any,
    pay: dict[str, Any],
    payment_intent: str,
    amount: int,
    reason: str,
    object_id: str,
    updates: dict[str, Any],
    kaiwa_status: str | None,
) -> Outcome:
    user_id = str(pay["user_id"])
    # Reads in one attempt are not a snapshot: clamp to what the original's posting record
    # (read now, in this unit) says is still refundable. If the payment record read earlier
    # is older, the commit's precondition fails and the unit re-runs on fresh reads.
    posting = unit.get(ctx.ledger.posting_ref(str(pay["transaction_id"])))
    if posting.exists:
        record = posting.to_dict() or {}
        left = abs(int(record.get("amount") or 0)) - int(record.get("refunded_amount") or 0)
        amount = max(0, min(amount, left))
    if amount <= 0:
        unit.update(pay_ref, updates)
        return done(
            unit,
            ctx,
            "no_effect",
            user_id=user_id,
            object_id=object_id,
            detail="nothing more to claw back",
        )
    result = ctx.ledger.refund(
        unit,
        original_transaction_id=str(pay["transaction_id"]),
        key=event_key(ctx.event.id),
        reason=reason,
        amount=amount,
        description=f"Clawback ({reason}) of payment {payment_intent}",
        refs=Refs(
            stripe_payment_intent_id=payment_intent, subscription_id=pay.get("subscription_id")
        ),
    )
    shortfall = result.shortfall
    unit.update(
        pay_ref,
        {
            **updates,
            "clawed_credits": int(pay.get("clawed_credits") or 0) + amount,
            "shortfall": int(pay.get("shortfall") or 0) + shortfall,
        },
    )
    if shortfall:
        unit.create(
            ctx.db.collection(SHORTFALLS).document(ctx.event.id),
            {
                "user_id": user_id,
                "payment_intent_id": payment_intent,
                "original_transaction_id": pay["transaction_id"],
                "refund_transaction_id": result.transaction_id,
                "reason": reason,
                "requested_credits": amount,
                "clawed_credits": -result.amount,
                "shortfall_credits": shortfall,
                "created_at": ctx.now,
            },
        )
        log(
            logger,
            logging.ERROR,
            "clawback shortfall: credits already spent",
            event_id=ctx.event.id,
            user_id=user_id,
            payment_intent=payment_intent,
            shortfall=shortfall,
        )
    if kaiwa_status and ctx.profile == "kaiwa" and pay.get("kaiwa_payment_id"):
        unit.update(
            ctx.db.collection(KAIWA_PAYMENTS).document(str(pay["kaiwa_payment_id"])),
            {"status": kaiwa_status},
        )
    return done(
        unit,
        ctx,
        "applied",
        user_id=user_id,
        object_id=object_id,
        transaction_id=result.transaction_id,
        credits=result.amount,
        shortfall=shortfall,
    )


def _kaiwa_payment(
    unit: Unit, ctx: Context, charge: Charge, pay: dict[str, Any] | None
) -> tuple[Any, dict[str, Any]] | None:
    """The Kaiwa ``payments`` document a refunded charge paid, if it is known.

    Found by the payment record, the charge's invoice (before basil), the invoice link
    that holds the charge's payment key, or the document's ``stripePaymentIntentId``.
    """
    if ctx.profile != "kaiwa":
        return None
    ids: list[str] = []
    if pay and pay.get("kaiwa_payment_id"):
        ids.append(str(pay["kaiwa_payment_id"]))
    if charge.invoice:
        ids.append(kaiwa_id("invoice", charge.invoice))
    links = (
        ctx.db.collection(INVOICE_PAYMENTS)
        .where(filter=FieldFilter("payment_keys", "array_contains", charge.payment_key))
        .limit(5)
    )
    found_links = [link.to_dict() or {} for link in unit.query(links)]
    ids += [str(link["kaiwa_payment_id"]) for link in found_links if link.get("kaiwa_payment_id")]
    if charge.payment_intent:
        found = (
            ctx.db.collection(KAIWA_PAYMENTS)
            .where(filter=FieldFilter("stripePaymentIntentId", "==", charge.payment_intent))
            .limit(5)
        )
        ids += [s.id for s in unit.query(found)]
    for payment_id in dict.fromkeys(ids):
        ref = ctx.db.collection(KAIWA_PAYMENTS).document(safe_id(payment_id, "payment id"))
        snap = unit.get(ref)
        if snap.exists:
            return ref, snap.to_dict() or {}
    return None


def _kaiwa_refunded(unit: Unit, ref: Any, data: dict[str, Any], charge: Charge) -> None:
    """Mark a Kaiwa payment refunded with the charge's cumulative refunded amount."""
    before = int(data.get("amountRefunded") or 0)
    refunded = max(before, charge.amount_refunded)
    status = "refunded" if refunded >= charge.amount else "partially_refunded"
    if refunded <= 0 or (refunded == before and data.get("status") == status):
        return  # a redelivery, or an older refund event arriving late
    updates = {"amountRefunded": refunded, "status": status}
    unit.update(ref, updates)


def charge_refunded(unit: Unit, ctx: Context, charge: Charge) -> Outcome:
    try:
        pay_ref, pay = _payment(unit, ctx, charge.payment_key)
    except Unresolvable:
        kaiwa = _kaiwa_payment(unit, ctx, charge, None)
        if kaiwa is None:
            raise
        _kaiwa_refunded(unit, kaiwa[0], kaiwa[1], charge)
        return done(
            unit,
            ctx,
            "applied",
            user_id=kaiwa[1].get("userId"),
            object_id=charge.id,
            detail="Kaiwa payment marked refunded; it bought no credits",
        )
    credits = int(pay.get("credits") or 0)
    target = clawback_target(credits, charge.amount, charge.amount_refunded)
    remaining = credits - int(pay.get("clawed_credits") or 0)
    delta = clawback_delta(target, int(pay.get("refund_clawed") or 0), remaining)
    kaiwa = _kaiwa_payment(unit, ctx, charge, pay)
    if kaiwa is not None:
        _kaiwa_refunded(unit, kaiwa[0], kaiwa[1], charge)
    return _claw_back(
        unit,
        ctx,
        pay_ref=pay_ref,
        pay=pay,
        payment_intent=charge.payment_key,
        amount=delta,
        reason="stripe_refund",
        object_id=charge.id,
        updates={
            "refund_clawed": int(pay.get("refund_clawed") or 0) + delta,
            "amount_refunded": max(int(pay.get("amount_refunded") or 0), charge.amount_refunded),
            "charge_id": charge.id,
        },
        kaiwa_status=None,
    )


def dispute_created(unit: Unit, ctx: Context, dispute: Dispute) -> Outcome:
    pay_ref, pay = _payment(unit, ctx, dispute.payment_key)
    disputes = list(pay.get("disputes") or [])
    credits = int(pay.get("credits") or 0)
    paid = int(pay.get("amount") or 0) or dispute.amount
    remaining = credits - int(pay.get("clawed_credits") or 0)
    delta = (
        0
        if dispute.id in disputes
        else clawback_delta(clawback_target(credits, paid, dispute.amount), 0, remaining)
    )
    return _claw_back(
        unit,
        ctx,
        pay_ref=pay_ref,
        pay=pay,
        payment_intent=dispute.payment_key,
        amount=delta,
        reason="stripe_dispute",
        object_id=dispute.id,
        updates={
            "dispute_clawed": int(pay.get("dispute_clawed") or 0) + delta,
            "disputes": sorted(set(disputes) | {dispute.id}),
            "charge_id": dispute.charge,
        },
        kaiwa_status="disputed",
    )
