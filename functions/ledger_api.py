"""ledger-api: synchronous credits for app backends (docs/ledger-api.md).

A thin router over ``shared.ledgerapi.http``: an unknown path is 404, a known path with
another method 405 (with ``Allow``); every error is ``{"detail": "..."}`` with the status of
the shared error table. Service to service: Cloud Functions IAM in production.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.entry import http_entry, json_response
from shared.errors import MethodNotAllowed, http_error_body
from shared.ledgerapi.http import route


@functions_framework.http
@http_entry("ledger-api")
def ledger_api(request: Any) -> Any:
    try:
        found, params = route(request.method, request.path)
    except MethodNotAllowed as exc:
        return json_response(http_error_body(exc), 405, {"Allow": exc.context["allow"]})
    reply = found.handler(request, params)
    return json_response(reply.body, reply.status, reply.headers)
