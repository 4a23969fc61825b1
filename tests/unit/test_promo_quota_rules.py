"""The pure rules of a limited promotion's quota shards (no emulator)."""

from __future__ import annotations

import random

import pytest

from shared.bigeye.promotions import QuotaShard, Redemptions, has_room, plan_slot, split_quota


def test_split_quota_spreads_what_is_left_and_never_exceeds_the_limit() -> None:
    assert split_quota(40, [0] * 32) == (2,) * 8 + (1,) * 24
    assert split_quota(5, [0] * 4) == (2, 1, 1, 1)
    assert split_quota(10, [3, 0, 1, 0]) == (5, 2, 2, 1)  # 6 left over what is held
    assert split_quota(2, [3, 0, 1, 0]) == (3, 0, 1, 0)  # lowered below the count: no room
    assert split_quota(10, [1, 1], counted=7) == (3, 2)  # a record that counted more wins
    with pytest.raises(ValueError):
        split_quota(1, [])


def test_split_quota_sums_to_the_limit_or_the_count() -> None:
    rng = random.Random(7)
    for _ in range(500):
        counts = [rng.randrange(4) for _ in range(rng.randrange(1, 40))]
        limit, counted = rng.randrange(120), rng.randrange(60)
        quotas = split_quota(limit, counts, counted)
        assert all(q >= c for q, c in zip(quotas, counts, strict=True))
        assert sum(quotas) == sum(counts) + max(0, limit - max(sum(counts), counted))


def test_a_shard_has_room_only_under_a_quota_split_for_this_limit() -> None:
    assert has_room(QuotaShard(1, 2, 40), 40)
    assert not has_room(QuotaShard(2, 2, 40), 40)
    assert not has_room(QuotaShard(0, 2, 39), 40)  # split for another limit
    assert not has_room(QuotaShard(0, None, None), 40)


def test_plan_takes_the_first_shard_with_room_from_home_on() -> None:
    full, free = QuotaShard(1, 1, 3), QuotaShard(0, 1, 3)
    plan = plan_slot(3, 2, [free, full, full, full])
    assert plan == Redemptions(total=3, sharded=True, slot=0, quotas=None)
    assert plan_slot(3, 1, [full, free, full, free]).slot == 1
    sold_out = plan_slot(3, 0, [full, full, full, QuotaShard(0, 0, 3)])
    assert sold_out.slot is None and sold_out.sold_out(3) and sold_out.total == 3


def test_plan_splits_again_when_the_limit_changed() -> None:
    old = [QuotaShard(1, 1, 2), QuotaShard(1, 1, 2), QuotaShard(0, 0, 2)]
    plan = plan_slot(5, 0, old)
    assert plan.quotas == (2, 2, 1) and plan.slot == 0 and not plan.sold_out(5)
    assert plan_slot(2, 0, old).quotas is None  # still split for 2: sold out
    assert plan_slot(2, 0, old).sold_out(2)


def test_taking_every_slot_one_by_one_stops_exactly_at_the_limit() -> None:
    """Redemptions with random homes, applied to the shards as ``record_redemption`` does,
    stop at the limit whatever the order; the last slot is found from any home."""
    rng = random.Random(11)
    for limit in (1, 5, 31, 32, 33, 100):
        shards = [QuotaShard() for _ in range(32)]
        taken = 0
        for _ in range(limit + 20):
            plan = plan_slot(limit, rng.randrange(32), shards)
            if plan.quotas is not None:
                shards = [
                    QuotaShard(s.redemptions, q, limit)
                    for s, q in zip(shards, plan.quotas, strict=True)
                ]
            if plan.slot is None:
                continue
            s = shards[plan.slot]
            shards[plan.slot] = QuotaShard(s.redemptions + 1, s.quota, s.quota_for)
            taken += 1
        assert taken == limit


def test_unsharded_counts_decide_by_their_total() -> None:
    assert Redemptions(3, 0).sold_out(3)
    assert not Redemptions(2, 0).sold_out(3)
    assert not Redemptions(sharded=True, slot=4).sold_out(3)


def test_the_shard_count_keeps_the_loads_promotion_under_one_write_per_second() -> None:
    """``STATS_SHARDS`` is sized from the load model: each redemption writes one shard."""
    from bench.model import SUSTAINED_WRITES_PER_DOC
    from bench.sizing import LOADS
    from shared.bigeye.redemptions import STATS_SHARDS

    rate = max(load.per_s for load in LOADS if "promotion" in load.operation)
    assert rate == 20.0
    assert rate / STATS_SHARDS <= SUSTAINED_WRITES_PER_DOC
