"""Finding 8: spellings of one e-mail address never make a second account."""

from __future__ import annotations

from typing import Any

import httpx

from tests.bigeye_api.client import api_url


def _register(base_url: str, email: str, n: int) -> httpx.Response:
    return httpx.post(
        api_url(base_url, "auth/register"),
        json={
            "email": email,
            "password": "correct-horse-9",
            "full_name": "Variant",
            "phone": "0800000000",
            "hardware_id": f"hw-variant-{n}",
        },
        timeout=30,
    )


def test_email_variants_are_one_account(stack: Any, money: Any, fast_accounts: None) -> None:
    first = _register(stack.base_url, "victim@example.com", 0)
    assert first.status_code == 200, first.text
    variants = [
        "victim@example.com.",
        "victim@ＥＸＡＭＰＬＥ.com",
        "VICTIM@Example.COM",
        "ｖｉｃｔｉｍ@example.com",
        " victim@example.com",
    ]
    for n, email in enumerate(variants, start=1):
        again = _register(stack.base_url, email, n)
        assert again.status_code == 409, (email, again.status_code, again.text)
    users = [u.to_dict() for u in money.collection("users").stream()]
    assert [u["email"] for u in users].count("victim@example.com") == 1
    assert len(users) == 1
