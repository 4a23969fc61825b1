"""Pure billing rules and event parsing: no emulator, no I/O."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from devstack import stripe_send as fx
from shared.billing.events import CheckoutSession, Invoice, PriceRef, Subscription
from shared.billing.rules import (
    BillingConfig,
    PackPurchase,
    PaymentMismatch,
    Plan,
    PriceRule,
    SubscriptionSnapshot,
    Unresolvable,
    clawback_delta,
    clawback_target,
    decide_user,
    granted_this_period,
    is_newer,
    kaiwa_id,
    kaiwa_payment_doc,
    kaiwa_status,
    kaiwa_subscription_doc,
    kitesforu_subscription_doc,
    kitesforu_user_fields,
    order_key,
    pack_purchase,
    proration_credits,
    subscription_plan,
    with_granted,
)

CONFIG = BillingConfig(
    prices={
        "price_pack": PriceRule(credits=500, unit_amount=500, currency="usd"),
        "price_big": PriceRule(credits=10000, unit_amount=8000, currency="usd"),
        "price_unpriced": PriceRule(credits=100),
        "price_pro": PriceRule(tier="PRO"),
        "price_pro_bonus": PriceRule(tier="PRO", credits=2000),
    },
    tier_credits={"PRO": 1500, "FREE": 0},
    kaiwa_tiers={"price_kaiwa_plus_monthly": "plus"},
)


@pytest.mark.parametrize("version", fx.VERSIONS)
def test_subscription_period_is_read_from_every_version(version: str) -> None:
    raw = fx.subscription(
        subscription_id="sub_1",
        customer="cus_1",
        price_id="price_pro",
        period_start=100,
        period_end=200,
        version=version,
    )
    sub = Subscription.model_validate(raw)
    assert sub.period == (100, 200)
    assert sub.price is not None and sub.price.id == "price_pro"
    assert sub.customer == "cus_1"


@pytest.mark.parametrize("version", fx.VERSIONS)
def test_invoice_subscription_price_and_payment_from_every_version(version: str) -> None:
    raw = fx.invoice(
        invoice_id="in_1",
        subscription_id="sub_1",
        customer="cus_1",
        price_id="price_pro",
        period_start=100,
        period_end=200,
        payment_intent="pi_1",
        user_id="u1",
        version=version,
    )
    inv = Invoice.from_raw(raw)
    assert inv.subscription_id == "sub_1"
    # From basil on an invoice names no payment intent (invoice_payment.paid links it).
    assert inv.payment_intent == (None if fx.is_basil_or_later(version) else "pi_1")
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


def test_pack_credits_come_from_the_price_and_a_quantity_the_paid_amount_confirms() -> None:
    assert pack_purchase({"price_id": "price_pack"}, 500, "usd", CONFIG) == PackPurchase(
        "price_pack", 1, 500
    )
    assert pack_purchase({"price_id": "price_pack", "quantity": "3"}, 1500, "USD", CONFIG) == (
        PackPurchase("price_pack", 3, 1500)
    )
    # No price named: the one pack whose price is the subtotal.
    assert pack_purchase({}, 500, "usd", CONFIG).price_id == "price_pack"


@pytest.mark.parametrize(
    ("metadata", "subtotal", "currency"),
    [
        ({"price_id": "price_big"}, 1, "jpy"),  # 1 yen for 10,000 credits
        ({"price_id": "price_big"}, 8000, "jpy"),  # right number, wrong currency
        ({"price_id": "price_pack", "quantity": "1000"}, 500, "usd"),  # 1000 packs for $5
        ({"price_id": "price_pack"}, 0, "usd"),  # nothing paid
        ({"price_id": "price_pack"}, None, "usd"),
    ],
)
def test_a_paid_amount_that_does_not_cover_the_credits_is_a_mismatch(
    metadata: dict[str, str], subtotal: int | None, currency: str
) -> None:
    with pytest.raises(PaymentMismatch, match="does not cover"):
        pack_purchase(metadata, subtotal, currency, CONFIG)


@pytest.mark.parametrize(
    "metadata",
    [
        {"credits": "999999"},  # metadata.credits alone never mints credits
        {"price_id": "price_unknown"},
        {"price_id": "price_unpriced"},  # credits configured but no amount to verify
        {"price_id": "price_pack", "quantity": "-5"},
        {},
    ],
)
def test_a_pack_that_cannot_be_verified_is_unresolvable(metadata: dict[str, str]) -> None:
    with pytest.raises(Unresolvable):
        pack_purchase(metadata, 7, "usd", CONFIG)


def test_decide_user_parks_conflicts_and_never_relinks() -> None:
    assert decide_user([("client_reference_id", "u1"), ("metadata.user_id", None)], None) == "u1"
    assert decide_user([], ("stripe_customers", "u2")) == "u2"
    assert decide_user([("client_reference_id", "u2")], ("stripe_customers", "u2")) == "u2"
    with pytest.raises(Unresolvable, match="attribution conflict"):
        decide_user([("client_reference_id", "u1"), ("metadata.user_id", "u2")], None)
    with pytest.raises(Unresolvable, match="linked to u2"):
        decide_user([("client_reference_id", "u1")], ("stripe_customers", "u2"))
    with pytest.raises(Unresolvable, match="names no user"):
        decide_user([("client_reference_id", None)], None)


def test_an_upgrade_grants_the_prorated_difference_never_the_old_plan() -> None:
    pro, ultimate = Plan("p", "PRO", 1500), Plan("u", "ULTIMATE", 12000)
    # two thirds of a period left: -1,267 of PRO's 1,900, +6,600 of ULTIMATE's 9,900
    assert proration_credits([(pro, -1267, 1900), (ultimate, 6600, 9900)]) == 8000 - 1000
    assert proration_credits([(ultimate, -6600, 9900), (pro, 1267, 1900)]) == 0  # downgrade
    with pytest.raises(Unresolvable):
        proration_credits([(pro, 100, 0)])


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


@pytest.mark.parametrize("version", fx.VERSIONS)
@pytest.mark.parametrize("kind", ["subscription_item", "invoice_item"])
def test_a_proration_is_a_proration_under_either_parent(version: str, kind: str) -> None:
    def line(price: str, amount: int, proration: bool, line_kind: str) -> dict[str, Any]:
        return fx.invoice_line(
            price_id=price,
            amount=amount,
            period_start=100,
            period_end=200,
            subscription_id="sub_1",
            kind=line_kind,
            proration=proration,
            version=version,
        )

    lines = [
        line("price_fee", 4900, False, "invoice_item"),  # a one-off item first
        line("price_pro", -1267, True, kind),
        line("price_ultimate", 6600, True, kind),
    ]
    inv = Invoice.from_raw(_invoice(lines, version))
    assert inv.plan_line() is None  # neither the fee nor a proration is a plan line
    assert [ln.price.id for ln in inv.proration_lines() if ln.price] == [
        "price_pro",
        "price_ultimate",
    ]
    plan = line("price_pro", 1900, False, "subscription_item")
    with_plan = Invoice.from_raw(_invoice([*lines, plan], version))
    found = with_plan.plan_line()
    assert found is not None and found.price is not None and found.price.id == "price_pro"
    assert found.unit_amount == 1900


def _invoice(lines: list[dict[str, Any]], version: str) -> dict[str, Any]:
    return fx.invoice(
        invoice_id="in_1", subscription_id="sub_1", customer="cus_1", lines=lines, version=version
    )
