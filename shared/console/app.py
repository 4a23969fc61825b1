"""admin-console: the operator console's pages and actions (docs/console.md).

Every action calls the same service as ``credits-admin`` (``shared.admin.operations``,
``shared.billing``, ``shared.bigeye.topup``), which audits it; the actor recorded is
``console:<operator e-mail>``. Every POST other than sign-in carries the session's CSRF
token. A refused action re-renders its page with the service's detail and a 4xx status.
"""

from __future__ import annotations

import json
import secrets
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.console import auth
from shared.console.templates import render
from shared.errors import CreditsError, http_status
from shared.settings import get_settings

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {
    "chart.umd.js": "application/javascript",
    "console.js": "application/javascript",
}
MAX_RANGE_DAYS = 366
SLIP_STATUSES = ("PENDING", "REJECTED")
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


def _response(body: Any, status: int = 200, mimetype: str = "text/html", **headers: str) -> Any:
    import flask

    response = flask.Response(body, status=status, mimetype=mimetype)
    for name, value in {**SECURITY_HEADERS, **headers}.items():
        response.headers[name] = value
    return response


def _detail(detail: str, status: int) -> Any:
    """An error answer outside a page: ``{"detail": ...}`` as every HTTP function's."""
    return _response(json.dumps({"detail": detail}), status, "application/json")


def _base(request: Any) -> str:
    """The URL prefix the function is served under (``/admin-console`` locally)."""
    script = request.environ.get("SCRIPT_NAME", "") or ""
    return script.rstrip("/")


def _redirect(request: Any, where: str, cookie: str | None = None, clear: bool = False) -> Any:
    response = _response("", 303, Location=_base(request) + where)
    secure = not auth.dev_sign_in_allowed()
    if cookie is not None:
        response.set_cookie(
            auth.COOKIE,
            cookie,
            max_age=get_settings().console_session_ttl_s,
            httponly=True,
            secure=secure,
            samesite="Strict",
            path="/",
        )
    if clear:
        response.delete_cookie(auth.COOKIE, path="/")
    return response


def _profile(request: Any) -> str:
    settings = get_settings()
    wanted = request.values.get("profile") or settings.schema_profile
    if wanted not in settings.served_profiles():
        raise Page(400, f"profile {wanted!r} is not served here")
    return str(wanted)


def _page(request: Any, name: str, operator: auth.Operator | None, status: int = 200, **ctx: Any):
    settings = get_settings()
    ctx.setdefault("profile", settings.schema_profile)
    html = render(
        name,
        base=_base(request),
        operator=operator,
        profiles=sorted(settings.served_profiles()),
        title=name.capitalize(),
        **ctx,
    )
    return _response(html, status)


# -- sign-in -------------------------------------------------------------------------------
def login_page(request: Any, error: str | None = None, status: int = 200) -> Any:
    return _page(
        request, "login", None, status, error=error, dev=auth.dev_sign_in_allowed(), profile=""
    )


def login(request: Any) -> Any:
    token = request.form.get("id_token", "").strip()
    try:
        claims = auth.verify_id_token(token)
    except auth.SignInRefused as exc:
        return login_page(request, exc.detail, exc.status)
    _, cookie = auth.new_session(str(claims["sub"]), str(claims.get("email") or ""), "firebase")
    return _redirect(request, "/profit", cookie)


def login_dev(request: Any) -> Any:
    if not auth.dev_sign_in_allowed():
        raise Page(404, "not found")
    email = request.form.get("email", "").strip()
    if not email or len(email) > 200 or "@" not in email:
        return login_page(request, "dev sign-in needs an e-mail address", 400)
    _, cookie = auth.new_session(f"dev:{email}", email, "dev")
    return _redirect(request, "/profit", cookie)


