"""Pure billing rules: prices to credits and tiers, event order, clawbacks, documents.

No I/O and no clock here: everything takes values and returns values, so each rule is
tested without an emulator (tests/stripe/test_rules.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared.billing.events import Charge, Dispute, Invoice, LineItem, PriceRef
from shared.ledger.keys import posting_key

# -- idempotency keys ------------------------------------------------------------------------
# Built with ``posting_key`` (no two causes share a key, whatever the ids contain); an id
# free of ``:`` and ``%`` (every id Stripe issues) gives the key it always had, so
# transaction ids of postings made before stay the same.


def checkout_key(session_id: str) -> str:
    """The PURCHASE of a paid checkout session (``stripe:checkout:{session id}``)."""
    return posting_key("stripe", "checkout", session_id)


def invoice_key(invoice_id: str) -> str:
    """The SUBSCRIPTION_GRANT of a paid invoice (``stripe:invoice:{invoice id}``)."""
    return posting_key("stripe", "invoice", invoice_id)


def event_key(event_id: str) -> str:
    """The posting of one event itself: a clawback per refund or dispute event."""
    return posting_key("stripe", event_id)


class Tier(StrEnum):
    """KitesForU's SubscriptionTier (000), spelled as the seed spells it."""

    FREE = "FREE"
    ENTHU = "ENTHU"
    PRO = "PRO"
    PRO_PLUS = "PRO_PLUS"
    ULTIMATE = "ULTIMATE"
    PAYG = "PAYG"


class Unresolvable(Exception):
    """The event cannot be applied as it stands (no user, unknown price): park it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PaymentMismatch(Unresolvable):
    """What Stripe says was paid does not cover the credits: park it, log an ERROR."""


# Stripe statuses in which the subscriber keeps the tier they pay for.
ENTITLED_STATUSES = frozenset({"active", "trialing", "past_due"})
# Kaiwa's `status` enum (001) is active/canceled/past_due/trialing; Stripe has more.
_KAIWA_STATUS = {
    "active": "active",
    "trialing": "trialing",
    "past_due": "past_due",
    "unpaid": "past_due",
    "incomplete": "past_due",
    "canceled": "canceled",
    "incomplete_expired": "canceled",
    "paused": "canceled",
}
# Events that carry a subscription's state, in the order they happen for equal `created`.
_STATE_RANK = {
    "customer.subscription.created": 0,
    "customer.subscription.updated": 1,
    "invoice.payment_failed": 2,
    "customer.subscription.deleted": 3,
}
_KAIWA_NAMESPACE = uuid.UUID("0b6c7c1e-3f58-5a47-9d43-6a0f5f2f7a11")


@dataclass(frozen=True)
class PriceRule:
    """What the configured map says about one price (``billing_config/stripe_prices``)."""

    credits: int | None = None
    tier: str | None = None
    unit_amount: int | None = None
    currency: str | None = None


@dataclass(frozen=True)
class BillingConfig:
    """Prices, tiers and (Kaiwa) price -> tierId, as read from Firestore."""

    prices: Mapping[str, PriceRule] = field(default_factory=dict)
    tier_credits: Mapping[str, int] = field(default_factory=dict)
    kaiwa_tiers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_documents(
        cls,
        prices_doc: Mapping[str, Any] | None,
        tiers_doc: Mapping[str, Any] | None,
        kaiwa_tiers: Iterable[tuple[str, Mapping[str, Any]]] = (),
    ) -> BillingConfig:
        """Build from ``billing_config/stripe_prices``, ``billing_config/tiers``, ``tiers``."""
        prices: dict[str, PriceRule] = {}
        for price_id, raw in ((prices_doc or {}).get("prices") or {}).items():
            if isinstance(raw, Mapping):
                currency = raw.get("currency")
                prices[str(price_id)] = PriceRule(
                    credits=positive_int(raw.get("credits")),
                    tier=str(raw["tier"]) if raw.get("tier") else None,
                    unit_amount=positive_int(raw.get("unit_amount")),
                    currency=currency.lower() if isinstance(currency, str) and currency else None,
                )
        tier_credits: dict[str, int] = {}
        for tier, raw in ((tiers_doc or {}).get("tiers") or {}).items():
            if isinstance(raw, Mapping):
                value = raw.get("monthly_credits")
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    tier_credits[str(tier)] = value
        by_price: dict[str, str] = {}
        for tier_id, doc in kaiwa_tiers:
            for name in ("stripePriceIdMonthly", "stripePriceIdAnnual"):
                price_id = doc.get(name)
                if isinstance(price_id, str) and price_id:
                    by_price[price_id] = tier_id
        return cls(prices=prices, tier_credits=tier_credits, kaiwa_tiers=by_price)


def positive_int(value: Any) -> int | None:
    """A whole positive number from config or metadata ("500" or 500), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
        return number if number > 0 else None
    return None


