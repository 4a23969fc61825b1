"""cron-hourly-loss-scan: ``loss_users`` for users whose last-30-day profit is negative.

``{}`` scans as of the message's publish time; ``{"date": "YYYY-MM-DD"}`` as of the end of
that day. See docs/analytics.md for episodes, ``days_in_loss``, alerts and recovery.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.analytics.jobs import DayRequest, loss_scan, scan_instant
from shared.clients import firestore_client
from shared.clock import get_clock
from shared.entry import parse_model, pubsub_entry
from shared.events import PubSubMessage


@functions_framework.cloud_event
@pubsub_entry("cron-hourly-loss-scan")
def cron_hourly_loss_scan(message: PubSubMessage) -> Any:
    request = parse_model(DayRequest, message.json() if message.data else {})
    at = scan_instant(request, message.publish_time or get_clock().now())
    return loss_scan(firestore_client(), at)
