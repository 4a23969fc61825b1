"""Stripe webhook throughput over loopback against the raw ledger posting rate.

Eight concurrent senders POST signed ``checkout.session.completed`` purchases to the
running stack's ``/stripe-webhook`` (signature check, event record, ledger posting, payment
record, customer link: one atomic unit per event), first each sender for its own user,
then all for one user (one hot balance document). The baseline is ``Ledger.credit`` called
directly from eight threads on the same users in the same run: the difference is the cost
of HTTP, signature verification, parsing and the webhook's own bookkeeping.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from bench.common import BenchContext, Result, drive, percentile, result
from devstack import stripe_send as fx
from devstack.demo import billing as demo_billing
from shared.clock import SystemClock
from shared.ledger import KITESFORU, Kind, Ledger

SENDERS = 8


def run(ctx: BenchContext) -> list[Result]:
    db = ctx.db
    n = 12 if ctx.quick else 40
    now = datetime.now(UTC)
    demo_billing.seed(db, now)
    users = [f"stripe-bench-{s}" for s in range(SENDERS)]
    for uid in [*users, "stripe-bench-hot"]:
        db.collection("users").document(uid).set(demo_billing.demo_user("kitesforu", now))
    url = f"{ctx.stack.base_url}/stripe-webhook"
    secret = fx.default_secret()
    clients = [httpx.Client(timeout=60) for _ in range(SENDERS)]
    ledger = Ledger(db, KITESFORU, SystemClock())
    run_id = uuid.uuid4().hex[:6]
    out: list[Result] = []
    try:
        for label, target in (
            ("distinct users", lambda s: users[s]),
            ("one user", lambda s: "stripe-bench-hot"),
        ):

            def post(s: int, i: int, target: Callable[[int], str] = target) -> None:
                session = fx.checkout_session(
                    user_id=target(s),
                    price_id="price_credits_500",
                    payment_intent=fx.new_id("pi"),
                    # The user's own customer: a customer linked to another user would
                    # (rightly) park the purchase as an attribution conflict.
                    customer=f"cus_bench_{target(s)}",
                )
                response = fx.send(
                    url,
                    fx.event("checkout.session.completed", session),
                    secret=secret,
                    client=clients[s],
                )
                if response.status_code != 200 or response.json()["status"] != "applied":
                    raise RuntimeError(f"webhook answered {response.status_code}: {response.text}")

            def credit(
                s: int, i: int, target: Callable[[int], str] = target, label: str = label
            ) -> None:
                ledger.run(
                    lambda u: ledger.credit(
                        u,
                        user_id=target(s),
                        kind=Kind.PURCHASE,
                        amount=500,
                        key=f"bench:{run_id}:{label}:{s}:{i}",
                        description="Bench credit",
                    )
                )

            base_s, base_lat, _ = drive(SENDERS, n, credit)
            hook_s, hook_lat, _ = drive(SENDERS, n, post)
            total = n * SENDERS
            base_rate, hook_rate = total / base_s, total / hook_s
            out += [
                result(
                    f"webhook deliveries/s, 8 senders, {label}",
                    hook_rate,
                    "ops/s",
                    f"ledger credits/s, 8 threads, {label}",
                    base_rate,
                ),
                result(
                    f"webhook p50 latency, {label}",
                    percentile(hook_lat, 50) * 1000,
                    "ms",
                    "ledger credit p50",
                    percentile(base_lat, 50) * 1000,
                    higher_is_better=False,
                ),
                result(
                    f"webhook p99 latency, {label}",
                    percentile(hook_lat, 99) * 1000,
                    "ms",
                    "ledger credit p99",
                    percentile(base_lat, 99) * 1000,
                    higher_is_better=False,
                ),
            ]
        # Every delivery applied once: balances are exactly what was sent.
        expected = n * 500 * 2  # webhook + baseline credits per distinct user
        for uid in users:
            balance = db.collection("users").document(uid).get().get("credits_balance")
            if balance != expected:
                raise RuntimeError(f"{uid}: balance {balance} != {expected}")
    finally:
        for client in clients:
            client.close()
    return out
