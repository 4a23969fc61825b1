"""The pure decisions of the ledger API: Idempotency-Key replays and closable holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import Conflict, NotFound
from shared.ledgerapi.service import Answer, check_pending_hold, decide_replay

T0 = datetime(2026, 2, 8, 10, 0, tzinfo=UTC)


def test_a_new_key_runs_a_same_request_replays_another_conflicts() -> None:
    assert decide_replay(None, "f1") is None
    record = {"fingerprint": "f1", "response": {"balance_after": 7}}
    assert decide_replay(record, "f1") == Answer({"balance_after": 7}, replayed=True)
    with pytest.raises(Conflict, match="another request"):
        decide_replay(record, "f2")


def test_only_a_pending_unexpired_hold_can_be_closed() -> None:
    pending = {"status": "PENDING", "expires_at": T0 + timedelta(seconds=1)}
    check_pending_hold("h", pending, lambda: T0)
    with pytest.raises(NotFound, match="unknown hold h"):
        check_pending_hold("h", None, lambda: T0)
    with pytest.raises(Conflict, match="already settled"):
        check_pending_hold("h", {**pending, "status": "SETTLED"}, lambda: T0)
    with pytest.raises(Conflict, match="expired"):
        check_pending_hold("h", {**pending, "expires_at": T0}, lambda: T0)


def test_the_clock_is_read_only_for_a_hold_that_expires() -> None:
    def no_clock() -> datetime:
        raise AssertionError("read the clock")

    check_pending_hold("h", {"status": "PENDING"}, no_clock)
