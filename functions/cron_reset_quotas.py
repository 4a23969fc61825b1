"""cron-reset-quotas: reset model quota windows by their reset_period; re-check providers.

The run's instant is the message's ``{"at": "..."}`` when given (reruns and backfills), else
its publish time: a rerun for the same instant finds nothing due and writes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import functions_framework
from pydantic import BaseModel, ConfigDict

from shared.clients import firestore_client
from shared.clock import ensure_utc, get_clock
from shared.entry import parse_model, pubsub_entry
from shared.events import PubSubMessage
from shared.logs import get_logger
from shared.providers.service import reset_quotas

logger = get_logger(__name__)


class ResetRequest(BaseModel):
    """``{}`` (now = publish time) or ``{"at": "2026-01-04T10:00:00Z"}``."""

    model_config = ConfigDict(extra="forbid")
    at: datetime | None = None


@functions_framework.cloud_event
@pubsub_entry("cron-reset-quotas")
def cron_reset_quotas(message: PubSubMessage) -> Any:
    request = parse_model(ResetRequest, message.json() if message.data else {})
    at = ensure_utc(request.at) if request.at else (message.publish_time or get_clock().now())
    report = reset_quotas(firestore_client(), at)
    # The fields of the event's one log line (written by the entry wrapper).
    return {
        "message": "quota windows reset",
        "at": at.isoformat(),
        "quotas_reset": report.quotas_reset,
        "alerts_resolved": report.alerts_resolved,
        "providers_ticked": report.providers_ticked,
    }
