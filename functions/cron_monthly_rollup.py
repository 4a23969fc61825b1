"""cron-monthly-rollup: monthly, yearly and all-time aggregates; Kaiwa usage rollover.

``{}`` rolls up the UTC month before the message's publish time; ``{"month": "YYYY-MM"}``
reruns or backfills that month. See docs/analytics.md.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.analytics.jobs import MonthRequest, month_ended, monthly_rollup
from shared.clients import firestore_client
from shared.clock import ensure_utc, get_clock
from shared.entry import parse_model, pubsub_entry
from shared.events import PubSubMessage


@functions_framework.cloud_event
@pubsub_entry("cron-monthly-rollup")
def cron_monthly_rollup(message: PubSubMessage) -> Any:
    request = parse_model(MonthRequest, message.json() if message.data else {})
    clock = get_clock()
    scheduled_at = ensure_utc(message.publish_time or clock.now())
    year, month = month_ended(request, scheduled_at)
    return monthly_rollup(firestore_client(), year, month, now=clock.now, as_of=scheduled_at.date())
