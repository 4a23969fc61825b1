"""The loss-user alert reaches the ``alerts`` Pub/Sub topic (emulator) once per episode."""

from __future__ import annotations

import json
import random
import uuid
from datetime import timedelta
from typing import Any

from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from shared.analytics.loss import scan_losses
from tests.analytics.support import make_log, write_logs
from tests.analytics.test_loss_scan import T1


def _pull_one(subscriber: Any, path: str) -> Any:
    for _ in range(30):
        response = subscriber.pull(request={"subscription": path, "max_messages": 10}, timeout=10)
        if response.received_messages:
            ids = [m.ack_id for m in response.received_messages]
            subscriber.acknowledge(request={"subscription": path, "ack_ids": ids})
            return response.received_messages
    raise AssertionError("no alert arrived on the alerts topic")


def test_a_new_loss_user_is_published_to_the_alerts_topic(db, stack) -> None:
    subscriber = pubsub_v1.SubscriberClient()
    topic = f"projects/{stack.config.project}/topics/alerts"
    path = subscriber.subscription_path(stack.config.project, f"alerts-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(request={"name": path, "topic": topic})
    try:
        rng = random.Random(5)
        logs = [
            make_log(
                rng,
                user_id="loser",
                at=T1 - timedelta(days=d, hours=1),
                plan="free",
                engine="seddream_video",
            )
            for d in range(0, 12, 3)
        ]
        write_logs(db, logs)
        assert scan_losses(db, T1).detected == ["loser"]
        (received,) = _pull_one(subscriber, path)
        body = json.loads(received.message.data)
        assert received.message.attributes["kind"] == "loss_user"
        assert body["kind"] == "loss_user" and body["severity"] == "WARNING"
        assert body["alert_id"] == received.message.attributes["alert_id"]
        assert body["alert_id"].startswith("loss_user:loser:")
        assert body["details"]["user_id"] == "loser"
        assert body["details"]["total_profit_usd"] < 0
        assert body["raised_at"].endswith("Z")
        # A later scan of the same episode refreshes figures and raises nothing.
        assert scan_losses(db, T1 + timedelta(hours=1)).detected == []
    finally:
        subscriber.delete_subscription(request={"subscription": path})
        subscriber.close()
