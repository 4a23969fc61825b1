"""cron-expire-jobs: RESERVED BigEye jobs past ``expires_at`` become EXPIRED, fully refunded."""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.bigeye.jobs import expire_due_jobs
from shared.clients import firestore_client
from shared.clock import get_clock
from shared.entry import pubsub_entry
from shared.events import PubSubMessage
from shared.logs import get_logger

logger = get_logger(__name__)


@functions_framework.cloud_event
@pubsub_entry("cron-expire-jobs")
def cron_expire_jobs(message: PubSubMessage) -> Any:
    # Expiry is judged at run time: a late or redelivered message only finds fewer jobs.
    report = expire_due_jobs(firestore_client(), get_clock().now())
    # The fields of the event's one log line (written by the entry wrapper).
    return {
        "message": "expired jobs",
        "expired": report.expired,
        "refunded_credits": report.refunded_credits,
        "skipped": report.skipped,
    }
