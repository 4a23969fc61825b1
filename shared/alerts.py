"""Operator alerts on the ``alerts`` Pub/Sub topic (the app's notification channel subscribes).

One message per alert, UTF-8 JSON::

    {"kind": "loss_user", "alert_id": "loss_user:u_123:20260104T100000Z",
     "severity": "WARNING", "raised_at": "2026-01-04T10:00:00Z",
     "summary": "u_123 lost 12.5 USD over 30 days", "details": {...}}

with the attributes ``kind`` and ``alert_id`` (so a subscription can filter on the kind).
``alert_id`` is stable for one cause: a subscriber that sees it twice (Pub/Sub delivers at
least once) shows it once. Publishing never fails the caller: a publish error is logged
(ERROR, ``alert_publish_failed``) and the alert's own WARNING log line, which the deploy's
log-based metric counts, still carries it.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from shared.clients import publisher_client
from shared.clock import ensure_utc
from shared.logs import get_logger, log
from shared.settings import get_settings

ALERTS_TOPIC = "alerts"
PUBLISH_TIMEOUT_S = 10.0

logger = get_logger(__name__)


def alert_message(
    kind: str,
    alert_id: str,
    *,
    raised_at: datetime,
    summary: str,
    details: dict[str, Any],
    severity: str = "WARNING",
) -> dict[str, Any]:
    """The documented message body."""
    return {
        "kind": kind,
        "alert_id": alert_id,
        "severity": severity,
        "raised_at": ensure_utc(raised_at).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "summary": summary,
        "details": details,
    }


def publish_alert(message: dict[str, Any]) -> bool:
    """Publish one alert; True once Pub/Sub accepted it, False (logged) otherwise."""
    try:
        publisher = publisher_client()
        path = publisher.topic_path(get_settings().google_cloud_project, ALERTS_TOPIC)
        data = json.dumps(message, default=str, ensure_ascii=False).encode("utf-8")
        future = publisher.publish(
            path, data, kind=str(message["kind"]), alert_id=str(message["alert_id"])
        )
        future.result(timeout=PUBLISH_TIMEOUT_S)
    except Exception as exc:  # an alert must never fail the work that raised it
        log(
            logger,
            logging.ERROR,
            f"could not publish alert: {type(exc).__name__}",
            alert="alert_publish_failed",
            alert_id=message.get("alert_id"),
            kind=message.get("kind"),
        )
        return False
    return True
