"""Finding 7: only the exact status ``active`` may act through the credit API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.bigeye_api.client import api_url, register_and_login


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
