"""The console over real HTTP: who may sign in, sessions, CSRF (no browser needed)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.console.conftest import TokenIssuer
from tests.helpers import all_documents


def client(stack: Any) -> httpx.Client:
    return httpx.Client(base_url=f"{stack.base_url}/admin-console", timeout=30)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf"\s+value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def _user(db: Any, user_id: str = "u1", credits: int = 0) -> None:
    db.collection("users").document(user_id).set(
        {"email": f"{user_id}@example.com", "credits_balance": credits}
    )


def test_unauthenticated_requests_are_refused(db: Any, stack: Any) -> None:
    c = client(stack)
    page = c.get("/profit")
    assert page.status_code == 303 and page.headers["location"].endswith("/admin-console/login")
    assert "Sign in" in c.get("/login").text
    for path in ("/users/adjust", "/queue/replay", "/queue/slips/approve"):
        assert c.post(path, data={"amount": "5"}).status_code == 401
    assert c.get("/slips/s1/image").status_code == 401
    c.cookies.set("console_session", "forged.cookie.value")
    assert c.get("/profit").status_code == 303


def test_forged_non_admin_and_foreign_tokens_are_refused(
    db: Any, stack: Any, certs: TokenIssuer
) -> None:
    c = client(stack)
    cases = {
        "forged": (certs.token(forged=True), 401),
        "non-admin": (certs.token(admin=False), 403),
        "claim not true": (certs.token(admin=False, super_admin="yes"), 403),
        "other project": (certs.token(aud="someone-else"), 401),
        "other issuer": (certs.token(iss="https://securetoken.google.com/other"), 401),
        "expired": (certs.token(iat=1_600_000_000, exp=1_600_000_600), 401),
        "garbage": ("not-a-token", 401),
        "empty": ("", 401),
    }
    for name, (token, status) in cases.items():
        answer = c.post("/login", data={"id_token": token})
        assert answer.status_code == status, (name, answer.text[:300])
        assert "console_session" not in answer.cookies, name
    ok = c.post("/login", data={"id_token": certs.token()})
    assert ok.status_code == 303 and ok.headers["location"].endswith("/profit")
    assert "ops@example.com" in c.get("/profit").text


def test_dev_sign_in_only_on_the_emulators(
    db: Any, stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = client(stack)
    assert c.post("/login/dev", data={"email": "me@example.com"}).status_code == 303
    assert c.get("/profit").status_code == 200
    monkeypatch.setenv("K_SERVICE", "admin-console")  # as in a deployed function
    assert "Dev sign-in" not in c.get("/login").text
    assert c.get("/profit").status_code == 303  # the dev session no longer counts
    fresh = client(stack)
    assert fresh.post("/login/dev", data={"email": "me@example.com"}).status_code == 404
    assert "console_session" not in fresh.cookies


def test_actions_need_the_session_csrf_token_and_are_audited(db: Any, stack: Any) -> None:
    _user(db, "u1", 0)
    c = client(stack)
    c.post("/login/dev", data={"email": "ops@example.com"})
    page = c.get("/users", params={"q": "u1"})
    assert page.status_code == 200 and 'id="balance">0<' in page.text
    key = re.search(r'name="key" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    form = {
        "user_id": "u1",
        "amount": "25",
        "reason": "goodwill",
        "key": key,
        "profile": "kitesforu",
    }
    before = all_documents(db)
    assert c.post("/users/adjust", data=form).status_code == 403
    assert c.post("/users/adjust", data={**form, "csrf": "wrong"}).status_code == 403
    other = client(stack)
    other.post("/login/dev", data={"email": "x@example.com"})
    assert (
        c.post("/users/adjust", data={**form, "csrf": _csrf(other.get("/users").text)}).status_code
        == 403
    )
    assert all_documents(db) == before
    csrf = _csrf(page.text)
    done = c.post("/users/adjust", data={**form, "csrf": csrf})
    assert done.status_code == 200 and 'id="balance">25<' in done.text
    again = c.post("/users/adjust", data={**form, "csrf": csrf})  # the same form sent twice
    assert again.status_code == 200 and "already applied" in again.text
    assert db.collection("users").document("u1").get().get("credits_balance") == 25
    actions = [d for p, d in all_documents(db).items() if p.startswith("admin_actions/")]
    assert len(actions) == 1 and actions[0]["actor"] == "console:ops@example.com"
    assert actions[0]["reason"] == "goodwill"
    bad = c.post("/users/adjust", data={**form, "csrf": csrf, "amount": "ten", "key": "console:k2"})
    assert bad.status_code == 400 and "whole number" in bad.text
    ghost = c.post("/queue/replay", data={"csrf": csrf, "event_id": "evt_nope", "reason": "r"})
    assert ghost.status_code == 404 and "evt_nope" in ghost.text


NEW_PAGES = ("/loss", "/providers", "/promotions")
NEW_ACTIONS = (
    "/loss/action",
    "/providers/ack",
    "/providers/flag",
    "/promotions/create",
    "/promotions/change",
    "/settings",
    "/users/reconcile",
    "/users/status",
    "/users/rebind",
)


def test_new_pages_and_actions_refuse_unauthenticated_forged_and_non_admin(
    db: Any, stack: Any, certs: TokenIssuer
) -> None:
    from tests.console import seed

    seed.loss_user(db)
    seed.promotions_and_settings(db)
    seed.bigeye_user(db)
    db.collection("model_router_alerts").document("a1").set({"acknowledged": False})
    # Every field any of the actions reads, so a wrongly accepted request would write.
    form = {
        "user_id": seed.LOSS_USER,
        "action": "rate_limited",
        "alert_id": "a1",
        "flag": "planner_enabled",
        "value": "true",
        "promo_id": "demo-newyear-tiered",
        "change": "pause",
        "name": "x",
        "type": "FLAT_BONUS",
        "status": "ACTIVE",
        "bonus_credits": "5",
        "field": "maintenance_mode",
        "hardware_id": "hw-x",
        "profile": "bigeye",
        "reason": "r",
    }
    before = all_documents(db)
    anonymous = client(stack)
    forged_cookie = client(stack)
    forged_cookie.cookies.set("console_session", "eyJ1aWQiOiJ4In0.forged.signature")
    refused_tokens = []
    for token, status in ((certs.token(forged=True), 401), (certs.token(admin=False), 403)):
        c = client(stack)
        assert c.post("/login", data={"id_token": token}).status_code == status
        refused_tokens.append(c)
    for c in (anonymous, forged_cookie, *refused_tokens):
        for path in NEW_PAGES:
            page = c.get(path)
            assert page.status_code == 303, path
            assert page.headers["location"].endswith("/admin-console/login")
        for path in NEW_ACTIONS:
            answer = c.post(path, data={**form, "csrf": "x"})
            assert answer.status_code == 401, (path, answer.text[:200])
            assert answer.json() == {"detail": "sign in first"}
    # Signed in, but without the session's CSRF token.
    c = client(stack)
    c.post("/login", data={"id_token": certs.token()})
    for path in NEW_PAGES:
        assert c.get(path).status_code == 200, path
    for path in NEW_ACTIONS:
        assert c.post(path, data=form).status_code == 403, path
        assert c.post(path, data={**form, "csrf": "stale"}).status_code == 403, path
    assert all_documents(db) == before
