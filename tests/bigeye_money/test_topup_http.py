"""``POST /api/v1/credit/topup`` over real HTTP through the credit-api function."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from devstack.demo.bigeye import DEMO_PROMOTION_ID
from tests.bigeye_api.client import api_url, fast_accounts, register_and_login
from tests.bigeye_money.conftest import make_slip
from tests.bigeye_money.test_topup import _docs, _promotion
from tests.helpers import wait_for


@pytest.fixture(autouse=True)
def _fast_accounts(stack: Any) -> Iterator[None]:
    with fast_accounts():
        yield


def test_topup_balance_and_history_through_the_api(stack, money) -> None:
    session = register_and_login(stack.base_url)
    response = session.post(
        "credit/topup", {"slip": make_slip("TR-H1", 500), "amount": 500, "promo_code": None}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["credits"] == 2200 and body["added"] == 2200
    assert (body["base_credits"], body["bonus_credits"]) == (2000, 200)
    assert body["promo_id"] == DEMO_PROMOTION_ID
    balance = session.get("credit/balance").json()
    assert balance["credits"] == 2200 and balance["exchange_rate"] == 4
    assert [p["name"] for p in balance["active_promos"]] == ["โปรปีใหม่"]
    history = session.get("credit/history").json()
    assert history["balance"] == 2200
    assert history["transactions"][0]["type"] == "TOPUP"
    assert history["transactions"][0]["amount"] == 2200
    assert history["transactions"][0]["description"] == "Top-up 500 THB → 2200 credits"


def test_topup_status_codes(stack, money, standin) -> None:
    session = register_and_login(stack.base_url)
    ok = session.post("credit/topup", {"slip": make_slip("TR-H2", 100), "amount": 100})
    assert ok.status_code == 200, ok.text
    cases = [
        ({"slip": make_slip("TR-H2", 100), "amount": 100}, 409, "already been used"),
        ({"slip": make_slip("TR-H3", 300), "amount": 500}, 400, "amount"),
        ({"slip": make_slip("TR-H4", 100, account="111-1-11111-1"), "amount": 100}, 400, "account"),
        ({"slip": make_slip("TR-H5", 100), "amount": 100, "promo_code": "NOPE"}, 400, "promo code"),
    ]
    for request_body, status, detail in cases:
        response = session.post("credit/topup", request_body)
        assert response.status_code == status, (request_body, response.text)
        assert detail in response.json()["detail"]
    standin.fail_next("401005", 401)
    down = session.post("credit/topup", {"slip": make_slip("TR-H6", 100), "amount": 100})
    assert down.status_code == 503 and "nothing was credited" in down.json()["detail"]
    retry = session.post("credit/topup", {"slip": make_slip("TR-H6", 100), "amount": 100})
    assert retry.status_code == 200 and retry.json()["credits"] == 800
    anonymous = httpx.post(
        api_url(stack.base_url, "credit/topup"),
        json={"slip": make_slip("TR-H7", 100), "amount": 100},
        timeout=30,
    )
    assert anonymous.status_code == 401 and "detail" in anonymous.json()


def test_the_same_slip_twice_at_once_over_http(stack, money) -> None:
    sessions = [register_and_login(stack.base_url) for _ in range(2)]
    slip = make_slip("TR-HRACE", 300)
    barrier = threading.Barrier(2)

    def send(session: Any) -> httpx.Response:
        barrier.wait()
        return session.post("credit/topup", {"slip": slip, "amount": 300})  # type: ignore[no-any-return]

    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(send, sessions))
    assert sorted(r.status_code for r in responses) == [200, 409]
    assert len(_docs(money, "transactions")) == 1
    credits = sorted(s.get("credit/balance").json()["credits"] for s in sessions)
    assert credits == [0, 1300]


def test_registration_earns_the_welcome_bonus(stack, money) -> None:
    _promotion(money, "welcome", type="WELCOME_BONUS", **{"reward.bonus_credits": 150})
    session = register_and_login(stack.base_url)
    wait_for(lambda: session.get("credit/balance").json()["credits"] == 150)
    history = session.get("credit/history").json()["transactions"]
    assert [(t["type"], t["amount"]) for t in history] == [("BONUS", 150)]
