"""The usage-limits check: may a user spend ``tokens`` more today (and this month)?

Daily (003, Token Tracking): ``allowed`` is ``tokensUsed + tokens <= tokenLimit`` for the
user's ``daily_token_usage/{userId}_{today}`` (today and ``resetAt`` in
``settings.token_day_timezone``); the limit is the current ``token_limits/{userType}``.
Monthly (001, Kaiwa): when the user has a tier, ``monthly`` reports ``userUsage`` for the
current ``YYYY-MM`` against the tier's limits (see docs/usage.md for every key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.cloud import firestore

from shared.accountstatus import refusal as status_refusal
from shared.atomic import Unit, run_atomically
from shared.errors import Forbidden, NotFound
from shared.ledger import ledger_for
from shared.settings import get_settings
from shared.usage import config
from shared.usage.model import LimitsCheck
from shared.usage.pricing import month_period, token_day

UNLIMITED = -1


@dataclass(frozen=True)
class LimitsAnswer:
    """The response body and whether the daily limit would be exceeded."""

    body: dict[str, Any]
    allowed: bool
    status: int = 200


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _limit(value: Any) -> int | None:
    """A tier limit: a non-negative int, or None for unlimited (absent, null or -1)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return int(value)


def _within(used: int, adding: int, limit: int | None) -> bool:
    return limit is None or used + adding <= limit


@dataclass(frozen=True)
class Refusal:
    """Why a Kaiwa conversation may not start: the limit's name, status and a sentence."""

    limit: str
    status: int  # 429 (a limit reached) or 403 (a feature the tier lacks)
    detail: str


def kaiwa_refusal(
    tier_id: str, tier: dict[str, Any], report: dict[str, Any], seconds: int, realtime: bool
) -> Refusal | None:
    """The first of the tier's limits a new conversation would break (pure), else None.

    Order: a feature the tier lacks (realtime access, 403), then realtime sessions, the
    session length, conversations and seconds (429); the seconds include the banked
    seconds still unused.
    """
    reset = report["resetAt"]
    if realtime and tier.get("hasRealtimeAccess") is not True:
        return Refusal(
            "hasRealtimeAccess", 403, f"the {tier_id} tier has no realtime conversations"
        )
    realtime_limit = report["monthlyRealtimeSessions"]
    if realtime and realtime_limit is not None and report["realtimeSessionsUsed"] >= realtime_limit:
        return Refusal(
            "monthlyRealtimeSessions",
            429,
            f"{realtime_limit} realtime sessions a month on {tier_id} used; resets {reset}",
        )
    max_length = _limit(tier.get("maxSessionLengthSeconds"))
    if max_length is not None and seconds > max_length:
        return Refusal(
            "maxSessionLengthSeconds",
            429,
            f"a session on {tier_id} lasts at most {max_length} seconds",
        )
    conversations = report["monthlyConversations"]
    if conversations is not None and report["conversationsUsed"] >= conversations:
        return Refusal(
            "monthlyConversations",
            429,
            f"{conversations} conversations a month on {tier_id} used; resets {reset}",
        )
    available = report["secondsAvailable"]
    if not _within(report["secondsUsed"], seconds, available):
        return Refusal(
            "monthlySeconds",
            429,
            f"{available} seconds this month on {tier_id} (with banked seconds) would be "
            f"exceeded; resets {reset}",
        )
    return None


@dataclass(frozen=True)
class SecondsSplit:
    """Where one conversation's seconds go in ``userUsage``: the allowance or the bank."""

    regular: int  # added to ``secondsUsed`` (the allowance, and any excess past both)
    banked: int  # added to ``bankedSecondsUsed``


def split_seconds(tier: dict[str, Any] | None, usage: dict[str, Any], seconds: int) -> SecondsSplit:
    """Split ``seconds`` used by a Kaiwa user between the month's allowance and the bank (pure).

    The allowance (``monthlySeconds``) is used first; seconds beyond it come out of the
    banked seconds still unused (``bankedSeconds - bankedSecondsUsed``), on a tier with
    ``sessionBankingEnabled`` and a limited allowance. Seconds beyond both (the use already
    happened) count in ``secondsUsed``, past the allowance. So what is left is always
    ``(monthlySeconds - secondsUsed) + (bankedSeconds - bankedSecondsUsed)``.
    """
    seconds = max(0, int(seconds))
    tier = tier or {}
    allowance = _limit(tier.get("monthlySeconds"))
    if tier.get("sessionBankingEnabled") is not True or allowance is None:
        return SecondsSplit(seconds, 0)
    used = int(usage.get("secondsUsed") or 0)
    bank_left = max(
        0, int(usage.get("bankedSeconds") or 0) - int(usage.get("bankedSecondsUsed") or 0)
    )
    from_allowance = min(seconds, max(0, allowance - used))
    from_bank = min(seconds - from_allowance, bank_left)
    return SecondsSplit(seconds - from_bank, from_bank)


