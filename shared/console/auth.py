"""Console sign-in: Firebase Auth ID tokens with ``super_admin``, a signed session cookie.

- Production: the operator's Firebase Auth ID token is verified server-side (signature
  against Google's published ``securetoken`` certificates, audience = the project, issuer
  ``https://securetoken.google.com/<project>``, expiry) and must carry the custom claim
  ``super_admin: true`` -- the same claim the Firestore rules use.
- Locally: a dev sign-in by e-mail, only when the process talks to the emulators
  (``FIRESTORE_EMULATOR_HOST`` set) and is not a deployed function (no ``K_SERVICE``).
- The session is a cookie signed with ``CONSOLE_SESSION_SECRET`` (itsdangerous), holding the
  operator's uid/e-mail and the CSRF token every form must echo.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from shared.settings import get_settings

COOKIE = "console_session"
ADMIN_CLAIM = "super_admin"


class SignInRefused(Exception):
    """The token or session does not sign anyone in (``status`` 401 or 403)."""

    def __init__(self, detail: str, status: int = 401) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


@dataclass(frozen=True)
class Operator:
    """A signed-in operator: who (recorded as the actor of every action) and how."""

    uid: str
    email: str
    via: str
    csrf: str

    @property
    def actor(self) -> str:
        return f"console:{self.email or self.uid}"

    def as_dict(self) -> dict[str, str]:
        return {"uid": self.uid, "email": self.email, "via": self.via, "csrf": self.csrf}


def dev_sign_in_allowed() -> bool:
    """Only on the emulators, never in a deployed function."""
    return bool(os.environ.get("FIRESTORE_EMULATOR_HOST", "").strip()) and not os.environ.get(
        "K_SERVICE"
    )


def _serializer() -> URLSafeTimedSerializer:
    secret = get_settings().console_session_secret.get_secret_value()
    return URLSafeTimedSerializer(secret, salt="credits-console-session")


def verify_id_token(token: str, request: Any = None) -> dict[str, Any]:
    """The claims of a valid Firebase ID token of this project with ``super_admin``."""
    from google.auth import exceptions as auth_exc
    from google.auth.transport import requests as google_requests
    from google.oauth2 import id_token

    settings = get_settings()
    project = settings.google_cloud_project
    if not token or len(token) > 8192:
        raise SignInRefused("an ID token is required")
    try:
        claims = id_token.verify_token(
            token,
            request or google_requests.Request(),
            audience=project,
            certs_url=settings.console_firebase_certs_url,
        )
    except (ValueError, auth_exc.GoogleAuthError) as exc:
        raise SignInRefused(f"the ID token is not valid ({type(exc).__name__})") from None
    if claims.get("iss") != f"https://securetoken.google.com/{project}":
        raise SignInRefused("the ID token was not issued for this project")
    if not claims.get("sub"):
        raise SignInRefused("the ID token names no user")
    if claims.get(ADMIN_CLAIM) is not True:
        raise SignInRefused(f"this account lacks the {ADMIN_CLAIM} claim", status=403)
    return dict(claims)


def new_session(uid: str, email: str, via: str) -> tuple[Operator, str]:
    """A fresh operator session and its signed cookie value."""
    operator = Operator(uid=uid, email=email, via=via, csrf=secrets.token_urlsafe(24))
    return operator, _serializer().dumps(operator.as_dict())


def operator_of(cookie: str | None) -> Operator:
    """The operator of a signed, unexpired session cookie (SignInRefused otherwise)."""
    if not cookie:
        raise SignInRefused("not signed in")
    try:
        data = _serializer().loads(cookie, max_age=get_settings().console_session_ttl_s)
    except BadSignature:
        raise SignInRefused("the session is not valid; sign in again") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) for k in ("uid", "email", "via", "csrf")
    ):
        raise SignInRefused("the session is not valid; sign in again")
    if data["via"] == "dev" and not dev_sign_in_allowed():
        raise SignInRefused("dev sessions are only valid on the emulators")
    return Operator(uid=data["uid"], email=data["email"], via=data["via"], csrf=data["csrf"])


def csrf_ok(operator: Operator, sent: Any) -> bool:
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), operator.csrf.encode())
