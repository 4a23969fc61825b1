"""Fixtures of the credit API tests: fast bcrypt, generous rate limits, app settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.bigeye_api.client import fast_accounts, write_app_settings


@pytest.fixture(scope="session")
def fast_settings(stack: Any) -> Iterator[None]:
    with fast_accounts():
        yield


@pytest.fixture
def bigeye(db: Any, fast_settings: None) -> Any:
    """A wiped emulator with ``system_config/app_settings`` written."""
    write_app_settings(db)
    return db
