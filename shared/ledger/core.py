"""The pure rules of the credit ledger: integer credits, no I/O, no clock.

Vocabulary (after TigerBeetle): an *account* is a user's balance with two counters; a
*posting* moves credits into or out of it and is final; a *hold* is a posting out of the
account (RESERVE) that is later *settled* (the unused part comes back), *released* or
*expired* (all of it comes back); a *refund* is a new posting linked to its original,
never an edit of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.clock import ensure_utc
from shared.errors import Conflict, CreditsError, InsufficientCredits, InvalidInput, NotFound


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


@dataclass(frozen=True)
class OriginalView:
    """A posting about to be refunded, as a unit read it (``Ledger.read_original``)."""

    record: Mapping[str, Any]  #: its posting record, or one derived from its transaction
    recorded: bool  #: whether ``record`` is stored (else the refund creates it)
    #: credits refunded against it by linked REFUND transactions the ledger did not post
    #: (0 when the posting cannot be refunded at all: nothing was queried)
    linked_outside: int = 0

    @property
    def transaction_id(self) -> str:
        return str(self.record["transaction_id"])

    @property
    def kind(self) -> Kind:
        return Kind(self.record["kind"])

    @property
    def user_id(self) -> str:
        return str(self.record["user_id"])

    @property
    def amount(self) -> int:
        return int(self.record["amount"])

    @property
    def already(self) -> int:
        """Refunded so far, by the ledger and outside it."""
        return int(self.record.get("refunded_amount", 0)) + self.linked_outside


def refund_refusal(record: Mapping[str, Any]) -> InvalidInput | None:
    """Why a posting can never be refunded (a refund, an adjustment, a hold's
    reservation), or None: decided from the record alone, before anything else is read."""
    kind = Kind(record["kind"])
    if kind in {Kind.REFUND, Kind.ADJUSTMENT}:
        return InvalidInput(f"a {kind.value} transaction cannot be refunded")
    if record.get("hold_id"):
        return InvalidInput("a hold's reservation is returned by closing the hold")
    return None


def refundable_of(view: OriginalView) -> int:
    """What is still refundable of the original: 0 for one that cannot be refunded."""
    if refund_refusal(view.record) is not None:
        return 0
    return refundable(view.amount, view.already)


@dataclass(frozen=True)
class RefundDecision:
    """A refund to post: how much, the entry, and the original's new ``refunded_amount``."""

    wanted: int
    entry: Entry
    refunded_amount: int  #: the ledger's own refunds of the original, this one included


def decide_refund(
    view: OriginalView, account: Account | None, amount: int | None
) -> RefundDecision | CreditsError:
    """Decide (pure) a refund of ``amount`` (None: all that remains) of ``view``.

    ``account`` is None when the user document is missing. The refusals come in this
    order: an original that cannot be refunded, nothing left to refund, an unknown user,
    more than remains.
    """
    refusal = refund_refusal(view.record)
    if refusal is not None:
        return refusal
    remaining = refundable(view.amount, view.already)
    wanted = remaining if amount is None else amount
    if wanted == 0:
        return Conflict(f"transaction {view.transaction_id} is already fully refunded")
    if account is None:
        return NotFound(f"unknown user {view.user_id}", user_id=view.user_id)
    try:
        entry = plan_refund(account, view.kind, view.amount, view.already, wanted)
    except InvalidInput as error:
        return error
    return RefundDecision(
        wanted=wanted,
        entry=entry,
        refunded_amount=int(view.record.get("refunded_amount", 0)) + wanted,
    )


def expiry_refusal(hold: Mapping[str, Any] | None, hold_id: str, now: datetime) -> Conflict | None:
    """Why a hold cannot be expired at ``now``: its ``expires_at`` is still ahead. Checked
    before anything else of an expiry (a missing hold is ``decide_close``'s to refuse)."""
    if hold is None:
        return None
    expires_at = hold.get("expires_at")
    if expires_at is not None and ensure_utc(expires_at) > now:
        return Conflict(f"hold {hold_id} has not expired yet")
    return None


@dataclass(frozen=True)
class ClosePlan:
    """Closing a hold: what was held, what comes back, and whose it is."""

    held: int
    returned: int
    user_id: str
    reserve_transaction_id: str


def decide_close(
    hold: Mapping[str, Any] | None, hold_id: str, used: int
) -> ClosePlan | CreditsError:
    """Decide (pure) closing the hold (None: missing) with ``used`` of it consumed.

    The refusals come in this order: an unknown hold, a hold no longer PENDING, a ``used``
    that is not a whole number of credits or exceeds the hold.
    """
    if hold is None:
        return NotFound(f"unknown hold {hold_id}")
    if hold.get("status") != HoldStatus.PENDING.value:
        return Conflict(f"hold {hold_id} is already {str(hold.get('status')).lower()}")
    held = int(hold["amount"])
    try:
        returned = plan_settle(held, used)
    except InvalidInput as error:
        return error
    return ClosePlan(
        held=held,
        returned=returned,
        user_id=str(hold["user_id"]),
        reserve_transaction_id=str(hold["reserve_transaction_id"]),
    )
