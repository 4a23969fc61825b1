"""ledger-api's operations: every credit movement goes through ``shared.ledger``.

Each write runs in ONE atomic unit with its idempotency record
(``ledger_api_requests/{sha256(profile:key)}``): the unit reads the record first; when it
exists, the request's fingerprint must match (else ``Conflict``, 409) and its stored answer
is returned unchanged; otherwise the ledger operation and the record commit together, so a
crash between them is impossible and a retried request can never move credits twice.
A request that fails (402, 403, 404, 409...) writes nothing and records nothing: retrying it
with the same key after the cause is fixed runs it again.

Only an account that may act (``shared.accountstatus``: no ``status``, or exactly
``active``) is charged, granted credits or given a new hold (403 otherwise). Refunds,
adjustments, settling and releasing an existing hold still apply to a suspended or banned
account: they close out money already moved, and refusing them would keep a customer's
credits or let a banned account's finished work go unpaid.

Holds are stored in the ledger under ``api:{profile}:{hold_id}``: a caller can only reach
the holds ledger-api made for its own app (never a BigEye job's reservation), and the
expiry sweep knows each hold's profile from its id.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from google.cloud import firestore

from shared.accountstatus import check_active
from shared.atomic import Unit
from shared.clock import ensure_utc
from shared.errors import Conflict, InvalidInput, NotFound
from shared.ledger import HOLDS_COLLECTION, HoldStatus, Kind, Ledger, PostingResult, Refs
from shared.ledger.core import CREDIT_KINDS
from shared.ledger.keys import posting_key
from shared.ledger.ownership import check_owner
from shared.ledger.profiles import ledger_profile
from shared.ledgerapi.models import (
    AdjustmentRequest,
    ChargeRequest,
    GrantRequest,
    HoldRequest,
    RefundRequest,
    ReleaseRequest,
    SettleRequest,
)
from shared.logs import get_logger, log
from shared.sweeps import due

logger = get_logger(__name__)

#: Not a seed collection: one record per Idempotency-Key (docs/ledger-api.md).
API_REQUESTS = "ledger_api_requests"
HOLD_PREFIX = "api"
MAX_KEY_LENGTH = 200
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Answer:
    """A write's answer and whether it is the replay of an earlier request."""

    body: dict[str, Any]
    replayed: bool = False


def ledger_hold_id(profile: str, hold_id: str) -> str:
    """The ledger's id of a ledger-api hold (namespaced by app)."""
    return f"{HOLD_PREFIX}:{profile}:{hold_id}"


def api_hold_profile(ledger_id: str) -> tuple[str, str] | None:
    """``(profile, hold_id)`` of a ledger-api hold id, or None for other holds."""
    parts = ledger_id.split(":", 2)
    if len(parts) != 3 or parts[0] != HOLD_PREFIX:
        return None
    return parts[1], parts[2]


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return ensure_utc(value).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def check_key(key: str | None) -> str:
    """The ``Idempotency-Key`` header: required on every write, 1..200 visible characters."""
    if key is None or not key.strip():
        raise InvalidInput("the Idempotency-Key header is required on every write")
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} printable characters")
    return key


