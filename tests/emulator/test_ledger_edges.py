"""Regression tests for ledger edge cases: keys that cannot collide, refunds of refunds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.clock import FixedClock
from shared.ledger import KITESFORU, Kind, Ledger
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
