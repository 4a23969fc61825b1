"""Firestore triggers delivered by the emulator, and each delivered twice by hand."""

from __future__ import annotations

from typing import Any

from google.cloud import firestore

from shared.clock import SystemClock
from shared.ledger import KITESFORU, Kind, Ledger, Refs
from tests.helpers import wait_for
from tests.usage.conftest import settled
from tests.usage.events import firestore_event


def _meta(db: Any, scenario_id: str) -> dict[str, Any] | None:
    snap = db.collection("scenarioMetadata").document(scenario_id).get()
    return snap.to_dict() if snap.exists else None


def test_scenario_metadata_follows_progress_writes(db, stack) -> None:
    fired = stack.handled("on-scenario-progress-written")
    progress = db.collection("userScenarioProgress")
    progress.document("u1_s1").set(
        {
            "userId": "u1",
            "scenarioId": "s1",
            "isSaved": True,
            "timesAttempted": 1,
            "timesCompleted": 0,
            "totalTimeSpentSeconds": 120,
        }
    )
    progress.document("u2_s1").set(
        {
            "userId": "u2",
            "scenarioId": "s1",
            "isSaved": False,
            "timesAttempted": 2,
            "timesCompleted": 1,
            "userRating": 5,
            "totalTimeSpentSeconds": 300,
        }
    )
    wait_for(lambda: (_meta(db, "s1") or {}).get("totalAttempts") == 3)
    progress.document("u1_s1").update(
        {"timesAttempted": 2, "timesCompleted": 2, "userRating": 3, "totalTimeSpentSeconds": 180}
    )
    meta = wait_for(lambda: (m := _meta(db, "s1")) and m["ratingsCount"] == 2 and m)
    assert meta["totalAttempts"] == 4 and meta["totalTimesUsed"] == 3
    assert meta["amountSavedCount"] == 1
    assert meta["averageRating"] == 4.0
    assert meta["completionRate"] == 0.75
    assert meta["averageTimeSpent"] == 120.0  # 480 s over 4 attempts
    assert meta["createdAt"] <= meta["updatedAt"]
    progress.document("u2_s1").delete()
    meta = wait_for(lambda: (m := _meta(db, "s1")) and m["ratingsCount"] == 1 and m)
    assert (meta["totalAttempts"], meta["totalTimesUsed"], meta["averageRating"]) == (2, 2, 3.0)
    # No loop: the trigger wrote metadata and one event record per progress write, no more
    # (the barrier: the events of the four writes handled, nothing in flight).
    final = settled(db, stack, {"on-scenario-progress-written": fired + 4})
    events = [p for p in final if p.startswith("scenario_progress_events/")]
    assert len(events) == 4
    assert [p for p in final if p.startswith("userScenarioProgress/")] == [
        "userScenarioProgress/u1_s1"
    ]
    # Leave nothing behind whose deletion (the next wipe) would fire this trigger again.
    progress.document("u1_s1").delete()
    wait_for(lambda: (_meta(db, "s1") or {}).get("totalAttempts") == 0)


def test_scenario_event_delivered_twice_applies_once(db, stack) -> None:
    after = {
        "userId": "u9",
        "scenarioId": "s9",
        "isSaved": True,
        "timesAttempted": 3,
        "timesCompleted": 1,
        "userRating": 4,
        "totalTimeSpentSeconds": 90,
    }
    for _ in range(2):
        status = firestore_event(
            stack,
            "on-scenario-progress-written",
            "userScenarioProgress/u9_s9",
            None,
            after,
            event_id="evt-s9",
        )
        assert 200 <= status < 300
    meta = _meta(db, "s9")
    assert meta is not None
    assert (meta["totalAttempts"], meta["amountSavedCount"], meta["ratingsCount"]) == (3, 1, 1)
    bad = firestore_event(
        stack,
        "on-scenario-progress-written",
        "userScenarioProgress/x",
        None,
        {"userId": "u"},
        event_id="evt-bad",
    )
    assert 200 <= bad < 300  # no scenarioId: logged and acknowledged


def _job_setup(db: Any, user_id: str, job_id: str) -> Ledger:
    ledger = Ledger(db, KITESFORU, SystemClock())
    db.collection("users").document(user_id).set({"email": "j@example.com", "credits_balance": 0})
    ledger.run(
        lambda u: ledger.credit(
            u,
            user_id=user_id,
            kind=Kind.PURCHASE,
            amount=100,
            key=f"seed:{user_id}",
            description="Credit pack",
        )
    )
    ledger.run(
        lambda u: ledger.debit(
            u,
            user_id=user_id,
            amount=40,
            key=f"job:{job_id}",
            description="Job",
            refs=Refs(job_id=job_id),
        )
    )
    return ledger


def _refunds(db: Any) -> list[dict[str, Any]]:
    query = db.collection("credit_transactions").where(
        filter=firestore.FieldFilter("type", "==", "REFUND")
    )
    return [s.to_dict() for s in query.stream()]


def test_failed_job_triggers_delivered_twice_refund_once(db, stack) -> None:
    cases = [
        ("on-podcast-job-failed", "podcast_jobs", "pj1", "credits_deducted"),
        ("on-course-failed", "courses", "co1", "credits_charged"),
    ]
    for trigger, collection, job_id, field in cases:
        user_id = f"ju-{job_id}"
        _job_setup(db, user_id, job_id)
        before = {"user_id": user_id, "status": "processing", field: 40}
        after = {**before, "status": "failed"}
        path = f"{collection}/{job_id}"
        for _ in range(2):
            status = firestore_event(stack, trigger, path, before, after, event_id=f"evt-{job_id}")
            assert 200 <= status < 300
        # A second, different delivery of the same transition (another event id) too.
        firestore_event(stack, trigger, path, before, after, event_id=f"evt-{job_id}-again")
        refunds = [r for r in _refunds(db) if r.get("job_id") == job_id]
        assert len(refunds) == 1 and refunds[0]["amount"] == 40
        assert refunds[0]["original_transaction_id"]
        balance = db.collection("users").document(user_id).get().get("credits_balance")
        assert balance == 100


def test_failed_job_written_twice_refunds_once(db, stack) -> None:
    fired = stack.handled("on-podcast-job-failed")
    _job_setup(db, "ju", "pj2")
    jobs = db.collection("podcast_jobs")
    jobs.document("pj2").set({"user_id": "ju", "status": "failed", "credits_deducted": 40})
    jobs.document("pj2").set(
        {"user_id": "ju", "status": "failed", "credits_deducted": 40, "note": "written again"}
    )
    stack.wait_handled("on-podcast-job-failed", fired + 2)  # both writes' events handled
    assert len(_refunds(db)) == 1
    assert db.collection("users").document("ju").get().get("credits_balance") == 100
