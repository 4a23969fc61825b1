"""The production event formats: raw DocumentEventData in binary mode, and value decoding."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
from google.events.cloud.firestore import DocumentEventData
from google.events.cloud.firestore_v1.types import ArrayValue, Document, MapValue, Value
from google.protobuf.timestamp_pb2 import Timestamp

from shared.clock import SystemClock
from shared.events import firestore_value
from shared.ledger import KITESFORU, Kind, Ledger, Refs
from tests.conftest import PROJECT
from tests.helpers import wait_for


def _doc(name: str, fields: dict[str, Value]) -> Document:
    return Document(name=name, fields=fields)


def _event(before: Document | None, after: Document | None) -> bytes:
    data = DocumentEventData()
    if before is not None:
        data.old_value = before
    if after is not None:
        data.value = after
    return DocumentEventData.serialize(data)


def _headers(subject: str) -> dict[str, str]:
    return {
        "ce-id": str(uuid.uuid4()),
        "ce-specversion": "1.0",
        "ce-source": f"//firestore.googleapis.com/projects/{PROJECT}/databases/(default)",
        "ce-type": "google.cloud.firestore.document.v1.written",
        "ce-subject": subject,
        "ce-time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "content-type": "application/protobuf",
    }


def test_raw_protobuf_event_as_eventarc_sends_it(db, stack) -> None:  # type: ignore[no-untyped-def]
    ledger = Ledger(db, KITESFORU, SystemClock())
    db.collection("users").document("u9").set({"email": "u9@example.com"})
    ledger.run(
        lambda u: ledger.credit(
            u, user_id="u9", kind=Kind.PURCHASE, amount=50, key="c", description="Pack"
        )
    )
    ledger.run(
        lambda u: ledger.debit(
            u, user_id="u9", amount=20, key="d", description="Job", refs=Refs(job_id="pj")
        )
    )
    name = f"projects/{PROJECT}/databases/(default)/documents/podcast_jobs/pj"
    fields = {
        "user_id": Value(string_value="u9"),
        "credits_deducted": Value(integer_value=20),
    }
    before = _doc(name, fields | {"status": Value(string_value="processing")})
    after = _doc(name, fields | {"status": Value(string_value="failed")})
    body = _event(before, after)
    # Delivered twice, directly at the function's URL, as Eventarc would (no base64).
    for _ in range(2):
        response = httpx.post(
            f"{stack.base_url}/on-podcast-job-failed",
            content=body,
            headers=_headers("documents/podcast_jobs/pj"),
            timeout=10,
        )
        assert response.status_code == 200, response.text
    wait_for(lambda: db.collection("users").document("u9").get().get("credits_balance") == 50)
    refunds = [
        s for s in db.collection("credit_transactions").stream() if s.get("type") == "REFUND"
    ]
    assert len(refunds) == 1


def test_garbage_event_body_is_acknowledged_without_writes(db, stack) -> None:  # type: ignore[no-untyped-def]
    response = httpx.post(
        f"{stack.base_url}/on-course-failed",
        content=b"\xff\x00not protobuf",
        headers=_headers("documents/courses/c1"),
        timeout=10,
    )
    assert response.status_code == 200
    assert list(db.collection("credit_transactions").stream()) == []


def test_every_firestore_value_type_decodes() -> None:
    ts = Timestamp()
    ts.FromDatetime(datetime(2026, 1, 4, 10, 0, 0))
    value = Value(
        map_value=MapValue(
            fields={
                "null": Value(null_value=0),
                "bool": Value(boolean_value=True),
                "int": Value(integer_value=7),
                "float": Value(double_value=0.167),
                "time": Value(timestamp_value=ts),
                "text": Value(string_value="ข้อความ"),
                "bytes": Value(bytes_value=b"\x01"),
                "ref": Value(reference_value="projects/p/databases/(default)/documents/a/b"),
                "list": Value(array_value=ArrayValue(values=[Value(integer_value=1)])),
            }
        )
    )
    assert firestore_value(value) == {
        "null": None,
        "bool": True,
        "int": 7,
        "float": 0.167,
        "time": datetime(2026, 1, 4, 10, 0, tzinfo=UTC),
        "text": "ข้อความ",
        "bytes": b"\x01",
        "ref": "projects/p/databases/(default)/documents/a/b",
        "list": [1],
    }
