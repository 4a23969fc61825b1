"""Refunds of failed KitesForU jobs (podcast_jobs, courses), linked to their deductions."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from google.cloud import firestore

from shared.atomic import Unit
from shared.errors import InvalidInput
from shared.ledger import HoldStatus, Kind, Ledger, Refs, ledger_for, posting_key
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
    """The job's DEDUCTION transactions (id, credits taken), oldest first.

    Under KitesForU's names a hold's reservation is a DEDUCTION too (RESERVE has no type of
    its own in 000); ``refund_failed_job`` tells them apart by the posting record.
    """
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
    """Give back what a failed job took, once, in one atomic unit.

    Every PENDING hold of the job (made through ledger-api with this ``job_id``) is
    released in full, whatever ``charged`` says; a hold already closed (settled on
    completion, released, expired) is left as it is. Each of the job's deductions gives
    back what is still refundable of it, up to ``charged`` in all: refunds already linked
    to it (an operator's, or one the app wrote itself) are counted, never repeated. A
    refund this job already made is replayed as it was, whatever changed since.
    """
    if not isinstance(user_id, str) or not user_id:
        raise InvalidInput(f"{collection}/{job_id} has no user_id")
    if charged is None:
        charged = 0  # a job paid only by a hold may not record an amount: its hold says it
    if isinstance(charged, bool) or not isinstance(charged, int) or charged < 0:
        raise InvalidInput(f"{collection}/{job_id} has no whole credit amount to refund")
    ledger = ledger_for("kitesforu")
    noun = collection.rstrip("s").replace("_", " ")

    def work(unit: Unit) -> tuple[JobRefund, bool]:
        originals = _deductions(ledger, job_id, user_id)
        left = charged
        refunded = 0
        ids: list[str] = []
        replayed = True
        holds = [
            str(rec.get("hold_id"))
            for rec in (
                snap.to_dict() or {}
                for snap in unit.get_all([ledger.posting_ref(t) for t, _ in originals])
                if snap.exists
            )
            if rec.get("hold_id")
        ]
        for hold_id in holds:
            hold = unit.get(ledger.hold_ref(hold_id))
            if (hold.to_dict() or {}).get("status") != HoldStatus.PENDING.value:
                continue
            released = ledger.release(unit, hold_id=hold_id, reason=f"failed {noun} {job_id}")
            replayed = False
            refunded += released.amount
            if released.transaction_id:
                ids.append(released.transaction_id)
        for tx_id, _taken in originals:
            if left <= 0:
                break
            key = posting_key("refund", collection, job_id, tx_id)
            result = ledger.posted(unit, key)
            if result is None:
                amount = min(left, ledger.refundable(unit, tx_id))
                if amount <= 0:
                    continue
                result = ledger.refund(
                    unit,
                    original_transaction_id=tx_id,
                    key=key,
                    reason="job_failed",
                    amount=amount,
                    description=f"Refund for failed {noun} {job_id}",
                    refs=Refs(job_id=job_id),
                )
                replayed = False
            left -= result.amount
            refunded += result.amount
            if result.transaction_id:
                ids.append(result.transaction_id)
        return JobRefund(job_id, refunded, tuple(ids), replayed and bool(ids)), bool(originals)

    done, found = ledger.run(work)
    if not found and charged > 0:
        log(
            logger,
            logging.ERROR,
            "failed job has no deduction to refund",
            job_id=job_id,
            collection=collection,
            user_id=user_id,
            charged=charged,
        )
    return done
