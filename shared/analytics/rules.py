"""Pure aggregation rules for profit analytics: exact money, periods, the aggregate document.

Precision (documented in docs/analytics.md):
- every money amount of a usage log is rounded half-even to whole micro-USD (1e-6 USD)
  once, when it is counted; sums are exact integer sums of those micro-USD amounts;
- profit is always revenue minus cost (micro-USD), never a sum of rounded profits;
- stored USD values are the exact micro-USD figure written as a number with at most 6
  decimals; percentages are rounded half-even to 2 decimals; averages to 6 decimals;
- a profit margin with zero revenue is 0.0 when the cost is zero too, else -100.0.
No float arithmetic happens on money: floats are only the storage format of the result.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

MICROS_PER_USD = 1_000_000
_MICRO = Decimal("0.000001")
_CENT = Decimal("0.01")
ONE_MICROSECOND = timedelta(microseconds=1)


# -- money -------------------------------------------------------------------------------
def to_micros(value: Any) -> int:
    """A USD amount (int, float, Decimal or numeric string) as whole micro-USD, half-even."""
    if value is None or isinstance(value, bool):
        return 0
    if isinstance(value, float):
        number = Decimal(repr(value))  # the shortest repr is the decimal that was written
    elif isinstance(value, int | Decimal | str):
        number = Decimal(value)
    else:
        raise TypeError(f"not a money amount: {value!r}")
    if not number.is_finite():
        raise ValueError(f"not a finite money amount: {value!r}")
    return int((number * MICROS_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


def usd(micros: int) -> float:
    """The stored form of a micro-USD amount: a number with at most 6 decimals."""
    return float(Decimal(micros) / MICROS_PER_USD)


def avg_usd(total_micros: int, count: int) -> float:
    """Average micro-USD per item, rounded half-even to a whole micro-USD; 0 for no items."""
    if count <= 0:
        return 0.0
    avg = (Decimal(total_micros) / count).to_integral_value(rounding=ROUND_HALF_EVEN)
    return usd(int(avg))


def percent(numerator: Decimal | int, denominator: Decimal | int) -> float:
    """100 * numerator / denominator, half-even to 2 decimals (denominator must be > 0)."""
    value = Decimal(numerator) * 100 / Decimal(denominator)
    return float(value.quantize(_CENT, rounding=ROUND_HALF_EVEN))


def margin_percent(revenue_micros: int, cost_micros: int) -> float:
    """Profit margin (profit / revenue * 100); zero revenue: 0.0 without cost, else -100.0."""
    if revenue_micros == 0:
        return 0.0 if cost_micros == 0 else -100.0
    return percent(revenue_micros - cost_micros, revenue_micros)


# -- tallies -----------------------------------------------------------------------------
@dataclass
class Tally:
    """Counted usage: number of generations and exact micro-USD cost and revenue."""

    n: int = 0
    cost: int = 0
    revenue: int = 0

    @property
    def profit(self) -> int:
        return self.revenue - self.cost

    def add(self, other: Tally) -> None:
        self.n += other.n
        self.cost += other.cost
        self.revenue += other.revenue

    def negated(self) -> Tally:
        return Tally(-self.n, -self.cost, -self.revenue)

    @classmethod
    def from_counter(cls, data: Mapping[str, Any] | None) -> Tally:
        data = data or {}
        return cls(
            n=int(data.get("n") or 0),
            cost=int(data.get("cost_micros") or 0),
            revenue=int(data.get("revenue_micros") or 0),
        )


@dataclass
class Breakdown:
    """Totals of a set of usage, overall, by plan and by engine."""

    total: Tally = field(default_factory=Tally)
    plans: dict[str, Tally] = field(default_factory=dict)
    engines: dict[str, Tally] = field(default_factory=dict)

    def add(self, other: Breakdown) -> None:
        self.total.add(other.total)
        for name, tally in other.plans.items():
            self.plans.setdefault(name, Tally()).add(tally)
        for name, tally in other.engines.items():
            self.engines.setdefault(name, Tally()).add(tally)

    def negated(self) -> Breakdown:
        return Breakdown(
            self.total.negated(),
            {k: t.negated() for k, t in self.plans.items()},
            {k: t.negated() for k, t in self.engines.items()},
        )

    @classmethod
    def from_counter(cls, data: Mapping[str, Any]) -> Breakdown:
        """A counter document (``n``, ``cost_micros``, ``plans``, ``engines``) as a Breakdown."""
        return cls(
            total=Tally.from_counter(data),
            plans={k: Tally.from_counter(v) for k, v in (data.get("plans") or {}).items()},
            engines={k: Tally.from_counter(v) for k, v in (data.get("engines") or {}).items()},
        )

    @classmethod
    def from_aggregate(cls, doc: Mapping[str, Any]) -> Breakdown:
        """The sums an aggregate document holds (engine revenue is not among them: 0)."""
        plans: dict[str, Tally] = {}
        for name, entry in (doc.get("profit_by_plan") or {}).items():
            count = (doc.get("revenue_by_plan") or {}).get(name, {}).get("generation_count", 0)
            plans[name] = Tally(
                int(count), to_micros(entry.get("cost_usd")), to_micros(entry.get("revenue_usd"))
            )
        engines = {
            name: Tally(int(entry.get("usage_count") or 0), to_micros(entry.get("cost_usd")), 0)
            for name, entry in (doc.get("cost_by_engine") or {}).items()
        }
        total = Tally(
            int(doc.get("total_generations") or 0),
            to_micros(doc.get("total_cost_usd")),
            to_micros(doc.get("total_revenue_usd")),
        )
        return cls(total, plans, engines)


@dataclass(frozen=True)
class UserUsage:
    """One user's counted usage over a period (from a per-user counter document)."""

    user_id: str
    usage: Breakdown


