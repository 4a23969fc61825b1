"""Secrets fail closed outside the emulators.

``shared/settings.py`` carries published demo values so that ``make run`` and the tests
work with no setup. Those values must never guard real money: anyone can sign a JWT or a
Stripe event with them. Each HTTP function names its secrets in the registry; before it
handles a request, ``refusal`` checks them:

- on the emulators (``FIRESTORE_EMULATOR_HOST`` set) anything goes, demo values included;
- anywhere else a secret that is missing (empty), equal to a published demo value, or
  shorter than its algorithm needs is refused, and the function answers 503 to every
  request with a CRITICAL log naming the secret and the reason (never its value).

Minimums (docs/runbook.md, "Secrets"):

| secret | rule |
|---|---|
| ``JWT_SECRET`` | >= 32 bytes (HS256 signs with a 256-bit HMAC key, RFC 7518 3.2) |
| ``CONFIG_ENCRYPTION_KEY`` | >= 32 bytes (AES-256 key material), not ``JWT_SECRET`` |
| ``STRIPE_WEBHOOK_SECRET`` | each comma-separated secret ``whsec_`` followed by >= 24 characters |
| ``SLIP2GO_API_SECRET`` | >= 16 characters |
| ``CONSOLE_SESSION_SECRET`` | >= 32 bytes (signs the operator console's session cookie) |
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

from shared.logs import get_logger, log
from shared.settings import (
    DEMO_CONFIG_ENCRYPTION_KEY,
    DEMO_CONSOLE_SESSION_SECRET,
    DEMO_JWT_SECRET,
    DEMO_SLIP2GO_API_SECRET,
    DEMO_STRIPE_WEBHOOK_SECRET,
    Settings,
)

logger = get_logger("secrets")

DEMO_VALUES = frozenset(
    {
        DEMO_JWT_SECRET,
        DEMO_STRIPE_WEBHOOK_SECRET,
        DEMO_SLIP2GO_API_SECRET,
        DEMO_CONFIG_ENCRYPTION_KEY,
        DEMO_CONSOLE_SESSION_SECRET,
        # Earlier published demo values and the usual placeholders.
        "change-me",
        "changeme",
        "secret",
    }
)
JWT_MIN_BYTES = 32
CONFIG_KEY_MIN_BYTES = 32
STRIPE_PREFIX = "whsec_"
STRIPE_MIN_CHARS_AFTER_PREFIX = 24
SLIP2GO_MIN_CHARS = 16
CONSOLE_SECRET_MIN_BYTES = 32


@dataclass(frozen=True)
class Problem:
    """One refused secret: its variable name and why (never its value)."""

    secret: str
    reason: str

    def __str__(self) -> str:
        return f"{self.secret}: {self.reason}"


def emulated() -> bool:
    """True when the process talks to the Firestore emulator (``make run``, the tests)."""
    return bool(os.environ.get("FIRESTORE_EMULATOR_HOST", "").strip())


def _common(name: str, value: str) -> str | None:
    if not value.strip():
        return "missing"
    if value in DEMO_VALUES or value.strip() in DEMO_VALUES:
        return "a published demo value"
    return None


def _check_one(name: str, settings: Settings) -> list[Problem]:
    if name == "JWT_SECRET":
        value = settings.jwt_secret.get_secret_value()
        reason = _common(name, value)
        if reason is None and len(value.encode("utf-8")) < JWT_MIN_BYTES:
            reason = f"shorter than {JWT_MIN_BYTES} bytes (HS256)"
        return [Problem(name, reason)] if reason else []
    if name == "CONFIG_ENCRYPTION_KEY":
        value = settings.config_encryption_key.get_secret_value()
        reason = _common(name, value)
        if reason is None and len(value.encode("utf-8")) < CONFIG_KEY_MIN_BYTES:
            reason = f"shorter than {CONFIG_KEY_MIN_BYTES} bytes (AES-256 key material)"
        if reason is None and value == settings.jwt_secret.get_secret_value():
            reason = "equal to JWT_SECRET (clients would hold the token key)"
        return [Problem(name, reason)] if reason else []
    if name == "STRIPE_WEBHOOK_SECRET":
        raw = settings.stripe_webhook_secret.get_secret_value()
        parts = settings.stripe_secrets()
        if not parts:
            return [Problem(name, "missing")]
        problems = []
        for index, part in enumerate(parts, start=1):
            reason = _common(name, part)
            if reason is None and (
                not part.startswith(STRIPE_PREFIX)
                or len(part) - len(STRIPE_PREFIX) < STRIPE_MIN_CHARS_AFTER_PREFIX
            ):
                reason = (
                    f"not {STRIPE_PREFIX} followed by at least "
                    f"{STRIPE_MIN_CHARS_AFTER_PREFIX} characters"
                )
            if reason:
                where = f" (secret {index} of {len(parts)})" if "," in raw else ""
                problems.append(Problem(name, reason + where))
        return problems
    if name == "SLIP2GO_API_SECRET":
        value = settings.slip2go_api_secret.get_secret_value()
        reason = _common(name, value)
        if reason is None and len(value) < SLIP2GO_MIN_CHARS:
            reason = f"shorter than {SLIP2GO_MIN_CHARS} characters"
        return [Problem(name, reason)] if reason else []
    if name == "CONSOLE_SESSION_SECRET":
        value = settings.console_session_secret.get_secret_value()
        reason = _common(name, value)
        if reason is None and len(value.encode("utf-8")) < CONSOLE_SECRET_MIN_BYTES:
            reason = f"shorter than {CONSOLE_SECRET_MIN_BYTES} bytes (session signing key)"
        return [Problem(name, reason)] if reason else []
    return [Problem(name, "no rule for this secret (add one to shared/secretcheck.py)")]


def problems(names: Iterable[str], settings: Settings) -> list[Problem]:
    """Every refused secret among ``names`` (ignores the emulator switch)."""
    found: list[Problem] = []
    for name in names:
        found += _check_one(name, settings)
    return found


def refusal(function: str, names: Iterable[str], settings: Settings) -> str | None:
    """None when ``function`` may serve; else the reason, logged at CRITICAL."""
    names = tuple(names)
    if not names or emulated():
        return None
    found = problems(names, settings)
    if not found:
        return None
    reason = "; ".join(str(p) for p in found)
    log(
        logger,
        logging.CRITICAL,
        f"refusing to serve: unsafe secrets ({reason}); set them in Secret Manager "
        "(docs/runbook.md, Secrets)",
        function=function,
        refused=[p.secret for p in found],
    )
    return reason
