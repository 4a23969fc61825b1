"""Pure quota rules (levels, windows, rolls, alerts) and the routing score and choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shared.errors import Unavailable
from shared.providers.core import Thresholds
from shared.providers.quotas import (
    Quota,
    QuotaStatus,
    QuotaType,
    ResetPeriod,
    count,
    level,
    reset_due,
    usd_to_micro,
    window_end,
    window_start,
)
from shared.providers.routing import Candidate, choose, score_candidates

TH = Thresholds()
T0 = datetime(2026, 1, 4, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("used", "expected"),
    [
        (0, QuotaStatus.AVAILABLE),
        (79, QuotaStatus.AVAILABLE),
        (80, QuotaStatus.WARNING),
        (94, QuotaStatus.WARNING),
        (95, QuotaStatus.CRITICAL),
        (99, QuotaStatus.CRITICAL),
        (100, QuotaStatus.EXHAUSTED),
        (150, QuotaStatus.EXHAUSTED),
    ],
)
def test_quota_levels_at_documented_percentages(used, expected) -> None:
    assert level(used, 100, TH) == expected


def test_a_zero_limit_is_exhausted() -> None:
    assert level(0, 0, TH) == QuotaStatus.EXHAUSTED


def test_windows_align_on_the_hour_and_the_day() -> None:
    assert window_start(T0, ResetPeriod.HOURLY) == datetime(2026, 1, 4, 10, tzinfo=UTC)
    assert window_end(T0, ResetPeriod.HOURLY) == datetime(2026, 1, 4, 11, tzinfo=UTC)
    assert window_end(T0, ResetPeriod.DAILY) == datetime(2026, 1, 5, tzinfo=UTC)


def test_cost_counts_in_exact_micro_dollars() -> None:
    assert usd_to_micro(Decimal("0.012")) == 12_000
    assert usd_to_micro(Decimal("0.0000005")) == 1


def quota(used: int = 0, limit: int = 100) -> Quota:
    end = window_end(T0, ResetPeriod.HOURLY)
    status = level(used, limit, TH)
    return Quota("openai", "gpt-4o", QuotaType.REQUESTS, limit, used, end, ResetPeriod.HOURLY,
                 status)  # fmt: skip


def test_counting_raises_one_alert_per_level_crossed() -> None:
    step = count(quota(79), T0, 1, TH)
    assert step.quota.status == QuotaStatus.WARNING
    assert [a.type.value for a in step.raised] == ["QUOTA_WARNING"]
    again = count(step.quota, T0, 1, TH)
    assert again.raised == ()  # still warning: no second alert
    jump = count(quota(0), T0, 100, TH)
    assert [a.type.value for a in jump.raised] == [
        "QUOTA_WARNING", "QUOTA_CRITICAL", "QUOTA_EXHAUSTED"
    ]  # fmt: skip
    assert jump.raised[2].severity.value == "emergency"
    assert jump.quota.remaining == 0


def test_an_event_of_a_window_already_reset_is_not_counted() -> None:
    change = count(quota(10), T0 - timedelta(hours=1), 1, TH)
    assert not change.counted and change.quota.used == 10


def test_an_event_of_a_newer_window_rolls_the_quota_first() -> None:
    change = count(quota(96), T0 + timedelta(hours=1), 5, TH)
    assert change.rolled and change.quota.used == 5
    assert change.quota.reset_at == datetime(2026, 1, 4, 12, tzinfo=UTC)
    assert [aid.split("_")[-2] for aid, _ in change.resolved] == ["WARNING", "CRITICAL"]
    assert {at for _, at in change.resolved} == {datetime(2026, 1, 4, 11, tzinfo=UTC)}


def test_reset_due_only_after_reset_at_and_is_idempotent() -> None:
    q = count(quota(0), T0, 85, TH).quota
    assert not reset_due(q, datetime(2026, 1, 4, 10, 59, 59, tzinfo=UTC), TH).rolled
    first = reset_due(q, datetime(2026, 1, 4, 11, tzinfo=UTC), TH)
    assert first.rolled and first.quota.used == 0 and first.quota.status == "available"
    assert first.quota.reset_at == datetime(2026, 1, 4, 12, tzinfo=UTC)
    assert not reset_due(first.quota, datetime(2026, 1, 4, 11, tzinfo=UTC), TH).rolled


# -- routing ---------------------------------------------------------------------------

A = Candidate("openai", "gpt-4o", Decimal("0.010"), 1000)
B = Candidate("anthropic", "claude-sonnet-4", Decimal("0.020"), 1000)
C = Candidate("google", "gemini-2.0-flash", Decimal("0.005"), 1000)


def test_equal_health_and_quotas_prefer_the_cheapest() -> None:
    scored = score_candidates([A, B, C], {}, {}, {}, T0, TH)
    decision = choose("LLM", scored, T0, job_id="j1")
    assert decision.selected_model == "gemini-2.0-flash"
    assert decision.fallback_chain == ["gpt-4o", "claude-sonnet-4"]
    assert [c["model"] for c in decision.all_candidates] == ["gpt-4o", "claude-sonnet-4",
                                                             "gemini-2.0-flash"]  # fmt: skip
    assert decision.score == 1.0
    assert decision.estimated_cost == 0.005


def test_open_breaker_exhausted_quota_and_unavailable_provider_are_not_eligible() -> None:
    breakers = {"google": {"state": "open", "opened_at": T0 - timedelta(seconds=10),
                           "cooldown_s": 60}}  # fmt: skip
    health = {"anthropic": {"status": "unavailable", "success_rate": 0.2}}
    quotas = {"openai_gpt-4o_tokens": {"limit": 1000, "used": 500, "status": "available",
                                       "reset_at": T0 + timedelta(minutes=30)}}  # fmt: skip
    scored = score_candidates([A, B, C], health, breakers, quotas, T0, TH)
    assert [s.eligible for s in scored] == [False, False, False]
    assert "would be exceeded" in scored[0].reason
    assert "unavailable" in scored[1].reason
    assert "circuit breaker open" in scored[2].reason
    with pytest.raises(Unavailable):
        choose("LLM", scored, T0)
    # After the cooldown the open breaker lets a trial call through, with a penalty.
    later = T0 + timedelta(seconds=60)
    scored = score_candidates([A, B, C], health, breakers, quotas, later, TH)
    assert scored[2].eligible and "half-open" in scored[2].reason


def test_degraded_health_and_low_headroom_lower_the_score() -> None:
    health = {"openai": {"status": "degraded", "success_rate": 0.9}}
    quotas = {"anthropic_claude-sonnet-4_requests": {"limit": 10, "used": 8,
              "status": "warning", "reset_at": T0 + timedelta(minutes=5)}}  # fmt: skip
    a, b = score_candidates([A, B], health, {}, quotas, T0, TH)
    assert a.score == pytest.approx((0.5 * 0.9 * 0.7 + 0.3 * 1.0 + 0.2 * 1.0), abs=1e-4)
    assert b.score == pytest.approx((0.5 * 1.0 + 0.3 * 0.1 + 0.2 * 0.5), abs=1e-4)


def test_a_quota_whose_window_ended_does_not_block() -> None:
    quotas = {"openai_gpt-4o_requests": {"limit": 10, "used": 10, "status": "exhausted",
                                         "reset_at": T0}}  # fmt: skip
    (a,) = score_candidates([A], {}, {}, quotas, T0, TH)
    assert a.eligible


def test_routing_disabled_takes_the_first_candidate() -> None:
    scored = score_candidates([A, B], {}, {}, {}, T0, TH)
    decision = choose("LLM", scored, T0, routing_enabled=False)
    assert decision.selected_model == "gpt-4o"
    assert "disabled" in decision.selection_reason


def test_thresholds_come_from_settings_and_a_bad_value_is_a_retryable_fault() -> None:
    from shared.providers.service import thresholds
    from shared.settings import override_settings

    with override_settings(provider_thresholds={"failure_threshold": 2, "cooldown_s": 5}):
        th = thresholds()
        assert (th.failure_threshold, th.cooldown_s, th.half_open_successes) == (2, 5, 3)
    bad = {"failure_threshold": 0}
    with override_settings(provider_thresholds=bad), pytest.raises(RuntimeError):
        thresholds()
    bad = {"no_such_threshold": 1}
    with override_settings(provider_thresholds=bad), pytest.raises(RuntimeError):
        thresholds()
