"""Demo configuration of usage metering (docs/contract.md section 8; docs/usage.md).

- ``ai_engine_costs``: the three examples of 002 and the other ids 002 lists, with the
  demo costs below (USD per unit), each also recorded as its first cost version;
- ``plan_pricing/{plan_id}``: what each plan earns per engine;
- ``token_limits/{userType}``: daily token limits (``trial`` 10,000 as in 003);
- Kaiwa ``tiers`` free / plus / premium with monthly limits and Stripe price ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.usage.config import (
    ENGINE_COSTS,
    PLAN_PRICING,
    TIERS,
    TOKEN_LIMITS,
    record_engine_version,
)

ADMIN = "admin_uid"

# engine_id: (provider_name, ai_type, cost_per_unit USD, unit_type, quality_tier, resolution)
ENGINES: dict[str, tuple[str, str, float, str, str | None, str | None]] = {
    "dalle_3_standard": ("OpenAI", "image", 0.04, "image", "standard", "1024x1024"),
    "dalle_3_hd": ("OpenAI", "image", 0.08, "image", "hd", "1024x1024"),
    "gemini_pro_vision": ("Google", "chat", 0.0025, "1k_tokens", None, None),
    "openai_video": ("OpenAI", "video", 0.10, "second", None, "1920x1080"),
    "seddream_video": ("SEDDREAM", "video", 0.12, "second", None, "1920x1080"),
    "openai_tts": ("OpenAI", "voice", 0.015, "minute", None, None),
    "openai_chat_gpt4": ("OpenAI", "chat", 0.03, "1k_tokens", None, None),
}

# plan_id: (user_type, default_markup, engine_prices_usd overrides per unit)
PLANS: dict[str, tuple[str, float, dict[str, float]]] = {
    # 002's plans.
    "free": ("trial", 0, {}),
    "pro": ("subscribed", 2.5, {"dalle_3_standard": 0.10, "openai_chat_gpt4": 0.06}),
    "ultra": ("subscribed", 2, {"dalle_3_hd": 0.16, "seddream_video": 0.20}),
    # KitesForU's tiers (users.tier, lower-cased).
    "enthu": ("subscribed", 2, {}),
    "pro_plus": ("subscribed", 2.5, {}),
    "ultimate": ("subscribed", 2, {}),
    "payg": ("subscribed", 3, {}),
    # BigEye's tiers and Kaiwa's paid tiers.
    "standard": ("subscribed", 2, {}),
    "premium": ("subscribed", 2.5, {}),
    "plus": ("subscribed", 2, {}),
}

TOKEN_LIMITS_BY_TYPE = {"trial": 10_000, "subscribed": 200_000}

# Kaiwa tiers (001). -1 = unlimited.
KAIWA_TIERS: dict[str, dict[str, Any]] = {
    "free": {
        "monthlyConversations": 10,
        "monthlySeconds": 1_800,
        "monthlyRealtimeSessions": 0,
        "maxSessionLengthSeconds": 180,
        "sessionBankingEnabled": False,
        "hasRealtimeAccess": False,
        "hasAdvancedVoices": False,
        "hasAnalytics": False,
        "monthlyPriceUsd": 0,
        "annualPriceUsd": 0,
        "stripeProductId": None,
        "stripePriceIdMonthly": None,
        "stripePriceIdAnnual": None,
    },
    "plus": {
        "monthlyConversations": 100,
        "monthlySeconds": 18_000,
        "monthlyRealtimeSessions": 20,
        "maxSessionLengthSeconds": 600,
        "sessionBankingEnabled": True,
        "hasRealtimeAccess": True,
        "hasAdvancedVoices": False,
        "hasAnalytics": True,
        "monthlyPriceUsd": 9.99,
        "annualPriceUsd": 99.99,
        "stripeProductId": "prod_kaiwa_plus",
        "stripePriceIdMonthly": "price_kaiwa_plus_monthly",
        "stripePriceIdAnnual": "price_kaiwa_plus_annual",
    },
    "premium": {
        "monthlyConversations": -1,
        "monthlySeconds": 72_000,
        "monthlyRealtimeSessions": 100,
        "maxSessionLengthSeconds": 1_800,
        "sessionBankingEnabled": True,
        "hasRealtimeAccess": True,
        "hasAdvancedVoices": True,
        "hasAnalytics": True,
        "monthlyPriceUsd": 19.99,
        "annualPriceUsd": 199.99,
        "stripeProductId": "prod_kaiwa_premium",
        "stripePriceIdMonthly": "price_kaiwa_premium_monthly",
        "stripePriceIdAnnual": "price_kaiwa_premium_annual",
    },
}


def engine_doc(engine_id: str, now: datetime) -> dict[str, Any]:
    """The ``ai_engine_costs`` document of a demo engine."""
    provider, ai_type, cost, unit_type, quality, resolution = ENGINES[engine_id]
    doc: dict[str, Any] = {
        "engine_id": engine_id,
        "provider_name": provider,
        "ai_type": ai_type,
        "cost_per_unit": cost,
        "unit_type": unit_type,
        "updated_at": now,
        "updated_by": ADMIN,
        "is_active": True,
        "notes": "demo cost (docs/usage.md)",
    }
    if quality:
        doc["quality_tier"] = quality
    if resolution:
        doc["resolution"] = resolution
    return doc


def plan_doc(plan_id: str, now: datetime) -> dict[str, Any]:
    """The ``plan_pricing`` document of a demo plan."""
    user_type, markup, prices = PLANS[plan_id]
    return {
        "plan_id": plan_id,
        "user_type": user_type,
        "default_markup": markup,
        "engine_prices_usd": dict(prices),
        "currency": "USD",
        "updated_at": now,
        "updated_by": ADMIN,
    }


def seed_engines(db: Any, now: datetime) -> None:
    """``ai_engine_costs`` and their first recorded cost versions."""
    for engine_id in ENGINES:
        doc = engine_doc(engine_id, now)
        # History first, so the cost trigger finds this version already recorded.
        record_engine_version(db, engine_id, doc, effective_from=now, recorded_at=now)
        db.collection(ENGINE_COSTS).document(engine_id).set(doc)


def seed(db: Any, now: datetime) -> None:
    """Write the usage demo configuration (fixed ids: idempotent)."""
    seed_engines(db, now)
    batch = db.batch()
    for plan_id in PLANS:
        batch.set(db.collection(PLAN_PRICING).document(plan_id), plan_doc(plan_id, now))
    for user_type, limit in TOKEN_LIMITS_BY_TYPE.items():
        batch.set(
            db.collection(TOKEN_LIMITS).document(user_type),
            {"userType": user_type, "tokenLimit": limit, "updated_at": now, "updated_by": ADMIN},
        )
    for tier_id, tier in KAIWA_TIERS.items():
        batch.set(db.collection(TIERS).document(tier_id), {"id": tier_id, **tier})
    batch.commit()