def _metadata_credits(price: PriceRef) -> int | None:
    return positive_int(price.metadata.get("credits")) or positive_int(
        price.product_metadata.get("credits")
    )


# -- purchases -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PackPurchase:
    """A credit pack a paid Checkout Session bought: price, quantity and credits."""

    price_id: str
    quantity: int
    credits: int


def pack_purchase(
    metadata: Mapping[str, str],
    amount_subtotal: int | None,
    currency: str | None,
    config: BillingConfig,
) -> PackPurchase:
    """The credits a one-time Checkout purchase bought, confirmed by what was paid.

    Webhook sessions carry no line items, so the app names the price in
    ``metadata.price_id`` (and ``metadata.quantity``). The credits are the configured
    price's ``credits`` x the quantity, and only when the session's ``amount_subtotal``
    (before discounts) in its ``currency`` is exactly the configured ``unit_amount`` x the
    quantity in the configured currency (PaymentMismatch otherwise). A session naming no
    price is matched to the one configured pack whose price is its subtotal, if exactly
    one is. ``metadata.credits`` never mints credits.
    """
    paid_currency = (currency or "").lower()
    price_id = metadata.get("price_id")
    if not price_id:
        matches = [
            pid
            for pid, rule in config.prices.items()
            if rule.credits
            and rule.tier is None
            and rule.currency == paid_currency
            and rule.unit_amount == amount_subtotal
        ]
        if len(matches) != 1:
            raise Unresolvable(
                "the session names no price (metadata.price_id) and its amount_subtotal "
                f"{amount_subtotal} {paid_currency or '?'} matches "
                f"{'no' if not matches else 'more than one'} configured pack"
            )
        price_id = matches[0]
    raw_quantity = metadata.get("quantity")
    quantity = positive_int(raw_quantity) if raw_quantity is not None else 1
    if quantity is None:
        raise Unresolvable(f"metadata.quantity {raw_quantity!r} is not a positive whole number")
    rule = config.prices.get(price_id)
    if rule is None or rule.credits is None:
        raise Unresolvable(f"no credits configured for price {price_id}")
    if rule.unit_amount is None or rule.currency is None:
        raise Unresolvable(
            f"price {price_id} has no unit_amount and currency configured: "
            "the paid amount cannot be verified"
        )
    expected = rule.unit_amount * quantity
    if paid_currency != rule.currency or amount_subtotal != expected:
        raise PaymentMismatch(
            f"paid amount does not cover the credits: amount_subtotal {amount_subtotal} "
            f"{paid_currency or '?'}, but {quantity} x {price_id} costs {expected} "
            f"{rule.currency}"
        )
    return PackPurchase(price_id, quantity, rule.credits * quantity)


def decide_user(named: Iterable[tuple[str, str | None]], linked: tuple[str, str] | None) -> str:
    """The one user an event is for, from the users it names and its customer's link.

    ``named`` are (source, user id) pairs such as ``client_reference_id``; ``linked`` is
    (source, user id) of the customer's existing link. Two different users named, or a
    named user other than the one the customer is linked to, is a conflict: Unresolvable,
    never resolved silently (a customer, once linked, is never relinked by an event).
    """
    users: dict[str, list[str]] = {}
    for source, user_id in named:
        if user_id:
            users.setdefault(user_id, []).append(source)
    if len(users) > 1:
        listed = "; ".join(f"{'/'.join(src)}={uid}" for uid, src in users.items())
        raise Unresolvable(f"attribution conflict: the event names different users ({listed})")
    named_user = next(iter(users), None)
    if linked is not None and named_user is not None and linked[1] != named_user:
        raise Unresolvable(
            f"attribution conflict: the customer is linked to {linked[1]} ({linked[0]}), "
            f"the event names {named_user}"
        )
    user_id = named_user or (linked[1] if linked else None)
    if user_id is None:
        raise Unresolvable("the event names no user")
    return user_id


