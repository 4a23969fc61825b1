"""Build Stripe webhook events from Stripe's own example objects, sign them, send them.

The objects come from ``devstack/stripe_fixtures3.json`` (a copy of the subset of
Stripe's published OpenAPI fixtures in the specification); each builder sets ids, amounts,
metadata and ``created`` and wraps the object as an event's ``data.object``. The tests,
the benchmark and this command line use the same builders.

    python -m devstack.stripe_send checkout --user demo_stripe_user --price price_credits_500
    python -m devstack.stripe_send file path/to/event.json

sends a signed event to ``http://127.0.0.1:$FUNCTIONS_PORT/stripe-webhook`` with the first
secret of ``STRIPE_WEBHOOK_SECRET`` (the documented demo default when unset).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import stripe

FIXTURES = Path(__file__).resolve().parent / "stripe_fixtures3.json"
API_VERSION_NEW = "2025-03-31.basil"
API_VERSION_OLD = "2024-06-20"


@cache
def _resources() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURES.read_text())["resources"]
    return data


def resource(name: str) -> dict[str, Any]:
    """A fresh deep copy of one of Stripe's example objects (``invoice``, ``charge``...)."""
    return copy.deepcopy(_resources()[name])


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def event(
    event_type: str,
    obj: dict[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
    previous_attributes: dict[str, Any] | None = None,
    api_version: str = API_VERSION_NEW,
) -> dict[str, Any]:
    """Wrap ``obj`` as Stripe's event object (shape of the ``event`` fixture)."""
    env = resource("event")
    env.update(
        id=event_id or new_id("evt"),
        type=event_type,
        created=int(created if created is not None else time.time()),
        api_version=api_version,
        livemode=False,
        pending_webhooks=1,
    )
    env["data"] = {"object": obj}
    if previous_attributes is not None:
        env["data"]["previous_attributes"] = previous_attributes
    return env


def checkout_session(
    *,
    user_id: str | None,
    price_id: str | None = None,
    quantity: int = 1,
    customer: str | None = None,
    payment_intent: str | None = None,
    amount_total: int = 500,
    payment_status: str = "paid",
    mode: str = "payment",
    session_id: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A completed Checkout Session (``checkout.session`` fixture)."""
    obj = resource("checkout.session")
    meta = dict(metadata or {})
    if price_id:
        meta["price_id"] = price_id
        if quantity != 1:
            meta["quantity"] = str(quantity)
    obj.update(
        id=session_id or new_id("cs_test"),
        client_reference_id=user_id,
        customer=customer,
        payment_intent=payment_intent if mode == "payment" else None,
        amount_total=amount_total,
        amount_subtotal=amount_total,
        currency="usd",
        payment_status=payment_status,
        status="complete",
        mode=mode,
        metadata=meta,
        subscription=None,
    )
    return obj


def subscription(
    *,
    subscription_id: str,
    customer: str,
    price_id: str,
    status: str = "active",
    period_start: int,
    period_end: int,
    cancel_at_period_end: bool = False,
    user_id: str | None = None,
    new_shape: bool = True,
) -> dict[str, Any]:
    """A subscription (``subscription`` fixture), period on the item (new) or on it (old)."""
    obj = resource("subscription")
    item = obj["items"]["data"][0]
    item["price"]["id"] = price_id
    item["price"]["metadata"] = {}
    item["subscription"] = subscription_id
    obj.update(
        id=subscription_id,
        customer=customer,
        status=status,
        cancel_at_period_end=cancel_at_period_end,
        metadata={"user_id": user_id} if user_id else {},
        start_date=period_start,
        ended_at=None,
        canceled_at=None,
        cancel_at=period_end if cancel_at_period_end else None,
    )
    if new_shape:
        item["current_period_start"] = period_start
        item["current_period_end"] = period_end
        obj.pop("current_period_start", None)
        obj.pop("current_period_end", None)
    else:
        item.pop("current_period_start", None)
        item.pop("current_period_end", None)
        obj["current_period_start"] = period_start
        obj["current_period_end"] = period_end
    return obj


def invoice(
    *,
    invoice_id: str,
    subscription_id: str,
    customer: str,
    price_id: str,
    period_start: int,
    period_end: int,
    amount_paid: int = 1900,
    payment_intent: str | None = None,
    user_id: str | None = None,
    status: str = "paid",
    billing_reason: str = "subscription_cycle",
    new_shape: bool = True,
) -> dict[str, Any]:
    """A subscription invoice (``invoice`` fixture) in the new or the old API shape."""
    obj = resource("invoice")
    line = obj["lines"]["data"][0]
    line.update(
        id=new_id("il"),
        invoice=invoice_id,
        amount=amount_paid,
        period={"start": period_start, "end": period_end},
        description="1 × plan (at $19.00 / month)",
    )
    obj.update(
        id=invoice_id,
        customer=customer,
        status=status,
        billing_reason=billing_reason,
        amount_paid=amount_paid if status == "paid" else 0,
        amount_due=amount_paid,
        amount_remaining=0 if status == "paid" else amount_paid,
        currency="usd",
        metadata={},
    )
    sub_meta = {"user_id": user_id} if user_id else {}
    if new_shape:
        line["parent"] = {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": subscription_id,
                "subscription_item": new_id("si"),
            },
        }
        line["pricing"] = {
            "type": "price_details",
            "price_details": {"price": price_id, "product": "prod_demo"},
            "unit_amount_decimal": str(amount_paid),
        }
        obj["parent"] = {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"metadata": sub_meta, "subscription": subscription_id},
        }
        obj.pop("subscription", None)
        obj["payments"] = {
            "object": "list",
            "data": (
                [{"payment": {"type": "payment_intent", "payment_intent": payment_intent}}]
                if payment_intent
                else []
            ),
        }
    else:
        price = resource("price")
        price.update(id=price_id, metadata={})
        line.pop("parent", None)
        line.pop("pricing", None)
        line.update(price=price, proration=False, subscription=subscription_id, type="subscription")
        obj["parent"] = None
        obj["subscription"] = subscription_id
        obj["subscription_details"] = {"metadata": sub_meta}
        obj["payment_intent"] = payment_intent
    return obj


def charge(
    *, payment_intent: str, amount: int, amount_refunded: int, customer: str | None = None
) -> dict[str, Any]:
    """A charge (``charge`` fixture) with cumulative ``amount_refunded``."""
    obj = resource("charge")
    obj.update(
        id=new_id("ch"),
        payment_intent=payment_intent,
        amount=amount,
        amount_captured=amount,
        amount_refunded=amount_refunded,
        refunded=amount_refunded >= amount,
        customer=customer,
        captured=True,
    )
    return obj


def dispute(*, payment_intent: str, amount: int, charge_id: str | None = None) -> dict[str, Any]:
    """A dispute (``dispute`` fixture)."""
    obj = resource("dispute")
    obj.update(
        id=new_id("dp"),
        payment_intent=payment_intent,
        amount=amount,
        charge=charge_id or new_id("ch"),
    )
    return obj


# -- signing and sending -----------------------------------------------------------------------
def signature_header(payload: str, secret: str, timestamp: int | None = None) -> str:
    """``Stripe-Signature`` for ``payload`` exactly as Stripe computes it."""
    ts = int(timestamp if timestamp is not None else time.time())
    header: str = stripe.WebhookSignature.generate_signature_header(payload, secret, ts)
    return header


def default_secret() -> str:
    """The first configured webhook secret (the demo default when unset)."""
    from shared.settings import get_settings

    return get_settings().stripe_secrets()[0]


def send(
    url: str,
    evt: dict[str, Any] | str,
    *,
    secret: str | None = None,
    timestamp: int | None = None,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """POST one signed event to ``url``."""
    payload = evt if isinstance(evt, str) else json.dumps(evt)
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": signature_header(payload, secret or default_secret(), timestamp),
    }
    if client is not None:
        return client.post(url, content=payload.encode(), headers=headers)
    return httpx.post(url, content=payload.encode(), headers=headers, timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.stripe_send", description="Send a signed Stripe test event."
    )
    parser.add_argument("--url", default=None, help="default: the local stack's stripe-webhook")
    sub = parser.add_subparsers(dest="command", required=True)
    buy = sub.add_parser("checkout", help="a paid credit-pack Checkout Session")
    buy.add_argument("--user", default="demo_stripe_user")
    buy.add_argument("--price", default="price_credits_500")
    buy.add_argument("--quantity", type=int, default=1)
    from_file = sub.add_parser("file", help="an event JSON file, sent as is")
    from_file.add_argument("path")
    args = parser.parse_args(argv)
    if args.url is None:
        from devstack.preflight import functions_url, require_or_exit

        require_or_exit(functions=True)
    url = args.url or f"{functions_url()}/stripe-webhook"
    if args.command == "checkout":
        obj = checkout_session(
            user_id=args.user,
            price_id=args.price,
            quantity=args.quantity,
            payment_intent=new_id("pi"),
            customer=new_id("cus"),
        )
        evt: dict[str, Any] | str = event("checkout.session.completed", obj)
    else:
        evt = Path(args.path).read_text()
    try:
        response = send(url, evt)
    except httpx.HTTPError as exc:
        print(f"error: could not send to {url}: {exc or type(exc).__name__}", file=sys.stderr)
        return 2
    print(response.status_code, response.text)
    return 0 if response.status_code < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
