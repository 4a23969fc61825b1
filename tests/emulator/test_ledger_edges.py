"""Regression tests for ledger edges: keys that cannot collide, refunds counted however written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.cloud.firestore_v1.services.firestore import client as gapic

from shared import atomic
from shared.clock import FixedClock
from shared.errors import Conflict
from shared.jobs import refund_failed_job
from shared.ledger import KITESFORU, Kind, Ledger, Refs
from shared.ledger.reconcile import reconcile

T0 = datetime(2026, 2, 8, 10, 0, tzinfo=UTC)


class TickingClock(FixedClock):
    """A fixed clock that moves one second per reading: every posting has its own time."""

    def now(self) -> datetime:
        self.advance(timedelta(seconds=1))
        return super().now()


def _ledger(db: Any) -> Ledger:
    db.collection("users").document("alice").set({"email": "alice@example.com"})
    ledger = Ledger(db, KITESFORU, TickingClock(T0))
    ledger.run(
        lambda u: ledger.credit(
            u, user_id="alice", kind=Kind.PURCHASE, amount=100, key="pack", description="Pack"
        )
    )
    return ledger


def test_a_hold_named_like_another_holds_close_does_not_collide(db: Any) -> None:
    ledger = _ledger(db)
    for hold_id in ("x", "x:close"):
        ledger.run(
            lambda u, h=hold_id: ledger.hold(
                u,
                user_id="alice",
                hold_id=h,
                amount=30,
                expires_at=T0 + timedelta(minutes=5),
                description="Reserve",
            )
        )
    released = ledger.run(lambda u: ledger.release(u, hold_id="x", reason="cancelled"))
    assert released.amount == 30 and not released.replayed
    assert ledger.balance("alice") == 70
    settled = ledger.run(lambda u: ledger.settle(u, hold_id="x:close", used=10, description="Done"))
    assert settled.amount == 20
    assert ledger.balance("alice") == 90
    assert reconcile(db, KITESFORU, run_id="r", now=T0 + timedelta(days=1)).clean


def _job_deduction(ledger: Ledger, job_id: str, amount: int) -> str:
    done = ledger.run(
        lambda u: ledger.debit(
            u,
            user_id="alice",
            amount=amount,
            key=f"job:{job_id}",
            description="Podcast",
            refs=Refs(job_id=job_id),
        )
    )
    assert done.transaction_id is not None
    return done.transaction_id


def test_a_failed_job_refunds_what_an_operator_left_of_its_deduction(db: Any) -> None:
    ledger = _ledger(db)
    tx_id = _job_deduction(ledger, "j1", 40)
    ledger.run(
        lambda u: ledger.refund(
            u, original_transaction_id=tx_id, key="ops:1", reason="goodwill", amount=5
        )
    )
    done = refund_failed_job(collection="podcast_jobs", job_id="j1", user_id="alice", charged=40)
    assert (done.refunded, done.replayed) == (35, False)
    assert ledger.balance("alice") == 100
    again = refund_failed_job(collection="podcast_jobs", job_id="j1", user_id="alice", charged=40)
    assert (again.refunded, again.replayed) == (35, True)
    assert ledger.balance("alice") == 100
    assert reconcile(db, KITESFORU, run_id="r", now=datetime.now(UTC)).clean


def test_a_refund_the_app_wrote_itself_counts_against_the_job_refund(db: Any) -> None:
    ledger = _ledger(db)
    tx_id = _job_deduction(ledger, "j2", 40)
    # The app's own API refunds 5 of it, linked by original_transaction_id, outside the ledger.
    db.collection("credit_transactions").document("app-refund-1").set(
        {
            "user_id": "alice",
            "type": "REFUND",
            "amount": 5,
            "balance_after": 65,
            "original_transaction_id": tx_id,
            "refund_reason": "support",
            "description": "Refund by support",
            "created_at": T0 + timedelta(minutes=1),
        }
    )
    db.collection("users").document("alice").update({"credits_balance": 65})
    done = refund_failed_job(collection="podcast_jobs", job_id="j2", user_id="alice", charged=40)
    assert done.refunded == 35
    assert ledger.balance("alice") == 100  # never more than the 100 bought
    assert ledger.run(lambda u: ledger.refundable(u, tx_id)) == 0
    with pytest.raises(Conflict):
        ledger.run(lambda u: ledger.refund(u, original_transaction_id=tx_id, key="k", reason="r"))


def test_reconcile_follows_commit_order_not_the_writers_clocks(db: Any) -> None:
    """A sweep stamps its start time on a refund it commits after a finalize that ran
    meanwhile: ``created_at`` order is not commit order, and the chain is still whole."""
    db.collection("users").document("alice").set({"email": "alice@example.com"})
    sweep = Ledger(db, KITESFORU, FixedClock(T0))
    live = Ledger(db, KITESFORU, FixedClock(T0 + timedelta(seconds=2)))
    live.run(
        lambda u: live.credit(
            u, user_id="alice", kind=Kind.PURCHASE, amount=400, key="pack", description="Pack"
        )
    )
    live.run(lambda u: live.debit(u, user_id="alice", amount=2, key="use", description="Use"))
    sweep.run(  # committed last, stamped earliest
        lambda u: sweep.credit(
            u, user_id="alice", kind=Kind.BONUS, amount=5, key="late", description="Late"
        )
    )
    report = reconcile(db, KITESFORU, run_id="r", now=T0 + timedelta(days=1))
    assert report.discrepancies == []


def test_a_close_with_nothing_returned_reports_the_balance_at_its_commit(db: Any) -> None:
    # The whole hold is used, so the close writes no balance; a grant commits between the
    # close's read of the account and its commit. The close must not report the old one.
    ledger = _ledger(db)
    ledger.run(
        lambda u: ledger.hold(
            u,
            user_id="alice",
            hold_id="job",
            amount=30,
            expires_at=T0 + timedelta(minutes=5),
            description="Reserve",
        )
    )
    granted: list[str] = []

    def grant_lands(stage: str) -> None:
        if stage == "before_commit" and not granted:
            granted.append(stage)
            ledger.run(
                lambda u: ledger.credit(
                    u, user_id="alice", kind=Kind.BONUS, amount=10, key="gift", description="Gift"
                )
            )

    atomic.fault_hook = grant_lands
    try:
        closed = ledger.run(lambda u: ledger.settle(u, hold_id="job", used=30, description="Used"))
    finally:
        atomic.fault_hook = None
    assert granted
    assert closed.amount == 0 and closed.balance_after == 80 == ledger.balance("alice")
    again = ledger.run(lambda u: ledger.settle(u, hold_id="job", used=30, description="Used"))
    assert again.replayed and again.balance_after == 80


def test_one_unit_reads_the_ledger_clock_once(db: Any) -> None:
    # The clock moves at every reading; a hold writes three documents with a time.
    ledger = _ledger(db)
    result = ledger.run(
        lambda u: ledger.hold(
            u,
            user_id="alice",
            hold_id="h",
            amount=10,
            expires_at=T0 + timedelta(hours=1),
            description="Reserve",
        )
    )
    tx = ledger.transaction_ref(str(result.transaction_id)).get().get("created_at")
    record = ledger.posting_ref(str(result.transaction_id)).get().get("created_at")
    hold = ledger.hold_ref("h").get().get("created_at")
    assert tx == record == hold
    # A service's own time is the unit's time.
    at = T0 + timedelta(days=1)
    closed = ledger.run(
        lambda u: ledger.release(u, hold_id="h", reason="cancelled"),
        now=at,
    )
    tx = ledger.transaction_ref(str(closed.transaction_id)).get().get("created_at")
    record = ledger.posting_ref(str(closed.transaction_id)).get().get("created_at")
    assert tx == record == ledger.hold_ref("h").get().get("closed_at") == at


def test_a_failed_job_refund_reads_each_charge_once(db: Any, monkeypatch: Any) -> None:
    """A job with a pending hold and two deductions: the read phase batches the postings,
    transactions and holds, and each deduction's linked-refund query runs once."""
    ledger = _ledger(db)
    ledger.run(
        lambda u: ledger.hold(
            u,
            user_id="alice",
            hold_id="h3",
            amount=10,
            expires_at=T0 + timedelta(minutes=5),
            description="Reserve",
            refs=Refs(job_id="j3"),
        )
    )
    _job_deduction(ledger, "j3", 20)
    ledger.run(
        lambda u: ledger.debit(
            u, user_id="alice", amount=15, key="job:j3b", description="More", refs=Refs(job_id="j3")
        )
    )
    trips = {"batch_get_documents": 0, "run_query": 0}
    for name in trips:
        original = getattr(gapic.FirestoreClient, name)

        def counted(api: Any, *args: Any, _n: str = name, _f: Any = original, **kw: Any) -> Any:
            trips[_n] += 1
            return _f(api, *args, **kw)

        monkeypatch.setattr(gapic.FirestoreClient, name, counted)
    done = refund_failed_job(collection="podcast_jobs", job_id="j3", user_id="alice", charged=35)
    seen = dict(trips)
    assert done.refunded == 45 and ledger.balance("alice") == 100
    # The user (the phantom guard), then the deductions' records, transactions and this
    # job's refunds of them in one read, then the hold and its close's record in one: the
    # refunds and the release read nothing again. One query for the job's deductions, one
    # per deduction for its linked refunds. (Before: 10 reads and 5 queries.)
    assert seen == {"batch_get_documents": 3, "run_query": 3}, seen
