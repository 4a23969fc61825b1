"""Decoding of the events functions receive: Pub/Sub envelopes and Firestore CloudEvents.

Firestore (2nd gen, Eventarc) delivers ``DocumentEventData`` protobuf in binary mode; it is
turned into plain Python values here (maps, lists, ints, floats, strings, bytes, aware
datetimes, references as paths, geo points as ``{"latitude", "longitude"}``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared import jsonsafe
from shared.clock import ensure_utc, parse_instant
from shared.errors import InvalidInput


@dataclass(frozen=True)
class PubSubMessage:
    """One Pub/Sub message as a function sees it."""

    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: datetime | None

    def json(self) -> Any:
        """The message data parsed as UTF-8 JSON, or InvalidInput."""
        return jsonsafe.loads(self.data, what="the message data")


def pubsub_message(cloud_event: Any) -> PubSubMessage:
    """The message inside a ``google.cloud.pubsub.topic.v1.messagePublished`` CloudEvent."""
    envelope = cloud_event.data
    if isinstance(envelope, bytes | str):
        envelope = jsonsafe.loads(envelope, what="the Pub/Sub envelope")
    if not isinstance(envelope, dict) or not isinstance(envelope.get("message"), dict):
        raise InvalidInput("the Pub/Sub envelope has no message")
    message = envelope["message"]
    raw = message.get("data") or ""
    try:
        data = base64.b64decode(raw, validate=True) if raw else b""
    except (binascii.Error, ValueError):
        raise InvalidInput("the message data is not base64") from None
    publish_time_text = message.get("publishTime") or message.get("publish_time")
    publish_time = None
    if isinstance(publish_time_text, str):
        try:
            publish_time = parse_instant(publish_time_text)
        except ValueError:
            publish_time = None
    attributes = message.get("attributes") or {}
    return PubSubMessage(
        message_id=str(message.get("messageId") or message.get("message_id") or ""),
        data=data,
        attributes={str(k): str(v) for k, v in attributes.items()},
        publish_time=publish_time,
    )


def firestore_value(value: Any) -> Any:
    """A ``google.events.cloud.firestore_v1.Value`` as a plain Python value."""
    from google.events.cloud.firestore_v1.types import Value

    pb = Value.pb(value) if isinstance(value, Value) else value
    kind = pb.WhichOneof("value_type")
    if kind is None or kind == "null_value":
        return None
    if kind == "boolean_value":
        return pb.boolean_value
    if kind == "integer_value":
        return int(pb.integer_value)
    if kind == "double_value":
        return float(pb.double_value)
    if kind == "timestamp_value":
        return ensure_utc(pb.timestamp_value.ToDatetime())
    if kind == "string_value":
        return pb.string_value
    if kind == "bytes_value":
        return bytes(pb.bytes_value)
    if kind == "reference_value":
        return pb.reference_value
    if kind == "geo_point_value":
        return {"latitude": pb.geo_point_value.latitude, "longitude": pb.geo_point_value.longitude}
    if kind == "array_value":
        return [firestore_value(v) for v in pb.array_value.values]
    if kind == "map_value":
        return {k: firestore_value(v) for k, v in pb.map_value.fields.items()}
    raise ValueError(f"unsupported Firestore value type {kind}")


@dataclass(frozen=True)
class DocumentChange:
    """A Firestore document event: the document before and after, as plain dicts."""

    event_id: str
    event_type: str
    path: str  # e.g. "podcast_jobs/job-1"
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    time: datetime | None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def document_id(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def created(self) -> bool:
        return self.before is None and self.after is not None

    @property
    def deleted(self) -> bool:
        return self.after is None


def _fields(document: Any) -> dict[str, Any] | None:
    if document is None or not document.name:
        return None
    return {k: firestore_value(v) for k, v in document.fields.items()}


def document_change(cloud_event: Any) -> DocumentChange:
    """Decode a ``google.cloud.firestore.document.v1.*`` CloudEvent."""
    from google.events.cloud.firestore import DocumentEventData

    raw = cloud_event.data
    if isinstance(raw, str):
        raw = raw.encode("latin-1")
    if not isinstance(raw, bytes | bytearray):
        raise InvalidInput("a Firestore event must carry protobuf bytes")
    try:
        payload = DocumentEventData.deserialize(bytes(raw))
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise InvalidInput(f"not a DocumentEventData payload: {exc}") from None
    before = _fields(payload.old_value) if "old_value" in payload else None
    after = _fields(payload.value) if "value" in payload else None
    name = (payload.value.name if after is not None else payload.old_value.name) or ""
    path = name.split("/documents/", 1)[-1] if "/documents/" in name else name
    subject = cloud_event.get("subject") or ""
    if not path and subject.startswith("documents/"):
        path = subject[len("documents/") :]
    time_text = cloud_event.get("time")
    return DocumentChange(
        event_id=str(cloud_event.get("id") or ""),
        event_type=str(cloud_event.get("type") or ""),
        path=path,
        before=before,
        after=after,
        time=parse_instant(time_text) if isinstance(time_text, str) else None,
    )
