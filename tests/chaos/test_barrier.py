"""The stack's settled barrier (``Stack.wait_settled``), which the chaos run asserts after.

It must wait for what is owed, not for a quiet moment: a message whose first delivery
fails (a 5xx, so Pub/Sub delivers it again) is settled only once a delivery is
acknowledged, and a trigger count not reached yet is reported, not waited out in silence.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from devstack.demo import billing as demo_billing
from devstack.emulators import StackError
from shared import atomic
from shared.errors import Transient
from tests.helpers import triggers_settled


class _FirstDeliveryFails:
    """Fails the first commit attempt of each message (the handler answers 5xx: no ack)."""

    def __init__(self) -> None:
        self.failed: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, stage: str) -> None:
        import flask

        if stage != "before_commit" or not flask.has_request_context():
            return
        if flask.request.script_root != "/usage-events":
            return
        message_id = (flask.request.get_json(silent=True) or {}).get("message", {}).get("messageId")
        with self.lock:
            if message_id in self.failed:
                return
            self.failed.add(message_id)
        raise Transient("first delivery fails")


def test_settled_means_every_published_message_acknowledged(demo: Any, stack: Any) -> None:
    user = demo_billing.demo_user("kitesforu", datetime.now(UTC))
    demo.collection("users").document("barrier-user").set(
        {**user, "email": "barrier-user@example.com", "credits_balance": 0}
    )
    hook = _FirstDeliveryFails()
    atomic.fault_hook = hook
    try:
        ids = [f"barrier-{i}" for i in range(5)]
        for request_id in ids:
            message = {
                "request_id": request_id,
                "user_id": "barrier-user",
                "engine_id": "openai_chat_gpt4",
                "usage_units": 1,
                "credits_used": 0,
                "tokens": 10,
                "subscription_plan": "pro",
            }
            stack.publish("usage-events", json.dumps(message).encode())
        stack.wait_settled(timeout_s=120)
    finally:
        atomic.fault_hook = None
    # First deliveries failed (a group commit fails all its members with its leader's
    # fault), so those messages were settled by a later delivery.
    assert hook.failed
    assert stack.unacked() == {}
    logged = {(s.to_dict() or {}).get("request_id") for s in demo.collection("usage_logs").stream()}
    assert logged == set(ids)


def test_settled_reports_what_is_still_owed(db: Any, stack: Any) -> None:
    owed = stack.handled("on-podcast-job-failed") + 1
    with pytest.raises(StackError, match="on-podcast-job-failed"):
        stack.wait_settled(timeout_s=0.5, handled={"on-podcast-job-failed": owed})


def test_triggers_settled_waits_for_the_events_the_writes_owe(db: Any, stack: Any) -> None:
    costs, audits = stack.handled("on-engine-cost-written"), stack.handled("on-engine-cost-audit")
    users = stack.handled("on-user-created")
    with triggers_settled(stack):
        stack.seed()
        db.collection("users").document("settled-user").set({"email": "s@example.com"})
        db.collection("users").document("settled-user").update({"email": "t@example.com"})
    engines = len(list(db.collection("ai_engine_costs").stream()))
    assert engines > 0
    # One event per engine cost document written, handled by both of its triggers, and
    # the users/ creates handled (the update of the same user owes no created event).
    assert stack.handled("on-engine-cost-written") - costs >= engines
    assert stack.handled("on-engine-cost-audit") - audits >= engines
    seeded_users = len(list(db.collection("users").stream()))
    assert stack.handled("on-user-created") - users >= seeded_users
    assert stack.unacked() == {}