# -- the aggregate document --------------------------------------------------------------
def worst_engine(engines: Mapping[str, Tally]) -> str | None:
    """The engine with the lowest margin; ties: lower profit, then engine id. None if idle."""
    used = [(name, t) for name, t in engines.items() if t.n > 0]
    if not used:
        return None
    return min(
        used,
        key=lambda item: (margin_percent(item[1].revenue, item[1].cost), item[1].profit, item[0]),
    )[0]


def aggregate_fields(sums: Breakdown, users: Iterable[UserUsage]) -> dict[str, Any]:
    """Every metric field of a ``profit_aggregates`` document.

    ``sums`` gives the totals and the per-plan / per-engine sums; ``users`` (one entry per
    distinct user of the period) gives the distinct-user figures and the per-engine
    revenue used to pick the worst performing engine.
    """
    users = list(users)
    plan_users: dict[str, int] = {}
    engine_revenue: dict[str, Tally] = {}
    loss_users = 0
    for user in users:
        if user.usage.total.profit < 0:
            loss_users += 1
        for plan, tally in user.usage.plans.items():
            if tally.n > 0:
                plan_users[plan] = plan_users.get(plan, 0) + 1
        for engine, tally in user.usage.engines.items():
            engine_revenue.setdefault(engine, Tally()).add(tally)
    engines_for_worst = {
        name: Tally(t.n, t.cost, engine_revenue.get(name, Tally()).revenue)
        for name, t in sums.engines.items()
    }
    total = sums.total
    total_users = sum(1 for u in users if u.usage.total.n > 0)
    fields: dict[str, Any] = {
        "total_cost_usd": usd(total.cost),
        "total_revenue_usd": usd(total.revenue),
        "total_profit_usd": usd(total.profit),
        "profit_margin_percent": margin_percent(total.revenue, total.cost),
        "cost_by_engine": {
            name: {
                "cost_usd": usd(t.cost),
                "usage_count": t.n,
                "avg_cost_per_use": avg_usd(t.cost, t.n),
            }
            for name, t in sorted(sums.engines.items())
            if t.n > 0
        },
        "revenue_by_plan": {
            name: {
                "revenue_usd": usd(t.revenue),
                "user_count": plan_users.get(name, 0),
                "generation_count": t.n,
            }
            for name, t in sorted(sums.plans.items())
            if t.n > 0
        },
        "profit_by_plan": {
            name: {
                "profit_usd": usd(t.profit),
                "profit_margin_percent": margin_percent(t.revenue, t.cost),
                "cost_usd": usd(t.cost),
                "revenue_usd": usd(t.revenue),
            }
            for name, t in sorted(sums.plans.items())
            if t.n > 0
        },
        "loss_users_count": loss_users,
        "loss_plans": sorted(name for name, t in sums.plans.items() if t.n > 0 and t.profit < 0),
        "total_generations": total.n,
        "total_users": total_users,
        "avg_cost_per_user": avg_usd(total.cost, total_users),
        "avg_revenue_per_user": avg_usd(total.revenue, total_users),
    }
    worst = worst_engine(engines_for_worst)
    if worst is not None:
        fields["worst_performing_engine"] = worst
    return fields


def completeness_percent(counted: int, expected: int) -> float:
    """Share of the known usage that the figures include: 100 * counted / max(both)."""
    denominator = max(counted, expected)
    if denominator == 0:
        return 100.0
    return percent(counted, denominator)


