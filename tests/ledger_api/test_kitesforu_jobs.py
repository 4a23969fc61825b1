"""KitesForU jobs charged through the suite, then failed: each refunded exactly once.

Everything goes through the real paths: the usage event is published on Pub/Sub, the hold
is made over HTTP, and the failure is a real emulator write of the job document that fires
on-podcast-job-failed / on-course-failed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from devstack.demo import usage as demo_usage
from tests.helpers import triggers_settled, wait_for
from tests.ledger_api.conftest import balance, make_user, transactions


def _fund(api: Any, db: Any, user_id: str, credits: int) -> None:
    make_user(db, user_id, tier="PRO")
    api.grant(user_id, credits, type="PURCHASE", idempotency_key=f"fund-{user_id}")


def _sum(db: Any, user_id: str) -> int:
    return sum(int(t["amount"]) for t in transactions(db, user_id))


def _fail(db: Any, collection: str, job_id: str, data: dict[str, Any]) -> None:
    jobs = db.collection(collection)
    jobs.document(job_id).set({**data, "status": "processing"})
    jobs.document(job_id).set({**data, "status": "failed"})


def _flap(db: Any, collection: str, job_id: str, data: dict[str, Any]) -> None:
    """failed -> processing -> failed again: must give back nothing more."""
    jobs = db.collection(collection)
    jobs.document(job_id).set({**data, "status": "processing"})
    jobs.document(job_id).set({**data, "status": "failed", "note": "again"})


def _refunds(db: Any, user_id: str) -> list[dict[str, Any]]:
    return [t for t in transactions(db, user_id) if t["type"] == "REFUND"]


def test_job_charged_by_usage_event_is_refunded_once_when_it_fails(api, db, stack) -> None:
    demo_usage.seed(db, datetime(2025, 12, 1, tzinfo=UTC))
    _fund(api, db, "ku1", 100)
    event = {
        "request_id": "gen-job-1",
        "user_id": "ku1",
        "engine_id": "openai_chat_gpt4",
        "usage_units": 1,
        "credits_used": 25,
        "job_id": "pj_usage",
    }
    stack.publish("usage-events", json.dumps(event).encode())
    [deduction] = wait_for(
        lambda: [t for t in transactions(db, "ku1") if t["type"] == "DEDUCTION"] or None
    )
    assert deduction["job_id"] == "pj_usage" and deduction["amount"] == -25
    job = {"user_id": "ku1", "credits_deducted": 25}
    # The barrier: every event of the job's writes handled (counted), then assert.
    with triggers_settled(stack):
        _fail(db, "podcast_jobs", "pj_usage", job)
        wait_for(lambda: balance(db, "ku1") == 100)
        _flap(db, "podcast_jobs", "pj_usage", job)
    [refund] = _refunds(db, "ku1")
    assert refund["job_id"] == "pj_usage" and refund["amount"] == 25
    assert balance(db, "ku1") == 100 == _sum(db, "ku1")


def test_job_held_at_creation_is_released_once_when_it_fails(api, db, stack) -> None:
    _fund(api, db, "ku2", 100)
    api.create_hold("ku2", "co_hold", 60, idempotency_key="create-co_hold", job_id="co_hold")
    assert balance(db, "ku2") == 40
    job = {"user_id": "ku2", "credits_charged": 60}
    with triggers_settled(stack):
        _fail(db, "courses", "co_hold", job)
        wait_for(lambda: api.hold("co_hold").status == "RELEASED")
        _flap(db, "courses", "co_hold", job)
    assert balance(db, "ku2") == 100 == _sum(db, "ku2")
    assert [r["job_id"] for r in _refunds(db, "ku2")] == ["co_hold"]


def test_job_charged_by_every_path_gets_back_exactly_what_it_took(api, db, stack) -> None:
    """A hold, a ledger-api charge and one already partly refunded by the app: all once."""
    _fund(api, db, "ku3", 200)
    api.create_hold("ku3", "pj_mixed", 50, idempotency_key="h", job_id="pj_mixed")
    charge = api.charge("ku3", 30, idempotency_key="c", job_id="pj_mixed")
    assert charge.transaction_id
    api.refund(charge.transaction_id, amount=10, reason="goodwill", idempotency_key="r")
    assert balance(db, "ku3") == 200 - 50 - 30 + 10
    job = {"user_id": "ku3", "credits_deducted": 30}
    with triggers_settled(stack):
        _fail(db, "podcast_jobs", "pj_mixed", job)
        wait_for(lambda: balance(db, "ku3") == 200)
        _flap(db, "podcast_jobs", "pj_mixed", job)
    assert api.hold("pj_mixed").status == "RELEASED"
    assert balance(db, "ku3") == 200 == _sum(db, "ku3")


def test_job_settled_on_completion_keeps_its_charge(api, db, stack) -> None:
    _fund(api, db, "ku4", 100)
    api.create_hold("ku4", "pj_done", 40, idempotency_key="h", job_id="pj_done")
    settled = api.settle("pj_done", 32, idempotency_key="done")
    assert (settled.amount, settled.balance_after) == (8, 68)
    with triggers_settled(stack):  # the completed job's event handled before the check
        db.collection("podcast_jobs").document("pj_done").set(
            {"user_id": "ku4", "status": "completed", "credits_deducted": 32}
        )
    assert balance(db, "ku4") == 68 == _sum(db, "ku4")
