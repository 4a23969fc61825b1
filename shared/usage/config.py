"""Where the usage configuration lives in Firestore, and how it is read.

- ``ai_engine_costs/{engine_id}`` (002): the live cost of each engine.
- ``ai_engine_cost_history/{engine_id}_{effective_from}``: every version an engine's cost
  document has had, recorded by the ``on-engine-cost-written`` trigger (and by the demo
  seed), so that an event is priced at the cost in force at its own time.
- ``plan_pricing/{plan_id}``: what each plan earns per engine (see ``PlanPricing``).
- ``token_limits/{userType}``: the daily token limit of ``trial`` and ``subscribed`` users.
- ``tiers/{tierId}`` (001): Kaiwa's monthly limits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from google.cloud import firestore

from shared.atomic import Unit
from shared.clock import ensure_utc
from shared.errors import InvalidInput
from shared.usage.pricing import EngineCost, PlanPricing

ENGINE_COSTS = "ai_engine_costs"
ENGINE_COST_HISTORY = "ai_engine_cost_history"
PLAN_PRICING = "plan_pricing"
TOKEN_LIMITS = "token_limits"
TIERS = "tiers"
SUBSCRIPTIONS = "subscriptions"
USAGE_LOGS = "usage_logs"
DAILY_TOKEN_USAGE = "daily_token_usage"
USER_USAGE = "userUsage"
USAGE_CONVERSATIONS = "usage_conversations"

USER_TYPES = ("trial", "subscribed")
# Used only when token_limits/{userType} is missing (documented in docs/usage.md).
DEFAULT_TOKEN_LIMITS = {"trial": 10_000, "subscribed": 200_000}
DEFAULT_PLAN = "free"


def history_id(engine_id: str, effective_from: datetime) -> str:
    """The history document id of one engine version."""
    return f"{engine_id}_{ensure_utc(effective_from).strftime('%Y%m%dT%H%M%S%fZ')}"


def history_doc(
    engine_id: str, data: Mapping[str, Any], effective_from: datetime, recorded_at: datetime
) -> dict[str, Any]:
    """What is recorded for one version of ``ai_engine_costs/{engine_id}``."""
    return {
        "engine_id": engine_id,
        "cost_per_unit": data.get("cost_per_unit"),
        "unit_type": data.get("unit_type"),
        "ai_type": data.get("ai_type"),
        "provider_name": data.get("provider_name"),
        "is_active": data.get("is_active") is True,
        "effective_from": ensure_utc(effective_from),
        "updated_by": data.get("updated_by"),
        "recorded_at": recorded_at,
    }


def record_engine_version(
    db: firestore.Client,
    engine_id: str,
    data: Mapping[str, Any],
    *,
    effective_from: datetime,
    recorded_at: datetime,
) -> str:
    """Record one version of an engine's cost once (a version already recorded is kept)."""
    from google.api_core import exceptions as gexc

    doc_id = history_id(engine_id, effective_from)
    ref = db.collection(ENGINE_COST_HISTORY).document(doc_id)
    with contextlib.suppress(gexc.AlreadyExists):
        ref.create(history_doc(engine_id, data, effective_from, recorded_at))
    return doc_id


def engine_history_before(unit: Unit, engine_id: str, at: datetime) -> list[EngineCost]:
    """The recorded version in force at ``at`` and the earliest one (at most two), queried
    through ``unit`` (re-run by its staleness check)."""
    coll = unit.db.collection(ENGINE_COST_HISTORY)
    base = coll.where(filter=firestore.FieldFilter("engine_id", "==", engine_id))
    found: list[EngineCost] = []
    latest = (
        base.where(filter=firestore.FieldFilter("effective_from", "<=", ensure_utc(at)))
        .order_by("effective_from", direction=firestore.Query.DESCENDING)
        .limit(1)
    )
    earliest = base.order_by("effective_from").limit(1)
    for query in (latest, earliest):
        for snap in unit.query(query):
            found.append(EngineCost.from_doc(engine_id, snap.to_dict() or {}))
    return found


