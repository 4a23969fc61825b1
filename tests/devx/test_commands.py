"""One command per chore on the running stack: trigger a schedule, send provider events,
show data, reset the demo data."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner

from devstack import provider_send
from devstack.__main__ import cli as devstack_cli
from devstack.admin import cli as admin_cli
from devstack.trigger import TriggerError, build_message


@pytest.fixture
def outcomes_logged() -> Iterator[None]:
    """The stack reports outcomes from INFO lines; the test session logs WARNING and up."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    yield
    root.setLevel(level)


def test_build_message_periods() -> None:
    today = datetime(2026, 3, 10, tzinfo=UTC).date()
    assert build_message("cron-daily-rollup", today=today) == ({}, None)
    assert build_message("cron-daily-rollup", day="2026-03-09", today=today) == (
        {"date": "2026-03-09"},
        None,
    )
    message, partial = build_message("cron-daily-rollup", day="2026-03-10", today=today)
    assert message == {"date": "2026-03-10"} and partial and "has not ended" in partial
    message, partial = build_message("cron-monthly-rollup", month="2026-03", today=today)
    assert message == {"month": "2026-03"} and partial
    assert build_message("cron-monthly-rollup", month="2026-02", today=today)[1] is None
    for bad in (
        lambda: build_message("cron-nope"),
        lambda: build_message("cron-daily-rollup", month="2026-03"),
        lambda: build_message("cron-daily-rollup", day="10/03/2026"),
        lambda: build_message("cron-expire-jobs", day="2026-03-09"),
        lambda: build_message("cron-reconcile", data="[1]"),
    ):
        with pytest.raises(TriggerError):
            bad()


def test_trigger_runs_todays_rollup_marked_partial(demo: Any, outcomes_logged: None) -> None:
    today = datetime.now(UTC).date()
    result = CliRunner().invoke(
        devstack_cli, ["trigger", "cron-daily-rollup", "--date", today.isoformat()]
    )
    assert result.exit_code == 0, result.output
    assert f"published {json.dumps({'date': today.isoformat()})}" in result.output
    assert "partial:" in result.output and "done:" in result.output
    doc = demo.collection("profit_aggregates").document(f"daily_{today:%Y_%m_%d}").get()
    assert doc.exists


def test_trigger_shows_a_rejected_message(demo: Any, outcomes_logged: None) -> None:
    result = CliRunner().invoke(
        devstack_cli, ["trigger", "cron-daily-rollup", "--data", '{"day": "2026-01-04"}']
    )
    assert result.exit_code == 1, result.output
    assert "rejected:" in result.output and "day" in result.output


def test_unknown_schedule_lists_the_schedules(demo: Any) -> None:
    result = CliRunner().invoke(devstack_cli, ["trigger", "cron-nope"])
    assert result.exit_code == 2 and "cron-daily-rollup" in result.output


def test_provider_send_shows_each_event_and_the_provider_state(
    demo: Any, outcomes_logged: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = provider_send.main(["--provider", "anthropic", "--model", "claude-sonnet-4"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "event_id=pe-" in out and "success" in out
    assert "model_provider_health/anthropic: {" in out
    dup = provider_send.main(["--provider", "anthropic", "--event-id", "pe-dup", "--count", "2"])
    out = capsys.readouterr().out
    assert dup == 0 and "duplicate=True" in out.splitlines()[1], out
    bad = provider_send.main(["--outcome", "exploded"])
    err = capsys.readouterr().err
    assert bad == 1 and err.startswith("rejected: event_id=pe-"), err


def test_show_and_reset(demo: Any) -> None:
    runner = CliRunner()
    one = runner.invoke(admin_cli, ["show", "ai_engine_costs/dalle_3_standard"])
    assert one.exit_code == 0, one.output
    assert one.output.splitlines()[0] == "ai_engine_costs/dalle_3_standard"
    assert "  cost_per_unit: 0.04" in one.output and '  provider_name: "OpenAI"' in one.output
    nested = runner.invoke(admin_cli, ["show", "system_config/app_settings"])
    assert "  credit_rates.istock_photo: 3" in nested.output
    many = json.loads(runner.invoke(admin_cli, ["show", "ai_engine_costs", "--json"]).output)
    assert len(many) == 7 and all(r["path"].startswith("ai_engine_costs/") for r in many)
    missing = runner.invoke(admin_cli, ["show", "users/nobody"])
    assert missing.exit_code == 2 and "no document users/nobody" in missing.output

    demo.collection("users").document("scratch").set({"email": "x@example.com"})
    demo.collection("ai_engine_costs").document("dalle_3_standard").update({"cost_per_unit": 9})
    kept = runner.invoke(devstack_cli, ["reset", "--keep-data"])
    assert kept.exit_code == 0, kept.output
    assert demo.document("users/scratch").get().exists
    assert demo.document("ai_engine_costs/dalle_3_standard").get().get("cost_per_unit") == 0.04
    wiped = runner.invoke(devstack_cli, ["reset"])
    assert wiped.exit_code == 0, wiped.output
    assert not demo.document("users/scratch").get().exists
    assert demo.document("system_config/app_settings").get().exists
