"""A local Slip2Go stand-in that speaks the documented protocol (docs/bigeye-topups.md).

A test slip is a data URL whose base64 content is the UTF-8 JSON ``{"transRef", "amount",
"dateTime", "receiver": {"account", "name"?, "bank"?}, "sender": {"name"}}`` (docs/contract.md
section 9; ``receiver.bank`` is the bank code the answer names, default ``004``). Like
Slip2Go's documented ``checkReceiver`` (a partial match of the account), the stand-in
compares only the account digits, never the bank: the credit API compares the bank. The
stand-in answers with the code Slip2Go would give under the request's ``checkCondition``:
200501 for a ``transRef`` it already passed (compared in canonical form, as the credit API
does; no quota used), 200401 / 200402 / 200403 for a receiver / amount / date mismatch,
200200 when every check passes (and 200000 when none was asked); content that is not such
JSON gives 200404.
Authentication, quota and credit follow Slip2Go too: a wrong bearer secret → HTTP 401 with
401001, no quota → 401005, no credit → 401006. ``fail_next`` scripts faults for tests.

Served in-process on ``SLIP2GO_STANDIN_PORT`` (or a free port); ``start(stack)`` is the
``devstack.services`` starter: it points ``SLIP2GO_BASE_URL`` at the stand-in when unset.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import uuid
from collections import deque
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from shared.bigeye.slip2go import account_matches, canonical_ref, sub_map

MESSAGES = {
    "200000": "Slip found",
    "200001": "Get info success",
    "200200": "Slip is Valid",
    "200401": "Recipient Account Not Match",
    "200402": "Transfer amount Not Match",
    "200403": "Transfer date Not Match",
    "200404": "Slip not found",
    "200501": "Slip is duplicated",
    "400001": "Bad request",
    "401001": "Unauthorized",
    "401005": "Quota exceeded",
    "401006": "Credit exceeded",
    "500500": "Internal server error",
}


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def _decode_slip(text: str) -> dict[str, Any] | None:
    """The test slip inside a data URL (or plain base64 / JSON text), or None."""
    content = text.strip()
    if content.startswith("data:"):
        head, _, content = content.partition(",")
        if ";base64" not in head:
            return None
    if not content.startswith("{"):
        try:
            content = base64.b64decode(content, validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
    try:
        slip = json.loads(content)
    except json.JSONDecodeError:
        return None
    if not isinstance(slip, dict) or not isinstance(slip.get("transRef"), str):
        return None
    if not slip["transRef"].strip():
        return None
    try:
        Decimal(str(slip.get("amount")))
    except InvalidOperation:
        return None
    return slip


_BANK_NAMES = {
    "002": "ธนาคารกรุงเทพ",
    "004": "ธนาคารกสิกรไทย",
    "006": "ธนาคารกรุงไทย",
    "014": "ธนาคารไทยพาณิชย์",
}


def _bank(code: Any) -> dict[str, Any]:
    """The receiver's ``bank`` of the answer: the slip's ``receiver.bank`` code (default
    KBank ``004``, the demo account's bank)."""
    code = code if isinstance(code, str) and code else "004"
    return {"id": code, "name": _BANK_NAMES.get(code, "")}


def _when(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class Slip2GoStandIn:
    """The stand-in server; ``url`` is its base URL (the ``/api`` part included)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_secret: str = "") -> None:
        self.api_secret = api_secret
        self.quota_remaining: int | None = None  # None: unlimited
        self.credit_remaining: int | None = None
        self._lock = threading.Lock()
        # canonical transRef (shared.bigeye.slip2go.canonical_ref) -> data (valid slips)
        self._seen: dict[str, dict[str, Any]] = {}
        self._by_reference: dict[str, dict[str, Any]] = {}
        self._faults: deque[tuple[int, str]] = deque()
        self.requests = 0
        self._server: BaseWSGIServer = make_server(
            host, port, self._app, threaded=True, request_handler=_Quiet
        )
        self.host = host
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="slip2go-standin", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/api"

    # -- life cycle and test hooks ------------------------------------------------------
    def start(self) -> Slip2GoStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def reset(self) -> None:
        """Forget every slip seen, scripted fault and limit."""
        with self._lock:
            self._seen.clear()
            self._by_reference.clear()
            self._faults.clear()
            self.quota_remaining = None
            self.credit_remaining = None
            self.requests = 0

    def fail_next(self, code: str = "500500", http_status: int = 500, times: int = 1) -> None:
        """Answer the next ``times`` verifications with ``code`` (outage drills).

        A 200xxx code is answered with the slip's data, whatever the checks would say
        (to prove the caller re-checks what Slip2Go calls valid).
        """
        with self._lock:
            for _ in range(times):
                self._faults.append((http_status, code))

    # -- protocol ---------------------------------------------------------------------
    def _reply(self, status: int, code: str, data: Any = None) -> Response:
        body = {"code": code, "message": MESSAGES.get(code, ""), "data": data}
        return Response(
            json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json"
        )

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self._handle(request)
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        with self._lock:
            self.requests += 1
        path = request.path.rstrip("/")
        if path.startswith("/api"):
            path = path[len("/api") :]
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.api_secret}":
            return self._reply(401, "401001")
        if request.method == "GET" and path == "/account/info":
            return self._reply(
                200,
                "200001",
                {"quotaRemaining": self.quota_remaining, "creditRemaining": self.credit_remaining},
            )
        if request.method == "GET" and path.startswith("/verify-slip/"):
            reference = path[len("/verify-slip/") :]
            with self._lock:
                data = self._by_reference.get(reference)
            return self._reply(200, "200000", data) if data else self._reply(200, "200404")
        if request.method != "POST" or path not in {
            "/verify-slip/qr-base64/info",
            "/verify-slip/qr-code/info",
        }:
            return self._reply(404, "400400")
        body = request.get_json(silent=True)
        payload = body.get("payload") if isinstance(body, dict) else None
        if not isinstance(payload, dict):
            return self._reply(400, "400001")
        source = (
            payload.get("imageBase64") if path.endswith("base64/info") else payload.get("qrCode")
        )
        if not isinstance(source, str) or not source:
            return self._reply(400, "400002")
        condition = payload.get("checkCondition") or {}
        if not isinstance(condition, dict):
            return self._reply(400, "400003")
        return self._verify(source, condition)

    def _verify(self, source: str, condition: dict[str, Any]) -> Response:
        with self._lock:
            if self._faults:
                status, code = self._faults.popleft()
                scripted = _decode_slip(source) if code.startswith("200") else None
                return self._reply(status, code, self._data(scripted) if scripted else None)
            if self.credit_remaining is not None and self.credit_remaining <= 0:
                return self._reply(401, "401006")
            if self.quota_remaining is not None and self.quota_remaining <= 0:
                return self._reply(401, "401005")
            slip = _decode_slip(source)
            if slip is None:
                return self._reply(200, "200404")
            data = self._data(slip)
            seen_key = canonical_ref(slip["transRef"])
            if condition.get("checkDuplicate") and seen_key in self._seen:
                return self._reply(200, "200501", self._seen[seen_key])
            # A found slip uses one quota unit (duplicates are free, as documented).
            if self.quota_remaining is not None:
                self.quota_remaining -= 1
            if self.credit_remaining is not None:
                self.credit_remaining -= 1
            code = self._check(slip, condition)
            if code == "200200" or code == "200000":
                self._seen[seen_key] = data
                self._by_reference[data["referenceId"]] = data
            return self._reply(200, code, data)

    def _check(self, slip: dict[str, Any], condition: dict[str, Any]) -> str:
        checked = False
        receivers = condition.get("checkReceiver")
        if isinstance(receivers, list) and receivers:
            checked = True
            shown = sub_map(slip, "receiver").get("account")
            if not any(
                isinstance(r, dict) and account_matches(shown, str(r.get("accountNumber") or ""))
                for r in receivers
            ):
                return "200401"
        amount_check = condition.get("checkAmount")
        if isinstance(amount_check, dict) and "amount" in amount_check:
            checked = True
            try:
                want = Decimal(str(amount_check["amount"]))
            except InvalidOperation:
                return "200402"
            got = Decimal(str(slip.get("amount")))
            kind = amount_check.get("type", "eq")
            ok = {"eq": got == want, "gte": got >= want, "lte": got <= want}.get(kind, False)
            if not ok:
                return "200402"
        date_check = condition.get("checkDate")
        if isinstance(date_check, dict) and "date" in date_check:
            checked = True
            got_at, want_at = _when(slip.get("dateTime")), _when(date_check.get("date"))
            if got_at is None or want_at is None:
                return "200403"
            kind = date_check.get("type", "eq")
            ok = {
                "eq": got_at.date() == want_at.date(),
                "gte": got_at >= want_at,
                "lte": got_at <= want_at,
            }.get(kind, False)
            if not ok:
                return "200403"
        return "200200" if checked or condition.get("checkDuplicate") else "200000"

    @staticmethod
    def _data(slip: dict[str, Any]) -> dict[str, Any]:
        receiver = sub_map(slip, "receiver")
        sender = sub_map(slip, "sender")
        trans_ref = slip["transRef"]
        return {
            "referenceId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"slip2go:{trans_ref}")),
            "decode": f"0046000600000101030040220{trans_ref}",
            "transRef": trans_ref,
            "dateTime": slip.get("dateTime"),
            "amount": slip.get("amount"),
            "ref1": None,
            "ref2": None,
            "ref3": None,
            "receiver": {
                "account": {
                    "name": receiver.get("name") or "BIGEYE PRO CO LTD",
                    "bank": {"account": receiver.get("account")},
                },
                "bank": _bank(receiver.get("bank")),
            },
            "sender": {
                "account": {
                    "name": sender.get("name"),
                    "bank": {"account": sender.get("account") or "xxx-x-x9999-x"},
                },
                "bank": {"id": "014", "name": "ธนาคารไทยพาณิชย์"},
            },
        }


class _Started:
    """What ``devstack.services`` keeps: the stand-in and the variable it set."""

    def __init__(self, standin: Slip2GoStandIn, set_url: bool) -> None:
        self.standin = standin
        self._set_url = set_url

    @property
    def url(self) -> str:
        return self.standin.url

    def stop(self) -> None:
        self.standin.stop()
        if self._set_url and os.environ.get("SLIP2GO_BASE_URL") == self.standin.url:
            del os.environ["SLIP2GO_BASE_URL"]
            from shared.settings import reset_settings

            reset_settings()


def start(stack: Any) -> _Started:
    """Start the stand-in for a stack and point ``SLIP2GO_BASE_URL`` at it when unset."""
    from shared.settings import get_settings, reset_settings

    host = getattr(getattr(stack, "config", None), "host", "127.0.0.1")
    port = int(os.environ.get("SLIP2GO_STANDIN_PORT") or 0)
    secret = get_settings().slip2go_api_secret.get_secret_value()
    standin = Slip2GoStandIn(host, port, secret).start()
    set_url = not os.environ.get("SLIP2GO_BASE_URL")
    if set_url:
        os.environ["SLIP2GO_BASE_URL"] = standin.url
        reset_settings()
    return _Started(standin, set_url)


def find(services: list[Any]) -> Slip2GoStandIn | None:
    """The stand-in among a stack's started services (tests use its hooks)."""
    for service in services:
        if isinstance(service, _Started):
            return service.standin
    return None
