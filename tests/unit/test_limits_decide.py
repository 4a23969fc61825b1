"""The pure decision of the usage-limits check (``decide_limits``): no emulator, no clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.errors import Forbidden, NotFound
from shared.usage.limits import LimitsReads, decide_limits
from shared.usage.model import LimitsCheck

DAY_RESET = datetime(2026, 1, 5, tzinfo=UTC)
MONTH_RESET = datetime(2026, 2, 1, tzinfo=UTC)
TIER = {
    "monthlyConversations": 10,
    "monthlySeconds": 600,
    "maxSessionLengthSeconds": 300,
    "hasRealtimeAccess": False,
    "sessionBankingEnabled": False,
}


def _reads(**changes: Any) -> LimitsReads:
    base: dict[str, Any] = {
        "user": {},
        "day_reset_at": DAY_RESET,
        "period": "2026-01",
        "month_reset_at": MONTH_RESET,
    }
    return LimitsReads(**{**base, **changes})


def _check(**changes: Any) -> LimitsCheck:
    return LimitsCheck.model_validate({"user_id": "u1", "tokens": 100, **changes})


def test_unknown_user_is_not_found_and_a_suspended_one_forbidden() -> None:
    with pytest.raises(NotFound, match="unknown user u1"):
        decide_limits(_reads(user=None), _check(), 0)
    with pytest.raises(Forbidden):
        decide_limits(_reads(user={"status": "suspended"}), _check(), 0)


def test_daily_limit_at_and_past_the_edge() -> None:
    reads = _reads(daily={"tokensUsed": 9_900})
    at = decide_limits(reads, _check(tokens=100), 0)
    assert (at.status, at.allowed) == (200, True)
    assert at.body == {
        "allowed": True,
        "tokensUsed": 9_900,
        "tokenLimit": 10_000,  # token_limits/trial missing: the documented default
        "resetAt": "2026-01-05T00:00:00Z",
        "userType": "trial",
    }
    past = decide_limits(reads, _check(tokens=101), 0)
    assert (past.status, past.allowed) == (429, False)
    assert past.body["limit"] == "tokenLimit"
    assert past.body["limitResetAt"] == "2026-01-05T00:00:00Z"
    assert past.body["detail"] == (
        "10000 tokens a day would be exceeded; resets 2026-01-05T00:00:00Z"
    )


def test_configured_limit_and_the_loss_rule() -> None:
    reads = _reads(user_type="subscribed", token_limit={"tokenLimit": 50_000})
    assert decide_limits(reads, _check(tokens=50_000), 10).body["tokenLimit"] == 50_000
    lowered = _reads(
        user_type="subscribed",
        token_limit={"tokenLimit": 50_000},
        loss={"action_taken": "rate_limited"},
    )
    answer = decide_limits(lowered, _check(tokens=11), 10)
    assert (answer.status, answer.body["tokenLimit"]) == (429, 10)
    flagged = _reads(loss={"action_taken": "none"})
    assert decide_limits(flagged, _check(tokens=11), 10).body["tokenLimit"] == 10_000


def test_no_monthly_report_without_a_tier_document() -> None:
    answer = decide_limits(_reads(tier_id="basic", tier=None), _check(), 0)
    assert "monthly" not in answer.body and answer.status == 200


def test_monthly_limit_reached_is_429_with_the_month_reset() -> None:
    reads = _reads(tier_id="basic", tier=TIER, monthly={"conversationsUsed": 10})
    answer = decide_limits(reads, _check(), 0)
    assert (answer.status, answer.allowed) == (429, False)
    assert answer.body["limit"] == "monthlyConversations"
    assert answer.body["limitResetAt"] == "2026-02-01T00:00:00Z"
    assert answer.body["monthly"]["allowed"] is False
    assert answer.body["monthly"]["conversationsUsed"] == 10


def test_session_length_refusal_has_no_reset() -> None:
    reads = _reads(tier_id="basic", tier=TIER, monthly={})
    answer = decide_limits(reads, _check(conversation_seconds=301), 0)
    assert (answer.status, answer.body["limit"]) == (429, "maxSessionLengthSeconds")
    assert answer.body["limitResetAt"] is None


def test_daily_refusal_wins_over_a_monthly_limit_but_not_over_a_missing_feature() -> None:
    reads = _reads(
        daily={"tokensUsed": 10_000}, tier_id="basic", tier=TIER, monthly={"conversationsUsed": 10}
    )
    daily = decide_limits(reads, _check(), 0)
    assert (daily.status, daily.body["limit"]) == (429, "tokenLimit")
    assert daily.body["monthly"]["allowed"] is False
    feature = decide_limits(reads, _check(conversation_mode="realtime"), 0)
    assert (feature.status, feature.body["limit"]) == (403, "hasRealtimeAccess")
    assert feature.body["limitResetAt"] is None
    assert feature.body["detail"] == "the basic tier has no realtime conversations"


def test_a_tier_with_no_usage_yet_allows() -> None:
    answer = decide_limits(_reads(tier_id="free", tier=TIER, monthly={}), _check(), 0)
    assert answer.allowed is True
    assert answer.body["monthly"]["period"] == "2026-01"
    assert answer.body["monthly"]["resetAt"] == "2026-02-01T00:00:00Z"
