"""Pure billing rules and event parsing: no emulator, no I/O."""

from __future__ import annotations

import itertools

import pytest

from devstack import stripe_send as fx
from shared.billing.events import CheckoutSession, Invoice, LineItem, PriceRef, Subscription
from shared.billing.rules import (
    BillingConfig,
    PriceRule,
    SubscriptionSnapshot,
    Unresolvable,
    clawback_delta,
    clawback_target,
    granted_this_period,
    is_newer,
    kaiwa_id,
    kaiwa_payment_doc,
    kaiwa_status,
    kaiwa_subscription_doc,
    kitesforu_subscription_doc,
    kitesforu_user_fields,
    order_key,
    pack_credits,
    subscription_plan,
    with_granted,
)

CONFIG = BillingConfig(
    prices={
        "price_pack": PriceRule(credits=500),
        "price_pro": PriceRule(tier="PRO"),
        "price_pro_bonus": PriceRule(tier="PRO", credits=2000),
    },
    tier_credits={"PRO": 1500, "FREE": 0},
    kaiwa_tiers={"price_kaiwa_plus_monthly": "plus"},
)


@pytest.mark.parametrize("new_shape", [True, False])
def test_subscription_period_is_read_from_both_api_shapes(new_shape: bool) -> None:
    raw = fx.subscription(
        subscription_id="sub_1",
        customer="cus_1",
        price_id="price_pro",
        period_start=100,
        period_end=200,
        new_shape=new_shape,
    )
    sub = Subscription.model_validate(raw)
    assert sub.period == (100, 200)
    assert sub.price is not None and sub.price.id == "price_pro"
    assert sub.customer == "cus_1"


@pytest.mark.parametrize("new_shape", [True, False])
def test_invoice_subscription_price_and_payment_from_both_api_shapes(new_shape: bool) -> None:
    raw = fx.invoice(
        invoice_id="in_1",
        subscription_id="sub_1",
        customer="cus_1",
        price_id="price_pro",
        period_start=100,
        period_end=200,
        payment_intent="pi_1",
        user_id="u1",
        new_shape=new_shape,
    )
    inv = Invoice.from_raw(raw)
    assert inv.subscription_id == "sub_1"
    assert inv.payment_intent == "pi_1"
    assert inv.subscription_metadata == {"user_id": "u1"}
    line = inv.plan_line()
    assert line is not None and line.price is not None
    assert (line.price.id, line.period_start) == ("price_pro", 100)


def test_stripe_example_objects_parse_as_published() -> None:
    inv = Invoice.from_raw(fx.resource("invoice"))
    assert inv.subscription_id == "subscription"  # parent.subscription_details.subscription
    assert inv.plan_line() is None  # its only line is a proration without a price
    session = CheckoutSession.model_validate(fx.resource("checkout.session"))
    assert session.payment_intent == "pi_1PgafyB7WZ01zgkWSjxsAJo3"
    assert session.payment_status == "unpaid"


def test_expanded_references_reduce_to_ids() -> None:
    raw = fx.checkout_session(user_id="u1", price_id="price_pack")
    raw["customer"] = {"id": "cus_9", "object": "customer"}
    raw["payment_intent"] = {"id": "pi_9", "object": "payment_intent"}
    session = CheckoutSession.model_validate(raw)
    assert (session.customer, session.payment_intent) == ("cus_9", "pi_9")


def test_pack_credits_precedence() -> None:
    expanded = LineItem(price=PriceRef(id="price_pack", metadata={"credits": "750"}), quantity=2)
    assert pack_credits([expanded], {}, CONFIG) == (1500, ["price_pack"])
    by_product = LineItem(price=PriceRef(id="price_x", product_metadata={"credits": "40"}))
    assert pack_credits([by_product], {}, CONFIG) == (40, ["price_x"])
    assert pack_credits([], {"price_id": "price_pack", "quantity": "3"}, CONFIG) == (
        1500,
        ["price_pack"],
    )
    assert pack_credits([], {"credits": "25"}, CONFIG) == (25, [])
    with pytest.raises(Unresolvable):
        pack_credits([], {"price_id": "price_unknown"}, CONFIG)
    with pytest.raises(Unresolvable):
        pack_credits([], {"credits": "-5"}, CONFIG)
    with pytest.raises(Unresolvable):
        pack_credits([], {}, CONFIG)


