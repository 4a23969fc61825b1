"""Ledger throughput and latency against the raw client rate of the same reads and writes."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from google.api_core import exceptions as gexc

from bench.common import BenchContext, Result, drive, latency_results, percentile, result
from shared.clock import SystemClock
from shared.errors import CreditsError
from shared.groupcommit import GroupCommitter, GroupSettings
from shared.ledger import KITESFORU, Kind, Ledger
from shared.ledger.reconcile import reconcile

WRITERS = 8
#: Requests each writer keeps in flight in the concurrent rows: a writer is then one source
#: of concurrent requests, as one Cloud Functions (2nd gen) instance serving several
#: requests at once; each request is a thread posting one at a time.
IN_FLIGHT = 8


def run(ctx: BenchContext) -> list[Result]:
    db = ctx.db
    n = 40 if ctx.quick else 150
    users = [f"bench-{w}" for w in range(WRITERS)]
    batch = db.batch()
    for uid in [*users, "bench-hot", "bench-group", "bench-hot-c", "bench-group-c"]:
        batch.set(db.collection("users").document(uid), {"credits_balance": 0})
    batch.commit()
    ledger = Ledger(db, KITESFORU, SystemClock())
    run_id = uuid.uuid4().hex[:6]

    # Baseline: the same reads (posting record + user) and the same three writes in one
    # batch, done directly with the client, with no checks, no preconditions, no retries.
    def raw(w: int, i: int) -> None:
        user_ref = db.collection("users").document(users[w])
        tx_id = str(uuid.uuid4())
        rec_ref = db.collection("raw_postings").document(tx_id)
        snaps = list(db.get_all([rec_ref, user_ref]))
        balance = next(s for s in snaps if s.id == users[w]).get("credits_balance") or 0
        b = db.batch()
        b.update(user_ref, {"credits_balance": balance + 1, "total_credits_purchased": i})
        b.create(db.collection("raw_transactions").document(tx_id), {"amount": 1, "w": w})
        b.create(rec_ref, {"key": f"{w}:{i}"})
        b.commit()

    def posting(w: int, i: int) -> None:
        ledger.run(
            lambda u: ledger.credit(
                u,
                user_id=users[w],
                kind=Kind.PURCHASE,
                amount=1,
                key=f"bench:{run_id}:{w}:{i}",
                description="bench",
            )
        )

    def single(user: str) -> Callable[[int, int], None]:
        def hot(w: int, i: int) -> None:
            ledger.run(
                lambda u: ledger.credit(
                    u,
                    user_id=user,
                    kind=Kind.PURCHASE,
                    amount=1,
                    key=f"{user}:{run_id}:{w}:{i}",
                    description="bench",
                )
            )

        return hot

    # Baseline: the bare compare-and-swap ceiling of one document: read it, write it back
    # with "unchanged since read", retry on failure; no posting, no record.
    cas_ref = db.collection("bench_cas").document("one")
    cas_ref.set({"n": 0})

    def cas(w: int, i: int) -> None:
        while True:
            snap = cas_ref.get()
            try:
                cas_ref.update(
                    {"n": snap.get("n") + 1},
                    option=db.write_option(last_update_time=snap.update_time),
                )
                return
            except (gexc.FailedPrecondition, gexc.Aborted):
                continue

    def grouped_on(user: str) -> tuple[GroupCommitter, Callable[[int, int], None]]:
        group = GroupCommitter(db, GroupSettings())
        grouped = Ledger(db, KITESFORU, SystemClock(), group=group)

        def group_hot(w: int, i: int) -> None:
            grouped.run(
                lambda u: grouped.credit(
                    u,
                    user_id=user,
                    kind=Kind.PURCHASE,
                    amount=1,
                    key=f"{user}:{run_id}:{w}:{i}",
                    description="bench",
                ),
                account=user,
            )

        return group, group_hot

    def exact(user: str, expected: int) -> None:
        balance = db.collection("users").document(user).get().get("credits_balance")
        assert balance == expected, f"{user}: lost or doubled an update"
        now = SystemClock().now()
        report = reconcile(db, KITESFORU, run_id=f"bench-{user}", now=now, user_ids=[user])
        assert report.clean, f"{user}: the balance_after chain is broken"

    fails = (CreditsError,)
    raw_s, raw_lat, _ = drive(WRITERS, n, raw, errors=fails)
    led_s, led_lat, led_err = drive(WRITERS, n, posting, errors=fails)
    hot_s, hot_lat, hot_err = drive(WRITERS, n, single("bench-hot"), errors=fails)
    cas_s, _, _ = drive(WRITERS, n, cas, errors=fails)
    n_group = 4 * n
    group, group_hot = grouped_on("bench-group")
    group_s, group_lat, group_err = drive(WRITERS, n_group, group_hot, errors=fails)
    cas_rate = WRITERS * n / cas_s
    group_rate = (WRITERS * n_group - group_err) / group_s
    exact("bench-group", WRITERS * n_group - group_err)
    raw_rate = WRITERS * n / raw_s
    led_rate = (WRITERS * n - led_err) / led_s
    hot_rate = (WRITERS * n - hot_err) / hot_s
    exact("bench-hot", WRITERS * n - hot_err)
    # The same three paths with each writer keeping IN_FLIGHT requests in flight.
    threads = WRITERS * IN_FLIGHT
    n_base = 1 if ctx.quick else 3
    cas_ref.set({"n": 0})
    cas_c_s, _, _ = drive(threads, n_base, cas, errors=fails)
    hot_c_s, hot_c_lat, hot_c_err = drive(threads, n_base, single("bench-hot-c"), errors=fails)
    n_group_c = 5 if ctx.quick else 25
    group_c, group_hot_c = grouped_on("bench-group-c")
    group_c_s, group_c_lat, group_c_err = drive(threads, n_group_c, group_hot_c, errors=fails)
    cas_c_rate = threads * n_base / cas_c_s
    hot_c_rate = (threads * n_base - hot_c_err) / hot_c_s
    group_c_rate = (threads * n_group_c - group_c_err) / group_c_s
    exact("bench-hot-c", threads * n_base - hot_c_err)
    exact("bench-group-c", threads * n_group_c - group_c_err)
    conc = f"8 writers x {IN_FLIGHT} requests in flight"
    return [
        result("raw client read+batch rate, 8 writers", raw_rate, "ops/s"),
        result(
            "ledger postings, 8 writers, distinct accounts",
            led_rate,
            "ops/s",
            "raw client read+batch rate",
            raw_rate,
        ),
        *latency_results(
            "ledger posting latency p{pct} (distinct)", led_lat, "raw p{pct}", raw_lat
        ),
        result("ledger postings, 8 writers, ONE hot account", hot_rate, "ops/s", "goal", 50.0),
        result("hot account errors", float(hot_err), "count"),
        *latency_results("ledger posting latency p{pct} (hot)", hot_lat),
        result("bare CAS on one document, 8 writers", cas_rate, "ops/s"),
        result(
            "group commit, 8 writers, ONE hot account",
            group_rate,
            "ops/s",
            "single-commit hot account",
            hot_rate,
        ),
        result(
            "group commit vs bare CAS ceiling",
            group_rate,
            "ops/s",
            "bare CAS on one document",
            cas_rate,
        ),
        result("group commit errors", float(group_err), "count"),
        result("group commit latency p50 (hot)", percentile(group_lat, 50) * 1000, "ms"),
        result("group commit latency p99 (hot)", percentile(group_lat, 99) * 1000, "ms"),
        result(
            "group commit: commits per posting",
            group.commits / max(1, group.committed_members),
            "commits",
            "single commit",
            1.0,
            higher_is_better=False,
        ),
        result("group commit: failed commits", float(group.failed_commits), "count"),
        result(f"bare CAS on one document, {conc}", cas_c_rate, "ops/s"),
        result(f"ledger postings, {conc}, ONE hot account", hot_c_rate, "ops/s"),
        result(f"single-commit errors, {conc}", float(hot_c_err), "count"),
        result(
            f"group commit, {conc}, ONE hot account",
            group_c_rate,
            "ops/s",
            "single-commit hot account, same writers",
            hot_c_rate,
        ),
        result(
            f"group commit vs bare CAS ceiling, {conc}",
            group_c_rate,
            "ops/s",
            "bare CAS on one document, same writers",
            cas_c_rate,
        ),
        result(f"group commit errors, {conc}", float(group_c_err), "count"),
        *latency_results(
            f"group commit latency p{{pct}}, {conc}",
            group_c_lat,
            "single-commit p{pct}, same writers",
            hot_c_lat,
        ),
        result(
            f"group commit: commits per posting, {conc}",
            group_c.commits / max(1, group_c.committed_members),
            "commits",
            "single commit",
            1.0,
            higher_is_better=False,
        ),
        result(f"group commit: failed commits, {conc}", float(group_c.failed_commits), "count"),
    ]
