"""Reconciliation: prove every balance from its transactions; report, never fix.

For each user: the balance equals the sum of the transaction amounts; the
``balance_after`` values form an unbroken chain in commit order starting from zero; no
balance is ever negative; every type is one the profile's seed allows. Transactions of a
user that does not exist are reported too.

Commit order is each transaction document's Firestore ``create_time`` (the commit time of
the batch that wrote it; transactions are never rewritten), which needs no field in the
seeds' documents. ``created_at`` is the writer's clock and may be older than the commit (a
sweep stamps its start time on every refund it writes); among transactions committed
together the chain is linked in whatever order links it, preferring ``created_at``.

Each run writes one ``ledger_reconciliations/{run_id}`` document and one error log line
per discrepancy.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.cloud import firestore

from shared.clock import ensure_utc
from shared.ledger.profiles import LedgerProfile
from shared.logs import get_logger, log

RECONCILIATIONS_COLLECTION = "ledger_reconciliations"
_MAX_STORED_DISCREPANCIES = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

logger = get_logger(__name__)


@dataclass(frozen=True)
class Discrepancy:
    """One thing that does not add up."""

    user_id: str
    problem: str  # balance_mismatch | broken_chain | negative_balance | unknown_type | ...
    detail: str
    transaction_id: str | None = None
    expected: int | None = None
    found: int | None = None


@dataclass
class Report:
    """The outcome of one reconciliation run."""

    run_id: str
    profile: str
    users_checked: int = 0
    transactions_checked: int = 0
    discrepancies: list[Discrepancy] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.discrepancies


@dataclass(frozen=True)
class _Tx:
    id: str
    type: str
    amount: int
    balance_after: int
    created_at: datetime
    committed_at: datetime


def _chain_order(txs: list[_Tx]) -> list[_Tx]:
    """Transactions in commit order; those committed together ordered so the chain links."""
    ordered: list[_Tx] = []
    running = 0
    by_time: dict[datetime, list[_Tx]] = defaultdict(list)
    for tx in txs:
        by_time[tx.committed_at].append(tx)
    for moment in sorted(by_time):
        # One commit can hold several postings of one account (a unit, a group commit, a
        # bulk import): the order that links the chain, preferring the writers' times.
        group = sorted(by_time[moment], key=lambda t: (t.created_at, t.id))
        while group:
            nxt = next((t for t in group if t.balance_after - t.amount == running), group[0])
            group.remove(nxt)
            ordered.append(nxt)
            running = nxt.balance_after
    return ordered


def check_user(
    profile: LedgerProfile, user_id: str, balance: int, txs: list[_Tx]
) -> list[Discrepancy]:
    """Every discrepancy of one user's account (pure)."""
    found: list[Discrepancy] = []
    total = sum(t.amount for t in txs)
    if total != balance:
        found.append(
            Discrepancy(
                user_id,
                "balance_mismatch",
                f"balance {balance} != sum of {len(txs)} transactions {total}",
                expected=total,
                found=balance,
            )
        )
    if balance < 0:
        found.append(Discrepancy(user_id, "negative_balance", f"balance is {balance}"))
    running = 0
    for tx in _chain_order(txs):
        if tx.type not in profile.kind_by_type:
            found.append(
                Discrepancy(user_id, "unknown_type", f"type {tx.type!r}", transaction_id=tx.id)
            )
        running += tx.amount
        if tx.balance_after != running:
            found.append(
                Discrepancy(
                    user_id,
                    "broken_chain",
                    f"balance_after {tx.balance_after}, expected {running}",
                    transaction_id=tx.id,
                    expected=running,
                    found=tx.balance_after,
                )
            )
            running = tx.balance_after
        if tx.balance_after < 0:
            found.append(
                Discrepancy(
                    user_id,
                    "negative_balance",
                    f"balance_after {tx.balance_after}",
                    transaction_id=tx.id,
                )
            )
    return found


def _tx_from(snap: firestore.DocumentSnapshot) -> _Tx:
    data = snap.to_dict() or {}
    created = data.get("created_at")
    created_at = ensure_utc(created) if isinstance(created, datetime) else _EPOCH
    committed = snap.create_time
    return _Tx(
        id=snap.id,
        type=str(data.get("type")),
        amount=int(data.get("amount") or 0),
        balance_after=int(data.get("balance_after") or 0),
        created_at=created_at,
        committed_at=ensure_utc(committed) if committed is not None else created_at,
    )


def reconcile(
    db: firestore.Client,
    profile: LedgerProfile,
    *,
    run_id: str,
    now: datetime,
    user_ids: list[str] | None = None,
) -> Report:
    """Reconcile the named users (or all), store the report and log each discrepancy."""
    users = db.collection(profile.users_collection)
    txs_coll = db.collection(profile.transactions_collection)
    report = Report(run_id=run_id, profile=profile.name)
    balances: dict[str, int] = {}
    by_user: dict[str, list[_Tx]] = defaultdict(list)
    tx_fields = ["user_id", "type", "amount", "balance_after", "created_at"]
    if user_ids is None:
        for snap in users.select([profile.balance_field]).stream():
            balances[snap.id] = int((snap.to_dict() or {}).get(profile.balance_field) or 0)
        for snap in txs_coll.select(tx_fields).stream():
            by_user[str((snap.to_dict() or {}).get("user_id"))].append(_tx_from(snap))
    else:
        for user_id in user_ids:
            snap = users.document(user_id).get()
            if snap.exists:
                balances[user_id] = int((snap.to_dict() or {}).get(profile.balance_field) or 0)
            query = txs_coll.where(filter=firestore.FieldFilter("user_id", "==", user_id))
            by_user[user_id] = [_tx_from(s) for s in query.select(tx_fields).stream()]
    for user_id in sorted(set(balances) | set(by_user)):
        txs = by_user.get(user_id, [])
        report.transactions_checked += len(txs)
        if user_id not in balances:
            if txs:
                report.discrepancies.append(
                    Discrepancy(
                        user_id, "unknown_user", f"{len(txs)} transactions of a missing user"
                    )
                )
            continue
        report.users_checked += 1
        report.discrepancies.extend(check_user(profile, user_id, balances[user_id], txs))
    for d in report.discrepancies:
        log(logger, logging.ERROR, "ledger discrepancy", run_id=run_id, **asdict(d))
    stored: dict[str, Any] = {
        "run_id": run_id,
        "profile": profile.name,
        "run_at": now,
        "scope": "all" if user_ids is None else "users",
        "users_checked": report.users_checked,
        "transactions_checked": report.transactions_checked,
        "discrepancy_count": len(report.discrepancies),
        "discrepancies": [asdict(d) for d in report.discrepancies[:_MAX_STORED_DISCREPANCIES]],
        "clean": report.clean,
    }
    db.collection(RECONCILIATIONS_COLLECTION).document(run_id).set(stored)
    log(
        logger,
        logging.INFO if report.clean else logging.ERROR,
        "reconciliation finished",
        run_id=run_id,
        users_checked=report.users_checked,
        discrepancy_count=len(report.discrepancies),
    )
    return report
