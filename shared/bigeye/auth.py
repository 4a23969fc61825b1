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
from datetime import datetime, timedelta
from enum import StrEnum
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


class _Outcome(StrEnum):
    """How one password check ended (``_finish_check``)."""

    SUCCESS = "SUCCESS"
    WRONG_PASSWORD = "WRONG_PASSWORD"
    DEVICE_MISMATCH = "DEVICE_MISMATCH"
    ABANDONED = "ABANDONED"  # the check raised: release the lease, count nothing


def throttle_ref(db: firestore.Client, email: str) -> firestore.DocumentReference:
    """``login_throttle/{sha256(canonical e-mail)}``: one per address, known or not, so a
    throttled answer never tells whether an account exists."""
    return db.collection(LOGIN_THROTTLE).document(email_key(email))


def _lock_seconds(failures: int) -> int:
    settings = get_settings()
    over = failures - settings.login_max_failures
    if over < 0:
        return 0
    return int(
        min(settings.login_lockout_max_s, settings.login_lockout_base_s * 2 ** min(over, 30))
    )


def _live_state(snap: Any, now: datetime) -> dict[str, Any]:
    """The throttle record, or {} once it is forgotten (``expires_at`` passed: the TTL
    policy deletes it some time later, the logic never waits for that)."""
    state = snap.to_dict() if snap.exists else None
    if not state:
        return {}
    expires_at = state.get("expires_at")
    if isinstance(expires_at, datetime) and expires_at <= now:
        return {}
    return state


def _expiry(now: datetime, *times: Any) -> datetime:
    """When a record may be forgotten: ``LOGIN_FAILURE_MEMORY_S`` after ``now``, and never
    before a lock or a check lease it carries ends."""
    latest = now + timedelta(seconds=max(1, get_settings().login_failure_memory_s))
    for value in times:
        if isinstance(value, datetime) and value > latest:
            latest = value
    return latest


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

    In one unit: while the account is locked, or another check of it is in flight, the
    refusal is recorded (``LOGIN_FAILED_THROTTLED`` for an account, a refusal count for an
    unknown address: one write either way) and RateLimited is raised; otherwise the lease
    is written. Serialising the checks is what makes the counter exact: N parallel guesses
    cannot all be checked before the first failure is counted, and a success resets only
    failures counted before it.
    """
    token = uuid.uuid4().hex
    lease_s = max(1, get_settings().login_check_lease_s)

    def work(unit: Unit) -> tuple[str, datetime | None]:
        state = _live_state(unit.get(ref), now)
        locked_until = state.get("locked_until")
        checking_until = state.get("checking_until")
        refused_until = None
        reason = ""
        if isinstance(locked_until, datetime) and locked_until > now:
            refused_until, reason = locked_until, "locked"
        elif isinstance(checking_until, datetime) and checking_until > now:
            refused_until, reason = checking_until, "check in flight"
        if refused_until is not None:
            if user_id is not None:
                audit(
                    unit,
                    AuditEvent.LOGIN_FAILED_THROTTLED,
                    user_id=user_id,
                    details={**details, "locked_until": refused_until, "reason": reason},
                    now=now,
                    severity=Severity.WARNING,
                )
            else:
                unit.merge(ref, {"refused": firestore.Increment(1)})
            return reason, refused_until
        until = now + timedelta(seconds=lease_s)
        unit.set(
            ref,
            {
                "user_id": user_id,
                "failures": int(state.get("failures") or 0),
                "last_failed_at": state.get("last_failed_at"),
                "locked_until": None,
                "checking": token,
                "checking_until": until,
                "expires_at": _expiry(now, until),
            },
        )
        return token, None

    result, refused_until = run_atomically(db, work)
    if refused_until is not None:
        # A check in flight takes about a second (bcrypt): retry then, not at lease end.
        wait = _retry_after(refused_until, now) if result == "locked" else 1
        raise RateLimited(f"Too many failed logins; retry in {wait} s", retry_after_s=wait)
    return result


def _finish_check(
    db: firestore.Client,
    ref: firestore.DocumentReference,
    token: str,
    outcome: _Outcome,
    user_id: str | None,
    details: dict[str, Any],
    now: datetime,
) -> None:
    """Record how the check under ``token`` ended, in one unit with its audit entry.

    A wrong password or a device mismatch counts one failure (and locks the account from
    the ``LOGIN_MAX_FAILURES``-th on); a success forgets the failures counted before it.
    The lease is released if it is still ours (a check that outlived its lease leaves the
    newer one alone).
    """

    def work(unit: Unit) -> None:
        state = _live_state(unit.get(ref), now)
        ours = state.get("checking") == token
        other_until = None if ours else state.get("checking_until")
        other = state.get("checking") if isinstance(other_until, datetime) else None
        failures = int(state.get("failures") or 0)
        locked_until = state.get("locked_until")
        last_failed_at = state.get("last_failed_at")
        if outcome is _Outcome.SUCCESS:
            failures, locked_until = 0, None
        elif outcome is not _Outcome.ABANDONED:
            failures += 1
            lock_s = _lock_seconds(failures)
            last_failed_at = now
            locked_until = now + timedelta(seconds=lock_s) if lock_s else None
            if user_id is not None:
                event = (
                    AuditEvent.LOGIN_FAILED_DEVICE_MISMATCH
                    if outcome is _Outcome.DEVICE_MISMATCH
                    else AuditEvent.LOGIN_FAILED_WRONG_PASSWORD
                )
                audit(
                    unit,
                    event,
                    user_id=user_id,
                    details={**details, "failures": failures, "locked_s": lock_s},
                    now=now,
                    severity=Severity.WARNING,
                )
        if failures == 0 and other is None:
            # Nothing left to remember: forgotten now (expires_at = now), deleted by TTL.
            unit.set(ref, {"user_id": state.get("user_id", user_id), "expires_at": now})
            return
        unit.set(
            ref,
            {
                "user_id": state.get("user_id", user_id),
                "failures": failures,
                "last_failed_at": last_failed_at,
                "locked_until": locked_until,
                "checking": other,
                "checking_until": other_until if other else None,
                "expires_at": _expiry(now, locked_until, other_until if other else None),
            },
        )

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
    outcome = _Outcome.ABANDONED
    try:
        # An unknown address is checked against a dummy hash: the same bcrypt cost.
        if not password_matches(request.password, (user or {}).get("password_hash")):
            outcome = _Outcome.WRONG_PASSWORD
        elif user is None or request.hardware_id != user.get("hardware_id"):
            outcome = _Outcome.DEVICE_MISMATCH
            details["registered_hardware_id"] = (user or {}).get("hardware_id")
        else:
            outcome = _Outcome.SUCCESS
    finally:
        _finish_check(db, ref, token, outcome, known_id, details, now)
    if outcome is not _Outcome.SUCCESS or user is None or known_id is None:
        raise Unauthenticated("Invalid email or password")
    _check_status(user)
    fields: dict[str, Any] = {"last_login": now, "last_active": now}
    if request.app_version:
        fields["app_version"] = request.app_version
    # Blind field update: concurrent ledger postings on this user are not disturbed.
    db.collection(USERS).document(known_id).update(fields)
    return _session(known_id, user, now)