# -- subscriptions -------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """What a subscription price means: its tier and the credits granted each period."""

    price_id: str
    tier: str
    monthly_credits: int


def subscription_plan(price: PriceRef, config: BillingConfig, profile: str) -> Plan:
    """The plan of a recurring price under a schema profile (Unresolvable if unknown).

    KitesForU and BigEye: tier = ``price.metadata.tier`` > ``product.metadata.tier`` > the
    map's ``tier`` (one of the SubscriptionTier values); credits = ``metadata.credits``
    (price, then product) > the map's ``credits`` > the tier's ``monthly_credits``.
    Kaiwa: tierId = the ``tiers`` document whose ``stripePriceIdMonthly`` or
    ``stripePriceIdAnnual`` is the price; credits as above without a tier default (0).
    """
    rule = config.prices.get(price.id) or PriceRule()
    explicit = _metadata_credits(price) or rule.credits
    if profile == "kaiwa":
        tier_id = config.kaiwa_tiers.get(price.id)
        if tier_id is None:
            raise Unresolvable(f"no Kaiwa tier has price {price.id}")
        return Plan(price.id, tier_id, explicit or 0)
    tier = price.metadata.get("tier") or price.product_metadata.get("tier") or rule.tier
    if tier is None:
        raise Unresolvable(f"no tier configured for price {price.id}")
    if tier not in Tier.__members__:
        raise Unresolvable(f"price {price.id} names an unknown tier {tier!r}")
    credits = explicit if explicit is not None else config.tier_credits.get(tier)
    if credits is None:
        raise Unresolvable(f"tier {tier} has no monthly_credits configured")
    return Plan(price.id, tier, credits)


def proration_credits(prorations: Iterable[tuple[Plan, int, int]]) -> int:
    """Credits an upgrade invoice grants: the prorated difference between the plans.

    Each proration is (plan, amount, full-period amount) in minor units: a charge for the
    new plan's remaining time (amount > 0) brings that share of its monthly credits, a
    credit for the old plan's unused time (amount < 0) takes its share of the old plan's
    credits away. Never negative (a downgrade grants nothing and takes nothing back), and
    never a plan's full monthly credits for part of a period.
    """
    total = 0
    for plan, amount, full in prorations:
        if full <= 0:
            raise Unresolvable(f"price {plan.price_id} has no full-period amount to prorate")
        share = plan.monthly_credits * min(abs(amount), full) // full
        total += share if amount > 0 else -share
    return max(0, total)


OrderKey = tuple[int, int, str]


def order_key(created: int, event_type: str, event_id: str) -> OrderKey:
    """A total order on a subscription's state events: time, then lifecycle step, then id.

    Stripe's ``created`` has one-second resolution and deliveries are unordered; ranking
    created < updated < payment_failed < deleted within a second and then the event id
    makes every delivery order converge on the same final state.
    """
    return (created, _STATE_RANK.get(event_type, 1), event_id)


def is_newer(incoming: OrderKey, stored: OrderKey | None) -> bool:
    """True when ``incoming`` should overwrite the state recorded by ``stored``."""
    return stored is None or incoming > stored


def stored_key(state: Mapping[str, Any]) -> OrderKey | None:
    """The order key kept in a ``stripe_subscription_state`` document."""
    created = state.get("event_created")
    if not isinstance(created, int):
        return None
    return (created, int(state.get("event_rank") or 0), str(state.get("event_id") or ""))


def user_tier(status: str, plan_tier: str) -> str:
    """The tier a user has while their subscription is in ``status``."""
    return plan_tier if status in ENTITLED_STATUSES else Tier.FREE.value


