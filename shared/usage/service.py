"""Meter one ``usage-events`` message in ONE atomic unit.

The unit writes, all or nothing:
- ``usage_logs/{usage_log_id(request_id)}`` with every field of 002 (plus the documented
  extras ``credits_shortfall``, ``transaction_id``, ...), created only if absent: it is
  the once-only record, so a duplicate ``request_id`` (even racing) is a replay that
  writes nothing. The log expires 90 days after ``created_at`` (002), which the sender
  may set at any age; the once-only record must outlive every redelivery
  (``ONCE_ONLY_DAYS`` after receipt: Pub/Sub keeps a message at most 31 days). So when
  the log would expire sooner than that (an event more than 30 days old when received),
  the unit also creates ``usage_receipts/{usage_log_id(request_id)}``, kept
  ``RECEIPT_DAYS_KEPT`` days from its receipt; every other event needs no receipt (one
  write less);
- the ledger DEDUCTION of ``credits_used`` (key ``usage:{request_id}``, partial allowed:
  the use already happened, so a short balance goes to zero and the shortfall is recorded
  on the log and in the transaction's description);
- ``daily_token_usage/{userId}_{YYYY-MM-DD}`` as a blind ``Increment`` merge (a busy
  user's counter never serialises the unit);
- Kaiwa ``userUsage/{userId}_{YYYY-MM}`` read then written (guarded by "unchanged since
  read"): seconds past the month's allowance go to ``bankedSecondsUsed`` while banked
  seconds are left (``limits.split_seconds``);
- the analytics write-time counters (``count_usage``), once per new log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from google.cloud import firestore

from shared.analytics.counters import count_usage
from shared.analytics.retention import USAGE_LOG_DAYS_KEPT
from shared.atomic import Unit
from shared.clock import ensure_utc, get_clock
from shared.errors import Conflict, InvalidInput, NotFound
from shared.ledger import Refs, ledger_for, posting_key, transaction_id_for
from shared.logs import get_logger, log
from shared.settings import get_settings
from shared.usage import config
from shared.usage.limits import split_seconds
from shared.usage.model import UsageEvent
from shared.usage.pricing import (
    EngineCost,
    fingerprint,
    month_period,
    pick_version,
    price_usage,
    stored_number,
    token_day,
    units_number,
    usage_log_id,
)

logger = get_logger(__name__)

# Events may carry their own time; one further ahead than this is refused as malformed.
MAX_FUTURE_S = 3600
# The once-only record outlives every redelivery: Pub/Sub retains a message at most 31 days
# after publishing (and a dead-lettered one replayed by an operator comes back within weeks).
RECEIPTS = "usage_receipts"
RECEIPT_DAYS_KEPT = 90
# How long after its receipt an event's once-only record (its log, else a receipt) must
# last: beyond Pub/Sub's 31-day retention, with four weeks for dead-lettered messages an
# operator replays.
ONCE_ONLY_DAYS = 60


def needs_receipt(at: datetime, now: datetime) -> bool:
    """Whether the log of an event at ``at``, received ``now``, expires before its
    once-only record may be needed for the last time (then a receipt is written too)."""
    return at + timedelta(days=USAGE_LOG_DAYS_KEPT) < now + timedelta(days=ONCE_ONLY_DAYS)


@dataclass(frozen=True)
class Metered:
    """What metering one message did (or, on a replay, what it found)."""

    log_id: str
    replayed: bool
    credits_deducted: int = 0
    credits_shortfall: int = 0


def event_time(event: UsageEvent, publish_time: datetime | None, now: datetime) -> datetime:
    """When the use happened: the message's ``created_at``, else its publish time, else now."""
    at = event.created_at or publish_time or now
    at = ensure_utc(at)
    if (at - now).total_seconds() > MAX_FUTURE_S:
        raise InvalidInput(f"created_at {at.isoformat()} is in the future")
    return at


def _shortfall_note(shortfall: int) -> str:
    return f"; {shortfall} credits not covered by the balance (shortfall)" if shortfall else ""


