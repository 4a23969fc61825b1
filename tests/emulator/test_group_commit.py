"""Group commit on the emulator: one commit for many postings, each with its exact result.

Members are queued in a known order with ``submit`` and then waited for, so one batch
carries them in that order and the expected chain is exact. A hypothesis state machine
drives rounds of random operations through the group-commit path against the pure rules.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from shared.atomic import Unit
from shared.clock import SystemClock
from shared.errors import Conflict, InsufficientCredits
from shared.groupcommit import GroupCommitter, GroupSettings
from shared.ledger import KITESFORU, POSTINGS_COLLECTION, Kind, Ledger, transaction_id_for
from shared.ledger.core import Account, plan_credit, plan_debit
from shared.ledger.reconcile import reconcile


def _ledger(db: Any, **kw: Any) -> tuple[Ledger, GroupCommitter]:
    group = GroupCommitter(db, GroupSettings(**kw))
    return Ledger(db, KITESFORU, SystemClock(), group=group), group


def _credit(ledger: Ledger, user: str, key: str, amount: int):  # type: ignore[no-untyped-def]
    return lambda u: ledger.credit(
        u, user_id=user, kind=Kind.PURCHASE, amount=amount, key=key, description="c"
    )


def _debit(ledger: Ledger, user: str, key: str, amount: int):  # type: ignore[no-untyped-def]
    return lambda u: ledger.debit(u, user_id=user, amount=amount, key=key, description="d")


def _outcomes(group: GroupCommitter, account: str, works: list[Any]) -> list[Any]:
    """Queue ``works`` in order, as ``Ledger.run`` does, then wait for each: its result or
    its exception."""
    members = [group.submit(account, w, new_keys=(POSTINGS_COLLECTION,)) for w in works]
    out: list[Any] = []
    for m in members:
        try:
            out.append(group.wait(account, m))
        except Exception as exc:
            out.append(exc)
    return out


def _chain_ok(ledger: Ledger, user: str) -> None:
    p = ledger.profile
    balance = (ledger.user_ref(user).get().to_dict() or {}).get(p.balance_field, 0)
    txs = [
        s.to_dict()
        for s in ledger.db.collection(p.transactions_collection)
        .where(filter=FieldFilter("user_id", "==", user))
        .stream()
    ]
    assert balance == sum(t["amount"] for t in txs) >= 0
    report = reconcile(
        ledger.db, p, run_id=f"gc-{uuid.uuid4().hex[:6]}", now=SystemClock().now(), user_ids=[user]
    )
    assert report.clean, report


def test_one_commit_carries_postings_in_order_with_exact_balance_after(db) -> None:  # type: ignore[no-untyped-def]
    ledger, group = _ledger(db)
    db.collection("users").document("u").set({"email": "u@example.com"})
    out = _outcomes(
        group,
        "users/u",
        [
            _credit(ledger, "u", "c1", 10),
            _debit(ledger, "u", "d1", 4),
            _debit(ledger, "u", "d2", 7),  # 6 left: refused, and only this one
            _credit(ledger, "u", "c2", 5),
            _debit(ledger, "u", "d3", 7),  # 11 left: fits
        ],
    )
    assert [r.balance_after for r in (out[0], out[1], out[3], out[4])] == [10, 6, 11, 4]
    assert isinstance(out[2], InsufficientCredits)
    assert group.commits == 1 and group.committed_members == 4
    assert not db.collection("ledger_postings").document(transaction_id_for("d2")).get().exists
    _chain_ok(ledger, "u")


def test_a_key_replayed_inside_or_across_batches_returns_its_first_result(db) -> None:  # type: ignore[no-untyped-def]
    ledger, group = _ledger(db)
    db.collection("users").document("u").set({})
    first, again, other = _outcomes(
        group,
        "users/u",
        [
            _credit(ledger, "u", "k", 10),
            _credit(ledger, "u", "k", 10),  # same key in the same batch
            _credit(ledger, "u", "k2", 3),
        ],
    )
    assert (first.replayed, again.replayed) == (False, True)
    assert again.transaction_id == first.transaction_id and again.balance_after == 10
    assert other.balance_after == 13
    (later,) = _outcomes(group, "users/u", [_credit(ledger, "u", "k", 10)])
    assert later.replayed and later.balance_after == 10
    (clash,) = _outcomes(group, "users/u", [_credit(ledger, "u", "k", 11)])
    assert isinstance(clash, Conflict)
    assert ledger.balance("u") == 13
    _chain_ok(ledger, "u")


def test_each_member_commits_with_its_own_domain_writes_or_not_at_all(db) -> None:  # type: ignore[no-untyped-def]
    ledger, group = _ledger(db)
    db.collection("users").document("u").set({})
    ledger.run(_credit(ledger, "u", "seed", 10))

    def job(name: str, amount: int, fail_after: bool = False):  # type: ignore[no-untyped-def]
        def work(unit: Unit) -> int:
            r = ledger.debit(unit, user_id="u", amount=amount, key=name, description="j")
            unit.create(db.collection("jobs").document(name), {"charged": amount})
            unit.merge(
                db.collection("counters").document("jobs"),
                {"n": firestore.Increment(1)},
            )
            if fail_after:
                raise Conflict("the job changed its mind")
            return r.balance_after

        return work

    out = _outcomes(
        group, "users/u", [job("a", 3), job("b", 2, fail_after=True), job("c", 4), job("d", 9)]
    )
    assert out[0] == 7 and out[2] == 3
    assert isinstance(out[1], Conflict) and isinstance(out[3], InsufficientCredits)
    jobs = {s.id for s in db.collection("jobs").stream()}
    assert jobs == {"a", "c"}
    assert db.collection("counters").document("jobs").get().get("n") == 2
    assert ledger.balance("u") == 3
    _chain_ok(ledger, "u")


def test_a_domain_error_decided_on_a_stale_view_is_not_surfaced(db) -> None:  # type: ignore[no-untyped-def]
    # The probe reads the promotion PAUSED; an operator resumes it before the batch runs.
    # The batch's first view reuses the probe's snapshot (nothing this process committed
    # touched it), so the member refuses on a stale view: it must run again, fresh.
    ledger, group = _ledger(db, base_delay_s=0)
    db.collection("users").document("u").set({})
    promo = db.collection("promotions").document("p")
    promo.set({"status": "PAUSED"})
    runs = {"n": 0}

    def bonus(unit: Unit) -> int:
        runs["n"] += 1
        if unit.get(promo).get("status") != "ACTIVE":
            raise Conflict("the promotion is paused")
        r = ledger.credit(unit, user_id="u", kind=Kind.BONUS, amount=5, key="p", description="b")
        return r.balance_after

    member = group.submit("users/u", bonus)  # the probe: PAUSED
    promo.update({"status": "ACTIVE"})
    assert group.wait("users/u", member) == 5
    assert runs["n"] == 3  # the probe, the stale run, the fresh run
    assert ledger.balance("u") == 5
    _chain_ok(ledger, "u")


def test_a_close_returning_nothing_shares_the_batch_and_reports_its_place(db) -> None:  # type: ignore[no-untyped-def]
    # Such a close only verifies the user document; it rides with the postings around it.
    ledger, group = _ledger(db)
    db.collection("users").document("u").set({})
    expires = SystemClock().now() + timedelta(minutes=5)
    ledger.run(_credit(ledger, "u", "seed", 50))
    ledger.run(
        lambda u: ledger.hold(
            u, user_id="u", hold_id="h", amount=20, expires_at=expires, description="r"
        )
    )
    commits = group.commits
    out = _outcomes(
        group,
        "users/u",
        [
            _credit(ledger, "u", "a", 1),
            lambda u: ledger.settle(u, hold_id="h", used=20, description="all used"),
            _credit(ledger, "u", "b", 2),
        ],
    )
    assert [r.balance_after for r in out] == [31, 31, 33]
    assert out[1].amount == 0
    assert group.commits == commits + 1
    assert ledger.balance("u") == 33
    _chain_ok(ledger, "u")


def _around(ledger: Ledger, bad: Any) -> list[Any]:
    return (
        [_credit(ledger, "u", f"g{i}", 1) for i in range(3)]
        + [bad]
        + [_credit(ledger, "u", f"h{i}", 1) for i in range(3)]
    )


def _only_the_bad_one_failed(ledger: Ledger, db: Any, out: list[Any]) -> None:
    good = [r for i, r in enumerate(out) if i != 3]
    assert [r.balance_after for r in good] == [1, 2, 3, 4, 5, 6]
    assert ledger.balance("u") == 6
    assert not db.collection("ledger_postings").document(transaction_id_for("bad")).get().exists
    _chain_ok(ledger, "u")


def test_a_member_creating_an_existing_document_fails_alone_with_a_conflict(db) -> None:  # type: ignore[no-untyped-def]
    ledger, group = _ledger(db, max_attempts=3, base_delay_s=0)
    db.collection("users").document("u").set({})
    db.collection("jobs").document("taken").set({"x": 1})

    def bad(unit: Unit) -> None:
        ledger.credit(unit, user_id="u", kind=Kind.BONUS, amount=100, key="bad", description="b")
        unit.create(db.collection("jobs").document("taken"), {"x": 2})  # exists: never commits

    out = _outcomes(group, "users/u", _around(ledger, bad))
    assert isinstance(out[3], Conflict) and out[3].detail == "jobs/taken already exists"
    assert db.collection("jobs").document("taken").get().get("x") == 1
    _only_the_bad_one_failed(ledger, db, out)


def test_a_member_whose_write_the_database_refuses_is_split_off(db) -> None:  # type: ignore[no-untyped-def]
    ledger, group = _ledger(db, max_attempts=3, base_delay_s=0)
    db.collection("users").document("u").set({})

    def bad(unit: Unit) -> None:
        ledger.credit(unit, user_id="u", kind=Kind.BONUS, amount=100, key="bad", description="b")
        unit.update(db.collection("jobs").document("missing"), {"x": 2})  # never read: NotFound

    out = _outcomes(group, "users/u", _around(ledger, bad))
    assert isinstance(out[3], gexc.NotFound)
    assert group.failed_commits >= 3  # the whole batch, then halves down to the bad member
    _only_the_bad_one_failed(ledger, db, out)


def test_hold_and_its_close_in_one_round_commit_in_turn(db) -> None:  # type: ignore[no-untyped-def]
    ledger, group = _ledger(db)
    db.collection("users").document("u").set({})
    expires = SystemClock().now() + timedelta(minutes=5)
    out = _outcomes(
        group,
        "users/u",
        [
            _credit(ledger, "u", "c", 50),
            lambda u: ledger.hold(
                u, user_id="u", hold_id="h1", amount=20, expires_at=expires, description="r"
            ),
            lambda u: ledger.settle(u, hold_id="h1", used=15, description="done"),
            _debit(ledger, "u", "d", 30),
        ],
    )
    assert [r.balance_after for r in out] == [50, 30, 35, 5]
    assert group.commits == 2  # the close touches the hold created before it: next batch
    _chain_ok(ledger, "u")


class GroupedLedgerMachine(RuleBasedStateMachine):
    """Rounds of random postings through one batch each, against the pure rules."""

    db: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.ledger, self.group = _ledger(self.db)
        self.user = f"m-{uuid.uuid4().hex[:10]}"
        self.db.collection("users").document(self.user).set({})
        self.account = Account()
        self.sent: dict[str, tuple[str, int, int]] = {}  # key -> op, amount, balance_after
        self.n = 0

    @rule(
        ops=st.lists(
            st.tuples(st.sampled_from(["credit", "debit", "replay"]), st.integers(1, 30)),
            min_size=1,
            max_size=6,
        )
    )
    def round(self, ops: list[tuple[str, int]]) -> None:
        works, expected = [], []
        pending: dict[str, tuple[str, int, int]] = {}
        for op, amount in ops:
            if op == "replay" and (self.sent or pending):
                known = {**self.sent, **pending}
                key = sorted(known)[amount % len(known)]
                op, amount, after = known[key]
                expected.append(("replayed", after))
            else:
                op = "credit" if op == "replay" else op
                self.n += 1
                key = f"{self.user}:{self.n}"
                if op == "credit":
                    entry = plan_credit(self.account, Kind.PURCHASE, amount)
                else:
                    try:
                        entry = plan_debit(
                            self.account, Kind.DEDUCTION, amount, allow_partial=False
                        )
                    except InsufficientCredits:
                        entry = None
                if entry is None:
                    expected.append(("refused", None))
                else:
                    self.account = entry.apply(self.account)
                    pending[key] = (op, amount, entry.balance_after)
                    expected.append(("applied", entry.balance_after))
            make = _credit if op == "credit" else _debit
            works.append(make(self.ledger, self.user, key, amount))
        self.sent.update(pending)
        out = _outcomes(self.group, f"users/{self.user}", works)
        for (kind, after), got in zip(expected, out, strict=True):
            if kind == "refused":
                assert isinstance(got, InsufficientCredits), got
            else:
                assert not isinstance(got, Exception), got
                assert (got.replayed, got.balance_after) == (kind == "replayed", after)

    @invariant()
    def balance_matches_model_and_chain(self) -> None:
        stored = self.db.collection("users").document(self.user).get().to_dict() or {}
        assert stored.get("credits_balance", 0) == self.account.balance
        _chain_ok(self.ledger, self.user)


@pytest.mark.usefixtures("db")
def test_grouped_ledger_state_machine(db) -> None:  # type: ignore[no-untyped-def]
    from hypothesis.stateful import run_state_machine_as_test

    GroupedLedgerMachine.db = db
    run_state_machine_as_test(
        GroupedLedgerMachine,
        settings=settings(
            max_examples=12,
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


def test_crashes_and_lost_acks_around_group_commits_lose_and_double_nothing(db) -> None:  # type: ignore[no-untyped-def]
    """Faults before and after batch commits while 8 writers share commits; callers retry."""
    import random
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from shared import atomic
    from shared.errors import Transient

    class Injected(Transient):
        pass

    ledger, group = _ledger(db)
    db.collection("users").document("u").set({"credits_balance": 0})
    rng, lock, injected = random.Random(5), threading.Lock(), []

    def faults(stage: str) -> None:
        with lock:
            if rng.random() >= 0.15:
                return
            injected.append(stage)
        raise Injected(stage)

    def writer(w: int) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for i in range(25):
            key, debit = f"f{w}-{i}", i % 3 == 2
            work = _debit(ledger, "u", key, 2) if debit else _credit(ledger, "u", key, 3)
            while True:  # a redelivery after each injected fault
                try:
                    seen[key] = ledger.run(work, account="u")
                    break
                except Injected:
                    continue
                except InsufficientCredits:
                    seen[key] = None
                    break
        return seen

    atomic.fault_hook = faults
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = {k: v for part in pool.map(writer, range(8)) for k, v in part.items()}
    finally:
        atomic.fault_hook = None
    assert {"before_commit", "after_commit"} <= set(injected)
    assert group.commits < group.committed_members  # batches really carried several
    txs = {
        s.id: s.to_dict()
        for s in db.collection("credit_transactions")
        .where(filter=FieldFilter("user_id", "==", "u"))
        .stream()
    }
    applied = {k: r for k, r in answers.items() if r is not None}
    # Nothing lost: every answered posting is there; nothing doubled: nothing else is.
    assert set(txs) == {transaction_id_for(k) for k in applied}
    for key, result in applied.items():
        assert txs[transaction_id_for(key)]["balance_after"] == result.balance_after
    _chain_ok(ledger, "u")


def _counting_reads(db: Any) -> list[int]:
    """Count the client's read round trips from now on (``get_all`` calls)."""
    calls = [0]
    original = db.get_all

    def get_all(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    db.get_all = get_all
    return calls


def test_a_batch_reads_nothing_it_knows_or_presumes(db) -> None:  # type: ignore[no-untyped-def]
    """After its first commit the account's state is known, and posting records of fresh
    keys are presumed new: the next batches cost one commit each and no read."""
    ledger, group = _ledger(db)
    db.collection("users").document("u").set({})
    (first,) = _outcomes(group, "users/u", [_credit(ledger, "u", "k0", 5)])
    reads = _counting_reads(db)
    out = _outcomes(group, "users/u", [_credit(ledger, "u", f"k{i}", 1) for i in range(1, 6)])
    out += _outcomes(group, "users/u", [_debit(ledger, "u", "d1", 3)])
    assert [r.balance_after for r in (first, *out)] == [5, 6, 7, 8, 9, 10, 7]
    assert reads[0] == 0 and group.commits == 3 and group.failed_commits == 0
    _chain_ok(ledger, "u")


def _elsewhere(db: Any) -> Ledger:
    """The same ledger in another process: one commit per posting, its own memory."""
    return Ledger(db, KITESFORU, SystemClock())


def test_a_known_balance_another_process_changed_is_never_trusted(db) -> None:  # type: ignore[no-untyped-def]
    ledger, group = _ledger(db)
    other = _elsewhere(db)
    for user in ("u", "v"):
        db.collection("users").document(user).set({})
        _outcomes(group, f"users/{user}", [_credit(ledger, user, f"c-{user}", 10)])  # known
        other.run(_credit(other, user, f"x-{user}", 100))  # 110, unknown to the committer
    # u: accepted on the stale 10 (5 left): the commit's precondition fails, and the batch
    # runs again from a fresh read.
    (small,) = _outcomes(group, "users/u", [_debit(ledger, "u", "d1", 5)])
    assert small.balance_after == 105 and group.failed_commits == 1
    # v: refused on the stale 10, which no write of the batch proves: a read finds the
    # change, and the batch runs again from it.
    (big,) = _outcomes(group, "users/v", [_debit(ledger, "v", "d2", 100)])
    assert big.balance_after == 10 and group.failed_commits == 1
    assert (ledger.balance("u"), ledger.balance("v")) == (105, 10)
    _chain_ok(ledger, "u")
    _chain_ok(ledger, "v")


def test_a_replayed_key_presumed_new_returns_its_first_result(db) -> None:  # type: ignore[no-untyped-def]
    """Keys posted by another process are presumed new here: the create fails the commit,
    the batch runs again from fresh reads and the replays find their first results."""
    ledger, group = _ledger(db)
    other = _elsewhere(db)
    db.collection("users").document("u").set({})
    other.run(_credit(other, "u", "a", 30))
    other.run(_debit(other, "u", "b", 25))  # 5 left
    out = _outcomes(
        group,
        "users/u",
        [
            _credit(ledger, "u", "a", 30),  # a replay
            _debit(ledger, "u", "b", 25),  # a replay: its first result, not a 402
            _credit(ledger, "u", "c", 2),
            _debit(ledger, "u", "d", 25),  # does not fit in 7: refused
        ],
    )
    assert [(r.replayed, r.balance_after) for r in out[:3]] == [(True, 30), (True, 5), (False, 7)]
    assert isinstance(out[3], InsufficientCredits)
    assert ledger.balance("u") == 7
    _chain_ok(ledger, "u")


def test_past_the_queue_bound_a_caller_gets_a_retryable_error_at_once(db) -> None:  # type: ignore[no-untyped-def]
    from shared.errors import Transient, is_transient

    ledger, group = _ledger(db, max_queue=3)
    db.collection("users").document("u").set({})
    waiting = [group.submit("users/u", _credit(ledger, "u", f"q{i}", 1)) for i in range(3)]
    with pytest.raises(Transient) as refused:
        group.submit("users/u", _credit(ledger, "u", "q3", 1))
    assert is_transient(refused.value) and group.refused == 1
    assert "3 postings of users/u are already waiting" in refused.value.detail
    assert [group.wait("users/u", m).balance_after for m in waiting] == [1, 2, 3]
    # The queue drained: the refused posting, sent again, goes through.
    assert ledger.run(_credit(ledger, "u", "q3", 1), account="u").balance_after == 4
    _chain_ok(ledger, "u")


def test_callers_skip_the_probe_while_probes_read_nothing(db) -> None:  # type: ignore[no-untyped-def]
    ledger, group = _ledger(db)
    db.collection("users").document("u").set({})
    runs: list[str] = []

    def counted(key: str) -> Any:
        post = _credit(ledger, "u", key, 1)

        def work(unit: Unit) -> Any:
            runs.append(key)
            return post(unit)

        return work

    _outcomes(group, "users/u", [counted("k0")])  # probed (read the account), then run
    _outcomes(group, "users/u", [counted("k1")])  # probed from memory: nothing read
    assert runs == ["k0", "k0", "k1", "k1"]
    runs.clear()
    out = _outcomes(group, "users/u", [counted(f"k{i}") for i in range(2, 6)])
    assert runs == ["k2", "k3", "k4", "k5"]  # no probes: one run each
    assert [r.balance_after for r in out] == [3, 4, 5, 6]
    runs.clear()
    # A key this process committed is read, never presumed: the leader reads it for the
    # member, and the next callers probe again.
    (again,) = _outcomes(group, "users/u", [counted("k2")])
    assert again.replayed and again.balance_after == 3
    _outcomes(group, "users/u", [counted("k6")])
    assert runs == ["k2", "k6", "k6"]
    assert ledger.balance("u") == 7
    _chain_ok(ledger, "u")


def test_a_lone_caller_skips_the_probe_and_runs_its_work_once(db) -> None:  # type: ignore[no-untyped-def]
    ledger, group = _ledger(db)
    db.collection("users").document("u").set({})
    promo = db.collection("promotions").document("p")
    promo.set({"status": "ACTIVE"})
    runs: list[str] = []

    def counted(key: str) -> Any:
        post = _credit(ledger, "u", key, 1)

        def work(unit: Unit) -> Any:
            runs.append(key)
            assert unit.get(promo).get("status") == "ACTIVE"  # a read no memory serves
            return post(unit)

        return work

    _outcomes(group, "users/u", [_credit(ledger, "u", "seed", 1)])  # the account known
    reads = _counting_reads(db)
    # Alone: no probe; the leader reads what the work needs (the promotion) in its one run.
    assert group.run("users/u", counted("k0"), new_keys=(POSTINGS_COLLECTION,)).balance_after == 2
    assert runs == ["k0"] and group.lone == 1 and reads[0] == 1
    runs.clear()
    # A caller that finds another unit of its group queued probes, as before.
    waiting = group.submit("users/u", counted("k1"), new_keys=(POSTINGS_COLLECTION,))
    assert group.run("users/u", counted("k2"), new_keys=(POSTINGS_COLLECTION,)).balance_after == 4
    assert group.wait("users/u", waiting).balance_after == 3
    assert runs == ["k1", "k2", "k1", "k2"] and group.lone == 1
    assert group.commits == 3  # k1 and k2 shared one commit
    assert ledger.balance("u") == 4
    _chain_ok(ledger, "u")


def test_a_refusal_decided_on_a_key_wrongly_presumed_new_is_surfaced(db) -> None:  # type: ignore[no-untyped-def]
    """A member that skipped its probe presumes a fresh key's record missing; another
    process created it. Its refusal, re-checked, finds that read changed and runs again:
    from a real read of the record this time, so the refusal is surfaced, not retried
    until the caller gets ``Transient``."""
    ledger, group = _ledger(db, base_delay_s=0, max_attempts=5)
    other = _elsewhere(db)
    db.collection("users").document("u").set({})
    _outcomes(group, "users/u", [_credit(ledger, "u", "k0", 1)])
    _outcomes(group, "users/u", [_credit(ledger, "u", "k1", 1)])  # probes read nothing now
    other.run(_credit(other, "u", "a", 30))  # unknown to the committer
    promo = db.collection("promotions").document("p")
    promo.set({"status": "PAUSED"})
    seen: list[bool] = []

    def refused(unit: Unit) -> None:
        record, state = unit.get_all([ledger.posting_ref(transaction_id_for("a")), promo])
        seen.append(record.exists)
        if state.get("status") != "ACTIVE":
            raise Conflict("the promotion is paused")

    with pytest.raises(Conflict):
        group.run("users/u", refused, new_keys=(POSTINGS_COLLECTION,))
    assert seen == [False, True]  # presumed, then read
