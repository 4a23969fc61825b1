"""Fixtures of the ledger-api tests: the typed client against the served function."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google.cloud.firestore import FieldFilter

from shared.ledgerapi.client import LedgerApiClient


@pytest.fixture
def api(stack: Any, db: Any) -> Iterator[LedgerApiClient]:
    """The vendorable client on ``/ledger-api`` of a freshly wiped stack."""
    with LedgerApiClient(f"{stack.base_url}/ledger-api") as client:
        yield client


def make_user(db: Any, user_id: str, balance: int = 0, **fields: Any) -> str:
    """A KitesForU user (000's ledger fields) with ``balance`` credits."""
    db.collection("users").document(user_id).set(
        {
            "email": f"{user_id}@example.com",
            "credits_balance": balance,
            "total_credits_used": 0,
            "total_credits_purchased": 0,
            **fields,
        }
    )
    return user_id


def transactions(db: Any, user_id: str, collection: str = "credit_transactions") -> list[dict]:
    coll = db.collection(collection)
    return [s.to_dict() for s in coll.where(filter=FieldFilter("user_id", "==", user_id)).stream()]


def balance(db: Any, user_id: str, field: str = "credits_balance") -> int:
    return int(db.collection("users").document(user_id).get().get(field))
