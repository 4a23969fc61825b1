"""The pure rules of operators' promotion changes: creation and status transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.demo.bigeye import tiered_promotion
from shared.bigeye.promotions import (
    TRANSITIONS,
    decide_create,
    decide_transition,
    expirable,
    new_promotion,
    transition_target,
)
from shared.errors import Conflict, InvalidInput, NotFound

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _doc(status: str, end: datetime | None = NOW + timedelta(days=1)) -> dict[str, Any]:
    return {"status": status, "conditions": {"end_date": end}, "name": "p"}


@pytest.mark.parametrize(
    ("action", "before", "after"),
    [
        ("promotion_pause", "ACTIVE", "PAUSED"),
        ("promotion_pause", "DRAFT", "PAUSED"),
        ("promotion_resume", "PAUSED", "ACTIVE"),
        ("promotion_cancel", "DRAFT", "CANCELLED"),
        ("promotion_cancel", "ACTIVE", "CANCELLED"),
        ("promotion_cancel", "PAUSED", "CANCELLED"),
    ],
)
def test_an_allowed_transition_sets_the_status_and_the_time(
    action: str, before: str, after: str
) -> None:
    plan = decide_transition(action, "p", _doc(before), NOW)
    assert plan.changed and plan.before == before and plan.target == after
    assert plan.data["status"] == after and plan.data["updated_at"] == NOW
    assert plan.data["name"] == "p"


@pytest.mark.parametrize(
    ("action", "before"),
    [
        ("promotion_pause", "CANCELLED"),
        ("promotion_pause", "EXPIRED"),
        ("promotion_resume", "DRAFT"),
        ("promotion_resume", "CANCELLED"),
        ("promotion_cancel", "EXPIRED"),
        ("promotion_expire", "DRAFT"),
        ("promotion_expire", "CANCELLED"),
    ],
)
def test_a_transition_from_another_status_is_refused(action: str, before: str) -> None:
    with pytest.raises(Conflict, match=f"is {before}; only"):
        decide_transition(action, "p", _doc(before, NOW - timedelta(days=1)), NOW)


def test_already_in_the_target_status_changes_nothing() -> None:
    for action, (target, _) in TRANSITIONS.items():
        plan = decide_transition(action, "p", _doc(target), NOW)
        assert not plan.changed and plan.data == _doc(target)


def test_a_document_without_a_status_is_no_status_of_any_action() -> None:
    for action in TRANSITIONS:
        with pytest.raises(Conflict, match="is None; only"):
            decide_transition(action, "p", {"conditions": {}}, NOW)


def test_resume_is_refused_once_the_end_date_has_passed() -> None:
    with pytest.raises(Conflict, match="cannot resume"):
        decide_transition("promotion_resume", "p", _doc("PAUSED", NOW - timedelta(1)), NOW)
    assert decide_transition("promotion_resume", "p", _doc("PAUSED", None), NOW).changed


def test_expiry_happens_only_after_the_end_date() -> None:
    for end in (None, NOW, NOW + timedelta(seconds=1)):
        with pytest.raises(Conflict, match="has not ended"):
            decide_transition("promotion_expire", "p", _doc("ACTIVE", end), NOW)
        assert not expirable(_doc("ACTIVE", end), NOW)
    ended = _doc("PAUSED", NOW - timedelta(seconds=1))
    assert expirable(ended, NOW)
    assert decide_transition("promotion_expire", "p", ended, NOW).target == "EXPIRED"
    assert not expirable({"status": "ACTIVE", "conditions": "junk"}, NOW)


def test_unknown_action_and_missing_promotion() -> None:
    with pytest.raises(InvalidInput, match="unknown promotion action"):
        transition_target("promotion_delete")
    with pytest.raises(NotFound, match="no promotion p"):
        decide_transition("promotion_pause", "p", None, NOW)


def test_a_created_promotion_starts_with_zero_stats_and_must_be_readable() -> None:
    doc = new_promotion("p", tiered_promotion(NOW), "ops", NOW)
    assert doc["stats"] == {
        "total_redemptions": 0,
        "total_bonus_credits": 0,
        "total_baht_collected": 0,
        "unique_users": 0,
    }
    assert (doc["created_at"], doc["created_by"], doc["updated_at"]) == (NOW, "ops", NOW)
    with pytest.raises(InvalidInput, match="not valid"):
        new_promotion("p", {**tiered_promotion(NOW), "type": "NO_SUCH_TYPE"}, "ops", NOW)
    decide_create("p", exists=False)
    with pytest.raises(Conflict, match="already exists"):
        decide_create("p", exists=True)
