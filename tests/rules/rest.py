"""A minimal Firestore REST client for rules tests: unsigned ID tokens, typed values.

The Python client always authenticates as ``owner`` (rules bypassed); the emulator's REST
API with ``Authorization: Bearer <unsigned JWT>`` evaluates the rules as that user.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

RULES_FILE = Path(__file__).resolve().parents[2] / "firestore.rules"


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned_token(project: str, uid: str, **claims: Any) -> str:
    """An unsigned Firebase ID token for ``uid`` with extra custom ``claims``."""
    now = int(time.time())
    payload = {
        "sub": uid,
        "user_id": uid,
        "iss": f"https://securetoken.google.com/{project}",
        "aud": project,
        "iat": now,
        "exp": now + 3600,
        "auth_time": now,
        "firebase": {"sign_in_provider": "custom", "identities": {}},
        **claims,
    }
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}."


def encode(value: Any) -> dict[str, Any]:
    """A Python value as a Firestore REST ``Value``."""
    if value is None:
        return {"nullValue": None}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"integerValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, datetime):
        return {"timestampValue": value.isoformat().replace("+00:00", "Z")}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [encode(v) for v in value]}}
    if isinstance(value, dict):
        return {"mapValue": {"fields": {k: encode(v) for k, v in value.items()}}}
    raise TypeError(f"cannot encode {type(value).__name__}")


class RulesClient:
    """Firestore REST calls as one (possibly anonymous) caller."""

    def __init__(self, host: str, project: str, token: str | None) -> None:
        self.base = f"http://{host}/v1/projects/{project}/databases/(default)/documents"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(timeout=60)

    def get(self, path: str) -> httpx.Response:
        return self.http.get(f"{self.base}/{path}", headers=self.headers)

    def list(self, collection: str, where: tuple[str, Any] | None = None) -> httpx.Response:
        query: dict[str, Any] = {"from": [{"collectionId": collection}]}
        if where is not None:
            query["where"] = {
                "fieldFilter": {
                    "field": {"fieldPath": where[0]},
                    "op": "EQUAL",
                    "value": encode(where[1]),
                }
            }
        return self.http.post(
            f"{self.base}:runQuery", headers=self.headers, json={"structuredQuery": query}
        )

    def create(self, path: str, data: dict[str, Any]) -> httpx.Response:
        collection, doc_id = path.rsplit("/", 1)
        return self.http.post(
            f"{self.base}/{collection}",
            params={"documentId": doc_id},
            headers=self.headers,
            json={"fields": {k: encode(v) for k, v in data.items()}},
        )

    def update(self, path: str, data: dict[str, Any]) -> httpx.Response:
        """Update (merge) the given top-level fields of an existing document."""
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("updateMask.fieldPaths", k) for k in data
        ]
        params.append(("currentDocument.exists", "true"))
        return self.http.patch(
            f"{self.base}/{path}",
            params=params,
            headers=self.headers,
            json={"fields": {k: encode(v) for k, v in data.items()}},
        )

    def delete(self, path: str) -> httpx.Response:
        return self.http.delete(f"{self.base}/{path}", headers=self.headers)


def load_rules(host: str, project: str, text: str | None = None) -> None:
    """Load ``firestore.rules`` (or ``text``) into the emulator; raises on a syntax error."""
    content = RULES_FILE.read_text() if text is None else text
    response = httpx.put(
        f"http://{host}/emulator/v1/projects/{project}:securityRules",
        json={"rules": {"files": [{"name": "firestore.rules", "content": content}]}},
        timeout=30,
    )
    if response.status_code != 200:
        raise AssertionError(f"rules rejected: {response.status_code} {response.text[:2000]}")
