"""Refunds of failed KitesForU jobs (podcast_jobs, courses), linked to their deductions."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from google.cloud import firestore

from shared.atomic import Unit
from shared.errors import InvalidInput
from shared.ledger import HoldStatus, Kind, Ledger, PostingResult, Refs, ledger_for, posting_key
from shared.ledger.core import OriginalView
from shared.ledger.store import transaction_id_for
from shared.logs import get_logger, log

logger = get_logger(__name__)


@dataclass(frozen=True)
class JobRefund:
    """What refunding one failed job did."""

    job_id: str
    refunded: int
    transaction_ids: tuple[str, ...]
    replayed: bool


def _deductions(ledger: Ledger, unit: Unit, job_id: str, user_id: str) -> list[tuple[str, int]]:
    """The job's DEDUCTION transactions (id, credits taken), oldest first.

    Under KitesForU's names a hold's reservation is a DEDUCTION too (RESERVE has no type of
    its own in 000); ``refund_failed_job`` tells them apart by the posting record.

    Queried through ``unit`` after the unit read the user document: a deduction committed
    later (a phantom) changed that balance, and the refund, which writes it under its read
    precondition, then fails its commit and re-runs from a query that finds it.
    """
    unit.get(ledger.user_ref(user_id))  # the phantom guard: read before the query
    coll = ledger.db.collection(ledger.profile.transactions_collection)
    query = coll.where(filter=firestore.FieldFilter("job_id", "==", job_id))
    found = []
    deduction = ledger.profile.type_name(Kind.DEDUCTION)
    for snap in unit.query(query):
        data = snap.to_dict() or {}
        if data.get("type") == deduction and data.get("user_id") == user_id:
            found.append((data.get("created_at"), snap.id, -int(data.get("amount") or 0)))
    found.sort(key=lambda item: (item[0] is None, item[0], item[1]))
    return [(tx_id, taken) for _, tx_id, taken in found if taken > 0]


@dataclass(frozen=True)
class ChargeView:
    """One of the job's deductions as the unit read it."""

    transaction_id: str
    key: str  #: the key of this job's refund of it
    posted: PostingResult | None  #: that refund, when it was already made
    refundable: int  #: what is still refundable of it (0 when ``posted``)
    #: the deduction as read (None when ``posted``): its refund does not read it again
    original: OriginalView | None = None


@dataclass(frozen=True)
class RefundPlan:
    """What refunding the job does: holds released in full, then each deduction in turn."""

    releases: tuple[str, ...]
    #: (charge, amount to refund now; 0 with ``charge.posted``: replay it)
    refunds: tuple[tuple[ChargeView, int], ...]


def read_charges(
    ledger: Ledger, unit: Unit, *, collection: str, job_id: str, user_id: str
) -> tuple[list[str], list[ChargeView]]:
    """Read: the job's PENDING holds and its deductions with what each still allows.

    One batched read of every deduction's posting record, transaction and refund made
    under this job's key; one of the holds (with their closes' records); then each
    deduction not yet refunded by this job queries its linked refunds, once.
    """
    originals = _deductions(ledger, unit, job_id, user_id)
    keys = [posting_key("refund", collection, job_id, t) for t, _ in originals]
    refs = [ref for t, _ in originals for ref in ledger.original_refs(t)]
    snaps = unit.get_all(refs + [ledger.posting_ref(transaction_id_for(k)) for k in keys])
    records = snaps[0 : len(refs) : 2]
    holds = [
        str(rec.get("hold_id"))
        for rec in (snap.to_dict() or {} for snap in records if snap.exists)
        if rec.get("hold_id")
    ]
    hold_snaps = unit.get_all(
        [ledger.hold_ref(h) for h in holds]
        + [ledger.posting_ref(transaction_id_for(posting_key("hold", h, "close"))) for h in holds]
    )
    pending = [
        hold_id
        for hold_id, snap in zip(holds, hold_snaps, strict=False)
        if (snap.to_dict() or {}).get("status") == HoldStatus.PENDING.value
    ]
    charges = []
    for (tx_id, _taken), key in zip(originals, keys, strict=True):
        posted = ledger.posted(unit, key)
        if posted is not None:
            charges.append(ChargeView(tx_id, key, posted, 0))
            continue
        view = ledger.read_original(unit, tx_id)
        charges.append(
            ChargeView(tx_id, key, None, ledger.refundable(unit, tx_id, view=view), view)
        )
    return pending, charges


def plan_refund(pending: list[str], charges: list[ChargeView], charged: int) -> RefundPlan:
    """Decide (pure): every pending hold in full; then, oldest deduction first, what is
    still refundable of each, up to ``charged`` in all (refunds already made count)."""
    left = charged
    refunds: list[tuple[ChargeView, int]] = []
    for charge in charges:
        if left <= 0:
            break
        if charge.posted is not None:
            refunds.append((charge, 0))
            left -= charge.posted.amount
            continue
        amount = min(left, charge.refundable)
        if amount > 0:
            refunds.append((charge, amount))
            left -= amount
    return RefundPlan(tuple(pending), tuple(refunds))


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
    The unit reads (``read_charges``), decides (``plan_refund``, pure), then applies.
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
        pending, charges = read_charges(
            ledger, unit, collection=collection, job_id=job_id, user_id=user_id
        )
        plan = plan_refund(pending, charges, charged)
        refunded = 0
        ids: list[str] = []
        replayed = True
        for hold_id in plan.releases:
            released = ledger.release(unit, hold_id=hold_id, reason=f"failed {noun} {job_id}")
            replayed = False
            refunded += released.amount
            if released.transaction_id:
                ids.append(released.transaction_id)
        for charge, amount in plan.refunds:
            result = charge.posted
            if result is None:
                result = ledger.refund(
                    unit,
                    original_transaction_id=charge.transaction_id,
                    key=charge.key,
                    reason="job_failed",
                    amount=amount,
                    description=f"Refund for failed {noun} {job_id}",
                    refs=Refs(job_id=job_id),
                    view=charge.original,
                )
                replayed = False
            refunded += result.amount
            if result.transaction_id:
                ids.append(result.transaction_id)
        return JobRefund(job_id, refunded, tuple(ids), replayed and bool(ids)), bool(charges)

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
