"""cron-daily-rollup: the daily profit aggregate and token history of the day that ended.

``{}`` rolls up the UTC day before the message's publish time; ``{"date": "YYYY-MM-DD"}``
reruns or backfills that day (and, when its month is already rolled up, the month, year
and all-time aggregates follow). See docs/analytics.md.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.analytics.jobs import DayRequest, daily_rollup, day_ended
from shared.clients import firestore_client
from shared.clock import get_clock
from shared.entry import parse_model, pubsub_entry
from shared.events import PubSubMessage


@functions_framework.cloud_event
@pubsub_entry("cron-daily-rollup")
def cron_daily_rollup(message: PubSubMessage) -> Any:
    request = parse_model(DayRequest, message.json() if message.data else {})
    clock = get_clock()
    day = day_ended(request, message.publish_time or clock.now())
    return daily_rollup(firestore_client(), day, now=clock.now)
