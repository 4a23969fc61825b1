"""Operator actions as services: the CLI parses, calls one of these, prints the result.

Ledger actions take an idempotency key derived from their cause (``admin:grant:...``), so
re-running the same command replays the first result instead of moving credits twice.
Every effective action writes ``admin_actions/{action_id}`` (actor, reason, what, when)
in the same atomic commit as the change.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from google.cloud import firestore

from shared.admin.changes import ACTIONS_COLLECTION as ACTIONS
from shared.admin.changes import Operator, record, stamp, text
from shared.atomic import Unit, run_atomically
from shared.bigeye.promotions.rules import (
    EXPIRABLE,
    TRANSITIONS,
    Transition,
    decide_create,
    decide_transition,
    end_date_of,
    expirable,
    new_promotion,
    transition_target,
)
from shared.bigeye.redemptions import mark_shards
from shared.billing.context import Outcome
from shared.clock import ensure_utc
from shared.errors import Conflict, InvalidInput, NotFound
from shared.ledger import Kind, Ledger, PostingResult, posting_key

ENGINE_COSTS = "ai_engine_costs"
PROMOTIONS = "promotions"
MAX_COST_PER_UNIT_USD = Decimal("1000")
#: The ``admin_actions`` action of an operator's replay of a parked Stripe event.
REPLAY_ACTION = "stripe_replay"
#: The operator postings (``ledger_action``).
LEDGER_ACTIONS = ("grant", "adjust", "refund")


def default_key(action: str, *parts: object) -> str:
    """A deterministic idempotency key for an operator action (same inputs, same key)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:24]
    return posting_key("admin", action, digest)


def operator_key(given: str) -> str:
    """An idempotency key an operator typed (``credits-admin --key``), checked.

    Every key the suite derives is a cause and its parts joined by ``:`` (``posting_key``),
    so a key with no ``:`` can never be one of them: an operator's key never replays or
    blocks a Stripe event, a hold or a usage posting. ``%`` (the encoding's escape) and
    control characters are refused too; at most 200 characters. A key accepted before
    this rule is accepted unchanged, so its posting still replays.
    """
    key = given.strip() if isinstance(given, str) else ""
    if not key or len(key) > 200:
        raise InvalidInput("--key must be 1 to 200 characters")
    if ":" in key or "%" in key or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidInput("--key must not contain ':', '%' or control characters")
    return key


@dataclass(frozen=True)
class LedgerAction:
    """What a ledger action did (``replayed``: an identical earlier run already did it)."""

    result: PostingResult
    key: str


def _post(
    ledger: Ledger,
    unit: Unit,
    action: str,
    who: Operator,
    key: str,
    user_id: str | None,
    transaction_id: str | None,
    amount: int | None,
) -> PostingResult:
    if action == "refund":
        return ledger.refund(
            unit,
            original_transaction_id=text(transaction_id, "transaction id", 300),
            key=key,
            reason=who.reason,
            amount=amount,
            description=f"Refund by {who.actor}: {who.reason}",
        )
    user_id = text(user_id, "user id", 300)
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInput("amount must be a whole number of credits")
    if action == "grant":
        return ledger.credit(
            unit,
            user_id=user_id,
            kind=Kind.BONUS,
            amount=amount,
            key=key,
            description=f"Grant by {who.actor}: {who.reason}",
        )
    return ledger.adjust(
        unit, user_id=user_id, amount=amount, actor=who.actor, reason=who.reason, key=key
    )