@dataclass(frozen=True)
class UsageReads:
    """Everything one usage event's decision needs, read through the unit.

    ``earlier`` is the once-only record (the receipt when one was written, else the log)
    when the request was already metered; then nothing else is read.
    """

    earlier: dict[str, Any] | None = None
    user: dict[str, Any] | None = None
    subscription_tier: str | None = None  # the active subscription's tier, when looked up
    plan_id: str = config.DEFAULT_PLAN
    plan: dict[str, Any] | None = None  # plan_pricing/{plan_id}
    engine: dict[str, Any] | None = None  # ai_engine_costs/{engine_id}
    engine_history: tuple[EngineCost, ...] = ()
    token_limits: Mapping[str, dict[str, Any] | None] = field(default_factory=dict)
    balance: int = 0  # the account's balance as this unit sees it (when credits are used)
    monthly: dict[str, Any] | None = None  # userUsage/{userId}_{period}, None when missing
    tier: dict[str, Any] | None = None  # tiers/{tierId} of the monthly allowance
    conversation_seen: bool = False  # the conversation's marker exists this month


@dataclass(frozen=True)
class Debit:
    """The DEDUCTION to post (partial allowed)."""

    amount: int
    description: str


@dataclass(frozen=True)
class UsagePlan:
    """What metering one event writes, decided from ``UsageReads`` with no I/O.

    ``log`` and ``receipt`` carry the deduction expected from the balance read; the apply
    step replaces ``credits_deducted``, ``credits_shortfall`` and ``transaction_id`` with
    the posting's own result.
    """

    log_id: str
    replay: Metered | None = None
    debit: Debit | None = None
    log: dict[str, Any] = field(default_factory=dict)
    receipt: dict[str, Any] | None = None  # only when the log expires too soon
    daily: dict[str, Any] | None = None  # merged into daily_token_usage/{userId}_{day}
    marker: dict[str, Any] | None = None  # usage_conversations/... to create
    monthly: dict[str, Any] | None = None  # userUsage counters
    monthly_exists: bool = False  # update the counters, else create them


@dataclass(frozen=True)
class Moment:
    """The instants of one event: its own time, the processing time and their calendars."""

    at: datetime
    now: datetime
    day: str
    reset_at: datetime
    period: str
    period_end: datetime


def moment_of(at: datetime, now: datetime, tz_name: str) -> Moment:
    day, reset_at = token_day(at, tz_name)
    period, period_end = month_period(at, tz_name)
    return Moment(at, now, day, reset_at, period, period_end)


def needs_tier_lookup(event: UsageEvent, user: Mapping[str, Any], kaiwa: bool) -> bool:
    """Whether the plan comes from the user's active subscription (no message plan, no
    ``users.tier``: every Kaiwa user)."""
    return not event.subscription_plan and (kaiwa or not user.get("tier"))


def monthly_tier_id(subscription_tier: str | None, kaiwa: bool) -> str | None:
    """The tier whose monthly allowance applies: the subscription's, else Kaiwa's free."""
    if subscription_tier is None and kaiwa:
        return config.DEFAULT_PLAN
    return subscription_tier


def _live_effective_after(engine: Mapping[str, Any] | None, engine_id: str, at: datetime) -> bool:
    """Whether the live engine document is newer than ``at`` (its history is then needed)."""
    if engine is None:
        return False
    try:
        live = EngineCost.from_doc(engine_id, engine)
    except InvalidInput:
        return False  # the decision refuses it
    return live.effective_from is not None and live.effective_from > at


