"""The local stack's wiring, end to end: real emulator writes fire real triggers over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
from google.cloud import firestore

from shared.clock import SystemClock
from shared.ledger import KITESFORU, Kind, Ledger
from tests.helpers import wait_for


def test_healthz_answers_once_wired(stack) -> None:
    response = httpx.get(f"{stack.base_url}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_unknown_function_is_404(stack) -> None:
    response = httpx.get(f"{stack.base_url}/no-such-function", timeout=5)
    assert response.status_code == 404


def test_emulator_write_fires_the_failed_job_refund(db, stack) -> None:
    fired = stack.handled("on-podcast-job-failed")
    ledger = Ledger(db, KITESFORU, SystemClock())
    db.collection("users").document("u1").set({"email": "u1@example.com", "credits_balance": 0})
    ledger.run(
        lambda u: ledger.credit(
            u,
            user_id="u1",
            kind=Kind.PURCHASE,
            amount=100,
            key="seed:u1",
            description="Credit pack",
        )
    )
    ledger.run(
        lambda u: ledger.debit(
            u, user_id="u1", amount=30, key="job:j1", description="Podcast", refs=_refs("j1")
        )
    )
    jobs = db.collection("podcast_jobs")
    jobs.document("j1").set({"user_id": "u1", "status": "processing", "credits_deducted": 30})
    jobs.document("j1").update({"status": "failed"})

    def refunded():
        snap = db.collection("users").document("u1").get()
        return snap.get("credits_balance") == 100

    wait_for(refunded)
    refunds = [
        s.to_dict()
        for s in db.collection("credit_transactions")
        .where(filter=firestore.FieldFilter("type", "==", "REFUND"))
        .stream()
    ]
    assert len(refunds) == 1
    assert refunds[0]["amount"] == 30
    assert refunds[0]["job_id"] == "j1"
    assert refunds[0]["refund_reason"] == "job_failed"
    # Flapping failed -> processing -> failed refunds nothing more.
    jobs.document("j1").update({"status": "processing"})
    jobs.document("j1").update({"status": "failed"})
    jobs.document("j1").update({"updated_at": datetime.now(UTC)})
    db.collection("users").document("u1").update({"email": "again@example.com"})
    # Every one of the job's five writes has been delivered and handled: then nothing more.
    stack.wait_handled("on-podcast-job-failed", fired + 5)
    assert db.collection("users").document("u1").get().get("credits_balance") == 100
    assert len(list(db.collection("credit_transactions").stream())) == 3


def test_scheduled_reconciliation_through_pubsub(db, stack) -> None:
    db.collection("users").document("u2").set({"credits_balance": 5})
    stack.publish("cron-reconcile", json.dumps({}).encode())

    def report():
        docs = list(db.collection("ledger_reconciliations").stream())
        return docs[0].to_dict() if docs else None

    found = wait_for(report)
    assert found["clean"] is False
    assert found["discrepancies"][0]["user_id"] == "u2"
    assert found["discrepancies"][0]["problem"] == "balance_mismatch"


def _refs(job_id: str):
    from shared.ledger import Refs

    return Refs(job_id=job_id)
