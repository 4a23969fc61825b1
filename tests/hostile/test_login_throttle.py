"""Finding 5: wrong passwords lock the account, whatever address the guesses come from."""

from __future__ import annotations

from typing import Any

import httpx

from tests.bigeye_api.client import api_url

PASSWORD = "correct-horse-9"


def _login(base_url: str, password: str, n: int) -> httpx.Response:
    return httpx.post(
        api_url(base_url, "auth/login"),
        json={"email": "target@example.com", "password": password, "hardware_id": "hw-target"},
        headers={"X-Forwarded-For": f"198.51.100.{n % 250}"},
        timeout=30,
    )


def test_guessing_locks_the_account(stack: Any, money: Any, fast_accounts: None) -> None:
    registered = httpx.post(
        api_url(stack.base_url, "auth/register"),
        json={
            "email": "target@example.com",
            "password": PASSWORD,
            "full_name": "Target",
            "phone": "0800000000",
            "hardware_id": "hw-target",
        },
        timeout=30,
    )
    assert registered.status_code == 200, registered.text
    codes = [_login(stack.base_url, f"guess-{n}", n).status_code for n in range(40)]
    assert codes[:5] == [401] * 5
    assert set(codes[5:]) == {429}
    # The right password during the lock is refused the same way: no confirmation.
    right = _login(stack.base_url, PASSWORD, 99)
    assert right.status_code == 429, right.text
    assert "detail" in right.json()
    assert int(right.headers["Retry-After"]) >= 1
    audits = [a.to_dict() for a in money.collection("audit_logs").stream()]
    kinds = [a["event_type"] for a in audits]
    assert kinds.count("LOGIN_FAILED_WRONG_PASSWORD") == 5
    assert kinds.count("LOGIN_FAILED_THROTTLED") == 36
