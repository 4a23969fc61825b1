"""Accounts of the BigEye credit API: registration, login, bearer tokens.

- Passwords are stored as bcrypt hashes (``users.password_hash``; cost from settings).
- An e-mail address is unique: registration creates ``user_emails/{sha256(email)}`` and the
  ``users`` document in ONE atomic unit, so two registrations of one address can never
  both commit (the loser gets 409).
- A user is bound to the ``hardware_id`` given at registration; a login from another device
  is refused like a wrong password (401, counted by the failed-login throttle) and audited
  ``LOGIN_FAILED_DEVICE_MISMATCH``: a caller who is not yet authenticated never learns
  that a password is right unless the device is too.
- Failed logins are throttled per address (``login_throttle``, known or unknown e-mail
  alike), one password check in flight at a time (docs/security.md, "Logins").
- Tokens are HS256 JWTs signed with ``settings.jwt_secret``: ``sub`` (user id), ``hid``
  (hardware id), ``iat``, ``exp`` (``iat + jwt_ttl_s``). Expiry is checked against the
  process clock (so tests can move time); a token is also refused once the user's
  ``hardware_id`` changes, and a suspended or banned user gets 403 on every call.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import bcrypt
import jwt
from google.cloud import firestore

from shared.accountstatus import check_active
from shared.atomic import Unit, run_atomically
from shared.bigeye.audit import audit
from shared.bigeye.models import (
    USER_EMAILS,
    USERS,
    AuditEvent,
    LoginRequest,
    RegisterRequest,
    Severity,
    UserStatus,
)
from shared.bigeye.throttle import (
    BeginPlan,
    Outcome,
    Policy,
    decide_begin,
    decide_finish,
)
from shared.errors import Conflict, RateLimited, Unauthenticated
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
    """Only the exact status ``active`` may act (``shared.accountstatus``)."""
    check_active(user)


def load_caller(db: firestore.Client, claims: dict[str, Any]) -> Caller:
    """The user a verified token names: existing, same device, not blocked."""
    return caller_from(claims, db.collection(USERS).document(claimed_user_id(claims)).get())


def claimed_user_id(claims: dict[str, Any]) -> str:
    """The user id a verified token names, or Unauthenticated when it cannot be one."""
    user_id = str(claims["sub"])
    if "/" in user_id or len(user_id) > 200 or user_id.startswith("__"):
        raise Unauthenticated("Invalid token")
    return user_id


def caller_from(claims: dict[str, Any], snap: Any) -> Caller:
    """The caller, from a verified token and its user's snapshot (read by the caller: a
    unit of work reads it with its other documents)."""
    user_id = claimed_user_id(claims)
    if not snap.exists:
        raise Unauthenticated("Invalid token")
    user = snap.to_dict() or {}
    if claims.get("hid") != user.get("hardware_id"):
        raise Unauthenticated("Token is not valid for this device")
    _check_status(user)
    return Caller(user_id=user_id, user=user)


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


def throttle_ref(db: firestore.Client, email: str) -> firestore.DocumentReference:
    """``login_throttle/{sha256(canonical e-mail)}``: one per address, known or not, so a
    throttled answer never tells whether an account exists."""
    return db.collection(LOGIN_THROTTLE).document(email_key(email))


def _policy() -> Policy:
    settings = get_settings()
    return Policy(
        max_failures=settings.login_max_failures,
        lockout_base_s=settings.login_lockout_base_s,
        lockout_max_s=settings.login_lockout_max_s,
        check_lease_s=settings.login_check_lease_s,
        failure_memory_s=settings.login_failure_memory_s,
    )


def _retry_after(until: datetime, now: datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))


def _begin_check(
    db: firestore.Client,
    ref: firestore.DocumentReference,
    user_id: str | None,
    details: dict[str, Any],
    now: datetime,
) -> str:
    """Take the account's check lease (one password check in flight per address), or 429.

    In one unit: read the throttle record, ``throttle.decide_begin``, apply. While the
    account is locked, or another check of it is in flight, the refusal is recorded
    (``LOGIN_FAILED_THROTTLED`` for an account, a refusal count for an unknown address: one
    write either way) and RateLimited is raised; otherwise the lease is written.
    Serialising the checks is what makes the counter exact: N parallel guesses cannot all
    be checked before the first failure is counted, and a success resets only failures
    counted before it.
    """
    token = uuid.uuid4().hex
    policy = _policy()

    def work(unit: Unit) -> BeginPlan:
        snap = unit.get(ref)
        plan = decide_begin(snap.to_dict() if snap.exists else None, now, policy, token, user_id)
        if plan.doc is not None:
            unit.set(ref, plan.doc)
        elif user_id is not None:
            audit(
                unit,
                AuditEvent.LOGIN_FAILED_THROTTLED,
                user_id=user_id,
                details={**details, "locked_until": plan.refused_until, "reason": plan.reason},
                now=now,
                severity=Severity.WARNING,
            )
        else:
            unit.merge(ref, {"refused": firestore.Increment(1)})
        return plan

    plan = run_atomically(db, work)
    if plan.refused_until is not None:
        # A check in flight takes about a second (bcrypt): retry then, not at lease end.
        wait = _retry_after(plan.refused_until, now) if plan.reason == "locked" else 1
        raise RateLimited(f"Too many failed logins; retry in {wait} s", retry_after_s=wait)
    return token


def _finish_check(
    db: firestore.Client,
    ref: firestore.DocumentReference,
    token: str,
    outcome: Outcome,
    user_id: str | None,
    details: dict[str, Any],
    now: datetime,
) -> None:
    """Record how the check under ``token`` ended (``throttle.decide_finish``), in one unit
    with its audit entry."""
    policy = _policy()

    def work(unit: Unit) -> None:
        snap = unit.get(ref)
        state = snap.to_dict() if snap.exists else None
        plan = decide_finish(state, outcome, now, token, user_id, policy)
        if plan.audit_event is not None and user_id is not None:
            audit(
                unit,
                plan.audit_event,
                user_id=user_id,
                details={**details, "failures": plan.failures, "locked_s": plan.locked_s},
                now=now,
                severity=Severity.WARNING,
            )
        unit.set(ref, plan.doc)

    run_atomically(db, work)


def login(db: firestore.Client, request: LoginRequest, *, ip: str, now: datetime) -> dict[str, Any]:
    """Check password and device, then status; 401 / 429 / 403 with an audit entry.

    An outsider cannot tell a right password on another device from a wrong password: both
    are 401 ``Invalid email or password`` and count one failure towards the lock (audited
    ``LOGIN_FAILED_DEVICE_MISMATCH`` and ``LOGIN_FAILED_WRONG_PASSWORD``). An unknown
    address goes through the same throttle (docs/security.md, "Logins").
    """
    index = db.collection(USER_EMAILS).document(email_key(request.email)).get()
    user_id = str((index.to_dict() or {}).get("user_id") or "") if index.exists else ""
    snap = db.collection(USERS).document(user_id).get() if user_id else None
    user = (snap.to_dict() or {}) if snap is not None and snap.exists else None
    known_id = user_id if user is not None else None
    ref = throttle_ref(db, request.email)
    details: dict[str, Any] = {"email": request.email, "ip": ip, "hardware_id": request.hardware_id}
    token = _begin_check(db, ref, known_id, details, now)
    outcome = Outcome.ABANDONED
    try:
        # An unknown address is checked against a dummy hash: the same bcrypt cost.
        if not password_matches(request.password, (user or {}).get("password_hash")):
            outcome = Outcome.WRONG_PASSWORD
        elif user is None or request.hardware_id != user.get("hardware_id"):
            outcome = Outcome.DEVICE_MISMATCH
            details["registered_hardware_id"] = (user or {}).get("hardware_id")
        else:
            outcome = Outcome.SUCCESS
    finally:
        _finish_check(db, ref, token, outcome, known_id, details, now)
    if outcome is not Outcome.SUCCESS or user is None or known_id is None:
        raise Unauthenticated("Invalid email or password")
    _check_status(user)
    fields: dict[str, Any] = {"last_login": now, "last_active": now}
    if request.app_version:
        fields["app_version"] = request.app_version
    # Blind field update: concurrent ledger postings on this user are not disturbed.
    db.collection(USERS).document(known_id).update(fields)
    return _session(known_id, user, now)
