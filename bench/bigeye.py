"""BigEye credit API: reserve+finalize pairs per second over HTTP against raw ledger postings.

Eight clients (one user each) run reserve -> finalize pairs against ``credit-api`` over real
HTTP; the baseline is the ledger's own posting rate (``credit`` postings from eight threads
on eight accounts, no HTTP) on the same emulator in the same run. Each pair is two HTTP
requests and two ledger operations (hold, settle) plus the job, audit and rate-limit writes.
Rate limits are raised for the run (they would otherwise throttle a single benchmark user).
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench.common import BenchContext, Result, percentile, result
from shared.atomic import Unit
from shared.clock import SystemClock
from shared.ledger import BIGEYE, Kind, Ledger
from shared.settings import override_settings

CLIENTS = 8
RESERVE = {
    "file_count": 7,
    "photo_count": 5,
    "video_count": 2,
    "mode": "iStock",
    "keyword_style": None,
    "model": "gemini-2.5-flash",
    "version": "2.0.1",
}
APP_SETTINGS = {
    "prompts": {"istock": "istock prompt", "hybrid": "hybrid prompt", "single": "single"},
    "dictionary": "keyword1\nkeyword2",
    "blacklist": ["nike", "adidas", "iphone"],
    "credit_rates": {
        "istock_photo": 3,
        "istock_video": 3,
        "adobe_photo": 2,
        "adobe_video": 2,
        "shutterstock_photo": 2,
        "shutterstock_video": 2,
    },
    "exchange_rate": 4,
    "app_latest_version": "2.0.1",
    "force_update_below": None,
    "maintenance_mode": False,
    "maintenance_message": "",
    "context_cache_threshold": 20,
    "max_concurrent_images": 5,
    "max_concurrent_videos": 2,
    "prompts_version": "1",
}


def _session(base: str, client: httpx.Client, i: int) -> tuple[str, str]:
    body = {
        "email": f"bench-{uuid.uuid4().hex[:8]}-{i}@example.com",
        "password": "bench-password",
        "full_name": "Bench User",
        "phone": "0800000000",
        "hardware_id": f"bench-hw-{i}",
    }
    data = client.post(f"{base}/auth/register", json=body).raise_for_status().json()
    return str(data["token"]), str(data["user_id"])


def _credit(ledger: Ledger, user_id: str, amount: int, key: str) -> None:
    def work(unit: Unit) -> None:
        ledger.credit(
            unit, user_id=user_id, kind=Kind.BONUS, amount=amount, key=key, description="bench"
        )

    ledger.run(work)


def run(ctx: BenchContext) -> list[Result]:
    db = ctx.db
    pairs_per_client = 10 if ctx.quick else 40
    base = f"{ctx.stack.base_url}/credit-api/api/v1"
    db.collection("system_config").document("app_settings").set(APP_SETTINGS)
    ledger = Ledger(db, BIGEYE, SystemClock())
    limits = {
        "bcrypt_rounds": 4,
        "rate_limit_ip_per_min": 1_000_000,
        "rate_limit_user_per_min": 1_000_000,
    }
    with override_settings(**limits), httpx.Client(timeout=60) as client:
        sessions = [_session(base, client, i) for i in range(CLIENTS)]
        for _, user_id in sessions:
            _credit(ledger, user_id, 1_000_000, f"bench-bonus:{user_id}")

        latencies: list[float] = []
        failures = 0
        lock = threading.Lock()

        def pairs(index: int) -> None:
            nonlocal failures
            token, _ = sessions[index]
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(timeout=60, headers=headers) as own:
                for _ in range(pairs_per_client):
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

        start = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(pairs, range(CLIENTS)))
        api_s = time.perf_counter() - start

    # Baseline: raw ledger postings, eight threads on the same eight accounts.
    postings_per_thread = 20 if ctx.quick else 60
    run_id = uuid.uuid4().hex[:6]

    def postings(index: int) -> None:
        _, user_id = sessions[index]
        for i in range(postings_per_thread):
            _credit(ledger, user_id, 1, f"bench:{run_id}:{index}:{i}")

    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(postings, range(CLIENTS)))
    ledger_s = time.perf_counter() - start
    postings_rate = CLIENTS * postings_per_thread / ledger_s
    pair_rate = len(latencies) / api_s
    return [
        result(
            "bigeye reserve+finalize pairs/s (8 clients, HTTP)",
            pair_rate,
            "pairs/s",
            "ledger postings/s (8 threads)",
            postings_rate,
        ),
        result("bigeye pair latency p50", percentile(latencies, 50) * 1000, "ms"),
        result("bigeye pair latency p95", percentile(latencies, 95) * 1000, "ms"),
        result("bigeye failed pairs", float(failures), "pairs"),
    ]