def monthly_report(
    tier_id: str,
    tier: dict[str, Any],
    usage: dict[str, Any],
    period: str,
    reset_at: datetime,
    seconds: int,
) -> dict[str, Any]:
    """Kaiwa's monthly usage of one user against ``tiers/{tier_id}`` (pure)."""
    banking = tier.get("sessionBankingEnabled") is True
    banked = int(usage.get("bankedSeconds") or 0) if banking else 0
    banked_used = int(usage.get("bankedSecondsUsed") or 0) if banking else 0
    conversations_used = int(usage.get("conversationsUsed") or 0)
    seconds_used = int(usage.get("secondsUsed") or 0)
    realtime_used = int(usage.get("realtimeSessionsUsed") or 0)
    conversations_limit = _limit(tier.get("monthlyConversations"))
    seconds_limit = _limit(tier.get("monthlySeconds"))
    realtime_limit = _limit(tier.get("monthlyRealtimeSessions"))
    seconds_available = (
        None if seconds_limit is None else seconds_limit + max(0, banked - banked_used)
    )
    # A new conversation of ``seconds`` fits: one conversation left, and its seconds.
    allowed = (conversations_limit is None or conversations_used < conversations_limit) and _within(
        seconds_used, seconds, seconds_available
    )
    return {
        "tierId": tier_id,
        "period": period,
        "conversationsUsed": conversations_used,
        "monthlyConversations": conversations_limit,
        "secondsUsed": seconds_used,
        "monthlySeconds": seconds_limit,
        "bankedSeconds": banked,
        "bankedSecondsUsed": banked_used,
        "secondsAvailable": seconds_available,
        "realtimeSessionsUsed": realtime_used,
        "monthlyRealtimeSessions": realtime_limit,
        "sessionBankingEnabled": banking,
        "allowed": allowed,
        "resetAt": _iso(reset_at),
    }


@dataclass(frozen=True)
class LimitsReads:
    """Everything one usage-limits check decides on, read through the unit.

    ``user`` is None when ``users/{userId}`` is missing; then (and for an account that may
    not act) nothing else is used. ``tier`` is None when the user has no tier or
    ``tiers/{tierId}`` is missing (no ``monthly`` report then).
    """

    user: dict[str, Any] | None
    day_reset_at: datetime
    period: str
    month_reset_at: datetime
    user_type: str = "trial"
    token_limit: dict[str, Any] | None = None  # token_limits/{userType}, None when missing
    daily: dict[str, Any] | None = None  # daily_token_usage/{userId}_{day}
    loss: dict[str, Any] | None = None  # loss_users/{userId}
    tier_id: str | None = None
    tier: dict[str, Any] | None = None  # tiers/{tierId}
    monthly: dict[str, Any] | None = None  # userUsage/{userId}_{period}


def check_limits(db: firestore.Client, request: LimitsCheck, now: datetime) -> LimitsAnswer:
    """Answer ``POST /usage-limits/check`` for ``request`` at ``now``.

    Read through a unit with no writes: a refusal (404, 403) is given only if what it was
    decided on (documents and the subscription query) is still current.
    """
    loss_cap = max(0, get_settings().loss_rate_limited_daily_tokens)
    return run_atomically(
        db, lambda unit: decide_limits(read_limits(unit, request, now), request, loss_cap)
    )


