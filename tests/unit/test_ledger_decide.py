"""Pure tests of the ledger's refund and close decisions (no emulator)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.errors import Conflict, InvalidInput, NotFound
from shared.ledger.core import (
    Account,
    ClosePlan,
    Kind,
    OriginalView,
    RefundDecision,
    decide_close,
    decide_refund,
    expiry_refusal,
    refund_refusal,
    refundable_of,
)


def _view(
    kind: Kind, amount: int, *, refunded: int = 0, outside: int = 0, **extra: Any
) -> OriginalView:
    record = {
        "transaction_id": "t1",
        "user_id": "alice",
        "kind": kind.value,
        "amount": amount,
        "refunded_amount": refunded,
        **extra,
    }
    return OriginalView(record, recorded=True, linked_outside=outside)


@pytest.mark.parametrize("kind", [Kind.REFUND, Kind.ADJUSTMENT])
def test_a_refund_or_adjustment_is_never_refundable(kind: Kind) -> None:
    view = _view(kind, 10)
    refusal = decide_refund(view, Account(balance=50), None)
    assert isinstance(refusal, InvalidInput)
    assert refusal.detail == f"a {kind.value} transaction cannot be refunded"
    assert refundable_of(view) == 0


def test_a_holds_reservation_is_returned_by_closing_the_hold() -> None:
    view = _view(Kind.RESERVE, -10, hold_id="h1")
    refusal = decide_refund(view, Account(balance=50), 5)
    assert isinstance(refusal, InvalidInput)
    assert refusal.detail == "a hold's reservation is returned by closing the hold"
    assert refund_refusal(view.record) is not None and refundable_of(view) == 0


def test_refunds_outside_the_ledger_count_as_refunded() -> None:
    view = _view(Kind.DEDUCTION, -40, refunded=5, outside=10)
    assert refundable_of(view) == 25
    decision = decide_refund(view, Account(balance=60, used=40), None)
    assert isinstance(decision, RefundDecision)
    assert decision.wanted == 25
    assert decision.refunded_amount == 30  # the ledger's own refunds only
    assert (decision.entry.amount, decision.entry.balance_after) == (25, 85)
    assert decision.entry.used_delta == -25


def test_nothing_left_is_a_conflict_before_the_user_is_needed() -> None:
    view = _view(Kind.DEDUCTION, -40, refunded=30, outside=10)
    refusal = decide_refund(view, None, None)
    assert isinstance(refusal, Conflict)
    assert refusal.detail == "transaction t1 is already fully refunded"


def test_an_unknown_user_comes_before_an_amount_too_large() -> None:
    view = _view(Kind.DEDUCTION, -40)
    refusal = decide_refund(view, None, 50)
    assert isinstance(refusal, NotFound) and refusal.detail == "unknown user alice"
    too_much = decide_refund(view, Account(balance=0), 50)
    assert isinstance(too_much, InvalidInput)
    assert too_much.detail == "refund of 50 exceeds what remains refundable (40)"


def test_a_credits_refund_claws_back_to_zero_with_a_shortfall() -> None:
    decision = decide_refund(_view(Kind.PURCHASE, 100), Account(balance=30, purchased=100), 60)
    assert isinstance(decision, RefundDecision)
    assert (decision.entry.amount, decision.entry.shortfall) == (-30, 30)
    assert decision.entry.purchased_delta == -30 and decision.refunded_amount == 60


T0 = datetime(2026, 2, 8, 10, 0, tzinfo=UTC)


def _hold(status: str = "PENDING", **extra: Any) -> dict[str, Any]:
    return {
        "user_id": "alice",
        "amount": 30,
        "status": status,
        "expires_at": T0,
        "reserve_transaction_id": "r1",
        **extra,
    }


def test_a_close_returns_what_was_not_used() -> None:
    plan = decide_close(_hold(), "h1", 12)
    assert plan == ClosePlan(held=30, returned=18, user_id="alice", reserve_transaction_id="r1")


def test_close_refusals_come_in_order() -> None:
    missing = decide_close(None, "h1", 99)
    assert isinstance(missing, NotFound) and missing.detail == "unknown hold h1"
    closed = decide_close(_hold("SETTLED"), "h1", 99)
    assert isinstance(closed, Conflict) and closed.detail == "hold h1 is already settled"
    too_much = decide_close(_hold(), "h1", 31)
    assert isinstance(too_much, InvalidInput)
    assert too_much.detail == "used (31) exceeds the hold (30)"
    negative = decide_close(_hold(), "h1", -1)
    assert isinstance(negative, InvalidInput)


def test_a_hold_expires_at_its_expires_at_not_before() -> None:
    early = expiry_refusal(_hold(), "h1", T0 - timedelta(seconds=1))
    assert isinstance(early, Conflict) and early.detail == "hold h1 has not expired yet"
    assert expiry_refusal(_hold(), "h1", T0) is None
    naive = _hold(expires_at=datetime(2026, 2, 8, 10, 0))  # taken as UTC
    assert expiry_refusal(naive, "h1", T0 - timedelta(seconds=1)) is not None
    assert expiry_refusal(_hold(expires_at=None), "h1", T0) is None
    # A missing hold, or one already closed, is decide_close's to refuse.
    assert expiry_refusal(None, "h1", T0) is None
    assert expiry_refusal(_hold("RELEASED"), "h1", T0 - timedelta(days=1)) is not None
