"""Demo model-router configuration: quotas for the seed's four providers, healthy providers,
closed breakers and the ``pipeline_config`` flags (documented in docs/providers.md).

Limits are illustrative: requests per hour, tokens and cost (micro-USD) per day.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc

from shared.providers.quotas import Quota, QuotaType, ResetPeriod, window_end
from shared.providers.routing import DEFAULT_FLAGS, PIPELINE_CONFIG
from shared.providers.service import BREAKERS, HEALTH, QUOTAS
from shared.settings import get_settings

# provider -> model -> (requests per hour, tokens per day, cost per day in USD)
DEMO_MODELS: dict[str, dict[str, tuple[int, int, int]]] = {
    "openai": {"gpt-4o": (3_000, 2_000_000, 200), "gpt-4o-mini": (10_000, 10_000_000, 50)},
    "anthropic": {"claude-sonnet-4": (2_000, 2_000_000, 200)},
    "google": {"gemini-2.0-flash": (10_000, 10_000_000, 50)},
    "elevenlabs": {"eleven_multilingual_v2": (1_000, 500_000, 100)},
}


def demo_quotas(now: datetime) -> list[Quota]:
    """The demo quota documents, windows aligned on ``now``."""
    out = []
    for provider, models in DEMO_MODELS.items():
        for model_id, (requests, tokens, cost_usd) in models.items():
            for quota_type, limit, period in (
                (QuotaType.REQUESTS, requests, ResetPeriod.HOURLY),
                (QuotaType.TOKENS, tokens, ResetPeriod.DAILY),
                (QuotaType.COST, cost_usd * 1_000_000, ResetPeriod.DAILY),
            ):
                out.append(
                    Quota(provider, model_id, quota_type, limit, 0, window_end(now, period), period)
                )
    return out


def seed(db: Any, now: datetime) -> None:
    """Create the demo documents that are missing (a restart keeps live counters and flags)."""
    docs: list[tuple[Any, dict[str, Any]]] = [
        (db.collection(QUOTAS).document(q.quota_id), q.document()) for q in demo_quotas(now)
    ]
    for provider in DEMO_MODELS:
        docs.append(
            (
                db.collection(HEALTH).document(provider),
                {
                    "provider": provider,
                    "status": "healthy",
                    "success_rate": 1.0,
                    "avg_latency_ms": 0.0,
                    "error_count_24h": 0,
                    "circuit_breaker_open": False,
                    "circuit_opened_at": None,
                    "half_open_state": False,
                    "consecutive_successes": 0,
                    "consecutive_failures": 0,
                    "last_error": None,
                },
            )
        )
        docs.append(
            (
                db.collection(BREAKERS).document(provider),
                {
                    "provider": provider,
                    "state": "closed",
                    "opened_at": None,
                    "half_open_attempts": 0,
                },
            )
        )
    docs.append(
        (
            db.collection(PIPELINE_CONFIG).document(get_settings().pipeline_config_document),
            dict(DEFAULT_FLAGS),
        )
    )
    existing = {s.reference.path for s in db.get_all([ref for ref, _ in docs]) if s.exists}
    batch = db.batch()
    for ref, data in docs:
        if ref.path not in existing:
            batch.create(ref, data)
    # Another seeder may get there first: theirs is as good as ours.
    with contextlib.suppress(gexc.AlreadyExists):
        batch.commit()
