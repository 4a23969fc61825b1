"""The webhook's edge over real HTTP: method, size, signature, malformed bodies."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from devstack import stripe_send as fx
from shared.settings import get_settings, override_settings
from tests.helpers import all_documents
from tests.stripe.support import SECRET, deliver, make_user, url


def _purchase(user_id: str = "u_edge") -> dict[str, Any]:
    session = fx.checkout_session(
        user_id=user_id,
        price_id="price_credits_500",
        payment_intent=fx.new_id("pi"),
        customer=fx.new_id("cus"),
    )
    return fx.event("checkout.session.completed", session)


def _unchanged(db: Any, send: Any) -> httpx.Response:
    before = all_documents(db)
    response = send()
    assert all_documents(db) == before
    assert "detail" in response.json()
    return response


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405(billing: Any, stack: Any, method: str) -> None:
    response = _unchanged(billing, lambda: httpx.request(method, url(stack), timeout=10))
    assert response.status_code == 405


def test_missing_signature_is_400(billing: Any, stack: Any) -> None:
    make_user(billing, "u_edge")
    body = json.dumps(_purchase())
    response = _unchanged(billing, lambda: httpx.post(url(stack), content=body, timeout=10))
    assert response.status_code == 400


def test_wrong_secret_is_400(billing: Any, stack: Any) -> None:
    make_user(billing, "u_edge")
    response = _unchanged(billing, lambda: deliver(stack, _purchase(), secret="whsec_other"))
    assert response.status_code == 400
    assert "signature" in response.json()["detail"]


def test_stale_timestamp_is_400(billing: Any, stack: Any) -> None:
    make_user(billing, "u_edge")
    old = int(time.time()) - get_settings().stripe_signature_tolerance_s - 30
    response = _unchanged(billing, lambda: deliver(stack, _purchase(), timestamp=old))
    assert response.status_code == 400


def test_future_timestamp_beyond_tolerance_is_400(billing: Any, stack: Any) -> None:
    make_user(billing, "u_edge")
    ahead = int(time.time()) + get_settings().stripe_signature_tolerance_s + 30
    response = _unchanged(billing, lambda: deliver(stack, _purchase(), timestamp=ahead))
    assert response.status_code == 400
    assert "future" in response.json()["detail"]


def test_timestamp_slightly_ahead_within_tolerance_is_accepted(billing: Any, stack: Any) -> None:
    make_user(billing, "u_edge")
    response = deliver(stack, _purchase(), timestamp=int(time.time()) + 60)
    assert response.status_code == 200, response.text


def test_tampered_body_is_400(billing: Any, stack: Any) -> None:
    make_user(billing, "u_edge")
    payload = json.dumps(_purchase())
    header = fx.signature_header(payload, SECRET)
    tampered = payload.replace("price_credits_500", "price_credits_10000")
    response = _unchanged(
        billing,
        lambda: httpx.post(
            url(stack), content=tampered, headers={"Stripe-Signature": header}, timeout=10
        ),
    )
    assert response.status_code == 400


def test_malformed_signature_header_is_400(billing: Any, stack: Any) -> None:
    body = json.dumps(_purchase())
    response = _unchanged(
        billing,
        lambda: httpx.post(
            url(stack), content=body, headers={"Stripe-Signature": "garbage"}, timeout=10
        ),
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "payload",
    [
        "{not json",
        "[1, 2]",
        json.dumps({"type": "invoice.paid", "created": 1, "data": {"object": {"id": "in_1"}}}),
        json.dumps(
            {
                "id": "evt/../x",
                "type": "invoice.paid",
                "created": 1,
                "data": {"object": {"id": "in_1"}},
            }
        ),  # id unusable as a document id
        "\xff\xfe",
    ],
)
def test_valid_signature_but_no_usable_event_is_400(billing: Any, stack: Any, payload: str) -> None:
    response = _unchanged(billing, lambda: deliver(stack, payload))
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"id": "evt_1", "type": "invoice.paid"}, "created: Field required"),
        ({"id": "evt_1", "type": "invoice.paid", "created": 1, "data": {}}, "data.object"),
        (
            {
                "id": "evt_1",
                "type": "invoice.paid",
                "created": 1,
                "data": {"object": {"customer": "cus_1"}},
            },
            "invoice.paid: id",
        ),  # invoice without id
    ],
)
def test_signed_event_our_models_reject_is_parked_with_its_reason(
    billing: Any, stack: Any, payload: dict[str, Any], reason: str
) -> None:
    before = all_documents(billing)
    response = deliver(stack, json.dumps(payload))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "parked" and reason in response.json()["reason"]
    added = {k: v for k, v in all_documents(billing).items() if k not in before}
    assert set(added) == {"stripe_parked_events/evt_1", "stripe_events/evt_1"}
    parked = added["stripe_parked_events/evt_1"]
    assert parked["status"] == "parked" and json.loads(parked["payload"]) == payload
    # Redelivered by Stripe: still one parked event, nothing else.
    assert deliver(stack, json.dumps(payload)).json()["status"] == "duplicate"


def test_huge_body_is_413(billing: Any, stack: Any) -> None:
    limit = get_settings().stripe_max_body_bytes
    evt = _purchase()
    evt["data"]["object"]["metadata"]["padding"] = "x" * (limit + 10)
    response = _unchanged(billing, lambda: deliver(stack, evt))
    assert response.status_code == 413


def test_unhandled_type_is_200_and_writes_nothing(billing: Any, stack: Any) -> None:
    evt = fx.event("payment_intent.succeeded", fx.resource("payment_intent"))
    response = _unchanged_ok(billing, lambda: deliver(stack, evt))
    assert response.json() == {"received": True, "status": "ignored"}


def test_rotation_accepts_old_and_new_secret(billing: Any, stack: Any) -> None:
    make_user(billing, "u_edge")
    with override_settings(stripe_webhook_secret=SecretStr(f"whsec_new,{SECRET}")):
        assert deliver(stack, _purchase(), secret="whsec_new").status_code == 200
        assert deliver(stack, _purchase(), secret=SECRET).status_code == 200
        assert deliver(stack, _purchase(), secret="whsec_retired").status_code == 400


def _unchanged_ok(db: Any, send: Any) -> httpx.Response:
    before = all_documents(db)
    response = send()
    assert response.status_code == 200
    assert all_documents(db) == before
    return response


def test_non_utf8_body_is_400(billing: Any, stack: Any) -> None:
    import hashlib
    import hmac

    body = b'{"id": "evt_x", "type": "invoice.paid", "note": "\xff\xfe"}'
    ts = int(time.time())
    mac = hmac.new(SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    response = _unchanged(
        billing,
        lambda: httpx.post(
            url(stack), content=body, headers={"Stripe-Signature": f"t={ts},v1={mac}"}, timeout=10
        ),
    )
    assert response.status_code == 400
