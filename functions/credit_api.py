"""credit-api: the BigEye desktop client's ``/api/v1/...`` API (docs/bigeye-api.md).

A thin router: one table maps (method, path) to a handler in ``shared.bigeye.api``; an
unknown path is 404, a known path with another method 405 (with ``Allow``); in maintenance
every route but check-update and finalize is 503 before its handler runs, except reserve,
whose unit reads the app settings with its other documents and answers the same 503 before
writing anything (``api.MAINTENANCE_IN_UNIT``). Every error is
``{"detail": "..."}`` with the status of the shared error table; a 429 carries
``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import functions_framework

from shared.bigeye import api
from shared.entry import http_entry, json_response
from shared.errors import MethodNotAllowed, NotFound, RateLimited, http_error_body

Handler = Callable[[Any], api.Reply]

ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/api/v1/auth/register"): api.register,
    ("POST", "/api/v1/auth/login"): api.login,
    ("GET", "/api/v1/credit/balance"): api.credit_balance,
    ("GET", "/api/v1/credit/history"): api.credit_history,
    ("POST", "/api/v1/credit/topup"): api.credit_topup,
    ("POST", "/api/v1/job/reserve"): api.job_reserve,
    ("POST", "/api/v1/job/finalize"): api.job_finalize,
    ("POST", "/api/v1/system/check-update"): api.check_update,
}
PATHS = {path for _, path in ROUTES}


def route(method: str, path: str) -> Handler:
    """The handler of ``method path``, or NotFound / MethodNotAllowed."""
    path = "/" + path.strip("/")
    handler = ROUTES.get((method.upper(), path))
    if handler is not None:
        return handler
    if path in PATHS:
        allowed = ", ".join(sorted(m for m, p in ROUTES if p == path))
        raise MethodNotAllowed(f"Method not allowed; use {allowed}", allow=allowed)
    raise NotFound("Not found")


@functions_framework.http
@http_entry("credit-api")
def credit_api(request: Any) -> Any:
    try:
        handler = route(request.method, request.path)
        api.check_maintenance("/" + request.path.strip("/"), request)
        reply = handler(request)
    except MethodNotAllowed as exc:
        return json_response(http_error_body(exc), 405, {"Allow": exc.context["allow"]})
    except RateLimited as exc:
        retry = str(exc.context.get("retry_after_s", 60))
        return json_response(http_error_body(exc), 429, {"Retry-After": retry})
    return json_response(reply.body, reply.status, reply.headers)