def ledger_action(
    ledger: Ledger,
    action: str,
    *,
    actor: str,
    reason: str,
    key: str,
    now: datetime,
    user_id: str | None = None,
    transaction_id: str | None = None,
    amount: int | None = None,
    ip_address: str | None = None,
) -> LedgerAction:
    """One operator posting and its ``admin_actions/{transaction_id}`` record, atomically.

    - ``grant``: a BONUS of ``amount`` to ``user_id``;
    - ``adjust``: ADJUSTMENT / ADMIN_ADJUSTMENT of ``amount`` (+ or -), never below zero;
    - ``refund``: of ``transaction_id`` (all that remains, or ``amount``), linked to it.

    ``key`` is the posting's idempotency key: the same key replays the first result and
    writes nothing (no second record either).
    """
    if action not in LEDGER_ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(LEDGER_ACTIONS)}")
    who = Operator.of(actor, reason, now, ip_address)

    def work(unit: Unit) -> PostingResult:
        result = _post(ledger, unit, action, who, key, user_id, transaction_id, amount)
        if not result.replayed:
            fields = {
                **who.fields(action),
                "user_id": result.user_id,
                "amount": result.amount,
                "transaction_id": result.transaction_id,
                "key": key,
                "profile": ledger.profile.name,
            }
            if action == "refund":
                fields["original_transaction_id"] = transaction_id
            record(unit, str(result.transaction_id), fields)
        return result

    return LedgerAction(ledger.run(work, now=now), key)


def grant(ledger: Ledger, **kwargs: Any) -> LedgerAction:
    """Give credits: ``ledger_action`` ``grant`` (``user_id``, ``amount``, ``actor``,
    ``reason``, ``key``, ``now``, optional ``ip_address``)."""
    return ledger_action(ledger, "grant", **kwargs)


def adjust(ledger: Ledger, **kwargs: Any) -> LedgerAction:
    """Correct a balance up or down: ``ledger_action`` ``adjust`` (same arguments as
    ``grant``)."""
    return ledger_action(ledger, "adjust", **kwargs)


def refund(ledger: Ledger, **kwargs: Any) -> LedgerAction:
    """Refund a transaction: ``ledger_action`` ``refund`` (``transaction_id``, optional
    ``amount``, ``actor``, ``reason``, ``key``, ``now``, optional ``ip_address``)."""
    return ledger_action(ledger, "refund", **kwargs)


def parse_cost(value: str) -> Decimal:
    """A cost per unit in USD: a non-negative decimal below a sanity ceiling."""
    try:
        cost = Decimal(value)
    except (InvalidOperation, TypeError):
        raise InvalidInput(f"cost {value!r} is not a decimal number") from None
    if not cost.is_finite() or cost < 0 or cost > MAX_COST_PER_UNIT_USD:
        raise InvalidInput(f"cost must be between 0 and {MAX_COST_PER_UNIT_USD} USD per unit")
    return cost


def engine_cost_action_id(engine_id: str, updated_at: datetime) -> str:
    """The ``admin_actions`` id of the operator change that set ``updated_at`` on an engine:
    one per engine and microsecond, so the profit audit trigger can find the change's
    record (and its ``ip_address``) from the engine document alone."""
    return f"engine_cost_{engine_id}_{ensure_utc(updated_at).strftime('%Y%m%dT%H%M%S%f')}"


def engine_cost_ip(
    db: firestore.Client, engine_id: str, after: dict[str, Any] | None
) -> str | None:
    """The client address of the operator change that wrote ``after`` (an
    ``ai_engine_costs`` document as written), or None: written by another path, or by one
    that knows no address (the CLI). The record must name the same actor and cost, so a
    later write that kept ``updated_at`` is never attributed to it."""
    updated_at = (after or {}).get("updated_at")
    if not isinstance(updated_at, datetime):
        return None
    snap = db.collection(ACTIONS).document(engine_cost_action_id(engine_id, updated_at)).get()
    found = (snap.to_dict() or {}) if snap.exists else {}
    if (
        found.get("action") != "engine_cost"
        or found.get("actor") != (after or {}).get("updated_by")
        or found.get("after") != (after or {}).get("cost_per_unit")
    ):
        return None
    ip = found.get("ip_address")
    return ip if isinstance(ip, str) and ip else None


