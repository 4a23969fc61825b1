"""ledger-api charges over real HTTP (the vendorable client) against raw ledger postings.

Both run in the same stack in the same run, 8 writers: the baseline calls the ledger's
``debit`` in-process (what the function does after parsing), the measured path adds HTTP,
validation, the Idempotency-Key record and the JSON answer. Distinct accounts and one hot
account; p50/p99 of each charge as the caller sees it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from bench.common import BenchContext, Result, drive, latency_results, result
from shared.clock import SystemClock
from shared.ledger import KITESFORU, Ledger
from shared.ledgerapi.client import LedgerApiClient, LedgerApiError

WRITERS = 8
START_CREDITS = 1_000_000


def run(ctx: BenchContext) -> list[Result]:
    db = ctx.db
    n = 30 if ctx.quick else 100
    run_id = uuid.uuid4().hex[:6]
    users = [f"api-bench-{w}" for w in range(WRITERS)]
    batch = db.batch()
    for uid in [*users, "api-bench-hot", "raw-bench-hot"]:
        batch.set(db.collection("users").document(uid), {"credits_balance": START_CREDITS})
    for w in range(WRITERS):
        batch.set(
            db.collection("users").document(f"raw-bench-{w}"), {"credits_balance": START_CREDITS}
        )
    batch.commit()
    ledger = Ledger(db, KITESFORU, SystemClock())
    clients = [LedgerApiClient(f"{ctx.stack.base_url}/ledger-api") for _ in range(WRITERS)]

    def raw(target: Callable[[int], str]) -> Callable[[int, int], None]:
        def post(w: int, i: int) -> None:
            ledger.run(
                lambda u: ledger.debit(
                    u,
                    user_id=target(w),
                    amount=1,
                    key=f"rawbench:{run_id}:{target(w)}:{w}:{i}",
                    description="bench",
                )
            )

        return post

    def api(target: Callable[[int], str]) -> Callable[[int, int], None]:
        def post(w: int, i: int) -> None:
            clients[w].charge(target(w), 1, idempotency_key=f"{run_id}-{target(w)}-{w}-{i}")

        return post

    def timed_run(post: Callable[[int, int], None]) -> tuple[float, list[float], int]:
        return drive(WRITERS, n, post, errors=(LedgerApiError,))

    try:
        raw_s, raw_lat, _ = timed_run(raw(lambda w: f"raw-bench-{w}"))
        api_s, api_lat, api_err = timed_run(api(lambda w: users[w]))
        raw_hot_s, raw_hot_lat, _ = timed_run(raw(lambda w: "raw-bench-hot"))
        hot_s, hot_lat, hot_err = timed_run(api(lambda w: "api-bench-hot"))
    finally:
        for client in clients:
            client.close()
    hot_balance = db.collection("users").document("api-bench-hot").get().get("credits_balance")
    assert hot_balance == START_CREDITS - (WRITERS * n - hot_err), "hot account lost a charge"
    raw_rate = WRITERS * n / raw_s
    api_rate = (WRITERS * n - api_err) / api_s
    raw_hot_rate = WRITERS * n / raw_hot_s
    hot_rate = (WRITERS * n - hot_err) / hot_s
    return [
        result("raw ledger debits, 8 writers, distinct accounts", raw_rate, "ops/s"),
        result(
            "ledger-api charges over HTTP, 8 writers, distinct accounts",
            api_rate,
            "ops/s",
            "raw ledger debits",
            raw_rate,
        ),
        *latency_results(
            "ledger-api charge latency p{pct} (distinct)", api_lat, "raw ledger p{pct}", raw_lat
        ),
        result(
            "ledger-api charges over HTTP, 8 writers, ONE hot account",
            hot_rate,
            "ops/s",
            "raw ledger debits, hot",
            raw_hot_rate,
        ),
        *latency_results(
            "ledger-api charge latency p{pct} (hot)",
            hot_lat,
            "raw ledger p{pct} (hot)",
            raw_hot_lat,
        ),
        result("ledger-api hot account errors", float(hot_err + api_err), "count"),
    ]
