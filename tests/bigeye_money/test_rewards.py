"""The welcome bonus (on-user-created, fired by real emulator writes) and usage rewards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.bigeye.redemptions import fold_stats, shards_of
from shared.bigeye.rewards import usage_reward, welcome_bonus
from shared.clock import FixedClock, set_clock
from tests.bigeye_money.conftest import make_user
from tests.bigeye_money.test_topup import _docs, _promotion, _user
from tests.helpers import triggers_settled, wait_for
from tests.usage.events import firestore_event


def _welcome(db: Any, promo_id: str = "welcome", bonus: int = 100, **changes: Any) -> None:
    _promotion(db, promo_id, type="WELCOME_BONUS", **{"reward.bonus_credits": bonus}, **changes)


def _bonus_txs(db: Any, user_id: str) -> list[dict[str, Any]]:
    return [t for t in _docs(db, "transactions") if t["user_id"] == user_id]


def test_a_new_user_gets_the_welcome_bonus_once(money, stack) -> None:
    db = money
    _welcome(db, bonus=100)
    fired = stack.handled("on-user-created")
    make_user(db, "w1")
    wait_for(lambda: _user(db, "w1").get("credits") == 100)
    (tx,) = _bonus_txs(db, "w1")
    assert tx["type"] == "BONUS" and tx["amount"] == 100 and tx["balance_after"] == 100
    assert tx["reference_id"] == "welcome"
    assert tx["metadata"]["baht_amount"] is None
    (redemption,) = _docs(db, "promo_redemptions")
    assert redemption["promo_id"] == "welcome" and redemption["user_id"] == "w1"
    assert redemption["bonus_credits"] == 100 and redemption["total_credits"] == 100
    assert redemption["topup_baht"] == 0 and redemption["slip_id"] is None
    fold_stats(db, datetime.now(UTC))
    stats = db.collection("promotions").document("welcome").get().get("stats")
    assert stats == {
        "total_redemptions": 1,
        "total_bonus_credits": 100,
        "total_baht_collected": 0,
        "unique_users": 1,
    }
    # The bonus itself updated the user: no re-trigger. A redelivery changes nothing.
    db.collection("users").document("w1").update({"last_login": datetime.now(UTC)})
    again = welcome_bonus(db, user_id="w1", now=datetime.now(UTC))
    assert again.replayed
    # A user created after those updates is the fence: once its event is handled, the
    # updates' events (had there been any) were too; only the two creations fired.
    make_user(db, "fence")
    stack.wait_handled("on-user-created", fired + 2)
    wait_for(lambda: _user(db, "fence").get("credits") == 100)
    assert stack.handled("on-user-created") == fired + 2
    assert _user(db, "w1")["credits"] == 100
    assert len(_bonus_txs(db, "w1")) == 1
    assert [r["user_id"] for r in _docs(db, "promo_redemptions")].count("w1") == 1


def test_welcome_bonus_limits_hold_and_priority_decides(money) -> None:
    db = money
    _welcome(db, "small", bonus=10, priority=1)
    _welcome(db, "big", bonus=500, priority=9, **{"conditions.max_redemptions": 1})
    make_user(db, "w1")
    wait_for(lambda: _user(db, "w1").get("credits") == 500)
    make_user(db, "w2")
    wait_for(lambda: _user(db, "w2").get("credits") == 10)
    assert sum(s.redemptions for s in shards_of(db, "big")) == 1


def test_no_bonus_without_an_applicable_welcome_promotion(money) -> None:
    db = money
    _welcome(db, "paused", status="PAUSED")
    _welcome(db, "coded", code="HELLO", **{"conditions.require_code": True})
    _welcome(db, "ended", **{"conditions.end_date": datetime.now(UTC) - timedelta(hours=1)})
    make_user(db, "w1")
    result = welcome_bonus(db, user_id="w1", now=datetime.now(UTC))
    assert result.credits == 0 and result.promo_id is None
    assert _bonus_txs(db, "w1") == [] and _user(db, "w1")["credits"] == 0


def test_non_bigeye_user_documents_are_ignored(money, stack) -> None:
    db = money
    _welcome(db)
    with triggers_settled(stack):  # both users' created events handled, not just w1's
        db.collection("users").document("k1").set({"email": "k@example.com", "credits_balance": 0})
        db.collection("users").document("w1").set({"email": "w@example.com", "credits": 0})
    assert _user(db, "w1").get("credits") == 100
    assert "credits" not in _user(db, "k1")
    assert _bonus_txs(db, "k1") == []


def test_usage_reward_pays_once_per_job(money) -> None:
    db = money
    make_user(db, "u1", credits=0)
    _promotion(
        db,
        "cashback",
        type="USAGE_REWARD",
        **{
            "reward.type": "PERCENTAGE_BONUS",
            "reward.bonus_credits": None,
            "reward.bonus_percentage": 10,
        },
    )
    now = datetime.now(UTC)
    first = usage_reward(db, user_id="u1", job_token="job-1", credits_used=55, now=now)
    assert first.credits == 5 and first.promo_id == "cashback"
    again = usage_reward(db, user_id="u1", job_token="job-1", credits_used=55, now=now)
    assert again.replayed and again.credits == 5
    assert usage_reward(db, user_id="u1", job_token="job-2", credits_used=5, now=now).credits == 0
    assert _user(db, "u1")["credits"] == 5
    assert len(_bonus_txs(db, "u1")) == 1


def _everything(db: Any) -> dict[str, dict[str, Any]]:
    """Every document, also those under a parent that does not exist itself
    (``promo_counters/{promo}/users/{user}`` of an unlimited promotion)."""
    found: dict[str, dict[str, Any]] = {}

    def walk(collections: Any) -> None:
        for coll in collections:
            for ref in coll.list_documents():
                snap = ref.get()
                if snap.exists:
                    found[ref.path] = snap.to_dict() or {}
                walk(ref.collections())

    walk(db.collections())
    return found


def _restore(db: Any, before: dict[str, dict[str, Any]]) -> None:
    """Put every document back as ``before`` had it (new ones deleted)."""
    for path, data in _everything(db).items():
        if path not in before:
            db.document(path).delete()
        elif data != before[path]:
            db.document(path).set(before[path])


def test_a_rerun_of_the_same_user_created_event_writes_identical_documents(money, stack) -> None:
    # The event happened at ``at``; it is processed twice, an hour apart by the process
    # clock, from the same state. Everything written must carry the event's time.
    db = money
    _welcome(db, bonus=100)
    fields = {"email": "r@example.com", "hardware_id": "hw-r", "credits": 0, "status": "active"}
    # Created without BigEye's fields (ignored by the trigger), then completed by an update.
    with triggers_settled(stack):
        db.collection("users").document("r1").set({"email": "r@example.com"})
        rest = {k: v for k, v in fields.items() if k != "email"}
        db.collection("users").document("r1").update(rest)
    assert "credits" in _user(db, "r1") and _user(db, "r1")["credits"] == 0
    before = _everything(db)
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    runs = []
    previous = set_clock(FixedClock(at))
    try:
        for processed in (at + timedelta(minutes=5), at + timedelta(hours=1, minutes=5)):
            set_clock(FixedClock(processed))
            status = firestore_event(
                stack, "on-user-created", "users/r1", None, fields, event_id="evt-r1", time=at
            )
            assert 200 <= status < 300
            runs.append({p: d for p, d in _everything(db).items() if before.get(p) != d})
            _restore(db, before)
    finally:
        set_clock(previous)
    first, second = runs
    assert _user(db, "r1")["credits"] == 0  # restored
    assert first["users/r1"]["credits"] == 100
    (tx,) = [d for p, d in first.items() if p.startswith("transactions/")]
    assert tx["created_at"] == at
    assert second == first