def kaiwa_status(status: str) -> str:
    """Stripe's status in Kaiwa's four-value enum."""
    return _KAIWA_STATUS.get(status, "canceled")


def kaiwa_id(kind: str, stripe_id: str) -> str:
    """A deterministic UUID for a Kaiwa document (``subscription``/``invoice``/``payment``)."""
    return str(uuid.uuid5(_KAIWA_NAMESPACE, f"{kind}:{stripe_id}"))


def granted_this_period(period_start: int | None, granted_periods: Iterable[int]) -> bool:
    """Whether the period starting at ``period_start`` has had its grant."""
    return period_start is not None and period_start in set(granted_periods)


def with_granted(granted_periods: Iterable[int], period_start: int, keep: int = 36) -> list[int]:
    """The granted period starts plus one, newest ``keep`` kept, sorted."""
    return sorted(set(granted_periods) | {period_start})[-keep:]


def instant(epoch_s: int | None) -> datetime | None:
    """A Stripe epoch timestamp as an aware UTC datetime."""
    return None if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC)


# -- clawbacks -----------------------------------------------------------------------------
def clawback_target(credits: int, paid_amount: int, returned_amount: int) -> int:
    """Credits to take back in total when ``returned_amount`` of ``paid_amount`` went back.

    Proportional and rounded down (in minor units, integers only); a full refund takes
    back exactly ``credits``.
    """
    if paid_amount <= 0 or returned_amount <= 0:
        return 0
    if returned_amount >= paid_amount:
        return credits
    return credits * returned_amount // paid_amount


def clawback_delta(target: int, already: int, remaining: int) -> int:
    """What to take back now: up to ``target`` in total, never more than remains."""
    return max(0, min(target - already, remaining))


@dataclass(frozen=True)
class ClawbackPlan:
    """What one refund or dispute event does to the payment that bought credits."""

    #: Credits to claw back now through ``ledger.refund`` (0: nothing more to take).
    amount: int
    #: Fields of ``stripe_payments/{payment key}`` (the clawed and shortfall totals are
    #: added when the refund is posted: the shortfall is the ledger's to tell).
    payment_updates: dict[str, Any]
    #: The Kaiwa ``payments`` document's new ``amountRefunded`` / ``status``, if any.
    kaiwa_updates: dict[str, Any] | None = None
    #: The Kaiwa ``payments`` document to mark ``disputed`` once credits are clawed back.
    kaiwa_disputed_id: str | None = None


def kaiwa_refund_updates(data: Mapping[str, Any], charge: Charge) -> dict[str, Any] | None:
    """A Kaiwa payment refunded with the charge's cumulative refunded amount.

    None for a redelivery, or an older refund event arriving late.
    """
    before = int(data.get("amountRefunded") or 0)
    refunded = max(before, charge.amount_refunded)
    status = "refunded" if refunded >= charge.amount else "partially_refunded"
    if refunded <= 0 or (refunded == before and data.get("status") == status):
        return None
    return {"amountRefunded": refunded, "status": status}


def decide_clawback(
    pay: Mapping[str, Any],
    event: Charge | Dispute,
    *,
    refundable: int | None,
    kaiwa_payment: Mapping[str, Any] | None = None,
    profile: str = "",
) -> ClawbackPlan:
    """The clawback a ``charge.refunded`` or ``charge.dispute.created`` makes.

    ``pay`` is the payment record; ``refundable`` what the ledger says is still refundable
    of the original posting (every linked refund counted, however it was written), or None
    when the ledger cannot tell (its refund then reports why). Proportional and cumulative
    (``clawback_target`` / ``clawback_delta``), never more than bought nor than refundable.
    """
    credits = int(pay.get("credits") or 0)
    remaining = credits - int(pay.get("clawed_credits") or 0)
    kaiwa_updates = None
    kaiwa_disputed_id = None
    if isinstance(event, Charge):
        already = int(pay.get("refund_clawed") or 0)
        target = clawback_target(credits, event.amount, event.amount_refunded)
        delta = clawback_delta(target, already, remaining)
        if kaiwa_payment is not None:
            kaiwa_updates = kaiwa_refund_updates(kaiwa_payment, event)
        updates: dict[str, Any] = {
            "refund_clawed": already + delta,
            "amount_refunded": max(int(pay.get("amount_refunded") or 0), event.amount_refunded),
            "charge_id": event.id,
        }
    else:
        disputes = list(pay.get("disputes") or [])
        paid = int(pay.get("amount") or 0) or event.amount
        delta = (
            0
            if event.id in disputes
            else clawback_delta(clawback_target(credits, paid, event.amount), 0, remaining)
        )
        updates = {
            "dispute_clawed": int(pay.get("dispute_clawed") or 0) + delta,
            "disputes": sorted(set(disputes) | {event.id}),
            "charge_id": event.charge,
        }
        if profile == "kaiwa" and pay.get("kaiwa_payment_id"):
            kaiwa_disputed_id = str(pay["kaiwa_payment_id"])
    amount = delta if refundable is None else max(0, min(delta, refundable))
    return ClawbackPlan(
        amount=amount,
        payment_updates=updates,
        kaiwa_updates=kaiwa_updates,
        kaiwa_disputed_id=kaiwa_disputed_id if amount > 0 else None,
    )


