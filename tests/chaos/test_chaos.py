"""A seeded randomized run of every event kind, with duplicates, reordering, concurrency
and injected faults, ending with proofs: nothing lost, nothing doubled.

``CHAOS_N`` operations (default 240: CI-sized) drawn from ``CHAOS_SEED`` over many users:
Stripe credit-pack purchases (signed webhooks over HTTP), usage events (Pub/Sub), job
lifecycles (a charge, then maybe ``failed`` -> the Firestore trigger refunds), operator
grants, BigEye API calls (reserve / finalize over HTTP), provider events and crons. About
one in five operations is sent again (a duplicate) and batches run on 4 threads in a
shuffled order. ``shared.atomic.fault_hook`` injects faults in the handlers: a crash just
before a commit (nothing written; the caller or Pub/Sub retries) and a lost acknowledgement
just after it (written, but answered 503/500, so it is delivered again). Firestore
trigger deliveries are spared: the emulator does not redeliver them (Eventarc does).

At the end the run waits on the stack's settled barrier (``Stack.wait_settled``: every
published message acknowledged after its redeliveries, every trigger event the run's writes
owe handled, nothing in flight), never on a quiet period. Then, before any repair:
reconciliation is clean for both ledgers, no payment intent is credited twice, and each one
not credited yet has a parked event. Then, as a separate check, the runbook's replay of
Stripe events left parked applies each of them (the run counts them, see
``stripe_parked_stranded_replayed_by_operator``). After it: every external event (payment
intent, usage request, failed job, grant, finalized BigEye job) was applied exactly once;
daily token usage and the daily profit aggregate equal a recomputation from the usage logs.
``make chaos N=10000`` runs it larger (its figures: docs/local-stack.md). The operation
schedule is a pure function of the seed; thread interleavings and so the exact fault
placements are not.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.cloud import firestore

from devstack import stripe_send as fx
from devstack.demo import billing as demo_billing
from devstack.indexes import load_indexes, missing_indexes
from shared import atomic
from shared.admin import operations
from shared.billing import list_parked_events, replay_parked_event
from shared.clients import firestore_client
from shared.clock import SystemClock
from shared.errors import Transient
from shared.groupcommit import committer_for
from shared.ledger import (
    BIGEYE,
    KITESFORU,
    Kind,
    Ledger,
    Refs,
    group_settings,
    posting_key,
    transaction_id_for,
)
from shared.ledger.reconcile import reconcile
from shared.settings import override_settings
from tests.bigeye_api.client import api_url, register_and_login
from tests.indexes.recorder import recording

SEED = int(os.environ.get("CHAOS_SEED", "20260104"))
N = int(os.environ.get("CHAOS_N", "240"))
P_BEFORE = float(os.environ.get("CHAOS_P_BEFORE", "0.06"))
P_AFTER = float(os.environ.get("CHAOS_P_AFTER", "0.06"))
WEBHOOK_SECRET = "whsec_demo_local_only"
PACK_PRICE, PACK_CREDITS = "price_credits_500", 500
ENGINES = ("openai_chat_gpt4", "dalle_3_standard")


class InjectedFault(Transient):
    """A fault the chaos run injected (a 503 / a redelivery)."""


_driver = threading.local()
#: Set when the run is interrupted (Ctrl-C): operations still running give up at their next
#: send instead of retrying against a stack that is being stopped.
_interrupted = threading.Event()


class Interrupted(Exception):
    """The run was interrupted; an operation in flight stops here."""


class Faults:
    """The fault hook: decides, counts, raises."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.before = 0
        self.after = 0

    @staticmethod
    def eligible() -> bool:
        if getattr(_driver, "faults", False):
            return True
        import flask

        # Served functions have a script root (/<name>); trigger deliveries do not.
        return flask.has_request_context() and bool(flask.request.script_root)

    def __call__(self, stage: str) -> None:
        if not self.eligible():
            return
        with self.lock:
            roll = self.rng.random()
            if stage == "before_commit" and roll < P_BEFORE:
                self.before += 1
            elif stage == "after_commit" and roll < P_AFTER:
                self.after += 1
            else:
                return
        raise InjectedFault(f"injected fault {stage}")


