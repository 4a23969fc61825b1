"""The ledger on the real Firestore emulator, under both field-naming profiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.clock import FixedClock
from shared.errors import Conflict, InsufficientCredits, InvalidInput, NotFound
from shared.ledger import (
    BIGEYE,
    HOLDS_COLLECTION,
    KITESFORU,
    Kind,
    Ledger,
    LedgerProfile,
    Refs,
    TopupMeta,
    transaction_id_for,
)
from shared.ledger.reconcile import reconcile
from tests.helpers import all_documents

T0 = datetime(2026, 2, 8, 10, 0, tzinfo=UTC)

# Field names exactly as the seeds write them (000 and 004).
KITES_TX_FIELDS = {
    "user_id",
    "type",
    "amount",
    "balance_after",
    "job_id",
    "stripe_payment_intent_id",
    "subscription_id",
    "original_transaction_id",
    "refund_reason",
    "description",
    "created_at",
}
BIGEYE_TX_FIELDS = {
    "user_id",
    "type",
    "amount",
    "balance_after",
    "reference_id",
    "description",
    "created_at",
    "metadata",
}
BIGEYE_META_FIELDS = {"baht_amount", "slip_ref", "base_credits", "bonus_credits", "promo_id"}
KITES_TYPES = {"DEDUCTION", "REFUND", "PURCHASE", "SUBSCRIPTION_GRANT", "ADMIN_ADJUSTMENT"}
BIGEYE_TYPES = {"TOPUP", "RESERVE", "REFUND", "ADJUSTMENT", "BONUS"}


@pytest.fixture(params=[KITESFORU, BIGEYE], ids=lambda p: p.name)
def profile(request: pytest.FixtureRequest) -> LedgerProfile:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def ledger(db, profile: LedgerProfile, clock: FixedClock) -> Ledger:  # type: ignore[no-untyped-def]
    ledger = Ledger(db, profile, clock)
    for uid in ("alice", "bob"):
        db.collection("users").document(uid).set({"email": f"{uid}@example.com"})
    return ledger


def _tx(ledger: Ledger, tx_id: str | None) -> dict:
    assert tx_id is not None
    snap = ledger.transaction_ref(tx_id).get()
    assert snap.exists
    return snap.to_dict() or {}


def _user(ledger: Ledger, uid: str) -> dict:
    return ledger.user_ref(uid).get().to_dict() or {}


def _check_names(ledger: Ledger, tx: dict) -> None:
    if ledger.profile.name == "bigeye":
        assert set(tx) == BIGEYE_TX_FIELDS
        assert set(tx["metadata"]) == BIGEYE_META_FIELDS
        assert tx["type"] in BIGEYE_TYPES
    else:
        assert set(tx) <= KITES_TX_FIELDS
        assert {"user_id", "type", "amount", "balance_after", "description", "created_at"} <= set(
            tx
        )
        assert tx["type"] in KITES_TYPES


def test_every_operation_writes_exact_seed_names(ledger: Ledger, clock: FixedClock) -> None:
    p = ledger.profile
    r1 = ledger.run(
        lambda u: ledger.credit(
            u,
            user_id="alice",
            kind=Kind.TOPUP,
            amount=2200,
            key="slip:T1",
            description="Top-up 500 THB",
            refs=Refs(
                reference_id="slip-doc-1",
                topup=TopupMeta(500, "T1", 2000, 200, "promo-1"),
            ),
        )
    )
    clock.advance(timedelta(seconds=1))
    r2 = ledger.run(
        lambda u: ledger.debit(
            u, user_id="alice", amount=200, key="usage:r1", description="Generation"
        )
    )
    clock.advance(timedelta(seconds=1))
    r3 = ledger.run(
        lambda u: ledger.hold(
            u,
            user_id="alice",
            hold_id="job-1",
            amount=21,
            expires_at=T0 + timedelta(hours=1),
            description="Reserve job-1",
        )
    )
    clock.advance(timedelta(seconds=1))
    r4 = ledger.run(lambda u: ledger.settle(u, hold_id="job-1", used=15, description="Job done"))
    clock.advance(timedelta(seconds=1))
    r5 = ledger.run(
        lambda u: ledger.refund(
            u, original_transaction_id=r2.transaction_id, key="refund:r1", reason="bad output"
        )
    )
    clock.advance(timedelta(seconds=1))
    r6 = ledger.run(
        lambda u: ledger.adjust(
            u, user_id="alice", amount=-5, actor="admin-1", reason="goodwill undo", key="adj:1"
        )
    )
    clock.advance(timedelta(seconds=1))
    r7 = ledger.run(
        lambda u: ledger.credit(
            u, user_id="alice", kind=Kind.BONUS, amount=50, key="bonus:1", description="Welcome"
        )
    )
    balances = [r.balance_after for r in (r1, r2, r3, r4, r5, r6, r7)]
    assert balances == [2200, 2000, 1979, 1985, 2185, 2180, 2230]
    for r in (r1, r2, r3, r4, r5, r6, r7):
        _check_names(ledger, _tx(ledger, r.transaction_id))
    user = _user(ledger, "alice")
    assert user[p.balance_field] == 2230
    assert user["total_credits_used"] == 15  # 200 used then refunded, 21 held, 15 kept
    top = _tx(ledger, r1.transaction_id)
    refund = _tx(ledger, r5.transaction_id)
    if p.name == "bigeye":
        assert "credits_balance" not in user and "total_credits_purchased" not in user
        assert top["type"] == "TOPUP"
        assert top["metadata"] == {
            "baht_amount": 500,
            "slip_ref": "T1",
            "base_credits": 2000,
            "bonus_credits": 200,
            "promo_id": "promo-1",
        }
        assert top["reference_id"] == "slip-doc-1"
        assert _tx(ledger, r3.transaction_id)["type"] == "RESERVE"
        assert refund["reference_id"] == r2.transaction_id
        assert _tx(ledger, r6.transaction_id)["type"] == "ADJUSTMENT"
        assert _tx(ledger, r7.transaction_id)["type"] == "BONUS"
    else:
        assert "credits" not in user
        assert user["total_credits_purchased"] == 2200
        assert user["updated_at"] == T0 + timedelta(seconds=6)
        assert top["type"] == "PURCHASE"
        assert refund["original_transaction_id"] == r2.transaction_id
        assert refund["refund_reason"] == "bad output"
        assert _tx(ledger, r3.transaction_id)["job_id"] == "job-1"
        assert _tx(ledger, r6.transaction_id)["type"] == "ADMIN_ADJUSTMENT"
    report = reconcile(ledger.db, p, run_id="t", now=T0)
    assert report.clean, report.discrepancies
    assert report.transactions_checked == 7


def test_replay_returns_first_result_and_writes_nothing(ledger: Ledger) -> None:
    def credit(amount: int):  # type: ignore[no-untyped-def]
        return ledger.run(
            lambda u: ledger.credit(
                u, user_id="bob", kind=Kind.PURCHASE, amount=amount, key="k1", description="Pack"
            )
        )

    first = credit(100)
    before = all_documents(ledger.db)
    again = credit(100)
    assert again.replayed and not first.replayed
    assert again.transaction_id == first.transaction_id == transaction_id_for("k1")
    assert again.balance_after == 100
    assert all_documents(ledger.db) == before
    with pytest.raises(Conflict):
        credit(101)
    assert all_documents(ledger.db) == before


BAD_CREDITS = [
    ({"amount": 0}, InvalidInput),
    ({"amount": -5}, InvalidInput),
    ({"amount": 2.5}, InvalidInput),
    ({"amount": 10**15}, InvalidInput),
    ({"amount": True}, InvalidInput),
    ({"user_id": "ghost"}, NotFound),
    ({"user_id": ""}, InvalidInput),
    ({"user_id": "a/b"}, InvalidInput),
    ({"key": ""}, InvalidInput),
    ({"key": "x" * 600}, InvalidInput),
    ({"description": ""}, InvalidInput),
]


@pytest.mark.parametrize(("change", "error"), BAD_CREDITS)
def test_bad_credit_input_is_refused_without_writes(
    ledger: Ledger, change: dict, error: type[Exception]
) -> None:
    args = {"user_id": "alice", "amount": 10, "key": "k", "description": "d"} | change
    before = all_documents(ledger.db)
    with pytest.raises(error):
        ledger.run(lambda u: ledger.credit(u, kind=Kind.PURCHASE, **args))
    assert all_documents(ledger.db) == before


def test_overdraft_and_bad_adjustments_write_nothing(ledger: Ledger) -> None:
    before = all_documents(ledger.db)
    with pytest.raises(InsufficientCredits):
        ledger.run(lambda u: ledger.debit(u, user_id="alice", amount=1, key="d", description="x"))
    with pytest.raises(InsufficientCredits):
        ledger.run(
            lambda u: ledger.adjust(u, user_id="alice", amount=-1, actor="a", reason="r", key="a")
        )
    for missing in ({"actor": ""}, {"reason": " "}, {"amount": 0}):
        args = {"user_id": "alice", "amount": 5, "actor": "ops", "reason": "fix", "key": "a"}
        with pytest.raises(InvalidInput):
            ledger.run(lambda u, a=args | missing: ledger.adjust(u, **a))
    with pytest.raises(InsufficientCredits):
        ledger.run(
            lambda u: ledger.hold(
                u, user_id="alice", hold_id="h", amount=5, expires_at=T0, description="x"
            )
        )
    assert all_documents(ledger.db) == before


def test_partial_debit_records_the_shortfall(ledger: Ledger) -> None:
    ledger.run(
        lambda u: ledger.credit(
            u, user_id="alice", kind=Kind.PURCHASE, amount=3, key="c", description="Pack"
        )
    )
    result = ledger.run(
        lambda u: ledger.debit(
            u, user_id="alice", amount=10, key="use", description="Use", allow_partial=True
        )
    )
    assert (result.amount, result.balance_after, result.shortfall) == (-3, 0, 7)
    assert ledger.posting_ref(result.transaction_id).get().get("shortfall") == 7


def test_refund_never_exceeds_original_and_links_it(ledger: Ledger) -> None:
    ledger.run(
        lambda u: ledger.credit(
            u, user_id="alice", kind=Kind.PURCHASE, amount=100, key="c", description="Pack"
        )
    )
    debit = ledger.run(
        lambda u: ledger.debit(u, user_id="alice", amount=40, key="d", description="Use")
    )
    tx = debit.transaction_id
    ledger.run(
        lambda u: ledger.refund(
            u, original_transaction_id=tx, key="r1", reason="partial", amount=25
        )
    )
    with pytest.raises(InvalidInput):
        ledger.run(
            lambda u: ledger.refund(
                u, original_transaction_id=tx, key="r2", reason="too much", amount=16
            )
        )
    rest = ledger.run(
        lambda u: ledger.refund(u, original_transaction_id=tx, key="r3", reason="rest")
    )
    assert rest.amount == 15 and rest.balance_after == 100
    with pytest.raises(Conflict):
        ledger.run(lambda u: ledger.refund(u, original_transaction_id=tx, key="r4", reason="x"))
    with pytest.raises(NotFound):
        ledger.run(lambda u: ledger.refund(u, original_transaction_id="nope", key="r5", reason="x"))


def test_clawback_of_a_purchase_stops_at_zero(ledger: Ledger) -> None:
    purchase = ledger.run(
        lambda u: ledger.credit(
            u, user_id="alice", kind=Kind.PURCHASE, amount=100, key="c", description="Pack"
        )
    )
    ledger.run(lambda u: ledger.debit(u, user_id="alice", amount=80, key="d", description="Use"))
    back = ledger.run(
        lambda u: ledger.refund(
            u, original_transaction_id=purchase.transaction_id, key="cb", reason="charge refunded"
        )
    )
    assert (back.amount, back.balance_after, back.shortfall) == (-20, 0, 80)
    assert reconcile(ledger.db, ledger.profile, run_id="t", now=T0).clean


def test_refund_of_an_original_the_ledger_did_not_write(ledger: Ledger) -> None:
    """KitesForU's own API writes deductions; refunds still link and stay bounded."""
    p = ledger.profile
    ledger.user_ref("alice").update({p.balance_field: 70})
    ledger.transaction_ref("app-tx-1").set(
        {
            "user_id": "alice",
            "type": p.type_name(Kind.DEDUCTION),
            "amount": -30,
            "balance_after": 70,
            "description": "Podcast",
            "created_at": T0,
        }
    )
    ok = ledger.run(
        lambda u: ledger.refund(u, original_transaction_id="app-tx-1", key="r", reason="failed")
    )
    assert ok.amount == 30 and ok.balance_after == 100
    with pytest.raises(Conflict):
        ledger.run(
            lambda u: ledger.refund(u, original_transaction_id="app-tx-1", key="r2", reason="x")
        )


