"""A scheduled sweep of parked Stripe events.

An event is parked when it cannot be attributed (unknown customer, no reference) or
priced. It is replayed automatically when the event it waits for is processed, but that
replay can be lost (a transient fault, a lost acknowledgement). The sweep replays every
parked event that has become resolvable, oldest first and bounded per run, so none stays
parked because of a fault. One that is still unattributable simply stays parked.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from google.cloud import firestore

from shared.billing.parking import list_parked_events
from shared.billing.service import replay_parked_event
from shared.errors import CreditsError, is_transient
from shared.logs import get_logger, log

logger = get_logger(__name__)


def sweep_parked_events(db: firestore.Client, *, limit: int = 200) -> dict[str, int]:
    """Replay up to ``limit`` parked events; returns how many ended in each status."""
    statuses: Counter[str] = Counter()
    for parked in list_parked_events(db, limit=limit):
        event_id = str(parked["event_id"])
        try:
            outcome: Any = replay_parked_event(db, event_id)
        except CreditsError as exc:
            if is_transient(exc):
                raise
            statuses["rejected"] += 1
            log(
                logger,
                logging.ERROR,
                f"parked event cannot be replayed: {exc.detail}",
                event_id=event_id,
            )
            continue
        statuses[outcome.status] += 1
    log(logger, logging.INFO, "parked Stripe events swept", **dict(statuses))
    return dict(statuses)
