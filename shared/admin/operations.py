"""Operator actions as services: the CLI parses, calls one of these, prints the result.

Ledger actions take an idempotency key derived from their cause (``admin:grant:...``), so
re-running the same command replays the first result instead of moving credits twice.
Every effective action writes ``admin_actions/{action_id}`` (actor, reason, what, when)
in the same atomic commit as the change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from google.cloud import firestore

from shared.atomic import Unit, run_atomically
from shared.errors import Conflict, InvalidInput, NotFound
from shared.ledger import Kind, Ledger, PostingResult, posting_key

ACTIONS_COLLECTION = "admin_actions"
ENGINE_COSTS = "ai_engine_costs"
PROMOTIONS = "promotions"
MAX_COST_PER_UNIT_USD = Decimal("1000")


def default_key(action: str, *parts: object) -> str:
    """A deterministic idempotency key for an operator action (same inputs, same key)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:24]
    return posting_key("admin", action, digest)


def _text(value: str | None, name: str, limit: int = 500) -> str:
    if value is None or not value.strip():
        raise InvalidInput(f"{name} is required")
    if len(value) > limit:
        raise InvalidInput(f"{name} is longer than {limit} characters")
    return value.strip()


def _audit(unit: Unit, action_id: str, record: dict[str, Any]) -> None:
    unit.create(unit.db.collection(ACTIONS_COLLECTION).document(action_id), record)


@dataclass(frozen=True)
class LedgerAction:
    """What a ledger action did (``replayed``: an identical earlier run already did it)."""

    result: PostingResult
    key: str


def _audited(
    ledger: Ledger,
    *,
    action: str,
    actor: str,
    reason: str,
    key: str,
    now: datetime,
    post: Callable[[Unit, str, str], PostingResult],
    extra: Callable[[PostingResult], dict[str, Any]] | None = None,
) -> LedgerAction:
    """Run one ledger posting and its ``admin_actions`` record in the same atomic unit."""
    actor, reason = _text(actor, "actor"), _text(reason, "reason")

    def work(unit: Unit) -> PostingResult:
        result = post(unit, actor, reason)
        if not result.replayed:
            record = {
                "action": action,
                "actor": actor,
                "reason": reason,
                "user_id": result.user_id,
                "amount": result.amount,
                "transaction_id": result.transaction_id,
                "key": key,
                "profile": ledger.profile.name,
                "created_at": now,
            }
            record.update(extra(result) if extra else {})
            _audit(unit, str(result.transaction_id), record)
        return result

    return LedgerAction(ledger.run(work), key)


def grant(
    ledger: Ledger,
    *,
    user_id: str,
    amount: int,
    actor: str,
    reason: str,
    key: str,
    now: datetime,
) -> LedgerAction:
    """Give credits (a BONUS posting) with actor and reason."""
    return _audited(
        ledger,
        action="grant",
        actor=actor,
        reason=reason,
        key=key,
        now=now,
        post=lambda unit, who, why: ledger.credit(
            unit,
            user_id=user_id,
            kind=Kind.BONUS,
            amount=amount,
            key=key,
            description=f"Grant by {who}: {why}",
        ),
    )


def adjust(
    ledger: Ledger,
    *,
    user_id: str,
    amount: int,
    actor: str,
    reason: str,
    key: str,
    now: datetime,
) -> LedgerAction:
    """Correct a balance up or down (ADJUSTMENT / ADMIN_ADJUSTMENT), never below zero."""
    return _audited(
        ledger,
        action="adjust",
        actor=actor,
        reason=reason,
        key=key,
        now=now,
        post=lambda unit, who, why: ledger.adjust(
            unit, user_id=user_id, amount=amount, actor=who, reason=why, key=key
        ),
    )


def refund(
    ledger: Ledger,
    *,
    transaction_id: str,
    actor: str,
    reason: str,
    key: str,
    now: datetime,
    amount: int | None = None,
) -> LedgerAction:
    """Refund a transaction (all that remains, or ``amount``), linked to the original."""
    return _audited(
        ledger,
        action="refund",
        actor=actor,
        reason=reason,
        key=key,
        now=now,
        post=lambda unit, who, why: ledger.refund(
            unit,
            original_transaction_id=transaction_id,
            key=key,
            reason=why,
            amount=amount,
            description=f"Refund by {who}: {why}",
        ),
        extra=lambda _: {"original_transaction_id": transaction_id},
    )


def parse_cost(text: str) -> Decimal:
    """A cost per unit in USD: a non-negative decimal below a sanity ceiling."""
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError):
        raise InvalidInput(f"cost {text!r} is not a decimal number") from None
    if not value.is_finite() or value < 0 or value > MAX_COST_PER_UNIT_USD:
        raise InvalidInput(f"cost must be between 0 and {MAX_COST_PER_UNIT_USD} USD per unit")
    return value


