"""Loss-user actions (credits-admin loss) and what they change: usage-limits over real HTTP
applies the configured lower limit to a ``rate_limited`` user until the action is cleared;
``profit_audit_log`` keeps two years."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from devstack.admin import cli
from shared.admin.accounts import set_loss_action
from shared.analytics.retention import run_retention
from shared.errors import InvalidInput
from shared.settings import override_settings
from tests.usage.conftest import make_user


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def check(stack: Any, tokens: int) -> httpx.Response:
    body = {"user_id": "t1", "tokens": tokens}
    return httpx.post(f"{stack.base_url}/usage-limits/check", json=body, timeout=30)


def _loss_user(db: Any, user_id: str) -> None:
    db.collection("loss_users").document(user_id).set(
        {
            "user_id": user_id,
            "total_profit_usd": -12.5,
            "profit_margin_percent": -40.0,
            "days_in_loss": 3,
            "alert_sent": True,
        }
    )


def test_rate_limited_lowers_the_daily_limit_until_cleared(usage_db, stack, clock) -> None:
    db = usage_db
    make_user(db, "t1")  # trial: 10,000 tokens a day
    _loss_user(db, "t1")
    assert check(stack, 5_000).json()["tokenLimit"] == 10_000
    who = ("--actor", "cfo@example.com", "--reason", "heavy video use on a free plan")
    with override_settings(loss_rate_limited_daily_tokens=1_000):
        assert run("loss", "action", "t1", "rate_limited", *who).exit_code == 0
        limited = check(stack, 1_001)
        assert limited.status_code == 429 and limited.json()["tokenLimit"] == 1_000
        assert check(stack, 1_000).status_code == 200
        assert run("loss", "action", "t1", "monitored", *who).exit_code == 0
        assert check(stack, 5_000).status_code == 200
        assert run("loss", "action", "t1", "rate_limited", *who).exit_code == 0
        assert check(stack, 5_000).status_code == 429
        assert run("loss", "action", "t1", "clear", *who).exit_code == 0
        assert check(stack, 5_000).status_code == 200
    loss = db.collection("loss_users").document("t1").get().to_dict()
    assert loss["action_taken"] is None and loss["notes"] == "heavy video use on a free plan"
    # The clock is fixed, so the records are compared as a set of transitions.
    actions = [s.to_dict() or {} for s in db.collection("admin_actions").stream()]
    assert sorted(repr((a["before"], a["after"])) for a in actions) == sorted(
        repr(t)
        for t in [
            (None, "rate_limited"),
            ("rate_limited", "monitored"),
            ("monitored", "rate_limited"),
            ("rate_limited", None),
        ]
    )
    assert {a["actor"] for a in actions} == {"cfo@example.com"}
    listed = json.loads(run("loss", "list", "--json").output)
    assert [r["user_id"] for r in listed] == ["t1"]


def test_loss_actions_refuse_unknown_users_and_actions(usage_db) -> None:
    result = run("loss", "action", "nobody", "monitored", "--actor", "a", "--reason", "r")
    assert result.exit_code == 2 and "not in loss_users" in result.output
    _loss_user(usage_db, "t2")
    with pytest.raises(InvalidInput):
        set_loss_action(
            usage_db,
            user_id="t2",
            action="deleted",
            actor="a",
            reason="r",
            now=datetime.now(UTC),
        )
    assert "action_taken" not in usage_db.collection("loss_users").document("t2").get().to_dict()


def test_profit_audit_log_keeps_two_years(db) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    log = db.collection("profit_audit_log")
    log.document("old").set(
        {"action_type": "cost_updated", "changed_at": now - timedelta(days=732)}
    )
    log.document("kept").set(
        {"action_type": "cost_updated", "changed_at": now - timedelta(days=700)}
    )
    report = run_retention(db, now)
    assert report.deleted["profit_audit_log"] == 1
    assert [s.id for s in log.stream()] == ["kept"]
