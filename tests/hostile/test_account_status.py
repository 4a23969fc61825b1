"""Finding 7: only the exact status ``active`` may act: the credit API, ledger-api, the
welcome bonus, usage-limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.ledgerapi.client import LedgerApiClient, LedgerApiError
from shared.settings import override_settings
from tests.bigeye_api.client import api_url, register_and_login
from tests.bigeye_money.conftest import make_user
from tests.bigeye_money.test_rewards import _welcome
from tests.bigeye_money.test_topup import _docs
from tests.helpers import all_documents


@pytest.mark.parametrize("status", ["Banned", "disabled", "SUSPENDED", "", "active "])
def test_any_status_but_active_is_refused(
    stack: Any, money: Any, fast_accounts: None, status: str
) -> None:
    session = register_and_login(stack.base_url)
    assert session.get("credit/balance").status_code == 200
    money.collection("users").document(session.user_id).update({"status": status})
    balance = session.get("credit/balance")
    assert balance.status_code == 403, balance.text
    login = httpx.post(
        api_url(stack.base_url, "auth/login"),
        json={
            "email": session.email,
            "password": session.password,
            "hardware_id": session.hardware_id,
        },
        timeout=30,
    )
    assert login.status_code == 403, login.text


REFUSED = ["Banned", "disabled", "suspended ", "SUSPENDED", ""]


@pytest.mark.parametrize("status", REFUSED)
def test_ledger_api_refuses_charges_grants_and_holds(
    stack: Any, money: Any, fast_accounts: None, status: str
) -> None:
    """ledger-api (BigEye profile): a refused status is 403 for every way of acting, with
    nothing written; money already moved can still be closed out (refund, settle)."""
    user_id = make_user(money, "u_refused", credits=100)
    with (
        override_settings(schema_profile="bigeye"),
        LedgerApiClient(f"{stack.base_url}/ledger-api") as api,
    ):
        charged = api.charge(user_id, 10, idempotency_key="c1")
        api.create_hold(user_id, "h1", 20, idempotency_key="h1")
        money.collection("users").document(user_id).update({"status": status})
        attempts = {
            "charge": lambda: api.charge(user_id, 5, idempotency_key="c2"),
            "grant": lambda: api.grant(user_id, 5, type="BONUS", idempotency_key="g1"),
            "hold": lambda: api.create_hold(user_id, "h2", 5, idempotency_key="h2"),
        }
        before = all_documents(money)
        for name, attempt in attempts.items():
            with pytest.raises(LedgerApiError) as refused:
                attempt()
            assert refused.value.status == 403, name
            assert refused.value.detail == "Account not active", name
        assert all_documents(money) == before
        refund = api.refund(charged.transaction_id, reason="job failed", idempotency_key="r1")
        settled = api.settle("h1", used=20, idempotency_key="s1")
        assert (refund.balance_after, settled.balance_after) == (80, 80)
    assert money.collection("users").document(user_id).get().get("credits") == 80


@pytest.mark.parametrize("status", ["Banned", "disabled", "suspended "])
def test_no_welcome_bonus_for_an_account_that_may_not_act(
    stack: Any, money: Any, status: str
) -> None:
    """on-user-created: a user document created with a refused status earns nothing; an
    active one created with it does (the promotion is live)."""
    _welcome(money, bonus=100)
    fired = stack.handled("on-user-created")
    make_user(money, "u_refused", hardware_id="HW-REFUSED-1", status=status)
    make_user(money, "u_active", hardware_id="HW-ACTIVE-1", status="active")
    stack.wait_handled("on-user-created", fired + 2)
    users = {s.id: s.to_dict() or {} for s in money.collection("users").stream()}
    assert users["u_refused"]["credits"] == 0
    assert users["u_active"]["credits"] == 100
    bonuses = [t for t in _docs(money, "transactions") if t["type"] == "BONUS"]
    assert [t["user_id"] for t in bonuses] == ["u_active"]


@pytest.mark.parametrize("status", ["Banned", "disabled", "suspended "])
def test_usage_limits_refuse_an_account_that_may_not_act(
    stack: Any, usage_db: Any, status: str
) -> None:
    """usage-limits: "may this user spend tokens?" is 403 for a refused status."""
    for user_id, value in [("t_refused", status), ("t_active", "active")]:
        usage_db.collection("users").document(user_id).set(
            {"email": f"{user_id}@example.com", "credits_balance": 0, "status": value}
        )
    url = f"{stack.base_url}/usage-limits/check"
    refused = httpx.post(url, json={"user_id": "t_refused", "tokens": 5}, timeout=30)
    assert refused.status_code == 403, refused.text
    assert refused.json() == {"detail": "Account not active"}
    allowed = httpx.post(url, json={"user_id": "t_active", "tokens": 5}, timeout=30)
    assert allowed.status_code == 200 and allowed.json()["allowed"] is True
