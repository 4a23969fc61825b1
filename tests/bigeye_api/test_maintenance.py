"""Maintenance mode over HTTP: every BigEye route but check-update and finalize is 503."""

from __future__ import annotations

import base64
import json

import httpx

from tests.bigeye_api.client import (
    api_url,
    give_credits,
    register_and_login,
    registration,
    write_app_settings,
)
from tests.bigeye_api.test_jobs import SEED_FINALIZE, SEED_RESERVE
from tests.helpers import all_documents

MESSAGE = "Back at 10:00"


def _slip() -> str:
    content = {"transRef": "TR-MAINT", "amount": 100, "receiver": {"account": "xxx-x-x6789-x"}}
    return "data:image/jpeg;base64," + base64.b64encode(json.dumps(content).encode()).decode()


def test_maintenance_blocks_every_route_but_check_update_and_finalize(stack, bigeye) -> None:
    session = register_and_login(stack.base_url)
    give_credits(bigeye, session.user_id, 500)
    job = session.post("job/reserve", SEED_RESERVE)
    assert job.status_code == 200, job.text
    write_app_settings(bigeye, maintenance_mode=True, maintenance_message=MESSAGE)
    before = all_documents(bigeye)

    blocked = {
        "register": httpx.post(
            api_url(stack.base_url, "auth/register"), json=registration(), timeout=30
        ),
        "login": httpx.post(
            api_url(stack.base_url, "auth/login"),
            json={
                "email": session.email,
                "password": session.password,
                "hardware_id": session.hardware_id,
            },
            timeout=30,
        ),
        "balance": session.get("credit/balance"),
        "history": session.get("credit/history"),
        "topup": session.post("credit/topup", {"slip": _slip(), "amount": 100}),
        "reserve": session.post("job/reserve", SEED_RESERVE),
        "unauthenticated": httpx.get(api_url(stack.base_url, "credit/balance"), timeout=30),
    }
    for name, response in blocked.items():
        assert response.status_code == 503, (name, response.text)
        assert response.json() == {"detail": MESSAGE}, name
    # Nothing was written: no user, slip, job, rate-limit counter or audit entry.
    assert all_documents(bigeye) == before

    check = httpx.post(
        api_url(stack.base_url, "system/check-update"), json={"version": "2.0.1"}, timeout=30
    )
    assert check.status_code == 200
    assert check.json()["maintenance"] is True and check.json()["maintenance_message"] == MESSAGE
    # A job reserved before maintenance still settles, refunding what was not used.
    done = session.post("job/finalize", {"job_token": job.json()["job_token"], **SEED_FINALIZE})
    assert done.status_code == 200, done.text
    assert done.json()["refunded"] > 0
    # Unknown routes stay 404, wrong methods 405.
    assert httpx.get(api_url(stack.base_url, "no/such"), timeout=30).status_code == 404
    assert httpx.get(api_url(stack.base_url, "job/reserve"), timeout=30).status_code == 405

    write_app_settings(bigeye, maintenance_mode=False)
    assert session.get("credit/balance").status_code == 200


def test_maintenance_without_a_message_has_a_default_detail(stack, bigeye) -> None:
    write_app_settings(bigeye, maintenance_mode=True, maintenance_message="")
    response = httpx.post(api_url(stack.base_url, "auth/register"), json=registration(), timeout=30)
    assert response.status_code == 503
    assert response.json() == {"detail": "Service under maintenance"}
