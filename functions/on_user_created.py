"""on-user-created: the welcome bonus of an ACTIVE WELCOME_BONUS promotion, exactly once.

Fires on the creation of ``users/{user_id}``. Only BigEye users (a document with
``credits`` or ``hardware_id``) are considered. The bonus is a BONUS transaction with the
key ``welcome:{user_id}``, so a redelivered event credits nothing more; the redemption is
recorded in ``promo_redemptions`` and the promotion's ``stats.*`` in the same commit. The
credit updates the user document, which is an update, never a creation: this function
cannot trigger itself.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.clients import firestore_client
from shared.clock import get_clock
from shared.entry import firestore_entry
from shared.events import DocumentChange
from shared.logs import get_logger

logger = get_logger(__name__)


@functions_framework.cloud_event
@firestore_entry("on-user-created")
def on_user_created(change: DocumentChange) -> Any:
    from shared.bigeye.rewards import is_bigeye_user, welcome_bonus

    if not change.created or not is_bigeye_user(change.after):
        return None
    # The event's time, not the processing time: a redelivery or a rerun decides the same.
    at = change.time or get_clock().now()
    reward = welcome_bonus(firestore_client(), user_id=change.document_id, now=at)
    if reward.credits:
        # The fields of the event's one log line (written by the entry wrapper).
        return {
            "message": "welcome bonus",
            "user_id": reward.user_id,
            "credits": reward.credits,
            "promo_id": reward.promo_id,
            "replayed": reward.replayed,
        }
