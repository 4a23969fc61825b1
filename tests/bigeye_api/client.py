"""Reusable helpers for tests of the BigEye credit API over real HTTP.

``register_and_login(base_url)`` registers a fresh user and logs in, returning a
``Session`` with the bearer token; ``write_app_settings(db)`` writes the
``system_config/app_settings`` document the API reads (004's example values);
``give_credits(db, user_id, n)`` credits a user through the ledger.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from shared.clock import SystemClock
from shared.ledger import BIGEYE, Kind, Ledger

PASSWORD = "correct-horse-9"

APP_SETTINGS: dict[str, Any] = {
    "prompts": {
        "istock": "Describe the photo for iStock with its controlled vocabulary.",
        "hybrid": "Write 49 hybrid keywords: phrases and single words.",
        "single": "Write 49 single-word keywords.",
    },
    "dictionary": "keyword1\nkeyword2\nkeyword3",
    "dictionary_word_count": 3,
    "dictionary_version": "2026.01",
    "dictionary_updated_at": datetime(2026, 1, 1, tzinfo=UTC),
    "blacklist": ["nike", "adidas", "iphone"],
    "credit_rates": {
        "istock_photo": 3,
        "istock_video": 3,
        "adobe_photo": 2,
        "adobe_video": 2,
        "shutterstock_photo": 2,
        "shutterstock_video": 2,
    },
    "exchange_rate": 4,
    "app_latest_version": "2.0.1",
    "app_download_url": "https://example.com/bigeye/2.0.1",
    "app_update_notes": "Bug fixes and improvements",
    "force_update_below": "1.5.0",
    "maintenance_mode": False,
    "maintenance_message": "",
    "context_cache_threshold": 20,
    "max_concurrent_images": 5,
    "max_concurrent_videos": 2,
    "prompts_version": "7",
    "prompts_updated_at": datetime(2026, 1, 1, tzinfo=UTC),
    "updated_at": datetime(2026, 1, 1, tzinfo=UTC),
}


def api_url(base_url: str, path: str) -> str:
    """``{base_url}/credit-api/api/v1/{path}``."""
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


def register_and_login(base_url: str, **extra: Any) -> Session:
    """Register a new user, log in with the same device, return the session."""
    body = registration(**extra)
    registered = httpx.post(api_url(base_url, "auth/register"), json=body, timeout=30)
    assert registered.status_code == 200, registered.text
    logged_in = httpx.post(
        api_url(base_url, "auth/login"),
        json={
            "email": body["email"],
            "password": body["password"],
            "hardware_id": body["hardware_id"],
        },
        timeout=30,
    )
    assert logged_in.status_code == 200, logged_in.text
    data = logged_in.json()
    return Session(
        base_url,
        data["token"],
        data["user_id"],
        body["email"].lower(),
        body["hardware_id"],
        body=data,
    )


def write_app_settings(db: Any, **changes: Any) -> dict[str, Any]:
    """Write ``system_config/app_settings`` (004's example values plus ``changes``)."""
    doc = {**APP_SETTINGS, **changes}
    db.collection("system_config").document("app_settings").set(doc)
    return doc


def give_credits(db: Any, user_id: str, amount: int, key: str | None = None) -> int:
    """Credit ``amount`` (a BONUS posting); returns the balance after."""
    ledger = Ledger(db, BIGEYE, SystemClock())
    result = ledger.run(
        lambda unit: ledger.credit(
            unit,
            user_id=user_id,
            kind=Kind.BONUS,
            amount=amount,
            key=key or f"test-bonus:{uuid.uuid4()}",
            description="Test credits",
        )
    )
    return result.balance_after
