"""Finding 1: demo, missing or short secrets are refused outside the emulators.

A real function server (functions-framework, as Cloud Run runs it) is started both ways:
with ``K_SERVICE`` set and no emulator variables it answers 503 to every request and logs
CRITICAL; with the emulators present the same code serves with the demo secrets.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import stripe
from pydantic import SecretStr

from shared import secretcheck
from shared.settings import DEMO_JWT_SECRET, DEMO_STRIPE_WEBHOOK_SECRET, Settings

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORK = Path(sys.executable).parent / "functions-framework"
STRONG = {
    "JWT_SECRET": "j" * 48,
    "CONFIG_ENCRYPTION_KEY": "c" * 48,
    "SLIP2GO_API_SECRET": "s" * 24,
    "STRIPE_WEBHOOK_SECRET": "whsec_" + "w" * 32,
    "CONSOLE_SESSION_SECRET": "k" * 48,
}
CLEARED = (
    "FIRESTORE_EMULATOR_HOST",
    "PUBSUB_EMULATOR_HOST",
    "FIREBASE_AUTH_EMULATOR_HOST",
    *STRONG,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def function_server(
    target: str, source: str, env: dict[str, str], log: Path
) -> Iterator[httpx.Client]:
    """``functions-framework --target ...`` in a child process; yields a client for it."""
    port = _free_port()
    child_env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    child_env.update({"PYTHONPATH": str(ROOT), "LOG_LEVEL": "INFO", "LOG_FORMAT": "json", **env})
    with log.open("w") as out:
        child = subprocess.Popen(
            [str(FRAMEWORK), f"--target={target}", f"--source={source}", f"--port={port}"],
            cwd=ROOT,
            env=child_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client.get("/", timeout=2)
                break
            except httpx.TransportError:
                if child.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log.read_text()) from None
                time.sleep(0.2)
        yield client
    finally:
        client.close()
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a busy machine: make sure it is gone
            child.kill()
            child.wait(timeout=10)


def _demo_token(sub: str = "victim") -> str:
    now = int(time.time())
    claims = {"sub": sub, "user_id": sub, "iat": now, "exp": now + 600}
    return jwt.encode(claims, DEMO_JWT_SECRET, "HS256")


def _critical_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if '"CRITICAL"' in line]


def test_credit_api_refuses_demo_secrets_without_the_emulators(tmp_path: Path) -> None:
    log = tmp_path / "credit-api.log"
    env = {"K_SERVICE": "credit-api", "GOOGLE_CLOUD_PROJECT": "prod-like"}
    with function_server("credit_api", "functions/credit_api.py", env, log) as client:
        forged = {"Authorization": f"Bearer {_demo_token()}"}
        answers = [
            client.get("/api/v1/credit/balance", headers=forged),
            client.post("/api/v1/auth/login", json={"email": "a@b.co", "password": "x"}),
            client.post("/api/v1/system/check-update", json={"version": "2.0.0"}),
            client.get("/nowhere"),
        ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.json() == {"detail": "Service unavailable: not configured"}
    critical = _critical_lines(log)
    assert len(critical) >= len(answers)
    for name in ("JWT_SECRET", "SLIP2GO_API_SECRET", "CONFIG_ENCRYPTION_KEY"):
        assert name in critical[0]
    assert DEMO_JWT_SECRET not in log.read_text()


def test_a_short_secret_is_refused_and_strong_ones_pass_the_check(tmp_path: Path) -> None:
    log = tmp_path / "credit-api-short.log"
    env = {"K_SERVICE": "credit-api", **STRONG, "JWT_SECRET": "12345"}
    with function_server("credit_api", "functions/credit_api.py", env, log) as client:
        answer = client.get("/api/v1/credit/balance")
    assert answer.status_code == 503
    critical = _critical_lines(log)
    assert critical and "JWT_SECRET: shorter than 32 bytes" in critical[0]
    assert "SLIP2GO_API_SECRET" not in critical[0] and "12345" not in log.read_text()


def test_stripe_webhook_refuses_events_signed_with_the_demo_secret(tmp_path: Path) -> None:
    log = tmp_path / "stripe.log"
    payload = '{"id": "evt_forged", "type": "checkout.session.completed", "data": {"object": {}}}'
    ts = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(
        f"{ts}.{payload}", DEMO_STRIPE_WEBHOOK_SECRET
    )
    env = {"K_SERVICE": "stripe-webhook"}
    with function_server("stripe_webhook", "functions/stripe_webhook.py", env, log) as client:
        answer = client.post(
            "/",
            content=payload,
            headers={"Stripe-Signature": f"t={ts},v1={signature}"},
        )
    assert answer.status_code == 503
    assert "STRIPE_WEBHOOK_SECRET: a published demo value" in _critical_lines(log)[0]


def test_the_same_code_serves_demo_secrets_on_the_emulators(
    stack: Any, db: Any, tmp_path: Path
) -> None:
    log = tmp_path / "credit-api-local.log"
    env = {
        "FIRESTORE_EMULATOR_HOST": stack.firestore_host,
        "GOOGLE_CLOUD_PROJECT": stack.config.project,
    }
    with function_server("credit_api", "functions/credit_api.py", env, log) as client:
        unknown = client.get(
            "/api/v1/credit/balance", headers={"Authorization": f"Bearer {_demo_token()}"}
        )
        login = client.post(
            "/api/v1/auth/login",
            json={
                "email": "nobody@example.com",
                "password": "wrong-password-1",
                "hardware_id": "h",
            },
        )
    assert unknown.status_code in (401, 404), unknown.text  # served: no such user
    assert login.status_code in (400, 401), login.text
    assert not _critical_lines(log)


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("JWT_SECRET", "", "missing"),
        ("JWT_SECRET", DEMO_JWT_SECRET, "demo"),
        ("JWT_SECRET", "x" * 31, "shorter"),
        ("CONFIG_ENCRYPTION_KEY", "k" * 20, "shorter"),
        ("CONFIG_ENCRYPTION_KEY", STRONG["JWT_SECRET"], "equal to JWT_SECRET"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_short", "whsec_"),
        ("STRIPE_WEBHOOK_SECRET", "w" * 40, "whsec_"),
        ("STRIPE_WEBHOOK_SECRET", f"whsec_{'n' * 32},{DEMO_STRIPE_WEBHOOK_SECRET}", "demo"),
        ("STRIPE_WEBHOOK_SECRET", " , ", "missing"),
        ("SLIP2GO_API_SECRET", "abc", "shorter"),
    ],
)
def test_secret_rules(name: str, value: str, reason: str) -> None:
    values = {k.lower(): SecretStr(v) for k, v in STRONG.items()}
    assert secretcheck.problems(STRONG, Settings(**values)) == []
    values[name.lower()] = SecretStr(value)
    found = secretcheck.problems(STRONG, Settings(**values))
    assert [p.secret for p in found] == [name]
    assert reason in found[0].reason
