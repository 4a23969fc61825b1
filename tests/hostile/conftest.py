"""Attack tests: each drives the public interface (HTTP, Pub/Sub push, Firestore REST with
the rules loaded) with input an attacker controls, and checks nothing was minted, leaked or
locked up."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shared.settings import override_settings
from tests.bigeye_money.conftest import bare, money, standin  # noqa: F401  (fixtures)


@pytest.fixture
def fast_accounts(stack: Any) -> Iterator[None]:
    """bcrypt's cheapest cost keeps registrations fast; the per-IP limits out of the way."""
    with override_settings(
        bcrypt_rounds=4,
        rate_limit_ip_per_min=100_000,
        rate_limit_auth_ip_per_min=100_000,
        rate_limit_user_per_min=100_000,
        rate_limit_topup_user_per_min=100_000,
    ):
        yield
