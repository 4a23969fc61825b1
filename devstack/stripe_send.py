"""Build Stripe webhook events as each API version sends them, sign them, send them.

The objects come from ``devstack/stripe_events/<api version>.json``: Stripe's published
example objects reduced to what webhooks of that version carry (no includable fields, no
``line_items`` on sessions, references as ids; see the README there). Each builder sets
ids, amounts, metadata and ``created`` and wraps the object as an event's
``data.object``. The tests, the benchmark and this command line use the same builders.

    python -m devstack.stripe_send checkout --user demo_stripe_user --price price_credits_500
    python -m devstack.stripe_send event charge.refunded --payment-intent pi_... --amount 500
    python -m devstack.stripe_send lifecycle --user demo_stripe_user --api-version 2025-03-31.basil
    python -m devstack.stripe_send file path/to/event.json

sends signed events to ``http://127.0.0.1:$FUNCTIONS_PORT/stripe-webhook`` with the first
secret of ``STRIPE_WEBHOOK_SECRET`` (the documented demo default when unset) and prints
each response (with the reason when the event was parked).
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

from shared.billing.events import HANDLED_TYPES

FIXTURES = Path(__file__).resolve().parent / "stripe_fixtures3.json"
EVENTS_DIR = Path(__file__).resolve().parent / "stripe_events"
VERSIONS = (
    "2024-06-20",
    "2024-09-30.acacia",
    "2025-03-31.basil",
    "2025-09-30.clover",
    "2026-03-25.dahlia",
    "2026-10-28.endive",
)
LATEST = VERSIONS[-1]
API_VERSION_NEW = "2025-03-31.basil"
API_VERSION_OLD = "2024-06-20"


def is_basil_or_later(version: str) -> bool:
    """Whether ``version`` has the 2025-03-31 shapes (no invoice payment intent, etc.)."""
    return version >= "2025-03-31"


@cache
def _resources() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURES.read_text())["resources"]
    return data


def resource(name: str) -> dict[str, Any]:
    """A fresh deep copy of one of Stripe's example objects (``invoice``, ``charge``...)."""
    return copy.deepcopy(_resources()[name])


@cache
def _version_objects(version: str) -> dict[str, Any]:
    if version not in VERSIONS:
        raise ValueError(f"unsupported API version {version!r}; one of {', '.join(VERSIONS)}")
    data: dict[str, Any] = json.loads((EVENTS_DIR / f"{version}.json").read_text())
    return data


