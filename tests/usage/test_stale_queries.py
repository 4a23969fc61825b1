"""A usage event refused on an engine-cost history that moved while it was read is metered:
the unit's history queries are re-run before the refusal is given (docs/ledger.md)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from shared.errors import InvalidInput
from tests.helpers import race_after_query


def test_a_usage_refusal_on_an_engine_history_that_moved_is_decided_again(
    usage_db: Any, stack: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devstack.demo.usage import engine_doc
    from shared.usage.config import ENGINE_COST_HISTORY, ENGINE_COSTS, record_engine_version
    from shared.usage.model import UsageEvent
    from shared.usage.service import meter_usage
    from tests.helpers import triggers_settled
    from tests.usage.conftest import make_user

    db = usage_db
    at = clock.now() - timedelta(hours=1)
    v1 = {**engine_doc("gemini_pro_vision", at), "engine_id": "stale_engine"}
    # Live: a version effective after the event, inactive; the one in force at the event
    # is recorded into the history only after the unit's history queries ran.
    live = {**v1, "is_active": False, "updated_at": at + timedelta(minutes=30)}
    with triggers_settled(stack):
        db.collection(ENGINE_COSTS).document("stale_engine").set(live)
    make_user(db, "u1")
    race = race_after_query(
        monkeypatch,
        ENGINE_COST_HISTORY,
        lambda: record_engine_version(
            db, "stale_engine", v1, effective_from=at - timedelta(days=1), recorded_at=at
        ),
        # After both queries (the version in force, the earliest) of the leader's run of
        # the event's unit (a lone caller of group commit: no probe ran them first).
        nth=2,
    )
    event = UsageEvent(
        request_id="req-stale-history",
        user_id="u1",
        engine_id="stale_engine",
        usage_units=Decimal("4"),
        tokens=10,
        subscription_plan="free",
        created_at=at.isoformat(),  # type: ignore[arg-type]
    )
    try:
        metered = meter_usage(db, event)
    except InvalidInput as exc:  # what a refusal on the stale history answered
        pytest.fail(f"refused on a stale engine history: {exc.detail}")
    assert race["raced"] == 1 and not metered.replayed
    log = db.collection("usage_logs").document(metered.log_id).get()
    assert log.get("cost_per_unit_usd") == 0.0025  # the version in force at the event


def test_an_engine_version_recorded_after_the_query_is_ordered_after_the_event(
    usage_db: Any, stack: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The documented phantom behaviour of engine_history_before: not guarded at commit. The
    # event commits once, priced on the versions recorded when its unit ran.
    from devstack.demo.usage import engine_doc
    from shared.usage.config import ENGINE_COST_HISTORY, ENGINE_COSTS, record_engine_version
    from shared.usage.model import UsageEvent
    from shared.usage.service import meter_usage
    from tests.helpers import triggers_settled
    from tests.usage.conftest import make_user

    db = usage_db
    at = clock.now() - timedelta(hours=1)
    base = {**engine_doc("gemini_pro_vision", at), "engine_id": "late_engine"}
    record_engine_version(
        db,
        "late_engine",
        {**base, "cost_per_unit": 0.001},
        effective_from=at - timedelta(days=2),
        recorded_at=at,
    )
    live = {**base, "cost_per_unit": 0.009, "updated_at": at + timedelta(minutes=30)}
    with triggers_settled(stack):
        db.collection(ENGINE_COSTS).document("late_engine").set(live)
    make_user(db, "u2")
    race = race_after_query(
        monkeypatch,
        ENGINE_COST_HISTORY,
        lambda: record_engine_version(
            db, "late_engine", base, effective_from=at - timedelta(days=1), recorded_at=at
        ),
        nth=2,  # after the leader's two queries (a lone caller: no probe before)
    )
    event = UsageEvent(
        request_id="req-late-version",
        user_id="u2",
        engine_id="late_engine",
        usage_units=Decimal("4"),
        tokens=10,
        subscription_plan="free",
        created_at=at.isoformat(),  # type: ignore[arg-type]
    )
    metered = meter_usage(db, event)
    assert race["raced"] == 1 and race["queries"] == 2  # committed once: no query re-run
    log = db.collection("usage_logs").document(metered.log_id).get()
    assert log.get("cost_per_unit_usd") == 0.001  # the version found, not the later one
