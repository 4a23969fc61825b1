"""Handlers of the BigEye credit API (``/api/v1/...``): parse, authenticate, call a service.

Each handler takes the Flask request and returns a ``Reply``; errors are raised as the
shared error tree (``shared.errors``) and become ``{"detail": ...}`` with their status in
the router. Rate limits are counted first (docs/bigeye-api.md, "Rate limits"); job
reserve and finalize count them inside their own unit of work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from google.cloud import firestore

from shared.atomic import Unit
from shared.bigeye import auth, history, jobs, ratelimit
from shared.bigeye.appsettings import AppSettings, load_app_settings
from shared.bigeye.models import (
    USERS,
    CheckUpdateRequest,
    ClientBody,
    FinalizeRequest,
    LoginRequest,
    RegisterRequest,
    ReserveRequest,
    TopupRequest,
)
from shared.clients import firestore_client
from shared.clock import get_clock
from shared.entry import parse_model, request_json
from shared.errors import CreditsError, Unauthenticated, Unavailable, UpgradeRequired
from shared.settings import get_settings

MAX_BODY_BYTES = 64 * 1024
_B = TypeVar("_B", bound=ClientBody)
MAX_TOPUP_BODY_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Reply:
    """A handler's answer: JSON body, status, extra headers."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def client_ip(request: Any) -> str:
    """The caller's address: the ``X-Forwarded-For`` hop ``TRUSTED_PROXY_HOPS`` from the
    right (each trusted proxy appends the address it saw; anything further left is the
    caller's to forge), else the socket peer."""
    trusted = max(0, get_settings().trusted_proxy_hops)
    forwarded = request.headers.get("X-Forwarded-For", "") if trusted else ""
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    if hops:
        return hops[-min(trusted, len(hops))][:64]
    return str(request.remote_addr or "unknown")[:64]


def _now() -> datetime:
    return get_clock().now()


def _limit_ip(request: Any, now: datetime, *, auth_route: bool = False) -> str:
    settings = get_settings()
    ip = client_ip(request)
    limits = [ratelimit.Limit("ip", ip, settings.rate_limit_ip_per_min)]
    if auth_route:
        limits.append(ratelimit.Limit("auth_ip", ip, settings.rate_limit_auth_ip_per_min))
    ratelimit.check(firestore_client(), limits, now)
    return ip


def _token(
    request: Any, now: datetime, *, topup: bool = False
) -> tuple[dict[str, Any] | None, CreditsError | None, list[ratelimit.Limit]]:
    """The token's claims (or why it was refused) and the request's rate limits: per IP,
    and per user when the token names one."""
    settings = get_settings()
    ip = client_ip(request)
    limits = [ratelimit.Limit("ip", ip, settings.rate_limit_ip_per_min)]
    claims: dict[str, Any] | None = None
    failure: CreditsError | None = None
    try:
        claims = auth.verify_token(auth.bearer_token(request.headers.get("Authorization")), now)
    except CreditsError as exc:
        failure = exc
    if claims is not None:
        user_key = str(claims["sub"])
        limits.append(ratelimit.Limit("user", user_key, settings.rate_limit_user_per_min))
        if topup:
            limits.append(
                ratelimit.Limit("topup_user", user_key, settings.rate_limit_topup_user_per_min)
            )
    return claims, failure, limits


def _caller(request: Any, now: datetime, *, topup: bool = False) -> auth.Caller:
    """Count the request (per IP, and per user when the token names one), then authenticate."""
    claims, failure, limits = _token(request, now, topup=topup)
    ratelimit.check(firestore_client(), limits, now)
    if failure is not None or claims is None:
        raise failure or Unauthenticated("Invalid token")
    return auth.load_caller(firestore_client(), claims)


