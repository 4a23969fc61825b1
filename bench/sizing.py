"""Production sizing: the write profile of every operation and the hot-document load model.

Each operation runs for real, one at a time, against the bench stack (HTTP functions over
real HTTP, Pub/Sub functions through the push envelope the emulator sends, the rollup
through its schedule message), while ``bench.profile.Recorder`` counts every billed read,
write and delete of the process and the document patterns written. Setup (users, demo
configuration, logs to roll up) is not counted. Then ``bench.model`` puts the profiles
under the production load of ``LOADS`` and reports the hottest document of each pattern.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.common import BenchContext, Result, result
from bench.model import (
    SUSTAINED_WRITES_PER_DOC,
    HotDoc,
    Load,
    Profile,
    daily_writes,
    hottest,
    per_user_threshold,
)
from bench.profile import Recorder, Tally, pattern, recording, usd_per_million
from devstack.bigeye_client import reserve_body

#: The stated production load (docs/benchmarks.md). Operations the issue does not size
#: (Stripe deliveries, BigEye jobs) get modest rates of their own, marked as assumptions.
LOADS = [
    Load("usage event", 1_000.0),
    Load("usage event redelivered", 10.0),
    Load("provider event", 200.0),
    # The one running promotion is limited (``max_redemptions``): the harder case, since
    # its limit must hold exactly. "top-up under a promotion" (unlimited) is still profiled.
    Load("top-up under a limited promotion", 20.0),
    Load("stripe checkout delivery", 2.0),
    Load("reserve + finalize pair", 20.0),
]
#: ``max_redemptions`` of the limited promotion the top-ups are profiled under.
LIMITED_PROMOTION_MAX = 100_000
#: Activity of the day rolled up by the nightly rollup.
ROLLUP_ACTIVE_USERS = 100_000
RUNS = 4


def provider_commits_per_s() -> float | None:
    """Group commits per second per provider as deployed (``None``: one per event)."""
    from shared.registry import REGISTRY

    spec = next(s for s in REGISTRY if s.name == "provider-events")
    linger_ms = int(dict(spec.env).get("PROVIDER_GROUP_LINGER_MS", "0"))
    return spec.max_instances * 1000 / linger_ms if linger_ms else None


def loads() -> list[Load]:
    """``LOADS`` with the provider events' group commit rate of the deploy."""
    cap = provider_commits_per_s()
    return [
        Load(x.operation, x.per_s, group_commits_per_s=cap) if x.operation == "provider event"
        else x
        for x in LOADS
    ]  # fmt: skip


def fanouts() -> dict[str, int]:
    """Shard counts of sharded app-wide patterns, from the code that shards them."""
    from shared.bigeye import redemptions

    return {
        "promo_stats_shards/{promo}_{n}": redemptions.STATS_SHARDS,
    }


# -- helpers ------------------------------------------------------------------------------
def _push(ctx: BenchContext, function: str, body: dict[str, Any]) -> int:
    envelope = {
        "message": {
            "data": base64.b64encode(json.dumps(body).encode()).decode(),
            "messageId": uuid.uuid4().hex,
            "publishTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "attributes": {},
        },
        "subscription": f"projects/{ctx.stack.config.project}/subscriptions/{function}-push",
    }
    response = httpx.post(f"{ctx.stack.base_url}/{function}", json=envelope, timeout=60)
    return response.status_code


def _settle(ctx: BenchContext) -> None:
    """Let the triggers a run's writes fired finish (their cost belongs to the run)."""
    time.sleep(0.05)
    ctx.stack.quiesce(timeout_s=10, settle_s=0.15)


def _measure(
    ctx: BenchContext,
    recorder: Recorder,
    name: str,
    run: Callable[[int], dict[str, str]],
    runs: int = RUNS,
) -> Profile:
    """Run ``run(i)`` ``runs`` times; each returns its subjects (value -> placeholder)."""
    total = Tally()
    patterns: dict[str, float] = {}
    _settle(ctx)
    recorder.take()
    for i in range(runs):
        subjects = run(i)
        _settle(ctx)
        tally = recorder.take()
        total.add(tally)
        for path, n in tally.written.items():
            pat = pattern(path, subjects)
            patterns[pat] = patterns.get(pat, 0) + n
    return Profile(
        name,
        reads=total.reads / runs,
        writes=total.writes / runs,
        deletes=total.deletes / runs,
        units=total.units / runs,
        creates=total.creates / runs,
        patterns={p: n / runs for p, n in sorted(patterns.items())},
    )


def _day_subjects(at: datetime) -> dict[str, str]:
    from shared.settings import get_settings
    from shared.usage.pricing import token_day

    local_day, _ = token_day(at, get_settings().token_day_timezone)
    return {
        at.date().isoformat(): "{day}",
        str(local_day): "{day}",
        f"{at:%Y-%m}": "{month}",
        f"{at:%Y}": "{year}",
    }


