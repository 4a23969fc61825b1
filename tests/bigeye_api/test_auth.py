"""Register, login and bearer tokens over real HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import bcrypt
import httpx
import jwt
from google.cloud import firestore

from shared.bigeye.auth import email_key
from shared.clock import FixedClock, SystemClock, set_clock
from shared.settings import get_settings
from tests.bigeye_api.client import PASSWORD, api_url, register_and_login, registration

SEED_USER_FIELDS = {
    "email",
    "password_hash",
    "full_name",
    "phone",
    "hardware_id",
    "tier",
    "credits",
    "status",
    "created_at",
    "last_login",
    "last_active",
    "total_topup_baht",
    "total_credits_used",
    "app_version",
    "metadata",
}


def _audits(db, event_type):
    query = db.collection("audit_logs").where(
        filter=firestore.FieldFilter("event_type", "==", event_type)
    )
    return [s.to_dict() for s in query.stream()]


def test_register_creates_the_user_with_every_seed_field(stack, bigeye) -> None:
    body = registration(email="Test@Test.com", app_version="2.0.0", os="Windows 11")
    response = httpx.post(api_url(stack.base_url, "auth/register"), json=body, timeout=30)
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == {"token", "user_id", "full_name", "email", "credits"}
    assert data["full_name"] == "Test User"
    assert data["email"] == "test@test.com"
    assert data["credits"] == 0
    user = bigeye.collection("users").document(data["user_id"]).get().to_dict()
    assert set(user) == SEED_USER_FIELDS
    assert bcrypt.checkpw(PASSWORD.encode(), user["password_hash"].encode())
    assert user["hardware_id"] == body["hardware_id"]
    assert user["status"] == "active" and user["tier"] == "standard"
    assert user["app_version"] == "2.0.0"
    assert user["metadata"] == {"os": "Windows 11", "registration_ip": "127.0.0.1", "notes": ""}
    index = bigeye.collection("user_emails").document(email_key("test@test.com")).get()
    assert index.to_dict()["user_id"] == data["user_id"]
    [entry] = _audits(bigeye, "USER_REGISTER")
    assert entry["user_id"] == data["user_id"] and entry["severity"] == "INFO"
    assert set(entry) == {"event_type", "severity", "user_id", "details", "created_at"}
    claims = jwt.decode(
        data["token"],
        get_settings().jwt_secret.get_secret_value(),
        algorithms=["HS256"],
        issuer="bigeye-credit-api",
    )
    assert claims["sub"] == data["user_id"]
    assert claims["exp"] - claims["iat"] == get_settings().jwt_ttl_s


def test_duplicate_email_is_409_case_insensitively(stack, bigeye) -> None:
    url = api_url(stack.base_url, "auth/register")
    assert httpx.post(url, json=registration(email="dup@example.com"), timeout=30).is_success
    again = httpx.post(url, json=registration(email="DUP@example.com"), timeout=30)
    assert again.status_code == 409
    assert again.json() == {"detail": "Email already registered"}
    assert len(list(bigeye.collection("users").stream())) == 1


def test_concurrent_registrations_of_one_email_create_one_user(stack, bigeye) -> None:
    url = api_url(stack.base_url, "auth/register")
    bodies = [registration(email="race@example.com") for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        codes = sorted(
            r.status_code for r in pool.map(lambda b: httpx.post(url, json=b, timeout=60), bodies)
        )
    assert codes == [200, 409, 409, 409, 409, 409]
    assert len(list(bigeye.collection("users").stream())) == 1
    assert len(list(bigeye.collection("user_emails").stream())) == 1
    assert len(_audits(bigeye, "USER_REGISTER")) == 1


def test_login_returns_a_session_and_records_the_login(stack, bigeye) -> None:
    session = register_and_login(stack.base_url)
    assert set(session.body) == {"token", "user_id", "full_name", "email", "credits"}
    assert session.body["credits"] == 0
    assert session.get("credit/balance").status_code == 200


def test_wrong_password_is_401_and_audited(stack, bigeye) -> None:
    session = register_and_login(stack.base_url)
    response = httpx.post(
        api_url(stack.base_url, "auth/login"),
        json={
            "email": session.email,
            "password": "wrong-password",
            "hardware_id": session.hardware_id,
        },
        timeout=30,
    )
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid email or password"}
    [entry] = _audits(bigeye, "LOGIN_FAILED_WRONG_PASSWORD")
    assert entry["user_id"] == session.user_id and entry["severity"] == "WARNING"


def test_unknown_email_is_401_without_an_audit_entry(stack, bigeye) -> None:
    response = httpx.post(
        api_url(stack.base_url, "auth/login"),
        json={
            "email": "nobody@example.com",
            "password": "whatever-1",
            "hardware_id": "HW",
        },
        timeout=30,
    )
    assert response.status_code == 401
    assert list(bigeye.collection("audit_logs").stream()) == []


def test_login_from_another_device_is_401_and_audited(stack, bigeye) -> None:
    """Answered like a wrong password (docs/security.md, "Logins"); operators see why."""
    session = register_and_login(stack.base_url)
    response = httpx.post(
        api_url(stack.base_url, "auth/login"),
        json={
            "email": session.email,
            "password": PASSWORD,
            "hardware_id": "OTHER-DEVICE",
        },
        timeout=30,
    )
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid email or password"}
    [entry] = _audits(bigeye, "LOGIN_FAILED_DEVICE_MISMATCH")
    assert entry["user_id"] == session.user_id
    assert entry["details"]["hardware_id"] == "OTHER-DEVICE"


def test_suspended_and_banned_users_get_403_on_login_and_with_a_token(stack, bigeye) -> None:
    for status in ("suspended", "banned"):
        session = register_and_login(stack.base_url)
        bigeye.collection("users").document(session.user_id).update({"status": status})
        login = httpx.post(
            api_url(stack.base_url, "auth/login"),
            json={
                "email": session.email,
                "password": PASSWORD,
                "hardware_id": session.hardware_id,
            },
            timeout=30,
        )
        assert login.status_code == 403, login.text
        assert status in login.json()["detail"].lower()
        assert session.get("credit/balance").status_code == 403


def test_missing_bad_and_foreign_tokens_are_401(stack, bigeye) -> None:
    url = api_url(stack.base_url, "credit/balance")
    assert httpx.get(url, timeout=30).json() == {"detail": "Missing token"}
    assert httpx.get(url, timeout=30).status_code == 401
    for header in ("Bearer", "Bearer not-a-jwt", "Basic abc", "token"):
        response = httpx.get(url, headers={"Authorization": header}, timeout=30)
        assert response.status_code == 401, header
        assert "detail" in response.json()
    session = register_and_login(stack.base_url)
    forged = jwt.encode(
        {
            "sub": session.user_id,
            "hid": session.hardware_id,
            "iss": "bigeye-credit-api",
            "iat": 1,
            "exp": 4_000_000_000,
        },
        "another-secret-of-sufficient-length-000",
        algorithm="HS256",
    )
    response = httpx.get(url, headers={"Authorization": f"Bearer {forged}"}, timeout=30)
    assert response.status_code == 401
    # A token of a user that no longer exists.
    bigeye.collection("users").document(session.user_id).delete()
    assert session.get("credit/balance").status_code == 401


def test_expired_token_is_401(stack, bigeye) -> None:
    session = register_and_login(stack.base_url)
    clock = FixedClock(SystemClock().now() + timedelta(seconds=get_settings().jwt_ttl_s + 5))
    set_clock(clock)
    response = session.get("credit/balance")
    assert response.status_code == 401
    assert response.json() == {"detail": "Token expired"}


def test_token_stops_working_when_the_device_binding_changes(stack, bigeye) -> None:
    session = register_and_login(stack.base_url)
    bigeye.collection("users").document(session.user_id).update({"hardware_id": "NEW-PC"})
    assert session.get("credit/balance").status_code == 401


def test_old_client_version_at_login_is_426(stack, bigeye) -> None:
    session = register_and_login(stack.base_url)
    response = httpx.post(
        api_url(stack.base_url, "auth/login"),
        json={
            "email": session.email,
            "password": PASSWORD,
            "hardware_id": session.hardware_id,
            "app_version": "1.4.9",
        },
        timeout=30,
    )
    assert response.status_code == 426
    assert "update" in response.json()["detail"]
