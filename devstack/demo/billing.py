"""Demo Stripe prices and KitesForU's tier configuration (docs/stripe.md).

Writes ``billing_config/stripe_prices`` (price id -> credits for one-time credit packs,
price id -> tier for monthly subscriptions) and ``billing_config/tiers`` (each
SubscriptionTier of 000 with its ``monthly_credits``). Kaiwa's ``tiers`` documents (with
``stripePriceIdMonthly`` / ``stripePriceIdAnnual``) are written by the usage section.
Amounts are Stripe minor units (US cents), never floats.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

# One-time credit packs: mode "payment" Checkout Sessions.
CREDIT_PACKS: dict[str, dict[str, Any]] = {
    "price_credits_500": {"credits": 500, "unit_amount": 500, "currency": "usd"},
    "price_credits_2000": {"credits": 2000, "unit_amount": 1800, "currency": "usd"},
    "price_credits_10000": {"credits": 10000, "unit_amount": 8000, "currency": "usd"},
}

# Monthly subscription prices, one per paid KitesForU tier.
MONTHLY_PRICES: dict[str, dict[str, Any]] = {
    "price_kites_enthu_monthly": {"tier": "ENTHU", "unit_amount": 900, "currency": "usd"},
    "price_kites_pro_monthly": {"tier": "PRO", "unit_amount": 1900, "currency": "usd"},
    "price_kites_pro_plus_monthly": {"tier": "PRO_PLUS", "unit_amount": 3900, "currency": "usd"},
    "price_kites_ultimate_monthly": {"tier": "ULTIMATE", "unit_amount": 9900, "currency": "usd"},
}

# KitesForU's SubscriptionTier values with the credits granted once per paid period.
# FREE has no subscription; PAYG ("pay as you go") buys credit packs and has no grant.
TIERS: dict[str, dict[str, Any]] = {
    "FREE": {"monthly_credits": 0, "monthly_price_cents": 0},
    "ENTHU": {"monthly_credits": 500, "monthly_price_cents": 900},
    "PRO": {"monthly_credits": 1500, "monthly_price_cents": 1900},
    "PRO_PLUS": {"monthly_credits": 4000, "monthly_price_cents": 3900},
    "ULTIMATE": {"monthly_credits": 12000, "monthly_price_cents": 9900},
    "PAYG": {"monthly_credits": 0, "monthly_price_cents": 0},
}


def price_map() -> dict[str, dict[str, Any]]:
    """Every demo price as stored in ``billing_config/stripe_prices.prices``."""
    prices: dict[str, dict[str, Any]] = {}
    for price_id, pack in CREDIT_PACKS.items():
        prices[price_id] = {**pack, "type": "one_time", "tier": None}
    for price_id, monthly in MONTHLY_PRICES.items():
        prices[price_id] = {**monthly, "type": "recurring", "interval": "month", "credits": None}
    return prices


DEMO_USER_ID = "demo_stripe_user"


def demo_user(profile: str, now: datetime) -> dict[str, Any]:
    """A user with an empty balance, spelled as the profile's seed spells users."""
    if profile == "bigeye":
        return {
            "email": "stripe-demo@example.com",
            "full_name": "Stripe Demo",
            "tier": "standard",
            "credits": 0,
            "total_credits_used": 0,
            "status": "active",
            "created_at": now,
        }
    if profile == "kaiwa":
        return {
            "email": "stripe-demo@example.com",
            "displayName": "Stripe Demo",
            "credits_balance": 0,
            "total_credits_used": 0,
            "total_credits_purchased": 0,
        }
    return {
        "email": "stripe-demo@example.com",
        "credits_balance": 0,
        "total_credits_used": 0,
        "total_credits_purchased": 0,
        "tier": "FREE",
        "updated_at": now,
    }


def seed(db: Any, now: datetime) -> None:
    """Write the demo price map, the tier configuration and the demo buyer (idempotent)."""
    from shared.settings import get_settings

    config = db.collection("billing_config")
    config.document("stripe_prices").set({"prices": price_map(), "updated_at": now})
    config.document("tiers").set({"tiers": TIERS, "updated_at": now})
    user = db.collection("users").document(DEMO_USER_ID)
    if not user.get().exists:
        user.set(demo_user(get_settings().schema_profile, now))
