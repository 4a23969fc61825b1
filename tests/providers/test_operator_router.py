"""Router alerts acknowledged and pipeline_config flags edited through credits-admin."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from click.testing import CliRunner, Result

from devstack.admin import cli
from shared.providers.routing import pipeline_flags
from tests.helpers import all_documents


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def _actions(db: Any) -> list[dict[str, Any]]:
    return [s.to_dict() or {} for s in db.collection("admin_actions").stream()]


def test_acknowledge_a_router_alert_once(db) -> None:
    alerts = db.collection("model_router_alerts")
    base = {
        "type": "CIRCUIT_BREAKER_OPENED",
        "severity": "critical",
        "provider": "openai",
        "message": "circuit opened",
        "context": {},
        "acknowledged": False,
        "created_at": datetime.now(UTC),
        "resolved_at": None,
    }
    alerts.document("a1").set(base)
    alerts.document("a2").set({**base, "provider": "anthropic"})
    listed = json.loads(run("router", "alerts", "--json").output)
    assert sorted(r["alert_id"] for r in listed) == ["a1", "a2"]
    who = ("--actor", "oncall@example.com", "--reason", "failover in place")
    result = run("router", "ack", "a1", *who)
    assert result.exit_code == 0 and "acknowledged" in result.output
    assert alerts.document("a1").get().get("acknowledged") is True
    assert alerts.document("a2").get().get("acknowledged") is False
    again = run("router", "ack", "a1", *who)
    assert "already acknowledged" in again.output
    (action,) = _actions(db)
    assert action["action"] == "router_alert_ack" and action["alert_id"] == "a1"
    assert action["actor"] == "oncall@example.com" and action["provider"] == "openai"
    assert [r["alert_id"] for r in json.loads(run("router", "alerts", "--json").output)] == ["a2"]
    assert run("router", "ack", "nope", *who).exit_code == 2


def test_pipeline_flags_are_edited_with_an_audit_record(db) -> None:
    who = ("--actor", "ops", "--reason", "planner rollout")
    assert pipeline_flags(db)["planner_enabled"] is False
    before = all_documents(db)
    assert run("router", "set-flag", "planner_enabeld", "true", *who).exit_code == 2
    assert all_documents(db) == before
    assert run("router", "set-flag", "planner_enabled", "true", *who).exit_code == 0
    assert pipeline_flags(db)["planner_enabled"] is True
    assert json.loads(run("router", "flags", "--json").output)["planner_enabled"] is True
    assert run("router", "set-flag", "planner_enabled", "true", *who).exit_code == 0
    (action,) = _actions(db)
    assert (action["flag"], action["before"], action["after"]) == ("planner_enabled", None, True)