# -- documents -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SubscriptionSnapshot:
    """A subscription's state as the latest applied event told it."""

    subscription_id: str
    customer_id: str
    status: str
    price_id: str
    tier: str
    monthly_credits: int
    current_period_start: int | None
    current_period_end: int | None
    cancel_at_period_end: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "subscription_id": self.subscription_id,
            "customer_id": self.customer_id,
            "status": self.status,
            "price_id": self.price_id,
            "tier": self.tier,
            "monthly_credits": self.monthly_credits,
            "current_period_start": self.current_period_start,
            "current_period_end": self.current_period_end,
            "cancel_at_period_end": self.cancel_at_period_end,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SubscriptionSnapshot:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


def kitesforu_subscription_doc(snap: SubscriptionSnapshot, granted: bool) -> dict[str, Any]:
    """``subscriptions/{subscription_id}`` with exactly 000's fields."""
    return {
        "stripe_subscription_id": snap.subscription_id,
        "stripe_customer_id": snap.customer_id,
        "tier": snap.tier,
        "status": snap.status,
        "current_period_start": instant(snap.current_period_start),
        "current_period_end": instant(snap.current_period_end),
        "cancel_at_period_end": snap.cancel_at_period_end,
        "monthly_credits": snap.monthly_credits,
        "credits_granted_this_period": granted,
    }


def kaiwa_subscription_doc(snap: SubscriptionSnapshot, user_id: str) -> dict[str, Any]:
    """Kaiwa's ``subscriptions/{id}`` with exactly 001's camelCase fields."""
    status = kaiwa_status(snap.status)
    return {
        "userId": user_id,
        "tierId": snap.tier,
        "stripeSubscriptionId": snap.subscription_id,
        "stripeCustomerId": snap.customer_id,
        "stripePriceId": snap.price_id,
        "status": status,
        "currentPeriodStart": instant(snap.current_period_start),
        "currentPeriodEnd": instant(snap.current_period_end),
        "isActive": status in {"active", "trialing"},
    }


def kaiwa_payment_doc(
    *,
    user_id: str,
    subscription_id: str | None,
    payment_intent: str | None,
    invoice_id: str | None,
    amount: int,
    currency: str | None,
    status: str,
) -> dict[str, Any]:
    """Kaiwa's ``payments/{id}`` with exactly 001's fields (amount in minor units)."""
    return {
        "userId": user_id,
        "subscriptionId": subscription_id,
        "stripePaymentIntentId": payment_intent,
        "stripeInvoiceId": invoice_id,
        "amount": amount,
        "currency": currency,
        "status": status,
    }


def kitesforu_user_fields(snap: SubscriptionSnapshot) -> dict[str, Any]:
    """The subscription fields of a KitesForU ``users`` document."""
    return {
        "tier": user_tier(snap.status, snap.tier),
        "subscription_status": snap.status,
        "subscription_period_end": instant(snap.current_period_end),
    }


# -- invoices ------------------------------------------------------------------------------
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


