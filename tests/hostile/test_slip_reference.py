"""Finding 3: one slip is one slip, however its bank reference is spelled."""

from __future__ import annotations

from typing import Any

from shared.bigeye.slip2go import canonical_ref
from tests.bigeye_api.client import give_credits, register_and_login
from tests.bigeye_money.conftest import make_slip

VARIANTS = [
    "advref0042",
    " ADVREF0042",
    "ADVREF0042 ",
    "ADVREF0042\n",
    "ADVREF0042\u200b",
    "\ufeffADV REF 0042",
    "ＡＤＶＲＥＦ００４２",  # full-width
]


def test_canonical_form() -> None:
    assert {canonical_ref(v) for v in [*VARIANTS, "ADVREF0042"]} == {"advref0042"}
    assert canonical_ref("ADVREF0042") != canonical_ref("ADVREF0043")


def test_reference_variants_never_credit_again(
    stack: Any, money: Any, standin: Any, fast_accounts: None
) -> None:
    session = register_and_login(stack.base_url)
    first = session.post("credit/topup", {"slip": make_slip("ADVREF0042", 100), "amount": 100})
    assert first.status_code == 200, first.text
    credits = first.json()["credits"]
    for index, variant in enumerate(VARIANTS):
        if index % 2:
            standin.reset()  # Slip2Go forgot the slip: the ledger alone must refuse it
        again = session.post("credit/topup", {"slip": make_slip(variant, 100), "amount": 100})
        assert again.status_code == 409, (variant, again.text)
        assert "already been used" in again.json()["detail"]
    assert session.get("credit/balance").json()["credits"] == credits
    topups = [
        t.to_dict()
        for t in money.collection("transactions").where("user_id", "==", session.user_id).stream()
        if t.to_dict()["type"] == "TOPUP"
    ]
    assert len(topups) == 1
    assert topups[0]["metadata"]["slip_ref"] == "ADVREF0042"  # as printed
    slips = [
        s.to_dict()
        for s in money.collection("slips").where("user_id", "==", session.user_id).stream()
    ]
    verified = [s for s in slips if s["status"] == "VERIFIED"]
    assert len(verified) == 1 and verified[0]["bank_ref"] == "ADVREF0042"  # as printed
    assert len([s for s in slips if s["status"] == "DUPLICATE"]) == len(VARIANTS)


def test_a_slip_credited_before_canonical_keys_is_still_a_duplicate(
    stack: Any, money: Any, standin: Any, fast_accounts: None
) -> None:
    """A posting keyed by the text as given (the earlier scheme) still blocks that slip."""
    session = register_and_login(stack.base_url)
    give_credits(money, session.user_id, 400, key="slip:OLDREF77")
    again = session.post("credit/topup", {"slip": make_slip("OLDREF77", 100), "amount": 100})
    assert again.status_code == 409, again.text
    assert session.get("credit/balance").json()["credits"] == 400


def test_a_slip_showing_too_few_digits_of_the_receiver_is_rejected(
    stack: Any, money: Any, standin: Any, fast_accounts: None
) -> None:
    """Finding 4: ``xxx-x-xxxx9-x`` matches any account with a 9 there; it is not enough."""
    session = register_and_login(stack.base_url)
    for n, shown in enumerate(["xxx-x-xxxx9-x", "xxx-x-xx789-x"]):
        slip = make_slip(f"FEWDIGITS{n}", 100, account=shown)
        answer = session.post("credit/topup", {"slip": slip, "amount": 100})
        assert answer.status_code == 400, answer.text
        assert "account" in answer.json()["detail"]
    assert session.get("credit/balance").json()["credits"] == 0
    enough = session.post(
        "credit/topup",
        {"slip": make_slip("FEWDIGITS9", 100, account="xxx-x-x6789-x"), "amount": 100},
    )
    assert enough.status_code == 200, enough.text
