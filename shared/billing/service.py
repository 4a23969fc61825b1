"""Apply verified Stripe events to Firestore exactly once (the webhook's one service).

Every handled event runs as ONE atomic unit (``shared.atomic``) that writes its effect
(ledger posting, subscription documents, idempotency records) together with
``stripe_events/{event_id}``: a redelivery finds that record and changes nothing, and
racing deliveries conflict on it, so one commits and the others become duplicates.

Documents of our own (never extra fields in the seeds' documents):
- ``stripe_events/{event_id}``: what each event did (``status``, user, transaction);
- ``stripe_subscription_state/{subscription_id}``: the order key of the latest applied
  subscription event, its snapshot, and the period starts already granted;
- ``stripe_customers/{customer_id}``: Stripe customer -> user;
- ``stripe_payments/{payment_intent_id}``: which transaction a payment bought and how
  much of it was clawed back;
- ``stripe_parked_events/{event_id}``: events that could not be attributed or priced,
  with the raw payload, for ``replay_parked_event``;
- ``stripe_clawback_shortfalls/{event_id}``: credits a refund or dispute could not take
  back because the user had already spent them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from google.cloud import firestore
from pydantic import ValidationError

from shared.atomic import Unit, run_atomically
from shared.billing.events import (
    HANDLED_TYPES,
    Charge,
    CheckoutSession,
    Dispute,
    Invoice,
    StripeEvent,
    Subscription,
)
from shared.billing.rules import (
    BillingConfig,
    Plan,
    SubscriptionSnapshot,
    Unresolvable,
    clawback_delta,
    clawback_target,
    granted_this_period,
    instant,
    is_newer,
    kaiwa_id,
    kaiwa_payment_doc,
    kaiwa_subscription_doc,
    kitesforu_subscription_doc,
    kitesforu_user_fields,
    order_key,
    pack_credits,
    stored_key,
    subscription_plan,
    with_granted,
)
from shared.clock import ProcessClock, get_clock
from shared.entry import validation_detail
from shared.errors import CreditsError, InvalidInput, NotFound, is_transient
from shared.ledger import Kind, Ledger, Refs, ledger_profile, transaction_id_for
from shared.logs import get_logger, log
from shared.settings import get_settings

logger = get_logger("billing")

EVENTS = "stripe_events"
PARKED = "stripe_parked_events"
STATE = "stripe_subscription_state"
CUSTOMERS = "stripe_customers"
PAYMENTS = "stripe_payments"
SHORTFALLS = "stripe_clawback_shortfalls"
CONFIG = "billing_config"
PRICES_DOC = "stripe_prices"
TIERS_DOC = "tiers"
SUBSCRIPTIONS = "subscriptions"
PROCESSED_INVOICES = "processed_invoices"
KAIWA_PAYMENTS = "payments"
KAIWA_TIERS = "tiers"

_PERMANENT_ERROR_ATTEMPTS = 3
_STRIPE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")
_USER_FIELD = {"kitesforu": "stripe_customer_id", "kaiwa": "stripeCustomerId"}


@dataclass(frozen=True)
class Outcome:
    """What processing one event did.

    ``status``: applied | duplicate | ignored | parked | stale | awaiting_payment |
    payment_failed | linked | no_effect | duplicate_payment | duplicate_invoice.
    """

    event_id: str
    type: str
    status: str
    user_id: str | None = None
    transaction_id: str | None = None
    credits: int = 0
    shortfall: int = 0
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Context:
    db: firestore.Client
    ledger: Ledger
    profile: str
    config: BillingConfig
    event: StripeEvent
    payload: str
    now: datetime
    replay: bool
    linked: list[tuple[str, str]]  # (parked field, value) that became known: auto-replay


def safe_id(value: str | None, name: str) -> str:
    """A Stripe id usable as a document id, or InvalidInput."""
    if not value or not _STRIPE_ID.match(value):
        raise InvalidInput(f"{name} is missing or not a valid Stripe id")
    return value


def load_config(db: firestore.Client, profile: str) -> BillingConfig:
    """Prices and tiers from ``billing_config`` (and Kaiwa's ``tiers``)."""
    coll = db.collection(CONFIG)
    prices, tiers = db.get_all([coll.document(PRICES_DOC), coll.document(TIERS_DOC)])
    by_id = {snap.id: snap for snap in (prices, tiers)}
    kaiwa: list[tuple[str, dict[str, Any]]] = []
    if profile == "kaiwa":
        kaiwa = [(s.id, s.to_dict() or {}) for s in db.collection(KAIWA_TIERS).stream()]
    return BillingConfig.from_documents(
        by_id[PRICES_DOC].to_dict() if by_id[PRICES_DOC].exists else None,
        by_id[TIERS_DOC].to_dict() if by_id[TIERS_DOC].exists else None,
        kaiwa,
    )


def _parse(event: StripeEvent) -> Any:
    obj = event.data.object
    try:
        if event.type.startswith("checkout.session."):
            return CheckoutSession.model_validate(obj)
        if event.type.startswith("customer.subscription."):
            return Subscription.model_validate(obj)
        if event.type.startswith("invoice."):
            return Invoice.from_raw(obj)
        if event.type == "charge.refunded":
            return Charge.model_validate(obj)
        if event.type == "charge.dispute.created":
            return Dispute.model_validate(obj)
    except ValidationError as exc:
        raise InvalidInput(f"{event.type}: {validation_detail(exc)}") from None
    raise InvalidInput(f"unsupported event type {event.type}")


# -- public entry points -------------------------------------------------------------------
def process_event(
    db: firestore.Client,
    event: StripeEvent,
    payload: str,
    *,
    profile: str | None = None,
    now: datetime | None = None,
    replay: bool = False,
) -> Outcome:
    """Apply one verified event once; park it when it cannot be attributed or priced.

    Raises InvalidInput (400) only for objects that are malformed; every other
    permanent problem parks the event (200 to Stripe) so that nothing is lost.
    """
    if event.type not in HANDLED_TYPES:
        log(logger, logging.DEBUG, "ignored Stripe event type", event_id=event.id, type=event.type)
        return Outcome(event.id, event.type, "ignored")
    safe_id(event.id, "event id")
    parsed = _parse(event)
    profile = profile or get_settings().schema_profile
    settings = get_settings()
    ctx = _Context(
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
    handler = _HANDLERS[event.type]

    def work(unit: Unit) -> Outcome:
        ctx.linked = []
        record = unit.get_all([_event_ref(ctx), *_prefetch(ctx, parsed)])[0]
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
        return outcome

    outcome: Outcome | None = None
    for attempt in range(_PERMANENT_ERROR_ATTEMPTS):
        try:
            outcome = run_atomically(db, work, max_attempts=settings.ledger_max_attempts)
            break
        except Unresolvable as exc:
            outcome = _park(ctx, exc.reason)
            break
        except CreditsError as exc:
            if is_transient(exc):
                raise
            # A rejection may come from reads taken while another unit committed (reads
            # are not a snapshot): try again on fresh reads before parking.
            if attempt + 1 == _PERMANENT_ERROR_ATTEMPTS:
                outcome = _park(ctx, f"{exc.code}: {exc.detail}")
    assert outcome is not None
    _log_outcome(outcome)
    if outcome.status not in {"duplicate", "parked"} and ctx.linked and not replay:
        _replay_related(db, ctx.linked, profile)
    waiting = outcome.detail.startswith(("no user for customer", "no credited payment"))
    if outcome.status == "parked" and waiting and not replay and _now_resolvable(ctx):
        # The link or payment this event waited for committed while it was being parked
        # (after that unit looked for parked events): replay it now, so none is left behind.
        return replay_parked_event(db, event.id, profile=profile)
    return outcome


def replay_parked_event(
    db: firestore.Client, event_id: str, *, profile: str | None = None
) -> Outcome:
    """Process a parked event again (after the operator fixed the user link or price).

    NotFound when there is no such parked event; an event replayed before answers
    ``already_replayed``; one still unattributable stays parked (``parked``).
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
    return process_event(db, event, payload, profile=profile, replay=True)


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


# -- shared steps ----------------------------------------------------------------------------
def _valid_doc_id(value: str | None) -> bool:
    return (
        bool(value)
        and "/" not in str(value)
        and len(str(value)) <= 700
        and not str(value).startswith("__")
    )


def _prefetch(ctx: _Context, parsed: Any) -> list[firestore.DocumentReference]:
    """Documents the handler will read, fetched with the event record in one round trip."""
    db = ctx.db
    users: list[str | None] = []
    refs: list[tuple[str, str | None]] = []
    postings: list[str] = []
    if isinstance(parsed, CheckoutSession):
        users = [parsed.client_reference_id, parsed.metadata.get("user_id")]
        refs = [(CUSTOMERS, parsed.customer), (PAYMENTS, parsed.payment_intent)]
        postings = [f"stripe:checkout:{parsed.id}"]
    elif isinstance(parsed, Subscription):
        users = [parsed.metadata.get("user_id")]
        refs = [(STATE, parsed.id), (CUSTOMERS, parsed.customer)]
    elif isinstance(parsed, Invoice):
        users = [parsed.subscription_metadata.get("user_id"), parsed.metadata.get("user_id")]
        refs = [
            (STATE, parsed.subscription_id),
            (CUSTOMERS, parsed.customer),
            (PROCESSED_INVOICES, parsed.id),
            (PAYMENTS, parsed.payment_intent),
        ]
        postings = [f"stripe:invoice:{parsed.id}"]
    elif isinstance(parsed, Charge | Dispute):
        refs = [(PAYMENTS, parsed.payment_intent)]
    found = [db.collection(c).document(i) for c, i in refs if i and _STRIPE_ID.match(i)]
    first_user = next((u for u in users if u), None)
    if first_user is not None and _valid_doc_id(first_user):
        found.append(ctx.ledger.user_ref(first_user))
    found += [ctx.ledger.posting_ref(transaction_id_for(k)) for k in postings]
    return found


def _event_ref(ctx: _Context) -> firestore.DocumentReference:
    return ctx.db.collection(EVENTS).document(ctx.event.id)


def _done(
    unit: Unit,
    ctx: _Context,
    status: str,
    *,
    user_id: str | None = None,
    object_id: str | None = None,
    transaction_id: str | None = None,
    credits: int = 0,
    shortfall: int = 0,
    detail: str = "",
) -> Outcome:
    """Write the event record (same unit as the effect) and return the outcome."""
    unit.set(
        _event_ref(ctx),
        {
            "type": ctx.event.type,
            "created": instant(ctx.event.created),
            "livemode": ctx.event.livemode,
            "api_version": ctx.event.api_version,
            "status": status,
            "user_id": user_id,
            "object_id": object_id,
            "transaction_id": transaction_id,
            "credits": credits,
            "shortfall": shortfall,
            "detail": detail,
            "profile": ctx.profile,
            "processed_at": ctx.now,
        },
    )
    return Outcome(
        ctx.event.id, ctx.event.type, status, user_id, transaction_id, credits, shortfall, detail
    )


def _customer_user(unit: Unit, ctx: _Context, customer: str | None) -> str | None:
    if not customer:
        return None
    snap = unit.get(ctx.db.collection(CUSTOMERS).document(safe_id(customer, "customer")))
    if snap.exists:
        return str(snap.get("user_id"))
    field = _USER_FIELD.get(ctx.profile)
    if field is None:
        return None
    # Users the app linked itself (it may write users.stripe_customer_id directly).
    users = ctx.db.collection(ctx.ledger.profile.users_collection)
    query = users.where(filter=firestore.FieldFilter(field, "==", customer)).limit(2)
    matches = [s.id for s in query.stream()]
    return matches[0] if len(matches) == 1 else None


def _resolve_user(
    unit: Unit, ctx: _Context, *, explicit: list[str | None], customer: str | None
) -> tuple[str, dict[str, Any]]:
    """The user an event is for, and their document; Unresolvable when unknown."""
    user_id = next((c for c in explicit if c), None) or _customer_user(unit, ctx, customer)
    if user_id is None:
        raise Unresolvable(
            f"no user for customer {customer}" if customer else "the event names no user"
        )
    if not _valid_doc_id(user_id):
        raise Unresolvable(f"user id {user_id!r} is not a valid document id")
    snap = unit.get(ctx.ledger.user_ref(user_id))
    if not snap.exists:
        raise Unresolvable(f"unknown user {user_id}")
    return user_id, snap.to_dict() or {}


def _link_customer(
    unit: Unit, ctx: _Context, user_id: str, user: dict[str, Any], customer: str | None
) -> None:
    """Remember customer -> user, and set the profile's customer field on the user."""
    if not customer:
        return
    ref = ctx.db.collection(CUSTOMERS).document(safe_id(customer, "customer"))
    if not unit.get(ref).exists:
        unit.create(ref, {"user_id": user_id, "linked_at": ctx.now, "event_id": ctx.event.id})
        ctx.linked.append(("customer_id", customer))
    field = _USER_FIELD.get(ctx.profile)
    if field and user.get(field) != customer:
        _update_user(unit, ctx, user_id, {field: customer})


def _update_user(unit: Unit, ctx: _Context, user_id: str, fields: dict[str, Any]) -> None:
    if ctx.profile == "kitesforu":
        fields = {**fields, "updated_at": ctx.now}
    unit.update(ctx.ledger.user_ref(user_id), fields)


def _payment_record(
    unit: Unit,
    ctx: _Context,
    payment_intent: str | None,
    data: dict[str, Any],
) -> None:
    """``stripe_payments/{payment_intent}``: what a payment bought (for clawbacks)."""
    if not payment_intent:
        return
    ref = ctx.db.collection(PAYMENTS).document(safe_id(payment_intent, "payment_intent"))
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


# -- checkout --------------------------------------------------------------------------------
def _checkout(unit: Unit, ctx: _Context, session: CheckoutSession) -> Outcome:
    kind = ctx.event.type
    if kind == "checkout.session.async_payment_failed":
        log(
            logger,
            logging.WARNING,
            "asynchronous payment failed; nothing credited",
            event_id=ctx.event.id,
            session_id=session.id,
        )
        return _done(unit, ctx, "payment_failed", object_id=session.id)
    if session.mode == "subscription":
        user_id, user = _resolve_user(
            unit,
            ctx,
            explicit=[session.client_reference_id, session.metadata.get("user_id")],
            customer=session.customer,
        )
        _link_customer(unit, ctx, user_id, user, session.customer)
        return _done(unit, ctx, "linked", user_id=user_id, object_id=session.id)
    if session.mode != "payment":
        return _done(unit, ctx, "ignored", object_id=session.id, detail=f"mode {session.mode}")
    if session.payment_status not in {"paid", "no_payment_required"}:
        return _done(
            unit,
            ctx,
            "awaiting_payment",
            object_id=session.id,
            detail=f"payment_status {session.payment_status}",
        )
    user_id, user = _resolve_user(
        unit,
        ctx,
        explicit=[session.client_reference_id, session.metadata.get("user_id")],
        customer=session.customer,
    )
    credits, prices = pack_credits(session.line_items, session.metadata, ctx.config)
    pi = session.payment_intent
    result = ctx.ledger.credit(
        unit,
        user_id=user_id,
        kind=Kind.PURCHASE,
        amount=credits,
        key=f"stripe:checkout:{safe_id(session.id, 'session id')}",
        description=f"Credit pack purchase: {credits} credits",
        refs=Refs(stripe_payment_intent_id=pi),
    )
    if result.replayed:
        return _done(
            unit,
            ctx,
            "duplicate_payment",
            user_id=user_id,
            object_id=session.id,
            transaction_id=result.transaction_id,
            detail="session already credited",
        )
    _link_customer(unit, ctx, user_id, user, session.customer)
    kaiwa_payment = kaiwa_id("payment", pi or session.id)
    _payment_record(
        unit,
        ctx,
        pi,
        {
            "user_id": user_id,
            "transaction_id": result.transaction_id,
            "credits": credits,
            "amount": session.amount_total or 0,
            "currency": session.currency,
            "source": "checkout",
            "checkout_session_id": session.id,
            "invoice_id": session.invoice,
            "subscription_id": None,
            "price_ids": prices,
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
    return _done(
        unit,
        ctx,
        "applied",
        user_id=user_id,
        object_id=session.id,
        transaction_id=result.transaction_id,
        credits=credits,
    )


# -- subscriptions ---------------------------------------------------------------------------
def _state(unit: Unit, ctx: _Context, subscription_id: str) -> tuple[Any, dict[str, Any]]:
    ref = ctx.db.collection(STATE).document(safe_id(subscription_id, "subscription id"))
    snap = unit.get(ref)
    return ref, (snap.to_dict() or {}) if snap.exists else {}


def _write_subscription(
    unit: Unit, ctx: _Context, snap: SubscriptionSnapshot, user_id: str, granted: list[int]
) -> None:
    if ctx.profile == "kaiwa":
        kaiwa_ref = ctx.db.collection(SUBSCRIPTIONS).document(
            kaiwa_id("subscription", snap.subscription_id)
        )
        unit.set(kaiwa_ref, kaiwa_subscription_doc(snap, user_id))
        return
    ref = ctx.db.collection(SUBSCRIPTIONS).document(snap.subscription_id)
    unit.set(
        ref,
        kitesforu_subscription_doc(snap, granted_this_period(snap.current_period_start, granted)),
    )
    if ctx.profile == "kitesforu":
        _update_user(unit, ctx, user_id, kitesforu_user_fields(snap))


def _subscription(unit: Unit, ctx: _Context, sub: Subscription) -> Outcome:
    state_ref, state = _state(unit, ctx, sub.id)
    user_id, user = _resolve_user(
        unit,
        ctx,
        explicit=[sub.metadata.get("user_id"), state.get("user_id")],
        customer=sub.customer,
    )
    if sub.price is None:
        raise Unresolvable(f"subscription {sub.id} has no price")
    plan = subscription_plan(sub.price, ctx.config, ctx.profile)
    deleted = ctx.event.type == "customer.subscription.deleted"
    key = order_key(ctx.event.created, ctx.event.type, ctx.event.id)
    if state.get("deleted") or (not deleted and not is_newer(key, stored_key(state))):
        return _done(
            unit,
            ctx,
            "stale",
            user_id=user_id,
            object_id=sub.id,
            detail="an equal or newer state is already stored",
        )
    start, end = sub.period
    snap = SubscriptionSnapshot(
        subscription_id=sub.id,
        customer_id=sub.customer,
        status="canceled" if deleted else sub.status,
        price_id=plan.price_id,
        tier=plan.tier,
        monthly_credits=plan.monthly_credits,
        current_period_start=start,
        current_period_end=end,
        cancel_at_period_end=sub.cancel_at_period_end,
    )
    granted = list(state.get("granted_periods") or [])
    unit.set(
        state_ref,
        {
            "subscription_id": sub.id,
            "user_id": user_id,
            "customer_id": sub.customer,
            "event_created": key[0],
            "event_rank": key[1],
            "event_id": key[2],
            "snapshot": snap.as_dict(),
            "granted_periods": granted,
            "deleted": deleted,
            "updated_at": ctx.now,
        },
    )
    _write_subscription(unit, ctx, snap, user_id, granted)
    _link_customer(unit, ctx, user_id, user, sub.customer)
    return _done(unit, ctx, "applied", user_id=user_id, object_id=sub.id)


def _invoice_plan(
    inv: Invoice, ctx: _Context, state: dict[str, Any]
) -> tuple[Plan | None, int | None]:
    """The plan an invoice pays for and the period start it pays (None: no plan line)."""
    line = inv.plan_line()
    if line is not None and line.price is not None:
        return subscription_plan(line.price, ctx.config, ctx.profile), line.period_start
    snapshot = state.get("snapshot")
    if (
        not inv.lines
        and snapshot
        and inv.billing_reason in {"subscription_create", "subscription_cycle"}
    ):
        snap = SubscriptionSnapshot.from_dict(snapshot)
        return Plan(snap.price_id, snap.tier, snap.monthly_credits), inv.period_end
    return None, None


def _invoice_subscriber(
    unit: Unit, ctx: _Context, inv: Invoice
) -> tuple[str, Any, dict[str, Any], str, dict[str, Any]]:
    """The invoice's subscription id, its ordering state (ref, data) and its user."""
    sub_id = safe_id(inv.subscription_id, "subscription id")
    state_ref, state = _state(unit, ctx, sub_id)
    user_id, user = _resolve_user(
        unit,
        ctx,
        explicit=[
            inv.subscription_metadata.get("user_id"),
            inv.metadata.get("user_id"),
            state.get("user_id"),
        ],
        customer=inv.customer,
    )
    return sub_id, state_ref, state, user_id, user


def _invoice_paid(unit: Unit, ctx: _Context, inv: Invoice) -> Outcome:
    if not inv.subscription_id:
        return _done(unit, ctx, "ignored", object_id=inv.id, detail="not a subscription invoice")
    sub_id, state_ref, state, user_id, user = _invoice_subscriber(unit, ctx, inv)
    processed_ref = ctx.db.collection(PROCESSED_INVOICES).document(safe_id(inv.id, "invoice id"))
    if unit.get(processed_ref).exists:
        return _done(
            unit,
            ctx,
            "duplicate_invoice",
            user_id=user_id,
            object_id=inv.id,
            detail="invoice already processed",
        )
    plan, period_start = _invoice_plan(inv, ctx, state)
    credits = plan.monthly_credits if plan else 0
    transaction_id = None
    if credits > 0 and plan is not None:
        result = ctx.ledger.credit(
            unit,
            user_id=user_id,
            kind=Kind.SUBSCRIPTION_GRANT,
            amount=credits,
            key=f"stripe:invoice:{inv.id}",
            description=f"{plan.tier} monthly credits (invoice {inv.id})",
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
    if plan is not None and period_start is not None:
        granted = with_granted(granted, period_start)
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
    kaiwa_payment = kaiwa_id("invoice", inv.id)
    if transaction_id is not None:
        _payment_record(
            unit,
            ctx,
            inv.payment_intent,
            {
                "user_id": user_id,
                "transaction_id": transaction_id,
                "credits": credits,
                "amount": inv.amount_paid,
                "currency": inv.currency,
                "source": "invoice",
                "checkout_session_id": None,
                "invoice_id": inv.id,
                "subscription_id": sub_id,
                "price_ids": [plan.price_id] if plan else [],
                "kaiwa_payment_id": kaiwa_payment if ctx.profile == "kaiwa" else None,
            },
        )
    if ctx.profile == "kaiwa":
        unit.set(
            ctx.db.collection(KAIWA_PAYMENTS).document(kaiwa_payment),
            kaiwa_payment_doc(
                user_id=user_id,
                subscription_id=kaiwa_id("subscription", sub_id),
                payment_intent=inv.payment_intent,
                invoice_id=inv.id,
                amount=inv.amount_paid,
                currency=inv.currency,
                status="succeeded",
            ),
        )
    _link_customer(unit, ctx, user_id, user, inv.customer)
    return _done(
        unit,
        ctx,
        "applied",
        user_id=user_id,
        object_id=inv.id,
        transaction_id=transaction_id,
        credits=credits,
        detail="" if plan else "no plan line (proration only): nothing granted",
    )


def _invoice_failed(unit: Unit, ctx: _Context, inv: Invoice) -> Outcome:
    if not inv.subscription_id:
        return _done(unit, ctx, "ignored", object_id=inv.id, detail="not a subscription invoice")
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
    key = order_key(ctx.event.created, ctx.event.type, ctx.event.id)
    snapshot = state.get("snapshot")
    if not snapshot or state.get("deleted") or not is_newer(key, stored_key(state)):
        return _done(
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
    _write_subscription(unit, ctx, snap, user_id, granted)
    return _done(
        unit,
        ctx,
        "applied",
        user_id=user_id,
        object_id=inv.id,
        detail="subscription past_due; nothing granted",
    )


# -- refunds and disputes --------------------------------------------------------------------
def _payment(unit: Unit, ctx: _Context, payment_intent: str | None) -> tuple[Any, dict[str, Any]]:
    if not payment_intent:
        raise Unresolvable("the event names no payment_intent")
    ref = ctx.db.collection(PAYMENTS).document(safe_id(payment_intent, "payment_intent"))
    snap = unit.get(ref)
    if not snap.exists:
        raise Unresolvable(f"no credited payment for payment intent {payment_intent}")
    return ref, snap.to_dict() or {}


def _claw_back(
    unit: Unit,
    ctx: _Context,
    *,
    pay_ref: Any,
    pay: dict[str, Any],
    payment_intent: str,
    amount: int,
    reason: str,
    object_id: str,
    updates: dict[str, Any],
    kaiwa_status: str,
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
        return _done(
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
        key=f"stripe:{ctx.event.id}",
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
    if ctx.profile == "kaiwa" and pay.get("kaiwa_payment_id"):
        unit.update(
            ctx.db.collection(KAIWA_PAYMENTS).document(str(pay["kaiwa_payment_id"])),
            {"status": kaiwa_status},
        )
    return _done(
        unit,
        ctx,
        "applied",
        user_id=user_id,
        object_id=object_id,
        transaction_id=result.transaction_id,
        credits=result.amount,
        shortfall=shortfall,
    )


def _charge_refunded(unit: Unit, ctx: _Context, charge: Charge) -> Outcome:
    pay_ref, pay = _payment(unit, ctx, charge.payment_intent)
    credits = int(pay.get("credits") or 0)
    target = clawback_target(credits, charge.amount, charge.amount_refunded)
    remaining = credits - int(pay.get("clawed_credits") or 0)
    delta = clawback_delta(target, int(pay.get("refund_clawed") or 0), remaining)
    full = charge.amount_refunded >= charge.amount
    return _claw_back(
        unit,
        ctx,
        pay_ref=pay_ref,
        pay=pay,
        payment_intent=str(charge.payment_intent),
        amount=delta,
        reason="stripe_refund",
        object_id=charge.id,
        updates={
            "refund_clawed": int(pay.get("refund_clawed") or 0) + delta,
            "amount_refunded": max(int(pay.get("amount_refunded") or 0), charge.amount_refunded),
            "charge_id": charge.id,
        },
        kaiwa_status="refunded" if full else "partially_refunded",
    )


def _dispute(unit: Unit, ctx: _Context, dispute: Dispute) -> Outcome:
    pay_ref, pay = _payment(unit, ctx, dispute.payment_intent)
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
        payment_intent=str(dispute.payment_intent),
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


_HANDLERS: dict[str, Callable[[Unit, _Context, Any], Outcome]] = {
    "checkout.session.completed": _checkout,
    "checkout.session.async_payment_succeeded": _checkout,
    "checkout.session.async_payment_failed": _checkout,
    "customer.subscription.created": _subscription,
    "customer.subscription.updated": _subscription,
    "customer.subscription.deleted": _subscription,
    "invoice.paid": _invoice_paid,
    "invoice.payment_succeeded": _invoice_paid,
    "invoice.payment_failed": _invoice_failed,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute,
}


# -- parking ---------------------------------------------------------------------------------
def _park_keys(ctx: _Context) -> dict[str, Any]:
    obj = ctx.event.data.object
    from shared.billing.events import ref_id

    return {
        "customer_id": ref_id(obj.get("customer")),
        "payment_intent_id": ref_id(obj.get("payment_intent")),
        "object_id": ref_id(obj),
    }


def _park(ctx: _Context, reason: str) -> Outcome:
    """Keep an event we cannot apply yet, with its payload, for an operator's replay."""
    parked_ref = ctx.db.collection(PARKED).document(ctx.event.id)

    def work(unit: Unit) -> Outcome:
        record, parked = unit.get_all([_event_ref(ctx), parked_ref])
        if record.exists and not (ctx.replay and record.get("status") == "parked"):
            return Outcome(ctx.event.id, ctx.event.type, "duplicate")
        if parked.exists:
            data = parked.to_dict() or {}
            unit.update(
                parked_ref,
                {
                    "status": "parked",
                    "reason": reason,
                    "attempts": int(data.get("attempts") or 0) + 1,
                    "last_attempt_at": ctx.now,
                },
            )
        else:
            unit.create(
                parked_ref,
                {
                    "type": ctx.event.type,
                    "created": instant(ctx.event.created),
                    "reason": reason,
                    "status": "parked",
                    "payload": ctx.payload,
                    **_park_keys(ctx),
                    "parked_at": ctx.now,
                    "last_attempt_at": ctx.now,
                    "attempts": 1,
                },
            )
        return _done(unit, ctx, "parked", detail=reason)

    return run_atomically(ctx.db, work)


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


def _now_resolvable(ctx: _Context) -> bool:
    """Whether what a just-parked event lacked (customer link, credited payment) exists now."""
    keys = _park_keys(ctx)
    pi, customer = keys["payment_intent_id"], keys["customer_id"]
    if ctx.event.type.startswith("charge.") and pi and _STRIPE_ID.match(pi):
        return bool(ctx.db.collection(PAYMENTS).document(pi).get().exists)
    if customer and _STRIPE_ID.match(customer):
        return bool(ctx.db.collection(CUSTOMERS).document(customer).get().exists)
    return False


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