def read_limits(unit: Unit, request: LimitsCheck, now: datetime) -> LimitsReads:
    """Read what the check needs in three round trips (one when the user is missing or may
    not act): the user with every document whose id is known up front, the subscription
    query, then the plan, the tier and the month's usage."""
    settings = get_settings()
    db = unit.db
    r = config.refs(db)
    day, day_reset_at = token_day(now, settings.token_day_timezone)
    period, month_reset_at = month_period(now, settings.token_day_timezone)
    first = [
        ledger_for().user_ref(request.user_id),
        r.daily(request.user_id, day),
        db.collection("loss_users").document(request.user_id),
    ]
    first += [r.token_limit(t) for t in config.USER_TYPES]
    user_snap, daily_snap, loss_snap, *limit_snaps = unit.get_all(first)
    user = (user_snap.to_dict() or {}) if user_snap.exists else None
    if user is None or status_refusal(user) is not None:
        return LimitsReads(user, day_reset_at, period, month_reset_at)
    kaiwa = settings.schema_profile == "kaiwa"
    subscription_tier = config.kaiwa_tier_id(unit, request.user_id)
    plan_id = config.plan_of(None, user, subscription_tier=subscription_tier, kaiwa=kaiwa)
    tier_id = subscription_tier
    if tier_id is None and kaiwa:
        tier_id = config.DEFAULT_PLAN
    second = [r.plan(plan_id)]
    if tier_id is not None:
        second += [r.tier(tier_id), r.monthly(request.user_id, period)]
    plan_snap, *month_snaps = unit.get_all(second)
    user_type = config.user_type_for(plan_snap.to_dict() if plan_snap.exists else None)
    limits = dict(zip(config.USER_TYPES, limit_snaps, strict=True))
    limit_snap = limits[user_type]
    tier = monthly = None
    if month_snaps and month_snaps[0].exists:
        tier = month_snaps[0].to_dict() or {}
        monthly = (month_snaps[1].to_dict() or {}) if month_snaps[1].exists else {}
    return LimitsReads(
        user,
        day_reset_at,
        period,
        month_reset_at,
        user_type=user_type,
        token_limit=limit_snap.to_dict() if limit_snap.exists else None,
        daily=(daily_snap.to_dict() or {}) if daily_snap.exists else None,
        loss=(loss_snap.to_dict() or {}) if loss_snap.exists else None,
        tier_id=tier_id,
        tier=tier,
        monthly=monthly,
    )


def decide_limits(reads: LimitsReads, request: LimitsCheck, loss_cap: int) -> LimitsAnswer:
    """The answer to one usage-limits check (pure: every input is in ``reads``).

    404 for an unknown user, 403 for an account that may not act; else the daily check
    (``tokenLimit``, lowered to ``loss_cap`` for a loss user an operator rate-limited), then
    Kaiwa's monthly limits when the user has a tier. A refusal of a feature the tier lacks
    (403) wins over a limit reached (429); a daily limit reached wins over a monthly one.
    """
    if reads.user is None:
        raise NotFound(f"unknown user {request.user_id}")
    reason = status_refusal(reads.user)  # only an account that may act spends tokens (403)
    if reason is not None:
        raise Forbidden(reason)
    token_limit = config.token_limit(reads.user_type, reads.token_limit)
    # An operator's ``action_taken: rate_limited`` on the user's loss_users entry lowers the
    # limit until the action is cleared or the user stops losing money (the scan then
    # deletes the entry).
    if reads.loss is not None and reads.loss.get("action_taken") == "rate_limited":
        token_limit = min(token_limit, loss_cap)
    used = int((reads.daily or {}).get("tokensUsed") or 0)
    allowed = used + request.tokens <= token_limit
    body: dict[str, Any] = {
        "allowed": allowed,
        "tokensUsed": used,
        "tokenLimit": token_limit,
        "resetAt": _iso(reads.day_reset_at),
        "userType": reads.user_type,
    }
    status = 200 if allowed else 429
    if not allowed:
        body["limit"] = "tokenLimit"
        body["limitResetAt"] = body["resetAt"]
        body["detail"] = f"{token_limit} tokens a day would be exceeded; resets {body['resetAt']}"
    if reads.tier_id is None or reads.tier is None:
        return LimitsAnswer(body, status == 200, status)
    monthly = monthly_report(
        reads.tier_id,
        reads.tier,
        reads.monthly or {},
        reads.period,
        reads.month_reset_at,
        request.conversation_seconds,
    )
    body["monthly"] = monthly
    refusal = kaiwa_refusal(
        reads.tier_id,
        reads.tier,
        monthly,
        request.conversation_seconds,
        request.conversation_mode == "realtime",
    )
    # Kaiwa's monthly limits are enforced (a refusal, not advice); a feature the tier lacks
    # is 403 and wins over a limit reached.
    if refusal is not None:
        monthly["allowed"] = False
        body["allowed"] = False
        if status == 200 or refusal.status == 403:
            status = refusal.status
            body["limit"] = refusal.limit
            body["detail"] = refusal.detail
            monthly_limit = refusal.limit.startswith("monthly")
            body["limitResetAt"] = monthly["resetAt"] if monthly_limit else None
    return LimitsAnswer(body, status == 200, status)
