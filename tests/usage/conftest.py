"""Fixtures of the usage tests: the usage demo configuration at a fixed time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from devstack.demo import usage as demo_usage
from shared.clock import FixedClock, SystemClock, set_clock
from tests.helpers import all_documents, triggers_settled

CONFIG_TIME = datetime(2025, 12, 1, tzinfo=UTC)


@pytest.fixture
def usage_db(db: Any, stack: Any) -> Iterator[Any]:
    """The wiped emulator with the usage configuration effective since ``CONFIG_TIME``,
    once the trigger events of the seeding (cost history and audit) have been handled."""
    with triggers_settled(stack):
        demo_usage.seed(db, CONFIG_TIME)
    yield db


@pytest.fixture
def clock() -> Iterator[FixedClock]:
    """A fixed process clock (the functions run in this process and read it too)."""
    fixed = FixedClock(datetime(2026, 1, 4, 10, 0, tzinfo=UTC))
    set_clock(fixed)
    yield fixed
    set_clock(SystemClock())


def settled(
    db: Any, stack: Any, handled: dict[str, int] | None = None
) -> dict[str, dict[str, Any]]:
    """All documents, after the barrier ``Stack.wait_settled``: every message published
    through the stack acknowledged, the trigger counts in ``handled`` reached, nothing in
    flight. Counted, not a quiet period, so a later write cannot slip past it."""
    stack.wait_settled(handled=handled)
    return all_documents(db)


def make_user(db: Any, user_id: str, *, credits: int = 0, tier: str | None = None) -> None:
    """A KitesForU-profile user whose balance is proven by a PURCHASE transaction."""
    from shared.ledger import Kind, ledger_for

    doc: dict[str, Any] = {"email": f"{user_id}@example.com", "credits_balance": 0}
    if tier is not None:
        doc["tier"] = tier
    db.collection("users").document(user_id).set(doc)
    if credits:
        ledger = ledger_for()
        ledger.run(
            lambda u: ledger.credit(
                u,
                user_id=user_id,
                kind=Kind.PURCHASE,
                amount=credits,
                key=f"seed:{user_id}",
                description="Credit pack",
            )
        )