def test_hold_closes_exactly_once(ledger: Ledger, clock: FixedClock) -> None:
    ledger.run(
        lambda u: ledger.credit(
            u, user_id="alice", kind=Kind.PURCHASE, amount=50, key="c", description="Pack"
        )
    )
    ledger.run(
        lambda u: ledger.hold(
            u,
            user_id="alice",
            hold_id="j1",
            amount=21,
            expires_at=T0 + timedelta(minutes=5),
            description="Reserve",
        )
    )
    with pytest.raises(Conflict):  # not yet expired
        ledger.run(lambda u: ledger.expire(u, hold_id="j1"))
    settled = ledger.run(lambda u: ledger.settle(u, hold_id="j1", used=15, description="Done"))
    assert settled.amount == 6 and settled.balance_after == 35
    again = ledger.run(lambda u: ledger.settle(u, hold_id="j1", used=15, description="Done"))
    assert again.replayed and again.balance_after == 35
    with pytest.raises(Conflict):
        ledger.run(lambda u: ledger.settle(u, hold_id="j1", used=10, description="Other"))
    clock.advance(timedelta(hours=1))
    with pytest.raises(Conflict):
        ledger.run(lambda u: ledger.expire(u, hold_id="j1"))
    hold = ledger.db.collection(HOLDS_COLLECTION).document("j1").get().to_dict()
    assert hold["status"] == "SETTLED" and hold["returned_amount"] == 6
    # Expiry of a pending hold returns everything; refunding a hold's reserve is refused.
    reserve = ledger.run(
        lambda u: ledger.hold(
            u, user_id="alice", hold_id="j2", amount=10, expires_at=T0, description="Reserve"
        )
    )
    with pytest.raises(InvalidInput):
        ledger.run(
            lambda u: ledger.refund(
                u, original_transaction_id=reserve.transaction_id, key="x", reason="x"
            )
        )
    expired = ledger.run(lambda u: ledger.expire(u, hold_id="j2"))
    assert expired.amount == 10 and expired.hold_status.value == "EXPIRED"
    with pytest.raises(Conflict):
        ledger.run(lambda u: ledger.release(u, hold_id="j2", reason="late"))
    assert reconcile(ledger.db, ledger.profile, run_id="t", now=T0).clean


