"""Kaiwa: the plan comes from the active subscription's tierId; monthly limits are enforced.

Over real HTTP (usage-limits) and Pub/Sub pushes (usage-events), under the kaiwa profile.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google.cloud.firestore import FieldFilter

from shared.settings import override_settings
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
