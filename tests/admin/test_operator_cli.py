"""Operator paths of the CLI not covered next to their services: maintenance on/off (seen
over HTTP by the app) and the clawback shortfalls list."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from click.testing import CliRunner, Result

from devstack.admin import cli
from tests.bigeye_api.client import api_url, write_app_settings

WHO = ("--actor", "ops@example.com", "--reason", "database upgrade")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--profile", "bigeye", *args], catch_exceptions=False)


def test_maintenance_on_and_off_as_the_app_sees_it(db: Any, stack: Any) -> None:
    write_app_settings(db)
    balance = api_url(stack.base_url, "credit/balance")
    check = api_url(stack.base_url, "system/check-update")
    assert httpx.get(balance, timeout=30).status_code == 401  # open: no token

    on = run("maintenance", "on", "--message", "Back at 10:00", *WHO)
    assert on.exit_code == 0 and "now on" in on.output, on.output
    closed = httpx.get(balance, timeout=30)
    assert closed.status_code == 503 and closed.json() == {"detail": "Back at 10:00"}
    told = httpx.post(check, json={"version": "2.0.1"}, timeout=30)
    assert told.status_code == 200
    assert told.json()["maintenance"] is True
    assert told.json()["maintenance_message"] == "Back at 10:00"
    assert "already on" in run("maintenance", "on", *WHO).output

    assert run("maintenance", "off", *WHO).exit_code == 0
    assert httpx.get(balance, timeout=30).status_code == 401
    actions = [s.to_dict() or {} for s in db.collection("admin_actions").stream()]
    assert sorted(a["changes"]["maintenance_mode"]["after"] for a in actions) == [False, True]
    assert {a["actor"] for a in actions} == {"ops@example.com"}


def test_clawback_shortfalls_are_listed_oldest_first(db: Any) -> None:
    assert "no clawback shortfalls" in run("stripe", "shortfalls").output
    now = datetime.now(UTC)
    for event_id, age in (("evt_new", 1), ("evt_old", 5)):
        db.collection("stripe_clawback_shortfalls").document(event_id).set(
            {
                "user_id": "u1",
                "payment_intent_id": "pi_1",
                "original_transaction_id": "t1",
                "refund_transaction_id": "t2",
                "reason": "refund",
                "requested_credits": 500,
                "clawed_credits": 120,
                "shortfall_credits": 380,
                "created_at": now - timedelta(hours=age),
            }
        )
    rows = json.loads(run("stripe", "shortfalls", "--json").output)
    assert [r["event_id"] for r in rows] == ["evt_old", "evt_new"]
    text = run("stripe", "shortfalls").output
    assert "evt_old  u1  refund  asked 500  took 120  short 380" in text
