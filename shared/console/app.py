"""admin-console: the operator console's pages and actions (docs/console.md).

Every action calls the same service as ``credits-admin`` (``shared.admin.operations``,
``shared.admin.accounts``, ``shared.admin.router``, ``shared.billing``,
``shared.bigeye.topup``, ``shared.ledger.reconcile``), which audits it; the actor recorded is
``console:<operator e-mail>``. Every POST other than sign-in carries the session's CSRF
token. A refused action re-renders its page with the service's detail and a 4xx status.

Pages and actions are in ``shared.console.pages`` (profit, money queue, users) and
``shared.console.operate`` (loss users, providers, promotions and settings); this module
signs operators in and routes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.console import auth, operate, pages
from shared.console.web import Page, detail, page, redirect, response, with_status
from shared.errors import CreditsError, http_status

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {
    "chart.umd.js": "application/javascript",
    "console.js": "application/javascript",
}

Handler = Callable[[Any, auth.Operator], Any]


# -- sign-in -------------------------------------------------------------------------------
def login_page(request: Any, error: str | None = None, status: int = 200) -> Any:
    return page(
        request, "login", None, status, error=error, dev=auth.dev_sign_in_allowed(), profile=""
    )


def login(request: Any) -> Any:
    token = request.form.get("id_token", "").strip()
    try:
        claims = auth.verify_id_token(token)
    except auth.SignInRefused as exc:
        return login_page(request, exc.detail, exc.status)
    _, cookie = auth.new_session(str(claims["sub"]), str(claims.get("email") or ""), "firebase")
    return redirect(request, "/profit", cookie)


def login_dev(request: Any) -> Any:
    if not auth.dev_sign_in_allowed():
        raise Page(404, "not found")
    email = request.form.get("email", "").strip()
    if not email or len(email) > 200 or "@" not in email:
        return login_page(request, "dev sign-in needs an e-mail address", 400)
    _, cookie = auth.new_session(f"dev:{email}", email, "dev")
    return redirect(request, "/profit", cookie)


# -- routing -------------------------------------------------------------------------------
GETS: dict[str, Handler] = {
    "/profit": pages.profit,
    "/queue": pages.queue,
    "/users": pages.users,
    "/loss": operate.loss,
    "/providers": operate.providers,
    "/promotions": operate.promotions,
}
#: Each action and the page that shows its outcome (or its refusal, with the 4xx status).
POSTS: dict[str, tuple[Handler, Callable[..., Any]]] = {
    "/queue/replay": (pages.replay, pages.queue),
    "/queue/slips/approve": (pages.approve, pages.queue),
    "/queue/slips/reject": (pages.reject, pages.queue),
    "/users/adjust": (pages.adjust, pages.users),
    "/users/reconcile": (pages.reconcile_user, pages.users),
    "/users/status": (operate.account_status, pages.users),
    "/users/rebind": (operate.account_rebind, pages.users),
    "/loss/action": (operate.loss_action, operate.loss),
    "/providers/ack": (operate.alert_ack, operate.providers),
    "/providers/flag": (operate.pipeline_flag, operate.providers),
    "/promotions/create": (operate.promotion_create, operate.promotions),
    "/promotions/change": (operate.promotion_change, operate.promotions),
    "/settings": (operate.settings_update, operate.promotions),
}


def _act(request: Any, operator: auth.Operator, path: str) -> Any:
    action, shown = POSTS[path]
    if not auth.csrf_ok(operator, request.form.get("csrf")):
        return detail("the form's CSRF token is missing or stale", 403)
    try:
        return action(request, operator)
    except CreditsError as exc:
        status = http_status(exc)
        if status >= 500:
            raise
        error = exc.detail
    except Page as exc:
        status, error = exc.status, exc.detail
    try:
        return with_status(shown(request, operator, error=error), status)
    except Page:
        return detail(error, status)


def handle(request: Any) -> Any:
    """Answer one console request (never a 5xx for bad input)."""
    path = request.path.rstrip("/") or "/"
    method = request.method
    # Not /static/: the functions framework's Flask app keeps that path for itself.
    if method == "GET" and path.startswith("/assets/"):
        name = path[len("/assets/") :]
        if name not in STATIC_FILES:
            return detail("not found", 404)
        return response(
            (STATIC / name).read_bytes(),
            200,
            STATIC_FILES[name],
            **{"Cache-Control": "public, max-age=3600"},
        )
    try:
        if path == "/login":
            if method == "GET":
                return login_page(request)
            if method == "POST":
                return login(request)
            raise Page(405, "method not allowed")
        if path == "/login/dev" and method == "POST":
            return login_dev(request)
        if path == "/logout" and method == "POST":
            return redirect(request, "/login", clear=True)
        try:
            operator = auth.operator_of(request.cookies.get(auth.COOKIE))
        except auth.SignInRefused:
            if method == "GET" and (path in GETS or path == "/"):
                return redirect(request, "/login")
            return detail("sign in first", 401)
        if method == "GET":
            if path == "/":
                return redirect(request, "/profit")
            if path in GETS:
                return GETS[path](request, operator)
            parts = path.split("/")
            if len(parts) == 4 and parts[1] == "slips" and parts[3] == "image":
                return pages.slip_image(request, operator, parts[2])
            raise Page(404, "not found")
        if method == "POST" and path in POSTS:
            return _act(request, operator, path)
        if path in GETS or path in POSTS or path in ("/logout", "/login/dev"):
            raise Page(405, "method not allowed")
        raise Page(404, "not found")
    except Page as exc:
        return detail(exc.detail, exc.status)
