"""Wire the registry's triggers to the local functions server.

- Pub/Sub: one topic per topic or schedule, and one push subscription per function
  (``<function-name>-push``) whose endpoint is ``<base_url>/<function-name>``;
  functions-framework turns the push body into a ``messagePublished`` CloudEvent.
- Firestore: one Eventarc-style trigger per document function, registered with the
  emulator, which then POSTs each matching write to ``/functions/projects/P/triggers/ID``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable

import httpx
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from shared.registry import PUBLISHED_TOPICS, Document, FunctionSpec


def ensure_topic(publisher: pubsub_v1.PublisherClient, project: str, topic: str) -> str:
    """Create ``topic`` if it does not exist; returns its path."""
    path = publisher.topic_path(project, topic)
    with contextlib.suppress(gexc.AlreadyExists):
        publisher.create_topic(request={"name": path})
    return path


def wire_pubsub(specs: Iterable[FunctionSpec], project: str, base_url: str) -> None:
    """Topics and push subscriptions for every Pub/Sub and scheduled function."""
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    try:
        for topic in PUBLISHED_TOPICS:
            ensure_topic(publisher, project, topic)
        for spec in specs:
            if spec.topic is None:
                continue
            topic_path = ensure_topic(publisher, project, spec.topic)
            sub_path = subscriber.subscription_path(project, f"{spec.name}-push")
            request = {
                "name": sub_path,
                "topic": topic_path,
                "push_config": {"push_endpoint": f"{base_url}/{spec.name}"},
                "ack_deadline_seconds": max(10, min(600, spec.timeout_s)),
            }
            try:
                subscriber.create_subscription(request=request)
            except gexc.AlreadyExists:
                subscriber.modify_push_config(
                    request={"subscription": sub_path, "push_config": request["push_config"]}
                )
    finally:
        subscriber.close()


def wire_firestore(specs: Iterable[FunctionSpec], project: str, firestore_host: str) -> None:
    """Register every document trigger with the Firestore emulator."""
    for spec in specs:
        if not isinstance(spec.trigger, Document):
            continue
        url = (
            f"http://{firestore_host}/emulator/v1/projects/{project}/eventarcTrigger"
            f"?eventarcTriggerId={spec.name}"
        )
        body = {
            "eventType": spec.trigger.event_type,
            "database": "(default)",
            "namespace": "(default)",
            "document": {"value": spec.trigger.pattern, "matchType": "PATH_PATTERN"},
        }
        for attempt in range(5):
            try:
                response = httpx.post(url, json=body, timeout=60)
                response.raise_for_status()
                break
            except httpx.TransportError:
                if attempt == 4:
                    raise
                time.sleep(1 + attempt)