@dataclass
class Tally:
    """What the driver sent and saw."""

    ops: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    retries_after_5xx: int = 0
    purchases: dict[str, str] = field(default_factory=dict)  # payment intent -> user
    refunds: dict[str, str] = field(default_factory=dict)  # refund event id -> payment intent
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)  # request id -> message
    jobs: dict[str, tuple[str, int, bool]] = field(
        default_factory=dict
    )  # id -> user, charge, failed
    grants: dict[str, tuple[str, int]] = field(default_factory=dict)  # key -> user, amount
    bigeye_finalized: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def post_until_ok(client: httpx.Client, tally: Tally, url: str, **kw: Any) -> httpx.Response:
    """Send like a well-behaved client: 5xx (and transport errors) are retried."""
    for _ in range(40):
        if _interrupted.is_set():
            raise Interrupted(url)
        try:
            response = client.post(url, **kw)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code < 500:
            return response
        with tally.lock:
            tally.retries_after_5xx += 1
        time.sleep(0.05)  # the client's back-off before it sends again
    raise AssertionError(f"{url} kept failing")


def driver_call(tally: Tally, fn: Any) -> Any:
    """A driver-side ledger call with faults enabled, retried like a job runner would."""
    _driver.faults = True
    try:
        for _ in range(40):
            if _interrupted.is_set():
                raise Interrupted("driver call")
            try:
                return fn()
            except InjectedFault:
                with tally.lock:
                    tally.retries_after_5xx += 1
        raise AssertionError("driver call kept failing")
    finally:
        _driver.faults = False


