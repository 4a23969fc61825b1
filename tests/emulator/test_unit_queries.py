"""Queries inside a unit of work: recorded, re-run before a refusal, guarded at commit.

Each race is injected right after the unit's query returns (``Query.stream`` wrapped), so
the query's answer is stale from then on: a refusal must not be surfaced on it, and a
commit must not stand on it where docs/ledger.md says the site is guarded.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from google.cloud import firestore
from google.cloud.firestore_v1.query import Query

from shared.atomic import RawQueryInUnit, Unit, run_atomically
from shared.errors import Conflict
from shared.jobs import refund_failed_job
from shared.ledger import KITESFORU, Kind, Ledger, Refs, ledger_for
from shared.ledger.reconcile import reconcile
from tests.helpers import race_after_query


def _items(db: Any) -> Query:
    return db.collection("things").where(filter=firestore.FieldFilter("kind", "==", "item"))


# -- the unit ------------------------------------------------------------------------------
def _refuse_unless_three(db: Any, attempts: dict[str, int]) -> Callable[[Unit], int]:
    def work(unit: Unit) -> int:
        attempts["n"] += 1
        found = unit.query(_items(db))
        if sum(int(s.get("n")) for s in found) != 3:
            raise Conflict(f"{len(found)} items")
        return len(found)

    return work


def test_a_refusal_on_a_query_that_gained_a_document_is_decided_again(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.collection("things").document("a").set({"kind": "item", "n": 1})
    race = race_after_query(
        monkeypatch,
        "things",
        lambda: db.collection("things").document("b").set({"kind": "item", "n": 2}),
    )
    attempts = {"n": 0}
    assert run_atomically(db, _refuse_unless_three(db, attempts), base_delay_s=0) == 2
    assert attempts["n"] == 2 and race["raced"] == 1


def test_a_refusal_on_a_query_whose_document_changed_or_left_is_decided_again(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for doc_id, n in (("a", 1), ("b", 5), ("c", 2)):
        db.collection("things").document(doc_id).set({"kind": "item", "n": n})

    def race() -> None:
        batch = db.batch()
        batch.update(db.collection("things").document("a"), {"n": 3})  # changed
        batch.update(db.collection("things").document("b"), {"kind": "other"})  # left
        batch.delete(db.collection("things").document("c"))  # deleted
        batch.commit()

    race_after_query(monkeypatch, "things", race)
    attempts = {"n": 0}
    assert run_atomically(db, _refuse_unless_three(db, attempts), base_delay_s=0) == 1
    assert attempts["n"] == 2


def test_a_refusal_on_a_current_query_is_surfaced_after_one_attempt(db: Any) -> None:
    db.collection("things").document("a").set({"kind": "item", "n": 1})
    attempts = {"n": 0}
    with pytest.raises(Conflict, match="1 items"):
        run_atomically(db, _refuse_unless_three(db, attempts), base_delay_s=0)
    assert attempts["n"] == 1


def test_a_raw_query_inside_work_is_refused_and_allowed_outside(db: Any) -> None:
    db.collection("things").document("a").set({"kind": "item", "n": 1})

    def raw(unit: Unit) -> int:
        return len(list(_items(unit.db).stream()))

    def raw_get(unit: Unit) -> int:
        return len(db.collection("things").get())

    for work in (raw, raw_get):
        with pytest.raises(RawQueryInUnit):
            run_atomically(db, work)
    assert len(list(_items(db).stream())) == 1  # outside a unit: unchanged
    assert run_atomically(db, lambda unit: len(unit.query(_items(unit.db)))) == 1


def test_a_grouped_member_refused_on_a_stale_query_goes_again(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.groupcommit import GroupCommitter

    db.collection("things").document("a").set({"kind": "item", "n": 1})
    race_after_query(
        monkeypatch,
        "things",
        lambda: db.collection("things").document("b").set({"kind": "item", "n": 2}),
        nth=2,  # the first is the caller's probe: the leader's run is the one that races
    )
    attempts = {"n": 0}
    committer = GroupCommitter(db)
    # Queued with submit (a lone caller of run skips its probe): the probe runs first.
    member = committer.submit("groups/g", _refuse_unless_three(db, attempts))
    assert committer.wait("groups/g", member) == 2
    # The caller's probe, the leader's run refused on the stale answer, the run again.
    assert attempts["n"] == 3


# -- the sites -----------------------------------------------------------------------------
T0 = datetime(2026, 2, 8, 10, 0, tzinfo=UTC)


def _alice(db: Any) -> Ledger:
    db.collection("users").document("alice").set({"email": "alice@example.com"})
    ledger = ledger_for("kitesforu")
    ledger.run(
        lambda u: ledger.credit(
            u, user_id="alice", kind=Kind.PURCHASE, amount=100, key="pack", description="Pack"
        )
    )
    return ledger


def _deduct(ledger: Ledger, key: str, job_id: str, amount: int) -> str:
    done = ledger.run(
        lambda u: ledger.debit(
            u,
            user_id="alice",
            amount=amount,
            key=key,
            description="Podcast",
            refs=Refs(job_id=job_id),
        )
    )
    assert done.transaction_id is not None
    return done.transaction_id


def test_a_job_deduction_committed_after_the_refunds_query_is_refunded_too(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Phantom guard of shared/jobs.py: the user document, read before the query.
    ledger = _alice(db)
    _deduct(ledger, "job:j1:a", "j1", 20)
    race = race_after_query(
        monkeypatch, "credit_transactions", lambda: _deduct(ledger, "job:j1:b", "j1", 20)
    )
    done = refund_failed_job(collection="podcast_jobs", job_id="j1", user_id="alice", charged=40)
    assert race["raced"] == 1
    assert done.refunded == 40
    assert ledger.balance("alice") == 100
    assert reconcile(db, KITESFORU, run_id="r", now=datetime.now(UTC)).clean


def test_a_refund_the_app_wrote_after_the_refunds_query_is_not_refunded_again(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Phantom guard of Ledger._refunded_outside: the user document, read before the query.
    ledger = _alice(db)
    tx_id = _deduct(ledger, "job:j2", "j2", 40)

    def app_refund() -> None:  # the app's own API refunds all of it, outside the ledger
        batch = db.batch()
        batch.set(
            db.collection("credit_transactions").document("app-refund"),
            {
                "user_id": "alice",
                "type": "REFUND",
                "amount": 40,
                "balance_after": 100,
                "original_transaction_id": tx_id,
                "description": "Refund by support",
                "created_at": datetime.now(UTC),
            },
        )
        batch.update(
            db.collection("users").document("alice"), {"credits_balance": firestore.Increment(40)}
        )
        batch.commit()

    race = race_after_query(monkeypatch, "credit_transactions", app_refund)
    with pytest.raises(Conflict, match="already fully refunded"):
        ledger.run(lambda u: ledger.refund(u, original_transaction_id=tx_id, key="r", reason="r"))
    assert race["raced"] == 1
    assert ledger.balance("alice") == 100  # 100 bought: never 140


def test_queries_in_a_unit_add_no_round_trip_on_the_happy_path(db: Any) -> None:
    from bench.profile import Recorder

    db.collection("things").document("a").set({"kind": "item", "n": 3})
    out = db.collection("things").document("out")

    def work(unit: Unit) -> None:
        found = unit.query(_items(unit.db))
        unit.set(out, {"n": len(found)})

    with Recorder().patched() as rec:
        run_atomically(db, work)
    # One query reading one document, one commit of one write: no re-run, no re-read.
    assert (rec.tally.reads, rec.tally.commits, rec.tally.writes) == (1, 1, 1)


def test_a_stripe_attribution_conflict_that_was_resolved_meanwhile_is_decided_again(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # customer_owner: two users linked to one customer is a conflict (the event is parked);
    # a conflict decided on a link that was removed while the unit ran is decided again.
    from types import SimpleNamespace

    from shared.billing.attribution import customer_owner

    db.collection("users").document("alice").set({"stripe_customer_id": "cus_Q1"})
    db.collection("customers").document("bob").set({"stripeId": "cus_Q1"})
    race = race_after_query(
        monkeypatch,
        "users",
        lambda: db.collection("users").document("alice").update({"stripe_customer_id": None}),
    )
    ctx = SimpleNamespace(db=db, profile="kitesforu", ledger=ledger_for("kitesforu"))
    owner = run_atomically(db, lambda unit: customer_owner(unit, ctx, "cus_Q1"))  # type: ignore[arg-type]
    assert race["raced"] == 1
    assert owner == ("customers.stripeId", "bob")
