"""Job reserve and finalize count their rate limits inside their own unit of work.

The counters are read with the unit's other documents and written back as ``count + 1``
in its commit, so a limit is exact under concurrency: of N requests racing for K slots,
exactly K are served, and every request (served or refused, for any reason) is counted
once.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from google.cloud import firestore

from shared.bigeye import ratelimit
from shared.clock import FixedClock, SystemClock, get_clock, set_clock
from shared.settings import override_settings
from tests.bigeye_api.client import give_credits, register_and_login
from tests.bigeye_api.test_jobs import SEED_RESERVE


@pytest.fixture
def frozen(bigeye):
    """A clock that stays inside one rate-limit window for the whole test."""
    set_clock(FixedClock(SystemClock().now().replace(second=10, microsecond=0)))
    return bigeye


def _counts(db, scope: str) -> list[int]:
    query = db.collection(ratelimit.RATE_LIMITS).where(
        filter=firestore.FieldFilter("scope", "==", scope)
    )
    return [int(s.get("count")) for s in query.stream()]


def _ip_count(db, ip: str) -> int:
    now = get_clock().now()  # the frozen clock: the test's window
    limit = ratelimit.Limit("ip", ip, 1)
    snap = ratelimit.counter_refs(db, [limit], now)[0].get()
    return int(snap.get("count")) if snap.exists else 0


def test_concurrent_reserves_of_one_user_take_exactly_the_limit(stack, frozen) -> None:
    db = frozen
    session = register_and_login(stack.base_url)
    give_credits(db, session.user_id, 10_000)
    ip = f"198.51.100.{uuid.uuid4().int % 250}"
    before = _counts(db, "user")
    with override_settings(rate_limit_user_per_min=5), ThreadPoolExecutor(12) as pool:
        codes = list(
            pool.map(
                lambda _: (
                    session.post(
                        "job/reserve", SEED_RESERVE, headers={"X-Forwarded-For": ip}
                    ).status_code
                ),
                range(12),
            )
        )
    assert sorted(codes) == [200] * 5 + [429] * 7
    jobs = db.collection("jobs").where(
        filter=firestore.FieldFilter("user_id", "==", session.user_id)
    )
    assert len(list(jobs.stream())) == 5
    assert sum(_counts(db, "user")) - sum(before) == 12  # refused requests count too
    assert _ip_count(db, ip) == 12


def test_one_ip_limit_is_exact_across_users(stack, frozen) -> None:
    db = frozen
    sessions = [register_and_login(stack.base_url) for _ in range(4)]
    for s in sessions:
        give_credits(db, s.user_id, 10_000)
    ip = f"203.0.113.{uuid.uuid4().int % 250}"
    with override_settings(rate_limit_ip_per_min=6), ThreadPoolExecutor(12) as pool:
        codes = list(
            pool.map(
                lambda i: (
                    sessions[i % 4]
                    .post("job/reserve", SEED_RESERVE, headers={"X-Forwarded-For": ip})
                    .status_code
                ),
                range(12),
            )
        )
    assert sorted(codes) == [200] * 6 + [429] * 6
    assert _ip_count(db, ip) == 12


def test_refused_job_requests_count_once(stack, frozen) -> None:
    db = frozen
    session = register_and_login(stack.base_url)  # no credits: reserve is 402
    ip = f"192.0.2.{uuid.uuid4().int % 250}"
    headers = {"X-Forwarded-For": ip}
    with override_settings(rate_limit_ip_per_min=4):
        codes = [
            session.post("job/reserve", SEED_RESERVE, headers=headers).status_code,
            session.post("job/reserve", {"file_count": "x"}, headers=headers).status_code,
            session.post(
                "job/finalize", {"job_token": str(uuid.uuid4()), "success": 1, "failed": 0},
                headers=headers,
            ).status_code,
            session.post(
                "job/reserve", SEED_RESERVE,
                headers={**headers, "Authorization": "Bearer nope"},
            ).status_code,
            session.post("job/reserve", SEED_RESERVE, headers=headers).status_code,
        ]  # fmt: skip
    assert codes == [402, 400, 404, 401, 429]
    assert _ip_count(db, ip) == 5