# -- profit --------------------------------------------------------------------------------
def _day(text: str | None, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Page(400, f"{text!r} is not a date (YYYY-MM-DD)") from None


def _months(start: date, end: date) -> list[date]:
    months, cursor = [], start.replace(day=1)
    while cursor <= end:
        months.append(cursor)
        cursor = (cursor + timedelta(days=32)).replace(day=1)
    return months


def _num(value: Any) -> float:
    try:
        return round(float(value or 0), 4)
    except (TypeError, ValueError):
        return 0.0


def profit(request: Any, operator: auth.Operator) -> Any:
    from shared.analytics.rollups import AGGREGATES
    from shared.clients import firestore_client
    from shared.clock import get_clock

    today = get_clock().now().date()
    end = _day(request.args.get("end"), today)
    start = _day(request.args.get("start"), end - timedelta(days=30))
    if start > end or (end - start).days > MAX_RANGE_DAYS:
        raise Page(400, f"the range must run forward and span at most {MAX_RANGE_DAYS} days")
    db = firestore_client()
    coll = db.collection(AGGREGATES)
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    months = _months(start, end)
    refs = [coll.document(f"daily_{d:%Y_%m_%d}") for d in days]
    refs += [coll.document(f"monthly_{m:%Y_%m}") for m in months]
    found = {snap.id: snap.to_dict() or {} for snap in db.get_all(refs) if snap.exists}

    def series(ids: list[tuple[str, str]]) -> tuple[dict[str, list[Any]], list[dict[str, Any]]]:
        out: dict[str, list[Any]] = {k: [] for k in ("labels", "revenue", "cost", "profit")}
        out["margin"] = []
        rows = []
        for doc_id, label in ids:
            data = found.get(doc_id)
            if data is None:
                continue
            row = {
                "label": label,
                "revenue": _num(data.get("total_revenue_usd")),
                "cost": _num(data.get("total_cost_usd")),
                "profit": _num(data.get("total_profit_usd")),
                "margin": _num(data.get("profit_margin_percent")),
            }
            rows.append(row)
            for key in ("revenue", "cost", "profit", "margin", "label"):
                out["labels" if key == "label" else key].append(row[key])
        return out, rows

    daily, day_rows = series([(f"daily_{d:%Y_%m_%d}", d.isoformat()) for d in days])
    monthly, _ = series([(f"monthly_{m:%Y_%m}", f"{m:%Y-%m}") for m in months])
    engines: dict[str, dict[str, float]] = {}
    for d in days:
        for name, e in (found.get(f"daily_{d:%Y_%m_%d}", {}).get("cost_by_engine") or {}).items():
            if isinstance(e, dict):
                slot = engines.setdefault(str(name), {"cost": 0.0, "n": 0})
                slot["cost"] += _num(e.get("cost_usd"))
                slot["n"] += int(_num(e.get("usage_count")))
    chart_json = json.dumps({"daily": daily, "monthly": monthly}).replace("<", "\\u003c")
    return _page(
        request,
        "profit",
        operator,
        start=start.isoformat(),
        end=end.isoformat(),
        chart_json=chart_json,
        days=day_rows,
        engines=sorted(engines.items()),
    )


# -- money queue ---------------------------------------------------------------------------
def _stamp(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if isinstance(value, datetime) else str(value or "")


def queue(request: Any, operator: auth.Operator, **ctx: Any) -> Any:
    from shared.admin.operations import list_slips
    from shared.billing import list_parked_events
    from shared.clients import firestore_client

    db = firestore_client()
    parked = [
        {**e, "parked_at": _stamp(e.get("parked_at") or e.get("created_at"))}
        for e in list_parked_events(db, limit=200)
    ]
    slips = [(status, list_slips(db, status=status, limit=100)) for status in SLIP_STATUSES]
    return _page(request, "queue", operator, parked=parked, slips=slips, **ctx)


def _required(request: Any, name: str, limit: int = 500) -> str:
    value = request.form.get(name, "").strip()
    if not value:
        raise Page(400, f"{name} is required")
    if len(value) > limit:
        raise Page(400, f"{name} is longer than {limit} characters")
    return str(value)


def replay(request: Any, operator: auth.Operator) -> Any:
    from shared.billing import replay_parked_event
    from shared.clients import firestore_client

    event_id = _required(request, "event_id", 255)
    outcome = replay_parked_event(firestore_client(), event_id, profile=_profile(request))
    o = outcome.as_dict()
    return queue(request, operator, notice=f"{event_id}: {o.get('status')} {o.get('detail') or ''}")


def approve(request: Any, operator: auth.Operator) -> Any:
    from shared.bigeye.topup import approve_slip
    from shared.clients import firestore_client
    from shared.clock import get_clock

    slip_id = _required(request, "slip_id", 200)
    amount_text = request.form.get("amount", "").strip()
    amount: float | None = None
    if amount_text:
        try:
            amount = float(amount_text)
        except ValueError:
            raise Page(400, "amount must be a number of baht") from None
    body = approve_slip(
        firestore_client(),
        slip_id=slip_id,
        actor=operator.actor,
        reason=_required(request, "reason"),
        bank_ref=request.form.get("bank_ref", "").strip() or None,
        amount=amount,
        now=get_clock().now(),
    )
    return queue(
        request,
        operator,
        notice=f"approved {slip_id}: {body['added']:+d} credits, balance {body['credits']}",
    )


def reject(request: Any, operator: auth.Operator) -> Any:
    from shared.bigeye.topup import reject_slip
    from shared.clients import firestore_client
    from shared.clock import get_clock

    slip_id = _required(request, "slip_id", 200)
    doc = reject_slip(
        firestore_client(),
        slip_id=slip_id,
        actor=operator.actor,
        reason=_required(request, "reason"),
        now=get_clock().now(),
    )
    return queue(request, operator, notice=f"{slip_id} is {doc['status']}")


def slip_image(request: Any, operator: auth.Operator, slip_id: str) -> Any:
    from shared.bigeye import slipimages
    from shared.billing.context import safe_id
    from shared.clients import firestore_client

    ref = firestore_client().collection("slips").document(safe_id(slip_id, "slip id"))
    snap = ref.get()
    if not snap.exists:
        raise Page(404, f"no slip {slip_id}")
    image = slipimages.load(str((snap.to_dict() or {}).get("image_url") or ""))
    content_type = image.content_type if image.content_type.startswith("image/") else "image/jpeg"
    return _response(image.content, 200, content_type)


# -- users ---------------------------------------------------------------------------------
def _find_user(profile: str, q: str) -> tuple[str, dict[str, Any]] | None:
    from google.cloud import firestore

    from shared.ledger import ledger_for

    ledger = ledger_for(profile)
    if "/" not in q and len(q) <= 200:
        snap = ledger.user_ref(q).get()
        if snap.exists:
            return snap.id, snap.to_dict() or {}
    if "@" in q:
        query = (
            ledger.user_ref("x")
            .parent.where(filter=firestore.FieldFilter("email", "==", q))
            .limit(1)
        )
        for snap in query.stream():
            return snap.id, snap.to_dict() or {}
    return None


def users(request: Any, operator: auth.Operator, status: int = 200, **ctx: Any) -> Any:
    from google.cloud import firestore

    from shared.ledger import ledger_for

    profile = _profile(request)
    q = (request.values.get("q") or request.form.get("user_id") or "").strip()[:200]
    view = None
    transactions: list[dict[str, Any]] = []
    if q:
        hit = _find_user(profile, q)
        if hit is not None:
            user_id, data = hit
            p = ledger_for(profile).profile
            view = {
                "user_id": user_id,
                "email": data.get("email", ""),
                "balance": int(data.get(p.balance_field) or 0),
                "used": data.get(p.used_field),
            }
            query = (
                ledger_for(profile)
                .db.collection(p.transactions_collection)
                .where(filter=firestore.FieldFilter("user_id", "==", user_id))
                .order_by("created_at", direction=firestore.Query.DESCENDING)
                .limit(50)
            )
            transactions = [
                {**(s.to_dict() or {}), "created_at": _stamp((s.to_dict() or {}).get("created_at"))}
                for s in query.stream()
            ]
    return _page(
        request,
        "users",
        operator,
        status,
        q=q,
        user=view,
        transactions=transactions,
        profile=profile,
        adjust_key=f"console:{secrets.token_urlsafe(16)}",
        **ctx,
    )


def adjust(request: Any, operator: auth.Operator) -> Any:
    from shared.admin import operations
    from shared.clock import get_clock
    from shared.ledger import ledger_for
    from shared.ledger.ownership import owner_of_user

    profile = _profile(request)
    user_id = _required(request, "user_id", 200)
    try:
        amount = int(_required(request, "amount", 12))
    except ValueError:
        raise Page(400, "amount must be a whole number of credits") from None
    if amount == 0:
        raise Page(400, "amount must not be zero")
    reason = _required(request, "reason")
    key = _required(request, "key", 100)
    if not key.startswith("console:"):
        raise Page(400, "the form's key is not valid; reload the page")
    ledger = ledger_for(profile)
    snap = ledger.user_ref(user_id).get()
    owner = owner_of_user(snap.to_dict() or {}) if snap.exists else None
    if owner is not None and owner != profile:
        raise Page(409, f"user {user_id} belongs to the {owner} profile, not {profile}")
    done = operations.adjust(
        ledger,
        user_id=user_id,
        amount=amount,
        actor=operator.actor,
        reason=reason,
        key=key,
        now=get_clock().now(),
    )
    r = done.result
    state = "already applied (nothing written)" if r.replayed else "done"
    return users(
        request, operator, notice=f"{state}: {r.amount:+d} to {user_id}, balance {r.balance_after}"
    )


# -- routing -------------------------------------------------------------------------------
GETS = {"/profit": profit, "/queue": queue, "/users": users}
POSTS = {"/queue/replay": replay, "/queue/slips/approve": approve, "/queue/slips/reject": reject}
POST_PAGES = {"/queue/replay": queue, "/queue/slips/approve": queue, "/queue/slips/reject": queue}


def handle(request: Any) -> Any:
    """Answer one console request (never a 5xx for bad input)."""
    path = request.path.rstrip("/") or "/"
    method = request.method
    # Not /static/: the functions framework's Flask app keeps that path for itself.
    if method == "GET" and path.startswith("/assets/"):
        name = path[len("/assets/") :]
        if name not in STATIC_FILES:
            return _detail("not found", 404)
        return _response(
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
            return _redirect(request, "/login", clear=True)
        try:
            operator = auth.operator_of(request.cookies.get(auth.COOKIE))
        except auth.SignInRefused:
            if method == "GET" and (path in GETS or path == "/"):
                return _redirect(request, "/login")
            return _detail("sign in first", 401)
        if method == "GET":
            if path == "/":
                return _redirect(request, "/profit")
            if path in GETS:
                return GETS[path](request, operator)
            parts = path.split("/")
            if len(parts) == 4 and parts[1] == "slips" and parts[3] == "image":
                return slip_image(request, operator, parts[2])
            raise Page(404, "not found")
        if method == "POST" and path in POSTS:
            if not auth.csrf_ok(operator, request.form.get("csrf")):
                return _detail("the form's CSRF token is missing or stale", 403)
            try:
                return POSTS[path](request, operator)
            except CreditsError as exc:
                page = POST_PAGES.get(path)
                status = http_status(exc)
                if status >= 500:
                    raise
                if page is None:
                    return users(request, operator, status, error=exc.detail)
                return _with_status(page(request, operator, error=exc.detail), status)
            except Page as exc:
                page = POST_PAGES.get(path)
                if page is None:
                    return users(request, operator, exc.status, error=exc.detail)
                return _with_status(page(request, operator, error=exc.detail), exc.status)
        if method == "POST" and path == "/users/adjust":
            if not auth.csrf_ok(operator, request.form.get("csrf")):
                return _detail("the form's CSRF token is missing or stale", 403)
            try:
                return adjust(request, operator)
            except CreditsError as exc:
                if http_status(exc) >= 500:
                    raise
                return users(request, operator, http_status(exc), error=exc.detail)
            except Page as exc:
                return users(request, operator, exc.status, error=exc.detail)
        if path in GETS or path in POSTS or path in ("/users/adjust", "/logout", "/login/dev"):
            raise Page(405, "method not allowed")
        raise Page(404, "not found")
    except Page as exc:
        return _detail(exc.detail, exc.status)


def _with_status(response: Any, status: int) -> Any:
    response.status_code = status
    return response
