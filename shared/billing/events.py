"""Stripe webhook payloads as validated models, for old and new API versions alike.

Only the fields this suite reads are modelled; everything else is ignored. Where Stripe's
API versions disagree, both shapes are read:

- the billing period is on ``items.data[].current_period_*`` (2025-03-31 "basil" and later)
  or on the subscription itself (earlier versions);
- an invoice names its subscription under ``parent.subscription_details.subscription``
  (basil and later) or ``subscription`` (earlier), and its subscription metadata under
  ``parent.subscription_details.metadata`` or ``subscription_details.metadata``;
- an invoice line names its price under ``pricing.price_details.price`` (basil and later)
  or as an expanded ``price`` / ``plan`` object (earlier), and says whether it is a
  proration under ``parent.subscription_item_details.proration`` or ``proration``;
- an invoice's payment intent is ``payment_intent`` (earlier) or
  ``payments.data[].payment.payment_intent`` (basil and later).

Expandable references (``customer``, ``subscription``, ``payment_intent``, ``price``...)
arrive as an id string or as an expanded object; both are reduced to the id.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Epoch seconds up to 9999-12-31T23:59:59Z (anything beyond is not a date Stripe sends).
EPOCH_S_MAX = 253_402_300_799
Epoch = Annotated[int, Field(ge=0, le=EPOCH_S_MAX)]
# Amounts in minor units (cents), bounded like everything else.
Minor = Annotated[int, Field(ge=0, le=10**15)]


def ref_id(value: Any) -> str | None:
    """The id of an expandable reference (a string, or an object with an ``id``)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        found = value.get("id")
        return found if isinstance(found, str) and found else None
    return None


