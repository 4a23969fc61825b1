"""Kaiwa ``payments`` (001): failed and refunded payments, per API version, over HTTP.

Signed with the stripe library (``tests.stripe.support.deliver``), under the kaiwa profile.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devstack import stripe_send as fx
from shared.billing import list_parked_events
from shared.billing.rules import kaiwa_id
from shared.schema_extensions import declared_fields
from shared.settings import override_settings
from tests.stripe.support import deliver_ok, docs, make_user, seed_kaiwa_tiers

VERSIONS = pytest.mark.parametrize("version", fx.VERSIONS)
P1 = 1_767_225_600  # 2026-01-01T00:00:00Z
P2 = P1 + 31 * 86400
PAYMENT = kaiwa_id("invoice", "in_k1")


@pytest.fixture
def kaiwa(billing: Any) -> Iterator[Any]:
    seed_kaiwa_tiers(billing)
    with override_settings(schema_profile="kaiwa"):
        make_user(billing, "u_k", profile="kaiwa")
        yield billing


def _invoice(version: str, status: str) -> dict[str, Any]:
    return fx.invoice(
        invoice_id="in_k1",
        subscription_id="sub_k1",
        customer="cus_k1",
        price_id="price_kaiwa_plus_monthly",
        period_start=P1,
        period_end=P2,
        amount_paid=999,
        payment_intent="pi_k1",
        user_id="u_k",
        status=status,
        version=version,
    )


def _subscribe(stack: Any, version: str) -> None:
    created = fx.event(
        "customer.subscription.created",
        fx.subscription(
            subscription_id="sub_k1",
            customer="cus_k1",
            price_id="price_kaiwa_plus_monthly",
            period_start=P1,
            period_end=P2,
            user_id="u_k",
            version=version,
        ),
        api_version=version,
        created=P1,
    )
    assert deliver_ok(stack, created) == "applied"


def _refund(version: str, refunded: int, created: int) -> dict[str, Any]:
    return fx.event(
        "charge.refunded",
        fx.charge(
            payment_intent="pi_k1",
            amount=999,
            amount_refunded=refunded,
            customer="cus_k1",
            charge_id="ch_k1",
            invoice_id="in_k1",
            version=version,
        ),
        api_version=version,
        created=created,
    )


def _payment(db: Any) -> dict[str, Any]:
    return docs(db, "payments")[PAYMENT]


@VERSIONS
def test_failed_then_paid_then_refunded(kaiwa: Any, stack: Any, version: str) -> None:
    _subscribe(stack, version)
    failed = fx.event(
        "invoice.payment_failed", _invoice(version, "open"), api_version=version, created=P1 + 1
    )
    assert deliver_ok(stack, failed) == "applied"
    doc = _payment(kaiwa)
    basil = fx.is_basil_or_later(version)
    assert doc == {
        "userId": "u_k",
        "subscriptionId": kaiwa_id("subscription", "sub_k1"),
        "stripePaymentIntentId": None if basil else "pi_k1",
        "stripeInvoiceId": "in_k1",
        "amount": 999,
        "currency": "usd",
        "status": "failed",
    }
    assert deliver_ok(stack, failed) == "duplicate"
    # The retry succeeds; the failure delivered again later (a new event id) changes nothing.
    paid = fx.event("invoice.paid", _invoice(version, "paid"), api_version=version, created=P1 + 2)
    assert deliver_ok(stack, paid) == "applied"
    late = fx.event(
        "invoice.payment_failed", _invoice(version, "open"), api_version=version, created=P1 + 1
    )
    assert deliver_ok(stack, late) in {"applied", "stale"}
    assert _payment(kaiwa)["status"] == "succeeded"
    if basil:
        link = fx.event(
            "invoice_payment.paid",
            fx.invoice_payment(
                invoice_id="in_k1", payment_intent="pi_k1", amount=999, version=version
            ),
            api_version=version,
            created=P1 + 3,
        )
        assert deliver_ok(stack, link) == "linked"
    partial = _refund(version, 300, P1 + 4)
    assert deliver_ok(stack, partial) == "applied"
    doc = _payment(kaiwa)
    assert (doc["status"], doc["amountRefunded"], doc["amount"]) == ("partially_refunded", 300, 999)
    full = _refund(version, 999, P1 + 5)
    assert deliver_ok(stack, full) == "applied"
    assert deliver_ok(stack, full) == "duplicate"
    # An older refund event delivered after the newer one never lowers the amount.
    assert deliver_ok(stack, _refund(version, 300, P1 + 4)) == "applied"
    doc = _payment(kaiwa)
    assert (doc["status"], doc["amountRefunded"], doc["amount"]) == ("refunded", 999, 999)
    assert set(doc) <= declared_fields("payments")
    assert list_parked_events(kaiwa) == []
    assert len(docs(kaiwa, "payments")) == 1


@pytest.mark.parametrize("version", [v for v in fx.VERSIONS if fx.is_basil_or_later(v)])
def test_refund_before_the_payment_link_waits_then_applies(
    kaiwa: Any, stack: Any, version: str
) -> None:
    _subscribe(stack, version)
    paid = fx.event("invoice.paid", _invoice(version, "paid"), api_version=version, created=P1 + 2)
    assert deliver_ok(stack, paid) == "applied"
    refund = _refund(version, 999, P1 + 4)
    assert deliver_ok(stack, refund) == "parked"
    assert _payment(kaiwa)["status"] == "succeeded"
    link = fx.event(
        "invoice_payment.paid",
        fx.invoice_payment(invoice_id="in_k1", payment_intent="pi_k1", amount=999, version=version),
        api_version=version,
        created=P1 + 3,
    )
    assert deliver_ok(stack, link) == "linked"
    doc = _payment(kaiwa)
    assert (doc["status"], doc["amountRefunded"]) == ("refunded", 999)
    assert docs(kaiwa, "stripe_parked_events")[refund["id"]]["status"] == "replayed"


def test_other_profiles_write_no_kaiwa_payment(billing: Any, stack: Any) -> None:
    make_user(billing, "u_k")
    failed = fx.event("invoice.payment_failed", _invoice(fx.LATEST, "open"), created=P1 + 1)
    deliver_ok(stack, failed)
    assert "payments" not in {c.id for c in billing.collections()}


@pytest.mark.parametrize("version", [fx.LATEST])
def test_refund_between_the_payment_link_and_the_invoice(
    kaiwa: Any, stack: Any, version: str
) -> None:
    """invoice_payment.paid first (its link names no Kaiwa payment yet), then the refund
    (parked), then invoice.paid: the refund is replayed onto the new payment."""
    _subscribe(stack, version)
    link = fx.event(
        "invoice_payment.paid",
        fx.invoice_payment(invoice_id="in_k1", payment_intent="pi_k1", amount=999, version=version),
        api_version=version,
        created=P1 + 3,
    )
    assert deliver_ok(stack, link) == "linked"
    refund = _refund(version, 999, P1 + 4)
    assert deliver_ok(stack, refund) == "parked"
    paid = fx.event("invoice.paid", _invoice(version, "paid"), api_version=version, created=P1 + 2)
    assert deliver_ok(stack, paid) == "applied"
    doc = _payment(kaiwa)
    assert (doc["status"], doc["amountRefunded"]) == ("refunded", 999)
    assert doc["stripePaymentIntentId"] == "pi_k1"
    assert docs(kaiwa, "stripe_parked_events")[refund["id"]]["status"] == "replayed"


def test_failure_and_payment_racing_end_paid(kaiwa: Any, stack: Any) -> None:
    """Redeliveries of a failure and of the payment, all at once: the payment wins."""
    _subscribe(stack, fx.LATEST)
    failed = fx.event("invoice.payment_failed", _invoice(fx.LATEST, "open"), created=P1 + 1)
    paid = fx.event("invoice.paid", _invoice(fx.LATEST, "paid"), created=P1 + 2)
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda evt: deliver_ok(stack, evt), [failed, paid] * 3))
    assert sorted(statuses).count("duplicate") == 4
    doc = _payment(kaiwa)
    assert (doc["status"], doc["amount"]) == ("succeeded", 999)
