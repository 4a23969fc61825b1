"""``python -m devstack.stripe_send``: every handled event type and the lifecycle, printed."""

from __future__ import annotations

from typing import Any

import pytest

from devstack import stripe_send as fx
from tests.stripe.support import assert_balance_is_sum, make_user, url, user


@pytest.mark.parametrize("version", [fx.API_VERSION_OLD, fx.LATEST])
def test_lifecycle_command_prints_each_response(
    billing: Any, stack: Any, version: str, capsys: Any
) -> None:
    make_user(billing, "u_cli")
    argv = ["--url", url(stack), "--api-version", version, "lifecycle", "--user", "u_cli"]
    assert fx.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(fx.lifecycle(version, "u_cli"))
    assert all(" 200 " in line and "parked" not in line for line in lines), lines
    assert lines[-1].startswith("cancel")
    assert assert_balance_is_sum(billing, "u_cli") == 1500
    assert user(billing, "u_cli")["tier"] == "FREE"


def test_every_handled_event_type_can_be_sent_and_parked_ones_say_why(
    billing: Any, stack: Any, capsys: Any
) -> None:
    make_user(billing, "demo_stripe_user")
    for event_type in fx.HANDLED:
        assert fx.main(["--url", url(stack), "event", event_type]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(fx.HANDLED)
    by_type = dict(line.split(maxsplit=1) for line in out)
    assert by_type["checkout.session.completed"].startswith("200 applied")
    assert by_type["customer.created"].startswith("200 linked")
    # A refund of a payment never credited: parked, and the printed line says why.
    assert "no credited payment" in by_type["charge.refunded"]
