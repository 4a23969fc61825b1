"""Reusable helpers for tests of the BigEye credit API over real HTTP.

The HTTP client is ``devstack.bigeye_client`` (``register_and_login``, ``Session``,
``registration``, ``api_url``, re-exported here); ``write_app_settings(db)`` writes the
``system_config/app_settings`` document the API reads (004's example values, with the test
prompts and dictionary below); ``give_credits(db, user_id, n)`` credits a user through the
ledger; ``fast_accounts()`` makes registrations cheap and lifts the rate limits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from devstack.bigeye_client import PASSWORD, Session, api_url, register_and_login, registration
from devstack.demo.bigeye import app_settings
from shared.clock import SystemClock
from shared.ledger import BIGEYE, Kind, Ledger
from shared.settings import override_settings

__all__ = [
    "APP_SETTINGS",
    "PASSWORD",
    "Session",
    "api_url",
    "fast_accounts",
    "give_credits",
    "register_and_login",
    "registration",
    "write_app_settings",
]

APP_SETTINGS: dict[str, Any] = app_settings(
    datetime(2026, 1, 1, tzinfo=UTC),
    prompts={
        "istock": "Describe the photo for iStock with its controlled vocabulary.",
        "hybrid": "Write 49 hybrid keywords: phrases and single words.",
        "single": "Write 49 single-word keywords.",
    },
    dictionary="keyword1\nkeyword2\nkeyword3",
    dictionary_word_count=3,
    dictionary_version="2026.01",
    app_download_url="https://example.com/bigeye/2.0.1",
    force_update_below="1.5.0",
    prompts_version="7",
)


@contextmanager
def fast_accounts() -> Iterator[None]:
    """bcrypt's cheapest cost keeps registrations fast; the rate limits out of the way
    (tests that check a limit lower it themselves)."""
    with override_settings(
        bcrypt_rounds=4,
        rate_limit_ip_per_min=100_000,
        rate_limit_auth_ip_per_min=100_000,
        rate_limit_user_per_min=100_000,
        rate_limit_topup_user_per_min=100_000,
    ):
        yield


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