@dataclass(frozen=True)
class _Admission:
    """A job request let in from inside its unit of work (``jobs.Admission``): the caller's
    user document and rate-limit counters are read with the unit's other documents, the
    request is counted in the unit's own commit (``ratelimit.count_in_unit``), then the
    caller is checked as ``auth.load_caller`` does."""

    claims: dict[str, Any]
    limits: list[ratelimit.Limit]
    now: datetime

    @property
    def user_id(self) -> str:
        return auth.claimed_user_id(self.claims)

    def refs(self, db: firestore.Client) -> list[firestore.DocumentReference]:
        user = db.collection(USERS).document(self.user_id)
        return [user, *ratelimit.counter_refs(db, self.limits, self.now)]

    def admit(self, unit: Unit) -> dict[str, Any]:
        user_snap = unit.get_all(self.refs(unit.db))[0]
        ratelimit.count_in_unit(unit, self.limits, self.now)
        return auth.caller_from(self.claims, user_snap).user


@contextmanager
def _counted_in_unit(
    request: Any, now: datetime, *, maintenance_in_unit: bool = False
) -> Iterator[_Admission]:
    """A job request whose rate-limit counters go in its own unit of work.

    Whatever refuses the request before that unit commits (a bad token or body, the
    caller's checks, a limit, a business rule) left nothing written, so the refusal is
    counted on its own with ``ratelimit.check`` (429 when that makes it over a limit, as
    the counters come first everywhere else).

    ``maintenance_in_unit``: the route's unit reads the app settings itself (reserve;
    ``MAINTENANCE_IN_UNIT``), so the router did not. Maintenance found there is answered
    503 uncounted; any other refusal first reads the settings, and in maintenance is
    answered 503 uncounted instead, as on every other route (maintenance comes first and
    writes nothing)."""
    claims, failure, limits = _token(request, now)
    try:
        if failure is not None or claims is None:
            raise failure or Unauthenticated("Invalid token")
        yield _Admission(claims, limits, now)
    except jobs.UnderMaintenance:
        raise
    except Exception:
        if maintenance_in_unit:
            settings = _optional_settings()
            if settings is not None and settings.maintenance_mode:
                raise Unavailable(
                    settings.maintenance_message or "Service under maintenance"
                ) from None
        ratelimit.check(firestore_client(), limits, now)
        raise


def _optional_settings() -> AppSettings | None:
    try:
        return load_app_settings(firestore_client())
    except Unavailable:
        return None


#: Paths that answer during maintenance (docs/bigeye-api.md, "Maintenance mode"):
#: check-update is how the client learns of maintenance; finalize settles credits already
#: reserved (refusing it would hold a customer's unused credits until the job expires).
MAINTENANCE_EXEMPT = frozenset({"/api/v1/system/check-update", "/api/v1/job/finalize"})


#: Paths whose unit of work reads the app settings with its other documents and refuses
#: in maintenance itself (``jobs.reserve``): the router does not read them first, one
#: round trip fewer per request; a request refused before its unit runs reads them then.
MAINTENANCE_IN_UNIT = frozenset({"/api/v1/job/reserve"})

#: Where a request keeps the app settings it read (``request.environ``): one read each.
_SETTINGS_KEY = "credits.app_settings"


def _request_settings(request: Any) -> AppSettings:
    """The app settings for this request: the maintenance check's read, else one now."""
    environ = getattr(request, "environ", None)
    cached = environ.get(_SETTINGS_KEY) if isinstance(environ, dict) else None
    if isinstance(cached, AppSettings):
        return cached
    return load_app_settings(firestore_client())


def check_maintenance(path: str, request: Any = None) -> None:
    """503 with ``maintenance_message`` when ``maintenance_mode`` is on and ``path`` is not
    exempt. Missing settings are not maintenance (the handlers that need them answer 503).
    The settings read is kept on ``request`` for its handler. Paths of
    ``MAINTENANCE_IN_UNIT`` are checked by their handler, in their unit."""
    if path in MAINTENANCE_EXEMPT or path in MAINTENANCE_IN_UNIT:
        return
    settings = _optional_settings()
    environ = getattr(request, "environ", None)
    if settings is not None and isinstance(environ, dict):
        environ[_SETTINGS_KEY] = settings
    if settings is not None and settings.maintenance_mode:
        raise Unavailable(settings.maintenance_message or "Service under maintenance")


