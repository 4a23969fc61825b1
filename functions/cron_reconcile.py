"""cron-reconcile: check every ledger account (or the named ones) and report drift."""

from __future__ import annotations

from typing import Any

import functions_framework
from pydantic import BaseModel, ConfigDict, Field

from shared.clients import firestore_client
from shared.clock import get_clock
from shared.entry import parse_model, pubsub_entry
from shared.events import PubSubMessage
from shared.ledger import ledger_profile
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
    return reconcile(
        firestore_client(),
        ledger_profile(get_settings().schema_profile),
        run_id=run_id,
        now=get_clock().now(),
        user_ids=request.user_ids,
    )
