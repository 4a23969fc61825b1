"""Refunds of failed KitesForU jobs (podcast_jobs, courses), linked to their deductions."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from google.cloud import firestore

from shared.atomic import Unit
from shared.errors import InvalidInput
from shared.ledger import Kind, Ledger, Refs, ledger_for, posting_key
from shared.logs import get_logger, log

logger = get_logger(__name__)


@dataclass(frozen=True)
class JobRefund:
    """What refunding one failed job did."""

    job_id: str
    refunded: int
    transaction_ids: tuple[str, ...]
    replayed: bool


def _deductions(ledger: Ledger, job_id: str, user_id: str) -> list[tuple[str, int]]:
    """The job's DEDUCTION transactions (id, credits taken), oldest first."""
    coll = ledger.db.collection(ledger.profile.transactions_collection)
    query = coll.where(filter=firestore.FieldFilter("job_id", "==", job_id))
    found = []
    deduction = ledger.profile.type_name(Kind.DEDUCTION)
    for snap in query.stream():
        data = snap.to_dict() or {}
        if data.get("type") == deduction and data.get("user_id") == user_id:
            found.append((data.get("created_at"), snap.id, -int(data.get("amount") or 0)))
    found.sort(key=lambda item: (item[0] is None, item[0], item[1]))
    return [(tx_id, taken) for _, tx_id, taken in found if taken > 0]


def refund_failed_job(
    *, collection: str, job_id: str, user_id: object, charged: object
) -> JobRefund:
    """Refund up to ``charged`` credits of a failed job, once, in one atomic unit."""
    if not isinstance(user_id, str) or not user_id:
        raise InvalidInput(f"{collection}/{job_id} has no user_id")
    if isinstance(charged, bool) or not isinstance(charged, int) or charged < 0:
        raise InvalidInput(f"{collection}/{job_id} has no whole credit amount to refund")
    ledger = ledger_for("kitesforu")
    originals = _deductions(ledger, job_id, user_id)
    if charged == 0:
        return JobRefund(job_id, 0, (), False)
    if not originals:
        log(
            logger,
            logging.ERROR,
            "failed job has no deduction to refund",
            job_id=job_id,
            collection=collection,
            user_id=user_id,
            charged=charged,
        )
        return JobRefund(job_id, 0, (), False)

    def work(unit: Unit) -> JobRefund:
        left = charged
        refunded = 0
        ids: list[str] = []
        replayed = True
        for tx_id, taken in originals:
            if left <= 0:
                break
            amount = min(left, taken)
            result = ledger.refund(
                unit,
                original_transaction_id=tx_id,
                key=posting_key("refund", collection, job_id, tx_id),
                reason="job_failed",
                amount=amount,
                description=f"Refund for failed {collection.rstrip('s').replace('_', ' ')} "
                f"{job_id}",
                refs=Refs(job_id=job_id),
            )
            left -= amount
            refunded += result.amount
            replayed = replayed and result.replayed
            if result.transaction_id:
                ids.append(result.transaction_id)
        return JobRefund(job_id, refunded, tuple(ids), replayed)

    return ledger.run(work)
