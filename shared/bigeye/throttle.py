"""The failed-login throttle's rules (pure: no I/O, no clock; ``auth`` reads and applies).

One ``login_throttle/{sha256(e-mail)}`` document per address holds the failures counted,
the lock (``locked_until``) and the lease of the one password check in flight
(``checking`` token, ``checking_until``). ``decide_begin`` takes the lease or refuses;
``decide_finish`` records how the check ended (docs/security.md, "Logins").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.bigeye.models import AuditEvent


class Outcome(StrEnum):
    """How one password check ended (``decide_finish``)."""

    SUCCESS = "SUCCESS"
    WRONG_PASSWORD = "WRONG_PASSWORD"
    DEVICE_MISMATCH = "DEVICE_MISMATCH"
    ABANDONED = "ABANDONED"  # the check raised: release the lease, count nothing


@dataclass(frozen=True)
class Policy:
    """The throttle's settings (``LOGIN_*``)."""

    max_failures: int
    lockout_base_s: int
    lockout_max_s: int
    check_lease_s: int
    failure_memory_s: int


def live_state(state: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The throttle record, or {} once it is forgotten (``expires_at`` passed: the TTL
    policy deletes it some time later, the logic never waits for that)."""
    if not state:
        return {}
    expires_at = state.get("expires_at")
    if isinstance(expires_at, datetime) and expires_at <= now:
        return {}
    return state


def lock_seconds(failures: int, policy: Policy) -> int:
    """How long ``failures`` lock the address: 0 below ``max_failures``, then doubling from
    ``lockout_base_s`` up to ``lockout_max_s``."""
    over = failures - policy.max_failures
    if over < 0:
        return 0
    return int(min(policy.lockout_max_s, policy.lockout_base_s * 2 ** min(over, 30)))


def expiry(now: datetime, policy: Policy, *times: Any) -> datetime:
    """When a record may be forgotten: ``failure_memory_s`` after ``now``, and never
    before a lock or a check lease it carries ends."""
    latest = now + timedelta(seconds=max(1, policy.failure_memory_s))
    for value in times:
        if isinstance(value, datetime) and value > latest:
            latest = value
    return latest


@dataclass(frozen=True)
class BeginPlan:
    """Either the lease to write (``doc``) or a refusal (``refused_until`` and ``reason``:
    ``locked`` or ``check in flight``)."""

    doc: dict[str, Any] | None = None
    refused_until: datetime | None = None
    reason: str = ""


def decide_begin(
    state: dict[str, Any] | None,
    now: datetime,
    policy: Policy,
    token: str,
    user_id: str | None,
) -> BeginPlan:
    """Take the address's check lease under ``token``, or refuse while it is locked or
    another check holds a lease (the lock is named first)."""
    live = live_state(state, now)
    locked_until = live.get("locked_until")
    checking_until = live.get("checking_until")
    if isinstance(locked_until, datetime) and locked_until > now:
        return BeginPlan(refused_until=locked_until, reason="locked")
    if isinstance(checking_until, datetime) and checking_until > now:
        return BeginPlan(refused_until=checking_until, reason="check in flight")
    until = now + timedelta(seconds=max(1, policy.check_lease_s))
    return BeginPlan(
        doc={
            "user_id": user_id,
            "failures": int(live.get("failures") or 0),
            "last_failed_at": live.get("last_failed_at"),
            "locked_until": None,
            "checking": token,
            "checking_until": until,
            "expires_at": expiry(now, policy, until),
        }
    )


@dataclass(frozen=True)
class FinishPlan:
    """The throttle document to set, and the failure to audit (``audit_event`` with
    ``failures`` and ``locked_s``; None when nothing failed or the address is unknown)."""

    doc: dict[str, Any]
    audit_event: AuditEvent | None = None
    failures: int = 0
    locked_s: int = 0


def decide_finish(
    state: dict[str, Any] | None,
    outcome: Outcome,
    now: datetime,
    token: str,
    user_id: str | None,
    policy: Policy,
) -> FinishPlan:
    """Record how the check under ``token`` ended.

    A wrong password or a device mismatch counts one failure (and locks the address from
    the ``max_failures``-th on); a success forgets the failures counted before it. The
    lease is released if it is still ours (a check that outlived its lease leaves the
    newer one alone). A record with nothing left to remember is forgotten at once
    (``expires_at`` = now, deleted by TTL).
    """
    live = live_state(state, now)
    ours = live.get("checking") == token
    other_until = None if ours else live.get("checking_until")
    other = live.get("checking") if isinstance(other_until, datetime) else None
    failures = int(live.get("failures") or 0)
    locked_until = live.get("locked_until")
    last_failed_at = live.get("last_failed_at")
    event: AuditEvent | None = None
    lock_s = 0
    if outcome is Outcome.SUCCESS:
        failures, locked_until = 0, None
    elif outcome is not Outcome.ABANDONED:
        failures += 1
        lock_s = lock_seconds(failures, policy)
        last_failed_at = now
        locked_until = now + timedelta(seconds=lock_s) if lock_s else None
        if user_id is not None:
            event = (
                AuditEvent.LOGIN_FAILED_DEVICE_MISMATCH
                if outcome is Outcome.DEVICE_MISMATCH
                else AuditEvent.LOGIN_FAILED_WRONG_PASSWORD
            )
    owner = live.get("user_id", user_id)
    if failures == 0 and other is None:
        doc: dict[str, Any] = {"user_id": owner, "expires_at": now}
    else:
        doc = {
            "user_id": owner,
            "failures": failures,
            "last_failed_at": last_failed_at,
            "locked_until": locked_until,
            "checking": other,
            "checking_until": other_until if other else None,
            "expires_at": expiry(now, policy, locked_until, other_until if other else None),
        }
    return FinishPlan(doc, event, failures, lock_s)
