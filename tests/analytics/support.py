"""Test support: random usage logs, writing them with their counters, brute-force figures.

The brute force reads the raw ``usage_logs`` back and recomputes every figure with its own
Decimal arithmetic (it shares no code with ``shared.analytics.rules``), applying the
documented precision: each log amount rounded half-even to 1e-6 USD, exact sums,
percentages half-even to 2 decimals, averages half-even to 1e-6 USD.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from google.cloud import firestore

from shared.analytics.counters import count_usage
from shared.atomic import Unit, run_atomically

ENGINES = {
    "dalle_3_standard": Decimal("0.04"),
    "seddream_video": Decimal("0.12"),
    "openai_chat_gpt4": Decimal("0.03"),
    "openai_tts": Decimal("0.015"),
}
PLANS = {"free": Decimal(0), "pro": Decimal("2.5"), "ultra": Decimal("0.9")}
Q6 = Decimal("0.000001")
Q2 = Decimal("0.01")


def make_log(
    rng: random.Random,
    *,
    user_id: str,
    at: datetime,
    engine: str | None = None,
    plan: str | None = None,
) -> dict[str, Any]:
    """One usage log with every field of 002 (financial fields as the metering writes them)."""
    engine = engine or rng.choice(sorted(ENGINES))
    plan = plan or rng.choice(sorted(PLANS))
    units = Decimal(rng.randint(1, 4000)) / Decimal(rng.choice([1, 10, 100, 1000]))
    cost = ENGINES[engine] * units
    revenue = cost * PLANS[plan] * Decimal(rng.choice(["0.5", "1", "1.3", "2"]))
    profit = revenue - cost
    margin = (profit / revenue * 100) if revenue else Decimal(0)
    request_id = f"req-{uuid.UUID(int=rng.getrandbits(128))}"
    return {
        "user_id": user_id,
        "subscription_plan": plan,
        "ai_type": "image",
        "engine_id": engine,
        "usage_units": float(units),
        "credits_used": rng.randint(0, 20),
        "created_at": at,
        "real_cost_usd": float(cost),
        "revenue_estimated_usd": float(revenue),
        "profit_usd": float(profit),
        "profit_margin_percent": float(margin.quantize(Q2)),
        "pricing_source": "engine_default",
        "request_id": request_id,
        "country_code": "TH",
        "device_type": "web",
        "generation_time_ms": rng.randint(100, 5000),
    }


def random_logs(
    rng: random.Random, start: datetime, days: int, count: int, users: list[str]
) -> list[dict[str, Any]]:
    span = days * 86400
    return [
        make_log(
            rng,
            user_id=rng.choice(users),
            at=start + timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(10**6)),
        )
        for _ in range(count)
    ]


def log_id(log: dict[str, Any]) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, log["request_id"]))


def write_logs(
    db: firestore.Client, logs: Iterable[dict[str, Any]], *, per_unit: int = 150
) -> None:
    """Each log created with its counters (``count_usage``), many logs per atomic unit."""
    chunk: list[dict[str, Any]] = []

    def flush() -> None:
        if not chunk:
            return
        items = list(chunk)

        def work(unit: Unit) -> None:
            for log in items:
                unit.create(db.collection("usage_logs").document(log_id(log)), log)
                count_usage(unit, log)

        run_atomically(db, work)
        chunk.clear()

    for log in logs:
        chunk.append(log)
        if len(chunk) >= per_unit:
            flush()
    flush()


def write_log_one_by_one(db: firestore.Client, log: dict[str, Any]) -> None:
    """What the metering does: one unit per log, the log and its counters together."""

    def work(unit: Unit) -> None:
        unit.create(db.collection("usage_logs").document(log_id(log)), log)
        count_usage(unit, log)

    run_atomically(db, work)


# -- the brute force -----------------------------------------------------------------------
def _m(value: Any) -> Decimal:
    return Decimal(repr(value)).quantize(Q6, rounding=ROUND_HALF_EVEN)


def _pct(num: Decimal, den: Decimal) -> float:
    return float((num * 100 / den).quantize(Q2, rounding=ROUND_HALF_EVEN))


def _margin(rev: Decimal, cost: Decimal) -> float:
    if rev == 0:
        return 0.0 if cost == 0 else -100.0
    return _pct(rev - cost, rev)


def _avg(total: Decimal, n: int) -> float:
    return float((total / n).quantize(Q6, rounding=ROUND_HALF_EVEN)) if n else 0.0


def stored_logs(db: firestore.Client) -> list[dict[str, Any]]:
    return [s.to_dict() for s in db.collection("usage_logs").stream()]


def brute_force(logs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every metric field of an aggregate over exactly ``logs``."""
    cost = sum((_m(x["real_cost_usd"]) for x in logs), Decimal(0))
    rev = sum((_m(x["revenue_estimated_usd"]) for x in logs), Decimal(0))
    by_engine: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_plan: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for x in logs:
        by_engine[x["engine_id"]].append(x)
        by_plan[x["subscription_plan"]].append(x)
        by_user[x["user_id"]].append(x)

    def sums(items: list[dict[str, Any]]) -> tuple[Decimal, Decimal]:
        return (
            sum((_m(x["real_cost_usd"]) for x in items), Decimal(0)),
            sum((_m(x["revenue_estimated_usd"]) for x in items), Decimal(0)),
        )

    engine_sums = {e: sums(items) for e, items in by_engine.items()}
    worst = None
    if engine_sums:
        worst = min(
            engine_sums,
            key=lambda e: (
                _margin(engine_sums[e][1], engine_sums[e][0]),
                engine_sums[e][1] - engine_sums[e][0],
                e,
            ),
        )
    users = len(by_user)
    out: dict[str, Any] = {
        "total_cost_usd": float(cost),
        "total_revenue_usd": float(rev),
        "total_profit_usd": float(rev - cost),
        "profit_margin_percent": _margin(rev, cost),
        "cost_by_engine": {
            e: {
                "cost_usd": float(c),
                "usage_count": len(by_engine[e]),
                "avg_cost_per_use": _avg(c, len(by_engine[e])),
            }
            for e, (c, _r) in engine_sums.items()
        },
        "revenue_by_plan": {
            p: {
                "revenue_usd": float(sums(items)[1]),
                "user_count": len({x["user_id"] for x in items}),
                "generation_count": len(items),
            }
            for p, items in by_plan.items()
        },
        "profit_by_plan": {
            p: {
                "profit_usd": float(sums(items)[1] - sums(items)[0]),
                "profit_margin_percent": _margin(sums(items)[1], sums(items)[0]),
                "cost_usd": float(sums(items)[0]),
                "revenue_usd": float(sums(items)[1]),
            }
            for p, items in by_plan.items()
        },
        "loss_users_count": sum(
            1 for items in by_user.values() if sums(items)[1] - sums(items)[0] < 0
        ),
        "loss_plans": sorted(
            p for p, items in by_plan.items() if sums(items)[1] - sums(items)[0] < 0
        ),
        "total_generations": len(logs),
        "total_users": users,
        "avg_cost_per_user": _avg(cost, users),
        "avg_revenue_per_user": _avg(rev, users),
    }
    if worst is not None:
        out["worst_performing_engine"] = worst
    return out


def in_period(logs: list[dict[str, Any]], start: datetime, end: datetime) -> list[dict[str, Any]]:
    return [x for x in logs if start <= x["created_at"] < end]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


METRICS = (
    "total_cost_usd",
    "total_revenue_usd",
    "total_profit_usd",
    "profit_margin_percent",
    "cost_by_engine",
    "revenue_by_plan",
    "profit_by_plan",
    "loss_users_count",
    "loss_plans",
    "total_generations",
    "total_users",
    "avg_cost_per_user",
    "avg_revenue_per_user",
    "worst_performing_engine",
)


def metrics(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc[k] for k in METRICS if k in doc}
