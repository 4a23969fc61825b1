"""Routing, update check, rate limits and the top-up route."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest
from google.cloud import firestore

from shared.clock import FixedClock, SystemClock, set_clock
from shared.settings import override_settings
from tests.bigeye_api.client import api_url, register_and_login, write_app_settings
from tests.helpers import all_documents


def _check(stack, version, **headers):
    return httpx.post(
        api_url(stack.base_url, "system/check-update"),
        json={"version": version},
        headers=headers,
        timeout=30,
    )


def test_check_update_answers_the_seed_keys(stack, bigeye) -> None:
    response = _check(stack, "2.0.0")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "update_available": True,
        "version": "2.0.1",
        "force": False,
        "download_url": "https://example.com/bigeye/2.0.1",
        "notes": "Bug fixes and improvements",
        "maintenance": False,
        "maintenance_message": "",
    }
    assert _check(stack, "2.0.1").json()["update_available"] is False
    assert _check(stack, "2.1").json()["update_available"] is False
    old = _check(stack, "1.4.0").json()
    assert old["force"] is True and old["update_available"] is True
    write_app_settings(bigeye, maintenance_mode=True, maintenance_message="Upgrading")
    assert _check(stack, "2.0.1").json()["maintenance"] is True
    assert _check(stack, "2.0.1").json()["maintenance_message"] == "Upgrading"
    for bad in ("", "v2", "2.0.0-beta", "1..2"):
        response = _check(stack, bad)
        assert response.status_code == 400 and "version" in response.json()["detail"]


def test_unknown_route_is_404_and_wrong_method_is_405(stack, bigeye) -> None:
    response = httpx.get(api_url(stack.base_url, "no/such/thing"), timeout=30)
    assert response.status_code == 404 and response.json() == {"detail": "Not found"}
    response = httpx.get(f"{stack.base_url}/credit-api/", timeout=30)
    assert response.status_code == 404
    response = httpx.get(api_url(stack.base_url, "job/reserve"), timeout=30)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json() == {"detail": "Method not allowed; use POST"}
    response = httpx.post(api_url(stack.base_url, "credit/balance"), json={}, timeout=30)
    assert response.status_code == 405 and response.headers["Allow"] == "GET"
    response = httpx.delete(api_url(stack.base_url, "auth/login"), timeout=30)
    assert response.status_code == 405


def test_bodies_that_are_not_json_objects_are_400(stack, bigeye) -> None:
    url = api_url(stack.base_url, "auth/register")
    for raw in (b"", b"not json", b"[1, 2]", b"\xff\xfe", b"null"):
        response = httpx.post(url, content=raw, timeout=30)
        assert response.status_code == 400, raw
        assert response.json()["detail"]
    response = httpx.post(url, content=b"{" + b" " * (70 * 1024) + b"}", timeout=30)
    assert response.status_code == 413


@pytest.fixture
def frozen(bigeye):
    """A clock that stays inside one rate-limit window for the whole test."""
    set_clock(FixedClock(SystemClock().now().replace(second=10, microsecond=0)))
    return bigeye


def test_rate_limit_per_ip_is_429_with_retry_after(stack, frozen) -> None:
    ip = f"203.0.113.{uuid.uuid4().int % 250}"
    with override_settings(rate_limit_ip_per_min=3):
        codes = [
            _check(stack, "2.0.0", **{"X-Forwarded-For": f"10.0.0.1, {ip}"}).status_code
            for _ in range(4)
        ]
        other_ip = _check(stack, "2.0.0", **{"X-Forwarded-For": "198.51.100.7"})
    assert codes[:3] == [200, 200, 200]
    assert codes[3] == 429
    assert other_ip.status_code == 200
    response = None
    with override_settings(rate_limit_ip_per_min=1):
        response = _check(stack, "2.0.0", **{"X-Forwarded-For": ip})
    assert response.status_code == 429
    assert response.json()["detail"].startswith("Rate limit exceeded")
    assert int(response.headers["Retry-After"]) == 50


def test_rate_limit_per_user_counts_across_ips(stack, frozen) -> None:
    session = register_and_login(stack.base_url)
    with override_settings(rate_limit_user_per_min=2):
        codes = [
            session.get("credit/balance", headers={"X-Forwarded-For": f"192.0.2.{i}"}).status_code
            for i in range(3)
        ]
        stranger = register_and_login(stack.base_url)
        assert stranger.get("credit/balance").status_code == 200
    assert codes == [200, 200, 429]


def test_auth_routes_have_their_own_tighter_ip_limit(stack, frozen) -> None:
    headers = {"X-Forwarded-For": "198.51.100.200"}
    body = {"email": "nobody@example.com", "password": "whatever-1", "hardware_id": "HW"}
    with override_settings(rate_limit_auth_ip_per_min=2):
        codes = [
            httpx.post(
                api_url(stack.base_url, "auth/login"), json=body, headers=headers, timeout=30
            ).status_code
            for _ in range(3)
        ]
    assert codes == [401, 401, 429]


def _slip(trans_ref: str, amount: int) -> str:
    content = {
        "transRef": trans_ref,
        "amount": amount,
        "dateTime": "2026-02-08T10:00:00Z",
        "receiver": {"account": "xxx-x-x6789-x"},
        "sender": {"name": "Somchai"},
    }
    return "data:image/jpeg;base64," + base64.b64encode(json.dumps(content).encode()).decode()


def test_topup_route_credits_through_the_slip2go_stand_in(stack, bigeye) -> None:
    pytest.importorskip("shared.bigeye.topup")
    session = register_and_login(stack.base_url)
    response = session.post("credit/topup", {"slip": _slip("TR-API-1", 500), "amount": 500})
    assert response.status_code == 200, response.text
    assert response.json()["credits"] == 2000
    assert session.get("credit/balance").json()["credits"] == 2000
    again = session.post("credit/topup", {"slip": _slip("TR-API-1", 500), "amount": 500})
    assert again.status_code == 409
    assert session.get("credit/balance").json()["credits"] == 2000
    topups = (
        bigeye.collection("transactions")
        .where(filter=firestore.FieldFilter("type", "==", "TOPUP"))
        .stream()
    )
    assert [t.get("metadata")["baht_amount"] for t in topups] == [500]


def test_topup_route_rejects_bad_bodies_before_anything_is_written(stack, bigeye) -> None:
    session = register_and_login(stack.base_url)
    before = {p: d for p, d in all_documents(bigeye).items() if not p.startswith("rate_limits/")}
    bodies = [
        {"amount": 500},
        {"slip": _slip("X", 500)},
        {"slip": "not a data url at all", "amount": 500},
        {"slip": _slip("X", 500), "amount": "500"},
        {"slip": _slip("X", 500), "amount": 0},
        {"slip": _slip("X", 500), "amount": 10.005},
        {"slip": _slip("X", 500), "amount": True},
        {"slip": _slip("X", 500), "amount": 500, "promo_code": 7},
        {"slip": _slip("X", 500), "amount": 500, "promoCode": "NEWYEAR2027"},
    ]
    for body in bodies:
        response = session.post("credit/topup", body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["detail"]
    after = {p: d for p, d in all_documents(bigeye).items() if not p.startswith("rate_limits/")}
    assert after == before
