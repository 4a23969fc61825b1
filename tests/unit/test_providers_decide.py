"""The pure decisions of provider events and of the hourly schedule (no emulator)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.providers.core import BreakerState, History, Observation, Outcome, Thresholds
from shared.providers.plan import (
    Call,
    GroupRead,
    StoredAlert,
    decide_group,
    decide_reset,
    decide_tick,
    needs_tick,
    reset_alert_ids,
    rolled_alert_ids,
)
from shared.providers.quotas import (
    Quota,
    QuotaStatus,
    QuotaType,
    ResetPeriod,
    quota_alert_id,
    window_end,
)

T0 = datetime(2026, 1, 4, 10, 0, tzinfo=UTC)
TH = Thresholds(
    failure_threshold=3,
    failure_rate_min_events=6,
    window_s=60,
    cooldown_s=30,
    half_open_successes=2,
    half_open_max_attempts=3,
    health_min_events=4,
)
MODEL = "gpt-4o"


def call(i: int, *, ok: bool = True, at: datetime | None = None, eid: str | None = None) -> Call:
    obs = Observation(
        at=at or T0 + timedelta(seconds=i),
        event_id=eid or f"e{i}",
        outcome=Outcome.SUCCESS if ok else Outcome.FAILURE,
        latency_ms=100.0 + i,
    )
    return Call(
        obs, MODEL, tokens=10 * i, cost_micro=1500, now=T0 + timedelta(seconds=i, milliseconds=5)
    )


def quota(t: QuotaType, limit: int, used: int = 0, status: QuotaStatus | None = None) -> Quota:
    return Quota(
        "openai", MODEL, t, limit, used, window_end(T0, ResetPeriod.HOURLY), ResetPeriod.HOURLY,
        status or QuotaStatus.AVAILABLE,
    )  # fmt: skip


def qid(t: QuotaType) -> str:
    return f"openai_{MODEL}_{t.value}"


def test_each_event_counts_once_and_duplicates_write_nothing() -> None:
    read = GroupRead(
        History(), frozenset({"e1"}), {qid(QuotaType.REQUESTS): quota(QuotaType.REQUESTS, 100)}
    )
    plan = decide_group("openai", read, [call(1), call(2), call(2), call(3)], TH)
    assert [r.duplicate for r in plan.results] == [True, False, True, False]
    assert [eid for eid, _ in plan.markers] == ["e2", "e3"]
    assert plan.quotas[qid(QuotaType.REQUESTS)]["used"] == 2
    assert plan.history is not None and [o.event_id for o in plan.history.tail] == ["e2", "e3"]
    nothing = decide_group("openai", read, [call(1)], TH)
    assert nothing.markers == () and nothing.history is None and nothing.health is None
    assert nothing.quotas == {} and nothing.alerts.merges == []


def test_a_group_decides_what_one_event_at_a_time_decides() -> None:
    calls = [call(i, ok=i % 4 != 0) for i in range(1, 13)]
    quotas = {
        qid(QuotaType.REQUESTS): quota(QuotaType.REQUESTS, 10),
        qid(QuotaType.TOKENS): quota(QuotaType.TOKENS, 10_000),
        qid(QuotaType.COST): quota(QuotaType.COST, 1_000_000),
    }
    together = decide_group("openai", GroupRead(History(), frozenset(), quotas), calls, TH)

    history, stored, merges, last = History(), dict(quotas), [], None
    for c in calls:
        one = decide_group("openai", GroupRead(history, frozenset(), stored), [c], TH)
        assert one.history is not None
        history, last = one.history, one
        stored.update({k: Quota.from_document(d) for k, d in one.quotas.items()})
        merges += one.alerts.merges
    assert last is not None
    assert together.history == history and together.health == last.health
    assert together.breaker == last.breaker
    assert together.quotas == {k: q.document() for k, q in stored.items()}
    assert together.alerts.merges == merges
    # 12 requests over a limit of 10: warning, critical and exhausted, each raised once.
    raised = [
        aid for aid, f in merges if "severity" in f and aid.startswith(qid(QuotaType.REQUESTS))
    ]
    assert len(raised) == 3 == len(set(raised))
    assert together.quotas[qid(QuotaType.COST)]["used"] == 12 * 1500


def test_a_window_roll_resolves_the_stored_alerts_that_are_still_open() -> None:
    q = quota(QuotaType.REQUESTS, 10, used=9, status=QuotaStatus.CRITICAL)
    warning, critical = (quota_alert_id(q, s) for s in (QuotaStatus.WARNING, QuotaStatus.CRITICAL))
    next_hour = call(1, at=q.reset_at + timedelta(minutes=1))
    assert rolled_alert_ids({qid(QuotaType.REQUESTS): q}, [call(1)], "openai", TH) == []
    assert rolled_alert_ids({qid(QuotaType.REQUESTS): q}, [call(1), next_hour], "openai", TH) == [
        warning,
        critical,
    ]
    read = GroupRead(
        History(),
        frozenset(),
        {qid(QuotaType.REQUESTS): q},
        {warning: StoredAlert(True, resolved=True), critical: StoredAlert(True)},
    )
    plan = decide_group("openai", read, [next_hour], TH)
    assert plan.alerts.resolutions == {critical: q.reset_at}  # the warning was resolved already
    assert plan.quotas[qid(QuotaType.REQUESTS)]["used"] == 1
    assert plan.results[0].alerts_written == 1
    unread = decide_group("openai", GroupRead(History(), frozenset(), read.quotas), [next_hour], TH)
    assert unread.alerts.resolutions == {}  # an alert that was not found does not exist


def test_an_alert_raised_and_rolled_over_in_one_group_is_resolved_in_the_plan() -> None:
    q = quota(QuotaType.REQUESTS, 2)
    later = call(9, at=q.reset_at + timedelta(seconds=1))
    plan = decide_group(
        "openai", GroupRead(History(), frozenset(), {qid(QuotaType.REQUESTS): q}),
        [call(1), call(2), later], TH,
    )  # fmt: skip
    exhausted = quota_alert_id(q, QuotaStatus.EXHAUSTED)
    fields = [f for aid, f in plan.alerts.merges if aid == exhausted]
    assert fields[0]["resolved_at"] is None and fields[-1] == {"resolved_at": q.reset_at}
    assert plan.alerts.resolutions == {}


def test_the_tick_moves_an_open_breaker_to_half_open_once() -> None:
    failures = [call(i, ok=False) for i in range(1, 4)]
    opened = decide_group("openai", GroupRead(History(), frozenset(), {}), failures, TH)
    assert opened.history is not None and opened.breaker is not None
    assert opened.breaker["state"] == BreakerState.OPEN.value
    assert decide_tick("openai", None, T0 + timedelta(minutes=5), TH) is None
    assert decide_tick("openai", opened.history, T0 + timedelta(seconds=2), TH) is None
    assert decide_tick("openai", opened.history, T0 + timedelta(seconds=10), TH) is not None
    at = T0 + timedelta(minutes=5)
    tick = decide_tick("openai", opened.history, at, TH)
    assert tick is not None and tick.breaker["state"] == BreakerState.HALF_OPEN.value
    assert tick.history.as_of == at
    assert decide_tick("openai", tick.history, at, TH) is None  # a rerun changes nothing


@pytest.mark.parametrize(
    ("breaker", "health", "expected"),
    [
        ({"state": "closed"}, {"status": "healthy"}, False),
        ({"state": "closed"}, None, False),
        ({"state": "closed"}, {"status": "degraded"}, True),
        ({"state": "open"}, {"status": "healthy"}, True),
        ({"state": "half_open"}, None, True),
    ],
)
def test_the_schedule_ticks_only_providers_that_are_not_well(
    breaker: dict[str, str], health: dict[str, str] | None, expected: bool
) -> None:
    assert needs_tick(breaker, health) is expected


def test_the_reset_rolls_only_ended_windows_and_resolves_open_alerts() -> None:
    ended = quota(QuotaType.REQUESTS, 10, used=10, status=QuotaStatus.EXHAUSTED)
    current = Quota(
        "openai",
        MODEL,
        QuotaType.TOKENS,
        100,
        5,
        window_end(T0, ResetPeriod.DAILY),
        ResetPeriod.DAILY,
    )
    quotas = {qid(QuotaType.REQUESTS): ended, qid(QuotaType.TOKENS): current}
    at = ended.reset_at + timedelta(seconds=1)
    ids = reset_alert_ids(quotas, at, TH)
    assert ids == [quota_alert_id(ended, s) for s in (QuotaStatus.WARNING, QuotaStatus.CRITICAL,
                                                       QuotaStatus.EXHAUSTED)]  # fmt: skip
    stored = {ids[0]: StoredAlert(True, resolved=True), ids[1]: StoredAlert(True)}
    plan = decide_reset(quotas, stored, at, TH)
    assert list(plan.quotas) == [qid(QuotaType.REQUESTS)]
    rolled = plan.quotas[qid(QuotaType.REQUESTS)]
    assert (rolled["used"], rolled["status"]) == (0, "available")
    assert rolled["reset_at"] == ended.reset_at + timedelta(hours=1)
    assert plan.alerts.resolutions == {ids[1]: ended.reset_at} and plan.alerts_resolved == 1
    assert decide_reset(quotas, stored, ended.reset_at - timedelta(seconds=1), TH).quotas == {}