def plan_of(
    message_plan: str | None,
    user: Mapping[str, Any] | None,
    *,
    subscription_tier: str | None = None,
    kaiwa: bool = False,
) -> str:
    """The plan an event is priced on.

    The message's plan first. A Kaiwa user (``kaiwa``: the deployment's profile) has no
    ``users.tier`` (001 keeps ``tierId`` on ``subscriptions``): their active subscription's
    tier, else free. Anyone else: ``users.tier``, else an active subscription's tier, else
    free.
    """
    if message_plan:
        return message_plan.lower()
    if kaiwa:
        return (subscription_tier or DEFAULT_PLAN).strip().lower() or DEFAULT_PLAN
    tier = (user or {}).get("tier")
    if isinstance(tier, str) and tier.strip():
        return tier.strip().lower()
    if subscription_tier and subscription_tier.strip():
        return subscription_tier.strip().lower()
    return DEFAULT_PLAN


def plan_pricing(plan_id: str, snap_data: Mapping[str, Any] | None) -> PlanPricing:
    """Parse ``plan_pricing/{plan_id}``; an unconfigured plan is an error, not a guess."""
    if snap_data is None:
        raise InvalidInput(f"plan {plan_id} has no plan_pricing document")
    return PlanPricing.from_doc(plan_id, snap_data)


def token_limit(user_type: str, data: Mapping[str, Any] | None) -> int:
    """The daily token limit of ``user_type`` (``token_limits/{userType}.tokenLimit``)."""
    value = (data or {}).get("tokenLimit")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return DEFAULT_TOKEN_LIMITS.get(user_type, DEFAULT_TOKEN_LIMITS["trial"])


def user_type_for(pricing_data: Mapping[str, Any] | None) -> str:
    """``trial`` or ``subscribed``, from the plan's ``user_type`` (unknown plan: trial)."""
    value = (pricing_data or {}).get("user_type")
    return value if value in USER_TYPES else "trial"


def refs(db: firestore.Client) -> _Refs:
    return _Refs(db)


class _Refs:
    """Document references of the usage collections."""

    def __init__(self, db: firestore.Client) -> None:
        self.db = db

    def engine(self, engine_id: str) -> firestore.DocumentReference:
        return self.db.collection(ENGINE_COSTS).document(engine_id)

    def plan(self, plan_id: str) -> firestore.DocumentReference:
        return self.db.collection(PLAN_PRICING).document(plan_id)

    def token_limit(self, user_type: str) -> firestore.DocumentReference:
        return self.db.collection(TOKEN_LIMITS).document(user_type)

    def tier(self, tier_id: str) -> firestore.DocumentReference:
        return self.db.collection(TIERS).document(tier_id)

    def log(self, log_id: str) -> firestore.DocumentReference:
        return self.db.collection(USAGE_LOGS).document(log_id)

    def daily(self, user_id: str, day: str) -> firestore.DocumentReference:
        return self.db.collection(DAILY_TOKEN_USAGE).document(f"{user_id}_{day}")

    def monthly(self, user_id: str, period: str) -> firestore.DocumentReference:
        return self.db.collection(USER_USAGE).document(f"{user_id}_{period}")

    def conversation(
        self, user_id: str, period: str, conversation_id: str
    ) -> firestore.DocumentReference:
        return self.db.collection(USAGE_CONVERSATIONS).document(
            f"{user_id}_{period}_{conversation_id}"
        )


def active_tier(subscriptions: Iterable[Mapping[str, Any]]) -> str | None:
    """The ``tierId`` of the first active entry of a user's ``subscriptions`` (camelCase:
    ``isActive``, or ``status`` active/trialing), else None (pure)."""
    for data in subscriptions:
        active = data.get("isActive") is True or data.get("status") in {"active", "trialing"}
        tier = data.get("tierId")
        if active and isinstance(tier, str) and tier:
            return tier
    return None


def kaiwa_tier_id(unit: Unit, user_id: str) -> str | None:
    """The Kaiwa tier of a user: an active ``subscriptions`` (camelCase) entry's ``tierId``,
    queried through ``unit`` (re-run by its staleness check)."""
    query = (
        unit.db.collection(SUBSCRIPTIONS)
        .where(filter=firestore.FieldFilter("userId", "==", user_id))
        .limit(20)
    )
    return active_tier(snap.to_dict() or {} for snap in unit.query(query))
