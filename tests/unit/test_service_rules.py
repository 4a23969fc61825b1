"""The pure decisions of services that read through a unit, decide, then apply."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.bigeye.jobs import decide_finalize, due_for_expiry
from shared.bigeye.models import FinalizeRequest
from shared.errors import Conflict, Gone, InvalidInput, NotFound
from shared.jobs import ChargeView, plan_refund
from shared.ledger import Kind, PostingResult

T0 = datetime(2026, 2, 8, 10, 0, tzinfo=UTC)
TOKEN = str(uuid.uuid4())


def _job(**changes: Any) -> dict[str, Any]:
    job = {
        "user_id": "u",
        "status": "RESERVED",
        "file_count": 7,
        "photo_count": 5,
        "video_count": 2,
        "photo_rate": 3,
        "video_rate": 3,
        "reserved_credits": 21,
        "expires_at": T0 + timedelta(minutes=30),
    }
    return {**job, **changes}


def _finalize(job: dict[str, Any] | None, success: int = 5, failed: int = 2, **kw: Any) -> int:
    request = FinalizeRequest(job_token=TOKEN, success=success, failed=failed)
    return decide_finalize(job, user_id=kw.get("user_id", "u"), request=request, now=T0)


def test_finalize_decides_the_charge_or_the_refusal() -> None:
    assert _finalize(_job()) == 15
    assert _finalize(_job(status="COMPLETED", success_count=5, failed_count=2)) == 15
    for job, error in (
        (None, NotFound),
        (_job(user_id="other"), NotFound),
        (_job(status="EXPIRED"), Gone),
        (_job(expires_at=T0), Gone),
        (_job(status="FAILED"), Conflict),
        (_job(status="COMPLETED", success_count=4, failed_count=3), Conflict),
    ):
        with pytest.raises(error):
            _finalize(job)
    with pytest.raises(InvalidInput):
        _finalize(_job(), success=7, failed=1)


def test_expiry_is_due_only_for_a_reserved_job_past_its_time() -> None:
    assert due_for_expiry(_job(expires_at=T0), T0)
    assert not due_for_expiry(_job(), T0)
    assert not due_for_expiry(_job(status="COMPLETED", expires_at=T0), T0)
    assert not due_for_expiry(None, T0)


def _posted(amount: int) -> PostingResult:
    return PostingResult("u", "tx-r", Kind.REFUND, amount, 100, replayed=True)


def test_a_failed_job_refund_plan_counts_what_each_deduction_still_allows() -> None:
    a = ChargeView("a", "refund:jobs:j:a", None, 35)  # 40 taken, 5 refunded by an operator
    b = ChargeView("b", "refund:jobs:j:b", None, 10)
    plan = plan_refund(["h"], [a, b], 40)
    assert plan.releases == ("h",)
    assert plan.refunds == ((a, 35), (b, 5))
    # A refund this job already made is replayed and counts against what is charged.
    done = ChargeView("a", "refund:jobs:j:a", _posted(35), 0)
    assert plan_refund([], [done, b], 40).refunds == ((done, 0), (b, 5))
    assert plan_refund([], [done, b], 35).refunds == ((done, 0),)
    assert plan_refund([], [a], 0).refunds == ()
    assert plan_refund([], [ChargeView("c", "k", None, 0), b], 3).refunds == ((b, 3),)
