"""Finding 4, the bank: the receiver's account digits are not enough when Slip2Go names the
receiver's bank; a slip paid to the same digits at another bank is REJECTED with the reason."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from shared.bigeye.slip2go import (
    Outcome,
    bank_code,
    configured_receivers,
    receiver_outcome,
    slip_data,
)
from tests.bigeye_api.client import register_and_login
from tests.bigeye_money.conftest import DEMO_RECEIVER_SHOWN


def _slip(trans_ref: str, amount: int, bank: str | None) -> str:
    receiver: dict[str, Any] = {"account": DEMO_RECEIVER_SHOWN}
    if bank is not None:
        receiver["bank"] = bank
    content = {
        "transRef": trans_ref,
        "amount": amount,
        "dateTime": "2026-02-08T10:00:00Z",
        "receiver": receiver,
        "sender": {"name": "Somchai Jaidee"},
    }
    return "data:image/jpeg;base64," + base64.b64encode(json.dumps(content).encode()).decode()


def test_same_digits_at_another_bank_are_rejected(
    stack: Any, money: Any, standin: Any, fast_accounts: None
) -> None:
    session = register_and_login(stack.base_url)
    # The demo account is KBank (01004) 123-4-56789-0; SCB (014) shows the same digits.
    wrong = session.post("credit/topup", {"slip": _slip("BANKREF01", 100, "014"), "amount": 100})
    assert wrong.status_code == 400, wrong.text
    assert wrong.json()["detail"] == (
        "the slip was paid to an account at bank 014, not BigEye's account"
    )
    assert session.get("credit/balance").json()["credits"] == 0
    slips = [
        s.to_dict()
        for s in money.collection("slips").where("user_id", "==", session.user_id).stream()
    ]
    assert [(s["status"], s["reject_reason"]) for s in slips] == [
        ("REJECTED", wrong.json()["detail"])
    ]
    txs = money.collection("transactions").where("user_id", "==", session.user_id).stream()
    assert [t.id for t in txs] == []
    # The same digits at the configured bank (KBank, 004) are BigEye's account.
    right = session.post("credit/topup", {"slip": _slip("BANKREF02", 100, "004"), "amount": 100})
    assert right.status_code == 200, right.text
    assert session.get("credit/balance").json()["credits"] == right.json()["credits"]


def test_a_slip2go_valid_answer_does_not_skip_the_bank(
    stack: Any, money: Any, standin: Any, fast_accounts: None
) -> None:
    """Slip2Go answering 200200 (its receiver check passed) is re-checked here."""
    session = register_and_login(stack.base_url)
    standin.fail_next("200200", 200)
    answer = session.post("credit/topup", {"slip": _slip("BANKREF03", 100, "002"), "amount": 100})
    assert answer.status_code == 400, answer.text
    assert "bank 002" in answer.json()["detail"]
    assert session.get("credit/balance").json()["credits"] == 0


KBANK = (
    '[{"accountType": "01004", "accountNumber": "1234567890"},'
    ' {"accountType": "02001", "accountNumber": "0812345678"}]'
)


@pytest.mark.parametrize(
    ("shown", "bank", "outcome"),
    [
        ("xxx-x-x6789-x", "004", Outcome.VALID),
        ("xxx-x-x6789-x", None, Outcome.VALID),  # Slip2Go named no bank: digits decide
        ("xxx-x-x6789-x", "014", Outcome.WRONG_BANK),
        ("xxx-x-x6780-x", "004", Outcome.WRONG_RECEIVER),
        ("xxx-xxx-5678", "014", Outcome.VALID),  # the PromptPay entry has no bank
    ],
)
def test_receiver_outcome(shown: str, bank: str | None, outcome: Outcome) -> None:
    receivers = configured_receivers(KBANK)
    assert [r.bank for r in receivers] == ["004", None]
    assert receiver_outcome(shown, receivers, bank) is outcome


def test_bank_codes() -> None:
    assert [bank_code(v) for v in ["004", 4, " 14 ", "KBANK", "0004", True, None, "٠٠٤"]] == [
        "004",
        "004",
        "014",
        None,
        None,
        None,
        None,
        None,
    ]
    data = {"transRef": "R1", "amount": 1, "receiver": {"bank": {"id": "014"}}}
    slip = slip_data(data)
    assert slip is not None and slip.receiver_bank == "014"
    explicit = configured_receivers(
        '[{"accountType": "02002", "accountNumber": "1", "bankCode": 6}]'
    )
    assert explicit[0].bank == "006"
    with pytest.raises(ValueError, match="bankCode"):
        configured_receivers('[{"accountNumber": "1", "bankCode": "KBANK"}]')
