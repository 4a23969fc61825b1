"""What every console page and action shares: answers, redirects, form fields, rendering."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shared.console import auth
from shared.console.templates import render
from shared.settings import get_settings

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self' "
    "'unsafe-inline'; script-src 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


class Page(Exception):
    """Stop and answer ``status`` with a plain detail (4xx)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def response(body: Any, status: int = 200, mimetype: str = "text/html", **headers: str) -> Any:
    import flask

    answer = flask.Response(body, status=status, mimetype=mimetype)
    for name, value in {**SECURITY_HEADERS, **headers}.items():
        answer.headers[name] = value
    return answer


def detail(text: str, status: int) -> Any:
    """An error answer outside a page: ``{"detail": ...}`` as every HTTP function's."""
    return response(json.dumps({"detail": text}), status, "application/json")


def base(request: Any) -> str:
    """The URL prefix the function is served under (``/admin-console`` locally)."""
    script = request.environ.get("SCRIPT_NAME", "") or ""
    return str(script).rstrip("/")


def redirect(request: Any, where: str, cookie: str | None = None, clear: bool = False) -> Any:
    answer = response("", 303, Location=base(request) + where)
    secure = not auth.dev_sign_in_allowed()
    if cookie is not None:
        answer.set_cookie(
            auth.COOKIE,
            cookie,
            max_age=get_settings().console_session_ttl_s,
            httponly=True,
            secure=secure,
            samesite="Strict",
            path="/",
        )
    if clear:
        answer.delete_cookie(auth.COOKIE, path="/")
    return answer


def profile(request: Any) -> str:
    settings = get_settings()
    wanted = request.values.get("profile") or settings.schema_profile
    if wanted not in settings.served_profiles():
        raise Page(400, f"profile {wanted!r} is not served here")
    return str(wanted)


def page(
    request: Any, name: str, operator: auth.Operator | None, status: int = 200, **ctx: Any
) -> Any:
    settings = get_settings()
    ctx.setdefault("profile", settings.schema_profile)
    ctx.setdefault("title", name.capitalize())
    html = render(
        name,
        base=base(request),
        operator=operator,
        profiles=sorted(settings.served_profiles()),
        **ctx,
    )
    return response(html, status)


def required(request: Any, name: str, limit: int = 500) -> str:
    value = request.form.get(name, "").strip()
    if not value:
        raise Page(400, f"{name} is required")
    if len(value) > limit:
        raise Page(400, f"{name} is longer than {limit} characters")
    return str(value)


def optional(request: Any, name: str, limit: int = 500) -> str | None:
    value = request.form.get(name, "").strip()
    if len(value) > limit:
        raise Page(400, f"{name} is longer than {limit} characters")
    return str(value) or None


def stamp(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if isinstance(value, datetime) else str(value or "")


def num(value: Any) -> float:
    try:
        found = round(float(value or 0), 4)
    except (TypeError, ValueError):
        return 0.0
    return found if found == found and abs(found) != float("inf") else 0.0


def client_ip(request: Any) -> str:
    """The operator's address, recorded by the services that audit ``ip_address``."""
    from shared.bigeye.api import client_ip as from_request

    return from_request(request)


def with_status(answer: Any, status: int) -> Any:
    answer.status_code = status
    return answer
