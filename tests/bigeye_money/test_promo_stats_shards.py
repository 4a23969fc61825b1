"""Promotion stats on shards: top-ups never write the promotion document; the fold is exact."""

from __future__ import annotations

from datetime import UTC, datetime

from devstack.demo.bigeye import DEMO_PROMOTION_ID
from shared.bigeye.redemptions import (
    STATS_SHARDS_COLLECTION,
    fold_stats,
    shards_of,
    stats_shard_ref,
)
from shared.bigeye.topup import topup
from tests.bigeye_money.conftest import make_slip, make_user


def _topup(db, user: str, ref: str, baht: int = 300) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return topup(
        db,
        user_id=user,
        slip=make_slip(ref, baht),
        amount=baht,
        promo_code=None,
        now=datetime.now(UTC),
    )


def test_top_ups_leave_the_promotion_document_alone_and_the_fold_is_exact(money) -> None:
    db = money
    promo = db.collection("promotions").document(DEMO_PROMOTION_ID)
    before = promo.get()
    for user in ("u1", "u2", "u3"):
        make_user(db, user)
    for i, user in enumerate(["u1", "u1", "u2", "u3", "u1"]):
        _topup(db, user, f"TR-SH{i}")
    assert promo.get().update_time == before.update_time
    shards = list(db.collection(STATS_SHARDS_COLLECTION).stream())
    assert sum(s.get("redemptions") for s in shards) == 5
    expected = {
        "total_redemptions": 5,
        "total_bonus_credits": 500,
        "total_baht_collected": 1500,
        "unique_users": 3,
    }
    assert fold_stats(db, datetime.now(UTC)) == 1
    assert promo.get().get("stats") == expected
    assert fold_stats(db, datetime.now(UTC)) == 1  # a rerun writes the same sums
    assert promo.get().get("stats") == expected


def test_a_promotion_made_limited_counts_its_earlier_redemptions(money) -> None:
    db = money
    for user in ("u1", "u2", "u3", "u4"):
        make_user(db, user)
    assert _topup(db, "u1", "TR-LM1")["bonus_credits"] == 100
    assert _topup(db, "u2", "TR-LM2")["bonus_credits"] == 100
    assert all(s.quota is None for s in shards_of(db, DEMO_PROMOTION_ID))
    db.collection("promotions").document(DEMO_PROMOTION_ID).update(
        {"conditions.max_redemptions": 3}
    )
    assert _topup(db, "u3", "TR-LM3")["bonus_credits"] == 100
    assert _topup(db, "u4", "TR-LM4")["bonus_credits"] == 0  # 3 of 3 taken
    shards = shards_of(db, DEMO_PROMOTION_ID)
    assert sum(s.redemptions for s in shards) == 3
    assert sum(s.quota or 0 for s in shards) == 3
    assert {s.quota_for for s in shards} == {3}
    assert not db.document(f"promo_counters/{DEMO_PROMOTION_ID}").get().exists


def test_baht_collected_is_summed_in_exact_satang(money) -> None:
    """Shards count satang as integers, so 0.1 baht three times folds to 0.3, not
    0.30000000000000004; shards written with a baht float still count."""
    db = money
    now = datetime.now(UTC)
    for k, stats in enumerate(
        [{"total_satang_collected": 10}] * 3 + [{"total_baht_collected": 100.2}]
    ):
        stats_shard_ref(db, DEMO_PROMOTION_ID, k).set(
            {"promo_id": DEMO_PROMOTION_ID, "updated_at": now, "stats": stats}
        )
    assert fold_stats(db, now) == 1
    stats = db.collection("promotions").document(DEMO_PROMOTION_ID).get().get("stats")
    assert stats["total_baht_collected"] == 100.5
