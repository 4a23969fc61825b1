"""usage-events: meter one AI generation (docs/contract.md, ``usage-events`` message shape).

Validates the message, then ``shared.usage.service.meter_usage`` writes the usage log with
cost, revenue and profit, the credit deduction, the daily token usage and Kaiwa's monthly
usage in one atomic unit. An invalid message is logged as an error and acknowledged; a
transient fault raises so Pub/Sub redelivers; a duplicate ``request_id`` changes nothing.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.clients import firestore_client
from shared.entry import parse_model, pubsub_entry
from shared.events import PubSubMessage
from shared.usage.model import UsageEvent, decode_usage_event
from shared.usage.service import meter_usage


@functions_framework.cloud_event
@pubsub_entry("usage-events")
def usage_events(message: PubSubMessage) -> Any:
    event = parse_model(UsageEvent, decode_usage_event(message.data))
    result = meter_usage(firestore_client(), event, publish_time=message.publish_time)
    # The fields of the event's one log line (written by ``pubsub_entry``).
    return {
        "message": "usage metered",
        "request_id": event.request_id,
        "user_id": event.user_id,
        "log_id": result.log_id,
        "replayed": result.replayed,
        "credits_shortfall": result.credits_shortfall,
    }
