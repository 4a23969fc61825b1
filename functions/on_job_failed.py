"""on-podcast-job-failed / on-course-failed: refund a failed job's credits exactly once.

When ``podcast_jobs/{job_id}.status`` (``credits_deducted``) or ``courses/{course_id}.status``
(``credits_charged``) becomes ``failed``, the job's DEDUCTION transactions (found by
``job_id``) are refunded, linked by ``original_transaction_id``, up to the amount the job
charged. The refund key depends only on the job and the original transaction, so a
redelivered event or a status that flaps failed -> processing -> failed refunds once.
These functions never write the document that triggered them (no loop).
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.entry import firestore_entry
from shared.events import DocumentChange
from shared.jobs import refund_failed_job
from shared.logs import get_logger

logger = get_logger(__name__)


def _became_failed(change: DocumentChange) -> bool:
    after = change.after or {}
    before = change.before or {}
    return after.get("status") == "failed" and before.get("status") != "failed"


def _handle(change: DocumentChange, collection: str, amount_field: str) -> Any:
    if not _became_failed(change):
        return None
    result = refund_failed_job(
        collection=collection,
        job_id=change.document_id,
        user_id=(change.after or {}).get("user_id"),
        charged=(change.after or {}).get(amount_field),
    )
    # The fields of the event's one log line (written by the entry wrapper).
    return {
        "message": "failed job refunded",
        "job_id": change.document_id,
        "collection": collection,
        "refunded": result.refunded,
        "replayed": result.replayed,
    }


@functions_framework.cloud_event
@firestore_entry("on-podcast-job-failed")
def on_podcast_job_failed(change: DocumentChange) -> Any:
    return _handle(change, "podcast_jobs", "credits_deducted")


@functions_framework.cloud_event
@firestore_entry("on-course-failed")
def on_course_failed(change: DocumentChange) -> Any:
    return _handle(change, "courses", "credits_charged")