def request_fingerprint(operation: str, target: str, body: dict[str, Any]) -> str:
    """What makes two requests "the same request" for an Idempotency-Key."""
    text = json.dumps(
        {"op": operation, "target": target, "body": body}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()


def decide_replay(record: dict[str, Any] | None, fingerprint: str) -> Answer | None:
    """The stored answer of an Idempotency-Key already used for this same request (pure).

    None when the key is new; Conflict when it was used for another request.
    """
    if record is None:
        return None
    if record.get("fingerprint") != fingerprint:
        raise Conflict("this Idempotency-Key was already used for another request")
    return Answer(dict(record.get("response") or {}), replayed=True)


def check_pending_hold(
    hold_id: str, hold: dict[str, Any] | None, now: Callable[[], datetime]
) -> None:
    """Refuse to close a hold that is unknown (404), already closed or expired (409) (pure).

    ``now`` is read only when the hold has an expiry (the unit's one instant).
    """
    if hold is None:
        raise NotFound(f"unknown hold {hold_id}")
    status = hold.get("status")
    if status != HoldStatus.PENDING.value:
        raise Conflict(f"hold {hold_id} is already {str(status).lower()}")
    expires_at = hold.get("expires_at")
    if expires_at is not None and ensure_utc(expires_at) <= now():
        raise Conflict(
            f"hold {hold_id} expired at {_json_value(expires_at)}; "
            "all of it is returned to the account"
        )


class LedgerApi:
    """The operations of ledger-api under one ledger (one profile)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.profile = ledger.profile

    @property
    def db(self) -> firestore.Client:
        return self.ledger.db

    # -- idempotency ---------------------------------------------------------------------
    def _record_ref(self, key: str) -> firestore.DocumentReference:
        digest = hashlib.sha256(f"{self.profile.name}:{key}".encode()).hexdigest()
        return self.db.collection(API_REQUESTS).document(digest)

    def _write(
        self,
        *,
        key: str | None,
        operation: str,
        target: str,
        body: dict[str, Any],
        work: Callable[[Unit, str], dict[str, Any]],
        account: str | None = None,
    ) -> Answer:
        """Run ``work`` once per Idempotency-Key, atomically with the key's record.

        ``account``: the user whose balance ``work`` moves, for group commit of one hot
        account's concurrent requests (docs/ledger.md, "Group commit").
        """
        key = check_key(key)
        fingerprint = request_fingerprint(operation, target, body)
        record_ref = self._record_ref(key)

        def unit_work(unit: Unit) -> Answer:
            snap = unit.get(record_ref)
            replay = decide_replay((snap.to_dict() or {}) if snap.exists else None, fingerprint)
            if replay is not None:
                return replay
            answer = work(unit, posting_key("api", self.profile.name, key))
            now = self.ledger.now(unit)
            unit.create(
                record_ref,
                {
                    "key": key,
                    "profile": self.profile.name,
                    "operation": operation,
                    "target": target,
                    "fingerprint": fingerprint,
                    "response": answer,
                    "created_at": now,
                },
            )
            return Answer(answer)

        return self.ledger.run(unit_work, account=account)

    # -- reading -------------------------------------------------------------------------
    def _user(self, unit: Unit | None, user_id: str) -> dict[str, Any]:
        ref = self.ledger.user_ref(user_id)
        snap = unit.get(ref) if unit is not None else ref.get()
        if not snap.exists:
            raise NotFound(f"unknown user {user_id}")
        user = snap.to_dict() or {}
        check_owner(user_id, user, self.profile.name)
        return user

    def account(self, user_id: str) -> dict[str, Any]:
        """Balance and totals of one account."""
        user = self._user(None, user_id)
        p = self.profile
        body: dict[str, Any] = {
            "user_id": user_id,
            "profile": p.name,
            "balance": int(user.get(p.balance_field) or 0),
            "total_credits_used": int(user.get(p.used_field) or 0),
        }
        if p.purchased_field:
            body["total_credits_purchased"] = int(user.get(p.purchased_field) or 0)
        return body

    def transactions(
        self, user_id: str, *, limit: int, cursor: str | None
    ) -> tuple[dict[str, Any], str | None]:
        """One page of the account's transactions, newest first, and the next cursor."""
        self._user(None, user_id)
        coll = self.db.collection(self.profile.transactions_collection)
        query = (
            coll.where(filter=firestore.FieldFilter("user_id", "==", user_id))
            .order_by("created_at", direction=firestore.Query.DESCENDING)
            .order_by("__name__", direction=firestore.Query.DESCENDING)
        )
        if cursor is not None:
            bad = not cursor or len(cursor) > 100 or "/" in cursor or cursor.startswith("__")
            anchor = None if bad else coll.document(cursor).get()
            if anchor is None or not anchor.exists:
                raise InvalidInput("cursor is not valid")
            if (anchor.to_dict() or {}).get("user_id") != user_id:
                raise InvalidInput("cursor is not valid")
            query = query.start_after(anchor)
        snaps = list(query.limit(limit + 1).stream())
        more = len(snaps) > limit
        snaps = snaps[:limit]
        items = [{"transaction_id": s.id, **_json_value(s.to_dict() or {})} for s in snaps]
        next_cursor = snaps[-1].id if more and snaps else None
        return {"user_id": user_id, "transactions": items, "next_cursor": next_cursor}, (
            next_cursor
        )

    def hold(self, hold_id: str) -> dict[str, Any]:
        """The state of one of this app's holds."""
        snap = self.ledger.hold_ref(ledger_hold_id(self.profile.name, hold_id)).get()
        if not snap.exists:
            raise NotFound(f"unknown hold {hold_id}")
        return self._hold_body(hold_id, snap.to_dict() or {})

    @staticmethod
    def _hold_body(hold_id: str, hold: dict[str, Any]) -> dict[str, Any]:
        return {
            "hold_id": hold_id,
            "user_id": hold.get("user_id"),
            "amount": hold.get("amount"),
            "status": hold.get("status"),
            "expires_at": _json_value(hold.get("expires_at")),
            "used_amount": hold.get("used_amount"),
            "returned_amount": hold.get("returned_amount"),
            "reserve_transaction_id": hold.get("reserve_transaction_id"),
            "close_transaction_id": hold.get("close_transaction_id"),
        }

    def _posting(self, result: PostingResult, **extra: Any) -> dict[str, Any]:
        return {
            "transaction_id": result.transaction_id,
            "user_id": result.user_id,
            "type": self.profile.type_name(result.kind) if result.kind else None,
            "amount": result.amount,
            "balance_after": result.balance_after,
            "shortfall": result.shortfall,
            **extra,
        }

    # -- writes --------------------------------------------------------------------------
    def charge(self, user_id: str, req: ChargeRequest, key: str | None) -> Answer:
        def work(unit: Unit, ledger_key: str) -> dict[str, Any]:
            check_active(self._user(unit, user_id))
            result = self.ledger.debit(
                unit,
                user_id=user_id,
                amount=req.amount,
                key=ledger_key,
                description=req.description or "Charge",
                refs=Refs(job_id=req.job_id, reference_id=req.reference_id or req.job_id),
                allow_partial=req.allow_partial,
            )
            return self._posting(result)

        body = req.model_dump(mode="json")
        return self._write(
            key=key, operation="charge", target=user_id, body=body, work=work, account=user_id
        )

    def grant(self, user_id: str, req: GrantRequest, key: str | None) -> Answer:
        kind = self._credit_kind(req.type)

        def work(unit: Unit, ledger_key: str) -> dict[str, Any]:
            check_active(self._user(unit, user_id))
            result = self.ledger.credit(
                unit,
                user_id=user_id,
                kind=kind,
                amount=req.amount,
                key=ledger_key,
                description=req.description or f"Grant ({req.type})",
                refs=Refs(job_id=req.job_id, reference_id=req.reference_id or req.job_id),
            )
            return self._posting(result)

        body = req.model_dump(mode="json")
        return self._write(key=key, operation="grant", target=user_id, body=body, work=work)

    def _credit_kind(self, type_name: str) -> Kind:
        allowed = sorted(
            {t for k, t in self.profile.type_names.items() if k in CREDIT_KINDS}
            - {self.profile.type_name(Kind.ADJUSTMENT)}
        )
        try:
            kind = self.profile.kind_of(type_name)
        except ValueError:
            kind = None
        if kind is None or kind not in CREDIT_KINDS or type_name not in allowed:
            raise InvalidInput(
                f"type must be one of {', '.join(allowed)} under the {self.profile.name} profile"
            )
        return kind

    def adjust(self, user_id: str, req: AdjustmentRequest, key: str | None) -> Answer:
        def work(unit: Unit, ledger_key: str) -> dict[str, Any]:
            self._user(unit, user_id)
            result = self.ledger.adjust(
                unit,
                user_id=user_id,
                amount=req.amount,
                actor=req.actor,
                reason=req.reason,
                key=ledger_key,
            )
            return self._posting(result, actor=req.actor, reason=req.reason)

        body = req.model_dump(mode="json")
        return self._write(key=key, operation="adjust", target=user_id, body=body, work=work)

    def refund(self, req: RefundRequest, key: str | None) -> Answer:
        def work(unit: Unit, ledger_key: str) -> dict[str, Any]:
            original = unit.get(self.ledger.transaction_ref(req.original_transaction_id))
            if original.exists:
                user_id = str((original.to_dict() or {}).get("user_id") or "")
                if user_id:
                    self._user(unit, user_id)
            result = self.ledger.refund(
                unit,
                original_transaction_id=req.original_transaction_id,
                key=ledger_key,
                reason=req.reason,
                amount=req.amount,
                refs=Refs(job_id=req.job_id),
            )
            return self._posting(result, original_transaction_id=req.original_transaction_id)

        body = req.model_dump(mode="json")
        return self._write(
            key=key, operation="refund", target=req.original_transaction_id, body=body, work=work
        )

    def create_hold(self, req: HoldRequest, key: str | None) -> Answer:
        ledger_id = ledger_hold_id(self.profile.name, req.hold_id)

        def work(unit: Unit, ledger_key: str) -> dict[str, Any]:
            check_active(self._user(unit, req.user_id))
            now = self.ledger.now(unit)
            result = self.ledger.hold(
                unit,
                user_id=req.user_id,
                hold_id=ledger_id,
                amount=req.amount,
                expires_at=now + timedelta(seconds=req.ttl_s),
                description=req.description or f"Hold {req.hold_id}",
                refs=Refs(job_id=req.job_id or req.hold_id, reference_id=req.hold_id),
            )
            hold = unit.get(self.ledger.hold_ref(ledger_id))
            expires_at = (
                (hold.to_dict() or {}).get("expires_at")
                if hold.exists
                else now + timedelta(seconds=req.ttl_s)
            )
            return self._posting(
                result,
                hold_id=req.hold_id,
                hold_status=HoldStatus.PENDING.value,
                expires_at=_json_value(expires_at),
            )

        body = req.model_dump(mode="json")
        return self._write(key=key, operation="hold", target=req.hold_id, body=body, work=work)

    def _pending_hold(self, unit: Unit, hold_id: str) -> str:
        """The ledger id of a PENDING, unexpired hold of this app (else 404 / 409)."""
        ledger_id = ledger_hold_id(self.profile.name, hold_id)
        snap = unit.get(self.ledger.hold_ref(ledger_id))
        hold = (snap.to_dict() or {}) if snap.exists else None
        check_pending_hold(hold_id, hold, lambda: self.ledger.now(unit))
        return ledger_id

    def settle(self, hold_id: str, req: SettleRequest, key: str | None) -> Answer:
        def work(unit: Unit, ledger_key: str) -> dict[str, Any]:
            ledger_id = self._pending_hold(unit, hold_id)
            result = self.ledger.settle(
                unit,
                hold_id=ledger_id,
                used=req.used,
                description=req.description or f"Settled hold {hold_id}",
            )
            return self._posting(
                result,
                hold_id=hold_id,
                hold_status=HoldStatus.SETTLED.value,
                used_amount=req.used,
            )

        body = req.model_dump(mode="json")
        return self._write(key=key, operation="settle", target=hold_id, body=body, work=work)

    def release(self, hold_id: str, req: ReleaseRequest, key: str | None) -> Answer:
        def work(unit: Unit, ledger_key: str) -> dict[str, Any]:
            ledger_id = self._pending_hold(unit, hold_id)
            result = self.ledger.release(unit, hold_id=ledger_id, reason=req.reason)
            return self._posting(
                result, hold_id=hold_id, hold_status=HoldStatus.RELEASED.value, used_amount=0
            )

        body = req.model_dump(mode="json")
        return self._write(key=key, operation="release", target=hold_id, body=body, work=work)


def _expire_one(ledger: Ledger, hold_id: str) -> PostingResult:
    def work(unit: Unit) -> PostingResult:
        return ledger.expire(unit, hold_id=hold_id)

    return ledger.run(work)


@dataclass(frozen=True)
class HoldExpiryReport:
    """What one sweep of ledger-api holds did."""

    expired: int = 0
    returned_credits: int = 0
    skipped: int = 0


def expire_due_holds(
    db: firestore.Client,
    now: datetime,
    *,
    profiles: frozenset[str],
    make_ledger: Callable[[str], Ledger],
    batch_size: int = 200,
    max_holds: int = 5000,
) -> HoldExpiryReport:
    """Expire every PENDING ledger-api hold of ``profiles`` past ``expires_at``.

    Each hold is closed in its own unit through ``Ledger.expire``: a settle or release
    racing the sweep either commits first (the sweep then finds the hold closed and skips
    it) or loses and answers 409. Holds of other apps and BigEye jobs' reservations (which
    the job sweep expires with their job) are left alone.
    """
    expired = returned = skipped = 0
    ledgers: dict[str, Ledger] = {}
    for snap in due(
        db,
        HOLDS_COLLECTION,
        status=HoldStatus.PENDING.value,
        now=now,
        batch_size=batch_size,
        limit=max_holds,
    ):
        owner = api_hold_profile(snap.id)
        if owner is None or owner[0] not in profiles:
            continue
        profile = owner[0]
        try:
            ledger_profile(profile)
        except ValueError:
            continue
        ledger = ledgers.get(profile) or ledgers.setdefault(profile, make_ledger(profile))
        try:
            result = _expire_one(ledger, snap.id)
        except (Conflict, NotFound) as exc:
            log(logger, logging.INFO, f"hold not expired: {exc.detail}", hold_id=snap.id)
            skipped += 1
            continue
        if result.replayed:
            skipped += 1
            continue
        expired += 1
        returned += result.amount
    return HoldExpiryReport(expired=expired, returned_credits=returned, skipped=skipped)
