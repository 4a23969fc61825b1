"""BigEye credit API: reserve+finalize pairs per second over HTTP against raw ledger postings.

Eight clients (one user each) run reserve -> finalize pairs against ``credit-api`` over real
HTTP; the baseline is the ledger's own posting rate (``credit`` postings from eight threads
on eight accounts, no HTTP) on the same emulator in the same run. Each pair is two HTTP
requests and two ledger operations (hold, settle) plus the job, audit and rate-limit writes.
The baselines run in halves before and after the API phase (load drift weighs on both).
A second baseline compares like with like: raw ledger *pairs* (a hold, then its settle,
each its own unit: the two postings a pair makes, with no HTTP, job, audit or counters),
eight threads on the same eight accounts. Both ratios are reported.
Rate limits are raised for the run (they would otherwise throttle a single benchmark user).
Each client sends from its own address (``X-Forwarded-For``, as Google's front end appends
it), as eight desktop clients do: the per-IP counter is counted exactly inside each
request's unit, so clients sharing one address share that document, which their own
per-IP limit (300 a minute by default) keeps far below contention.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx

from bench.common import BenchContext, Result, percentile, result
from devstack.bigeye_client import register_and_login, reserve_body
from devstack.demo.bigeye import app_settings
from shared.atomic import Unit
from shared.clock import SystemClock
from shared.ledger import BIGEYE, Kind, Ledger
from shared.settings import override_settings

CLIENTS = 8
RESERVE = reserve_body(version="2.0.1")


def _credit(ledger: Ledger, user_id: str, amount: int, key: str) -> None:
    def work(unit: Unit) -> None:
        ledger.credit(
            unit, user_id=user_id, kind=Kind.BONUS, amount=amount, key=key, description="bench"
        )

    ledger.run(work)


def _raw_pair(ledger: Ledger, user_id: str, hold_id: str) -> None:
    """The two postings of a pair, each its own unit: hold 21, then settle 15 of it."""
    expires_at = datetime.now(UTC) + timedelta(minutes=10)

    def hold(unit: Unit) -> None:
        ledger.hold(
            unit,
            user_id=user_id,
            hold_id=hold_id,
            amount=21,
            expires_at=expires_at,
            description="bench",
        )

    def settle(unit: Unit) -> None:
        ledger.settle(unit, hold_id=hold_id, used=15, description="bench")

    ledger.run(hold)
    ledger.run(settle)


def run(ctx: BenchContext) -> list[Result]:
    db = ctx.db
    pairs_per_client = 10 if ctx.quick else 40
    base = f"{ctx.stack.base_url}/credit-api/api/v1"
    db.collection("system_config").document("app_settings").set(app_settings(datetime.now(UTC)))
    ledger = Ledger(db, BIGEYE, SystemClock())
    limits = {
        "bcrypt_rounds": 4,
        "rate_limit_ip_per_min": 1_000_000,
        "rate_limit_user_per_min": 1_000_000,
    }
    with override_settings(**limits):
        sessions = [
            (s.token, s.user_id)
            for s in (
                register_and_login(ctx.stack.base_url, hardware_id=f"bench-hw-{i}")
                for i in range(CLIENTS)
            )
        ]
        for _, user_id in sessions:
            _credit(ledger, user_id, 1_000_000, f"bench-bonus:{user_id}")

        latencies: list[float] = []
        failures = 0
        lock = threading.Lock()

        def pairs(index: int, count: int = pairs_per_client) -> None:
            nonlocal failures
            token, _ = sessions[index]
            headers = {
                "Authorization": f"Bearer {token}",
                "X-Forwarded-For": f"198.18.0.{index + 1}",
            }
            with httpx.Client(timeout=60, headers=headers) as own:
                for _ in range(count):
                    start = time.perf_counter()
                    reserved = own.post(f"{base}/job/reserve", json=RESERVE)
                    if reserved.status_code != 200:
                        with lock:
                            failures += 1
                        continue
                    job = reserved.json()["job_token"]
                    done = own.post(
                        f"{base}/job/finalize",
                        json={"job_token": job, "success": 5, "failed": 2},
                    )
                    with lock:
                        if done.status_code == 200:
                            latencies.append(time.perf_counter() - start)
                        else:
                            failures += 1

        # The baselines run in two halves, one on each side of the API phase, so that a
        # machine whose load drifts during the run weighs on both sides alike.
        postings_per_thread = 20 if ctx.quick else 60
        run_id = uuid.uuid4().hex[:6]
        spent = {"postings": 0.0, "raw pairs": 0.0}

        def postings(half: int) -> None:
            def one(index: int) -> None:
                _, user_id = sessions[index]
                for i in range(postings_per_thread // 2):
                    _credit(ledger, user_id, 1, f"bench:{run_id}:{half}:{index}:{i}")

            start = time.perf_counter()
            with ThreadPoolExecutor(CLIENTS) as pool:
                list(pool.map(one, range(CLIENTS)))
            spent["postings"] += time.perf_counter() - start

        def raw_pairs(half: int) -> None:
            def one(index: int) -> None:
                _, user_id = sessions[index]
                for i in range(postings_per_thread // 4):
                    _raw_pair(ledger, user_id, f"bench-{run_id}-{half}-{index}-{i}")

            start = time.perf_counter()
            with ThreadPoolExecutor(CLIENTS) as pool:
                list(pool.map(one, range(CLIENTS)))
            spent["raw pairs"] += time.perf_counter() - start

        # Warm up (connections, first requests of each client), measured by no figure.
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(lambda index: pairs(index, 2), range(CLIENTS)))
        latencies.clear()
        postings(-1)
        spent["postings"] = 0.0
        postings(0)
        raw_pairs(0)
        start = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(pairs, range(CLIENTS)))
        api_s = time.perf_counter() - start
        raw_pairs(1)
        postings(1)

    # Baseline: raw ledger postings, eight threads on the same eight accounts.
    postings_rate = CLIENTS * (postings_per_thread // 2) * 2 / spent["postings"]
    # Baseline: raw ledger pairs (hold, then settle), eight threads on the same accounts.
    raw_pair_rate = CLIENTS * (postings_per_thread // 4) * 2 / spent["raw pairs"]
    pair_rate = len(latencies) / api_s
    return [
        result(
            "bigeye reserve+finalize pairs/s (8 clients, HTTP)",
            pair_rate,
            "pairs/s",
            "ledger postings/s (8 threads)",
            postings_rate,
        ),
        result(
            "bigeye pairs/s against raw ledger pairs",
            pair_rate,
            "pairs/s",
            "ledger hold+settle pairs/s (8 threads)",
            raw_pair_rate,
        ),
        result("bigeye pair latency p50", percentile(latencies, 50) * 1000, "ms"),
        result("bigeye pair latency p95", percentile(latencies, 95) * 1000, "ms"),
        result("bigeye failed pairs", float(failures), "pairs"),
    ]