# -- the operations -----------------------------------------------------------------------
def _usage(ctx: BenchContext, recorder: Recorder) -> list[Profile]:
    from devstack.demo import usage as demo_usage

    db = ctx.db
    now = datetime.now(UTC)
    demo_usage.seed(db, now - timedelta(days=1))
    for i in range(RUNS):
        db.collection("users").document(f"sz-user-{i}").set(
            {"email": f"sz-{i}@example.com", "credits_balance": 1_000, "tier": "PRO"}
        )
    sent: list[dict[str, Any]] = []

    def event(i: int) -> dict[str, str]:
        body = {
            "request_id": f"sz-req-{uuid.uuid4().hex[:10]}",
            "user_id": f"sz-user-{i}",
            "engine_id": "openai_chat_gpt4",
            "usage_units": 12.5,
            "credits_used": 2,
            "tokens": 700,
            "created_at": now.isoformat(),
        }
        sent.append(body)
        if _push(ctx, "usage-events", body) >= 300:
            raise RuntimeError("usage event refused")
        return {str(body["user_id"]): "{user}", str(body["request_id"]): "{event}",
                **_day_subjects(now)}  # fmt: skip

    def again(i: int) -> dict[str, str]:
        body = sent[i]
        _push(ctx, "usage-events", body)
        return {body["user_id"]: "{user}", body["request_id"]: "{event}", **_day_subjects(now)}

    first = _measure(ctx, recorder, "usage event", event)
    return [first, _measure(ctx, recorder, "usage event redelivered", again)]


def _provider(ctx: BenchContext, recorder: Recorder) -> list[Profile]:
    from devstack.demo import providers as demo

    now = datetime.now(UTC)
    demo.seed(ctx.db, now)

    def event(i: int) -> dict[str, str]:
        body = {
            "event_id": f"sz-pe-{uuid.uuid4().hex[:10]}",
            "provider": "openai",
            "model_id": "gpt-4o",
            "task_type": "LLM",
            "outcome": "success",
            "latency_ms": 250,
            "tokens": 120,
            "cost_usd": "0.0015",
            "occurred_at": datetime.now(UTC).isoformat(),
        }
        if _push(ctx, "provider-events", body) >= 300:
            raise RuntimeError("provider event refused")
        return {"gpt-4o": "{model}", "openai": "{provider}", str(body["event_id"]): "{event}"}

    single = _measure(ctx, recorder, "provider event", event)
    # A burst arriving together: the provider's documents are written once per group.
    from concurrent.futures import ThreadPoolExecutor

    burst = 20
    _settle(ctx)
    recorder.take()
    with ThreadPoolExecutor(burst) as pool:
        subjects = list(pool.map(event, range(burst)))
    _settle(ctx)
    tally = recorder.take()
    patterns: dict[str, float] = {}
    merged = {k: v for s in subjects for k, v in s.items()}
    for path, n in tally.written.items():
        pat = pattern(path, merged)
        patterns[pat] = patterns.get(pat, 0) + n / burst
    grouped = Profile(
        f"provider event, {burst} arriving together",
        reads=tally.reads / burst,
        writes=tally.writes / burst,
        units=tally.units / burst,
        creates=tally.creates / burst,
        patterns=patterns,
    )
    return [single, grouped]


def _stripe(ctx: BenchContext, recorder: Recorder) -> list[Profile]:
    from devstack import stripe_send as fx
    from devstack.demo import billing as demo_billing

    db = ctx.db
    now = datetime.now(UTC)
    demo_billing.seed(db, now)
    for i in range(RUNS):
        db.collection("users").document(f"sz-buyer-{i}").set(
            demo_billing.demo_user("kitesforu", now)
        )
    url = f"{ctx.stack.base_url}/stripe-webhook"

    def delivery(i: int) -> dict[str, str]:
        user, pi, customer = f"sz-buyer-{i}", fx.new_id("pi"), f"cus_sz_{i}"
        session = fx.checkout_session(
            user_id=user, price_id="price_credits_500", payment_intent=pi, customer=customer
        )
        evt = fx.event("checkout.session.completed", session)
        response = fx.send(url, evt)
        if response.status_code != 200:
            raise RuntimeError(f"stripe delivery answered {response.status_code}")
        return {user: "{user}", evt["id"]: "{event}", session["id"]: "{event}", pi: "{event}",
                customer: "{user}"}  # fmt: skip

    return [_measure(ctx, recorder, "stripe checkout delivery", delivery)]


def _slip(trans_ref: str, amount: int) -> str:
    content = {
        "transRef": trans_ref,
        "amount": amount,
        "dateTime": datetime.now(UTC).isoformat(),
        "receiver": {"account": "xxx-x-x6789-x"},
        "sender": {"name": "Somchai Jaidee"},
    }
    return "data:image/jpeg;base64," + base64.b64encode(json.dumps(content).encode()).decode()