def read_usage(
    unit: Unit, event: UsageEvent, *, log_id: str, at: datetime, period: str, kaiwa: bool
) -> UsageReads:
    """Read what metering ``event`` needs, in as few round trips as the event allows."""
    db = unit.db
    r = config.refs(db)
    ledger = ledger_for()
    receipt_ref = db.collection(RECEIPTS).document(log_id)
    user_ref = ledger.user_ref(event.user_id)
    # One round trip for everything the event may need whatever its plan.
    first = [receipt_ref, r.log(log_id), user_ref, r.engine(event.engine_id)]
    first += [r.token_limit(t) for t in config.USER_TYPES]
    if event.credits_used > 0:
        first.append(ledger.posting_ref(transaction_id_for(posting_key("usage", event.request_id))))
    if event.subscription_plan:
        first.append(r.plan(event.subscription_plan.lower()))
    snaps = unit.get_all(first)
    receipt_snap, log_snap, user_snap, engine_snap = snaps[:4]
    earlier = receipt_snap if receipt_snap.exists else log_snap
    if earlier.exists:
        return UsageReads(earlier=earlier.to_dict() or {})
    if not user_snap.exists:
        return UsageReads()
    user = user_snap.to_dict() or {}
    limits = {
        t: (s.to_dict() if s.exists else None)
        for t, s in zip(config.USER_TYPES, snaps[4 : 4 + len(config.USER_TYPES)], strict=True)
    }
    engine = engine_snap.to_dict() if engine_snap.exists else None

    looked_up = needs_tier_lookup(event, user, kaiwa)
    monthly = event.conversation_seconds is not None
    subscription_tier = config.kaiwa_tier_id(unit, event.user_id) if looked_up or monthly else None
    plan_id = config.plan_of(
        event.subscription_plan,
        user,
        subscription_tier=subscription_tier if looked_up else None,
        kaiwa=kaiwa,
    )
    history: list[EngineCost] = []
    if _live_effective_after(engine, event.engine_id, at):
        history = config.engine_history_before(unit, event.engine_id, at)

    # One more round trip: the plan (when the message did not name it) and the month's.
    second = [r.plan(plan_id)]
    tier_id = monthly_tier_id(subscription_tier, kaiwa) if monthly else None
    if monthly:
        second.append(r.monthly(event.user_id, period))
        if tier_id is not None:
            second.append(r.tier(tier_id))
        if event.conversation_id is not None:
            second.append(r.conversation(event.user_id, period, event.conversation_id))
    plan_snap, *rest = unit.get_all(second)
    usage_snap = tier_snap = marker_snap = None
    if monthly:
        usage_snap, rest = rest[0], rest[1:]
        if tier_id is not None:
            tier_snap, rest = rest[0], rest[1:]
        if event.conversation_id is not None:
            marker_snap = rest[0]
    balance = ledger.account(unit, event.user_id).balance if event.credits_used > 0 else 0
    return UsageReads(
        user=user,
        subscription_tier=subscription_tier,
        plan_id=plan_id,
        plan=plan_snap.to_dict() if plan_snap.exists else None,
        engine=engine,
        engine_history=tuple(history),
        token_limits=limits,
        balance=balance,
        monthly=(usage_snap.to_dict() or {})
        if usage_snap is not None and usage_snap.exists
        else None,
        tier=tier_snap.to_dict() if tier_snap is not None and tier_snap.exists else None,
        conversation_seen=marker_snap is not None and marker_snap.exists,
    )


def engine_version(
    engine_id: str,
    current: Mapping[str, Any] | None,
    history: Sequence[EngineCost],
    at: datetime,
) -> EngineCost:
    """The engine's cost version in force at ``at``; InvalidInput when unknown or inactive."""
    if current is None:
        raise InvalidInput(f"unknown engine {engine_id}")
    live = EngineCost.from_doc(engine_id, current)
    version = pick_version(live, list(history), at)
    if version is None:
        raise InvalidInput(f"unknown engine {engine_id}")
    if not version.is_active:
        raise InvalidInput(f"engine {engine_id} was not active at {at.isoformat()}")
    return version


