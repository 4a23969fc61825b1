"""Pure money and calendar rules of usage metering (no I/O, no clock).

Money is computed with ``Decimal`` from the exact decimal values of the configuration and
the message, then rounded once per stored figure (see ``USD_QUANTUM``, ``PERCENT_QUANTUM``)
and stored as the schema's numbers (Firestore doubles). ``profit_usd`` is computed from the
two rounded figures, so the stored ``revenue - cost == profit`` holds exactly in decimal.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from shared.clock import ensure_utc
from shared.errors import InvalidInput

USD_QUANTUM = Decimal("0.000001")  # micro-dollars: cost, revenue and profit
PERCENT_QUANTUM = Decimal("0.01")  # profit_margin_percent, as in 002's examples
ROUNDING = ROUND_HALF_UP
ZERO = Decimal(0)
HUNDRED = Decimal(100)

PLAN_OVERRIDE = "plan_override"
ENGINE_DEFAULT = "engine_default"

_LOG_NAMESPACE = uuid.UUID("3b6f0c1e-52a4-5d7e-8f90-a1b2c3d4e5f6")


def to_decimal(value: Any, name: str) -> Decimal:
    """A configuration number (int, float, Decimal or numeric string) as an exact Decimal."""
    if isinstance(value, bool) or value is None:
        raise InvalidInput(f"{name} is not a number")
    try:
        if isinstance(value, float):
            number = Decimal(repr(value))
        elif isinstance(value, int | Decimal):
            number = Decimal(value)
        elif isinstance(value, str):
            number = Decimal(value.strip())
        else:
            raise InvalidInput(f"{name} is not a number")
    except InvalidOperation:
        raise InvalidInput(f"{name} is not a number") from None
    if not number.is_finite():
        raise InvalidInput(f"{name} is not a finite number")
    return number


def usd(value: Decimal) -> Decimal:
    """Round an amount of USD to the stored precision."""
    return value.quantize(USD_QUANTUM, rounding=ROUNDING)


def stored_number(value: Decimal) -> float:
    """The Firestore number stored for a rounded Decimal (the nearest double)."""
    return float(value)


def units_number(value: Decimal) -> int | float:
    """``usage_units`` as stored: an integer when whole, else a double."""
    return int(value) if value == value.to_integral_value() else float(value)


@dataclass(frozen=True)
class EngineCost:
    """One version of an ``ai_engine_costs`` document."""

    engine_id: str
    cost_per_unit: Decimal
    unit_type: str
    ai_type: str
    is_active: bool
    effective_from: datetime | None  # the document's updated_at

    @classmethod
    def from_doc(cls, engine_id: str, data: Mapping[str, Any]) -> EngineCost:
        cost = to_decimal(data.get("cost_per_unit"), f"ai_engine_costs/{engine_id}.cost_per_unit")
        if cost < 0:
            raise InvalidInput(f"ai_engine_costs/{engine_id}.cost_per_unit is negative")
        updated_at = data.get("updated_at") or data.get("effective_from")
        return cls(
            engine_id=engine_id,
            cost_per_unit=cost,
            unit_type=str(data.get("unit_type") or ""),
            ai_type=str(data.get("ai_type") or ""),
            is_active=data.get("is_active") is True,
            effective_from=ensure_utc(updated_at) if isinstance(updated_at, datetime) else None,
        )


@dataclass(frozen=True)
class PlanPricing:
    """One ``plan_pricing/{plan_id}`` document: what a plan's usage earns.

    ``engine_prices_usd`` maps engine ids to USD per unit (``plan_override``); any other
    engine earns its cost at the time times ``default_markup`` (``engine_default``).
    """

    plan_id: str
    engine_prices_usd: Mapping[str, Decimal]
    default_markup: Decimal
    user_type: str

    @classmethod
    def from_doc(cls, plan_id: str, data: Mapping[str, Any]) -> PlanPricing:
        raw = data.get("engine_prices_usd") or {}
        if not isinstance(raw, Mapping):
            raise InvalidInput(f"plan_pricing/{plan_id}.engine_prices_usd is not a map")
        prices = {
            str(k): to_decimal(v, f"plan_pricing/{plan_id}.engine_prices_usd.{k}")
            for k, v in raw.items()
        }
        markup = to_decimal(data.get("default_markup", 0), f"plan_pricing/{plan_id}.default_markup")
        if markup < 0 or any(p < 0 for p in prices.values()):
            raise InvalidInput(f"plan_pricing/{plan_id} has a negative price")
        user_type = str(data.get("user_type") or "trial")
        return cls(plan_id, prices, markup, user_type)


@dataclass(frozen=True)
class Priced:
    """The financial fields of one usage log, as exact rounded Decimals."""

    real_cost_usd: Decimal
    revenue_estimated_usd: Decimal
    profit_usd: Decimal
    profit_margin_percent: Decimal
    pricing_source: str
    price_per_unit_usd: Decimal | None  # the plan's override price, when one applied


def margin_percent(profit: Decimal, revenue: Decimal) -> Decimal:
    """``profit / revenue * 100``; with no revenue: 0 when nothing was lost, else -100."""
    if revenue == 0:
        return ZERO.quantize(PERCENT_QUANTUM) if profit == 0 else Decimal("-100.00")
    return (profit / revenue * HUNDRED).quantize(PERCENT_QUANTUM, rounding=ROUNDING)


def price_usage(units: Decimal, engine: EngineCost, plan: PlanPricing) -> Priced:
    """Cost, revenue, profit and margin of ``units`` of ``engine`` used on ``plan``."""
    if units <= 0:
        raise InvalidInput("usage_units must be greater than zero")
    if not engine.is_active:
        raise InvalidInput(f"engine {engine.engine_id} is not active")
    cost = usd(units * engine.cost_per_unit)
    override = plan.engine_prices_usd.get(engine.engine_id)
    if override is not None:
        revenue = usd(units * override)
        source = PLAN_OVERRIDE
    else:
        revenue = usd(units * engine.cost_per_unit * plan.default_markup)
        source = ENGINE_DEFAULT
    profit = revenue - cost
    return Priced(
        real_cost_usd=cost,
        revenue_estimated_usd=revenue,
        profit_usd=profit,
        profit_margin_percent=margin_percent(profit, revenue),
        pricing_source=source,
        price_per_unit_usd=override,
    )


def pick_version(
    current: EngineCost | None,
    history: list[EngineCost],
    at: datetime,
) -> EngineCost | None:
    """The engine version in force at ``at``: the latest one effective at or before it.

    ``current`` is the live document, ``history`` its recorded earlier versions. When every
    known version is later than ``at`` (the event predates all recorded costs), the earliest
    known version is used: it is the first cost the system ever metered this engine at.
    """
    versions = [v for v in [current, *history] if v is not None]
    if not versions:
        return None
    start = datetime.min.replace(tzinfo=at.tzinfo)
    in_force = [v for v in versions if (v.effective_from or start) <= at]
    if in_force:
        return max(in_force, key=lambda v: v.effective_from or start)
    return min(versions, key=lambda v: v.effective_from or start)


# -- calendar ------------------------------------------------------------------------------
def token_day(at: datetime, tz_name: str) -> tuple[str, datetime]:
    """(``YYYY-MM-DD`` of ``at`` in ``tz_name``, the next midnight there as UTC)."""
    tz = ZoneInfo(tz_name)
    local = ensure_utc(at).astimezone(tz)
    day = local.date()
    return day.isoformat(), next_midnight_utc(day, tz)


def next_midnight_utc(day: date, tz: ZoneInfo) -> datetime:
    """The midnight that ends ``day`` in ``tz``, in UTC."""
    following = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return ensure_utc(following)


def month_period(at: datetime, tz_name: str) -> tuple[str, datetime]:
    """(``YYYY-MM`` of ``at`` in ``tz_name``, the start of the next month there as UTC)."""
    tz = ZoneInfo(tz_name)
    local = ensure_utc(at).astimezone(tz)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return f"{local.year:04d}-{local.month:02d}", ensure_utc(datetime(year, month, 1, tzinfo=tz))


# -- identities ----------------------------------------------------------------------------
def usage_log_id(request_id: str) -> str:
    """The ``usage_logs`` document id of a request (deterministic: duplicates collide)."""
    return str(uuid.uuid5(_LOG_NAMESPACE, request_id))


def fingerprint(body: Mapping[str, Any]) -> str:
    """A stable hash of a validated message, to tell a replay from a reused request_id."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
