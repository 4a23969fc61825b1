"""Subscriptions and monthly grants over HTTP: lifecycle, reordering, races, profiles."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devstack import stripe_send as fx
from shared.billing.rules import kaiwa_id
from shared.settings import override_settings
from tests.stripe.support import (
    assert_balance_is_sum,
    comparable,
    deliver_ok,
    docs,
    make_user,
    seed_config,
    seed_kaiwa_tiers,
    transactions,
    user,
)

DAY = 86400
P1 = 1_767_225_600  # 2026-01-01T00:00:00Z
P2 = P1 + 31 * DAY
P3 = P2 + 28 * DAY


def lifecycle(user_id: str = "u_sub", *, version: str = fx.API_VERSION_NEW) -> list[dict[str, Any]]:
    """created, invoice.paid (P1), updated (upgrade), updated (renewal P2, cancel at period
    end), invoice.paid (P2), deleted — in the order Stripe created them."""
    t0 = P1 + 600
    sub, cus = "sub_life1", "cus_life1"

    def subscription(price: str, start: int, end: int, **kw: Any) -> dict[str, Any]:
        return fx.subscription(
            subscription_id=sub,
            customer=cus,
            price_id=price,
            period_start=start,
            period_end=end,
            user_id=user_id,
            version=version,
            **kw,
        )

    def invoice(inv: str, price: str, start: int, end: int, reason: str) -> dict[str, Any]:
        return fx.invoice(
            invoice_id=inv,
            subscription_id=sub,
            customer=cus,
            price_id=price,
            period_start=start,
            period_end=end,
            payment_intent=f"pi_{inv}",
            user_id=user_id,
            billing_reason=reason,
            version=version,
        )

    return [
        fx.event(
            "customer.subscription.created",
            subscription("price_kites_pro_monthly", P1, P2),
            api_version=version,
            created=t0,
            event_id="evt_life_1",
        ),
        fx.event(
            "invoice.paid",
            invoice("in_life1", "price_kites_pro_monthly", P1, P2, "subscription_create"),
            api_version=version,
            created=t0 + 1,
            event_id="evt_life_2",
        ),
        fx.event(
            "customer.subscription.updated",
            subscription("price_kites_pro_plus_monthly", P1, P2),
            api_version=version,
            created=t0 + 2,
            event_id="evt_life_3",
            previous_attributes={"items": {}},
        ),
        fx.event(
            "customer.subscription.updated",
            subscription("price_kites_pro_plus_monthly", P2, P3, cancel_at_period_end=True),
            api_version=version,
            created=t0 + 3,
            event_id="evt_life_4",
            previous_attributes={"cancel_at_period_end": False},
        ),
        fx.event(
            "invoice.paid",
            invoice("in_life2", "price_kites_pro_plus_monthly", P2, P3, "subscription_cycle"),
            api_version=version,
            created=t0 + 4,
            event_id="evt_life_5",
        ),
        fx.event(
            "customer.subscription.deleted",
            subscription(
                "price_kites_pro_plus_monthly", P2, P3, status="canceled", cancel_at_period_end=True
            ),
            api_version=version,
            created=t0 + 5,
            event_id="evt_life_6",
        ),
    ]


def final_state(db: Any, user_id: str = "u_sub") -> str:
    txs = sorted((t["type"], t["amount"], t.get("subscription_id")) for t in transactions(db))
    return comparable(
        {
            "user": user(db, user_id),
            "subscriptions": docs(db, "subscriptions"),
            "processed_invoices": docs(db, "processed_invoices"),
            "state": docs(db, "stripe_subscription_state"),
            "transactions": txs,
        }
    )


@pytest.mark.parametrize("version", fx.VERSIONS)
def test_lifecycle_in_order(billing: Any, stack: Any, version: str) -> None:
    make_user(billing, "u_sub")
    events = lifecycle(version=version)
    statuses = [deliver_ok(stack, e) for e in events]
    assert statuses == ["applied"] * 6
    sub = docs(billing, "subscriptions")["sub_life1"]
    assert sub["status"] == "canceled" and sub["tier"] == "PRO_PLUS"
    assert sub["monthly_credits"] == 4000 and sub["cancel_at_period_end"] is True
    assert sub["credits_granted_this_period"] is True
    assert sub["current_period_start"].timestamp() == P2
    doc = user(billing, "u_sub")
    assert doc["tier"] == "FREE" and doc["subscription_status"] == "canceled"
    assert doc["subscription_period_end"].timestamp() == P3
    assert doc["credits_balance"] == 1500 + 4000
    grants = [t for t in transactions(billing) if t["type"] == "SUBSCRIPTION_GRANT"]
    assert sorted(g["amount"] for g in grants) == [1500, 4000]
    assert {g["subscription_id"] for g in grants} == {"sub_life1"}
    invoices = docs(billing, "processed_invoices")
    assert set(invoices) == {"in_life1", "in_life2"}
    assert invoices["in_life2"]["subscription_id"] == "sub_life1"
    assert invoices["in_life2"]["amount"] == 1900 and invoices["in_life2"]["currency"] == "usd"
    assert_balance_is_sum(billing, "u_sub")


def test_new_period_resets_the_granted_flag(billing: Any, stack: Any) -> None:
    make_user(billing, "u_sub")
    created, paid1, _, renewal, paid2, _ = lifecycle()

    def flag() -> bool:
        return bool(docs(billing, "subscriptions")["sub_life1"]["credits_granted_this_period"])

    deliver_ok(stack, created)
    assert flag() is False
    deliver_ok(stack, paid1)
    assert flag() is True and user(billing, "u_sub")["tier"] == "PRO"
    deliver_ok(stack, renewal)
    assert flag() is False and user(billing, "u_sub")["tier"] == "PRO_PLUS"
    deliver_ok(stack, paid2)
    assert flag() is True


def test_lifecycle_in_a_sample_of_permutations_converges(billing: Any, stack: Any) -> None:
    events = lifecycle()
    make_user(billing, "u_sub")
    for evt in events:
        deliver_ok(stack, evt)
    expected = final_state(billing)
    rng = random.Random(20260104)
    orders = [list(reversed(events))] + [rng.sample(events, len(events)) for _ in range(7)]
    for order in orders:
        stack.wipe()
        seed_config(billing)
        make_user(billing, "u_sub")
        for evt in order:
            deliver_ok(stack, evt)
        assert final_state(billing) == expected, [e["id"] for e in order]


def test_lifecycle_every_api_version_gives_the_same_state(billing: Any, stack: Any) -> None:
    make_user(billing, "u_sub")
    for evt in lifecycle():
        deliver_ok(stack, evt)
    expected = final_state(billing)
    for version in fx.VERSIONS:
        stack.wipe()
        seed_config(billing)
        make_user(billing, "u_sub")
        for evt in lifecycle(version=version):
            deliver_ok(stack, evt)
        assert final_state(billing) == expected, version


def test_lifecycle_each_event_three_times_concurrently(billing: Any, stack: Any) -> None:
    make_user(billing, "u_sub")
    for evt in lifecycle():
        deliver_ok(stack, evt)
    expected = final_state(billing)
    stack.wipe()
    seed_config(billing)
    make_user(billing, "u_sub")
    deliveries = [e for e in lifecycle() for _ in range(3)]
    random.Random(7).shuffle(deliveries)
    with ThreadPoolExecutor(9) as pool:
        statuses = list(pool.map(lambda e: deliver_ok(stack, e), deliveries))
    assert statuses.count("duplicate") >= 12
    assert final_state(billing) == expected
    assert_balance_is_sum(billing, "u_sub")


def test_one_grant_per_invoice_across_event_types(billing: Any, stack: Any) -> None:
    make_user(billing, "u_sub")
    created, paid1, *_ = lifecycle()
    deliver_ok(stack, created)
    succeeded = fx.event("invoice.payment_succeeded", paid1["data"]["object"])
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda e: deliver_ok(stack, e), [paid1, succeeded] * 3))
    assert statuses.count("applied") == 1
    assert statuses.count("duplicate_invoice") == 1
    assert user(billing, "u_sub")["credits_balance"] == 1500
    assert len(transactions(billing)) == 1


def test_payment_failed_marks_past_due_without_grant(billing: Any, stack: Any) -> None:
    make_user(billing, "u_sub")
    created, *_ = lifecycle()
    deliver_ok(stack, created)
    failed_invoice = fx.invoice(
        invoice_id="in_fail",
        subscription_id="sub_life1",
        customer="cus_life1",
        price_id="price_kites_pro_monthly",
        period_start=P1,
        period_end=P2,
        status="open",
        user_id="u_sub",
    )
    failed = fx.event("invoice.payment_failed", failed_invoice, created=created["created"] + 1)
    assert deliver_ok(stack, failed) == "applied"
    assert docs(billing, "subscriptions")["sub_life1"]["status"] == "past_due"
    doc = user(billing, "u_sub")
    assert doc["subscription_status"] == "past_due" and doc["tier"] == "PRO"
    assert doc["credits_balance"] == 0 and "in_fail" not in docs(billing, "processed_invoices")


def test_grant_refund_claws_back_the_grant(billing: Any, stack: Any) -> None:
    make_user(billing, "u_sub")
    created, paid1, *_ = lifecycle()
    deliver_ok(stack, created)
    deliver_ok(stack, paid1)
    refund = fx.event(
        "charge.refunded", fx.charge(payment_intent="pi_in_life1", amount=1900, amount_refunded=950)
    )
    # From basil on the invoice names no payment: the refund waits for the link.
    assert deliver_ok(stack, refund) == "parked"
    link = fx.event(
        "invoice_payment.paid",
        fx.invoice_payment(invoice_id="in_life1", payment_intent="pi_in_life1", amount=1900),
    )
    assert deliver_ok(stack, link) == "linked"
    assert docs(billing, "stripe_parked_events")[refund["id"]]["replay_status"] == "applied"
    assert user(billing, "u_sub")["credits_balance"] == 750
    assert_balance_is_sum(billing, "u_sub")


# -- exact seed names under each profile -------------------------------------------------------
KITES_USER = {
    "email",
    "credits_balance",
    "total_credits_used",
    "total_credits_purchased",
    "tier",
    "subscription_status",
    "subscription_period_end",
    "stripe_customer_id",
    "updated_at",
}
BIGEYE_USER = {
    "email",
    "password_hash",
    "full_name",
    "phone",
    "hardware_id",
    "tier",
    "credits",
    "status",
    "created_at",
    "last_login",
    "last_active",
    "total_topup_baht",
    "total_credits_used",
    "app_version",
    "metadata",
}
KITES_SUB = {
    "stripe_subscription_id",
    "stripe_customer_id",
    "tier",
    "status",
    "current_period_start",
    "current_period_end",
    "cancel_at_period_end",
    "monthly_credits",
    "credits_granted_this_period",
}
KAIWA_SUB = {
    "userId",
    "tierId",
    "stripeSubscriptionId",
    "stripeCustomerId",
    "stripePriceId",
    "status",
    "currentPeriodStart",
    "currentPeriodEnd",
    "isActive",
}
KAIWA_PAYMENT = {
    "userId",
    "subscriptionId",
    "stripePaymentIntentId",
    "stripeInvoiceId",
    "amount",
    "currency",
    "status",
}
INVOICE = {"subscription_id", "processed_at", "amount", "currency"}


def _flow(stack: Any, price: str) -> None:
    created = fx.event(
        "customer.subscription.created",
        fx.subscription(
            subscription_id="sub_p1",
            customer="cus_p1",
            price_id=price,
            period_start=P1,
            period_end=P2,
            user_id="u_p",
        ),
    )
    paid = fx.event(
        "invoice.paid",
        fx.invoice(
            invoice_id="in_p1",
            subscription_id="sub_p1",
            customer="cus_p1",
            price_id=price,
            period_start=P1,
            period_end=P2,
            payment_intent="pi_inv_p1",
            user_id="u_p",
        ),
    )
    buy = fx.event(
        "checkout.session.completed",
        fx.checkout_session(
            user_id="u_p",
            price_id="price_credits_500",
            payment_intent="pi_buy_p",
            customer="cus_p1",
        ),
    )
    link = fx.event(
        "invoice_payment.paid",
        fx.invoice_payment(invoice_id="in_p1", payment_intent="pi_inv_p1", amount=1900),
    )
    statuses = [deliver_ok(stack, e) for e in (created, paid, link, buy)]
    assert statuses == ["applied", "applied", "linked", "applied"]


def test_kitesforu_names(billing: Any, stack: Any) -> None:
    make_user(billing, "u_p")
    _flow(stack, "price_kites_enthu_monthly")
    assert set(user(billing, "u_p")) <= KITES_USER
    assert set(docs(billing, "subscriptions")["sub_p1"]) == KITES_SUB
    assert set(docs(billing, "processed_invoices")["in_p1"]) == INVOICE
    assert {t["type"] for t in transactions(billing)} == {"SUBSCRIPTION_GRANT", "PURCHASE"}
    assert user(billing, "u_p")["credits_balance"] == 500 + 500
    assert "payments" not in {c.id for c in billing.collections()}


def test_bigeye_names(billing: Any, stack: Any) -> None:
    with override_settings(schema_profile="bigeye"):
        make_user(billing, "u_p", profile="bigeye")
        _flow(stack, "price_kites_pro_monthly")
    doc = user(billing, "u_p")
    assert set(doc) <= BIGEYE_USER and doc["tier"] == "standard"
    assert doc["credits"] == 1500 + 500
    assert set(docs(billing, "subscriptions")["sub_p1"]) == KITES_SUB
    assert set(docs(billing, "processed_invoices")["in_p1"]) == INVOICE
    txs = transactions(billing, "transactions")
    assert {t["type"] for t in txs} == {"TOPUP"}
    assert all(
        set(t)
        == {
            "user_id",
            "type",
            "amount",
            "balance_after",
            "reference_id",
            "description",
            "created_at",
            "metadata",
        }
        for t in txs
    )
    assert_balance_is_sum(billing, "u_p", "credits", "transactions")


def test_kaiwa_names(billing: Any, stack: Any) -> None:
    seed_kaiwa_tiers(billing)
    with override_settings(schema_profile="kaiwa"):
        make_user(billing, "u_p", profile="kaiwa")
        before = set(user(billing, "u_p"))
        _flow(stack, "price_kaiwa_plus_monthly")
    doc = user(billing, "u_p")
    assert set(doc) - before <= {"stripeCustomerId", "updated_at"}
    assert doc["stripeCustomerId"] == "cus_p1"
    sub_id = kaiwa_id("subscription", "sub_p1")
    subs = docs(billing, "subscriptions")
    assert set(subs) == {sub_id} and set(subs[sub_id]) == KAIWA_SUB
    assert subs[sub_id]["tierId"] == "plus" and subs[sub_id]["isActive"] is True
    assert subs[sub_id]["userId"] == "u_p"
    payments = docs(billing, "payments")
    assert len(payments) == 2 and all(set(p) == KAIWA_PAYMENT for p in payments.values())
    by_source = {p["stripeInvoiceId"]: p for p in payments.values()}
    assert by_source["in_p1"]["subscriptionId"] == sub_id
    assert by_source["in_p1"]["stripePaymentIntentId"] == "pi_inv_p1"
    assert by_source[None]["stripePaymentIntentId"] == "pi_buy_p"
    # Kaiwa's tiers carry no credits: the invoice is recorded, only the pack is credited.
    assert set(docs(billing, "processed_invoices")["in_p1"]) == INVOICE
    assert doc["credits_balance"] == 500
    refund = fx.event(
        "charge.refunded", fx.charge(payment_intent="pi_buy_p", amount=500, amount_refunded=500)
    )
    with override_settings(schema_profile="kaiwa"):
        assert deliver_ok(stack, refund) == "applied"
    assert docs(billing, "payments")[kaiwa_id("payment", "pi_buy_p")]["status"] == "refunded"


def test_invoice_before_the_customer_link_waits_parked_then_applies(
    billing: Any, stack: Any
) -> None:
    """A subscription invoice without metadata, for a customer not linked yet, is parked;
    the subscription Checkout Session that links the customer replays it."""
    make_user(billing, "u_late")
    paid = fx.event(
        "invoice.paid",
        fx.invoice(
            invoice_id="in_late",
            subscription_id="sub_late",
            customer="cus_late",
            price_id="price_kites_pro_monthly",
            period_start=P1,
            period_end=P2,
            payment_intent="pi_late",
        ),
    )
    assert deliver_ok(stack, paid) == "parked"
    assert user(billing, "u_late")["credits_balance"] == 0
    signup = fx.event(
        "checkout.session.completed",
        fx.checkout_session(
            user_id="u_late", customer="cus_late", mode="subscription", amount_total=1900
        ),
    )
    assert deliver_ok(stack, signup) == "linked"
    assert user(billing, "u_late")["credits_balance"] == 1500
    assert user(billing, "u_late")["stripe_customer_id"] == "cus_late"
    assert docs(billing, "stripe_parked_events")[paid["id"]]["status"] == "replayed"
    assert deliver_ok(stack, paid) == "duplicate"
    assert_balance_is_sum(billing, "u_late")


def test_kaiwa_subscription_end_and_reordering(billing: Any, stack: Any) -> None:
    seed_kaiwa_tiers(billing)

    def sub_event(kind: str, price: str, created: int, **kw: Any) -> dict[str, Any]:
        return fx.event(
            kind,
            fx.subscription(
                subscription_id="sub_k1",
                customer="cus_k1",
                price_id=price,
                period_start=P1,
                period_end=P2,
                user_id="u_k",
                **kw,
            ),
            created=created,
        )

    created = sub_event("customer.subscription.created", "price_kaiwa_plus_monthly", P1)
    upgraded = sub_event("customer.subscription.updated", "price_kaiwa_premium_annual", P1 + 5)
    deleted = sub_event(
        "customer.subscription.deleted", "price_kaiwa_premium_annual", P1 + 9, status="canceled"
    )
    with override_settings(schema_profile="kaiwa"):
        make_user(billing, "u_k", profile="kaiwa")
        assert deliver_ok(stack, upgraded) == "applied"
        assert deliver_ok(stack, created) == "stale"  # older than what is stored
        doc = docs(billing, "subscriptions")[kaiwa_id("subscription", "sub_k1")]
        assert (doc["tierId"], doc["stripePriceId"]) == ("premium", "price_kaiwa_premium_annual")
        assert deliver_ok(stack, deleted) == "applied"
        assert deliver_ok(stack, upgraded) == "duplicate"
    doc = docs(billing, "subscriptions")[kaiwa_id("subscription", "sub_k1")]
    assert doc["status"] == "canceled" and doc["isActive"] is False
    assert set(doc) == KAIWA_SUB
