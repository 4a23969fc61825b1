"""cron-reconcile: check every ledger account (or the named ones) and report drift.

A deploy reconciles its own app's ledger; the local stack, which serves every app, also
reconciles every other ledger that has transactions (one report per ledger).
"""

from __future__ import annotations

from typing import Any

import functions_framework
from pydantic import BaseModel, ConfigDict, Field

from shared.clients import firestore_client
from shared.clock import get_clock
from shared.entry import parse_model, pubsub_entry
from shared.events import PubSubMessage
from shared.ledger import ledger_profile
from shared.ledger.ownership import ledgers_present
from shared.ledger.reconcile import reconcile
from shared.settings import get_settings


class ReconcileRequest(BaseModel):
    """``{}`` for every account, or ``{"user_ids": [...]}`` for some."""

    model_config = ConfigDict(extra="forbid")
    user_ids: list[str] | None = Field(default=None, min_length=1, max_length=1000)


@functions_framework.cloud_event
@pubsub_entry("cron-reconcile")
def cron_reconcile(message: PubSubMessage) -> Any:
    request = parse_model(ReconcileRequest, message.json() if message.data else {})
    when = message.publish_time or get_clock().now()
    run_id = f"reconcile_{when.strftime('%Y%m%dT%H%M%S')}_{message.message_id or 'manual'}"
    db = firestore_client()
    settings = get_settings()
    mine = ledger_profile(settings.schema_profile)
    profiles = [mine]
    if settings.serve_all_profiles:
        # The local stack serves every app: every other ledger that has transactions too.
        names = (mine.balance_field, mine.transactions_collection)
        profiles += [
            p for p in ledgers_present(db) if (p.balance_field, p.transactions_collection) != names
        ]
    reports = [
        reconcile(
            db,
            profile,
            run_id=run_id if profile is mine else f"{run_id}_{profile.name}",
            now=get_clock().now(),
            user_ids=request.user_ids,
        )
        for profile in profiles
    ]
    return reports[0] if len(reports) == 1 else reports
