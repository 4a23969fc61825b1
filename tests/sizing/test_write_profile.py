"""The write profile of a usage event, recorded from a real delivery, under the load model."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from bench.model import Load, Profile, hottest
from bench.profile import pattern, recording
from bench.sizing import fanouts
from tests.helpers import triggers_settled
from tests.usage.conftest import settled
from tests.usage.events import push


def test_a_usage_event_writes_only_per_user_and_per_event_documents(stack, usage_db) -> None:
    db = usage_db
    db.collection("users").document("sz-u1").set({"credits_balance": 100, "tier": "PRO"})
    now = datetime.now(UTC)
    body = {
        "request_id": f"sz-{uuid.uuid4().hex[:8]}",
        "user_id": "sz-u1",
        "engine_id": "openai_chat_gpt4",
        "usage_units": 3,
        "credits_used": 2,
        "tokens": 40,
        "created_at": now.isoformat(),
    }
    subjects = {
        "sz-u1": "{user}",
        body["request_id"]: "{event}",
        now.date().isoformat(): "{day}",
        f"{now:%Y-%m}": "{month}",
        f"{now:%Y}": "{year}",
    }
    settled(db, stack)  # the seeding's own triggers (pricing audit) are not the event's cost
    with recording() as recorder:
        recorder.take()
        # Each delivery, then the barrier on every trigger event its writes owe (counted,
        # not a quiet period), so the take holds all the event caused and nothing after.
        with triggers_settled(stack):
            assert push(stack, "usage-events", json.dumps(body).encode()) == 200
        first = recorder.take()
        with triggers_settled(stack):
            assert push(stack, "usage-events", json.dumps(body).encode()) == 200
        again = recorder.take()

    # The atomic hook saw the one unit the RPC layer saw committed, write for write.
    assert first.units == 1 and first.commits == 1
    assert sorted(p for _, p in first.unit_ops) == sorted(first.written)
    written = {pattern(p, subjects): n for p, n in first.written.items()}
    # Six writes: the log (also the once-only record of an event received within 30 days
    # of its created_at), the deduction (balance, transaction, posting record), the daily
    # token counter and the user's month counter. No app-wide document.
    assert sorted(written) == [
        "credit_transactions/{id}",
        "daily_token_usage/{user}_{day}",
        "ledger_postings/{id}",
        "usage_logs/{id}",
        "usage_user_periods/{month}_{user}",
        "users/{user}",
    ]
    assert first.writes == 6
    assert again.writes == 0 and again.units == 0  # a redelivery is a replay

    profile = Profile("usage event", first.reads, first.writes, patterns=written)
    docs = hottest({"usage event": profile}, [Load("usage event", 1_000.0)], fanouts())
    assert [d.pattern for d in docs if d.app_wide] == []
