"""Accounts of the BigEye credit API: registration, login, bearer tokens.

- Passwords are stored as bcrypt hashes (``users.password_hash``; cost from settings).
- An e-mail address is unique: registration creates ``user_emails/{sha256(email)}`` and the
  ``users`` document in ONE atomic unit, so two registrations of one address can never
  both commit (the loser gets 409).
- A user is bound to the ``hardware_id`` given at registration; a login from another device
  is refused (403) and audited ``LOGIN_FAILED_DEVICE_MISMATCH``.
- Tokens are HS256 JWTs signed with ``settings.jwt_secret``: ``sub`` (user id), ``hid``
  (hardware id), ``iat``, ``exp`` (``iat + jwt_ttl_s``). Expiry is checked against the
  process clock (so tests can move time); a token is also refused once the user's
  ``hardware_id`` changes, and a suspended or banned user gets 403 on every call.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import bcrypt
import jwt
from google.cloud import firestore

from shared.atomic import Unit, run_atomically
from shared.bigeye.audit import audit, audit_now
from shared.bigeye.models import (
    USER_EMAILS,
    USERS,
    AuditEvent,
    LoginRequest,
    RegisterRequest,
    Severity,
    UserStatus,
)
from shared.errors import Conflict, Forbidden, RateLimited, Unauthenticated
from shared.settings import get_settings

ISSUER = "bigeye-credit-api"
_ALGORITHM = "HS256"
_dummy_hashes: dict[int, bytes] = {}


@dataclass(frozen=True)
class Caller:
    """The authenticated user of a request."""

    user_id: str
    user: dict[str, Any]


def email_key(email: str) -> str:
    """The ``user_emails`` document id of an (already lower-cased) address."""
    return hashlib.sha256(email.encode("utf-8")).hexdigest()


def _rounds() -> int:
    return max(4, min(16, get_settings().bcrypt_rounds))


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=_rounds())).decode()


def _dummy_hash() -> str:
    """A hash of the configured cost to check against when the e-mail is unknown, so an
    unknown address costs as much as a wrong password (no e-mail probing by timing)."""
    rounds = _rounds()
    if rounds not in _dummy_hashes:
        _dummy_hashes[rounds] = bcrypt.hashpw(b"not-a-password", bcrypt.gensalt(rounds=rounds))
    return _dummy_hashes[rounds].decode()


def password_matches(password: str, password_hash: str | None) -> bool:
    try:
        matched = bcrypt.checkpw(
            password.encode("utf-8"), (password_hash or _dummy_hash()).encode()
        )
    except ValueError:
        return False
    return matched and bool(password_hash)


def issue_token(user_id: str, hardware_id: str, now: datetime) -> str:
    settings = get_settings()
    issued = int(now.timestamp())
    claims = {
        "sub": user_id,
        "hid": hardware_id,
        "iss": ISSUER,
        "iat": issued,
        "exp": issued + settings.jwt_ttl_s,
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=_ALGORITHM)


def verify_token(token: str, now: datetime) -> dict[str, Any]:
    """The token's claims, or Unauthenticated (bad signature, malformed, expired)."""
    try:
        claims = jwt.decode(
            token,
            get_settings().jwt_secret.get_secret_value(),
            algorithms=[_ALGORITHM],
            issuer=ISSUER,
            options={
                "require": ["sub", "exp", "iat", "iss"],
                "verify_exp": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError:
        raise Unauthenticated("Invalid token") from None
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise Unauthenticated("Invalid token")
    if now.timestamp() >= exp:
        raise Unauthenticated("Token expired")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise Unauthenticated("Invalid token")
    return claims


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or Unauthenticated."""
    if not header:
        raise Unauthenticated("Missing token")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Invalid token")
    return token.strip()


def _check_status(user: dict[str, Any]) -> None:
    """Only the exact status ``active`` may act (an unset status counts as active, as in the
    top-up path); ``"Banned"``, ``"disabled"`` or anything else is refused."""
    status = user.get("status")
    if status is None or status == UserStatus.ACTIVE.value:
        return
    if status == UserStatus.SUSPENDED.value:
        raise Forbidden("Account suspended")
    if status == UserStatus.BANNED.value:
        raise Forbidden("Account banned")
    raise Forbidden("Account not active")


def load_caller(db: firestore.Client, claims: dict[str, Any]) -> Caller:
    """The user a verified token names: existing, same device, not blocked."""
    user_id = str(claims["sub"])
    if "/" in user_id or len(user_id) > 200 or user_id.startswith("__"):
        raise Unauthenticated("Invalid token")
    snap = db.collection(USERS).document(user_id).get()
    if not snap.exists:
        raise Unauthenticated("Invalid token")
    user = snap.to_dict() or {}
    if claims.get("hid") != user.get("hardware_id"):
        raise Unauthenticated("Token is not valid for this device")
    _check_status(user)
    return Caller(user_id=user_id, user=user)


def authenticate(db: firestore.Client, header: str | None, now: datetime) -> Caller:
    """The caller of a request: valid token, existing user, same device, not blocked."""
    return load_caller(db, verify_token(bearer_token(header), now))


def _session(user_id: str, user: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "token": issue_token(user_id, str(user.get("hardware_id") or ""), now),
        "user_id": user_id,
        "full_name": user.get("full_name"),
        "email": user.get("email"),
        "credits": int(user.get("credits") or 0),
    }


def register(
    db: firestore.Client, request: RegisterRequest, *, ip: str, now: datetime
) -> dict[str, Any]:
    """Create the user (credits 0), bound to its device; 409 when the e-mail is taken."""
    password_hash = hash_password(request.password)
    user_ref = db.collection(USERS).document()  # chosen once: every attempt writes this id
    email_ref = db.collection(USER_EMAILS).document(email_key(request.email))
    user = {
        "email": request.email,
        "password_hash": password_hash,
        "full_name": request.full_name,
        "phone": request.phone,
        "hardware_id": request.hardware_id,
        "tier": "standard",
        "credits": 0,
        "status": UserStatus.ACTIVE.value,
        "created_at": now,
        "last_login": now,
        "last_active": now,
        "total_topup_baht": 0,
        "total_credits_used": 0,
        "app_version": request.app_version,
        "metadata": {"os": request.os, "registration_ip": ip, "notes": ""},
    }

    def work(unit: Unit) -> None:
        if unit.get(email_ref).exists:
            raise Conflict("Email already registered")
        unit.create(email_ref, {"user_id": user_ref.id, "email": request.email, "created_at": now})
        unit.create(user_ref, user)
        audit(
            unit,
            AuditEvent.USER_REGISTER,
            user_id=user_ref.id,
            details={
                "email": request.email,
                "hardware_id": request.hardware_id,
                "ip": ip,
                "app_version": request.app_version,
                "os": request.os,
            },
            now=now,
        )

    run_atomically(db, work)
    return _session(user_ref.id, user, now)


LOGIN_THROTTLE = "login_throttle"


def _lock_seconds(failures: int) -> int:
    settings = get_settings()
    over = failures - settings.login_max_failures
    if over < 0:
        return 0
    return int(
        min(settings.login_lockout_max_s, settings.login_lockout_base_s * 2 ** min(over, 30))
    )


def _refuse_if_locked(
    db: firestore.Client,
    ref: Any,
    user_id: str,
    details: dict[str, Any],
    now: datetime,
) -> None:
    """429 while the account is locked, whatever the password (audited, no bcrypt run)."""
    state = ref.get().to_dict() or {}
    locked_until = state.get("locked_until")
    if locked_until is None or locked_until <= now:
        return
    audit_now(
        db,
        AuditEvent.LOGIN_FAILED_THROTTLED,
        user_id=user_id,
        details={**details, "locked_until": locked_until},
        now=now,
        severity=Severity.WARNING,
    )
    retry_after = max(1, math.ceil((locked_until - now).total_seconds()))
    raise RateLimited(
        f"Too many failed logins; retry in {retry_after} s", retry_after_s=retry_after
    )


def _record_failure(
    db: firestore.Client,
    ref: Any,
    user_id: str,
    details: dict[str, Any],
    now: datetime,
) -> None:
    """Count a wrong password and audit it in one unit; lock the account past the limit."""

    def work(unit: Unit) -> None:
        state = unit.get(ref).to_dict() or {}
        failures = int(state.get("failures") or 0) + 1
        lock_s = _lock_seconds(failures)
        unit.set(
            ref,
            {
                "user_id": user_id,
                "failures": failures,
                "last_failed_at": now,
                "locked_until": now + timedelta(seconds=lock_s) if lock_s else None,
            },
        )
        audit(
            unit,
            AuditEvent.LOGIN_FAILED_WRONG_PASSWORD,
            user_id=user_id,
            details={**details, "failures": failures, "locked_s": lock_s},
            now=now,
            severity=Severity.WARNING,
        )

    run_atomically(db, work)


def login(db: firestore.Client, request: LoginRequest, *, ip: str, now: datetime) -> dict[str, Any]:
    """Check password, status and device; 401 / 403 with an audit entry on failure."""
    index = db.collection(USER_EMAILS).document(email_key(request.email)).get()
    user_id = str((index.to_dict() or {}).get("user_id") or "") if index.exists else ""
    snap = db.collection(USERS).document(user_id).get() if user_id else None
    if snap is None or not snap.exists:
        password_matches(request.password, None)  # same cost as a wrong password
        raise Unauthenticated("Invalid email or password")
    user = snap.to_dict() or {}
    throttle_ref = db.collection(LOGIN_THROTTLE).document(user_id)
    details = {"email": request.email, "ip": ip, "hardware_id": request.hardware_id}
    _refuse_if_locked(db, throttle_ref, user_id, details, now)
    if not password_matches(request.password, user.get("password_hash")):
        _record_failure(db, throttle_ref, user_id, details, now)
        raise Unauthenticated("Invalid email or password")
    if throttle_ref.get().exists:
        throttle_ref.delete()
    _check_status(user)
    if request.hardware_id != user.get("hardware_id"):
        audit_now(
            db,
            AuditEvent.LOGIN_FAILED_DEVICE_MISMATCH,
            user_id=user_id,
            details={
                "email": request.email,
                "ip": ip,
                "hardware_id": request.hardware_id,
                "registered_hardware_id": user.get("hardware_id"),
            },
            now=now,
            severity=Severity.WARNING,
        )
        raise Forbidden("This account is registered to another device")
    fields: dict[str, Any] = {"last_login": now, "last_active": now}
    if request.app_version:
        fields["app_version"] = request.app_version
    # Blind field update: concurrent ledger postings on this user are not disturbed.
    db.collection(USERS).document(user_id).update(fields)
    return _session(user_id, user, now)
