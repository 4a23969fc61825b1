"""usage-limits: ``POST /usage-limits/check`` before the app's backend spends tokens.

``{"user_id", "tokens"}`` -> ``{"allowed", "tokensUsed", "tokenLimit", "resetAt", ...}``:
200 when the tokens fit in today's limit, 429 with the same body (plus ``limit``,
``limitResetAt`` and ``detail``) when they would exceed it, 400 for bad input, 404 for an
unknown user. A Kaiwa user also gets ``monthly`` and their tier's monthly limits are
enforced: 429 naming the limit reached, 403 for a feature the tier lacks (docs/usage.md).
A user whose ``status`` is anything but ``active`` is 403 (``shared.accountstatus``).
Protected by Cloud Functions IAM in production.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.clients import firestore_client
from shared.clock import get_clock
from shared.entry import http_entry, json_response, parse_model, request_json
from shared.errors import MethodNotAllowed, NotFound
from shared.usage.limits import check_limits
from shared.usage.model import LimitsCheck


@functions_framework.http
@http_entry("usage-limits")
def usage_limits(request: Any) -> Any:
    path = (request.path or "/").rstrip("/")
    if path != "/check":
        raise NotFound(f"no route {request.path}")
    if request.method != "POST":
        raise MethodNotAllowed("use POST")
    check = parse_model(LimitsCheck, request_json(request, max_bytes=16 * 1024))
    answer = check_limits(firestore_client(), check, get_clock().now())
    return json_response(answer.body, answer.status)
