"""Finding 6: one device collects the welcome bonus once, however many accounts it opens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from shared.bigeye.rewards import WELCOME_DEVICES, device_key, welcome_bonus
from shared.settings import override_settings
from tests.bigeye_api.client import api_url
from tests.bigeye_money.test_rewards import _welcome
from tests.bigeye_money.test_topup import _docs


def _register(base_url: str, n: int, hardware_id: str) -> str:
    response = httpx.post(
        api_url(base_url, "auth/register"),
        json={
            "email": f"farmer{n}@example.com",
            "password": "correct-horse-9",
            "full_name": "Farmer",
            "phone": "0800000000",
            "hardware_id": hardware_id,
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["user_id"])


def _users_by_id(db: Any) -> dict[str, dict[str, Any]]:
    return {s.id: s.to_dict() or {} for s in db.collection("users").stream()}


def test_one_device_gets_one_welcome_bonus(stack: Any, money: Any, fast_accounts: None) -> None:
    db = money
    _welcome(db, bonus=100)
    fired = stack.handled("on-user-created")
    # Four accounts from one machine (two spellings of its id), then a second machine.
    same = ["HW-FARM-1", "HW-FARM-1", "hw-farm-1", " HW-FARM-1\u200b"]
    farmed = [_register(stack.base_url, n, hid) for n, hid in enumerate(same)]
    other = _register(stack.base_url, 9, "HW-OTHER-2")
    stack.wait_handled("on-user-created", fired + 5)

    users = _users_by_id(db)
    bonuses = [t for t in _docs(db, "transactions") if t["type"] == "BONUS"]
    assert sorted(t["user_id"] for t in bonuses) == sorted([farmed[0], other])
    assert [users[u].get("credits") for u in farmed] == [100, 0, 0, 0]
    assert users[other]["credits"] == 100
    assert len(_docs(db, "promo_redemptions")) == 2
    marker = db.collection(WELCOME_DEVICES).document(device_key("HW-FARM-1")).get()
    assert marker.get("user_id") == farmed[0]
    audits = _docs(db, "audit_logs")
    refused = [a for a in audits if a["event_type"] == "WELCOME_BONUS_DEVICE_REUSED"]
    assert sorted(a["user_id"] for a in refused) == sorted(farmed[1:])
    assert all(a["severity"] == "WARNING" for a in refused)
    assert {a["details"]["first_user_id"] for a in refused} == {farmed[0]}
    # A redelivered creation event pays nothing and audits nothing more.
    again = welcome_bonus(db, user_id=farmed[2], now=datetime.now(UTC))
    assert again.credits == 0
    assert len(_docs(db, "audit_logs")) == len(audits)
    assert _users_by_id(db)[farmed[2]]["credits"] == 0


def test_once_per_user_only_when_the_device_rule_is_off(
    stack: Any, money: Any, fast_accounts: None
) -> None:
    db = money
    _welcome(db, bonus=100)
    fired = stack.handled("on-user-created")
    with override_settings(welcome_bonus_once_per_device=False):
        ids = [_register(stack.base_url, n, "HW-SHARED-3") for n in range(2)]
        stack.wait_handled("on-user-created", fired + 2)
    users = _users_by_id(db)
    assert [users[u].get("credits") for u in ids] == [100, 100]
