"""The pure rules of the credit ledger: integer credits, no I/O, no clock.

Vocabulary (after TigerBeetle): an *account* is a user's balance with two counters; a
*posting* moves credits into or out of it and is final; a *hold* is a posting out of the
account (RESERVE) that is later *settled* (the unused part comes back), *released* or
*expired* (all of it comes back); a *refund* is a new posting linked to its original,
never an edit of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.errors import InsufficientCredits, InvalidInput


class Kind(StrEnum):
    """What a posting is, independent of how a profile spells its ``type``."""

    PURCHASE = "PURCHASE"
    TOPUP = "TOPUP"
    SUBSCRIPTION_GRANT = "SUBSCRIPTION_GRANT"
    BONUS = "BONUS"
    DEDUCTION = "DEDUCTION"
    RESERVE = "RESERVE"
    REFUND = "REFUND"
    ADJUSTMENT = "ADJUSTMENT"


CREDIT_KINDS = frozenset({Kind.PURCHASE, Kind.TOPUP, Kind.SUBSCRIPTION_GRANT, Kind.BONUS})
DEBIT_KINDS = frozenset({Kind.DEDUCTION, Kind.RESERVE})
BOUGHT_KINDS = frozenset({Kind.PURCHASE, Kind.TOPUP})


class HoldStatus(StrEnum):
    """Life of a hold: PENDING until exactly one of the closing outcomes wins."""

    PENDING = "PENDING"
    SETTLED = "SETTLED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True)
class Account:
    """A user's balance and counters as stored."""

    balance: int = 0
    used: int = 0
    purchased: int = 0


@dataclass(frozen=True)
class Entry:
    """What one posting does to an account."""

    kind: Kind
    amount: int  # signed: what the balance actually moved
    balance_after: int
    used_delta: int = 0
    purchased_delta: int = 0
    shortfall: int = 0  # credits asked for but not there (only where allowed)

    def apply(self, account: Account) -> Account:
        """The account after this entry."""
        return Account(
            balance=self.balance_after,
            used=account.used + self.used_delta,
            purchased=account.purchased + self.purchased_delta,
        )


def check_amount(amount: object, max_amount: int, *, name: str = "amount") -> int:
    """A positive whole number of credits not above ``max_amount``, or InvalidInput."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInput(f"{name} must be a whole number of credits")
    if amount <= 0:
        raise InvalidInput(f"{name} must be greater than zero")
    if amount > max_amount:
        raise InvalidInput(f"{name} must not exceed {max_amount}")
    return amount


#: The kinds each one-way operation may post.
KINDS_OF = {"credit": CREDIT_KINDS, "debit": DEBIT_KINDS}


def check_kind(kind: Kind, op: str) -> Kind:
    """``kind`` if ``op`` (``credit`` or ``debit``) may post it, else InvalidInput."""
    if kind not in KINDS_OF[op]:
        raise InvalidInput(f"{kind} is not a {op}")
    return kind


def plan_credit(account: Account, kind: Kind, amount: int) -> Entry:
    """Credits coming in (purchase, top-up, subscription grant, bonus)."""
    check_kind(kind, "credit")
    return Entry(
        kind=kind,
        amount=amount,
        balance_after=account.balance + amount,
        purchased_delta=amount if kind in BOUGHT_KINDS else 0,
    )


def plan_debit(account: Account, kind: Kind, amount: int, *, allow_partial: bool) -> Entry:
    """Credits going out; never below zero. ``allow_partial`` takes what is there."""
    check_kind(kind, "debit")
    if amount > account.balance and not allow_partial:
        raise InsufficientCredits("Insufficient credits", needed=amount, available=account.balance)
    applied = min(amount, account.balance)
    return Entry(
        kind=kind,
        amount=-applied,
        balance_after=account.balance - applied,
        used_delta=applied,
        shortfall=amount - applied,
    )


def refundable(original_amount: int, refunded_so_far: int) -> int:
    """How much of an original posting can still be refunded."""
    return max(0, abs(original_amount) - refunded_so_far)


def plan_refund(
    account: Account,
    original_kind: Kind,
    original_amount: int,
    refunded_so_far: int,
    amount: int,
) -> Entry:
    """A refund linked to an original posting, never more than the original in total.

    A debit's refund gives credits back. A credit's refund (a payment refunded or
    disputed) claws credits back, but never below zero: what is missing is the shortfall.
    """
    remaining = refundable(original_amount, refunded_so_far)
    if amount > remaining:
        raise InvalidInput(
            f"refund of {amount} exceeds what remains refundable ({remaining})",
            remaining=remaining,
        )
    if original_amount < 0:
        return Entry(
            kind=Kind.REFUND,
            amount=amount,
            balance_after=account.balance + amount,
            used_delta=-amount if original_kind in DEBIT_KINDS else 0,
        )
    applied = min(amount, account.balance)
    return Entry(
        kind=Kind.REFUND,
        amount=-applied,
        balance_after=account.balance - applied,
        purchased_delta=-applied if original_kind in BOUGHT_KINDS else 0,
        shortfall=amount - applied,
    )


def plan_adjustment(account: Account, amount: int) -> Entry:
    """An operator's correction of either sign; a negative one cannot overdraw."""
    if amount < 0 and -amount > account.balance:
        raise InsufficientCredits("Insufficient credits", needed=-amount, available=account.balance)
    return Entry(kind=Kind.ADJUSTMENT, amount=amount, balance_after=account.balance + amount)


def plan_settle(hold_amount: int, used: int) -> int:
    """The part of a hold that comes back when ``used`` of it was consumed."""
    if isinstance(used, bool) or not isinstance(used, int) or used < 0:
        raise InvalidInput("used must be a whole number of credits, zero or more")
    if used > hold_amount:
        raise InvalidInput(f"used ({used}) exceeds the hold ({hold_amount})")
    return hold_amount - used
