"""Kaiwa: the plan comes from the active subscription's tierId; monthly limits are enforced.

Over real HTTP (usage-limits) and Pub/Sub pushes (usage-events), under the kaiwa profile.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from google.cloud.firestore import FieldFilter

from shared.settings import override_settings
from shared.usage.limits import split_seconds
from tests.helpers import wait_for
from tests.usage.test_limits import _subscribe, check, spend


@pytest.fixture
def kaiwa(usage_db: Any) -> Iterator[Any]:
    with override_settings(schema_profile="kaiwa"):
        yield usage_db


def _kaiwa_user(db: Any, user_id: str) -> None:
    """A Kaiwa user as 001 keeps it: no tier, no plan, camelCase profile fields."""
    db.collection("users").document(user_id).set(
        {"email": f"{user_id}@example.com", "displayName": user_id, "credits_balance": 0}
    )


def _log(db: Any, request_id: str) -> dict[str, Any] | None:
    docs = list(
        db.collection("usage_logs")
        .where(filter=FieldFilter("request_id", "==", request_id))
        .stream()
    )
    return docs[0].to_dict() if docs else None


def test_premium_subscriber_gets_the_subscribed_limit_and_revenue(kaiwa, stack, clock) -> None:
    _kaiwa_user(kaiwa, "kp1")
    _subscribe(kaiwa, "kp1", "premium")
    spend(stack, "kp1", "kp-gen-1", 150_000, clock.now(), conversation_seconds=60)
    log = wait_for(lambda: _log(kaiwa, "kp-gen-1"))
    assert log["subscription_plan"] == "premium"
    assert log["revenue_estimated_usd"] > 0 and log["profit_usd"] > 0
    answer = check(stack, {"user_id": "kp1", "tokens": 40_000, "conversation_seconds": 900})
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert (body["userType"], body["tokenLimit"], body["tokensUsed"]) == (
        "subscribed",
        200_000,
        150_000,
    )
    assert body["monthly"]["tierId"] == "premium"
    realtime = check(stack, {"user_id": "kp1", "tokens": 1, "conversation_mode": "realtime"})
    assert realtime.status_code == 200


def test_a_cancelled_subscription_is_free_again(kaiwa, stack, clock) -> None:
    _kaiwa_user(kaiwa, "kp2")
    kaiwa.collection("subscriptions").document("sub_kp2").set(
        {"userId": "kp2", "tierId": "premium", "status": "canceled", "isActive": False}
    )
    body = check(stack, {"user_id": "kp2", "tokens": 1}).json()
    assert body["userType"] == "trial" and body["tokenLimit"] == 10_000
    assert body["monthly"]["tierId"] == "free"


def test_free_user_is_refused_naming_the_limit(kaiwa, stack, clock) -> None:
    _kaiwa_user(kaiwa, "kf1")  # no subscription: free (10 conversations, 1,800 s, 180 s)
    realtime = check(stack, {"user_id": "kf1", "tokens": 1, "conversation_mode": "realtime"})
    assert realtime.status_code == 403 and realtime.json()["limit"] == "hasRealtimeAccess"
    assert "realtime" in realtime.json()["detail"]
    long = check(stack, {"user_id": "kf1", "tokens": 1, "conversation_seconds": 181})
    assert long.status_code == 429 and long.json()["limit"] == "maxSessionLengthSeconds"
    for i in range(10):
        spend(
            stack,
            "kf1",
            f"kf-{i}",
            10,
            clock.now(),
            conversation_id=f"c{i}",
            conversation_seconds=170,
        )
    seconds = check(stack, {"user_id": "kf1", "tokens": 1, "conversation_seconds": 120})
    assert seconds.status_code == 429
    # 10 conversations are used as well; the first limit broken in the documented order.
    assert seconds.json()["limit"] == "monthlyConversations"
    assert seconds.json()["limitResetAt"] == "2026-02-01T00:00:00Z"
    assert seconds.json()["monthly"]["conversationsUsed"] == 10
    log = _log(kaiwa, "kf-0")
    assert log is not None and log["subscription_plan"] == "free"


def test_free_user_out_of_seconds_is_429_on_seconds(kaiwa, stack, clock) -> None:
    _kaiwa_user(kaiwa, "kf2")
    for i in range(2):
        spend(
            stack,
            "kf2",
            f"kf2-{i}",
            10,
            clock.now(),
            conversation_id=f"c{i}",
            conversation_seconds=900,
        )
    answer = check(stack, {"user_id": "kf2", "tokens": 1, "conversation_seconds": 1})
    assert answer.status_code == 429 and answer.json()["limit"] == "monthlySeconds"
    assert answer.json()["monthly"]["secondsUsed"] == 1_800


def _usage(db: Any, user_id: str, period: str = "2026-01") -> dict[str, Any]:
    snap = db.collection("userUsage").document(f"{user_id}_{period}").get()
    return snap.to_dict() or {}


def test_banked_seconds_are_consumed_past_the_allowance_then_refused(kaiwa, stack, clock) -> None:
    _kaiwa_user(kaiwa, "kb1")
    _subscribe(kaiwa, "kb1", "plus")  # 18,000 s a month, banking, sessions up to 600 s
    # The rollover banked 500 s into January; 17,800 s of the allowance are used.
    kaiwa.collection("userUsage").document("kb1_2026-01").set(
        {
            "userId": "kb1",
            "period": "2026-01",
            "conversationsUsed": 5,
            "secondsUsed": 17_800,
            "realtimeSessionsUsed": 0,
            "bankedSeconds": 500,
            "bankedSecondsUsed": 0,
        }
    )
    spend(stack, "kb1", "kb-0", 10, clock.now(), conversation_id="c0", conversation_seconds=300)
    usage = _usage(kaiwa, "kb1")
    # 200 s finish the allowance, the other 100 s come out of the bank.
    assert (usage["secondsUsed"], usage["bankedSecondsUsed"]) == (18_000, 100)
    assert usage["bankedSeconds"] == 500 and usage["conversationsUsed"] == 6
    # Left: (18,000 - 18,000) + (500 - 100) = 400 s.
    at_edge = check(stack, {"user_id": "kb1", "tokens": 1, "conversation_seconds": 400})
    assert at_edge.status_code == 200, at_edge.json()
    assert at_edge.json()["monthly"]["secondsAvailable"] == 18_400
    over = check(stack, {"user_id": "kb1", "tokens": 1, "conversation_seconds": 401})
    assert over.status_code == 429 and over.json()["limit"] == "monthlySeconds"

    # Four concurrent conversations of 100 s use exactly the 400 s left, once each.
    def one(i: int) -> None:
        spend(
            stack,
            "kb1",
            f"kb-{i}",
            10,
            clock.now(),
            conversation_id=f"c{i}",
            conversation_seconds=100,
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, range(1, 5)))
    one(3)  # a redelivery counts nothing
    usage = _usage(kaiwa, "kb1")
    assert (usage["secondsUsed"], usage["bankedSecondsUsed"]) == (18_000, 500)
    assert usage["conversationsUsed"] == 10
    refused = check(stack, {"user_id": "kb1", "tokens": 1, "conversation_seconds": 1})
    assert refused.status_code == 429, refused.json()
    body = refused.json()
    assert body["limit"] == "monthlySeconds" and body["limitResetAt"] == "2026-02-01T00:00:00Z"
    assert "resets 2026-02-01T00:00:00Z" in body["detail"]
    assert body["monthly"]["bankedSecondsUsed"] == 500
    # The use already happened: seconds past both are recorded past the allowance.
    spend(stack, "kb1", "kb-9", 10, clock.now(), conversation_id="c9", conversation_seconds=50)
    usage = _usage(kaiwa, "kb1")
    assert (usage["secondsUsed"], usage["bankedSecondsUsed"]) == (18_050, 500)


def test_a_tier_without_banking_never_touches_the_bank(kaiwa, stack, clock) -> None:
    _kaiwa_user(kaiwa, "kb2")  # free: 1,800 s, no banking
    kaiwa.collection("userUsage").document("kb2_2026-01").set(
        {"userId": "kb2", "period": "2026-01", "secondsUsed": 1_700, "bankedSeconds": 500}
    )
    spend(stack, "kb2", "kb2-0", 10, clock.now(), conversation_id="c0", conversation_seconds=150)
    usage = _usage(kaiwa, "kb2")
    assert (usage["secondsUsed"], usage["bankedSecondsUsed"]) == (1_850, 0)
    assert usage["conversationsUsed"] == 1


@pytest.mark.parametrize(
    ("tier", "usage", "seconds", "expected"),
    [
        ({"monthlySeconds": 100, "sessionBankingEnabled": True}, {}, 60, (60, 0)),
        (
            {"monthlySeconds": 100, "sessionBankingEnabled": True},
            {"secondsUsed": 80, "bankedSeconds": 50, "bankedSecondsUsed": 10},
            60,
            (20, 40),
        ),
        (
            {"monthlySeconds": 100, "sessionBankingEnabled": True},
            {"secondsUsed": 100, "bankedSeconds": 50, "bankedSecondsUsed": 30},
            60,
            (40, 20),
        ),
        (
            {"monthlySeconds": 100, "sessionBankingEnabled": False},
            {"secondsUsed": 100, "bankedSeconds": 50},
            60,
            (60, 0),
        ),
        ({"monthlySeconds": -1, "sessionBankingEnabled": True}, {"bankedSeconds": 5}, 9, (9, 0)),
        (None, {"bankedSeconds": 5}, 9, (9, 0)),
    ],
)
def test_split_seconds(tier, usage, seconds, expected) -> None:
    split = split_seconds(tier, usage, seconds)
    assert (split.regular, split.banked) == expected
