"""The failed-login throttle's pure rules: ``decide_begin`` and ``decide_finish``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.bigeye.models import AuditEvent
from shared.bigeye.throttle import Outcome, Policy, decide_begin, decide_finish, lock_seconds

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
POLICY = Policy(
    max_failures=3, lockout_base_s=30, lockout_max_s=100, check_lease_s=20, failure_memory_s=600
)
LATER = NOW + timedelta(seconds=5)


def _s(seconds: int) -> datetime:
    return NOW + timedelta(seconds=seconds)


def test_lock_doubles_from_the_max_failures_th_and_is_capped() -> None:
    assert [lock_seconds(n, POLICY) for n in (2, 3, 4, 5, 6)] == [0, 30, 60, 100, 100]


def test_begin_takes_the_lease_keeping_the_failures() -> None:
    state = {"failures": 2, "last_failed_at": _s(-60), "expires_at": _s(500)}
    plan = decide_begin(state, NOW, POLICY, "t1", "u1")
    assert plan.refused_until is None
    assert plan.doc == {
        "user_id": "u1",
        "failures": 2,
        "last_failed_at": _s(-60),
        "locked_until": None,
        "checking": "t1",
        "checking_until": _s(20),
        "expires_at": _s(600),
    }


def test_begin_refuses_a_lock_first_then_a_check_in_flight() -> None:
    both = {"locked_until": _s(40), "checking": "x", "checking_until": _s(10)}
    plan = decide_begin(both, NOW, POLICY, "t1", None)
    assert (plan.doc, plan.refused_until, plan.reason) == (None, _s(40), "locked")
    flight = {"locked_until": _s(-1), "checking": "x", "checking_until": _s(10)}
    plan = decide_begin(flight, NOW, POLICY, "t1", None)
    assert (plan.refused_until, plan.reason) == (_s(10), "check in flight")


def test_a_forgotten_record_counts_nothing() -> None:
    old = {"failures": 9, "locked_until": _s(40), "expires_at": NOW}
    plan = decide_begin(old, NOW, POLICY, "t1", "u1")
    assert plan.doc is not None and plan.doc["failures"] == 0


def test_finish_counts_a_failure_locks_and_audits_known_users_only() -> None:
    state = {"user_id": "u1", "failures": 2, "checking": "t1", "checking_until": _s(20)}
    plan = decide_finish(state, Outcome.WRONG_PASSWORD, LATER, "t1", "u1", POLICY)
    assert plan.audit_event is AuditEvent.LOGIN_FAILED_WRONG_PASSWORD
    assert (plan.failures, plan.locked_s) == (3, 30)
    assert plan.doc == {
        "user_id": "u1",
        "failures": 3,
        "last_failed_at": LATER,
        "locked_until": LATER + timedelta(seconds=30),
        "checking": None,
        "checking_until": None,
        "expires_at": LATER + timedelta(seconds=600),
    }
    device = decide_finish(state, Outcome.DEVICE_MISMATCH, LATER, "t1", "u1", POLICY)
    assert device.audit_event is AuditEvent.LOGIN_FAILED_DEVICE_MISMATCH
    unknown = decide_finish(state, Outcome.WRONG_PASSWORD, LATER, "t1", None, POLICY)
    assert unknown.audit_event is None and unknown.doc["failures"] == 3


def test_finish_success_forgets_and_leaves_a_newer_lease_alone() -> None:
    ours = {"user_id": "u1", "failures": 2, "checking": "t1", "checking_until": _s(20)}
    plan = decide_finish(ours, Outcome.SUCCESS, LATER, "t1", "u1", POLICY)
    assert plan.doc == {"user_id": "u1", "expires_at": LATER}
    assert plan.audit_event is None
    newer = {**ours, "checking": "t2"}
    plan = decide_finish(newer, Outcome.SUCCESS, LATER, "t1", "u1", POLICY)
    assert plan.doc["checking"] == "t2" and plan.doc["checking_until"] == _s(20)
    assert plan.doc["failures"] == 0 and plan.doc["expires_at"] == LATER + timedelta(seconds=600)


def test_an_abandoned_check_releases_the_lease_counting_nothing() -> None:
    state = {"user_id": "u1", "failures": 1, "checking": "t1", "checking_until": _s(20)}
    plan = decide_finish(state, Outcome.ABANDONED, LATER, "t1", "u1", POLICY)
    assert plan.audit_event is None
    assert plan.doc["failures"] == 1 and plan.doc["checking"] is None
