"""Property tests of the pure ledger rules: any sequence of operations keeps the invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shared.errors import InsufficientCredits, InvalidInput
from shared.ledger.core import (
    BOUGHT_KINDS,
    CREDIT_KINDS,
    DEBIT_KINDS,
    Account,
    Entry,
    Kind,
    check_amount,
    plan_adjustment,
    plan_credit,
    plan_debit,
    plan_refund,
    plan_settle,
)

amounts = st.integers(min_value=1, max_value=10_000)


class LedgerMachine(RuleBasedStateMachine):
    """A model account driven by random operations through the pure planners."""

    def __init__(self) -> None:
        super().__init__()
        self.account = Account()
        self.entries: list[Entry] = []
        # original index -> refunded so far
        self.refunded: dict[int, int] = {}
        self.holds: list[tuple[int, int]] = []  # (entry index, amount) still open

    def _apply(self, entry: Entry) -> int:
        assert entry.balance_after == self.account.balance + entry.amount
        self.account = entry.apply(self.account)
        self.entries.append(entry)
        return len(self.entries) - 1

    @rule(kind=st.sampled_from(sorted(CREDIT_KINDS)), amount=amounts)
    def credit(self, kind: Kind, amount: int) -> None:
        self._apply(plan_credit(self.account, kind, amount))

    @rule(amount=amounts, partial=st.booleans())
    def debit(self, amount: int, partial: bool) -> None:
        try:
            entry = plan_debit(self.account, Kind.DEDUCTION, amount, allow_partial=partial)
        except InsufficientCredits:
            assert not partial and amount > self.account.balance
            return
        assert entry.shortfall == amount + entry.amount
        self._apply(entry)

    @rule(amount=amounts)
    def hold(self, amount: int) -> None:
        try:
            entry = plan_debit(self.account, Kind.RESERVE, amount, allow_partial=False)
        except InsufficientCredits:
            return
        self.holds.append((self._apply(entry), amount))

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data())
    def settle(self, data: st.DataObject) -> None:
        index, held = self.holds.pop(data.draw(st.integers(0, len(self.holds) - 1)))
        used = data.draw(st.integers(0, held))
        back = plan_settle(held, used)
        if back:
            self._apply(plan_refund(self.account, Kind.RESERVE, -held, 0, back))
            self.refunded[index] = back

    @precondition(lambda self: bool(self.entries))
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.entries) - 1))
        original = self.entries[index]
        if original.kind in {Kind.REFUND, Kind.ADJUSTMENT} or original.amount == 0:
            return
        if any(index == i for i, _ in self.holds):
            return
        done = self.refunded.get(index, 0)
        amount = data.draw(st.integers(1, 10_000))
        try:
            entry = plan_refund(self.account, original.kind, original.amount, done, amount)
        except InvalidInput:
            assert amount > abs(original.amount) - done
            return
        self._apply(entry)
        self.refunded[index] = done + amount

    @rule(amount=st.integers(-10_000, 10_000).filter(bool))
    def adjust(self, amount: int) -> None:
        try:
            self._apply(plan_adjustment(self.account, amount))
        except InsufficientCredits:
            assert amount < 0 and -amount > self.account.balance

    @invariant()
    def balance_is_sum_of_entries(self) -> None:
        assert self.account.balance == sum(e.amount for e in self.entries)

    @invariant()
    def never_negative(self) -> None:
        assert self.account.balance >= 0
        assert all(e.balance_after >= 0 for e in self.entries)

    @invariant()
    def chain_links(self) -> None:
        running = 0
        for entry in self.entries:
            running += entry.amount
            assert entry.balance_after == running

    @invariant()
    def refunds_never_exceed_originals(self) -> None:
        for index, done in self.refunded.items():
            assert done <= abs(self.entries[index].amount)

    @invariant()
    def counters_follow_entries(self) -> None:
        assert self.account.used >= 0
        assert self.account.purchased >= 0
        debits = sum(-e.amount for e in self.entries if e.kind in DEBIT_KINDS)
        assert self.account.used <= debits
        bought = sum(e.amount for e in self.entries if e.kind in BOUGHT_KINDS)
        assert self.account.purchased <= bought


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10", None, True, 10**12])
def test_check_amount_rejects(bad: object) -> None:
    with pytest.raises(InvalidInput):
        check_amount(bad, 1_000_000_000)


@given(amounts)
def test_check_amount_accepts_whole_positive(amount: int) -> None:
    assert check_amount(amount, 1_000_000_000) == amount


def test_debit_without_partial_refuses_overdraft() -> None:
    with pytest.raises(InsufficientCredits):
        plan_debit(Account(balance=5), Kind.DEDUCTION, 6, allow_partial=False)


def test_partial_debit_takes_balance_to_zero_and_records_shortfall() -> None:
    entry = plan_debit(Account(balance=5), Kind.DEDUCTION, 8, allow_partial=True)
    assert (entry.amount, entry.balance_after, entry.shortfall, entry.used_delta) == (-5, 0, 3, 5)


def test_clawback_of_a_purchase_is_clamped_at_zero() -> None:
    entry = plan_refund(Account(balance=30, purchased=100), Kind.PURCHASE, 100, 0, 100)
    assert (entry.amount, entry.balance_after, entry.shortfall) == (-30, 0, 70)
    assert entry.purchased_delta == -30


def test_refund_of_a_debit_returns_credits_and_reduces_used() -> None:
    entry = plan_refund(Account(balance=0, used=30), Kind.DEDUCTION, -30, 10, 20)
    assert (entry.amount, entry.balance_after, entry.used_delta) == (20, 20, -20)
    with pytest.raises(InvalidInput):
        plan_refund(Account(balance=0, used=30), Kind.DEDUCTION, -30, 10, 21)


def test_settle_bounds() -> None:
    assert plan_settle(21, 15) == 6
    assert plan_settle(21, 21) == 0
    for bad in (-1, 22):
        with pytest.raises(InvalidInput):
            plan_settle(21, bad)
