"""How many read round trips the unit that credits a top-up or a reward takes (the unit
that creates the transaction), counted on the emulator: a top-up reads everything it
decides on or writes back in one batched round trip, a reward in two, when no limited
promotion needs all of its shards."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from shared import atomic
from shared.bigeye.rewards import usage_reward
from shared.bigeye.topup import topup
from tests.bigeye_money.conftest import make_slip, make_user
from tests.bigeye_money.test_topup import _promotion


@pytest.fixture
def credit_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The read round trips of each committed unit that creates a transaction."""
    trips: dict[int, int] = {}
    committed: list[int] = []
    get_all, commit = atomic.Unit.get_all, atomic.Unit.commit

    def counted(self: atomic.Unit, refs: Sequence[Any]) -> list[Any]:
        if any(r.path not in self._seen for r in refs):
            trips[id(self)] = trips.get(id(self), 0) + 1
        return get_all(self, refs)

    def committing(self: atomic.Unit) -> list[Any]:
        if any(path.startswith("transactions/") for path in self._writes):
            committed.append(trips.get(id(self), 0))
        return commit(self)

    monkeypatch.setattr(atomic.Unit, "get_all", counted)
    monkeypatch.setattr(atomic.Unit, "commit", committing)
    yield committed


def test_a_topup_with_promotions_reads_in_one_round_trip(money, credit_trips) -> None:
    db = money
    make_user(db, "u1")
    _promotion(db, "limited", **{"conditions.max_redemptions": 100, "priority": 90})
    # A reference whose canonical form differs: the pre-canonical key is read too.
    body = topup(
        db, user_id="u1", slip=make_slip("tr 77a"), amount=500, promo_code=None, now=_now()
    )
    assert body["promo_id"] == "limited"
    # The first redemption of a limited promotion splits its limit: all shards, once more.
    assert credit_trips == [2]
    body = topup(
        db, user_id="u1", slip=make_slip("tr 77b"), amount=500, promo_code=None, now=_now()
    )
    assert body["promo_id"] == "limited"
    assert credit_trips == [2, 1]


def test_a_usage_reward_reads_in_two_round_trips(money, credit_trips) -> None:
    db = money
    make_user(db, "u2", credits=0)
    _promotion(db, "cashback-trips", type="USAGE_REWARD", **{"reward.bonus_credits": 7})
    reward = usage_reward(db, user_id="u2", job_token="job-trips", credits_used=50, now=_now())
    assert reward.credits == 7 and reward.promo_id == "cashback-trips"
    # The posting and the user; then the promotion, its counter and the home shard.
    assert credit_trips == [2]


def _now() -> datetime:
    return datetime.now(UTC)
