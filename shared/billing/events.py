"""Stripe webhook payloads as validated models, for every API version from 2024-06-20 on.

Only the fields this suite reads are modelled; everything else is ignored. Webhook events
carry objects in their default form: no includable field (an invoice's ``payments``), no
``line_items`` on Checkout Sessions, expandable references as ids. Where API versions
disagree, both shapes are read:

- the billing period is on ``items.data[].current_period_*`` (2025-03-31 "basil" and later)
  or on the subscription itself (earlier versions);
- an invoice names its subscription under ``parent.subscription_details.subscription``
  (basil and later) or ``subscription`` (earlier), and its subscription metadata under
  ``parent.subscription_details.metadata`` or ``subscription_details.metadata``;
- an invoice line names its price under ``pricing.price_details.price`` (basil and later)
  or as an expanded ``price`` / ``plan`` object (earlier); it is a subscription item line
  when ``parent.type`` is ``subscription_item_details`` (``type: subscription`` earlier),
  and a proration when ``proration`` is set under either parent (or at the top, earlier);
- an invoice names its payment intent and charge (``payment_intent``, ``charge``) only
  before basil; from basil on the link is the Invoice Payment of an
  ``invoice_payment.paid`` event (``invoice``, ``payment.payment_intent`` /
  ``payment.charge``), and a charge no longer names its invoice.

Expandable references (``customer``, ``subscription``, ``payment_intent``, ``price``...)
arrive as an id string or as an expanded object; both are reduced to the id.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.entry import validation_detail
from shared.errors import InvalidInput

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
    subscription_item: bool = False
    unit_amount: int | None = None

    @classmethod
    def from_raw(cls, raw: Any) -> LineItem | None:
        if not isinstance(raw, dict):
            return None
        pricing = _dict(raw.get("pricing"))
        details = _dict(pricing.get("price_details"))
        price = PriceRef.from_any(raw.get("price"))
        if price is None and details:
            price = PriceRef.from_any(details.get("price"), details.get("product"))
        if price is None:
            price = PriceRef.from_any(raw.get("plan"))
        parent = _dict(raw.get("parent"))
        item_details = _dict(parent.get("subscription_item_details"))
        invoice_item_details = _dict(parent.get("invoice_item_details"))
        proration = (
            raw.get("proration") is True
            or item_details.get("proration") is True
            or invoice_item_details.get("proration") is True
        )
        subscription_item = (
            parent.get("type") == "subscription_item_details"
            if parent
            else raw.get("type") == "subscription"
        )
        period = _dict(raw.get("period"))
        quantity = raw.get("quantity")
        subscription = (
            ref_id(raw.get("subscription"))
            or ref_id(item_details.get("subscription"))
            or ref_id(invoice_item_details.get("subscription"))
        )
        amount = raw.get("amount")
        return cls(
            price=price,
            quantity=quantity if isinstance(quantity, int) and quantity > 0 else 1,
            proration=proration,
            period_start=_int_or_none(period.get("start")),
            period_end=_int_or_none(period.get("end")),
            subscription_id=subscription,
            amount=amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
            subscription_item=subscription_item,
            unit_amount=_unit_amount(raw, pricing),
        )


def _unit_amount(raw: dict[str, Any], pricing: dict[str, Any]) -> int | None:
    """The line's price per unit in minor units (``pricing`` from basil on, else ``price``)."""
    value: Any = pricing.get("unit_amount_decimal")
    if value is None:
        value = _dict(raw.get("price")).get("unit_amount")
    if value is None:
        value = _dict(raw.get("plan")).get("amount")
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number <= 0 or number != number.to_integral_value():
        return None
    return int(number) if number <= 10**15 else None


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
    amount_subtotal: Minor | None = None
    currency: str | None = None

    @field_validator("customer", "payment_intent", "invoice", "subscription", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> str | None:
        return ref_id(value)

    @field_validator("metadata", mode="before")
    @classmethod
    def _meta(cls, value: Any) -> dict[str, str]:
        return _metadata(value)


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
    charge: str | None = None
    total: int | None = None
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
            payment_intent=ref_id(raw.get("payment_intent")),
            charge=ref_id(raw.get("charge")),
            total=raw.get("total") if isinstance(raw.get("total"), int) else None,
            lines=lines,
        )
        return cls.model_validate(data)

    def _own(self, line: LineItem) -> bool:
        return line.subscription_id in (None, self.subscription_id)

    def plan_line(self) -> LineItem | None:
        """The subscription item line of this invoice's subscription that pays a period.

        Never a proration and never a one-off invoice item (a setup fee): those do not
        decide the tier.
        """
        for line in self.lines:
            if line.price and line.subscription_item and not line.proration and self._own(line):
                return line
        return None

    def proration_lines(self) -> list[LineItem]:
        """Priced prorations of this invoice's subscription (an upgrade or a downgrade)."""
        return [ln for ln in self.lines if ln.price and ln.proration and self._own(ln)]

    @property
    def paid_total(self) -> int:
        """What the invoice cost after discounts (``total``), else what was paid."""
        return self.total if self.total is not None else self.amount_paid


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

    @property
    def payment_key(self) -> str:
        """The payment this charge belongs to: its payment intent, else the charge itself."""
        return self.payment_intent or self.id


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

    @property
    def payment_key(self) -> str:
        """The disputed payment: its payment intent, else the charge."""
        return self.payment_intent or self.charge


class InvoicePayment(_Lenient):
    """``invoice_payment.paid`` (basil and later): which payment paid which invoice."""

    id: str
    invoice: str
    amount_paid: Minor | None = None
    currency: str | None = None
    status: str | None = None
    payment_intent: str | None = None
    charge: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _payment(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        payment = _dict(raw.get("payment"))
        return {
            **raw,
            "invoice": ref_id(raw.get("invoice")),
            "payment_intent": ref_id(payment.get("payment_intent")),
            "charge": ref_id(payment.get("charge")),
        }

    @property
    def payment_key(self) -> str | None:
        """The key refunds and disputes of this payment find it by (as on a charge)."""
        return self.payment_intent or self.charge


class Customer(_Lenient):
    """``customer.created`` / ``customer.updated``: read for ``metadata.firebaseUID``."""

    id: str
    metadata: dict[str, str] = Field(default_factory=dict)

    @field_validator("metadata", mode="before")
    @classmethod
    def _meta(cls, value: Any) -> dict[str, str]:
        return _metadata(value)


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
        "invoice_payment.paid",
        "charge.refunded",
        "charge.dispute.created",
        "customer.created",
        "customer.updated",
    }
)

_MODELS: dict[str, Any] = {
    "checkout.session.": CheckoutSession.model_validate,
    "customer.subscription.": Subscription.model_validate,
    "invoice.": Invoice.from_raw,
    "invoice_payment.": InvoicePayment.model_validate,
    "charge.refunded": Charge.model_validate,
    "charge.dispute.": Dispute.model_validate,
    "customer.": Customer.model_validate,
}


class RejectedObject(Exception):
    """A signed event of a handled type whose object our models reject: park it."""


def parse_object(event: StripeEvent) -> Any:
    """The event's object as its model; RejectedObject when the model rejects it."""
    obj = event.data.object
    for prefix, model in _MODELS.items():
        if event.type.startswith(prefix):
            try:
                return model(obj)
            except ValidationError as exc:
                raise RejectedObject(f"{event.type}: {validation_detail(exc)}") from None
    raise InvalidInput(f"unsupported event type {event.type}")