def decide_grant(
    inv: Invoice, config: BillingConfig, profile: str, state: Mapping[str, Any]
) -> Grant:
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


@dataclass(frozen=True)
class InvoicePaidPlan:
    """What a paid subscription invoice writes (apart from the grant's posting itself)."""

    grant: Grant
    #: ``processed_invoices/{invoice}``.
    processed: dict[str, Any]
    #: ``stripe_subscription_state/{subscription}``, whole.
    state: dict[str, Any]
    #: The subscription document's ``credits_granted_this_period`` (None: not written).
    granted_this_period: bool | None
    #: The payment keys known to have paid the invoice (the link's and the invoice's own).
    payment_keys: list[str]
    #: The payment record the grant gives every payment key (its ``transaction_id`` is the
    #: grant's posting, added when posted); None when nothing was granted.
    payment_record: dict[str, Any] | None
    #: ``stripe_invoice_payments/{invoice}`` but for ``grant`` (the payment record).
    link: dict[str, Any]
    #: Kaiwa's ``payments/{uuid5(invoice)}`` (profile ``kaiwa``), else None.
    kaiwa_payment: dict[str, Any] | None


def invoice_payment_keys(inv: Invoice, link: Mapping[str, Any]) -> list[str]:
    """The payments of an invoice: the link's, and the one the invoice names (API versions
    before 2025-03-31 name it)."""
    keys = set(link.get("payment_keys") or [])
    if inv.payment_intent or inv.charge:
        keys.add(str(inv.payment_intent or inv.charge))
    return sorted(keys)


def decide_invoice_paid(
    inv: Invoice,
    *,
    config: BillingConfig,
    profile: str,
    sub_id: str,
    user_id: str,
    state: Mapping[str, Any],
    link: Mapping[str, Any],
    now: datetime,
) -> InvoicePaidPlan:
    """The plan of a paid subscription invoice not processed before (pure)."""
    grant = decide_grant(inv, config, profile, state)
    granted = list(state.get("granted_periods") or [])
    if grant.credits > 0 and grant.period_start is not None:
        granted = with_granted(granted, grant.period_start)
    new_state = {
        **state,
        "subscription_id": sub_id,
        "user_id": user_id,
        "customer_id": state.get("customer_id") or inv.customer,
        "snapshot": state.get("snapshot"),
        "granted_periods": granted,
        "deleted": bool(state.get("deleted")),
        "updated_at": now,
    }
    snapshot = state.get("snapshot")
    period_credits = None
    if snapshot and profile != "kaiwa":
        period_credits = granted_this_period(snapshot.get("current_period_start"), granted)
    keys = invoice_payment_keys(inv, link)
    kaiwa_payment = kaiwa_id("invoice", inv.id)
    payment_intent = inv.payment_intent or link.get("payment_intent")
    record = None
    if grant.credits > 0:
        record = {
            "user_id": user_id,
            "credits": grant.credits,
            "amount": inv.amount_paid,
            "currency": inv.currency,
            "source": "invoice",
            "checkout_session_id": None,
            "invoice_id": inv.id,
            "subscription_id": sub_id,
            "price_ids": [grant.plan.price_id] if grant.plan else [],
            "kaiwa_payment_id": kaiwa_payment if profile == "kaiwa" else None,
        }
    return InvoicePaidPlan(
        grant=grant,
        processed={
            "subscription_id": sub_id,
            "processed_at": now,
            "amount": inv.amount_paid,
            "currency": inv.currency,
        },
        state=new_state,
        granted_this_period=period_credits,
        payment_keys=keys,
        payment_record=record,
        link={
            **link,
            "invoice_id": inv.id,
            "payment_keys": keys,
            "payment_intent": payment_intent,
            "kaiwa_payment_id": kaiwa_payment if profile == "kaiwa" else None,
            "granted_at": now,
        },
        kaiwa_payment=(
            kaiwa_payment_doc(
                user_id=user_id,
                subscription_id=kaiwa_id("subscription", sub_id),
                payment_intent=payment_intent,
                invoice_id=inv.id,
                amount=inv.amount_paid,
                currency=inv.currency,
                status="succeeded",
            )
            if profile == "kaiwa"
            else None
        ),
    )