def test_reconciliation_reports_tampering(ledger: Ledger) -> None:
    p = ledger.profile
    first = ledger.run(
        lambda u: ledger.credit(
            u, user_id="alice", kind=Kind.PURCHASE, amount=100, key="c1", description="Pack"
        )
    )
    ledger.run(
        lambda u: ledger.credit(
            u, user_id="bob", kind=Kind.PURCHASE, amount=10, key="c2", description="Pack"
        )
    )
    ledger.user_ref("alice").update({p.balance_field: 150})
    ledger.transaction_ref(first.transaction_id).update({"balance_after": 99})
    ledger.transaction_ref("orphan").set(
        {
            "user_id": "ghost",
            "type": p.type_name(Kind.PURCHASE),
            "amount": 5,
            "balance_after": 5,
            "description": "x",
            "created_at": T0,
        }
    )
    report = reconcile(ledger.db, p, run_id="run-1", now=T0)
    problems = sorted((d.user_id, d.problem) for d in report.discrepancies)
    assert problems == [
        ("alice", "balance_mismatch"),
        ("alice", "broken_chain"),
        ("ghost", "unknown_user"),
    ]
    stored = ledger.db.collection("ledger_reconciliations").document("run-1").get().to_dict()
    assert stored["discrepancy_count"] == 3 and stored["clean"] is False
    # Reconciliation reports; it never changes a balance.
    assert _user(ledger, "alice")[p.balance_field] == 150
    single = reconcile(ledger.db, p, run_id="run-2", now=T0, user_ids=["bob"])
    assert single.clean and single.users_checked == 1