def template(name: str, version: str = LATEST) -> dict[str, Any]:
    """A fresh copy of the object ``name`` as webhooks of ``version`` send it."""
    return copy.deepcopy(_version_objects(version)[name])


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def event(
    event_type: str,
    obj: dict[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
    previous_attributes: dict[str, Any] | None = None,
    api_version: str = LATEST,
) -> dict[str, Any]:
    """Wrap ``obj`` as the event envelope of ``api_version``."""
    env = template("event", api_version)
    env.update(
        id=event_id or new_id("evt"),
        type=event_type,
        created=int(created if created is not None else time.time()),
        livemode=False,
        pending_webhooks=1,
    )
    env["data"] = {"object": obj}
    if previous_attributes is not None:
        env["data"]["previous_attributes"] = previous_attributes
    return env


def _pack_amount(price_id: str | None, quantity: int) -> int:
    from devstack.demo.billing import CREDIT_PACKS

    pack = CREDIT_PACKS.get(price_id or "")
    return int(pack["unit_amount"]) * quantity if pack else 500


def checkout_session(
    *,
    user_id: str | None,
    price_id: str | None = None,
    quantity: int = 1,
    customer: str | None = None,
    payment_intent: str | None = None,
    amount_total: int | None = None,
    amount_subtotal: int | None = None,
    currency: str = "usd",
    payment_status: str = "paid",
    mode: str = "payment",
    session_id: str | None = None,
    subscription_id: str | None = None,
    metadata: dict[str, str] | None = None,
    version: str = LATEST,
) -> dict[str, Any]:
    """A completed Checkout Session; amounts default to the demo price x quantity."""
    obj = template("checkout.session", version)
    meta = dict(metadata or {})
    if price_id:
        meta["price_id"] = price_id
        if quantity != 1:
            meta["quantity"] = str(quantity)
    total = amount_total if amount_total is not None else _pack_amount(price_id, quantity)
    obj.update(
        id=session_id or new_id("cs_test"),
        client_reference_id=user_id,
        customer=customer,
        payment_intent=payment_intent if mode == "payment" else None,
        amount_total=total,
        amount_subtotal=amount_subtotal if amount_subtotal is not None else total,
        currency=currency,
        payment_status=payment_status,
        status="complete",
        mode=mode,
        metadata=meta,
        subscription=subscription_id if mode == "subscription" else None,
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
    unit_amount: int = 1900,
    version: str = LATEST,
) -> dict[str, Any]:
    """A subscription; its period on the item (basil and later) or on itself (earlier)."""
    obj = template("subscription", version)
    item = obj["items"]["data"][0]
    item["price"].update(id=price_id, metadata={}, unit_amount=unit_amount)
    item["price"]["unit_amount_decimal"] = str(unit_amount)
    item.update(id=f"si_{subscription_id}", subscription=subscription_id)
    obj["items"]["url"] = f"/v1/subscription_items?subscription={subscription_id}"
    obj.update(
        id=subscription_id,
        customer=customer,
        status=status,
        cancel_at_period_end=cancel_at_period_end,
        metadata={"user_id": user_id} if user_id else {},
        start_date=period_start,
        ended_at=period_end if status == "canceled" else None,
        canceled_at=period_end if status == "canceled" else None,
        cancel_at=period_end if cancel_at_period_end else None,
    )
    if is_basil_or_later(version):
        item["current_period_start"] = period_start
        item["current_period_end"] = period_end
    else:
        obj["current_period_start"] = period_start
        obj["current_period_end"] = period_end
    return obj


def invoice_line(
    *,
    price_id: str,
    amount: int,
    period_start: int,
    period_end: int,
    subscription_id: str | None,
    kind: str = "subscription_item",
    proration: bool = False,
    unit_amount: int | None = None,
    quantity: int = 1,
    version: str = LATEST,
) -> dict[str, Any]:
    """An invoice line: a subscription item's (``kind``) or an invoice item's (one-off fees
    and, as Stripe bills them, prorations)."""
    line = template(f"invoice_line.{kind}", version)
    unit = unit_amount if unit_amount is not None else abs(amount) // max(quantity, 1)
    line.update(
        id=new_id("il"),
        amount=amount,
        quantity=quantity,
        period={"start": period_start, "end": period_end},
        description=f"{quantity} x {price_id}",
    )
    if is_basil_or_later(version):
        details = line["parent"][f"{kind}_details"]
        details.update(subscription=subscription_id, proration=proration)
        if kind == "subscription_item":
            details["subscription_item"] = f"si_{subscription_id}"
        else:
            details["invoice_item"] = new_id("ii")
        line["pricing"] = {
            "type": "price_details",
            "price_details": {"price": price_id, "product": "prod_demo"},
            "unit_amount_decimal": str(unit),
        }
        line["subtotal"] = amount
    else:
        line["price"].update(id=price_id, metadata={}, unit_amount=unit)
        line["price"]["unit_amount_decimal"] = str(unit)
        if line.get("plan"):
            line["plan"].update(id=price_id, amount=unit, amount_decimal=str(unit))
        line.update(
            proration=proration,
            subscription=subscription_id,
            subscription_item=f"si_{subscription_id}" if kind == "subscription_item" else None,
            invoice_item=new_id("ii") if kind == "invoice_item" else None,
            amount_excluding_tax=amount,
            unit_amount_excluding_tax=str(unit),
        )
    return line


def invoice(
    *,
    invoice_id: str,
    subscription_id: str,
    customer: str,
    price_id: str = "",
    period_start: int = 0,
    period_end: int = 0,
    amount_paid: int = 1900,
    payment_intent: str | None = None,
    user_id: str | None = None,
    status: str = "paid",
    billing_reason: str = "subscription_cycle",
    lines: list[dict[str, Any]] | None = None,
    total: int | None = None,
    version: str = LATEST,
) -> dict[str, Any]:
    """A subscription invoice as ``version`` sends it: before basil it names its
    subscription and payment intent; from basil on only ``parent.subscription_details``
    (the payment comes with ``invoice_payment.paid``)."""
    obj = template("invoice", version)
    if lines is None:
        lines = [
            invoice_line(
                price_id=price_id,
                amount=amount_paid,
                period_start=period_start,
                period_end=period_end,
                subscription_id=subscription_id,
                version=version,
            )
        ]
    for line in lines:
        line["invoice"] = invoice_id
    obj["lines"].update(data=lines, url=f"/v1/invoices/{invoice_id}/lines")
    invoice_total = total if total is not None else sum(int(ln["amount"]) for ln in lines)
    paid = status == "paid"
    obj.update(
        id=invoice_id,
        customer=customer,
        status=status,
        billing_reason=billing_reason,
        amount_paid=amount_paid if paid else 0,
        amount_due=amount_paid,
        amount_remaining=0 if paid else amount_paid,
        subtotal=invoice_total,
        total=invoice_total,
        currency="usd",
        metadata={},
        period_start=period_start,
        period_end=period_start,
    )
    sub_meta = {"user_id": user_id} if user_id else {}
    if is_basil_or_later(version):
        obj["parent"]["subscription_details"] = {
            "metadata": sub_meta,
            "subscription": subscription_id,
        }
    else:
        obj.update(
            subscription=subscription_id,
            subscription_details={"metadata": sub_meta},
            payment_intent=payment_intent,
            paid=paid,
        )
    return obj


def invoice_payment(
    *, invoice_id: str, payment_intent: str, amount: int, version: str = LATEST
) -> dict[str, Any]:
    """An Invoice Payment (``invoice_payment.paid``, API 2025-03-31 and later)."""
    if not is_basil_or_later(version):
        raise ValueError(f"{version} has no invoice_payment events")
    obj = template("invoice_payment", version)
    now = int(time.time())
    obj.update(
        id=new_id("inpay"),
        invoice=invoice_id,
        amount_paid=amount,
        amount_requested=amount,
        created=now,
        payment={"type": "payment_intent", "payment_intent": payment_intent},
        status_transitions={"canceled_at": None, "paid_at": now},
    )
    return obj


def charge(
    *,
    payment_intent: str | None,
    amount: int,
    amount_refunded: int,
    customer: str | None = None,
    charge_id: str | None = None,
    invoice_id: str | None = None,
    version: str = LATEST,
) -> dict[str, Any]:
    """A charge with cumulative ``amount_refunded`` (names its invoice before basil)."""
    obj = template("charge", version)
    obj.update(
        id=charge_id or new_id("ch"),
        payment_intent=payment_intent,
        amount=amount,
        amount_captured=amount,
        amount_refunded=amount_refunded,
        refunded=amount_refunded >= amount,
        customer=customer,
        captured=True,
    )
    if not is_basil_or_later(version):
        obj["invoice"] = invoice_id
    return obj


def dispute(
    *,
    payment_intent: str | None,
    amount: int,
    charge_id: str | None = None,
    version: str = LATEST,
) -> dict[str, Any]:
    """A dispute of a charge (and its payment intent)."""
    obj = template("dispute", version)
    obj.update(
        id=new_id("dp"),
        payment_intent=payment_intent,
        amount=amount,
        charge=charge_id or new_id("ch"),
        status="needs_response",
    )
    return obj


def customer(
    *, customer_id: str, metadata: dict[str, str] | None = None, version: str = LATEST
) -> dict[str, Any]:
    """A customer (``customer.created`` / ``.updated``)."""
    obj = template("customer", version)
    obj.update(id=customer_id, metadata=dict(metadata or {}), discount=None)
    return obj


# -- lifecycles ----------------------------------------------------------------------------
DAY = 86400
P1 = 1_767_225_600  # 2026-01-01T00:00:00Z
P2 = P1 + 31 * DAY
P3 = P2 + 28 * DAY
PRO, ULTIMATE = "price_kites_pro_monthly", "price_kites_ultimate_monthly"
PRO_CENTS, ULTIMATE_CENTS = 1900, 9900
# Upgrading PRO -> ULTIMATE two thirds into the second period: Stripe credits the unused
# PRO time and charges the remaining ULTIMATE time, both as proration invoice items.
UPGRADE_CREDIT_CENTS, UPGRADE_CHARGE_CENTS = -1267, 6600


def lifecycle(
    version: str, user_id: str, *, tag: str = "life", t0: int = P1 + 600
) -> list[tuple[str, dict[str, Any]]]:
    """subscribe -> renew -> upgrade -> refund -> dispute -> cancel, as ``version`` sends
    it, in the order Stripe creates the events: (label, event) pairs."""
    sub, cus = f"sub_{tag}", f"cus_{tag}"
    new = is_basil_or_later(version)
    out: list[tuple[str, dict[str, Any]]] = []
    clock = iter(range(t0, t0 + 1000))

    def add(label: str, event_type: str, obj: dict[str, Any], **kw: Any) -> None:
        n = len(out) + 1
        out.append(
            (
                label,
                event(
                    event_type,
                    obj,
                    api_version=version,
                    created=next(clock),
                    event_id=f"evt_{tag}_{n:02d}",
                    **kw,
                ),
            )
        )

    def state(price: str, cents: int, start: int, end: int, **kw: Any) -> dict[str, Any]:
        return subscription(
            subscription_id=sub,
            customer=cus,
            price_id=price,
            period_start=start,
            period_end=end,
            user_id=user_id,
            unit_amount=cents,
            version=version,
            **kw,
        )

    def paid(inv_id: str, reason: str, amount: int, lines: list[dict[str, Any]]) -> None:
        pi = f"pi_{inv_id}"
        obj = invoice(
            invoice_id=inv_id,
            subscription_id=sub,
            customer=cus,
            amount_paid=amount,
            payment_intent=pi,
            user_id=user_id,
            billing_reason=reason,
            lines=lines,
            period_start=lines[0]["period"]["start"],
            version=version,
        )
        add(f"invoice {reason}", "invoice.paid", obj)
        if new:
            link = invoice_payment(
                invoice_id=inv_id, payment_intent=pi, amount=amount, version=version
            )
            add("payment linked", "invoice_payment.paid", link)

    def plan_line(price: str, cents: int, start: int, end: int) -> dict[str, Any]:
        return invoice_line(
            price_id=price,
            amount=cents,
            period_start=start,
            period_end=end,
            subscription_id=sub,
            version=version,
        )

    session = checkout_session(
        user_id=user_id,
        customer=cus,
        mode="subscription",
        subscription_id=sub,
        amount_total=PRO_CENTS,
        session_id=f"cs_{tag}",
        version=version,
    )
    add("subscribe (checkout)", "checkout.session.completed", session)
    add("subscription created", "customer.subscription.created", state(PRO, PRO_CENTS, P1, P2))
    paid(f"in_{tag}_1", "subscription_create", PRO_CENTS, [plan_line(PRO, PRO_CENTS, P1, P2)])
    previous = (
        {"items": {"data": [{"current_period_start": P1, "current_period_end": P2}]}}
        if new
        else {"current_period_start": P1, "current_period_end": P2}
    )
    add(
        "renewal",
        "customer.subscription.updated",
        state(PRO, PRO_CENTS, P2, P3),
        previous_attributes={**previous, "latest_invoice": f"in_{tag}_1"},
    )
    paid(f"in_{tag}_2", "subscription_cycle", PRO_CENTS, [plan_line(PRO, PRO_CENTS, P2, P3)])
    add(
        "upgrade",
        "customer.subscription.updated",
        state(ULTIMATE, ULTIMATE_CENTS, P2, P3),
        previous_attributes={"items": {"data": [{"price": {"id": PRO}}]}},
    )
    upgrade_at = P2 + (P3 - P2) // 3
    prorations = [
        invoice_line(
            price_id=price,
            amount=cents,
            period_start=upgrade_at,
            period_end=P3,
            subscription_id=sub,
            kind="invoice_item",
            proration=True,
            unit_amount=full,
            version=version,
        )
        for price, cents, full in (
            (PRO, UPGRADE_CREDIT_CENTS, PRO_CENTS),
            (ULTIMATE, UPGRADE_CHARGE_CENTS, ULTIMATE_CENTS),
        )
    ]
    upgrade_paid = UPGRADE_CHARGE_CENTS + UPGRADE_CREDIT_CENTS
    paid(f"in_{tag}_3", "subscription_update", upgrade_paid, prorations)
    refund = charge(
        payment_intent=f"pi_in_{tag}_2",
        amount=PRO_CENTS,
        amount_refunded=PRO_CENTS,
        customer=cus,
        invoice_id=f"in_{tag}_2",
        version=version,
    )
    add("refund of the renewal", "charge.refunded", refund)
    contest = dispute(payment_intent=f"pi_in_{tag}_3", amount=upgrade_paid, version=version)
    add("dispute of the upgrade", "charge.dispute.created", contest)
    add(
        "cancel",
        "customer.subscription.deleted",
        state(ULTIMATE, ULTIMATE_CENTS, P2, P3, status="canceled"),
    )
    return out


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


def build_event(event_type: str, args: argparse.Namespace) -> dict[str, Any]:
    """One handled event type from command-line arguments (every handled type)."""
    version, user, cus = args.api_version, args.user, args.customer or new_id("cus")
    sub, pi = args.subscription or new_id("sub"), args.payment_intent or new_id("pi")
    now = int(time.time())
    if event_type.startswith("checkout.session."):
        mode = "subscription" if args.price and "monthly" in args.price else "payment"
        obj = checkout_session(
            user_id=user,
            price_id=args.price if mode == "payment" else None,
            quantity=args.quantity,
            customer=cus,
            payment_intent=pi,
            mode=mode,
            subscription_id=sub,
            payment_status="unpaid" if event_type.endswith("failed") else "paid",
            version=version,
        )
    elif event_type.startswith("customer.subscription."):
        obj = subscription(
            subscription_id=sub,
            customer=cus,
            price_id=args.price or PRO,
            period_start=now,
            period_end=now + 30 * DAY,
            status="canceled" if event_type.endswith("deleted") else "active",
            user_id=user,
            version=version,
        )
    elif event_type.startswith("invoice."):
        failed = event_type == "invoice.payment_failed"
        obj = invoice(
            invoice_id=args.invoice or new_id("in"),
            subscription_id=sub,
            customer=cus,
            price_id=args.price or PRO,
            period_start=now,
            period_end=now + 30 * DAY,
            amount_paid=args.amount or PRO_CENTS,
            payment_intent=pi,
            user_id=user,
            status="open" if failed else "paid",
            version=version,
        )
    elif event_type == "invoice_payment.paid":
        inv = args.invoice or new_id("in")
        obj = invoice_payment(
            invoice_id=inv, payment_intent=pi, amount=args.amount or PRO_CENTS, version=version
        )
    elif event_type == "charge.refunded":
        amount = args.amount or 500
        obj = charge(
            payment_intent=pi,
            amount=amount,
            amount_refunded=args.refunded or amount,
            customer=cus,
            invoice_id=args.invoice,
            version=version,
        )
    elif event_type == "charge.dispute.created":
        obj = dispute(payment_intent=pi, amount=args.amount or 500, version=version)
    elif event_type in {"customer.created", "customer.updated"}:
        meta = {"firebaseUID": user} if user else {}
        obj = customer(customer_id=cus, metadata=meta, version=version)
    else:
        raise SystemExit(f"not a handled event type: {event_type}")
    # An update carries what changed; here the metadata (as when the app sets a user id).
    previous: dict[str, Any] | None = {"metadata": {}} if event_type.endswith(".updated") else None
    return event(event_type, obj, api_version=version, previous_attributes=previous)


def _report(label: str, response: httpx.Response) -> None:
    try:
        body = response.json()
    except ValueError:
        body = {"raw": response.text}
    line = f"{response.status_code} {body.get('status', body.get('detail', ''))}"
    if body.get("reason"):
        line += f" — {body['reason']}"
    print(f"{label:32} {line}")


#: Every event type the webhook handles, as the command line offers them.
HANDLED = tuple(sorted(HANDLED_TYPES))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.stripe_send", description="Send signed Stripe test events."
    )
    parser.add_argument("--url", default=None, help="default: the local stack's stripe-webhook")
    parser.add_argument("--api-version", default=LATEST, choices=VERSIONS)
    sub = parser.add_subparsers(dest="command", required=True)
    buy = sub.add_parser("checkout", help="a paid credit-pack Checkout Session")
    buy.add_argument("--user", default="demo_stripe_user")
    buy.add_argument("--price", default="price_credits_500")
    buy.add_argument("--quantity", type=int, default=1)
    one = sub.add_parser("event", help="one event of a handled type")
    one.add_argument("type", choices=HANDLED)
    one.add_argument("--user", default="demo_stripe_user")
    one.add_argument("--customer")
    one.add_argument("--subscription")
    one.add_argument("--invoice")
    one.add_argument("--payment-intent")
    one.add_argument("--price")
    one.add_argument("--quantity", type=int, default=1)
    one.add_argument("--amount", type=int, help="minor units")
    one.add_argument("--refunded", type=int, help="charge.refunded: amount_refunded so far")
    life = sub.add_parser(
        "lifecycle", help="subscribe, renew, upgrade, refund, dispute, cancel (in order)"
    )
    life.add_argument("--user", default="demo_stripe_user")
    life.add_argument("--tag", default=None, help="suffix of the ids (default: random)")
    from_file = sub.add_parser("file", help="an event JSON file, sent as is")
    from_file.add_argument("path")
    args = parser.parse_args(argv)
    if args.url is None:
        from devstack.preflight import functions_url, require_or_exit

        require_or_exit(functions=True)
    url = args.url or f"{functions_url()}/stripe-webhook"
    events: list[tuple[str, dict[str, Any] | str]]
    if args.command == "checkout":
        obj = checkout_session(
            user_id=args.user,
            price_id=args.price,
            quantity=args.quantity,
            payment_intent=new_id("pi"),
            customer=new_id("cus"),
            version=args.api_version,
        )
        events = [
            ("checkout", event("checkout.session.completed", obj, api_version=args.api_version))
        ]
    elif args.command == "event":
        events = [(args.type, build_event(args.type, args))]
    elif args.command == "lifecycle":
        tag = args.tag or uuid.uuid4().hex[:10]
        events = list(lifecycle(args.api_version, args.user, tag=tag, t0=int(time.time())))
    else:
        events = [(Path(args.path).name, Path(args.path).read_text())]
    worst = 0
    for label, evt in events:
        try:
            response = send(url, evt)
        except httpx.HTTPError as exc:
            print(f"error: could not send to {url}: {exc or type(exc).__name__}", file=sys.stderr)
            return 2
        _report(label, response)
        worst = max(worst, response.status_code)
    return 0 if worst < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