def _bigeye(ctx: BenchContext, recorder: Recorder) -> list[Profile]:
    from devstack.demo import bigeye as demo
    from shared.settings import override_settings

    db = ctx.db
    demo.seed(db, datetime.now(UTC))
    base = f"{ctx.stack.base_url}/credit-api/api/v1"
    sessions: list[tuple[str, str]] = []
    with override_settings(bcrypt_rounds=4), httpx.Client(timeout=60) as client:
        for i in range(RUNS):
            body = {
                "email": f"sz-{uuid.uuid4().hex[:8]}-{i}@example.com",
                "password": "sizing-password",
                "full_name": "Sizing User",
                "phone": "0800000000",
                "hardware_id": f"sz-hw-{uuid.uuid4().hex[:8]}",
            }
            data = client.post(f"{base}/auth/register", json=body).raise_for_status().json()
            sessions.append((str(data["token"]), str(data["user_id"])))

        def post(i: int, path: str, body: dict[str, Any]) -> dict[str, Any]:
            headers = {"Authorization": f"Bearer {sessions[i][0]}"}
            response = client.post(f"{base}/{path}", json=body, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}: {response.text}")
            out: dict[str, Any] = response.json()
            return out

        def topup(i: int) -> dict[str, str]:
            ref = f"SZ{uuid.uuid4().hex[:12]}"
            post(i, "credit/topup", {"slip": _slip(ref, 500), "amount": 500})
            return {sessions[i][1]: "{user}", demo.DEMO_PROMOTION_ID: "{promo}", ref: "{event}",
                    "127.0.0.1": "{ip}"}  # fmt: skip

        def pair(i: int) -> dict[str, str]:
            reserved = post(i, "job/reserve", _RESERVE)
            token = reserved["job_token"]
            post(i, "job/finalize", {"job_token": token, "success": 5, "failed": 2})
            return {sessions[i][1]: "{user}", token: "{event}", "127.0.0.1": "{ip}"}

        unlimited = _measure(ctx, recorder, "top-up under a promotion", topup)
        # The same promotion made limited. One top-up first, not counted: the first
        # redemption under a new limit splits it over the shards (32 reads and writes, once).
        db.collection("promotions").document(demo.DEMO_PROMOTION_ID).update(
            {"conditions.max_redemptions": LIMITED_PROMOTION_MAX}
        )
        post(0, "credit/topup", {"slip": _slip(f"SZ{uuid.uuid4().hex[:12]}", 500), "amount": 500})
        limited = _measure(ctx, recorder, "top-up under a limited promotion", topup)
        return [unlimited, limited, _measure(ctx, recorder, "reserve + finalize pair", pair)]


_RESERVE = reserve_body(version="2.0.1")


def _rollup(ctx: BenchContext, recorder: Recorder) -> tuple[list[Result], dict[str, float]]:
    """The nightly rollup at two sizes; reads and writes per active user, extrapolated."""
    from devstack.demo import usage as demo_usage
    from shared.usage.model import UsageEvent
    from shared.usage.service import meter_usage

    db = ctx.db
    day = datetime.now(UTC).replace(hour=3, minute=0, second=0, microsecond=0) - timedelta(days=2)
    demo_usage.seed(db, day - timedelta(days=1))
    sizes = (10, 30)
    measured: dict[int, Tally] = {}
    done = 0
    for size in sizes:
        for i in range(done, size):
            uid = f"sz-roll-{i}"
            db.collection("users").document(uid).set(
                {"email": f"{uid}@example.com", "credits_balance": 100, "tier": "PRO"}
            )
            for k in range(2):
                meter_usage(
                    db,
                    UsageEvent.model_validate(
                        {
                            "request_id": f"sz-roll-{i}-{k}",
                            "user_id": uid,
                            "engine_id": "openai_chat_gpt4",
                            "usage_units": 3,
                            "credits_used": 1,
                            "tokens": 50,
                            "created_at": (day + timedelta(minutes=k)).isoformat(),
                        }
                    ),
                )
        done = size
        _settle(ctx)
        recorder.take()
        if _push(ctx, "cron-daily-rollup", {"date": day.date().isoformat()}) >= 300:
            raise RuntimeError("rollup refused")
        _settle(ctx)
        measured[size] = recorder.take()
    small, large = measured[sizes[0]], measured[sizes[1]]
    span = sizes[1] - sizes[0]
    reads_per_user = (large.reads - small.reads) / span
    writes_per_user = (large.writes - small.writes) / span
    reads_fixed = small.reads - reads_per_user * sizes[0]
    writes_fixed = small.writes - writes_per_user * sizes[0]
    reads = reads_fixed + reads_per_user * ROLLUP_ACTIVE_USERS
    writes = writes_fixed + writes_per_user * ROLLUP_ACTIVE_USERS
    cost = usd_per_million(reads, writes) / 1_000_000
    rows = [
        result(f"sizing rollup: reads, {sizes[1]} active users", large.reads, "docs"),
        result(f"sizing rollup: writes, {sizes[1]} active users", large.writes, "docs"),
        result("sizing rollup: reads per active user", reads_per_user, "docs"),
        result(
            f"sizing rollup: reads at {ROLLUP_ACTIVE_USERS:,} active users (extrapolated)",
            reads,
            "docs",
        ),
        result(
            f"sizing rollup: US$ per nightly run at {ROLLUP_ACTIVE_USERS:,} active users",
            cost,
            "USD",
        ),
    ]
    return rows, {"reads": reads, "writes": writes, "usd": cost}


