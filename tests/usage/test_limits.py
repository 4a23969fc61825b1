"""usage-limits over real HTTP: daily token limits and Kaiwa monthly limits at their edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.settings import override_settings
from tests.helpers import all_documents
from tests.usage.conftest import make_user, settled
from tests.usage.events import push, usage_message


def check(stack: Any, body: Any) -> httpx.Response:
    return httpx.post(f"{stack.base_url}/usage-limits/check", json=body, timeout=30)


def spend(
    stack: Any, user_id: str, request_id: str, tokens: int, when: datetime, **extra: Any
) -> None:
    status = push(
        stack,
        "usage-events",
        usage_message(
            request_id=request_id,
            user_id=user_id,
            engine_id="openai_chat_gpt4",
            usage_units=1,
            tokens=tokens,
            created_at=when.isoformat(),
            **extra,
        ),
    )
    assert 200 <= status < 300


def test_daily_limit_below_at_and_above(usage_db, stack, clock) -> None:
    make_user(usage_db, "t1")  # free plan: trial, 10,000 tokens a day
    spend(stack, "t1", "a", 9_000, clock.now())
    below = check(stack, {"user_id": "t1", "tokens": 999})
    assert below.status_code == 200
    assert below.json() == {
        "allowed": True,
        "tokensUsed": 9_000,
        "tokenLimit": 10_000,
        "resetAt": "2026-01-05T00:00:00Z",
        "userType": "trial",
    }
    at = check(stack, {"user_id": "t1", "tokens": 1_000})
    assert at.status_code == 200 and at.json()["allowed"] is True
    above = check(stack, {"user_id": "t1", "tokens": 1_001})
    assert above.status_code == 429
    assert above.json() == {
        **at.json(),
        "allowed": False,
        "limit": "tokenLimit",
        "limitResetAt": "2026-01-05T00:00:00Z",
        "detail": "10000 tokens a day would be exceeded; resets 2026-01-05T00:00:00Z",
    }
    spend(stack, "t1", "b", 1_000, clock.now())
    full = check(stack, {"user_id": "t1", "tokens": 0})
    assert full.status_code == 200 and full.json()["tokensUsed"] == 10_000
    assert check(stack, {"user_id": "t1", "tokens": 1}).status_code == 429


def test_limit_resets_at_midnight(usage_db, stack, clock) -> None:
    make_user(usage_db, "t2", tier="PRO")  # subscribed: 200,000
    clock.set(datetime(2026, 1, 4, 23, 59, 59, tzinfo=UTC))
    spend(stack, "t2", "late", 200_000, clock.now())
    late = check(stack, {"user_id": "t2", "tokens": 1})
    assert late.status_code == 429
    assert late.json()["resetAt"] == "2026-01-05T00:00:00Z"
    clock.advance(timedelta(seconds=1))
    fresh = check(stack, {"user_id": "t2", "tokens": 200_000})
    assert fresh.status_code == 200
    assert fresh.json() == {
        "allowed": True,
        "tokensUsed": 0,
        "tokenLimit": 200_000,
        "resetAt": "2026-01-06T00:00:00Z",
        "userType": "subscribed",
    }


def test_day_in_another_time_zone(usage_db, stack, clock) -> None:
    make_user(usage_db, "t3")
    with override_settings(token_day_timezone="Asia/Bangkok"):
        clock.set(datetime(2026, 1, 4, 16, 59, tzinfo=UTC))  # 23:59 in Bangkok
        spend(stack, "t3", "bkk", 10_000, clock.now())
        assert check(stack, {"user_id": "t3", "tokens": 1}).status_code == 429
        clock.set(datetime(2026, 1, 4, 17, 0, tzinfo=UTC))  # midnight in Bangkok
        answer = check(stack, {"user_id": "t3", "tokens": 1})
        assert answer.status_code == 200
        assert answer.json()["resetAt"] == "2026-01-05T17:00:00Z"


def test_limit_configuration_is_read_live(usage_db, stack, clock) -> None:
    make_user(usage_db, "t4")
    usage_db.collection("token_limits").document("trial").update({"tokenLimit": 50})
    assert check(stack, {"user_id": "t4", "tokens": 50}).json()["tokenLimit"] == 50
    assert check(stack, {"user_id": "t4", "tokens": 51}).status_code == 429


BAD_BODIES: list[Any] = [
    {},
    {"user_id": "t5"},
    {"tokens": 5},
    {"user_id": "t5", "tokens": -1},
    {"user_id": "t5", "tokens": "5"},
    {"user_id": "t5", "tokens": 1.5},
    {"user_id": "t5", "tokens": True},
    {"user_id": "", "tokens": 1},
    {"user_id": 5, "tokens": 1},
    {"user_id": "t5", "tokens": 1, "extra": 1},
    [1, 2],
]


def test_bad_input_is_400_and_writes_nothing(usage_db, stack) -> None:
    make_user(usage_db, "t5")
    before = settled(usage_db, stack)
    for body in BAD_BODIES:
        response = check(stack, body)
        assert response.status_code == 400, body
        assert "detail" in response.json()
    assert all_documents(usage_db) == before


def test_protocol_errors(usage_db, stack) -> None:
    raw = httpx.post(f"{stack.base_url}/usage-limits/check", content=b"{not json", timeout=30)
    assert raw.status_code == 400 and "detail" in raw.json()
    empty = httpx.post(f"{stack.base_url}/usage-limits/check", content=b"", timeout=30)
    assert empty.status_code == 400
    assert httpx.get(f"{stack.base_url}/usage-limits/check", timeout=30).status_code == 405
    assert (
        httpx.post(f"{stack.base_url}/usage-limits/other", json={}, timeout=30).status_code == 404
    )
    unknown = check(stack, {"user_id": "nobody", "tokens": 1})
    assert unknown.status_code == 404 and "detail" in unknown.json()


def _subscribe(db: Any, user_id: str, tier_id: str) -> None:
    db.collection("subscriptions").document(f"sub_{user_id}").set(
        {"userId": user_id, "tierId": tier_id, "status": "active", "isActive": True}
    )


def test_kaiwa_monthly_limits_at_the_edges_and_month_end(usage_db, stack, clock) -> None:
    make_user(usage_db, "k1")
    _subscribe(usage_db, "k1", "free")  # 10 conversations, 1,800 s a month
    clock.set(datetime(2026, 1, 31, 23, 0, tzinfo=UTC))
    for i in range(9):
        spend(
            stack,
            "k1",
            f"conv-{i}",
            10,
            clock.now(),
            conversation_id=f"c{i}",
            conversation_seconds=190,
        )  # 1,710 s over 9 conversations
    answer = check(stack, {"user_id": "k1", "tokens": 10, "conversation_seconds": 90})
    assert answer.status_code == 200
    monthly = answer.json()["monthly"]
    assert monthly["tierId"] == "free" and monthly["period"] == "2026-01"
    assert (monthly["conversationsUsed"], monthly["monthlyConversations"]) == (9, 10)
    assert (monthly["secondsUsed"], monthly["monthlySeconds"]) == (1_710, 1_800)
    assert monthly["allowed"] is True  # exactly at the seconds limit
    assert monthly["resetAt"] == "2026-02-01T00:00:00Z"
    over = check(stack, {"user_id": "k1", "tokens": 10, "conversation_seconds": 91})
    # Enforced: the daily tokens still fit, but the month's seconds do not.
    assert over.status_code == 429
    assert over.json()["allowed"] is False and over.json()["monthly"]["allowed"] is False
    assert over.json()["limit"] == "monthlySeconds"
    assert over.json()["limitResetAt"] == "2026-02-01T00:00:00Z"
    spend(stack, "k1", "conv-9", 10, clock.now(), conversation_id="c9", conversation_seconds=1)
    refused = check(stack, {"user_id": "k1", "tokens": 1})
    assert refused.status_code == 429 and refused.json()["limit"] == "monthlyConversations"
    exhausted = refused.json()["monthly"]
    assert exhausted["conversationsUsed"] == 10 and exhausted["allowed"] is False
    clock.set(datetime(2026, 2, 1, 0, 0, tzinfo=UTC))
    february = check(stack, {"user_id": "k1", "tokens": 1}).json()["monthly"]
    assert february["period"] == "2026-02" and february["conversationsUsed"] == 0
    assert february["allowed"] is True


def test_no_tier_no_monthly_report(usage_db, stack, clock) -> None:
    make_user(usage_db, "plain")
    assert "monthly" not in check(stack, {"user_id": "plain", "tokens": 1}).json()