def _check_client_version(version: str | None) -> None:
    if version is None:
        return
    settings = _optional_settings()
    if settings is not None and settings.must_update(version):
        raise UpgradeRequired(f"Version {version} is no longer supported; please update")


# -- handlers ------------------------------------------------------------------------------
def _auth_request(request: Any, model: type[_B]) -> tuple[datetime, str, _B]:
    """An auth route's time, client address (rate-limited) and body (version checked)."""
    now = _now()
    ip = _limit_ip(request, now, auth_route=True)
    body = parse_model(model, request_json(request, max_bytes=MAX_BODY_BYTES))
    _check_client_version(body.app_version)
    return now, ip, body


def register(request: Any) -> Reply:
    now, ip, body = _auth_request(request, RegisterRequest)
    return Reply(auth.register(firestore_client(), body, ip=ip, now=now))


def login(request: Any) -> Reply:
    now, ip, body = _auth_request(request, LoginRequest)
    return Reply(auth.login(firestore_client(), body, ip=ip, now=now))


def credit_balance(request: Any) -> Reply:
    now = _now()
    caller = _caller(request, now)
    settings = _request_settings(request)
    return Reply(history.balance(firestore_client(), user=caller.user, settings=settings, now=now))


def credit_history(request: Any) -> Reply:
    now = _now()
    caller = _caller(request, now)
    limit = history.page_size(request.args.get("limit"))
    cursor = request.args.get("cursor") or None  # an empty cursor is the first page
    body, next_cursor = history.history(
        firestore_client(), user_id=caller.user_id, user=caller.user, limit=limit, cursor=cursor
    )
    headers = {"X-Next-Cursor": next_cursor} if next_cursor else {}
    return Reply(body, headers=headers)


def credit_topup(request: Any) -> Reply:
    now = _now()
    caller = _caller(request, now, topup=True)
    raw = request_json(request, max_bytes=MAX_TOPUP_BODY_BYTES, max_string=MAX_TOPUP_BODY_BYTES)
    body = parse_model(TopupRequest, raw)
    try:
        from shared.bigeye.topup import topup
    except ImportError:
        raise Unavailable("Top-up is not available") from None
    result = topup(
        firestore_client(),
        user_id=caller.user_id,
        slip=body.slip,
        amount=body.amount,
        promo_code=body.promo_code,
        now=now,
    )
    return Reply(result)


def job_reserve(request: Any) -> Reply:
    now = _now()
    with _counted_in_unit(request, now, maintenance_in_unit=True) as admission:
        body = parse_model(ReserveRequest, request_json(request, max_bytes=MAX_BODY_BYTES))
        reply = jobs.reserve(
            firestore_client(),
            user_id=admission.user_id,
            admission=admission,
            request=body,
            now=now,
        )
    return Reply(reply)


def job_finalize(request: Any) -> Reply:
    now = _now()
    db = firestore_client()
    with _counted_in_unit(request, now) as admission:
        body = parse_model(FinalizeRequest, request_json(request, max_bytes=MAX_BODY_BYTES))
        reply = jobs.finalize(
            db, user_id=admission.user_id, admission=admission, request=body, now=now
        )
    used = int(reply.pop("actual_usage"))
    return Reply(
        jobs.with_usage_reward(
            db, reply, user_id=admission.user_id, request=body, used=used, now=now
        )
    )


def check_update(request: Any) -> Reply:
    now = _now()
    _limit_ip(request, now)
    body = parse_model(CheckUpdateRequest, request_json(request, max_bytes=MAX_BODY_BYTES))
    settings = load_app_settings(firestore_client())
    latest = settings.latest_version or body.version
    return Reply(
        {
            "update_available": settings.update_available(body.version),
            "version": latest,
            "force": settings.must_update(body.version),
            "download_url": str(settings.get("app_download_url") or ""),
            "notes": str(settings.get("app_update_notes") or ""),
            "maintenance": settings.maintenance_mode,
            "maintenance_message": settings.maintenance_message,
        }
    )
