"""cron-reverify-slips: PENDING BigEye slips (left by a Slip2Go outage) verified again."""

from __future__ import annotations

import logging
from typing import Any

import functions_framework

from shared.bigeye.topup import reverify_pending
from shared.clients import firestore_client
from shared.clock import get_clock
from shared.entry import pubsub_entry
from shared.events import PubSubMessage
from shared.logs import get_logger, log

logger = get_logger(__name__)


@functions_framework.cloud_event
@pubsub_entry("cron-reverify-slips")
def cron_reverify_slips(message: PubSubMessage) -> Any:
    # Judged at run time: a late or redelivered message finds fewer PENDING slips, and the
    # ledger key credits a slip once however many runs see it.
    report = reverify_pending(firestore_client(), get_clock().now())
    log(
        logger,
        logging.INFO,
        "re-verified pending slips",
        function="cron-reverify-slips",
        **report.as_dict(),
    )
    return report