@pytest.mark.timeout(max(900, N * 0.6))  # about 0.15 s an operation idle, 4x that loaded
def test_randomized_run_with_faults_loses_and_doubles_nothing(demo: Any, stack: Any) -> None:
    db = demo
    rng = random.Random(SEED)
    demo_billing.seed(db, datetime.now(UTC))
    kites = Ledger(db, KITESFORU, SystemClock())
    bigeye = Ledger(db, BIGEYE, SystemClock())
    tally = Tally()
    client = httpx.Client(timeout=60)
    # The trigger events the run owes: a users/ create each (welcome bonus check), two
    # podcast_jobs writes per started job (refund check). Counted from here.
    users_fired = stack.handled("on-user-created")
    jobs_fired = stack.handled("on-podcast-job-failed")

    # Users: KitesForU-profile accounts for webhooks, usage, jobs and grants.
    n_users = max(6, N // 20)
    users = [f"cu{i:03d}" for i in range(n_users)]
    base_user = demo_billing.demo_user("kitesforu", datetime.now(UTC))
    for uid in users:
        db.collection("users").document(uid).set(
            {
                **base_user,
                "email": f"{uid}@example.com",
                "credits_balance": 0,
                "stripe_customer_id": f"cus_{uid}",
                "tier": "PRO",
            }
        )
    # BigEye accounts through the API, with starting credits.
    # (Setup, not under test: the per-address sign-up limit would stop it past ~15 accounts.)
    with override_settings(rate_limit_auth_ip_per_min=10 * N):
        sessions = [register_and_login(stack.base_url) for _ in range(max(2, N // 80))]
    for s in sessions:

        def seed_credits(u: Any, user_id: str = s.user_id) -> Any:
            return bigeye.credit(
                u,
                user_id=user_id,
                kind=Kind.BONUS,
                amount=400,
                key=f"chaos-seed:{user_id}",
                description="Chaos starting credits",
            )

        bigeye.run(seed_credits)

    scheduled_purchases: list[tuple[str, str]] = []  # (payment intent, user), not refunded

    def send_webhook(evt: dict[str, Any]) -> str:
        payload = json.dumps(evt)
        header = fx.signature_header(payload, WEBHOOK_SECRET)
        r = post_until_ok(
            client,
            tally,
            f"{stack.base_url}/stripe-webhook",
            content=payload,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
        assert r.status_code == 200, r.text
        status: str = r.json().get("status", "")
        return status

    def op_purchase() -> Any:
        uid, pi = rng.choice(users), f"pi_chaos_{rng.getrandbits(48):x}"
        scheduled_purchases.append((pi, uid))
        session = fx.checkout_session(
            user_id=uid,
            price_id=PACK_PRICE,
            payment_intent=pi,
            customer=f"cus_{uid}",
            amount_total=500,
            session_id=f"cs_chaos_{rng.getrandbits(48):x}",
        )
        evt = fx.event("checkout.session.completed", session)
        evt["id"] = f"evt_chaos_{rng.getrandbits(48):x}"
        payload = json.dumps(evt)

        def send() -> None:
            header = fx.signature_header(payload, WEBHOOK_SECRET)
            r = post_until_ok(
                client,
                tally,
                f"{stack.base_url}/stripe-webhook",
                content=payload,
                headers={"Stripe-Signature": header, "Content-Type": "application/json"},
            )
            assert r.status_code == 200, r.text
            with tally.lock:
                tally.purchases[pi] = uid

        return send

    def op_usage() -> Any:
        uid = rng.choice(users)
        message: dict[str, Any] = {
            "request_id": f"gen-{rng.getrandbits(48):x}",
            "user_id": uid,
            "engine_id": rng.choice(ENGINES),
            "usage_units": rng.choice([1, 2, 2.5, 4]),
            "credits_used": rng.randint(0, 30),
            "tokens": rng.randint(0, 3000),
            "subscription_plan": "pro",
        }

        def send() -> None:
            stack.publish("usage-events", json.dumps(message).encode())
            with tally.lock:
                tally.usage[message["request_id"]] = message

        return send

    def op_job() -> Any:
        uid, job_id = rng.choice(users), f"job-{rng.getrandbits(40):x}"
        charge, fails = rng.randint(1, 40), rng.random() < 0.5

        def send() -> None:
            try:
                driver_call(
                    tally,
                    lambda: kites.run(
                        lambda u: kites.debit(
                            u,
                            user_id=uid,
                            amount=charge,
                            key=f"job:{job_id}",
                            description="Podcast generation",
                            refs=Refs(job_id=job_id),
                        )
                    ),
                )
            except Exception as exc:  # InsufficientCredits: the job never starts
                if "Insufficient" not in type(exc).__name__ + str(exc):
                    raise
                return
            ref = db.collection("podcast_jobs").document(job_id)
            ref.set({"user_id": uid, "status": "processing", "credits_deducted": charge})
            if fails:
                ref.update({"status": "failed"})
            else:
                ref.update({"status": "completed"})
            with tally.lock:
                tally.jobs[job_id] = (uid, charge, fails)

        return send

    def op_refund() -> Any:
        """A full refund of an earlier purchase: may land before it (reordering)."""
        if not scheduled_purchases:
            return op_purchase()
        pi, uid = scheduled_purchases.pop(rng.randrange(len(scheduled_purchases)))
        charge = fx.charge(
            payment_intent=pi, amount=500, amount_refunded=500, customer=f"cus_{uid}"
        )
        evt = fx.event("charge.refunded", charge)
        evt["id"] = f"evt_chaos_{rng.getrandbits(48):x}"

        def send() -> None:
            send_webhook(evt)
            with tally.lock:
                tally.refunds[evt["id"]] = pi

        return send

    def op_limits() -> Any:
        """The app's backend asking usage-limits before it spends (IAM-protected API)."""
        body = {"user_id": rng.choice(users), "tokens": rng.randint(1, 5000)}

        def send() -> None:
            r = post_until_ok(client, tally, f"{stack.base_url}/usage-limits/check", json=body)
            assert r.status_code in {200, 429}, r.text

        return send

    def op_grant() -> Any:
        uid, amount = rng.choice(users), rng.randint(1, 100)
        key = f"admin:chaos:{rng.getrandbits(48):x}"

        def send() -> None:
            driver_call(
                tally,
                lambda: operations.grant(
                    kites,
                    user_id=uid,
                    amount=amount,
                    actor="chaos",
                    reason="randomized run",
                    key=key,
                    now=datetime.now(UTC),
                ),
            )
            with tally.lock:
                tally.grants[key] = (uid, amount)

        return send

    def op_bigeye() -> Any:
        s = rng.choice(sessions)
        photos, videos = rng.randint(0, 3), rng.randint(0, 2)
        files = max(1, photos + videos)
        photos = files - videos
        success = rng.randint(0, files)

        def send() -> None:
            reserved = client.post(
                api_url(stack.base_url, "job/reserve"),
                headers=s.headers,
                json={
                    "file_count": files,
                    "photo_count": photos,
                    "video_count": videos,
                    "mode": "iStock",
                    "keyword_style": None,
                    "model": "gemini-2.5-flash",
                    "version": "2.0.1",
                },
            )
            if reserved.status_code != 200:  # 402 or an injected fault: the client gives up
                return
            token = reserved.json()["job_token"]
            finalized = post_until_ok(
                client,
                tally,
                api_url(stack.base_url, "job/finalize"),
                headers=s.headers,
                json={
                    "job_token": token,
                    "success": success,
                    "failed": files - success,
                    "photos": photos,
                    "videos": videos,
                },
            )
            assert finalized.status_code == 200, finalized.text
            with tally.lock:
                tally.bigeye_finalized[token] = {
                    "user": s.user_id,
                    "reserved": reserved.json()["reserved_credits"],
                    "refunded": finalized.json()["refunded"],
                }

        return send

    def op_provider() -> Any:
        message = {
            "event_id": f"pe-{rng.getrandbits(40):x}",
            "provider": rng.choice(["openai", "google"]),
            "model_id": "gpt-4o",
            "task_type": "LLM",
            "outcome": rng.choice(["success", "success", "failure"]),
            "latency_ms": rng.randint(50, 3000),
            "tokens": rng.randint(0, 2000),
            "cost_usd": 0.01,
            "error": None,
        }

        def send() -> None:
            stack.publish("provider-events", json.dumps(message).encode())

        return send

    def op_cron() -> Any:
        topic = rng.choice(
            [
                "cron-reconcile",
                "cron-expire-jobs",
                "cron-reset-quotas",
                "cron-hourly-loss-scan",
                "cron-daily-rollup",
            ]
        )

        def send() -> None:
            stack.publish(topic, b"{}")

        return send

    kinds = [
        (op_purchase, 3),
        (op_refund, 1),
        (op_limits, 1),
        (op_usage, 6),
        (op_job, 3),
        (op_grant, 2),
        (op_bigeye, 2),
        (op_provider, 2),
        (op_cron, 1),
    ]
    makers = [m for m, w in kinds for _ in range(w)]
    schedule: list[tuple[str, Any]] = []
    for _ in range(N):
        maker = rng.choice(makers)
        name = maker.__name__[3:]
        send = maker()
        schedule.append((name, send))
        if name in {"purchase", "usage", "grant", "refund"} and rng.random() < 0.2:
            # The same event again, later in the run (or concurrently, in the same batch).
            schedule.insert(rng.randint(max(0, len(schedule) - 12), len(schedule)), (name, send))
            tally.duplicates += 1

    faults = Faults(SEED)
    atomic.fault_hook = faults
    started = time.monotonic()
    _interrupted.clear()
    pool = ThreadPoolExecutor(4)
    try:
        with recording() as queries:
            for i in range(0, len(schedule), 16):
                batch = schedule[i : i + 16]
                rng.shuffle(batch)
                for name, _ in batch:
                    tally.ops[name] += 1
                list(pool.map(lambda item: item[1](), batch))
            # The barrier: every published message (usage, provider, crons) acknowledged
            # after its redeliveries, every trigger event the run's writes owe handled
            # (a users/ create each, two podcast_jobs writes per started job), nothing in
            # flight. Redeliveries of lost acknowledgements are part of it: they replay.
            stack.wait_settled(
                timeout_s=max(120, N * 0.1),
                handled={
                    "on-user-created": users_fired + len(users) + len(sessions),
                    "on-podcast-job-failed": jobs_fired + 2 * len(tally.jobs),
                },
            )
    except BaseException:
        # Ctrl-C (or a failure): the operations queued are dropped and those running stop
        # at their next send, so the stack's teardown starts within seconds.
        _interrupted.set()
        raise
    finally:
        atomic.fault_hook = None
        pool.shutdown(wait=True, cancel_futures=True)
    elapsed = time.monotonic() - started

    # Stripe events still parked although what they waited for now exists: the billing
    # service replays parked events only when the enabling event is first processed, so a
    # fault in that automatic replay (or a lost ack on the enabling event, whose redelivery
    # is a duplicate) strands them. The runbook's procedure replays them; count how many.
    # 1. Before any repair, nothing is lost or doubled: both ledgers reconcile, no payment
    # intent is credited twice, and each one not credited yet has a parked event (kept
    # with its payload) to credit it.
    before_repair = datetime.now(UTC)
    for profile in (KITESFORU, BIGEYE):
        report = reconcile(db, profile, run_id=f"chaos_pre_{profile.name}", now=before_repair)
        assert report.clean, report.discrepancies[:5]
    credited = Counter(
        (s.to_dict() or {}).get("stripe_payment_intent_id")
        for s in db.collection("credit_transactions")
        .where(filter=firestore.FieldFilter("type", "==", "PURCHASE"))
        .stream()
    )
    assert all(credited[pi] <= 1 for pi in tally.purchases)
    uncredited = [pi for pi in tally.purchases if credited[pi] == 0]
    stranded = [p["event_id"] for p in list_parked_events(db, limit=1000)]
    assert len(uncredited) <= len(stranded), uncredited

    # 2. The parked-event sweep (the runbook's replay), a separate check: every stranded
    # event applies, and none is left parked.
    for event_id in stranded:
        assert replay_parked_event(db, event_id).status == "applied", event_id
    assert list_parked_events(db) == []

    # 3. After the sweep: reconciliation is clean for every user of both ledgers.
    now = datetime.now(UTC)
    for profile in (KITESFORU, BIGEYE):
        report = reconcile(db, profile, run_id=f"chaos_{profile.name}", now=now)
        assert report.clean, report.discrepancies[:5]
        assert report.users_checked >= len(users)

    txs = [s.to_dict() or {} for s in db.collection("credit_transactions").stream()]
    # 4. Exactly once: each payment intent credited once.
    by_pi = Counter(t.get("stripe_payment_intent_id") for t in txs if t["type"] == "PURCHASE")
    owner = {
        t.get("stripe_payment_intent_id"): t["user_id"] for t in txs if t["type"] == "PURCHASE"
    }
    for pi, uid in tally.purchases.items():
        assert by_pi[pi] == 1 and owner[pi] == uid, pi
    assert sum(by_pi.values()) == len(tally.purchases)
    # Each refund event clawed back once: what was taken plus what was already spent
    # (the shortfall) is the whole pack.
    for event_id, pi in tally.refunds.items():
        rec = (
            db.collection("ledger_postings")
            .document(transaction_id_for(f"stripe:{event_id}"))
            .get()
        )
        assert rec.exists, f"refund {event_id} of {pi} never applied"
        data = rec.to_dict() or {}
        assert -int(data["amount"]) + int(data.get("shortfall") or 0) == PACK_CREDITS, event_id
    refunded_pis = Counter(tally.refunds.values())
    assert set(refunded_pis.values()) <= {1}
    # Each usage request metered once, each with its ledger posting.
    logs = [s.to_dict() or {} for s in db.collection("usage_logs").stream()]
    per_request = Counter(log["request_id"] for log in logs)
    assert set(per_request) == set(tally.usage) and set(per_request.values()) == {1}
    for rid, message in tally.usage.items():
        if message["credits_used"]:
            posting = db.collection("ledger_postings").document(transaction_id_for(f"usage:{rid}"))
            assert posting.get().exists, rid
    # Each failed job refunded once, in full; no other job refunded.
    refunds = Counter(t.get("job_id") for t in txs if t["type"] == "REFUND")
    refunded_amount: dict[str, int] = defaultdict(int)
    for t in txs:
        if t["type"] == "REFUND" and t.get("job_id"):
            refunded_amount[t["job_id"]] += t["amount"]
    for job_id, (_, charge, fails) in tally.jobs.items():
        assert refunds[job_id] == (1 if fails else 0), job_id
        if fails:
            assert refunded_amount[job_id] == charge
    # Each grant once, with its audit record.
    actions = {s.id: s.to_dict() or {} for s in db.collection("admin_actions").stream()}
    assert len([a for a in actions.values() if a["action"] == "grant"]) == len(tally.grants)
    for key, (uid, amount) in tally.grants.items():
        action = actions[transaction_id_for(key)]
        assert (action["user_id"], action["amount"]) == (uid, amount)
    # Each finalized BigEye job closed once with the refund the client was told.
    for token, seen in tally.bigeye_finalized.items():
        job = db.collection("jobs").document(token).get().to_dict() or {}
        assert job["status"] == "COMPLETED", token
        assert job["refund_amount"] == seen["refunded"], token
        assert (
            db.collection("ledger_postings")
            .document(transaction_id_for(posting_key("hold", token, "close")))
            .get()
            .exists
        )

    # 5. Aggregates equal a recomputation from the raw usage logs.
    tokens: dict[str, int] = defaultdict(int)
    for log in logs:
        day = log["created_at"].date().isoformat()
        tokens[f"{log['user_id']}_{day}"] += int(tally.usage[log["request_id"]].get("tokens") or 0)
    for doc_id, total in tokens.items():
        stored = db.collection("daily_token_usage").document(doc_id).get().to_dict() or {}
        assert stored.get("tokensUsed", 0) == total, doc_id
    today = now.date().isoformat()
    stack.publish("cron-daily-rollup", json.dumps({"date": today}).encode())
    stack.wait_settled(timeout_s=120)
    aggregate_id = f"daily_{today.replace('-', '_')}"
    aggregate = db.collection("profit_aggregates").document(aggregate_id).get().to_dict() or {}
    assert aggregate.get("total_generations") == len(logs), aggregate
    cost = sum(Decimal(str(log["real_cost_usd"])) for log in logs)
    assert abs(Decimal(str(aggregate["total_cost_usd"])) - cost) <= Decimal("0.01")
    assert aggregate["total_users"] == len({log["user_id"] for log in logs})

    # 6. Every query the run sent is served by a declared index.
    assert missing_indexes(list(queries.shapes), load_indexes()) == []

    # Usage deductions and BigEye reserve/finalize went through group commit.
    grouped = committer_for(firestore_client(), group_settings())
    assert grouped.committed_members > 0 or N < 50

    figures = {
        "seed": SEED,
        "operations": sum(tally.ops.values()),
        "by_kind": dict(tally.ops),
        "duplicates_sent": tally.duplicates,
        "faults_before_commit": faults.before,
        "faults_after_commit": faults.after,
        "client_retries_after_5xx": tally.retries_after_5xx,
        "stripe_parked_stranded_replayed_by_operator": len(stranded),
        "users": len(users) + len(sessions),
        "queries_checked_against_indexes": len(queries.shapes),
        "run_s": round(elapsed, 1),
        "group_commits": grouped.commits,
        "group_committed_postings": grouped.committed_members,
        "group_failed_commits": grouped.failed_commits,
        "lost": 0,
        "doubled": 0,
    }
    print("\nchaos figures: " + json.dumps(figures))
    figures_file = Path(__file__).resolve().parents[2] / "build" / "reports" / "chaos.json"
    figures_file.parent.mkdir(parents=True, exist_ok=True)
    figures_file.write_text(json.dumps(figures, indent=2) + "\n")
    assert faults.before + faults.after > 0 or N < 50
