"""Meter one ``usage-events`` message in ONE atomic unit.

The unit writes, all or nothing:
- ``usage_receipts/{usage_log_id(request_id)}``, the once-only record: created only if
  absent, so a duplicate ``request_id`` (even racing) is a replay that writes nothing. It
  lives ``RECEIPT_DAYS_KEPT`` days from its *receipt*, longer than any redelivery (Pub/Sub
  keeps a message at most 31 days), whatever ``created_at`` the sender wrote; the usage
  log itself expires 90 days after ``created_at`` (002), which may be any time;
- ``usage_logs/{usage_log_id(request_id)}`` with every field of 002 (plus the documented
  extras ``credits_shortfall``, ``transaction_id``, ...);
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
from dataclasses import dataclass
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
    fingerprint,
    month_period,
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


def meter_usage(
    db: firestore.Client, event: UsageEvent, *, publish_time: datetime | None = None
) -> Metered:
    """Record one usage event exactly once (see the module docstring)."""
    settings = get_settings()
    clock = get_clock()
    ledger = ledger_for()
    r = config.refs(db)
    now = clock.now()
    at = event_time(event, publish_time, now)
    log_id = usage_log_id(event.request_id)
    usage_key = posting_key("usage", event.request_id)
    digest = fingerprint(event.model_dump(mode="json"))
    day, reset_at = token_day(at, settings.token_day_timezone)
    period, period_end = month_period(at, settings.token_day_timezone)

    receipt_ref = db.collection(RECEIPTS).document(log_id)
    kaiwa = settings.schema_profile == "kaiwa"

    def work(unit: Unit) -> Metered:
        log_ref = r.log(log_id)
        user_ref = ledger.user_ref(event.user_id)
        # One round trip for everything this unit may read (later gets hit the unit's cache).
        prefetch = [receipt_ref, log_ref, user_ref, r.engine(event.engine_id)]
        prefetch += [r.token_limit(t) for t in config.USER_TYPES]
        if event.credits_used > 0:
            prefetch.append(ledger.posting_ref(transaction_id_for(usage_key)))
        if event.subscription_plan:
            prefetch.append(r.plan(event.subscription_plan))
        receipt_snap, log_snap, user_snap, engine_snap = unit.get_all(prefetch)[:4]
        # The receipt; a log written before receipts existed is one too while it lasts.
        earlier = receipt_snap if receipt_snap.exists else log_snap
        if earlier.exists:
            found = earlier.to_dict() or {}
            if found.get("message_sha256") not in (None, digest):
                raise Conflict(
                    f"request_id {event.request_id} was already metered with other content"
                )
            return Metered(
                log_id,
                True,
                int(found.get("credits_deducted") or 0),
                int(found.get("credits_shortfall") or 0),
            )
        if not user_snap.exists:
            raise NotFound(f"unknown user {event.user_id}")
        user = user_snap.to_dict() or {}
        # A user without ``users.tier`` (every Kaiwa user) is on their active
        # subscription's ``tierId``, as it stands when the event is metered.
        subscription_tier = None
        looked_up = not event.subscription_plan and (kaiwa or not user.get("tier"))
        if looked_up:
            subscription_tier = config.kaiwa_tier_id(db, event.user_id)
        plan_id = config.plan_of(
            event.subscription_plan, user, subscription_tier=subscription_tier, kaiwa=kaiwa
        )
        plan_snap = unit.get(r.plan(plan_id))
        plan_data = plan_snap.to_dict() if plan_snap.exists else None
        pricing = config.plan_pricing(plan_id, plan_data)
        engine = config.engine_cost_at(
            db, event.engine_id, engine_snap.to_dict() if engine_snap.exists else None, at
        )
        priced = price_usage(event.usage_units, engine, pricing)

        deducted = shortfall = 0
        transaction_id = None
        if event.credits_used > 0:
            available = ledger.account(unit, event.user_id).balance
            shortfall = max(0, event.credits_used - available)
            result = ledger.debit(
                unit,
                user_id=event.user_id,
                amount=event.credits_used,
                key=usage_key,
                description=f"Usage of {event.engine_id} ({event.request_id})"
                + _shortfall_note(shortfall),
                refs=Refs(reference_id=event.request_id, job_id=event.job_id),
                allow_partial=True,
            )
            deducted, shortfall = -result.amount, result.shortfall
            transaction_id = result.transaction_id

        meta = event.request_meta
        log_doc: dict[str, Any] = {
            "user_id": event.user_id,
            "subscription_plan": plan_id,
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
            "transaction_id": transaction_id,
            "tokens": event.tokens,
            "conversation_seconds": event.conversation_seconds,
            "processed_at": now,
            "message_sha256": digest,
            # The Firestore TTL policy deletes the log at this time (002: 90 days).
            "expires_at": at + timedelta(days=USAGE_LOG_DAYS_KEPT),
        }
        unit.create(log_ref, log_doc)
        unit.create(
            receipt_ref,
            {
                "request_id": event.request_id,
                "user_id": event.user_id,
                "message_sha256": digest,
                "credits_deducted": deducted,
                "credits_shortfall": shortfall,
                "received_at": now,
                "expires_at": now + timedelta(days=RECEIPT_DAYS_KEPT),
            },
        )

        if event.tokens > 0:
            user_type = config.user_type_for(plan_data)
            limit_snap = unit.get(r.token_limit(user_type))
            limit = config.token_limit(
                user_type, limit_snap.to_dict() if limit_snap.exists else None
            )
            unit.merge(
                r.daily(event.user_id, day),
                {
                    "userId": event.user_id,
                    "date": day,
                    "tokensUsed": firestore.Increment(event.tokens),
                    "tokenLimit": limit,
                    "userType": user_type,
                    "lastUpdated": now,
                    "resetAt": reset_at,
                },
            )

        if event.conversation_seconds is not None:
            new_conversation = 1
            if event.conversation_id is not None:
                marker = r.conversation(event.user_id, period, event.conversation_id)
                if unit.get(marker).exists:
                    new_conversation = 0
                else:
                    unit.create(
                        marker,
                        {
                            "userId": event.user_id,
                            "period": period,
                            "conversationId": event.conversation_id,
                            "createdAt": now,
                            # For a TTL policy: a marker matters only within its month.
                            "expiresAt": period_end + timedelta(days=31),
                        },
                    )
            realtime = 1 if event.conversation_mode == "realtime" and new_conversation else 0
            # Read-then-write (not a blind Increment): the seconds past the month's
            # allowance come out of the bank, which depends on what is already used; the
            # write carries "unchanged since read", so concurrent events never double-count.
            tier_id = subscription_tier if looked_up else config.kaiwa_tier_id(db, event.user_id)
            if tier_id is None and kaiwa:
                tier_id = config.DEFAULT_PLAN
            usage_ref = r.monthly(event.user_id, period)
            if tier_id is not None:
                usage_snap, tier_snap = unit.get_all([usage_ref, r.tier(tier_id)])
                tier = tier_snap.to_dict() if tier_snap.exists else None
            else:
                usage_snap, tier = unit.get(usage_ref), None
            usage = (usage_snap.to_dict() or {}) if usage_snap.exists else {}
            split = split_seconds(tier, usage, event.conversation_seconds)
            counters = {
                "userId": event.user_id,
                "period": period,
                "conversationsUsed": int(usage.get("conversationsUsed") or 0) + new_conversation,
                "secondsUsed": int(usage.get("secondsUsed") or 0) + split.regular,
                "realtimeSessionsUsed": int(usage.get("realtimeSessionsUsed") or 0) + realtime,
                "bankedSecondsUsed": int(usage.get("bankedSecondsUsed") or 0) + split.banked,
                "updatedAt": now,
            }
            if usage_snap.exists:
                unit.update(usage_ref, counters)
            else:
                unit.create(usage_ref, {**counters, "bankedSeconds": 0})

        count_usage(unit, log_doc)
        return Metered(log_id, False, deducted, shortfall)

    # Group commit: one user's concurrent usage events share commits (docs/ledger.md).
    result = ledger.run(work, account=event.user_id, now=now)
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
