"""Apply verified Stripe events to Firestore exactly once (the webhook's one service).

Every handled event runs as ONE atomic unit (``shared.atomic``) that writes its effect
(ledger posting, subscription documents, idempotency records) together with
``stripe_events/{event_id}``: a redelivery finds that record and changes nothing, and
racing deliveries conflict on it, so one commits and the others become duplicates.

Each event family reads, decides (pure rules) and applies in its own module:
``checkout``, ``subscriptions``, ``invoices``, ``clawback``; ``attribution`` decides the
user, ``parking`` keeps what cannot be applied yet. The documents are listed in
``shared.billing.context``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.cloud import firestore
from pydantic import ValidationError

from shared.atomic import Unit, run_atomically
from shared.billing.attribution import customer_event
from shared.billing.checkout import checkout
from shared.billing.clawback import charge_refunded, dispute_created
from shared.billing.context import (
    PARKED,
    STRIPE_ID,
    Context,
    Outcome,
    event_ref,
    load_config,
    prefetch_refs,
    safe_id,
)
from shared.billing.events import HANDLED_TYPES, RejectedObject, StripeEvent, parse_object
from shared.billing.invoices import invoice_failed, invoice_paid, invoice_payment_paid
from shared.billing.parking import WAITING_PREFIXES, now_resolvable, park
from shared.billing.rules import PaymentMismatch, Unresolvable
from shared.billing.subscriptions import subscription_event
from shared.clock import ProcessClock, get_clock
from shared.entry import validation_detail
from shared.errors import CreditsError, InvalidInput, NotFound, is_transient
from shared.ledger import Ledger, ledger_profile
from shared.logs import get_logger, log
from shared.settings import get_settings

logger = get_logger("billing")

#: Writes more in the atomic unit of a replay's outcome (``replay_parked_event``).
Audit = Callable[[Unit, Outcome], None]

_HANDLERS: dict[str, Callable[[Unit, Context, Any], Outcome]] = {
    "checkout.session.completed": checkout,
    "checkout.session.async_payment_succeeded": checkout,
    "checkout.session.async_payment_failed": checkout,
    "customer.subscription.created": subscription_event,
    "customer.subscription.updated": subscription_event,
    "customer.subscription.deleted": subscription_event,
    "invoice.paid": invoice_paid,
    "invoice.payment_succeeded": invoice_paid,
    "invoice.payment_failed": invoice_failed,
    "invoice_payment.paid": invoice_payment_paid,
    "charge.refunded": charge_refunded,
    "charge.dispute.created": dispute_created,
    "customer.created": customer_event,
    "customer.updated": customer_event,
}


def process_payload(
    db: firestore.Client, data: dict[str, Any], payload: str, *, profile: str | None = None
) -> Outcome:
    """A verified body: process it as an event, or park it when our models reject it.

    InvalidInput (400) only when it cannot be kept: no usable event id.
    """
    event_id = data.get("id")
    if not isinstance(event_id, str) or not STRIPE_ID.match(event_id):
        raise InvalidInput("the event has no usable id")
    try:
        event = StripeEvent.model_validate(data)
    except ValidationError as exc:
        event_type = data.get("type")
        reason = f"rejected by the event model: {validation_detail(exc)}"
        log(logger, logging.ERROR, "signed Stripe event parked", event_id=event_id, detail=reason)
        data_obj = data.get("data")
        return park(
            db,
            event_id=event_id,
            event_type=event_type if isinstance(event_type, str) else None,
            created=None,
            api_version=None,
            payload=payload,
            obj=data_obj.get("object") if isinstance(data_obj, dict) else None,
            reason=reason,
            now=get_clock().now(),
            replay=False,
            profile=profile or get_settings().schema_profile,
        )
    return process_event(db, event, payload, profile=profile)


def process_event(
    db: firestore.Client,
    event: StripeEvent,
    payload: str,
    *,
    profile: str | None = None,
    now: datetime | None = None,
    replay: bool = False,
    audit: Audit | None = None,
) -> Outcome:
    """Apply one verified event once; park it when it cannot be applied as it stands.

    Raises InvalidInput (400) only for an event id unusable as a key; every other
    permanent problem parks the event (200 to Stripe) so that nothing is lost.
    ``audit`` (replays only): called in the atomic unit that records the replay's outcome
    (applied, or parked again), so its writes commit with that outcome or not at all.
    """
    if event.type not in HANDLED_TYPES:
        log(logger, logging.DEBUG, "ignored Stripe event type", event_id=event.id, type=event.type)
        return Outcome(event.id, event.type, "ignored")
    safe_id(event.id, "event id")
    profile = profile or get_settings().schema_profile
    settings = get_settings()
    ctx = Context(
        db=db,
        ledger=Ledger(
            db,
            ledger_profile(profile),
            ProcessClock(),
            max_amount=settings.ledger_max_amount,
            max_attempts=settings.ledger_max_attempts,
        ),
        profile=profile,
        config=load_config(db, profile),
        event=event,
        payload=payload,
        now=now or get_clock().now(),
        replay=replay,
        linked=[],
    )

    def park_here(reason: str) -> Outcome:
        return park(
            db,
            event_id=event.id,
            event_type=event.type,
            created=event.created,
            api_version=event.api_version,
            payload=payload,
            obj=event.data.object,
            reason=reason,
            now=ctx.now,
            replay=replay,
            profile=profile,
            audit=audit if replay else None,
        )

    try:
        parsed = parse_object(event)
    except RejectedObject as exc:
        rejected = park_here(f"rejected by the event model: {exc}")
        _log_outcome(rejected)
        return rejected
    handler = _HANDLERS[event.type]

    def work(unit: Unit) -> Outcome:
        ctx.linked = []
        record = unit.get_all([event_ref(ctx), *prefetch_refs(ctx, parsed)])[0]
        if record.exists and not (replay and record.get("status") == "parked"):
            return Outcome(
                event.id, event.type, "duplicate", user_id=(record.to_dict() or {}).get("user_id")
            )
        outcome = handler(unit, ctx, parsed)
        if replay:
            unit.update(
                db.collection(PARKED).document(event.id),
                {"status": "replayed", "replayed_at": ctx.now, "replay_status": outcome.status},
            )
            if audit is not None:
                audit(unit, outcome)
        return outcome

    # A rejection or "park it" is surfaced only when what the unit read was current
    # (run_atomically re-checks its reads first), so it is parked at once.
    try:
        outcome = run_atomically(db, work, max_attempts=settings.ledger_max_attempts, now=ctx.now)
    except Unresolvable as exc:
        if isinstance(exc, PaymentMismatch):
            log(
                logger,
                logging.ERROR,
                "paid amount does not confirm the credits; not credited",
                event_id=event.id,
                detail=exc.reason,
            )
        outcome = park_here(exc.reason)
    except CreditsError as exc:
        if is_transient(exc):
            raise
        outcome = park_here(f"{exc.code}: {exc.detail}")
    _log_outcome(outcome)
    if outcome.status not in {"duplicate", "parked"} and ctx.linked and not replay:
        _replay_related(db, ctx.linked, profile)
    waiting = outcome.detail.startswith(WAITING_PREFIXES)
    if (
        outcome.status == "parked"
        and waiting
        and not replay
        and now_resolvable(db, event.type, event.data.object)
    ):
        # The link or payment this event waited for committed while it was being parked
        # (after that unit looked for parked events): replay it now, so none is left behind.
        return replay_parked_event(db, event.id, profile=profile)
    return outcome


def replay_parked_event(
    db: firestore.Client,
    event_id: str,
    *,
    profile: str | None = None,
    audit: Audit | None = None,
) -> Outcome:
    """Process a parked event again (after the operator fixed the user link or price).

    NotFound when there is no such parked event; an event replayed before answers
    ``already_replayed``; one still not applicable stays parked (``parked``).
    ``audit(unit, outcome)`` writes in the unit of the replay's outcome (an operator's
    ``admin_actions`` record: ``shared.admin.operations.replay_parked``); an answer that
    wrote nothing (``already_replayed``, ``duplicate``, ``ignored``) calls it not at all.
    """
    snap = db.collection(PARKED).document(safe_id(event_id, "event id")).get()
    if not snap.exists:
        raise NotFound(f"no parked Stripe event {event_id}")
    data = snap.to_dict() or {}
    if data.get("status") != "parked":
        return Outcome(event_id, str(data.get("type")), "already_replayed")
    payload = str(data.get("payload") or "")
    try:
        event = StripeEvent.model_validate(json.loads(payload))
    except (ValueError, ValidationError) as exc:
        raise InvalidInput(f"parked event {event_id} has an unreadable payload: {exc}") from None
    return process_event(db, event, payload, profile=profile, replay=True, audit=audit)


def _replay_related(db: firestore.Client, keys: list[tuple[str, str]], profile: str) -> None:
    """Replay parked events that waited for a customer link or a payment now known."""
    for field, key in dict.fromkeys(keys):
        query = db.collection(PARKED).where(filter=firestore.FieldFilter(field, "==", key))
        for snap in query.limit(50).stream():
            if (snap.to_dict() or {}).get("status") != "parked":
                continue
            try:
                replay_parked_event(db, snap.id, profile=profile)
            except Exception as exc:  # a replay must never fail the event that enabled it
                log(logger, logging.WARNING, f"automatic replay failed: {exc!r}", event_id=snap.id)


def _log_outcome(outcome: Outcome) -> None:
    level = logging.ERROR if outcome.status == "parked" else logging.INFO
    log(
        logger,
        level,
        f"Stripe event {outcome.status}",
        event_id=outcome.event_id,
        type=outcome.type,
        user_id=outcome.user_id,
        transfer_id=outcome.transaction_id,
        credits=outcome.credits,
        shortfall=outcome.shortfall,
        detail=outcome.detail,
    )
