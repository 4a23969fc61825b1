"""Helpers for the Stripe tests: users per profile, signed delivery, document views."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from devstack import stripe_send as fx
from devstack.demo import billing as demo_billing

SECRET = "whsec_demo_local_only"  # the documented demo default (shared/settings.py)


def url(stack: Any) -> str:
    return f"{stack.base_url}/stripe-webhook"


def seed_config(db: Any) -> None:
    """The demo price map and tier configuration (billing_config/*)."""
    demo_billing.seed(db, datetime.now(UTC))


def make_user(db: Any, user_id: str, profile: str = "kitesforu", balance: int = 0) -> None:
    doc = demo_billing.demo_user(profile, datetime.now(UTC))
    doc["email"] = f"{user_id}@example.com"
    doc["credits" if profile == "bigeye" else "credits_balance"] = balance
    db.collection("users").document(user_id).set(doc)


def seed_kaiwa_tiers(db: Any) -> None:
    """Kaiwa's tiers (001) as the demo writes them: price ids -> tierId."""
    for tier_id in ("plus", "premium"):
        db.collection("tiers").document(tier_id).set(
            {
                "monthlyConversations": 100,
                "monthlySeconds": 36000,
                "stripePriceIdMonthly": f"price_kaiwa_{tier_id}_monthly",
                "stripePriceIdAnnual": f"price_kaiwa_{tier_id}_annual",
            }
        )
    db.collection("tiers").document("free").set(
        {"monthlyConversations": 5, "monthlySeconds": 600, "stripePriceIdMonthly": None}
    )


def deliver(stack: Any, evt: dict[str, Any] | str, **kw: Any) -> httpx.Response:
    kw.setdefault("secret", SECRET)
    return fx.send(url(stack), evt, **kw)


def deliver_ok(stack: Any, evt: dict[str, Any]) -> str:
    response = deliver(stack, evt)
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


def user(db: Any, user_id: str) -> dict[str, Any]:
    return db.collection("users").document(user_id).get().to_dict() or {}


def docs(db: Any, collection: str) -> dict[str, dict[str, Any]]:
    return {s.id: s.to_dict() or {} for s in db.collection(collection).stream()}


def transactions(db: Any, collection: str = "credit_transactions") -> list[dict[str, Any]]:
    return list(docs(db, collection).values())


def assert_balance_is_sum(
    db: Any,
    user_id: str,
    balance_field: str = "credits_balance",
    collection: str = "credit_transactions",
) -> int:
    """The invariant: balance == sum of the user's transaction amounts."""
    balance = int(user(db, user_id).get(balance_field) or 0)
    total = sum(int(t["amount"]) for t in transactions(db, collection) if t["user_id"] == user_id)
    assert balance == total, (balance, total)
    return balance


def comparable(data: Any) -> str:
    """A JSON view without wall-clock fields, for comparing final states."""
    drop = {"updated_at", "processed_at", "linked_at", "created_at", "event_id"}

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in drop}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(data), sort_keys=True, default=str)