def _metadata(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


class _Lenient(BaseModel):
    """Ignore what we do not read (Stripe adds fields in every API version)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class PriceRef(_Lenient):
    """A price as far as the credit rules need it: its id and metadata (when expanded)."""

    id: str
    metadata: dict[str, str] = Field(default_factory=dict)
    product_id: str | None = None
    product_metadata: dict[str, str] = Field(default_factory=dict)
    recurring_interval: str | None = None

    @classmethod
    def from_any(cls, value: Any, product: Any = None) -> PriceRef | None:
        """Build from an id string or an expanded price (or plan) object."""
        if isinstance(value, str) and value:
            return cls(id=value, product_id=ref_id(product))
        if not isinstance(value, dict) or not ref_id(value):
            return None
        prod = value.get("product", product)
        recurring = value.get("recurring")
        interval = recurring.get("interval") if isinstance(recurring, dict) else None
        if interval is None and value.get("object") == "plan":
            interval = value.get("interval")
        return cls(
            id=str(value["id"]),
            metadata=_metadata(value.get("metadata")),
            product_id=ref_id(prod),
            product_metadata=_metadata(prod.get("metadata")) if isinstance(prod, dict) else {},
            recurring_interval=interval if isinstance(interval, str) else None,
        )


class LineItem(_Lenient):
    """One line (a checkout line item, an invoice line) reduced to price and quantity."""

    price: PriceRef | None = None
    quantity: int = 1
    proration: bool = False
    period_start: Epoch | None = None
    period_end: Epoch | None = None
    subscription_id: str | None = None
    amount: int | None = None

    @classmethod
    def from_raw(cls, raw: Any) -> LineItem | None:
        if not isinstance(raw, dict):
            return None
        details = _dict(_dict(raw.get("pricing")).get("price_details"))
        price = PriceRef.from_any(raw.get("price"))
        if price is None and details:
            price = PriceRef.from_any(details.get("price"), details.get("product"))
        if price is None:
            price = PriceRef.from_any(raw.get("plan"))
        item_details = _dict(_dict(raw.get("parent")).get("subscription_item_details"))
        proration = bool(raw.get("proration")) or bool(item_details.get("proration"))
        period = _dict(raw.get("period"))
        quantity = raw.get("quantity")
        subscription = ref_id(raw.get("subscription")) or ref_id(item_details.get("subscription"))
        return cls(
            price=price,
            quantity=quantity if isinstance(quantity, int) and quantity > 0 else 1,
            proration=proration,
            period_start=_int_or_none(period.get("start")),
            period_end=_int_or_none(period.get("end")),
            subscription_id=subscription,
            amount=_int_or_none(raw.get("amount")),
        )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= EPOCH_S_MAX:
        return value
    return None


def _lines(value: Any) -> list[LineItem]:
    data = value.get("data") if isinstance(value, dict) else value
    if not isinstance(data, list):
        return []
    return [line for line in (LineItem.from_raw(item) for item in data) if line is not None]


class CheckoutSession(_Lenient):
    """``checkout.session.*``: a one-time purchase (mode payment) or a subscription signup."""

    id: str
    mode: str
    payment_status: str | None = None
    status: str | None = None
    customer: str | None = None
    client_reference_id: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    payment_intent: str | None = None
    invoice: str | None = None
    subscription: str | None = None
    amount_total: Minor | None = None
    currency: str | None = None
    line_items: list[LineItem] = Field(default_factory=list)

    @field_validator("customer", "payment_intent", "invoice", "subscription", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> str | None:
        return ref_id(value)

    @field_validator("metadata", mode="before")
    @classmethod
    def _meta(cls, value: Any) -> dict[str, str]:
        return _metadata(value)

    @field_validator("line_items", mode="before")
    @classmethod
    def _items(cls, value: Any) -> list[LineItem]:
        return _lines(value)


class Subscription(_Lenient):
    """``customer.subscription.*``: the subscription's state when the event happened."""

    id: str
    customer: str
    status: str
    cancel_at_period_end: bool = False
    metadata: dict[str, str] = Field(default_factory=dict)
    items: list[SubscriptionItem] = Field(default_factory=list)
    current_period_start: Epoch | None = None
    current_period_end: Epoch | None = None
    ended_at: Epoch | None = None
    canceled_at: Epoch | None = None

    @field_validator("customer", mode="before")
    @classmethod
    def _customer(cls, value: Any) -> str | None:
        return ref_id(value)

    @field_validator("metadata", mode="before")
    @classmethod
    def _meta(cls, value: Any) -> dict[str, str]:
        return _metadata(value)

    @field_validator("items", mode="before")
    @classmethod
    def _items(cls, value: Any) -> list[Any]:
        data = value.get("data") if isinstance(value, dict) else value
        return data if isinstance(data, list) else []

    @property
    def price(self) -> PriceRef | None:
        """The price of the first item (one plan per subscription in this suite)."""
        for item in self.items:
            if item.price is not None:
                return item.price
        return None

    @property
    def period(self) -> tuple[int | None, int | None]:
        """(start, end) of the current period: on the items (new) or the subscription (old)."""
        for item in self.items:
            if item.current_period_start is not None and item.current_period_end is not None:
                return item.current_period_start, item.current_period_end
        return self.current_period_start, self.current_period_end


class SubscriptionItem(_Lenient):
    """One subscription item: its price and (API 2025-03-31 and later) its period."""

    price: PriceRef | None = None
    current_period_start: Epoch | None = None
    current_period_end: Epoch | None = None

    @model_validator(mode="before")
    @classmethod
    def _price(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        price = PriceRef.from_any(raw.get("price")) or PriceRef.from_any(raw.get("plan"))
        return {**raw, "price": price}


Subscription.model_rebuild()


class Invoice(_Lenient):
    """``invoice.paid`` / ``invoice.payment_failed``."""

    id: str
    customer: str | None = None
    status: str | None = None
    billing_reason: str | None = None
    amount_paid: Minor = 0
    amount_due: Minor = 0
    currency: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    subscription_id: str | None = None
    subscription_metadata: dict[str, str] = Field(default_factory=dict)
    payment_intent: str | None = None
    lines: list[LineItem] = Field(default_factory=list)
    period_start: Epoch | None = None
    period_end: Epoch | None = None

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> Invoice:
        """Read both the old and the new shape into one model (ValidationError if bad)."""
        details = _dict(_dict(raw.get("parent")).get("subscription_details"))
        old_details = _dict(raw.get("subscription_details"))
        subscription = ref_id(details.get("subscription")) or ref_id(raw.get("subscription"))
        sub_meta = _metadata(details.get("metadata")) or _metadata(old_details.get("metadata"))
        expanded = raw.get("subscription")
        if not sub_meta and isinstance(expanded, dict):
            sub_meta = _metadata(expanded.get("metadata"))
        payment_intent = ref_id(raw.get("payment_intent"))
        payments = raw.get("payments")
        if payment_intent is None and isinstance(payments, dict):
            for entry in payments.get("data") or []:
                payment = entry.get("payment") if isinstance(entry, dict) else None
                if isinstance(payment, dict) and ref_id(payment.get("payment_intent")):
                    payment_intent = ref_id(payment.get("payment_intent"))
                    break
        lines = _lines(raw.get("lines"))
        if subscription is None:
            subscription = next((ln.subscription_id for ln in lines if ln.subscription_id), None)
        data = {
            key: raw.get(key)
            for key in (
                "id",
                "status",
                "billing_reason",
                "currency",
                "period_start",
                "period_end",
            )
        }
        data.update(
            customer=ref_id(raw.get("customer")),
            amount_paid=raw.get("amount_paid") or 0,
            amount_due=raw.get("amount_due") or 0,
            metadata=_metadata(raw.get("metadata")),
            subscription_id=subscription,
            subscription_metadata=sub_meta,
            payment_intent=payment_intent,
            lines=lines,
        )
        return cls.model_validate(data)

    def plan_line(self) -> LineItem | None:
        """The line that pays for a subscription period (not a proration), if any."""
        candidates = [ln for ln in self.lines if ln.price is not None and not ln.proration]
        return candidates[0] if candidates else None


class Charge(_Lenient):
    """``charge.refunded``: amounts are cumulative (``amount_refunded`` so far)."""

    id: str
    amount: Minor
    amount_refunded: Minor = 0
    currency: str | None = None
    customer: str | None = None
    payment_intent: str | None = None
    invoice: str | None = None
    refunded: bool = False

    @field_validator("customer", "payment_intent", "invoice", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> str | None:
        return ref_id(value)


class Dispute(_Lenient):
    """``charge.dispute.created``."""

    id: str
    amount: Minor
    charge: str
    currency: str | None = None
    payment_intent: str | None = None
    reason: str | None = None
    status: str | None = None

    @field_validator("charge", "payment_intent", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> str | None:
        return ref_id(value)


class StripeEvent(_Lenient):
    """The event envelope: id, type, created (epoch seconds) and ``data.object``."""

    id: str = Field(min_length=1, max_length=255)
    type: str = Field(min_length=1, max_length=255)
    created: Epoch
    livemode: bool = False
    api_version: str | None = None
    data: EventData


class EventData(_Lenient):
    """``data``: the object and, for ``*.updated``, the attributes that changed."""

    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None


StripeEvent.model_rebuild()

HANDLED_TYPES = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice.payment_failed",
        "charge.refunded",
        "charge.dispute.created",
    }
)