def test_subscription_plan_per_profile() -> None:
    assert subscription_plan(PriceRef(id="price_pro"), CONFIG, "kitesforu").monthly_credits == 1500
    assert (
        subscription_plan(PriceRef(id="price_pro_bonus"), CONFIG, "bigeye").monthly_credits == 2000
    )
    meta = PriceRef(id="price_new", metadata={"tier": "PRO", "credits": "99"})
    plan = subscription_plan(meta, CONFIG, "kitesforu")
    assert (plan.tier, plan.monthly_credits) == ("PRO", 99)
    kaiwa = subscription_plan(PriceRef(id="price_kaiwa_plus_monthly"), CONFIG, "kaiwa")
    assert (kaiwa.tier, kaiwa.monthly_credits) == ("plus", 0)
    for price, profile in [
        (PriceRef(id="price_x"), "kitesforu"),
        (PriceRef(id="price_pro"), "kaiwa"),
        (PriceRef(id="p", metadata={"tier": "GOLD"}), "kitesforu"),
    ]:
        with pytest.raises(Unresolvable):
            subscription_plan(price, CONFIG, profile)


def test_order_key_is_a_total_order_that_any_delivery_order_agrees_on() -> None:
    events = [
        (10, "customer.subscription.updated", "evt_b"),
        (10, "customer.subscription.created", "evt_a"),
        (10, "customer.subscription.updated", "evt_c"),
        (9, "customer.subscription.updated", "evt_z"),
    ]
    winners = set()
    for order in itertools.permutations(events):
        stored = None
        for created, kind, eid in order:
            key = order_key(created, kind, eid)
            if is_newer(key, stored):
                stored = key
        winners.add(stored)
    assert winners == {(10, 1, "evt_c")}


def test_clawback_is_proportional_and_never_more_than_bought() -> None:
    assert clawback_target(500, 1000, 1000) == 500
    assert clawback_target(500, 1000, 1500) == 500
    assert clawback_target(500, 1000, 333) == 166
    assert clawback_target(500, 0, 100) == 0
    # Cumulative refunds arriving in any order take back the same total.
    for order in itertools.permutations([250, 500, 1000]):
        taken = 0
        for refunded in order:
            taken += clawback_delta(clawback_target(500, 1000, refunded), taken, 500 - taken)
        assert taken == 500
    assert clawback_delta(300, 100, 50) == 50


def test_granted_periods() -> None:
    granted = with_granted([], 100)
    assert granted_this_period(100, granted) and not granted_this_period(200, granted)
    assert with_granted(list(range(50)), 99, keep=3) == [48, 49, 99]


def test_documents_carry_exactly_the_seed_names() -> None:
    snap = SubscriptionSnapshot(
        "sub_1", "cus_1", "past_due", "price_pro", "PRO", 1500, 100, 200, True
    )
    assert set(kitesforu_subscription_doc(snap, True)) == {
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
    assert set(kaiwa_subscription_doc(snap, "u1")) == {
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
    assert set(
        kaiwa_payment_doc(
            user_id="u",
            subscription_id=None,
            payment_intent="pi",
            invoice_id=None,
            amount=1,
            currency="usd",
            status="succeeded",
        )
    ) == {
        "userId",
        "subscriptionId",
        "stripePaymentIntentId",
        "stripeInvoiceId",
        "amount",
        "currency",
        "status",
    }
    assert kitesforu_user_fields(snap)["tier"] == "PRO"  # past_due keeps the tier
    canceled = SubscriptionSnapshot(**{**snap.as_dict(), "status": "canceled"})
    assert kitesforu_user_fields(canceled)["tier"] == "FREE"


def test_kaiwa_status_and_ids() -> None:
    assert [kaiwa_status(s) for s in ("active", "unpaid", "incomplete_expired", "x")] == [
        "active",
        "past_due",
        "canceled",
        "canceled",
    ]
    assert kaiwa_id("subscription", "sub_1") == kaiwa_id("subscription", "sub_1")
    assert kaiwa_id("subscription", "sub_1") != kaiwa_id("invoice", "sub_1")


def test_config_from_documents_ignores_bad_entries() -> None:
    config = BillingConfig.from_documents(
        {"prices": {"a": {"credits": 10}, "b": {"credits": "x", "tier": "PRO"}, "c": 5}},
        {"tiers": {"PRO": {"monthly_credits": 100}, "BAD": {"monthly_credits": -1}}},
        [("plus", {"stripePriceIdMonthly": "pm", "stripePriceIdAnnual": "pa"})],
    )
    assert config.prices["a"].credits == 10 and config.prices["b"] == PriceRule(tier="PRO")
    assert "c" not in config.prices and config.tier_credits == {"PRO": 100}
    assert config.kaiwa_tiers == {"pm": "plus", "pa": "plus"}
