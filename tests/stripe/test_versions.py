"""Every supported API version, shaped as its webhooks really are, over real HTTP.

Each test runs once per version in ``devstack/stripe_events`` (2024-06-20 ... endive):
the whole lifecycle, the payment <-> invoice link, prorations and plan lines, paid
amounts against credits, attribution conflicts and the extension's customer links.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from devstack import stripe_send as fx
from shared.billing import list_parked_events
from shared.ledger import KITESFORU
from shared.ledger.reconcile import reconcile
from tests.stripe.support import (
    assert_balance_is_sum,
    deliver,
    deliver_ok,
    docs,
    make_user,
    transactions,
    user,
)

VERSIONS = pytest.mark.parametrize("version", fx.VERSIONS)


def _send_all(stack: Any, events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [deliver_ok(stack, evt) for _, evt in events]


def _reason(db: Any, event_id: str) -> str:
    return str(docs(db, "stripe_parked_events")[event_id]["reason"])


@VERSIONS
def test_whole_lifecycle_balances_and_reconciles(billing: Any, stack: Any, version: str) -> None:
    make_user(billing, "u_v")
    events = fx.lifecycle(version, "u_v", tag="v")
    statuses = dict(zip([label for label, _ in events], _send_all(stack, events), strict=False))
    assert "parked" not in statuses.values(), statuses
    grants = sorted(t["amount"] for t in transactions(billing) if t["type"] == "SUBSCRIPTION_GRANT")
    # subscribe 1,500 (PRO), renew 1,500, upgrade to ULTIMATE two thirds into the period:
    # 12,000 x 6,600/9,900 - 1,500 x 1,267/1,900 = 8,000 - 1,000 (never PRO's 1,500 again)
    assert grants == [1500, 1500, 7000]
    refunds = sorted(t["amount"] for t in transactions(billing) if t["type"] == "REFUND")
    assert refunds == [-7000, -1500]  # the dispute of the upgrade, the refunded renewal
    doc = user(billing, "u_v")
    assert doc["tier"] == "FREE" and doc["subscription_status"] == "canceled"
    assert assert_balance_is_sum(billing, "u_v") == 1500
    report = reconcile(billing, KITESFORU, run_id=f"v_{version}", now=datetime.now(UTC))
    assert report.clean, report.discrepancies[:5]
    assert list_parked_events(billing) == []


@VERSIONS
def test_whole_lifecycle_in_random_orders_ends_the_same(
    billing: Any, stack: Any, version: str
) -> None:
    """Stripe does not keep order: any delivery order ends with the same money."""
    make_user(billing, "u_v")
    events = [evt for _, evt in fx.lifecycle(version, "u_v", tag="o")]
    for evt in random.Random(f"orders-{version}").sample(events, len(events)):
        deliver_ok(stack, evt)
    assert list_parked_events(billing) == []
    amounts = sorted(t["amount"] for t in transactions(billing))
    assert amounts == [-7000, -1500, 1500, 1500, 7000]
    assert assert_balance_is_sum(billing, "u_v") == 1500
    assert user(billing, "u_v")["tier"] == "FREE"


@VERSIONS
def test_refund_and_dispute_before_their_link_wait_then_apply(
    billing: Any, stack: Any, version: str
) -> None:
    """The link (invoice_payment.paid from basil on) arrives after the refund and dispute."""
    make_user(billing, "u_v")
    events = fx.lifecycle(version, "u_v", tag="late")
    links = [e for e in events if e[1]["type"] == "invoice_payment.paid"]
    clawbacks = [e for e in events if e[1]["type"].startswith("charge.")]
    rest = [e for e in events if e not in links and e not in clawbacks]
    _send_all(stack, rest)
    early = _send_all(stack, clawbacks)
    if fx.is_basil_or_later(version):
        assert early == ["parked", "parked"]
        for _, evt in clawbacks:
            assert "no credited payment" in _reason(billing, evt["id"])
        assert _send_all(stack, links) == ["linked"] * 3
        parked = docs(billing, "stripe_parked_events")
        assert {parked[evt["id"]]["replay_status"] for _, evt in clawbacks} == {"applied"}
    else:  # the invoice named its payment intent: nothing to wait for
        assert early == ["applied", "applied"] and links == []
    assert list_parked_events(billing) == []
    assert assert_balance_is_sum(billing, "u_v") == 1500


def _invoice(version: str, lines: list[dict[str, Any]], amount: int, **kw: Any) -> dict[str, Any]:
    return fx.invoice(
        invoice_id=kw.pop("invoice_id", "in_x"),
        subscription_id="sub_x",
        customer="cus_x",
        amount_paid=amount,
        payment_intent="pi_x",
        user_id="u_v",
        lines=lines,
        period_start=fx.P1,
        version=version,
        **kw,
    )


def _line(version: str, price: str, amount: int, **kw: Any) -> dict[str, Any]:
    return fx.invoice_line(
        price_id=price,
        amount=amount,
        period_start=fx.P1,
        period_end=fx.P2,
        subscription_id="sub_x",
        version=version,
        **kw,
    )


@VERSIONS
def test_a_one_off_first_line_never_decides_the_tier(
    billing: Any, stack: Any, version: str
) -> None:
    make_user(billing, "u_v")
    lines = [
        _line(version, "price_onboarding_fee", 4900, kind="invoice_item"),
        _line(version, fx.PRO, fx.PRO_CENTS),
    ]
    inv = _invoice(version, lines, 4900 + fx.PRO_CENTS, billing_reason="subscription_create")
    assert deliver_ok(stack, fx.event("invoice.paid", inv, api_version=version)) == "applied"
    [grant] = transactions(billing)
    assert grant["amount"] == 1500 and "PRO" in grant["description"]


@VERSIONS
def test_an_upgrade_invoice_never_grants_the_old_plan(
    billing: Any, stack: Any, version: str
) -> None:
    make_user(billing, "u_v")
    prorations = [
        _line(version, price, cents, kind="invoice_item", proration=True, unit_amount=full)
        for price, cents, full in (
            (fx.PRO, fx.UPGRADE_CREDIT_CENTS, fx.PRO_CENTS),
            (fx.ULTIMATE, fx.UPGRADE_CHARGE_CENTS, fx.ULTIMATE_CENTS),
        )
    ]
    paid = fx.UPGRADE_CHARGE_CENTS + fx.UPGRADE_CREDIT_CENTS
    inv = _invoice(version, prorations, paid, billing_reason="subscription_update")
    assert deliver_ok(stack, fx.event("invoice.paid", inv, api_version=version)) == "applied"
    [grant] = transactions(billing)
    assert grant["amount"] == 7000 and "ULTIMATE" in grant["description"]
    # A downgrade (credit of the bigger plan, charge of the smaller) grants nothing.
    down = [
        _line(version, price, cents, kind="invoice_item", proration=True, unit_amount=full)
        for price, cents, full in ((fx.ULTIMATE, -6600, 9900), (fx.PRO, 1267, 1900))
    ]
    inv = _invoice(version, down, 0, invoice_id="in_down", total=-5333)
    assert deliver_ok(stack, fx.event("invoice.paid", inv, api_version=version)) == "applied"
    assert len(transactions(billing)) == 1


@VERSIONS
def test_a_zero_trial_invoice_grants_nothing(billing: Any, stack: Any, version: str) -> None:
    make_user(billing, "u_v")
    inv = _invoice(version, [_line(version, fx.PRO, 0)], 0, billing_reason="subscription_create")
    assert deliver_ok(stack, fx.event("invoice.paid", inv, api_version=version)) == "applied"
    assert transactions(billing) == [] and "in_x" in docs(billing, "processed_invoices")


def _session(version: str, **kw: Any) -> dict[str, Any]:
    kw.setdefault("user_id", "u_v")
    kw.setdefault("payment_intent", fx.new_id("pi"))
    kw.setdefault("customer", "cus_v")
    return fx.event("checkout.session.completed", fx.checkout_session(version=version, **kw))


@VERSIONS
def test_credits_are_covered_by_what_was_paid(
    billing: Any, stack: Any, version: str, caplog: Any
) -> None:
    make_user(billing, "u_v")
    cases = {
        "1 yen for 10,000 credits": _session(
            version, price_id="price_credits_10000", amount_total=1, currency="jpy"
        ),
        "1000 packs for $5": _session(
            version,
            price_id="price_credits_500",
            amount_total=500,
            metadata={"quantity": "1000"},
        ),
        "no payment, metadata.credits": _session(
            version,
            price_id=None,
            amount_total=0,
            payment_status="no_payment_required",
            metadata={"credits": "999999"},
        ),
    }
    for label, evt in cases.items():
        assert deliver_ok(stack, evt) == "parked", label
    assert "does not cover" in _reason(billing, cases["1 yen for 10,000 credits"]["id"])
    assert "does not cover" in _reason(billing, cases["1000 packs for $5"]["id"])
    assert "names no price" in _reason(billing, cases["no payment, metadata.credits"]["id"])
    assert any(
        r.levelname == "ERROR" and "does not confirm" in r.getMessage() for r in caplog.records
    )
    assert transactions(billing) == []
    # A session naming no price is matched to the one pack its subtotal pays for.
    unnamed = _session(version, price_id=None, amount_total=1800)
    assert deliver_ok(stack, unnamed) == "applied"
    assert assert_balance_is_sum(billing, "u_v") == 2000


@VERSIONS
def test_attribution_conflicts_are_parked_and_never_relink(
    billing: Any, stack: Any, version: str
) -> None:
    make_user(billing, "u1")
    make_user(billing, "u2")
    assert deliver_ok(stack, _session(version, user_id="u2", customer="cus_u2")) == "applied"
    # u1 pays through u2's customer: parked, u2's link and u1's document untouched.
    steal = _session(version, user_id="u1", customer="cus_u2")
    assert deliver_ok(stack, steal) == "parked"
    assert "linked to u2" in _reason(billing, steal["id"])
    assert docs(billing, "stripe_customers")["cus_u2"]["user_id"] == "u2"
    assert "stripe_customer_id" not in user(billing, "u1")
    # client_reference_id and metadata.user_id disagree: parked, nobody credited.
    split = _session(version, user_id="u1", customer="cus_new", metadata={"user_id": "u2"})
    assert deliver_ok(stack, split) == "parked"
    assert "different users" in _reason(billing, split["id"])
    assert user(billing, "u1")["credits_balance"] == 0
    assert user(billing, "u2")["credits_balance"] == 500


@VERSIONS
def test_extension_links_attribute_invoices(billing: Any, stack: Any, version: str) -> None:
    """customers/{uid}.stripeId and the customer's metadata.firebaseUID (firestore-stripe-
    payments) link a customer when the invoice names no user."""
    make_user(billing, "u_ext")
    make_user(billing, "u_meta")
    billing.collection("customers").document("u_ext").set(
        {"stripeId": "cus_ext", "stripeLink": "https://dashboard.stripe.com/x", "email": None}
    )

    def bare_invoice(inv: str, customer: str) -> dict[str, Any]:
        obj = fx.invoice(
            invoice_id=inv,
            subscription_id=f"sub_{customer}",
            customer=customer,
            price_id=fx.PRO,
            period_start=fx.P1,
            period_end=fx.P2,
            payment_intent=f"pi_{inv}",
            billing_reason="subscription_create",
            version=version,
        )
        return fx.event("invoice.paid", obj, api_version=version)

    assert deliver_ok(stack, bare_invoice("in_ext", "cus_ext")) == "applied"
    assert user(billing, "u_ext")["credits_balance"] == 1500
    waiting = bare_invoice("in_meta", "cus_meta")
    assert deliver_ok(stack, waiting) == "parked"
    assert "no user for customer cus_meta" in _reason(billing, waiting["id"])
    cus = fx.customer(customer_id="cus_meta", metadata={"firebaseUID": "u_meta"}, version=version)
    assert deliver_ok(stack, fx.event("customer.created", cus, api_version=version)) == "linked"
    assert user(billing, "u_meta")["credits_balance"] == 1500  # replayed automatically
    # A customer the extension already gave to u_ext cannot be claimed by metadata.
    other = fx.customer(customer_id="cus_ext", metadata={"firebaseUID": "u_meta"}, version=version)
    claim = fx.event(
        "customer.updated",
        other,
        api_version=version,
        previous_attributes={"metadata": {"firebaseUID": "u_ext"}},
    )
    assert deliver(stack, claim).json()["status"] == "parked"
    assert "linked to u_ext" in _reason(billing, claim["id"])
    assert docs(billing, "stripe_customers")["cus_ext"]["user_id"] == "u_ext"


def test_invoice_and_its_payment_link_racing_always_join(billing: Any, stack: Any) -> None:
    """invoice.paid and invoice_payment.paid delivered at once (twice each): exactly one
    payment record, and the refund that follows finds it."""
    version = fx.LATEST
    make_user(billing, "u_v")
    for n in range(3):
        inv_id, pi = f"in_race{n}", f"pi_race{n}"
        inv = fx.event(
            "invoice.paid",
            _invoice(
                version, [_line(version, fx.PRO, fx.PRO_CENTS)], fx.PRO_CENTS, invoice_id=inv_id
            ),
            api_version=version,
        )
        link = fx.event(
            "invoice_payment.paid",
            fx.invoice_payment(invoice_id=inv_id, payment_intent=pi, amount=fx.PRO_CENTS),
            api_version=version,
        )
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda e: deliver_ok(stack, e), [inv, link, inv, link]))
        assert sorted(statuses).count("duplicate") == 2, statuses
        assert docs(billing, "stripe_payments")[pi]["invoice_id"] == inv_id
        refund = fx.charge(payment_intent=pi, amount=fx.PRO_CENTS, amount_refunded=fx.PRO_CENTS)
        assert deliver_ok(stack, fx.event("charge.refunded", refund)) == "applied"
    assert list_parked_events(billing) == []
    assert assert_balance_is_sum(billing, "u_v") == 0