def decide_usage(
    event: UsageEvent, reads: UsageReads, *, log_id: str, digest: str, moment: Moment
) -> UsagePlan:
    """Price, deduct and count one usage event (pure: every input is in ``reads``)."""
    if reads.earlier is not None:
        found = reads.earlier
        if found.get("message_sha256") not in (None, digest):
            raise Conflict(f"request_id {event.request_id} was already metered with other content")
        replay = Metered(
            log_id,
            True,
            int(found.get("credits_deducted") or 0),
            int(found.get("credits_shortfall") or 0),
        )
        return UsagePlan(log_id, replay=replay)
    if reads.user is None:
        raise NotFound(f"unknown user {event.user_id}")
    at, now = moment.at, moment.now
    pricing = config.plan_pricing(reads.plan_id, reads.plan)
    engine = engine_version(event.engine_id, reads.engine, reads.engine_history, at)
    priced = price_usage(event.usage_units, engine, pricing)

    debit = None
    deducted = shortfall = 0
    if event.credits_used > 0:
        note = _shortfall_note(max(0, event.credits_used - reads.balance))
        debit = Debit(event.credits_used, f"Usage of {event.engine_id} ({event.request_id})" + note)
        # What the partial debit takes of this balance (the apply step writes its result).
        deducted = max(0, min(event.credits_used, reads.balance))
        shortfall = event.credits_used - deducted

    meta = event.request_meta
    log_doc: dict[str, Any] = {
        "user_id": event.user_id,
        "subscription_plan": reads.plan_id,
        "ai_type": engine.ai_type,
        "engine_id": event.engine_id,
        "usage_units": units_number(event.usage_units),
        "credits_used": event.credits_used,
        "created_at": at,
        "real_cost_usd": stored_number(priced.real_cost_usd),
        "revenue_estimated_usd": stored_number(priced.revenue_estimated_usd),
        "profit_usd": stored_number(priced.profit_usd),
        "profit_margin_percent": stored_number(priced.profit_margin_percent),
        "pricing_source": priced.pricing_source,
        "request_id": event.request_id,
        "country_code": meta.country_code,
        "device_type": meta.device_type,
        "generation_time_ms": meta.generation_time_ms,
        # Extras (docs/usage.md): what was applied and what could not be taken.
        "unit_type": engine.unit_type,
        "cost_per_unit_usd": stored_number(engine.cost_per_unit),
        "credits_deducted": deducted,
        "credits_shortfall": shortfall,
        "transaction_id": None,
        "tokens": event.tokens,
        "conversation_seconds": event.conversation_seconds,
        "processed_at": now,
        "message_sha256": digest,
        # The Firestore TTL policy deletes the log at this time (002: 90 days).
        "expires_at": at + timedelta(days=USAGE_LOG_DAYS_KEPT),
    }
    receipt = None
    if needs_receipt(at, now):
        receipt = {
            "request_id": event.request_id,
            "user_id": event.user_id,
            "message_sha256": digest,
            "credits_deducted": deducted,
            "credits_shortfall": shortfall,
            "received_at": now,
            "expires_at": now + timedelta(days=RECEIPT_DAYS_KEPT),
        }

    daily = None
    if event.tokens > 0:
        user_type = config.user_type_for(reads.plan)
        daily = {
            "userId": event.user_id,
            "date": moment.day,
            "tokensUsed": firestore.Increment(event.tokens),
            "tokenLimit": config.token_limit(user_type, reads.token_limits.get(user_type)),
            "userType": user_type,
            "lastUpdated": now,
            "resetAt": moment.reset_at,
        }

    marker = monthly = None
    if event.conversation_seconds is not None:
        new_conversation = 1
        if event.conversation_id is not None:
            if reads.conversation_seen:
                new_conversation = 0
            else:
                marker = {
                    "userId": event.user_id,
                    "period": moment.period,
                    "conversationId": event.conversation_id,
                    "createdAt": now,
                    # For a TTL policy: a marker matters only within its month.
                    "expiresAt": moment.period_end + timedelta(days=31),
                }
        realtime = 1 if event.conversation_mode == "realtime" and new_conversation else 0
        # Read-then-write (not a blind Increment): the seconds past the month's allowance
        # come out of the bank, which depends on what is already used; the write carries
        # "unchanged since read", so concurrent events never double-count.
        usage = reads.monthly or {}
        split = split_seconds(reads.tier, usage, event.conversation_seconds)
        monthly = {
            "userId": event.user_id,
            "period": moment.period,
            "conversationsUsed": int(usage.get("conversationsUsed") or 0) + new_conversation,
            "secondsUsed": int(usage.get("secondsUsed") or 0) + split.regular,
            "realtimeSessionsUsed": int(usage.get("realtimeSessionsUsed") or 0) + realtime,
            "bankedSecondsUsed": int(usage.get("bankedSecondsUsed") or 0) + split.banked,
            "updatedAt": now,
        }
        if reads.monthly is None:
            monthly["bankedSeconds"] = 0
    return UsagePlan(
        log_id,
        debit=debit,
        log=log_doc,
        receipt=receipt,
        daily=daily,
        marker=marker,
        monthly=monthly,
        monthly_exists=reads.monthly is not None,
    )


