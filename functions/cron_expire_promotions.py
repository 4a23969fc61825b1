"""cron-expire-promotions: BigEye promotions past ``conditions.end_date`` become EXPIRED."""

from __future__ import annotations

import logging
from typing import Any

import functions_framework

from shared.admin.operations import expire_promotions
from shared.clients import firestore_client
from shared.clock import get_clock
from shared.entry import pubsub_entry
from shared.events import PubSubMessage
from shared.logs import get_logger, log

logger = get_logger(__name__)


@functions_framework.cloud_event
@pubsub_entry("cron-expire-promotions")
def cron_expire_promotions(message: PubSubMessage) -> Any:
    # Judged at run time: a late or redelivered message finds nothing left to expire.
    expired = expire_promotions(firestore_client(), get_clock().now())
    log(
        logger,
        logging.INFO,
        "expired promotions",
        function="cron-expire-promotions",
        expired=len(expired),
        promo_ids=expired,
    )
    return expired
