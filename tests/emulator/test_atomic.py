"""Optimistic units of work on the emulator: preconditions, retries, merges, all-or-nothing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from google.cloud import firestore

from shared.atomic import Unit, run_atomically
from shared.clock import SystemClock
from shared.errors import Conflict, Transient
from shared.ledger import KITESFORU, Kind, Ledger
from shared.ledger.reconcile import reconcile


def test_read_modify_write_never_loses_an_update(db) -> None:  # type: ignore[no-untyped-def]
    ref = db.collection("counters").document("c")
    ref.set({"n": 0})

    def bump(unit: Unit) -> int:
        n = int(unit.get(ref).get("n"))
        unit.update(ref, {"n": n + 1})
        return n + 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: run_atomically(db, bump), range(80)))
    assert ref.get().get("n") == 80


def test_a_failed_commit_writes_nothing(db) -> None:  # type: ignore[no-untyped-def]
    watched = db.collection("things").document("watched")
    watched.set({"n": 0})
    fresh = db.collection("things").document("fresh")
    attempts = {"n": 0}

    def work(unit: Unit) -> None:
        attempts["n"] += 1
        n = int(unit.get(watched).get("n"))
        watched.set({"n": n + 100})  # another writer moves it after every read
        unit.create(fresh, {"x": 2})
        unit.update(watched, {"n": n + 1})

    with pytest.raises(Transient):
        run_atomically(db, work, max_attempts=3, base_delay_s=0)
    assert attempts["n"] == 3
    assert not fresh.get().exists
    assert watched.get().get("n") == 300


def test_creating_a_document_never_read_as_missing_is_a_conflict_at_once(db) -> None:  # type: ignore[no-untyped-def]
    taken = db.collection("things").document("taken")
    taken.set({"x": 1})
    fresh = db.collection("things").document("fresh")
    attempts = {"n": 0}

    def work(unit: Unit) -> None:
        attempts["n"] += 1
        unit.create(fresh, {"x": 2})
        unit.create(taken, {"x": 3})  # exists on every attempt: retrying cannot help

    with pytest.raises(Conflict) as caught:
        run_atomically(db, work, base_delay_s=0)
    assert attempts["n"] == 1
    assert "things/taken" in caught.value.detail
    assert caught.value.context == {"path": "things/taken"}
    assert not fresh.get().exists
    assert taken.get().get("x") == 1


def test_a_create_raced_after_reading_missing_is_retried(db) -> None:  # type: ignore[no-untyped-def]
    ref = db.collection("things").document("raced")
    other = db.collection("things").document("blind")
    attempts = {"n": 0}

    def work(unit: Unit) -> str:
        attempts["n"] += 1
        if unit.get(ref).exists:
            return "seen"
        ref.set({"by": "someone else"})  # created between our read and our commit
        other.set({"by": "someone else"})  # and so was the document we create blind
        unit.create(ref, {"by": "us"})
        unit.create(other, {"by": "us"})
        return "created"

    assert run_atomically(db, work, base_delay_s=0) == "seen"
    assert attempts["n"] == 2
    assert ref.get().to_dict() == {"by": "someone else"}


def test_set_replaces_only_if_unchanged_and_creates_if_missing(db) -> None:  # type: ignore[no-untyped-def]
    ref = db.collection("docs").document("d")
    attempts = {"n": 0}

    def work(unit: Unit) -> None:
        attempts["n"] += 1
        snap = unit.get(ref)
        if attempts["n"] == 1:
            ref.set({"sneaky": True})  # someone else writes between our read and commit
        unit.set(
            ref, {"v": (snap.get("v") if snap.exists and "v" in (snap.to_dict() or {}) else 0) + 1}
        )

    run_atomically(db, work)
    assert attempts["n"] == 2
    assert ref.get().to_dict() == {"v": 1}  # the replacement dropped "sneaky", after a re-read


def test_merge_counters_sum_increments_and_never_conflict(db) -> None:  # type: ignore[no-untyped-def]
    ref = db.collection("agg").document("day")
    lock = threading.Lock()
    done = []

    def work(i: int) -> None:
        def unit_work(unit: Unit) -> None:
            unit.merge(ref, {"total": firestore.Increment(1), "by": {"k": firestore.Increment(2)}})
            unit.merge(ref, {"total": firestore.Increment(1)})
            unit.create(db.collection("logs").document(str(i)), {"i": i})

        run_atomically(db, unit_work)
        with lock:
            done.append(i)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(40)))
    assert ref.get().to_dict() == {"total": 80, "by": {"k": 80}}
    assert len(list(db.collection("logs").stream())) == 40


def test_several_postings_on_one_account_in_one_unit_chain(db) -> None:  # type: ignore[no-untyped-def]
    ledger = Ledger(db, KITESFORU, SystemClock())
    db.collection("users").document("u").set({"email": "u@example.com"})

    def work(unit: Unit) -> list[int]:
        a = ledger.credit(
            unit, user_id="u", kind=Kind.PURCHASE, amount=10, key="a", description="a"
        )
        b = ledger.credit(
            unit, user_id="u", kind=Kind.SUBSCRIPTION_GRANT, amount=5, key="b", description="b"
        )
        c = ledger.debit(unit, user_id="u", amount=12, key="c", description="c")
        unit.update(ledger.user_ref("u"), {"tier": "PRO"})
        return [a.balance_after, b.balance_after, c.balance_after]

    assert ledger.run(work) == [10, 15, 3]
    user = db.collection("users").document("u").get().to_dict()
    assert user["credits_balance"] == 3 and user["tier"] == "PRO"
    assert user["total_credits_purchased"] == 10 and user["total_credits_used"] == 12
    assert reconcile(db, KITESFORU, run_id="r", now=SystemClock().now()).clean


def test_a_domain_error_decided_on_a_stale_read_is_not_surfaced(db) -> None:  # type: ignore[no-untyped-def]
    # A job and its hold, read one round trip after the other; a racing close commits
    # between the two reads, so the attempt sees a RESERVED job with a SETTLED hold.
    job = db.collection("things").document("stale-job")
    hold = db.collection("things").document("stale-hold")
    job.set({"status": "RESERVED"})
    hold.set({"status": "PENDING"})
    attempts = {"n": 0}

    def work(unit: Unit) -> str:
        attempts["n"] += 1
        status = unit.get(job).get("status")
        if attempts["n"] == 1:
            racing = db.batch()
            racing.update(job, {"status": "COMPLETED"})
            racing.update(hold, {"status": "SETTLED"})
            racing.commit()
        if status == "RESERVED" and unit.get(hold).get("status") != "PENDING":
            raise Conflict("the hold disagrees with the job")
        return str(status)

    assert run_atomically(db, work, base_delay_s=0) == "COMPLETED"
    assert attempts["n"] == 2


def test_a_domain_error_on_current_reads_is_surfaced_after_one_attempt(db) -> None:  # type: ignore[no-untyped-def]
    ref = db.collection("things").document("current")
    ref.set({"status": "PAUSED"})
    attempts = {"n": 0}

    def work(unit: Unit) -> None:
        attempts["n"] += 1
        if unit.get(ref).get("status") == "PAUSED":
            raise Conflict("paused")

    with pytest.raises(Conflict, match="paused"):
        run_atomically(db, work, base_delay_s=0)
    assert attempts["n"] == 1


def test_a_domain_error_that_stays_stale_ends_as_contention(db) -> None:  # type: ignore[no-untyped-def]
    ref = db.collection("things").document("always-moving")
    ref.set({"n": 0})
    attempts = {"n": 0}

    def work(unit: Unit) -> None:
        attempts["n"] += 1
        n = int(unit.get(ref).get("n"))
        ref.set({"n": n + 1})  # moves after every read
        raise Conflict(f"refused at {n}")

    with pytest.raises(Transient):
        run_atomically(db, work, max_attempts=3, base_delay_s=0)
    assert attempts["n"] == 3


def test_verify_makes_the_commit_depend_on_a_document_it_does_not_change(db) -> None:  # type: ignore[no-untyped-def]
    promo = db.collection("things").document("promo")
    promo.set({"status": "ACTIVE"})
    absent = db.collection("things").document("absent")
    out = db.collection("things").document("out")
    before = promo.get().update_time
    attempts = {"n": 0}

    def work(unit: Unit) -> str:
        attempts["n"] += 1
        status = str(unit.get(promo).get("status"))
        assert not unit.get(absent).exists
        unit.verify(promo)
        unit.verify(absent)
        if attempts["n"] == 1:
            promo.update({"status": "PAUSED"})  # lands before this attempt commits
        unit.set(out, {"applied": status})
        return status

    assert run_atomically(db, work, base_delay_s=0) == "PAUSED"
    assert attempts["n"] == 2
    assert out.get().get("applied") == "PAUSED"
    assert not absent.get().exists
    paused = promo.get()
    assert paused.update_time > before

    def verify_only(unit: Unit) -> None:
        unit.get(promo)
        unit.verify(promo)

    run_atomically(db, verify_only)
    assert promo.get().update_time == paused.update_time  # verified, not written