def set_engine_cost(
    db: firestore.Client,
    *,
    engine_id: str,
    cost_per_unit: Decimal,
    actor: str,
    reason: str,
    now: datetime,
) -> dict[str, Any]:
    """Update ``ai_engine_costs/{engine_id}.cost_per_unit``; the audit trigger records it.

    ``updated_by`` = actor and ``notes`` = reason are what the ``profit_audit_log`` entry
    (on-engine-cost-audit) reads as ``changed_by`` and ``reason``.
    """
    actor, reason = _text(actor, "actor"), _text(reason, "reason")
    ref = db.collection(ENGINE_COSTS).document(_text(engine_id, "engine id", 200))

    def work(unit: Unit) -> dict[str, Any]:
        snap = unit.get(ref)
        if not snap.exists:
            raise NotFound(f"no engine {engine_id} in {ENGINE_COSTS}")
        before = snap.to_dict() or {}
        # Firestore stores numbers as doubles: the schema's type for cost_per_unit.
        fields = {
            "cost_per_unit": float(cost_per_unit),
            "updated_at": now,
            "updated_by": actor,
            "notes": reason,
        }
        unit.update(ref, fields)
        _audit(
            unit,
            f"engine_cost_{engine_id}_{now.strftime('%Y%m%dT%H%M%S%f')}",
            {
                "action": "engine_cost",
                "actor": actor,
                "reason": reason,
                "engine_id": engine_id,
                "before": before.get("cost_per_unit"),
                "after": float(cost_per_unit),
                "created_at": now,
            },
        )
        return {**before, **fields}

    return run_atomically(db, work)


def list_promotions(db: firestore.Client, status: str | None = None) -> list[dict[str, Any]]:
    """Every promotion (or those with ``status``), highest priority first."""
    query: Any = db.collection(PROMOTIONS)
    if status:
        query = query.where(filter=firestore.FieldFilter("status", "==", status))
    found = [{"promo_id": s.id, **(s.to_dict() or {})} for s in query.stream()]
    found.sort(key=lambda p: (-float(p.get("priority") or 0), p["promo_id"]))
    return found


def create_promotion(
    db: firestore.Client, *, promo_id: str, document: dict[str, Any], actor: str, now: datetime
) -> dict[str, Any]:
    """Create ``promotions/{promo_id}`` after the engine proves it can read it."""
    from shared.bigeye.promotions import InvalidPromotion, parse_promotion

    actor = _text(actor, "actor")
    doc = {
        **document,
        "stats": {
            "total_redemptions": 0,
            "total_bonus_credits": 0,
            "total_baht_collected": 0,
            "unique_users": 0,
        },
        "created_at": now,
        "created_by": actor,
        "updated_at": now,
    }
    try:
        parse_promotion(promo_id, doc)
    except InvalidPromotion as exc:
        raise InvalidInput(f"the promotion is not valid: {exc}") from None
    ref = db.collection(PROMOTIONS).document(_text(promo_id, "promotion id", 200))

    def work(unit: Unit) -> dict[str, Any]:
        if unit.get(ref).exists:
            raise Conflict(f"promotion {promo_id} already exists")
        unit.create(ref, doc)
        _audit(
            unit,
            f"promotion_create_{promo_id}",
            {
                "action": "promotion_create",
                "actor": actor,
                "promo_id": promo_id,
                "reason": "created",
                "created_at": now,
            },
        )
        return doc

    return run_atomically(db, work)


def pause_promotion(
    db: firestore.Client, *, promo_id: str, actor: str, reason: str, now: datetime
) -> dict[str, Any]:
    """ACTIVE (or DRAFT) -> PAUSED; pausing a paused promotion changes nothing."""
    actor, reason = _text(actor, "actor"), _text(reason, "reason")
    ref = db.collection(PROMOTIONS).document(_text(promo_id, "promotion id", 200))

    def work(unit: Unit) -> dict[str, Any]:
        snap = unit.get(ref)
        if not snap.exists:
            raise NotFound(f"no promotion {promo_id}")
        data = snap.to_dict() or {}
        status = data.get("status")
        if status == "PAUSED":
            return data
        if status not in {"ACTIVE", "DRAFT"}:
            raise Conflict(f"promotion {promo_id} is {status}; only ACTIVE or DRAFT can pause")
        unit.update(ref, {"status": "PAUSED", "updated_at": now})
        _audit(
            unit,
            f"promotion_pause_{promo_id}_{now.strftime('%Y%m%dT%H%M%S%f')}",
            {
                "action": "promotion_pause",
                "actor": actor,
                "reason": reason,
                "promo_id": promo_id,
                "before": status,
                "created_at": now,
            },
        )
        return {**data, "status": "PAUSED"}

    return run_atomically(db, work)


