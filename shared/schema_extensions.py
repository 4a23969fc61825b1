"""Fields the suite adds to collections the products' seeds define: the one place they are
declared, each with its reason.

Every other document of a seed collection carries only the seed's own fields. The suite's
bookkeeping lives in its own collections (docs/schema.md, "What the suite adds"); a field
is added to a seed document only where it must commit with it, and then it is listed here.
Tests compare the written documents with ``declared_fields`` exactly.
"""

from __future__ import annotations

#: The seeds' own fields of the collections below (Profit & Cost 002, KitesForU 000,
#: Kaiwa 001: ``payments`` and ``userUsage``).
SEED_FIELDS: dict[str, frozenset[str]] = {
    "usage_logs": frozenset(
        {
            "user_id",
            "subscription_plan",
            "ai_type",
            "engine_id",
            "usage_units",
            "credits_used",
            "created_at",
            "real_cost_usd",
            "revenue_estimated_usd",
            "profit_usd",
            "profit_margin_percent",
            "pricing_source",
            "request_id",
            "country_code",
            "device_type",
            "generation_time_ms",
        }
    ),
    # Kaiwa (001).
    "payments": frozenset(
        {
            "userId",
            "subscriptionId",
            "stripePaymentIntentId",
            "stripeInvoiceId",
            "amount",
            "currency",
            "status",
        }
    ),
    "userUsage": frozenset(
        {
            "userId",
            "period",
            "conversationsUsed",
            "secondsUsed",
            "realtimeSessionsUsed",
            "bankedSeconds",
            "bankedSecondsUsed",
        }
    ),
    "model_provider_health": frozenset(
        {
            "provider",
            "status",
            "success_rate",
            "avg_latency_ms",
            "error_count_24h",
            "circuit_breaker_open",
            "circuit_opened_at",
            "half_open_state",
            "consecutive_successes",
            "consecutive_failures",
            "last_error",
        }
    ),
}

#: collection -> {added field: why it is on the seed's document}.
ADDED_FIELDS: dict[str, dict[str, str]] = {
    "usage_logs": {
        "unit_type": "the unit the engine's cost was counted in, as applied",
        "cost_per_unit_usd": "the engine cost version applied (a later change is not retroactive)",
        "credits_deducted": "what the ledger actually took (a short balance takes less)",
        "credits_shortfall": "credits used but not covered by the balance",
        "transaction_id": "the ledger DEDUCTION of this use, linking the log to the ledger",
        "tokens": "the token count the daily token usage is recomputed from",
        "conversation_seconds": "the Kaiwa seconds the monthly usage is recomputed from",
        "processed_at": "when the event was metered (created_at is the sender's time)",
        "message_sha256": "tells a replay from a reused request_id by reading the log",
        "expires_at": "created_at + 90 days: the field the deploy's TTL policy deletes on",
    },
    "payments": {
        "amountRefunded": "what a refund returned so far (minor units, Stripe's cumulative "
        "amount): amount stays what was paid, so partial refunds keep the net revenue",
    },
    "userUsage": {
        "updatedAt": "when the month's counters last changed (a metered conversation, or the "
        "rollover that opened the month with its bank): the seed gives the document no time",
    },
    "model_provider_health": {
        "last_event_at": "the newest event folded in, so a late event is recognised as late",
    },
}


def declared_fields(collection: str) -> frozenset[str]:
    """Every field a document of ``collection`` may carry: the seed's and the added ones."""
    return SEED_FIELDS[collection] | frozenset(ADDED_FIELDS[collection])
