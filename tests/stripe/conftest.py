"""Stripe test fixtures: the billing configuration on a wiped emulator."""

from __future__ import annotations

from typing import Any

import pytest

from tests.stripe.support import seed_config


@pytest.fixture
def billing(db: Any) -> Any:
    """The wiped emulator with the demo price map and tier configuration."""
    seed_config(db)
    return db
