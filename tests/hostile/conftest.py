"""Attack tests: each drives the public interface (HTTP, Pub/Sub push, Firestore REST with
the rules loaded) with input an attacker controls, and checks nothing was minted, leaked or
locked up."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.bigeye_api import client as bigeye_client
from tests.bigeye_money.conftest import bare, money, standin  # noqa: F401  (fixtures)
from tests.usage.conftest import usage_db  # noqa: F401  (fixture)


@pytest.fixture
def fast_accounts(stack: Any) -> Iterator[None]:
    """bcrypt's cheapest cost keeps registrations fast; the per-IP limits out of the way."""
    with bigeye_client.fast_accounts():
        yield