# -- the section --------------------------------------------------------------------------
def profiles(ctx: BenchContext, recorder: Recorder) -> dict[str, Profile]:
    found: dict[str, Profile] = {}
    for step in (_usage, _provider, _stripe, _bigeye):
        ctx.stack.quiesce()
        ctx.wipe()
        for p in step(ctx, recorder):
            found[p.operation] = p
    return found


def profile_rows(found: dict[str, Profile]) -> list[Result]:
    rows = []
    for p in found.values():
        rows += [
            result(f"sizing {p.operation}: reads per run", p.reads, "docs"),
            result(f"sizing {p.operation}: writes per run", p.writes, "docs"),
            result(f"sizing {p.operation}: units per run", p.units, "units"),
            result(
                f"sizing {p.operation}: US$ per million",
                usd_per_million(p.reads, p.writes, p.deletes),
                "USD",
            ),
        ]
    return rows


def model_rows(found: dict[str, Profile], docs: list[HotDoc]) -> list[Result]:
    rows = []
    for d in docs:
        if d.scope == "event":
            continue
        flag = " OVER" if d.over_budget else ""
        rows.append(
            result(
                f"hot doc [{d.scope}{flag}] {d.pattern}",
                d.writes_per_s,
                "writes/s",
                "sustained writes/s per document",
                SUSTAINED_WRITES_PER_DOC,
                higher_is_better=False,
            )
        )
    over = [d for d in docs if d.app_wide and d.over_budget]
    rows.append(result("app-wide documents above 1 write/s at the stated load", len(over), "docs"))
    for name in (
        "usage event",
        "top-up under a promotion",
        "top-up under a limited promotion",
        "reserve + finalize pair",
    ):
        if name in found:
            limit = per_user_threshold(found[name])
            if limit is not None:
                label = f"one user's {name} rate at which their documents reach 1 write/s"
                rows.append(result(label, limit, "ops/s"))
    per_day = daily_writes(found, loads())
    rows.append(result("document writes per day at the stated load", sum(per_day.values()), "docs"))
    usd = sum(
        load.per_s * 86_400 * usd_per_million(p.reads, p.writes, p.deletes) / 1_000_000
        for load in LOADS
        if (p := found.get(load.operation)) is not None
    )
    rows.append(result("US$ per day at the stated load (reads + writes + deletes)", usd, "USD"))
    return rows


def report(found: dict[str, Profile], docs: list[HotDoc]) -> str:
    """The two tables as text (printed by the section)."""
    lines = ["", "  operation                      reads  writes  creates  units  US$/million"]
    for p in found.values():
        lines.append(
            f"  {p.operation:<30} {p.reads:>5.1f}  {p.writes:>6.1f}  {p.creates:>7.1f}  "
            f"{p.units:>5.1f}  {usd_per_million(p.reads, p.writes, p.deletes):>11.2f}"
        )
    lines += ["", "  hottest document per pattern at the stated load        scope      writes/s"]
    for d in docs:
        if d.scope == "event":
            continue
        mark = "  <-- app-wide, over 1/s" if d.app_wide and d.over_budget else ""
        lines.append(f"  {d.pattern:<54} {d.scope:<10} {d.writes_per_s:>8.2f}{mark}")
    return "\n".join(lines)


def run(ctx: BenchContext) -> list[Result]:
    from shared.settings import override_settings

    limits = {
        "rate_limit_ip_per_min": 1_000_000,
        "rate_limit_user_per_min": 1_000_000,
        "rate_limit_topup_user_per_min": 1_000_000,
    }
    with override_settings(**limits), recording() as recorder:
        found = profiles(ctx, recorder)
        ctx.stack.quiesce()
        ctx.wipe()
        rollup_rows, _ = _rollup(ctx, recorder)
    docs = hottest(found, loads(), fanouts())
    print(report(found, docs), flush=True)
    return profile_rows(found) + rollup_rows + model_rows(found, docs)
