"""Fixtures of the credit API tests: fast bcrypt, generous rate limits, app settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shared.settings import override_settings
from tests.bigeye_api.client import write_app_settings


@pytest.fixture(scope="session")
def fast_settings(stack: Any) -> Iterator[None]:
    # bcrypt's cheapest cost keeps registrations fast; limits are lowered per test.
    with override_settings(
        bcrypt_rounds=4,
        rate_limit_ip_per_min=100_000,
        rate_limit_auth_ip_per_min=100_000,
        rate_limit_user_per_min=100_000,
        rate_limit_topup_user_per_min=100_000,
    ):
        yield


@pytest.fixture
def bigeye(db: Any, fast_settings: None) -> Any:
    """A wiped emulator with ``system_config/app_settings`` written."""
    write_app_settings(db)
    return db
