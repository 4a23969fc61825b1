"""The usage sender against the running stack: what an event became, or why it was rejected."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack import usage_send


def test_usage_send_shows_the_log_the_deduction_and_the_balance(
    demo: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    usage_send.main(["--request-id", "gen-devx-ok", "--credits", "5"])
    out = capsys.readouterr().out
    assert "published to usage-events" in out
    log_line = next(line for line in out.splitlines() if line.startswith("usage_logs/"))
    assert json.loads(log_line.split(": ", 1)[1])["request_id"] == "gen-devx-ok"
    assert "balance of demo_usage_user: 95" in out


def test_usage_send_shows_a_rejection_with_its_request_id_and_reason(
    demo: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        usage_send.main(["--request-id", "gen-devx-bad", "--engine", "no_such_engine"])
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("rejected: request_id=gen-devx-bad by usage-events: "), err[0]
    assert "no_such_engine" in err[0], err[0]
