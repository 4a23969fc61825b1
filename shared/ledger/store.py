"""The credit ledger on Firestore: the one module every function moves credits through.

Each operation runs inside a ``Unit`` (see ``shared.atomic``) so that the balance, the
transaction document, the idempotency record, the hold and the counters change together
or not at all, and so that callers can add their own writes to the same atomic commit.

Idempotency: every posting has a key derived from its cause (``stripe:{event_id}``,
``usage:{request_id}``, ``hold:{job_token}``...). The transaction id is ``uuid5(key)``, and
``ledger_postings/{transaction_id}`` records the key, a fingerprint of the posting's
content and its result. A replay with the same content returns the first result and
writes nothing; the same key with other content raises ``Conflict``.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from google.cloud import firestore

from shared.atomic import Unit, run_atomically
from shared.clock import Clock, ensure_utc
from shared.errors import Conflict, CreditsError, InvalidInput, NotFound
from shared.ledger.core import (
    Account,
    Entry,
    HoldStatus,
    Kind,
    OriginalView,
    check_amount,
    check_kind,
    decide_close,
    decide_refund,
    expiry_refusal,
    plan_adjustment,
    plan_credit,
    plan_debit,
    plan_refund,
    refund_refusal,
    refundable_of,
)
from shared.ledger.keys import posting_key
from shared.ledger.profiles import LedgerProfile, Refs

if TYPE_CHECKING:
    from shared.groupcommit import GroupCommitter

T = TypeVar("T")

POSTINGS_COLLECTION = "ledger_postings"
HOLDS_COLLECTION = "credit_holds"
_NAMESPACE = uuid.UUID("6f1c2a3e-8d4b-5e7f-9a0b-1c2d3e4f5a6b")
_ID_RE = re.compile(r"^[^/\x00]{1,700}$")
_MAX_KEY_LENGTH = 500
_MAX_TEXT_LENGTH = 1000


def transaction_id_for(key: str) -> str:
    """The deterministic transaction id of the posting with idempotency key ``key``."""
    return str(uuid.uuid5(_NAMESPACE, key))


def _check_id(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} is required")
    if not _ID_RE.match(value) or value in {".", ".."} or value.startswith("__"):
        raise InvalidInput(f"{name} is not a valid document id")
    return value


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key.strip():
        raise InvalidInput("an idempotency key is required")
    if len(key) > _MAX_KEY_LENGTH:
        raise InvalidInput(f"the idempotency key is longer than {_MAX_KEY_LENGTH}")
    return key


def _check_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} is required")
    if len(value) > _MAX_TEXT_LENGTH:
        raise InvalidInput(f"{name} is longer than {_MAX_TEXT_LENGTH} characters")
    return value.strip()


def _fingerprint(content: dict[str, Any]) -> str:
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class PostingResult:
    """What a ledger operation did (or, on a replay, what it did the first time)."""

    user_id: str
    transaction_id: str | None
    kind: Kind | None
    amount: int
    balance_after: int
    shortfall: int = 0
    replayed: bool = False
    hold_status: HoldStatus | None = None

    @classmethod
    def from_record(cls, rec: dict[str, Any], *, replayed: bool) -> PostingResult:
        status = rec.get("hold_status")
        return cls(
            user_id=rec["user_id"],
            transaction_id=rec.get("transaction_id"),
            kind=Kind(rec["kind"]) if rec.get("kind") else None,
            amount=int(rec.get("amount", 0)),
            balance_after=int(rec.get("balance_after", 0)),
            shortfall=int(rec.get("shortfall", 0)),
            replayed=replayed,
            hold_status=HoldStatus(status) if status else None,
        )


class Ledger:
    """Postings, holds, refunds and adjustments under one schema profile."""

    def __init__(
        self,
        db: firestore.Client,
        profile: LedgerProfile,
        clock: Clock,
        *,
        max_amount: int = 1_000_000_000,
        max_attempts: int = 60,
        group: GroupCommitter | None = None,
    ) -> None:
        self.db = db
        self.profile = profile
        self.clock = clock
        self.max_amount = max_amount
        self.max_attempts = max_attempts
        #: Group commit of one account's concurrent postings (None: one commit each).
        self.group = group

    # -- references ----------------------------------------------------------------------
    def user_ref(self, user_id: str) -> firestore.DocumentReference:
        return self.db.collection(self.profile.users_collection).document(user_id)

    def transaction_ref(self, transaction_id: str) -> firestore.DocumentReference:
        return self.db.collection(self.profile.transactions_collection).document(transaction_id)

    def posting_ref(self, transaction_id: str) -> firestore.DocumentReference:
        return self.db.collection(POSTINGS_COLLECTION).document(transaction_id)

    def hold_ref(self, hold_id: str) -> firestore.DocumentReference:
        return self.db.collection(HOLDS_COLLECTION).document(hold_id)

    def run(
        self,
        work: Callable[[Unit], T],
        *,
        account: str | None = None,
        now: datetime | None = None,
    ) -> T:
        """Run ``work`` as one atomic unit, retried on contention.

        ``account``: the user whose balance ``work`` moves. With group commit on, ``work``
        then joins that account's next batch (``shared.groupcommit``): it still commits
        atomically with all its writes, and gets its own result or exception. Posting
        records are keyed by a posting's idempotency key, read only to be created when
        missing: the batch presumes them new, and their create proves it.
        ``now``: the service's time, which the unit's postings carry too (``Unit.now``).
        """
        at = ensure_utc(now) if now is not None else None
        if account is not None and self.group is not None:
            group_key = f"{self.profile.users_collection}/{account}"
            if at is None:
                return self.group.run(group_key, work, new_keys=(POSTINGS_COLLECTION,))

            def timed(unit: Unit) -> T:
                unit.now = at
                return work(unit)

            return self.group.run(group_key, timed, new_keys=(POSTINGS_COLLECTION,))
        return run_atomically(self.db, work, max_attempts=self.max_attempts, now=at)

    def now(self, unit: Unit) -> datetime:
        """The unit's one instant: the service's ``now``, else this clock read once."""
        if unit.now is None:
            unit.now = ensure_utc(self.clock.now())
        return unit.now

    # -- reading -------------------------------------------------------------------------
    def account(self, unit: Unit, user_id: str) -> Account:
        """The user's account as this unit sees it (including its own earlier postings)."""
        pending: dict[str, Account] = unit.scratch.setdefault("ledger_accounts", {})
        if user_id in pending:
            return pending[user_id]
        snap = unit.get(self.user_ref(user_id))
        if not snap.exists:
            raise NotFound(f"unknown user {user_id}", user_id=user_id)
        data = snap.to_dict() or {}
        p = self.profile
        return Account(
            balance=int(data.get(p.balance_field) or 0),
            used=int(data.get(p.used_field) or 0),
            purchased=int(data.get(p.purchased_field) or 0) if p.purchased_field else 0,
        )

    def balance(self, user_id: str) -> int:
        """The user's current balance (one read)."""
        snap = self.user_ref(_check_id(user_id, "user_id")).get()
        if not snap.exists:
            raise NotFound(f"unknown user {user_id}", user_id=user_id)
        return int((snap.to_dict() or {}).get(self.profile.balance_field) or 0)

    def posted(self, unit: Unit, key: str) -> PostingResult | None:
        """What the posting with idempotency key ``key`` did, if it was made."""
        snap = unit.get(self.posting_ref(transaction_id_for(_check_key(key))))
        return (
            PostingResult.from_record(snap.to_dict() or {}, replayed=True) if snap.exists else None
        )

    def _replay(
        self,
        unit: Unit,
        key: str,
        content: dict[str, Any],
        *also: firestore.DocumentReference,
    ) -> PostingResult | None:
        """The first result of ``key``, if any; ``also``: read in the same round trip."""
        snap = unit.get_all([self.posting_ref(transaction_id_for(key)), *also])[0]
        if not snap.exists:
            return None
        rec = snap.to_dict() or {}
        if rec.get("fingerprint") != _fingerprint(content):
            raise Conflict(
                "this idempotency key was already used for a different operation", key=key
            )
        return PostingResult.from_record(rec, replayed=True)

    def _operate(
        self,
        unit: Unit,
        *,
        op: str,
        user_id: str,
        key: str,
        fields: dict[str, Any],
        plan: Callable[[Account], Entry],
        description: str,
        refs: Refs,
        record_extra: dict[str, Any] | None = None,
    ) -> PostingResult:
        """The shape of a one-account posting ``op`` whose own input (``fields``, checked
        by the caller) is valid: check the user id and key, then the first result when
        ``key`` was used (replay), else read the account, ``plan`` the entry (pure) and
        post it. ``fields`` are what a replay must repeat (its fingerprint)."""
        user_id = _check_id(user_id, "user_id")
        key = _check_key(key)
        content = {"op": op, "user_id": user_id, **fields}
        replay = self._replay(unit, key, content, self.user_ref(user_id))
        if replay is not None:
            return replay
        account = self.account(unit, user_id)
        return self._post(
            unit,
            key=key,
            content=content,
            user_id=user_id,
            account=account,
            entry=plan(account),
            description=description,
            refs=refs,
            record_extra=record_extra,
        )

    # -- writing -------------------------------------------------------------------------
    def _post(
        self,
        unit: Unit,
        *,
        key: str,
        content: dict[str, Any],
        user_id: str,
        account: Account,
        entry: Entry | None,
        description: str,
        refs: Refs,
        record_extra: dict[str, Any] | None = None,
    ) -> PostingResult:
        """Write one posting: user counters, transaction document and posting record."""
        now = self.now(unit)
        tx_id = transaction_id_for(key)
        written_tx: str | None = None
        if entry is not None:
            p = self.profile
            new = entry.apply(account)
            fields: dict[str, Any] = {p.balance_field: new.balance, p.used_field: new.used}
            if p.purchased_field:
                fields[p.purchased_field] = new.purchased
            if p.updated_at_field:
                fields[p.updated_at_field] = now
            unit.update(self.user_ref(user_id), fields)
            unit.scratch.setdefault("ledger_accounts", {})[user_id] = new
            unit.create(
                self.transaction_ref(tx_id),
                p.transaction_doc(
                    user_id=user_id,
                    kind=entry.kind,
                    amount=entry.amount,
                    balance_after=entry.balance_after,
                    description=description,
                    created_at=now,
                    refs=refs,
                ),
            )
            written_tx = tx_id
        record: dict[str, Any] = {
            "key": key,
            "fingerprint": _fingerprint(content),
            "operation": content["op"],
            "user_id": user_id,
            "kind": entry.kind.value if entry else None,
            "type": self.profile.type_name(entry.kind) if entry else None,
            "amount": entry.amount if entry else 0,
            "balance_after": entry.balance_after if entry else account.balance,
            "shortfall": entry.shortfall if entry else 0,
            "transaction_id": written_tx,
            "refunded_amount": 0,
            "profile": self.profile.name,
            "created_at": now,
        }
        record.update(record_extra or {})
        unit.create(self.posting_ref(tx_id), record)
        return PostingResult.from_record(record, replayed=False)

    def credit(
        self,
        unit: Unit,
        *,
        user_id: str,
        kind: Kind,
        amount: int,
        key: str,
        description: str,
        refs: Refs = Refs(),
    ) -> PostingResult:
        """Credits in: PURCHASE, TOPUP, SUBSCRIPTION_GRANT or BONUS."""
        return self._move(
            unit,
            "credit",
            kind,
            amount,
            lambda account, checked: plan_credit(account, kind, checked),
            user_id=user_id,
            key=key,
            description=description,
            refs=refs,
        )

    def debit(
        self,
        unit: Unit,
        *,
        user_id: str,
        amount: int,
        key: str,
        description: str,
        refs: Refs = Refs(),
        kind: Kind = Kind.DEDUCTION,
        allow_partial: bool = False,
    ) -> PostingResult:
        """Credits out, never below zero (``allow_partial``: take what is there)."""
        return self._move(
            unit,
            "debit",
            kind,
            amount,
            lambda account, checked: plan_debit(
                account, kind, checked, allow_partial=allow_partial
            ),
            user_id=user_id,
            key=key,
            description=description,
            refs=refs,
            fields={"allow_partial": allow_partial},
            requested=True,
        )

    def _move(
        self,
        unit: Unit,
        op: str,
        kind: Kind,
        amount: int,
        plan: Callable[[Account, int], Entry],
        *,
        user_id: str,
        key: str,
        description: str,
        refs: Refs,
        fields: dict[str, Any] | None = None,
        requested: bool = False,
    ) -> PostingResult:
        """A credit or a debit (``op``): its kind and amount checked, then ``_operate`` with
        ``plan(account, amount)``; ``fields`` join the fingerprint, ``requested`` records
        the amount asked for (a partial debit may take less)."""
        check_kind(kind, op)
        amount = check_amount(amount, self.max_amount)
        return self._operate(
            unit,
            op=op,
            user_id=user_id,
            key=key,
            fields={
                "kind": kind.value,
                "amount": amount,
                **(fields or {}),
                "refs": refs.fingerprint_fields(),
            },
            plan=lambda account: plan(account, amount),
            description=_check_text(description, "description"),
            refs=refs,
            record_extra={"requested_amount": amount} if requested else None,
        )

    def adjust(
        self, unit: Unit, *, user_id: str, amount: int, actor: str, reason: str, key: str
    ) -> PostingResult:
        """An operator's correction of either sign; actor and reason are required."""
        actor = _check_text(actor, "actor")
        reason = _check_text(reason, "reason")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
            raise InvalidInput("amount must be a non-zero whole number of credits")
        check_amount(abs(amount), self.max_amount)
        return self._operate(
            unit,
            op="adjust",
            user_id=user_id,
            key=key,
            fields={"amount": amount, "actor": actor},
            plan=lambda account: plan_adjustment(account, amount),
            description=f"Adjustment by {actor}: {reason}",
            refs=Refs(),
            record_extra={"actor": actor, "reason": reason},
        )

    # -- refunds -------------------------------------------------------------------------
    def _original_record(
        self, transaction_id: str, rec_snap: Any, tx_snap: Any
    ) -> tuple[dict[str, Any], bool]:
        """The original posting's record, or one derived from its transaction document."""
        if rec_snap.exists and (rec_snap.to_dict() or {}).get("transaction_id"):
            return rec_snap.to_dict() or {}, True
        if not tx_snap.exists:
            raise NotFound(f"unknown transaction {transaction_id}")
        tx = tx_snap.to_dict() or {}
        try:
            kind = self.profile.kind_of(str(tx.get("type")))
        except ValueError:
            raise InvalidInput(f"transaction {transaction_id} has an unknown type") from None
        return {
            "key": None,
            "operation": "external",
            "user_id": tx.get("user_id"),
            "kind": kind.value,
            "type": tx.get("type"),
            "amount": int(tx.get("amount") or 0),
            "transaction_id": transaction_id,
            "refunded_amount": 0,
            "profile": self.profile.name,
        }, False

    def original_refs(self, transaction_id: str) -> list[firestore.DocumentReference]:
        """What ``read_original`` reads first: a caller may batch them with its own reads."""
        return [self.posting_ref(transaction_id), self.transaction_ref(transaction_id)]

    def read_original(self, unit: Unit, transaction_id: str) -> OriginalView:
        """Read: the original posting and, when it can be refunded at all, what linked
        refunds the ledger did not post gave back of it (``_refunded_outside``)."""
        original_id = _check_id(transaction_id, "original_transaction_id")
        record, recorded = self._original_record(
            original_id, *unit.get_all(self.original_refs(original_id))
        )
        if refund_refusal(record) is not None:
            return OriginalView(record, recorded)
        outside = self._refunded_outside(unit, original_id, str(record["user_id"]))
        return OriginalView(record, recorded, outside)

    def _refunded_outside(self, unit: Unit, original_id: str, user_id: str) -> int:
        """Credits refunded against ``original_id`` by REFUND transactions the ledger did
        not post (an app writing its own linked refunds): they count as refunded too.

        Queried through ``unit`` after the unit read the user document: a linked refund
        committed later (a phantom) gave credits back, so it changed that balance, and the
        refund being posted, which writes it under its read precondition, fails its
        commit and re-runs from a query that finds it. (A refund the ledger posts also
        rewrites the original's posting record, which this refund writes too.)
        """
        unit.get(self.user_ref(user_id))  # the phantom guard: read before the query
        link = "reference_id" if self.profile.name == "bigeye" else "original_transaction_id"
        query = self.db.collection(self.profile.transactions_collection).where(
            filter=firestore.FieldFilter(link, "==", original_id)
        )
        refund_type = self.profile.type_name(Kind.REFUND)
        linked = {
            snap.id: abs(int((snap.to_dict() or {}).get("amount") or 0))
            for snap in unit.query(query)
            if (snap.to_dict() or {}).get("type") == refund_type
            and (snap.to_dict() or {}).get("user_id") == user_id
        }
        if not linked:
            return 0
        ours = unit.get_all([self.posting_ref(tx_id) for tx_id in sorted(linked)])
        return sum(linked[snap.id] for snap in ours if not snap.exists)

    def refundable(
        self, unit: Unit, original_transaction_id: str, *, view: OriginalView | None = None
    ) -> int:
        """How much of a transaction can still be refunded, counting every linked refund.

        ``view``: the original as this unit already read it (``read_original``).
        """
        if view is None:
            view = self.read_original(unit, original_transaction_id)
        return refundable_of(view)

    def refund(
        self,
        unit: Unit,
        *,
        original_transaction_id: str,
        key: str,
        reason: str,
        amount: int | None = None,
        description: str | None = None,
        refs: Refs = Refs(),
        view: OriginalView | None = None,
    ) -> PostingResult:
        """A refund linked to its original; never more than the original in total.

        Refunding a debit gives credits back; refunding a credit (a payment refunded or
        disputed) claws them back down to zero at most, recording the shortfall.
        ``amount=None`` refunds all that remains. ``view``: the original as this unit
        already read it (``read_original``), so that it is not read again.
        The unit reads (``read_original``, then the account), decides
        (``core.decide_refund``, pure), then applies.
        """
        original_id = _check_id(original_transaction_id, "original_transaction_id")
        key = _check_key(key)
        reason = _check_text(reason, "reason")
        if amount is not None:
            amount = check_amount(amount, self.max_amount)
        content = {
            "op": "refund",
            "original_transaction_id": original_id,
            "amount": amount,
        }
        replay = self._replay(unit, key, content)
        if replay is not None:
            return replay
        if view is None or view.transaction_id != original_id:
            view = self.read_original(unit, original_id)
        account: Account | None = None
        if refund_refusal(view.record) is None:
            try:
                account = self.account(unit, view.user_id)
            except NotFound:
                account = None
        decision = decide_refund(view, account, amount)
        if isinstance(decision, CreditsError):
            raise decision
        assert account is not None  # decide_refund refuses an unknown user
        user_id = view.user_id
        if view.recorded:
            unit.update(
                self.posting_ref(original_id), {"refunded_amount": decision.refunded_amount}
            )
        else:
            original = dict(view.record)
            original["refunded_amount"] = decision.refunded_amount
            original["created_at"] = self.now(unit)
            unit.create(self.posting_ref(original_id), original)
        link = Refs(
            job_id=refs.job_id,
            stripe_payment_intent_id=refs.stripe_payment_intent_id,
            subscription_id=refs.subscription_id,
            original_transaction_id=original_id,
            refund_reason=reason,
            reference_id=refs.reference_id or original_id,
        )
        return self._post(
            unit,
            key=key,
            content=content,
            user_id=user_id,
            account=account,
            entry=decision.entry,
            description=description or f"Refund: {reason}",
            refs=link,
            record_extra={
                "original_transaction_id": original_id,
                "requested_amount": decision.wanted,
                "reason": reason,
            },
        )

    # -- holds ---------------------------------------------------------------------------
    def hold(
        self,
        unit: Unit,
        *,
        user_id: str,
        hold_id: str,
        amount: int,
        expires_at: datetime,
        description: str,
        refs: Refs = Refs(),
    ) -> PostingResult:
        """Reserve credits (a RESERVE posting) until settled, released or expired."""
        user_id = _check_id(user_id, "user_id")
        hold_id = _check_id(hold_id, "hold_id")
        amount = check_amount(amount, self.max_amount)
        key = posting_key("hold", hold_id)
        content = {"op": "hold", "user_id": user_id, "hold_id": hold_id, "amount": amount}
        replay = self._replay(unit, key, content, self.user_ref(user_id), self.hold_ref(hold_id))
        if replay is not None:
            return replay
        hold_ref = self.hold_ref(hold_id)
        if unit.get(hold_ref).exists:
            raise Conflict(f"hold {hold_id} already exists")
        account = self.account(unit, user_id)
        entry = plan_debit(account, Kind.RESERVE, amount, allow_partial=False)
        now = self.now(unit)
        result = self._post(
            unit,
            key=key,
            content=content,
            user_id=user_id,
            account=account,
            entry=entry,
            description=_check_text(description, "description"),
            refs=Refs(
                job_id=refs.job_id or hold_id,
                reference_id=refs.reference_id or hold_id,
                subscription_id=refs.subscription_id,
            ),
            record_extra={"hold_id": hold_id, "hold_status": HoldStatus.PENDING.value},
        )
        unit.create(
            hold_ref,
            {
                "user_id": user_id,
                "amount": amount,
                "status": HoldStatus.PENDING.value,
                "expires_at": ensure_utc(expires_at),
                "created_at": now,
                "reserve_transaction_id": result.transaction_id,
                # What the hold pays for; its closing REFUND carries the same references.
                "job_id": refs.job_id or hold_id,
                "reference_id": refs.reference_id or hold_id,
                "used_amount": None,
                "returned_amount": None,
                "closed_at": None,
                "close_transaction_id": None,
            },
        )
        return result

    def _close(
        self,
        unit: Unit,
        *,
        hold_id: str,
        status: HoldStatus,
        used: int,
        content: dict[str, Any],
        description: str,
        reason: str,
        expiring: bool = False,
    ) -> PostingResult:
        """Read the hold (with the close's record), decide (``core.expiry_refusal`` for an
        expiry, then ``core.decide_close``, pure), then post and write the hold."""
        hold_id = _check_id(hold_id, "hold_id")
        key = posting_key("hold", hold_id, "close")
        hold_ref = self.hold_ref(hold_id)
        # The close's own record and the hold, in one round trip.
        hold_snap = unit.get_all([self.posting_ref(transaction_id_for(key)), hold_ref])[1]
        hold = (hold_snap.to_dict() or {}) if hold_snap.exists else None
        if expiring:
            refusal = expiry_refusal(hold, hold_id, self.now(unit))
            if refusal is not None:
                raise refusal
        replay = self._replay(unit, key, content)
        if replay is not None:
            return replay
        decision = decide_close(hold, hold_id, used)
        if isinstance(decision, CreditsError):
            raise decision
        assert hold is not None  # decide_close refuses a missing hold
        returned = decision.returned
        now = self.now(unit)
        user_id = decision.user_id
        account = self.account(unit, user_id)
        reserve_id = decision.reserve_transaction_id
        entry: Entry | None = None
        if returned > 0:
            entry = plan_refund(account, Kind.RESERVE, -decision.held, 0, returned)
            unit.update(self.posting_ref(reserve_id), {"refunded_amount": returned})
        else:
            # Nothing comes back, so the user document is not written; the balance this
            # close reports must still be the one at its commit: verify it.
            unit.verify(self.user_ref(user_id))
        result = self._post(
            unit,
            key=key,
            content=content,
            user_id=user_id,
            account=account,
            entry=entry,
            description=description,
            refs=Refs(
                job_id=str(hold.get("job_id") or hold_id),
                reference_id=str(hold.get("reference_id") or hold_id),
                original_transaction_id=reserve_id,
                refund_reason=reason,
            ),
            record_extra={
                "hold_id": hold_id,
                "hold_status": status.value,
                "original_transaction_id": reserve_id,
                "reason": reason,
            },
        )
        unit.update(
            hold_ref,
            {
                "status": status.value,
                "used_amount": used,
                "returned_amount": returned,
                "closed_at": now,
                "close_transaction_id": result.transaction_id,
            },
        )
        return result

    def settle(self, unit: Unit, *, hold_id: str, used: int, description: str) -> PostingResult:
        """Close a hold having consumed ``used`` of it; the rest comes back (REFUND)."""
        return self._close(
            unit,
            hold_id=hold_id,
            status=HoldStatus.SETTLED,
            used=used,
            content={"op": "settle", "hold_id": hold_id, "used": used},
            description=_check_text(description, "description"),
            reason="unused part of a hold",
        )

    def release(self, unit: Unit, *, hold_id: str, reason: str) -> PostingResult:
        """Close a hold with nothing consumed; all of it comes back."""
        reason = _check_text(reason, "reason")
        return self._close(
            unit,
            hold_id=hold_id,
            status=HoldStatus.RELEASED,
            used=0,
            content={"op": "release", "hold_id": hold_id},
            description=f"Released hold {hold_id}: {reason}",
            reason=reason,
        )

    def expire(self, unit: Unit, *, hold_id: str) -> PostingResult:
        """Close a hold past its ``expires_at``; all of it comes back."""
        return self._close(
            unit,
            hold_id=hold_id,
            status=HoldStatus.EXPIRED,
            used=0,
            content={"op": "expire", "hold_id": hold_id},
            description=f"Expired hold {hold_id}: full refund",
            reason="expired",
            expiring=True,
        )
