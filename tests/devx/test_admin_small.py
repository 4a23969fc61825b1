"""credits-admin details: negative amounts written naturally, history times with their zone."""

from __future__ import annotations

import json
import re
from typing import Any

from click.testing import CliRunner, Result

from devstack.admin import cli
from shared.clock import SystemClock
from shared.ledger import KITESFORU, Kind, Ledger


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--profile", "kitesforu", *args], catch_exceptions=False)


def seed(db: Any, user_id: str, credits: int) -> None:
    db.collection("users").document(user_id).set({"email": "a@example.com", "credits_balance": 0})
    ledger = Ledger(db, KITESFORU, SystemClock())
    ledger.run(
        lambda u: ledger.credit(
            u,
            user_id=user_id,
            kind=Kind.PURCHASE,
            amount=credits,
            key=f"seed:{user_id}",
            description="pack",
        )
    )


def test_adjust_takes_a_negative_amount_as_written(db: Any) -> None:
    seed(db, "neg", 20)
    done = run("adjust", "neg", "-5", "--actor", "ops", "--reason", "typo", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["balance_after"] == 15
    after_options = run("adjust", "neg", "--actor", "ops", "--reason", "typo 2", "-3")
    assert after_options.exit_code == 0, after_options.output
    assert "balance after: 12" in after_options.output


def test_history_labels_its_time_zone(db: Any) -> None:
    seed(db, "tz", 10)
    utc = run("history", "tz")
    assert utc.exit_code == 0, utc.output
    stamp = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC ", utc.output)
    assert stamp, utc.output
    bangkok = run("history", "tz", "--tz", "Asia/Bangkok")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d Asia/Bangkok ", bangkok.output)
    assert bangkok.output != utc.output
    bad = run("history", "tz", "--tz", "Mars/Base")
    assert bad.exit_code == 2 and "time zone" in bad.output
