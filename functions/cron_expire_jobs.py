"""cron-expire-jobs: what was reserved and never closed comes back in full.

Two passes, each judged at run time (a late or redelivered message only finds less):
RESERVED BigEye jobs past ``expires_at`` become EXPIRED (only where BigEye is served), and
ledger-api holds past ``expires_at`` of the served apps are expired. Where BigEye is served,
the same run folds the promotions' stats shards into ``promotions/{id}.stats``
(``shared.bigeye.redemptions.fold_stats``).
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.bigeye.jobs import ExpiryReport, expire_due_jobs
from shared.bigeye.redemptions import fold_stats
from shared.clients import firestore_client
from shared.clock import FixedClock, get_clock
from shared.entry import pubsub_entry
from shared.events import PubSubMessage
from shared.ledger import Ledger, ledger_profile
from shared.ledgerapi.service import expire_due_holds
from shared.logs import get_logger
from shared.settings import get_settings

logger = get_logger(__name__)


@functions_framework.cloud_event
@pubsub_entry("cron-expire-jobs")
def cron_expire_jobs(message: PubSubMessage) -> Any:
    settings = get_settings()
    db = firestore_client()
    now = get_clock().now()
    served = settings.served_profiles()
    jobs = expire_due_jobs(db, now) if "bigeye" in served else ExpiryReport(0, 0, 0)

    def make_ledger(profile: str) -> Ledger:
        return Ledger(
            db,
            ledger_profile(profile),
            FixedClock(now),
            max_amount=settings.ledger_max_amount,
            max_attempts=settings.ledger_max_attempts,
        )

    holds = expire_due_holds(db, now, profiles=served, make_ledger=make_ledger)
    folded = fold_stats(db, now) if "bigeye" in served else 0
    # The fields of the event's one log line (written by the entry wrapper).
    return {
        "message": "expired jobs and holds",
        "expired": jobs.expired,
        "refunded_credits": jobs.refunded_credits,
        "skipped": jobs.skipped,
        "holds_expired": holds.expired,
        "holds_returned_credits": holds.returned_credits,
        "holds_skipped": holds.skipped,
        "promotions_folded": folded,
    }
