"""The scheduled analytics jobs: which period a message names, and the service for each.

A schedule message may name its period (``{"date": "YYYY-MM-DD"}``, ``{"month": "YYYY-MM"}``);
without it the period is the one that ended at the message's publish time (the schedule's
own time, so a redelivery or rerun computes the same period), never the wall clock.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, field_validator

from shared.analytics.loss import LossScanReport, scan_losses
from shared.analytics.retention import RetentionReport, run_retention
from shared.analytics.rollover import rollover_month
from shared.analytics.rollups import Now, RollupReport, recheck_days, rollup_day, rollup_month
from shared.analytics.rules import parse_day, parse_month, previous_month
from shared.analytics.tokens import roll_token_day
from shared.clock import ensure_utc
from shared.logs import get_logger, log

logger = get_logger(__name__)


class DayRequest(BaseModel):
    """``{}`` or ``{"date": "YYYY-MM-DD"}``."""

    model_config = ConfigDict(extra="forbid")
    date: str | None = None

    @field_validator("date")
    @classmethod
    def _day(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_day(value)
            except ValueError:
                raise ValueError("date must be YYYY-MM-DD") from None
        return value


class MonthRequest(BaseModel):
    """``{}`` or ``{"month": "YYYY-MM"}``."""

    model_config = ConfigDict(extra="forbid")
    month: str | None = None

    @field_validator("month")
    @classmethod
    def _month(cls, value: str | None) -> str | None:
        if value is not None:
            parse_month(value)  # ValueError -> a validation error
        return value


def day_ended(request: DayRequest, scheduled_at: datetime) -> date:
    """The named day, else the UTC day that ended before ``scheduled_at``."""
    if request.date:
        return parse_day(request.date)
    return ensure_utc(scheduled_at).date() - timedelta(days=1)


def month_ended(request: MonthRequest, scheduled_at: datetime) -> tuple[int, int]:
    """The named month, else the UTC month that ended before ``scheduled_at``."""
    if request.month:
        return parse_month(request.month)
    at = ensure_utc(scheduled_at)
    return previous_month(at.year, at.month)


def scan_instant(request: DayRequest, scheduled_at: datetime) -> datetime:
    """The loss scan's instant: the end of a named day, else the schedule's time."""
    if request.date:
        return datetime.combine(parse_day(request.date), time(23, 59, 59), tzinfo=UTC)
    return ensure_utc(scheduled_at)


def daily_rollup(db: firestore.Client, day: date, *, now: Now) -> RollupReport:
    """Token history and the daily aggregate of ``day``; then late data of the week before."""
    # Token days are dates in the metering's token-day time zone: one west of UTC ends
    # after this run, so the day before is folded in again (a set: idempotent).
    tokens = roll_token_day(db, day)
    earlier = roll_token_day(db, day - timedelta(days=1))
    report = rollup_day(db, day, now=now)
    report.documents_read += tokens.documents_read + earlier.documents_read
    before = len(report.rechecked)
    recheck_days(db, day, now=now, report=report)
    for other in report.rechecked[before:]:  # late usage may carry late tokens too
        report.documents_read += roll_token_day(db, parse_day(other)).documents_read
    log(
        logger,
        logging.INFO,
        "daily rollup",
        day=day.isoformat(),
        written=report.written,
        reads=report.reads,
        rechecked=report.rechecked,
        token_users=tokens.users,
    )
    return report


def monthly_rollup(
    db: firestore.Client, year: int, month: int, *, now: Now, as_of: date
) -> dict[str, Any]:
    """Monthly, yearly and all-time aggregates, then the Kaiwa usage rollover."""
    report = rollup_month(db, year, month, now=now, as_of=as_of)
    rollover = rollover_month(db, year, month, updated_at=now())
    log(
        logger,
        logging.INFO,
        "monthly rollup",
        month=f"{year:04d}-{month:02d}",
        written=report.written,
        reads=report.reads,
        rollover_users=rollover.users,
        banked_users=rollover.banked_users,
    )
    return {"report": report, "rollover": rollover}


def loss_scan(db: firestore.Client, at: datetime) -> LossScanReport:
    report = scan_losses(db, at)
    log(
        logger,
        logging.INFO,
        "loss scan",
        at=at.isoformat(),
        in_loss=len(report.in_loss),
        detected=len(report.detected),
        recovered=len(report.recovered),
        reads=report.documents_read,
    )
    return report


def retention(db: firestore.Client, as_of: datetime, *, recorded_at: datetime) -> RetentionReport:
    report = run_retention(db, as_of, recorded_at=recorded_at)
    log(logger, logging.INFO, "retention", as_of=as_of.isoformat(), **report.as_dict())
    return report
