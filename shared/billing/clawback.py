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
from dataclasses import dataclass
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
    ClawbackPlan,
    Unresolvable,
    decide_clawback,
    event_key,
    kaiwa_id,
)
from shared.errors import InvalidInput, NotFound
from shared.ledger import Refs
from shared.ledger.core import OriginalView
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
    write_payment_record(unit, ctx, payment_intent, data, exists=unit.get(ref).exists)


def write_payment_record(
    unit: Unit,
    ctx: Context,
    payment_intent: str | None,
    data: dict[str, Any],
    *,
    exists: bool,
) -> None:
    """Write the payment record ``record_payment`` writes, its existence read before."""
    if not payment_intent:
        return
    ref = ctx.db.collection(PAYMENTS).document(safe_id(payment_intent, "payment key"))
    if exists:
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


@dataclass(frozen=True)
class ClawbackRead:
    """What a clawback reads: the payment record, the ledger's view, the Kaiwa payment."""

    pay_ref: Any
    pay: dict[str, Any] | None
    #: What the ledger says is still refundable of the original posting (every linked
    #: refund counted); None when it cannot tell (its refund then raises the reason).
    refundable: int | None
    #: The Kaiwa ``payments`` document the payment paid (profile ``kaiwa``), if known.
    kaiwa: tuple[Any, dict[str, Any]] | None
    #: The original posting as the ledger read it (passed to its refund: not read again).
    view: OriginalView | None = None


def read_clawback(unit: Unit, ctx: Context, event: Charge | Dispute) -> ClawbackRead:
    """The read phase of a refund or dispute, all through ``unit``.

    Raises Unresolvable when no payment record exists (and, for a refund on Kaiwa, no
    ``payments`` document either): the event is parked until the payment is known.
    """
    if not event.payment_key:
        raise Unresolvable("the event names no payment intent or charge")
    pay_ref = ctx.db.collection(PAYMENTS).document(safe_id(event.payment_key, "payment key"))
    snap = unit.get(pay_ref)
    pay = (snap.to_dict() or {}) if snap.exists else None
    kaiwa = _kaiwa_payment(unit, ctx, event, pay) if isinstance(event, Charge) else None
    if pay is None:
        if kaiwa is None:
            raise Unresolvable(f"no credited payment for payment intent {event.payment_key}")
        return ClawbackRead(pay_ref, None, None, kaiwa)
    # The original is read only when the payment record leaves something to take back
    # (an older refund arriving late, or a dispute seen before, reads nothing more).
    # Reads in one attempt are not a snapshot: the ledger's figure is read now, in this
    # unit. If the payment record read earlier is older, the commit's precondition fails
    # and the unit re-runs on fresh reads.
    view: OriginalView | None = None
    refundable: int | None = None
    if decide_clawback(pay, event, refundable=None).amount > 0:
        try:
            view = ctx.ledger.read_original(unit, str(pay["transaction_id"]))
            refundable = ctx.ledger.refundable(unit, view.transaction_id, view=view)
        except (NotFound, InvalidInput):
            pass  # the ledger's refund says why
    return ClawbackRead(pay_ref, pay, refundable, kaiwa, view)


def apply_clawback(
    unit: Unit,
    ctx: Context,
    read: ClawbackRead,
    plan: ClawbackPlan,
    *,
    payment_intent: str,
    reason: str,
    object_id: str,
) -> Outcome:
    pay = read.pay or {}
    user_id = str(pay["user_id"])
    if read.kaiwa is not None and plan.kaiwa_updates is not None:
        unit.update(read.kaiwa[0], plan.kaiwa_updates)
    if plan.amount <= 0:
        unit.update(read.pay_ref, plan.payment_updates)
        return done(
            unit,
            ctx,
            "no_effect",
            user_id=user_id,
            object_id=object_id,
            detail="nothing more to claw back",
        )
    amount = plan.amount
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
        view=read.view,
    )
    shortfall = result.shortfall
    unit.update(
        read.pay_ref,
        {
            **plan.payment_updates,
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
    if plan.kaiwa_disputed_id is not None:
        unit.update(
            ctx.db.collection(KAIWA_PAYMENTS).document(plan.kaiwa_disputed_id),
            {"status": "disputed"},
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
    that holds the charge's payment key, or the document's ``stripePaymentIntentId``:
    the first of these that exists, the candidates read in one round trip.
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
    # Candidates up to the first id that cannot address a document: that one raises only
    # when none before it exists (the order in which they were tried one by one).
    refs = []
    bad: InvalidInput | None = None
    for payment_id in dict.fromkeys(ids):
        try:
            refs.append(
                ctx.db.collection(KAIWA_PAYMENTS).document(safe_id(payment_id, "payment id"))
            )
        except InvalidInput as error:
            bad = error
            break
    for snap in unit.get_all(refs) if refs else []:
        if snap.exists:
            return snap.reference, snap.to_dict() or {}
    if bad is not None:
        raise bad
    return None


def charge_refunded(unit: Unit, ctx: Context, charge: Charge) -> Outcome:
    read = read_clawback(unit, ctx, charge)
    plan = decide_clawback(
        read.pay or {},
        charge,
        refundable=read.refundable,
        kaiwa_payment=read.kaiwa[1] if read.kaiwa else None,
        profile=ctx.profile,
    )
    if read.pay is None:
        assert read.kaiwa is not None  # read_clawback raised otherwise
        if plan.kaiwa_updates is not None:
            unit.update(read.kaiwa[0], plan.kaiwa_updates)
        return done(
            unit,
            ctx,
            "applied",
            user_id=read.kaiwa[1].get("userId"),
            object_id=charge.id,
            detail="Kaiwa payment marked refunded; it bought no credits",
        )
    return apply_clawback(
        unit,
        ctx,
        read,
        plan,
        payment_intent=charge.payment_key,
        reason="stripe_refund",
        object_id=charge.id,
    )


def dispute_created(unit: Unit, ctx: Context, dispute: Dispute) -> Outcome:
    read = read_clawback(unit, ctx, dispute)
    plan = decide_clawback(read.pay or {}, dispute, refundable=read.refundable, profile=ctx.profile)
    return apply_clawback(
        unit,
        ctx,
        read,
        plan,
        payment_intent=dispute.payment_key,
        reason="stripe_dispute",
        object_id=dispute.id,
    )
