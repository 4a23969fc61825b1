"""Fixtures of the BigEye money tests: the Slip2Go stand-in, demo data, users and slips."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from devstack.slip2go_standin import Slip2GoStandIn, find
from tests.helpers import triggers_settled

#: The demo receiver account (SLIP2GO_RECEIVER_ACCOUNTS default) as a slip shows it, masked.
DEMO_RECEIVER_SHOWN = "xxx-x-x6789-x"


def make_slip(
    trans_ref: str,
    amount: float | int | str = 500,
    *,
    account: str = DEMO_RECEIVER_SHOWN,
    when: str = "2026-02-08T10:00:00Z",
    sender: str = "Somchai Jaidee",
) -> str:
    """A test slip (docs/contract.md, test slips): a data URL around the slip's JSON."""
    content = {
        "transRef": trans_ref,
        "amount": amount,
        "dateTime": when,
        "receiver": {"account": account},
        "sender": {"name": sender},
    }
    encoded = base64.b64encode(json.dumps(content).encode()).decode()
    return f"data:image/jpeg;base64,{encoded}"


def make_user(db: Any, user_id: str, **fields: Any) -> str:
    """A BigEye user document (fields of 004)."""
    doc = {
        "email": f"{user_id}@example.com",
        "password_hash": "x",
        "full_name": "Test User",
        "phone": "0800000000",
        "hardware_id": f"hw-{user_id}",
        "tier": "standard",
        "credits": 0,
        "status": "active",
        "created_at": datetime.now(UTC),
        "last_login": None,
        "last_active": None,
        "total_topup_baht": 0,
        "total_credits_used": 0,
        "app_version": "2.0.0",
        "metadata": {"os": "Windows", "registration_ip": "127.0.0.1", "notes": ""},
    }
    doc.update(fields)
    db.collection("users").document(user_id).set(doc)
    return user_id


@pytest.fixture
def standin(stack) -> Iterator[Slip2GoStandIn]:  # type: ignore[no-untyped-def]
    """The stack's Slip2Go stand-in, with a clean memory."""
    found = find(stack.services)
    assert found is not None, "the stack did not start the Slip2Go stand-in"
    found.reset()
    yield found
    found.reset()


@pytest.fixture
def money(db, stack, standin):  # type: ignore[no-untyped-def]
    """A wiped emulator with the BigEye demo configuration (app settings, 004's promotion),
    once every trigger event the seeding owes has been handled (a counted barrier)."""
    from devstack.demo import bigeye

    with triggers_settled(stack):
        bigeye.seed(db, datetime.now(UTC))
    return db


@pytest.fixture
def bare(db, stack, standin):  # type: ignore[no-untyped-def]
    """A wiped emulator with no demo data, nothing published unacknowledged and no request
    in flight (``Stack.wait_settled``)."""
    stack.wait_settled()
    return db
