"""A limited promotion's ``max_redemptions`` split over its stats shards: exact under
concurrent redemptions, whichever shard the last slots are on, and after the limit changes.

Each redemption is the top-up's own promotion step run as one atomic unit on the emulator
(promotions read through the unit, counts, the engine's choice, the redemption written), so
many can race without the slip pipeline around them.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from google.cloud import firestore

from shared.atomic import Unit, run_atomically
from shared.bigeye.promotions import Customer, load_active, plan_redemption, quote_topup
from shared.bigeye.redemptions import (
    counter_ref,
    current_promotions,
    fold_stats,
    read_redemptions,
    record_redemption,
    redemption_shards,
    shards_of,
    stats_shard_of,
)
from tests.bigeye_money.test_topup import _promotion

RATE = Decimal(4)


def _redeem(db: Any, promo_id: str, user_id: str, redemption_id: str) -> bool:
    """One redemption attempt; True when the promotion applied."""
    candidates = [p for p in load_active(db) if p.promo_id == promo_id]
    now = datetime.now(UTC)

    def work(unit: Unit) -> bool:
        promos = current_promotions(unit, candidates, user_id, redemption_id)
        counts = read_redemptions(unit, promos, user_id, redemption_id)
        quote = quote_topup(
            promos,
            baht=Decimal(100),
            exchange_rate=RATE,
            now=now,
            code=None,
            customer=Customer(created_at=now),
            redemptions=counts,
        )
        if quote.promotion is None:
            return False
        promo = quote.promotion
        plan = plan_redemption(
            promo=promo,
            quote=quote,
            user_id=user_id,
            redemption_id=redemption_id,
            counts=counts[promo_id],
            home=stats_shard_of(redemption_id),
            shards=redemption_shards(unit, promo, counts[promo_id], redemption_id),
            topup_baht=Decimal(100),
            slip_id=None,
            now=now,
        )
        record_redemption(unit, plan)
        return True

    return run_atomically(db, work)


def _race(db: Any, promo_id: str, tag: str, threads: int, each: int) -> int:
    """``threads`` clients at once, each trying ``each`` redemptions (a user apiece)."""
    barrier = threading.Barrier(threads)

    def client(t: int) -> int:
        barrier.wait()
        return sum(_redeem(db, promo_id, f"{tag}-u{t}-{i}", f"{tag}-r{t}-{i}") for i in range(each))

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(client, range(threads)))


def _assert_exact(db: Any, promo_id: str, limit: int, redeemed: int) -> None:
    query = db.collection("promo_redemptions").where(
        filter=firestore.FieldFilter("promo_id", "==", promo_id)
    )
    records = query.get()
    shards = shards_of(db, promo_id)
    assert len(records) == redeemed
    assert sum(s.redemptions for s in shards) == redeemed
    assert all(s.quota is not None and s.redemptions <= s.quota for s in shards)
    assert sum(s.quota or 0 for s in shards) == max(limit, redeemed)


def test_concurrent_redemptions_take_exactly_the_limit(money) -> None:
    """42 attempts from 6 clients at once on a limit of 36 (split 2 / 1 over 32 shards):
    exactly 36 apply, so the last slots were found on whatever shards had them."""
    db = money
    _promotion(db, "quota36", priority=100, **{"conditions.max_redemptions": 36})
    assert _race(db, "quota36", "a", threads=6, each=7) == 36
    _assert_exact(db, "quota36", 36, 36)
    assert not counter_ref(db, "quota36").get().exists  # no per-promotion counter
    fold_stats(db, datetime.now(UTC))
    stats = db.collection("promotions").document("quota36").get().get("stats")
    assert stats["total_redemptions"] == 36 and stats["unique_users"] == 36


def test_a_changed_limit_is_split_again_from_the_redemptions_so_far(money) -> None:
    db = money
    _promotion(db, "grow", priority=100, **{"conditions.max_redemptions": 3})
    assert _race(db, "grow", "a", threads=4, each=2) == 3
    _assert_exact(db, "grow", 3, 3)
    promo = db.collection("promotions").document("grow")
    promo.update({"conditions.max_redemptions": 8})
    assert _race(db, "grow", "b", threads=4, each=2) == 5
    _assert_exact(db, "grow", 8, 8)
    promo.update({"conditions.max_redemptions": 2})  # lowered below what was redeemed
    assert _race(db, "grow", "c", threads=2, each=1) == 0
    assert sum(s.redemptions for s in shards_of(db, "grow")) == 8


def test_redemptions_counted_on_the_former_counter_document_are_not_lost(money) -> None:
    """A limited promotion counted on ``promo_counters/{promo}`` before its shards carried
    a quota: what that counter says was taken is taken."""
    db = money
    _promotion(db, "legacy", priority=100, **{"conditions.max_redemptions": 5})
    counter_ref(db, "legacy").set({"promo_id": "legacy", "redemptions": 3})
    assert [_redeem(db, "legacy", f"l{i}", f"lr{i}") for i in range(3)] == [True, True, False]
    assert sum(s.quota or 0 for s in shards_of(db, "legacy")) == 2
