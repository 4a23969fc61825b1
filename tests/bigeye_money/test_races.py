"""Concurrent top-ups: a slip credits once, a limited promotion is never over-redeemed."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from shared.bigeye.redemptions import fold_stats, shards_of
from shared.bigeye.topup import topup
from shared.errors import Conflict, CreditsError
from tests.bigeye_money.conftest import make_slip, make_user
from tests.bigeye_money.test_topup import _assert_ledger_consistent, _docs, _promotion


def _race(calls: list[dict[str, Any]], db: Any) -> list[Any]:
    """Run every top-up at the same moment; each result is a body or the error raised."""
    barrier = threading.Barrier(len(calls))

    def one(kwargs: dict[str, Any]) -> Any:
        barrier.wait()
        try:
            return topup(db, now=datetime.now(UTC), **kwargs)
        except CreditsError as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(one, calls))


def test_the_same_slip_sent_four_times_at_once_credits_once(money) -> None:
    db = money
    for user in ("r1", "r2"):
        make_user(db, user)
    slip = make_slip("TR-RACE", 500)
    calls = [
        {"user_id": user, "slip": slip, "amount": 500, "promo_code": None}
        for user in ("r1", "r1", "r2", "r2")
    ]
    results = _race(calls, db)
    bodies = [r for r in results if isinstance(r, dict)]
    errors = [r for r in results if not isinstance(r, dict)]
    assert len(bodies) == 1 and bodies[0]["added"] == 2200
    assert len(errors) == 3 and all(isinstance(e, Conflict) for e in errors)
    txs = _docs(db, "transactions")
    assert len(txs) == 1 and txs[0]["metadata"]["slip_ref"] == "TR-RACE"
    statuses = sorted(s["status"] for s in _docs(db, "slips"))
    assert statuses == ["DUPLICATE", "DUPLICATE", "DUPLICATE", "VERIFIED"]
    assert len(_docs(db, "promo_redemptions")) == 1
    for user in ("r1", "r2"):
        _assert_ledger_consistent(db, user)


def test_the_last_redemption_taken_at_once_goes_to_exactly_one(money) -> None:
    db = money
    _promotion(
        db,
        "last-one",
        priority=100,
        **{"conditions.max_redemptions": 1, "reward.bonus_credits": 1000},
    )
    users = [make_user(db, f"l{i}") for i in range(4)]
    calls = [
        {"user_id": u, "slip": make_slip(f"TR-L{i}", 50), "amount": 50, "promo_code": None}
        for i, u in enumerate(users)
    ]
    results = _race(calls, db)
    assert all(isinstance(r, dict) for r in results), results
    winners = [r for r in results if r["promo_id"] == "last-one"]
    assert len(winners) == 1 and winners[0]["added"] == 1200
    assert sorted(r["added"] for r in results) == [200, 200, 200, 1200]
    assert len(_docs(db, "promo_redemptions")) == 1
    assert sum(s.redemptions for s in shards_of(db, "last-one")) == 1
    fold_stats(db, datetime.now(UTC))
    stats = db.collection("promotions").document("last-one").get().get("stats")
    assert stats["total_redemptions"] == 1 and stats["unique_users"] == 1
    for user in users:
        _assert_ledger_consistent(db, user)


def test_the_last_code_redemption_taken_at_once_credits_the_loser_nothing(money) -> None:
    db = money
    _promotion(
        db,
        "code-last",
        code="LAST",
        **{"conditions.max_redemptions": 1, "conditions.require_code": True},
    )
    make_user(db, "c1")
    make_user(db, "c2")
    calls = [
        {"user_id": u, "slip": make_slip(f"TR-C{u}", 100), "amount": 100, "promo_code": "LAST"}
        for u in ("c1", "c2")
    ]
    results = _race(calls, db)
    bodies = [r for r in results if isinstance(r, dict)]
    errors = [r for r in results if not isinstance(r, dict)]
    assert len(bodies) == 1 and bodies[0]["promo_id"] == "code-last"
    assert len(errors) == 1 and isinstance(errors[0], Conflict)
    assert "no redemptions left" in errors[0].detail
    assert len(_docs(db, "transactions")) == 1
    rejected = [s for s in _docs(db, "slips") if s["status"] == "REJECTED"]
    assert len(rejected) == 1 and "no redemptions left" in rejected[0]["reject_reason"]


def test_one_per_user_holds_when_a_user_sends_two_slips_at_once(money) -> None:
    db = money
    _promotion(db, "once", priority=100, **{"conditions.max_per_user": 1})
    make_user(db, "o1")
    calls = [
        {"user_id": "o1", "slip": make_slip(f"TR-O{i}", 50), "amount": 50, "promo_code": None}
        for i in range(3)
    ]
    results = _race(calls, db)
    assert sorted(r["bonus_credits"] for r in results) == [0, 0, 50]
    assert db.document("promo_counters/once/users/o1").get().get("redemptions") == 1
    _assert_ledger_consistent(db, "o1")
    assert db.collection("users").document("o1").get().get("total_topup_baht") == 150