def apply_usage(
    unit: Unit, event: UsageEvent, plan: UsagePlan, *, period: str, day: str
) -> Metered:
    """Write the plan: the deduction, the log and receipt, the counters."""
    if plan.replay is not None:
        return plan.replay
    ledger = ledger_for()
    r = config.refs(unit.db)
    log_doc = dict(plan.log)
    receipt = dict(plan.receipt) if plan.receipt is not None else None
    deducted = shortfall = 0
    if plan.debit is not None:
        result = ledger.debit(
            unit,
            user_id=event.user_id,
            amount=plan.debit.amount,
            key=posting_key("usage", event.request_id),
            description=plan.debit.description,
            refs=Refs(reference_id=event.request_id, job_id=event.job_id),
            allow_partial=True,
        )
        deducted, shortfall = -result.amount, result.shortfall
        log_doc["transaction_id"] = result.transaction_id
    for doc in (log_doc, receipt):
        if doc is not None:
            doc["credits_deducted"], doc["credits_shortfall"] = deducted, shortfall
    unit.create(r.log(plan.log_id), log_doc)
    if receipt is not None:
        unit.create(unit.db.collection(RECEIPTS).document(plan.log_id), receipt)
    if plan.daily is not None:
        unit.merge(r.daily(event.user_id, day), plan.daily)
    if plan.marker is not None and event.conversation_id is not None:
        unit.create(r.conversation(event.user_id, period, event.conversation_id), plan.marker)
    if plan.monthly is not None:
        usage_ref = r.monthly(event.user_id, period)
        if plan.monthly_exists:
            unit.update(usage_ref, plan.monthly)
        else:
            unit.create(usage_ref, plan.monthly)
    count_usage(unit, log_doc)
    return Metered(plan.log_id, False, deducted, shortfall)


def meter_usage(
    db: firestore.Client, event: UsageEvent, *, publish_time: datetime | None = None
) -> Metered:
    """Record one usage event exactly once (see the module docstring): read, decide, apply."""
    settings = get_settings()
    now = get_clock().now()
    at = event_time(event, publish_time, now)
    moment = moment_of(at, now, settings.token_day_timezone)
    log_id = usage_log_id(event.request_id)
    digest = fingerprint(event.model_dump(mode="json"))
    kaiwa = settings.schema_profile == "kaiwa"

    def work(unit: Unit) -> Metered:
        reads = read_usage(unit, event, log_id=log_id, at=at, period=moment.period, kaiwa=kaiwa)
        plan = decide_usage(event, reads, log_id=log_id, digest=digest, moment=moment)
        return apply_usage(unit, event, plan, period=moment.period, day=moment.day)

    # Group commit: one user's concurrent usage events share commits (docs/ledger.md).
    result = ledger_for().run(work, account=event.user_id, now=now)
    if result.credits_shortfall and not result.replayed:
        log(
            logger,
            logging.WARNING,
            "usage exceeded the balance; shortfall recorded",
            user_id=event.user_id,
            request_id=event.request_id,
            shortfall=result.credits_shortfall,
        )
    return result