# -- periods -----------------------------------------------------------------------------
def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def daily_id(day: date) -> str:
    return f"daily_{day:%Y_%m_%d}"


def monthly_id(year: int, month: int) -> str:
    return f"monthly_{year:04d}_{month:02d}"


def yearly_id(year: int) -> str:
    return f"yearly_{year:04d}"


ALL_TIME_ID = "all_time"


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """First instant of the month and its last instant (inclusive, to the microsecond)."""
    start = datetime(year, month, 1, tzinfo=UTC)
    return start, next_month_start(year, month) - ONE_MICROSECOND


def next_month_start(year: int, month: int) -> datetime:
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def previous_month(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def days_of_month(year: int, month: int) -> list[date]:
    count = calendar.monthrange(year, month)[1]
    return [date(year, month, d) for d in range(1, count + 1)]


def parse_day(text: str) -> date:
    """``YYYY-MM-DD`` as a date (ValueError otherwise)."""
    if len(text) != 10:
        raise ValueError(f"not a YYYY-MM-DD date: {text!r}")
    return date.fromisoformat(text)


def parse_month(text: str) -> tuple[int, int]:
    """``YYYY-MM`` as (year, month) (ValueError otherwise)."""
    parts = text.split("-")
    if len(parts) != 2 or len(parts[0]) != 4 or len(parts[1]) != 2:
        raise ValueError(f"not a YYYY-MM month: {text!r}")
    year, month = int(parts[0]), int(parts[1])
    if not 1 <= month <= 12 or year < 1970:
        raise ValueError(f"not a YYYY-MM month: {text!r}")
    return year, month


# -- token history (003) -----------------------------------------------------------------
def token_history_fields(daily_usage: Mapping[str, int], through_day: int) -> dict[str, Any]:
    """``dailyUsage`` filled with 0 for every day 01..through_day, and the figures from it.

    The average is over the days of the month so far (01 through the last rolled-up day
    with usage), as in 003's example; the peak is the highest day, the earliest on a tie.
    """
    days = {f"{d:02d}": int(daily_usage.get(f"{d:02d}", 0)) for d in range(1, through_day + 1)}
    for key, value in daily_usage.items():
        days.setdefault(key, int(value))
    days = dict(sorted(days.items()))
    total = sum(days.values())
    peak_day, peak_tokens = "", 0
    for key, value in days.items():
        if value > peak_tokens or not peak_day:
            peak_day, peak_tokens = key, value
    average = (Decimal(total) / len(days)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return {
        "dailyUsage": days,
        "totalMonthlyTokens": total,
        "averageDailyUsage": float(average),
        "peakUsageDate": peak_day,
        "peakUsageTokens": peak_tokens,
    }


# -- Kaiwa session banking (001) ---------------------------------------------------------
def banked_seconds_next(
    *,
    monthly_seconds: int,
    seconds_used: int,
    banked_seconds: int,
    banked_seconds_used: int,
    banking_enabled: bool,
    cap_seconds: int | None = None,
) -> int:
    """Seconds banked into the next period: what was left of the period's allowance, capped.

    The period's allowance is the tier's ``monthlySeconds`` plus what was left of the bank
    carried in (``bankedSeconds - bankedSecondsUsed``); ``usage-events`` counts the seconds
    used past the allowance in ``bankedSecondsUsed`` while banked seconds are left, and
    the rest in ``secondsUsed`` (the usage-limits check lets a user spend both). What was left rolls
    over, capped at ``cap_seconds`` (default: one month's allowance, so a bank never holds
    more than one extra month). A tier without ``sessionBankingEnabled`` banks nothing.
    """
    if not banking_enabled or monthly_seconds <= 0:
        return 0
    carried = max(0, banked_seconds - max(0, banked_seconds_used))
    unused = max(0, monthly_seconds + carried - max(0, seconds_used))
    cap = monthly_seconds if cap_seconds is None else cap_seconds
    return max(0, min(cap, unused))


def rollover_banked(tier: Mapping[str, Any], usage: Mapping[str, Any]) -> int:
    """Seconds a closed period's ``userUsage`` document banks into the next, on ``tier``
    (``tiers/{tierId}``, empty when missing): ``banked_seconds_next`` of its fields."""
    monthly = tier.get("monthlySeconds")
    return banked_seconds_next(
        monthly_seconds=int(monthly) if isinstance(monthly, int | float) else 0,
        seconds_used=int(usage.get("secondsUsed") or 0),
        banked_seconds=int(usage.get("bankedSeconds") or 0),
        banked_seconds_used=int(usage.get("bankedSecondsUsed") or 0),
        banking_enabled=tier.get("sessionBankingEnabled") is True,
    )