def list_slips(db: firestore.Client, *, status: str, limit: int = 50) -> list[dict[str, Any]]:
    """BigEye slips with ``status``, oldest first."""
    query = (
        db.collection("slips")
        .where(filter=firestore.FieldFilter("status", "==", status))
        .order_by("created_at")
        .limit(limit)
    )
    return [{"slip_id": s.id, **(s.to_dict() or {})} for s in query.stream()]


def _stamp(now: datetime) -> str:
    """A time-ordered, unique suffix for an ``admin_actions`` id (two changes in the same
    microsecond, or under a fixed test clock, still get two records)."""
    import uuid

    return f"{now.strftime('%Y%m%dT%H%M%S%f')}_{uuid.uuid4().hex[:8]}"


def _promotion_transition(
    db: firestore.Client,
    *,
    promo_id: str,
    actor: str,
    reason: str,
    now: datetime,
    action: str,
    target: str,
    allowed: frozenset[str],
    check: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Move a promotion to ``target`` from one of ``allowed`` (already there: no change)."""
    actor, reason = _text(actor, "actor"), _text(reason, "reason")
    ref = db.collection(PROMOTIONS).document(_text(promo_id, "promotion id", 200))

    def work(unit: Unit) -> dict[str, Any]:
        snap = unit.get(ref)
        if not snap.exists:
            raise NotFound(f"no promotion {promo_id}")
        data = snap.to_dict() or {}
        status = data.get("status")
        if status == target:
            return data
        if status not in allowed:
            raise Conflict(
                f"promotion {promo_id} is {status}; only {' or '.join(sorted(allowed))} can "
                f"become {target}"
            )
        if check is not None:
            check(data)
        unit.update(ref, {"status": target, "updated_at": now})
        _audit(
            unit,
            f"{action}_{promo_id}_{_stamp(now)}",
            {
                "action": action,
                "actor": actor,
                "reason": reason,
                "promo_id": promo_id,
                "before": status,
                "after": target,
                "created_at": now,
            },
        )
        return {**data, "status": target, "updated_at": now}

    return run_atomically(db, work)


def _end_date(data: dict[str, Any]) -> datetime | None:
    conditions = data.get("conditions")
    end = conditions.get("end_date") if isinstance(conditions, dict) else None
    return end if isinstance(end, datetime) else None


def resume_promotion(
    db: firestore.Client, *, promo_id: str, actor: str, reason: str, now: datetime
) -> dict[str, Any]:
    """PAUSED -> ACTIVE, unless its ``end_date`` has passed (then it is EXPIRED instead)."""

    def not_over(data: dict[str, Any]) -> None:
        end = _end_date(data)
        if end is not None and end < now:
            raise Conflict(f"promotion {promo_id} ended at {end.isoformat()}; it cannot resume")

    return _promotion_transition(
        db,
        promo_id=promo_id,
        actor=actor,
        reason=reason,
        now=now,
        action="promotion_resume",
        target="ACTIVE",
        allowed=frozenset({"PAUSED"}),
        check=not_over,
    )


def cancel_promotion(
    db: firestore.Client, *, promo_id: str, actor: str, reason: str, now: datetime
) -> dict[str, Any]:
    """DRAFT, ACTIVE or PAUSED -> CANCELLED (final: no new redemptions, never resumes)."""
    return _promotion_transition(
        db,
        promo_id=promo_id,
        actor=actor,
        reason=reason,
        now=now,
        action="promotion_cancel",
        target="CANCELLED",
        allowed=frozenset({"DRAFT", "ACTIVE", "PAUSED"}),
    )


EXPIRY_ACTOR = "system:promotion-expiry"


def expire_promotions(db: firestore.Client, now: datetime) -> list[str]:
    """ACTIVE or PAUSED promotions whose ``conditions.end_date`` has passed -> EXPIRED.

    Each change is its own atomic unit with an ``admin_actions`` record (actor
    ``system:promotion-expiry``); a promotion changed meanwhile is left as it is.
    """
    expired = []
    for status in ("ACTIVE", "PAUSED"):
        query = db.collection(PROMOTIONS).where(
            filter=firestore.FieldFilter("status", "==", status)
        )
        for snap in query.stream():
            end = _end_date(snap.to_dict() or {})
            if end is None or end >= now:
                continue

            def still_over(data: dict[str, Any]) -> None:
                current = _end_date(data)
                if current is None or current >= now:
                    raise Conflict("the end date changed")

            try:
                _promotion_transition(
                    db,
                    promo_id=snap.id,
                    actor=EXPIRY_ACTOR,
                    reason=f"end_date {end.isoformat()} passed",
                    now=now,
                    action="promotion_expire",
                    target="EXPIRED",
                    allowed=frozenset({"ACTIVE", "PAUSED"}),
                    check=still_over,
                )
            except Conflict:
                continue
            expired.append(snap.id)
    return expired