def set_engine_cost(
    db: firestore.Client,
    *,
    engine_id: str,
    cost_per_unit: Decimal,
    actor: str,
    reason: str,
    now: datetime,
    ip_address: str | None = None,
) -> dict[str, Any]:
    """Update ``ai_engine_costs/{engine_id}.cost_per_unit``; the audit trigger records it.

    ``updated_by`` = actor and ``notes`` = reason are what the ``profit_audit_log`` entry
    (on-engine-cost-audit) reads as ``changed_by`` and ``reason``; its ``ip_address`` comes
    from this change's ``admin_actions`` record (``engine_cost_ip``).
    """
    who = Operator.of(actor, reason, ensure_utc(now), ip_address)
    ref = db.collection(ENGINE_COSTS).document(text(engine_id, "engine id", 200))

    def work(unit: Unit) -> dict[str, Any]:
        snap = unit.get(ref)
        if not snap.exists:
            raise NotFound(f"no engine {engine_id} in {ENGINE_COSTS}")
        before = snap.to_dict() or {}
        # Firestore stores numbers as doubles: the schema's type for cost_per_unit.
        fields = {
            "cost_per_unit": float(cost_per_unit),
            "updated_at": who.now,
            "updated_by": who.actor,
            "notes": who.reason,
        }
        unit.update(ref, fields)
        record(
            unit,
            engine_cost_action_id(ref.id, who.now),
            {
                **who.fields("engine_cost"),
                "engine_id": ref.id,
                "before": before.get("cost_per_unit"),
                "after": float(cost_per_unit),
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
    db: firestore.Client,
    *,
    promo_id: str,
    document: dict[str, Any],
    actor: str,
    now: datetime,
    ip_address: str | None = None,
) -> dict[str, Any]:
    """Create ``promotions/{promo_id}`` after the engine proves it can read it: read the
    id through the unit, decide (``rules.decide_create``), write the document and its
    ``admin_actions`` record."""
    who = Operator.of(actor, "created", now, ip_address)
    doc = new_promotion(promo_id, document, who.actor, now)
    ref = db.collection(PROMOTIONS).document(text(promo_id, "promotion id", 200))

    def work(unit: Unit) -> dict[str, Any]:
        decide_create(promo_id, unit.get(ref).exists)
        unit.create(ref, doc)
        record(
            unit,
            f"promotion_create_{promo_id}",
            {**who.fields("promotion_create"), "promo_id": promo_id},
        )
        return doc

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


def replay_parked(
    db: firestore.Client,
    *,
    event_id: str,
    actor: str,
    reason: str,
    now: datetime,
    ip_address: str | None = None,
    profile: str | None = None,
) -> Outcome:
    """An operator replays a parked Stripe event (``shared.billing.replay_parked_event``),
    audited: ``admin_actions/stripe_replay_{event_id}_{stamp}`` (actor, reason, address,
    ``event_id``, ``event_type`` and the ``outcome`` with its user, credits, transaction and
    detail) is written in the same atomic unit as the replay's outcome (applied, or parked
    again), so there is no replay without its record nor the reverse.

    Once per event, as the billing service is: a replay of an event already replayed answers
    ``already_replayed`` and writes nothing (no second record, no second credit); an unknown
    event is NotFound.
    """
    from shared.billing import replay_parked_event
    from shared.settings import get_settings

    who = Operator.of(actor, reason, ensure_utc(now), ip_address)
    event_id = text(event_id, "event id", 255)
    profile = profile or get_settings().schema_profile

    def audit(unit: Unit, outcome: Outcome) -> None:
        record(
            unit,
            f"{REPLAY_ACTION}_{outcome.event_id}_{stamp(who.now)}",
            {
                **who.fields(REPLAY_ACTION),
                "event_id": outcome.event_id,
                "event_type": outcome.type,
                "outcome": outcome.status,
                "user_id": outcome.user_id,
                "credits": outcome.credits,
                "transaction_id": outcome.transaction_id,
                "detail": outcome.detail,
                "profile": profile,
            },
        )

    return replay_parked_event(db, event_id, profile=profile, audit=audit)


#: Promotion transitions: action -> (target status, the statuses it may come from).
PROMOTION_TRANSITIONS = TRANSITIONS


def promotion_transition(
    db: firestore.Client,
    action: str,
    *,
    promo_id: str,
    actor: str,
    reason: str,
    now: datetime,
    ip_address: str | None = None,
) -> dict[str, Any]:
    """Move a promotion as ``action`` says (``PROMOTION_TRANSITIONS``), with its
    ``admin_actions`` record; already there: nothing changes. Resume is refused once
    ``conditions.end_date`` has passed; expiry only happens once it has.

    Read the promotion through the unit, decide (``rules.decide_transition``, pure), apply
    the plan: the status, every stats shard (``mark_shards``: fails every top-up that
    decided on the promotion before this change) and the record, in one commit."""
    transition_target(action)
    who = Operator.of(actor, reason, now, ip_address)
    ref = db.collection(PROMOTIONS).document(text(promo_id, "promotion id", 200))

    def work(unit: Unit) -> dict[str, Any]:
        snap = unit.get(ref)
        plan = decide_transition(
            action, ref.id, (snap.to_dict() or {}) if snap.exists else None, now
        )
        if plan.changed:
            _apply_transition(unit, ref, plan, who)
        return plan.data

    return run_atomically(db, work)


def _apply_transition(
    unit: Unit, ref: firestore.DocumentReference, plan: Transition, who: Operator
) -> None:
    unit.update(ref, {"status": plan.target, "updated_at": who.now})
    mark_shards(unit, ref.id, plan.target, who.now)
    record(
        unit,
        f"{plan.action}_{ref.id}_{stamp(who.now)}",
        {
            **who.fields(plan.action),
            "promo_id": ref.id,
            "before": plan.before,
            "after": plan.target,
        },
    )


def pause_promotion(db: firestore.Client, **kwargs: Any) -> dict[str, Any]:
    """ACTIVE or DRAFT -> PAUSED (no new redemptions; made ones stand): ``promo_id``,
    ``actor``, ``reason``, ``now``, optional ``ip_address``."""
    return promotion_transition(db, "promotion_pause", **kwargs)


def resume_promotion(db: firestore.Client, **kwargs: Any) -> dict[str, Any]:
    """PAUSED -> ACTIVE, refused (409) once its ``end_date`` has passed."""
    return promotion_transition(db, "promotion_resume", **kwargs)


def cancel_promotion(db: firestore.Client, **kwargs: Any) -> dict[str, Any]:
    """DRAFT, ACTIVE or PAUSED -> CANCELLED (final: no new redemptions, never resumes)."""
    return promotion_transition(db, "promotion_cancel", **kwargs)


EXPIRY_ACTOR = "system:promotion-expiry"


def expire_promotions(db: firestore.Client, now: datetime) -> list[str]:
    """ACTIVE or PAUSED promotions whose ``conditions.end_date`` has passed -> EXPIRED.

    Each change is its own atomic unit with an ``admin_actions`` record (actor
    ``system:promotion-expiry``); a promotion changed meanwhile is left as it is.
    """
    expired = []
    for status in EXPIRABLE:
        query = db.collection(PROMOTIONS).where(
            filter=firestore.FieldFilter("status", "==", status)
        )
        for snap in query.stream():
            data = snap.to_dict() or {}
            end = end_date_of(data)
            if end is None or not expirable(data, now):
                continue
            try:
                promotion_transition(
                    db,
                    "promotion_expire",
                    promo_id=snap.id,
                    actor=EXPIRY_ACTOR,
                    reason=f"end_date {end.isoformat()} passed",
                    now=now,
                )
            except Conflict:
                continue
            expired.append(snap.id)
    return expired
