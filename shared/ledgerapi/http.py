"""ledger-api's routes: one table of (method, path pattern) -> handler, and the OpenAPI
document generated from that table and the request models.

Handlers parse and validate (``shared.ledgerapi.models``), call one operation of
``LedgerApi`` and return a ``Reply``; errors are the shared error tree and become
``{"detail": ...}`` with the shared status table in the function's entry point.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.entry import parse_model, request_json
from shared.errors import InvalidInput, MethodNotAllowed, NotFound
from shared.ledger import ledger_for
from shared.ledgerapi import models
from shared.ledgerapi.service import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Answer, LedgerApi

MAX_BODY_BYTES = 16 * 1024
API_VERSION = "1.0.0"


@dataclass(frozen=True)
class Reply:
    """A handler's answer: JSON body, status, extra headers."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Any, dict[str, str]], Reply]


@dataclass(frozen=True)
class Route:
    """One operation: method, path template, handler, and what the OpenAPI document says."""

    method: str
    template: str
    handler: Handler
    summary: str
    operation_id: str
    body: type[BaseModel] | None = None
    write: bool = False
    query: tuple[str, ...] = ()

    @property
    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template)
        return re.compile(f"^{regex}$")


def _api() -> LedgerApi:
    return LedgerApi(ledger_for())


def _body(request: Any, model: type[models._Body]) -> Any:
    return parse_model(model, request_json(request, max_bytes=MAX_BODY_BYTES))


def _key(request: Any) -> str | None:
    value = request.headers.get("Idempotency-Key")
    return None if value is None else str(value)


def _written(answer: Answer) -> Reply:
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    return Reply(answer.body, headers=headers)


def _page_size(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


# -- handlers ------------------------------------------------------------------------------
def get_account(request: Any, params: dict[str, str]) -> Reply:
    return Reply(_api().account(params["user_id"]))


def list_transactions(request: Any, params: dict[str, str]) -> Reply:
    limit = _page_size(request.args.get("limit"))
    cursor = request.args.get("cursor") or None
    body, next_cursor = _api().transactions(params["user_id"], limit=limit, cursor=cursor)
    return Reply(body, headers={"X-Next-Cursor": next_cursor} if next_cursor else {})


def get_hold(request: Any, params: dict[str, str]) -> Reply:
    return Reply(_api().hold(params["hold_id"]))


def openapi(request: Any, params: dict[str, str]) -> Reply:
    return Reply(openapi_document())


WriteCall = Callable[[LedgerApi, dict[str, str], Any, str | None], Answer]


def _write(
    template: str, summary: str, operation_id: str, body: type[models._Body], call: WriteCall
) -> Route:
    """A POST operation: parse ``body``, then ``call(api, path params, body, key)``."""

    def handler(request: Any, params: dict[str, str]) -> Reply:
        req = _body(request, body)
        return _written(call(_api(), params, req, _key(request)))

    return Route("POST", template, handler, summary, operation_id, body, write=True)


ROUTES: tuple[Route, ...] = (
    Route("GET", "/openapi.json", openapi, "This OpenAPI document", "openapi"),
    Route("GET", "/v1/accounts/{user_id}", get_account, "Balance and totals", "getAccount"),
    Route(
        "GET",
        "/v1/accounts/{user_id}/transactions",
        list_transactions,
        "Transactions, newest first (cursor paging)",
        "listTransactions",
        query=("limit", "cursor"),
    ),
    _write(
        "/v1/accounts/{user_id}/charges",
        "Take credits (402 when short, unless allow_partial)",
        "charge",
        models.ChargeRequest,
        lambda api, p, req, key: api.charge(p["user_id"], req, key),
    ),
    _write(
        "/v1/accounts/{user_id}/grants",
        "Give credits as one of the profile's credit types",
        "grant",
        models.GrantRequest,
        lambda api, p, req, key: api.grant(p["user_id"], req, key),
    ),
    _write(
        "/v1/accounts/{user_id}/adjustments",
        "An operator's correction (actor and reason required)",
        "adjust",
        models.AdjustmentRequest,
        lambda api, p, req, key: api.adjust(p["user_id"], req, key),
    ),
    _write(
        "/v1/refunds",
        "Refund an earlier transaction, linked to it, never more than it in total",
        "refund",
        models.RefundRequest,
        lambda api, p, req, key: api.refund(req, key),
    ),
    _write(
        "/v1/holds",
        "Reserve credits until settled, released or expired",
        "createHold",
        models.HoldRequest,
        lambda api, p, req, key: api.create_hold(req, key),
    ),
    Route("GET", "/v1/holds/{hold_id}", get_hold, "A hold's state", "getHold"),
    _write(
        "/v1/holds/{hold_id}/settle",
        "Close a hold, using part of it; the rest comes back",
        "settleHold",
        models.SettleRequest,
        lambda api, p, req, key: api.settle(p["hold_id"], req, key),
    ),
    _write(
        "/v1/holds/{hold_id}/release",
        "Close a hold with nothing used; all of it comes back",
        "releaseHold",
        models.ReleaseRequest,
        lambda api, p, req, key: api.release(p["hold_id"], req, key),
    ),
)
_COMPILED = tuple((route, route.pattern) for route in ROUTES)


def route(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """The route of ``method path`` and its path parameters, or NotFound/MethodNotAllowed."""
    path = "/" + path.strip("/")
    allowed: list[str] = []
    for candidate, pattern in _COMPILED:
        match = pattern.match(path)
        if match is None:
            continue
        if candidate.method == method.upper():
            return candidate, match.groupdict()
        allowed.append(candidate.method)
    if allowed:
        allow = ", ".join(sorted(set(allowed)))
        raise MethodNotAllowed(f"Method not allowed; use {allow}", allow=allow)
    raise NotFound("Not found")


# -- OpenAPI -------------------------------------------------------------------------------
_ERRORS = {
    "400": "Invalid body, parameter or missing Idempotency-Key",
    "402": "Insufficient credits",
    "404": "Unknown user, transaction or hold (or a user of another app)",
    "405": "Method not allowed",
    "409": "Idempotency-Key reused with another request, or a state clash",
    "413": "Body larger than 16 KiB",
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document: paths from ``ROUTES``, schemas from the request models."""
    _, defs = models_json_schema(
        [(m, "validation") for m in models.REQUEST_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    schemas = dict(defs.get("$defs", {}))
    schemas["Error"] = {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    }
    paths: dict[str, dict[str, Any]] = {}
    for r in ROUTES:
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"\{(\w+)\}", r.template)
        ]
        params += [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in r.query
        ]
        if r.write:
            params.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": True,
                    "description": "A replay returns the first answer; the same key with "
                    "another request is 409",
                    "schema": {"type": "string", "maxLength": 200},
                }
            )
        op: dict[str, Any] = {
            "operationId": r.operation_id,
            "summary": r.summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {}}},
                **{
                    code: {
                        "description": text,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    }
                    for code, text in _ERRORS.items()
                    if r.write or code in {"400", "404", "405"}
                },
            },
        }
        if r.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{r.body.__name__}"}
                    }
                },
            }
        paths.setdefault(r.template, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ledger-api",
            "version": API_VERSION,
            "description": "Synchronous credit ledger for app backends (service to service; "
            "Cloud Functions IAM in production). Amounts are whole credits.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
