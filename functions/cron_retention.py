"""cron-retention: delete expired usage logs, previews and archived daily token usage.

``{}`` applies the retention periods as of the message's publish time; ``{"date":
"YYYY-MM-DD"}`` as of the end of that day. Bounded batches; the next run resumes.
See docs/analytics.md.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.analytics.jobs import DayRequest, retention, scan_instant
from shared.clients import firestore_client
from shared.clock import get_clock
from shared.entry import parse_model, pubsub_entry
from shared.events import PubSubMessage


@functions_framework.cloud_event
@pubsub_entry("cron-retention")
def cron_retention(message: PubSubMessage) -> Any:
    request = parse_model(DayRequest, message.json() if message.data else {})
    clock = get_clock()
    as_of = scan_instant(request, message.publish_time or clock.now())
    return retention(firestore_client(), as_of, recorded_at=clock.now())
