"""The pure rules of ``model_quotas``: windows, counting, status levels and their alerts.

A quota counts one ``quota_type`` (requests, tokens, cost) of one provider model in a
window aligned to its ``reset_period`` (hourly: on the hour; daily: at 00:00 UTC).
``reset_at`` is the end of the current window. An event counts in the window that contains
its ``occurred_at``: in the current one; in a newer one (the quota rolls over first, the
same thing ``cron-reset-quotas`` does for idle quotas); never in an older one (that window
was already reset). Cost is counted in integer micro-dollars (USD x 1,000,000), exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from shared.providers.core import Alert, AlertType, Thresholds


class QuotaType(StrEnum):
    """``model_quotas.quota_type``."""

    REQUESTS = "requests"
    TOKENS = "tokens"
    COST = "cost"


class ResetPeriod(StrEnum):
    """``model_quotas.reset_period``."""

    HOURLY = "hourly"
    DAILY = "daily"


class QuotaStatus(StrEnum):
    """``model_quotas.status``, in increasing order of severity."""

    AVAILABLE = "available"
    WARNING = "warning"
    CRITICAL = "critical"
    EXHAUSTED = "exhausted"


LEVELS = (QuotaStatus.AVAILABLE, QuotaStatus.WARNING, QuotaStatus.CRITICAL, QuotaStatus.EXHAUSTED)
ALERT_FOR = {
    QuotaStatus.WARNING: AlertType.QUOTA_WARNING,
    QuotaStatus.CRITICAL: AlertType.QUOTA_CRITICAL,
    QuotaStatus.EXHAUSTED: AlertType.QUOTA_EXHAUSTED,
}
MICRO_USD = Decimal(1_000_000)


def quota_id(provider: str, model_id: str, quota_type: QuotaType | str) -> str:
    """The document id ``{provider}_{model_id}_{quota_type}`` (seed 000)."""
    return f"{provider}_{model_id}_{QuotaType(quota_type).value}"


def usd_to_micro(amount_usd: Decimal) -> int:
    """An exact USD amount as integer micro-dollars (half-up below one micro-dollar)."""
    return int((amount_usd * MICRO_USD).to_integral_value(rounding=ROUND_HALF_UP))


def window_start(at: datetime, period: ResetPeriod) -> datetime:
    """The start of the window of ``period`` containing ``at`` (UTC)."""
    start = at.replace(minute=0, second=0, microsecond=0)
    if period == ResetPeriod.DAILY:
        start = start.replace(hour=0)
    return start


def window_end(at: datetime, period: ResetPeriod) -> datetime:
    """The end of the window containing ``at``: the ``reset_at`` of that window."""
    step = timedelta(days=1) if period == ResetPeriod.DAILY else timedelta(hours=1)
    return window_start(at, period) + step


def level(used: int, limit: int, th: Thresholds) -> QuotaStatus:
    """available < warning_pct <= warning < critical_pct <= critical < 100% = exhausted."""
    if limit <= 0 or used >= limit:
        return QuotaStatus.EXHAUSTED
    if used * 100 >= th.quota_critical_pct * limit:
        return QuotaStatus.CRITICAL
    if used * 100 >= th.quota_warning_pct * limit:
        return QuotaStatus.WARNING
    return QuotaStatus.AVAILABLE


@dataclass(frozen=True)
class Quota:
    """One ``model_quotas`` document as values."""

    provider: str
    model_id: str
    quota_type: QuotaType
    limit: int
    used: int
    reset_at: datetime
    reset_period: ResetPeriod
    status: QuotaStatus = QuotaStatus.AVAILABLE

    @property
    def quota_id(self) -> str:
        return quota_id(self.provider, self.model_id, self.quota_type)

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def window_start(self) -> datetime:
        step = timedelta(days=1) if self.reset_period == ResetPeriod.DAILY else timedelta(hours=1)
        return self.reset_at - step

    def document(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model_id": self.model_id,
            "quota_type": self.quota_type.value,
            "limit": self.limit,
            "used": self.used,
            "remaining": self.remaining,
            "reset_at": self.reset_at,
            "reset_period": self.reset_period.value,
            "status": self.status.value,
        }

    @classmethod
    def from_document(cls, data: dict[str, Any]) -> Quota:
        return cls(
            provider=str(data["provider"]),
            model_id=str(data["model_id"]),
            quota_type=QuotaType(data["quota_type"]),
            limit=int(data["limit"]),
            used=int(data.get("used") or 0),
            reset_at=data["reset_at"],
            reset_period=ResetPeriod(data.get("reset_period") or ResetPeriod.HOURLY),
            status=QuotaStatus(data.get("status") or QuotaStatus.AVAILABLE),
        )


def quota_alert_id(q: Quota, status: QuotaStatus) -> str:
    """One alert per quota, window and level reached."""
    return f"{q.quota_id}_{ALERT_FOR[status].value}_{q.window_start.strftime('%Y%m%d%H')}"


@dataclass(frozen=True)
class QuotaChange:
    """What counting or resetting did to one quota."""

    quota: Quota
    counted: bool
    rolled: bool
    raised: tuple[Alert, ...]
    resolved: tuple[tuple[str, datetime], ...]  # (alert id, resolved_at)

    @property
    def changed(self) -> bool:
        return self.counted or self.rolled


def _levels_reached(status: QuotaStatus) -> list[QuotaStatus]:
    return list(LEVELS[1 : LEVELS.index(status) + 1])


def roll(q: Quota, at: datetime, th: Thresholds) -> tuple[Quota, tuple[tuple[str, datetime], ...]]:
    """Start the window containing ``at`` if ``q``'s window ended by then."""
    if at < q.reset_at:
        return q, ()
    resolved = tuple((quota_alert_id(q, s), q.reset_at) for s in _levels_reached(q.status))
    fresh = replace(
        q,
        used=0,
        reset_at=window_end(at, q.reset_period),
        status=level(0, q.limit, th),
    )
    return fresh, resolved


def count(q: Quota, at: datetime, amount: int, th: Thresholds) -> QuotaChange:
    """Count ``amount`` used at event time ``at`` (rolling the window first if due)."""
    rolled_q, resolved = roll(q, at, th)
    rolled = rolled_q is not q
    if at < rolled_q.window_start:
        return QuotaChange(q, False, False, (), ())  # an event of a window already reset
    used = rolled_q.used + max(0, amount)
    new_status = level(used, rolled_q.limit, th)
    before = LEVELS.index(rolled_q.status)
    after = LEVELS.index(new_status)
    updated = replace(rolled_q, used=used, status=new_status)
    raised = tuple(
        Alert(
            quota_alert_id(updated, s),
            ALERT_FOR[s],
            q.provider,
            f"{q.quota_type.value} quota of {q.provider} {q.model_id} is {s.value}: "
            f"{used} of {q.limit} used in the {q.reset_period.value} window",
            at,
            {
                "quota_id": q.quota_id,
                "quota_type": q.quota_type.value,
                "quota_used": used,
                "quota_limit": q.limit,
                "quota_remaining": updated.remaining,
                "reset_at": updated.reset_at,
            },
            model_id=q.model_id,
        )
        for s in LEVELS[before + 1 : after + 1]
    )
    return QuotaChange(updated, True, rolled, raised, resolved)


def reset_due(q: Quota, now: datetime, th: Thresholds) -> QuotaChange:
    """What ``cron-reset-quotas`` does to one quota at ``now``."""
    rolled_q, resolved = roll(q, now, th)
    if rolled_q is q:
        return QuotaChange(q, False, False, (), ())
    return QuotaChange(rolled_q, False, True, (), resolved)
