"""The Slip2Go stand-in speaks the documented protocol; the client maps its codes."""

from __future__ import annotations

import base64
from decimal import Decimal

import httpx
import pytest

from shared.bigeye.slip2go import (
    Outcome,
    Receiver,
    Slip2GoClient,
    account_matches,
    configured_receivers,
    outcome_of,
)
from shared.settings import get_settings
from tests.bigeye_money.conftest import make_slip

RECEIVERS = (Receiver("01004", "1234567890"),)


def _post(standin, body, secret=None):
    secret = secret or get_settings().slip2go_api_secret.get_secret_value()
    return httpx.post(
        f"{standin.url}/verify-slip/qr-base64/info",
        json=body,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    )


def test_the_stack_points_slip2go_at_the_standin(standin) -> None:
    assert get_settings().slip2go_base_url == standin.url


def test_codes_for_each_condition(standin) -> None:
    client = Slip2GoClient()
    ok = client.verify(make_slip("S-1", 500), amount=Decimal(500), receivers=RECEIVERS)
    assert (ok.code, ok.outcome) == ("200200", Outcome.VALID)
    assert ok.slip is not None and ok.slip.trans_ref == "S-1" and ok.slip.amount == 500
    assert ok.slip.receiver_account == "xxx-x-x6789-x"
    assert ok.slip.sender_name == "Somchai Jaidee"
    dup = client.verify(make_slip("S-1", 500), amount=Decimal(500), receivers=RECEIVERS)
    assert (dup.code, dup.outcome) == ("200501", Outcome.DUPLICATE)
    assert dup.slip is not None and dup.slip.trans_ref == "S-1"
    amount = client.verify(make_slip("S-2", 300), amount=Decimal(500), receivers=RECEIVERS)
    assert (amount.code, amount.outcome) == ("200402", Outcome.WRONG_AMOUNT)
    receiver = client.verify(
        make_slip("S-3", 500, account="xxx-x-x1111-x"), amount=Decimal(500), receivers=RECEIVERS
    )
    assert (receiver.code, receiver.outcome) == ("200401", Outcome.WRONG_RECEIVER)
    # A rejected slip is not remembered: the corrected request passes.
    again = client.verify(make_slip("S-2", 300), amount=Decimal(300), receivers=RECEIVERS)
    assert again.code == "200200"
    junk = client.verify(
        "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode(),
        amount=Decimal(1),
        receivers=RECEIVERS,
    )
    assert (junk.code, junk.outcome) == ("200404", Outcome.NOT_FOUND)


def test_protocol_errors_over_http(standin) -> None:
    wrong = _post(standin, {"payload": {"imageBase64": make_slip("S-9")}}, secret="nope")
    assert wrong.status_code == 401 and wrong.json()["code"] == "401001"
    assert _post(standin, {"nothing": 1}).json()["code"] == "400001"
    no_condition = _post(standin, {"payload": {"imageBase64": make_slip("S-9")}})
    assert no_condition.json()["code"] == "200000"
    date = _post(
        standin,
        {
            "payload": {
                "imageBase64": make_slip("S-10"),
                "checkCondition": {"checkDate": {"type": "eq", "date": "2026-02-09T00:00:00Z"}},
            }
        },
    )
    assert date.json()["code"] == "200403"
    standin.quota_remaining = 1
    first = _post(
        standin,
        {"payload": {"imageBase64": make_slip("S-11"), "checkCondition": {"checkDuplicate": True}}},
    )
    assert first.json()["code"] == "200200"
    reference = first.json()["data"]["referenceId"]
    out = _post(standin, {"payload": {"imageBase64": make_slip("S-12")}})
    assert out.status_code == 401 and out.json()["code"] == "401005"
    secret = get_settings().slip2go_api_secret.get_secret_value()
    reread = httpx.get(
        f"{standin.url}/verify-slip/{reference}",
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    )
    assert reread.json()["data"]["transRef"] == "S-11"
    info = httpx.get(
        f"{standin.url}/account/info", headers={"Authorization": f"Bearer {secret}"}, timeout=10
    ).json()
    assert info["data"]["quotaRemaining"] == 0


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("200200", Outcome.VALID),
        ("200000", Outcome.VALID),
        ("200401", Outcome.WRONG_RECEIVER),
        ("200402", Outcome.WRONG_AMOUNT),
        ("200403", Outcome.WRONG_DATE),
        ("200404", Outcome.NOT_FOUND),
        ("200501", Outcome.DUPLICATE),
        ("400001", Outcome.BAD_REQUEST),
        ("400400", Outcome.BAD_REQUEST),
        ("401001", Outcome.UNAVAILABLE),
        ("401004", Outcome.UNAVAILABLE),
        ("401005", Outcome.UNAVAILABLE),
        ("401006", Outcome.UNAVAILABLE),
        ("401007", Outcome.UNAVAILABLE),
        ("500500", Outcome.UNAVAILABLE),
        ("999999", Outcome.UNAVAILABLE),
    ],
)
def test_every_documented_code_maps_to_an_outcome(code, outcome) -> None:
    assert outcome_of(code) is outcome


def test_unreachable_or_non_json_answers_are_unavailable(standin) -> None:
    down = Slip2GoClient(base_url="http://127.0.0.1:9/api", timeout_s=2).verify(
        make_slip("S-20"), amount=Decimal(500), receivers=RECEIVERS
    )
    assert down.outcome is Outcome.UNAVAILABLE
    html = Slip2GoClient(base_url=standin.url + "/nowhere").verify(
        make_slip("S-21"), amount=Decimal(500), receivers=RECEIVERS
    )
    assert html.outcome is not Outcome.VALID


@pytest.mark.parametrize(
    ("shown", "number", "match"),
    [
        ("xxx-x-x6789-x", "1234567890", True),
        ("123-4-56789-0", "1234567890", True),
        ("xxx-x-x6788-x", "1234567890", False),
        ("xxx-x-xxxxx-x", "1234567890", False),
        ("xxx-xxx-5678", "0812345678", True),
        ("12345", "1234567890", False),
        ("", "1234567890", False),
        (None, "1234567890", False),
    ],
)
def test_masked_account_matching(shown, number, match) -> None:
    assert account_matches(shown, number) is match


def test_receiver_accounts_setting() -> None:
    assert configured_receivers()[0].account_number == "1234567890"
    for bad in ("", "{}", "[]", '[{"accountType": "01004"}]'):
        with pytest.raises(ValueError):
            configured_receivers(bad)


def test_standin_starts_and_stops_cleanly_without_touching_a_set_base_url(monkeypatch) -> None:
    import socket
    from types import SimpleNamespace

    from devstack.slip2go_standin import start

    monkeypatch.setenv("SLIP2GO_BASE_URL", "https://connect.slip2go.com/api")
    monkeypatch.delenv("SLIP2GO_STANDIN_PORT", raising=False)
    started = start(SimpleNamespace(config=SimpleNamespace(host="127.0.0.1")))
    port = started.standin.port
    secret = get_settings().slip2go_api_secret.get_secret_value()
    info = httpx.get(
        f"{started.url}/account/info", headers={"Authorization": f"Bearer {secret}"}, timeout=10
    )
    assert info.status_code == 200
    started.stop()
    import os

    assert os.environ["SLIP2GO_BASE_URL"] == "https://connect.slip2go.com/api"
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", port))  # nothing listens there any more
