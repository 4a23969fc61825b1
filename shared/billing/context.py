"""What every Stripe event handler shares: collections, the context, the event record.

Documents of our own (never extra fields in the seeds' documents):
- ``stripe_events/{event_id}``: what each event did (``status``, user, transaction);
- ``stripe_subscription_state/{subscription_id}``: the order key of the latest applied
  subscription event, its snapshot, and the period starts already granted;
- ``stripe_customers/{customer_id}``: Stripe customer -> user, written once, never changed;
- ``stripe_payments/{payment_intent_id or charge_id}``: which transaction a payment bought
  and how much of it was clawed back;
- ``stripe_invoice_payments/{invoice_id}``: the payments that paid an invoice and the
  grant the invoice made, joined whichever of ``invoice.paid`` and
  ``invoice_payment.paid`` arrives first (from API 2025-03-31 on an invoice names no
  payment intent and a charge no invoice);
- ``stripe_parked_events/{event_id}``: events that could not be applied yet, with the raw
  payload and the reason, for an automatic or operator's replay;
- ``stripe_clawback_shortfalls/{event_id}``: credits a refund or dispute could not take
  back because the user had already spent them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from google.cloud import firestore

from shared.atomic import Unit
from shared.billing.events import (
    Charge,
    CheckoutSession,
    Dispute,
    Invoice,
    StripeEvent,
    Subscription,
)
from shared.billing.rules import BillingConfig, checkout_key, instant, invoice_key
from shared.errors import InvalidInput
from shared.ledger import Ledger, transaction_id_for

EVENTS = "stripe_events"
PARKED = "stripe_parked_events"
STATE = "stripe_subscription_state"
CUSTOMERS = "stripe_customers"
PAYMENTS = "stripe_payments"
INVOICE_PAYMENTS = "stripe_invoice_payments"
SHORTFALLS = "stripe_clawback_shortfalls"
CONFIG = "billing_config"
PRICES_DOC = "stripe_prices"
TIERS_DOC = "tiers"
SUBSCRIPTIONS = "subscriptions"
PROCESSED_INVOICES = "processed_invoices"
KAIWA_PAYMENTS = "payments"
KAIWA_TIERS = "tiers"
# firestore-stripe-payments (the Firebase extension) writes customers/{uid}.stripeId.
EXTENSION_CUSTOMERS = "customers"

STRIPE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")
# The profile's own customer field on users (BigEye has none).
USER_CUSTOMER_FIELD = {"kitesforu": "stripe_customer_id", "kaiwa": "stripeCustomerId"}


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
class Context:
    """One event's processing: clients, configuration, the event and its time."""

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
    if not value or not STRIPE_ID.match(value):
        raise InvalidInput(f"{name} is missing or not a valid Stripe id")
    return value


def valid_doc_id(value: str | None) -> bool:
    """Whether an id from outside (a user id in metadata) can address a document."""
    return (
        bool(value)
        and "/" not in str(value)
        and len(str(value)) <= 700
        and not str(value).startswith("__")
    )


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


def event_ref(ctx: Context) -> firestore.DocumentReference:
    return ctx.db.collection(EVENTS).document(ctx.event.id)


def done(
    unit: Unit,
    ctx: Context,
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
        event_ref(ctx),
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


def update_user(unit: Unit, ctx: Context, user_id: str, fields: dict[str, Any]) -> None:
    """Update the user's document (KitesForU also stamps ``updated_at``)."""
    if ctx.profile == "kitesforu":
        fields = {**fields, "updated_at": ctx.now}
    unit.update(ctx.ledger.user_ref(user_id), fields)


def prefetch_refs(ctx: Context, parsed: Any) -> list[firestore.DocumentReference]:
    """Documents the handler will read, fetched with the event record in one round trip."""
    db = ctx.db
    users: list[str | None] = []
    refs: list[tuple[str, str | None]] = []
    postings: list[str] = []
    if isinstance(parsed, CheckoutSession):
        users = [parsed.client_reference_id, parsed.metadata.get("user_id")]
        refs = [(CUSTOMERS, parsed.customer), (PAYMENTS, parsed.payment_intent)]
        postings = [checkout_key(parsed.id)]
    elif isinstance(parsed, Subscription):
        users = [parsed.metadata.get("user_id")]
        refs = [(STATE, parsed.id), (CUSTOMERS, parsed.customer)]
    elif isinstance(parsed, Invoice):
        users = [parsed.subscription_metadata.get("user_id"), parsed.metadata.get("user_id")]
        refs = [
            (STATE, parsed.subscription_id),
            (CUSTOMERS, parsed.customer),
            (PROCESSED_INVOICES, parsed.id),
            (INVOICE_PAYMENTS, parsed.id),
            (PAYMENTS, parsed.payment_intent),
        ]
        postings = [invoice_key(parsed.id)]
    elif isinstance(parsed, Charge | Dispute):
        refs = [(PAYMENTS, parsed.payment_key)]
    found = [db.collection(c).document(i) for c, i in refs if i and STRIPE_ID.match(i)]
    first_user = next((u for u in users if u), None)
    if first_user is not None and valid_doc_id(first_user):
        found.append(ctx.ledger.user_ref(first_user))
    found += [ctx.ledger.posting_ref(transaction_id_for(k)) for k in postings]
    return found
