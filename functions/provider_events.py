"""provider-events: one provider call reported by the app's model router.

Counts the call once (by ``event_id``) into the provider's health, circuit breaker, quotas
and alerts. Malformed events are logged and acknowledged; transient faults are retried.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.clients import firestore_client
from shared.clock import get_clock
from shared.entry import parse_model, pubsub_entry
from shared.events import PubSubMessage
from shared.logs import get_logger
from shared.providers.service import ProviderEvent, record_event

logger = get_logger(__name__)


@functions_framework.cloud_event
@pubsub_entry("provider-events")
def provider_events(message: PubSubMessage) -> Any:
    event = parse_model(ProviderEvent, message.json())
    if event.occurred_at is None and message.publish_time is not None:
        event = event.model_copy(update={"occurred_at": message.publish_time})
    result = record_event(firestore_client(), event, now=get_clock().now())
    # The fields of the event's one log line (written by the entry wrapper).
    return {
        "message": "provider event recorded",
        "event_id": event.event_id,
        "provider": event.provider,
        "duplicate": result.duplicate,
        "late": result.late,
        "status": result.status,
        "breaker": result.breaker,
    }
