"""``ip_address`` of operator actions: the console's client address (trusted proxy hops)
reaches ``admin_actions`` and, for an engine cost change, the ``profit_audit_log`` entry the
trigger writes; the CLI records none."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import flask
from click.testing import CliRunner

from devstack.admin import cli
from shared.admin.accounts import set_user_status
from shared.admin.changes import request_ip
from shared.admin.operations import set_engine_cost
from tests.admin.test_admin_cli import seed_engine
from tests.helpers import wait_for

ENGINE = "openai_chat_gpt4"


def _entries(db: Any, actor: str) -> list[dict[str, Any]]:
    return [
        d
        for d in (s.to_dict() or {} for s in db.collection("profit_audit_log").stream())
        if d.get("changed_by") == actor
    ]


def test_console_address_reaches_the_profit_audit_log_and_the_cli_records_none(db) -> None:
    seed_engine(db, ENGINE)
    # A console request behind one proxy: the caller wrote the left hop, the proxy the right.
    app = flask.Flask(__name__)
    headers = {"X-Forwarded-For": "192.0.2.66, 203.0.113.7"}
    with app.test_request_context("/", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.2"}):
        ip = request_ip(flask.request)
    assert ip == "203.0.113.7"
    set_engine_cost(
        db,
        engine_id=ENGINE,
        cost_per_unit=Decimal("0.035"),
        actor="cfo@acme",
        reason="price rise",
        now=datetime.now(UTC),
        ip_address=ip,
    )
    [entry] = wait_for(lambda: _entries(db, "cfo@acme"))
    assert entry["ip_address"] == "203.0.113.7" and entry["reason"] == "price rise"
    [action] = [s.to_dict() for s in db.collection("admin_actions").stream()]
    assert action["action"] == "engine_cost" and action["ip_address"] == "203.0.113.7"

    # The CLI knows no client address: the optional field is left out of the entry.
    out = CliRunner().invoke(
        cli,
        ["--profile", "kitesforu", "engine-cost", ENGINE, "0.04", "--actor", "ops@acme",
         "--reason", "cli change"],
        catch_exceptions=False,
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    [cli_entry] = wait_for(lambda: _entries(db, "ops@acme"))
    assert "ip_address" not in cli_entry and cli_entry["after_value"]["cost_per_unit"] == 0.04

    # Another writer that leaves updated_at and updated_by as they were is not attributed to
    # the console change's address.
    set_engine_cost(
        db,
        engine_id=ENGINE,
        cost_per_unit=Decimal("0.05"),
        actor="cfo@acme",
        reason="again",
        now=datetime.now(UTC),
        ip_address="203.0.113.7",
    )
    wait_for(lambda: len(_entries(db, "cfo@acme")) == 2)
    db.collection("ai_engine_costs").document(ENGINE).update({"cost_per_unit": 0.06})
    [later] = wait_for(
        lambda: [e for e in _entries(db, "cfo@acme") if e["after_value"]["cost_per_unit"] == 0.06]
    )
    assert "ip_address" not in later and later["reason"] == "again"


def test_account_actions_record_the_address_given_and_none_from_the_cli(db) -> None:
    db.collection("users").document("b1").set({"credits": 0, "status": "active"})
    now = datetime.now(UTC)
    set_user_status(
        db, user_id="b1", status="suspended", actor="ops", reason="fraud check", now=now,
        ip_address="198.51.100.4",
    )  # fmt: skip
    result = CliRunner().invoke(
        cli,
        ["--profile", "bigeye", "accounts", "unban", "b1", "--actor", "ops", "--reason", "ok"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    actions = sorted(
        (s.to_dict() for s in db.collection("admin_actions").stream()), key=lambda a: a["action"]
    )
    assert [(a["action"], a["ip_address"]) for a in actions] == [
        ("user_suspended", "198.51.100.4"),
        ("user_unban", None),
    ]


def test_racing_operator_replays_credit_once_with_one_record(db: Any, stack: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from shared.admin.operations import replay_parked
    from tests.admin.test_admin_cli import _park_orphan_checkout, link_customer, replays

    evt = _park_orphan_checkout(db, stack, "cus_race")
    link_customer(db, "u-race", "cus_race")

    def replay(n: int) -> str:
        return replay_parked(
            db,
            event_id=evt["id"],
            actor=f"op{n}@acme",
            reason="customer linked",
            now=datetime.now(UTC),
            ip_address=f"198.51.100.{n}",
            profile="kitesforu",
        ).status

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(replay, range(4)))
    assert statuses.count("applied") == 1, statuses
    assert set(statuses) <= {"applied", "already_replayed", "duplicate"}, statuses
    assert db.collection("users").document("u-race").get().get("credits_balance") == 500
    [record] = replays(db)
    assert record["outcome"] == "applied" and record["credits"] == 500
    winner = statuses.index("applied")
    assert (record["actor"], record["ip_address"]) == (f"op{winner}@acme", f"198.51.100.{winner}")
