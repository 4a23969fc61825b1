"""A small client of BigEye's credit API (``credit-api``, ``/api/v1/...``) over real HTTP,
used by the benchmarks and the tests.

``register_and_login(base_url)`` registers a fresh user and logs in with the same device,
returning a ``Session`` that sends the bearer token; ``registration()`` is a valid
register body (a fresh e-mail address and device unless given), ``reserve_body()`` a valid
job reservation.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

PASSWORD = "correct-horse-9"


class BigEyeApiError(RuntimeError):
    """A request that should have succeeded did not (status and body in the message)."""


def api_url(base_url: str, path: str) -> str:
    """``{base_url}/credit-api/api/v1/{path}`` (``base_url``: the functions server)."""
    return f"{base_url}/credit-api/api/v1/{path.lstrip('/')}"


@dataclass(frozen=True)
class Session:
    """A registered, logged-in user."""

    base_url: str
    token: str
    user_id: str
    email: str
    hardware_id: str
    password: str = PASSWORD
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return httpx.get(api_url(self.base_url, path), headers=headers, timeout=30, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return httpx.post(
            api_url(self.base_url, path), json=body, headers=headers, timeout=30, **kwargs
        )


def registration(
    email: str | None = None, hardware_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A valid register body (fresh e-mail and device unless given)."""
    return {
        "email": email or f"user-{uuid.uuid4().hex[:10]}@example.com",
        "password": PASSWORD,
        "full_name": "Test User",
        "phone": "0812345678",
        "hardware_id": hardware_id or f"HW-{uuid.uuid4().hex[:12]}",
        **extra,
    }


def reserve_body(**changes: Any) -> dict[str, Any]:
    """A valid ``POST /api/v1/job/reserve`` body, 004's example (7 files: 5 photos and 2
    videos for iStock, client 2.0.0), with ``changes``."""
    return {
        "file_count": 7,
        "photo_count": 5,
        "video_count": 2,
        "mode": "iStock",
        "keyword_style": None,
        "model": "gemini-2.5-flash",
        "version": "2.0.0",
        **changes,
    }


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise BigEyeApiError(f"{response.request.url}: {response.status_code} {response.text}")
    body: dict[str, Any] = response.json()
    return body


def register_and_login(base_url: str, **extra: Any) -> Session:
    """Register a new user, log in with the same device, return the session."""
    body = registration(**extra)
    _ok(httpx.post(api_url(base_url, "auth/register"), json=body, timeout=30))
    data = _ok(
        httpx.post(
            api_url(base_url, "auth/login"),
            json={
                "email": body["email"],
                "password": body["password"],
                "hardware_id": body["hardware_id"],
            },
            timeout=30,
        )
    )
    return Session(
        base_url,
        data["token"],
        data["user_id"],
        body["email"].lower(),
        body["hardware_id"],
        body=data,
    )
