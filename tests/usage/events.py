"""Building the exact requests the wiring sends: Pub/Sub pushes and Firestore CloudEvents."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

PROJECT = "demo-test"


def push(stack: Any, function: str, data: bytes, *, message_id: str | None = None) -> int:
    """POST one Pub/Sub push envelope to a function, as the emulator does; the status."""
    envelope = {
        "message": {
            "data": base64.b64encode(data).decode(),
            "messageId": message_id or uuid.uuid4().hex,
            "publishTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "attributes": {},
        },
        "subscription": f"projects/{PROJECT}/subscriptions/{function}-push",
    }
    response = httpx.post(f"{stack.base_url}/{function}", json=envelope, timeout=60)
    return response.status_code


def usage_message(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def _value(value: Any) -> Any:
    from google.events.cloud.firestore import ArrayValue, MapValue, Value

    if value is None:
        return Value(null_value=0)
    if isinstance(value, bool):
        return Value(boolean_value=value)
    if isinstance(value, int):
        return Value(integer_value=value)
    if isinstance(value, float):
        return Value(double_value=value)
    if isinstance(value, str):
        return Value(string_value=value)
    if isinstance(value, datetime):
        return Value(timestamp_value=value)
    if isinstance(value, list):
        return Value(array_value=ArrayValue(values=[_value(v) for v in value]))
    if isinstance(value, dict):
        return Value(map_value=MapValue(fields={k: _value(v) for k, v in value.items()}))
    raise TypeError(type(value))


def _document(path: str, fields: dict[str, Any] | None) -> Any:
    from google.events.cloud.firestore import Document

    name = f"projects/{PROJECT}/databases/(default)/documents/{path}"
    return Document(name=name, fields={k: _value(v) for k, v in (fields or {}).items()})


def firestore_event(
    stack: Any,
    trigger: str,
    path: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    *,
    event_id: str,
    time: datetime | None = None,
) -> int:
    """POST one binary-mode Firestore CloudEvent to a trigger, as the emulator does.

    ``time``: the event's ``ce-time`` (default: now).
    """
    from google.events.cloud.firestore import DocumentEventData

    kwargs: dict[str, Any] = {}
    if before is not None:
        kwargs["old_value"] = _document(path, before)
    if after is not None:
        kwargs["value"] = _document(path, after)
    body = DocumentEventData.serialize(DocumentEventData(**kwargs))
    headers = {
        "ce-id": event_id,
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.firestore.document.v1.written",
        "ce-source": f"//firestore.googleapis.com/projects/{PROJECT}/databases/(default)",
        "ce-subject": f"documents/{path}",
        "ce-time": (time or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "content-type": "application/protobuf",
    }
    url = f"{stack.base_url}/functions/projects/{PROJECT}/triggers/{trigger}"
    response = httpx.post(url, content=base64.b64encode(body), headers=headers, timeout=60)
    return response.status_code
