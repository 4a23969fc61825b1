"""Serve every registered function from one local HTTP server, as Cloud Functions would.

- ``/<function-name>/...`` goes to that function's functions-framework app with the
  function name stripped from the path (as the Cloud Functions URL does).
- ``/functions/projects/<project>/triggers/<function-name>`` receives the Firestore
  emulator's trigger deliveries: their protobuf body arrives base64-encoded (an emulator
  difference from Eventarc), so it is decoded before the function sees it.
- ``/healthz`` answers 200 once the stack says every trigger is wired.
- ``/_stack/outcomes/<id>`` answers what became of the last event carrying that
  ``request_id`` or event id (Pub/Sub message id, provider ``event_id``): done, rejected with
  its reason, retried. It is read from the functions' own log lines, so the senders and
  ``python -m devstack trigger`` show a rejection instead of waiting for nothing.

The dispatcher counts what it handled: requests being handled now (``inflight``), requests
and events finished per function (``handled``) and the Pub/Sub message ids each function
acknowledged (answered 2xx, as a push subscription counts an ack). ``Stack.wait_settled``
and ``Stack.wait_handled`` are the tests' barriers built on them.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import functions_framework
from cloudevents import exceptions as cloud_exceptions
from cloudevents import http as cloudevents_http
from functions_framework import event_conversion
from functions_framework.exceptions import EventConversionException
from werkzeug import Request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from shared.registry import FunctionSpec

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class Outcomes(logging.Handler):
    """The latest outcome per ``request_id`` (and per event id) of the events handled in
    this process."""

    def __init__(self, size_max: int = 2000) -> None:
        super().__init__(level=logging.DEBUG)
        self.size_max = size_max
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._items_lock = threading.Lock()
        self._seq = 0  # numbers each outcome, so a sender can tell a new one from an old one

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "json_fields", None) or {}
        outcome = fields.get("outcome")
        keys = [
            str(fields[k]) for k in ("request_id", "event_id", "message_event_id") if fields.get(k)
        ]
        if not outcome or not keys:
            return
        message = record.getMessage()
        item = {
            "function": fields.get("function"),
            "outcome": outcome,
            "reason": None if outcome == "done" else message.removeprefix("rejected event: "),
            "message": message,
            "fields": {k: v for k, v in fields.items() if k not in ("function", "outcome")},
        }
        with self._items_lock:
            self._seq += 1
            item["seq"] = self._seq
            for key in keys:
                self._items.pop(key, None)
                self._items[key] = item
            while len(self._items) > self.size_max:
                self._items.popitem(last=False)

    def get(self, request_id: str) -> dict[str, Any] | None:
        with self._items_lock:
            return self._items.get(request_id)


def _not_an_event(environ: Environ) -> str | None:
    """Why a request to a CloudEvent function cannot be read as an event, or None.

    functions-framework 3.10.0 reads the event before the function runs, and some bodies
    that are no event at all crash that step with a 500 instead of its usual 400: bytes
    that are not text (the cloudevents library's ``json.loads`` raises
    ``UnicodeDecodeError`` where it only catches ``JSONDecodeError``), or JSON that is not
    an object, or an object with unexpected fields (``BackgroundEvent(**body)`` raises
    ``TypeError``). The same two steps are run here first, and anything they cannot read
    gets the framework's own 400. A body they read passes through unchanged. In a
    deployment only Eventarc, an authorised invoker, posts to these functions
    (docs/security.md).
    """
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = environ["CONTENT_TYPE"]
    try:
        cloudevents_http.from_http(headers, body)
        return None
    except (cloud_exceptions.MissingRequiredFields, cloud_exceptions.InvalidRequiredFields):
        pass  # not a CloudEvent: the framework tries it as a background event next
    except Exception as exc:  # any failure here is the framework's 500
        return f"the request body is not an event: {exc}"
    request = Request(dict(environ, **{"wsgi.input": io.BytesIO(body)}))
    try:
        event_conversion.background_event_to_cloud_event(request)
    except EventConversionException:
        return None  # the framework answers this one 400 itself
    except Exception as exc:  # any failure here is the framework's 500
        return f"the request body is not an event: {exc}"
    return None


class Watch:
    """How many deliveries of one function run at once, and how long each takes, from its
    creation on (the bench measures the push delivery of the Pub/Sub emulator with it).

    The mean number in flight is the total handling time divided by the time watched (the
    time average of the in-flight count, exactly).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._stopped: float | None = None
        self._current = 0
        self.peak = 0
        #: Seconds each finished delivery took, in order of finishing.
        self.durations: list[float] = []

    def enter(self) -> None:
        with self._lock:
            self._current += 1
            self.peak = max(self.peak, self._current)

    def leave(self, seconds: float) -> None:
        with self._lock:
            self._current -= 1
            if self._stopped is None:
                self.durations.append(seconds)

    def stop(self) -> None:
        """Stop counting: deliveries finishing from now on are left out."""
        with self._lock:
            if self._stopped is None:
                self._stopped = time.perf_counter()

    def mean_inflight(self) -> float:
        with self._lock:
            end = time.perf_counter() if self._stopped is None else self._stopped
            elapsed = end - self._started
            return sum(self.durations) / elapsed if elapsed > 0 else 0.0


class Dispatcher:
    """A WSGI app routing to one functions-framework app per registered function."""

    def __init__(self, specs: Iterable[FunctionSpec]) -> None:
        self.apps: dict[str, Any] = {}
        #: The functions a push subscription delivers to (they receive Pub/Sub messages).
        self.pushed: set[str] = set()
        #: The functions served as CloudEvent functions (Pub/Sub, Firestore, schedules).
        self.events: set[str] = set()
        for spec in specs:
            if spec.topic is not None:
                self.pushed.add(spec.name)
            self.apps[spec.name] = functions_framework.create_app(
                target=spec.entry_point,
                source=str(spec.source),
                signature_type=spec.signature_type,
            )
            if spec.signature_type == "cloudevent":
                self.events.add(spec.name)
        self.ready = threading.Event()
        self.outcomes = Outcomes()
        self._inflight = 0
        self._inflight_lock = threading.Lock()
        self._handled: dict[str, int] = {}
        self._acked: dict[str, set[str]] = {}
        self._watches: dict[str, Watch] = {}

    def add_event_function(self, name: str, app: Any) -> None:
        """Serve one more push-delivered CloudEvent function (a bench's own handler)."""
        self.apps[name] = app
        self.pushed.add(name)
        self.events.add(name)

    def watch(self, function: str) -> Watch:
        """Start watching ``function``'s deliveries (a new watch replaces the previous)."""
        watch = self._watches[function] = Watch()
        return watch

    @property
    def inflight(self) -> int:
        """Requests being handled right now (tests wait for zero before wiping data)."""
        with self._inflight_lock:
            return self._inflight

    def handled(self, function: str) -> int:
        """Requests and events ``function`` has finished handling since the server started
        (tests wait for a count, then assert that nothing more happened)."""
        with self._inflight_lock:
            return self._handled.get(function, 0)

    def acked(self, function: str, message_ids: Iterable[str]) -> set[str]:
        """Which of ``message_ids`` ``function`` has acknowledged (answered 2xx) so far."""
        with self._inflight_lock:
            done = self._acked.get(function, set())
            return {m for m in message_ids if m in done}

    def _message_id(self, function: str, environ: Environ) -> str | None:
        """The Pub/Sub message id of a push delivery to ``function`` (the body is kept for
        the function); None for anything else."""
        if function not in self.pushed or environ.get("REQUEST_METHOD") != "POST":
            return None
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            message = json.loads(body)["message"]
            return str(message.get("messageId") or message["message_id"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    @staticmethod
    def _function_of(path: str) -> str:
        parts = [p for p in path.split("/") if p]
        if len(parts) == 5 and parts[0] == "functions" and parts[3] == "triggers":
            return parts[4]
        return parts[0] if parts else ""

    def _reply(self, start: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
        data = json.dumps(body, default=str).encode()
        start(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        function = self._function_of(environ.get("PATH_INFO", "") or "/")
        with self._inflight_lock:
            self._inflight += 1
        watch = self._watches.get(function)
        if watch is not None:
            watch.enter()
        began = time.perf_counter()
        acked = False
        try:
            message_id = self._message_id(function, environ)
            status: list[str] = []

            def start(code: str, headers: Any, exc_info: Any = None) -> Any:
                status.append(code)
                return start_response(code, headers, exc_info)

            body = self._route(environ, start)
            try:
                result = list(body)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            acked = message_id is not None and bool(status) and status[-1].startswith("2")
            return result
        finally:
            if watch is not None:
                watch.leave(time.perf_counter() - began)
            with self._inflight_lock:
                self._inflight -= 1
                self._handled[function] = self._handled.get(function, 0) + 1
                if acked:
                    self._acked.setdefault(function, set()).add(str(message_id))

    def _route(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        parts = [p for p in path.split("/") if p]
        if path == "/healthz":
            if self.ready.is_set():
                return self._reply(start_response, "200 OK", {"status": "ok"})
            return self._reply(start_response, "503 Service Unavailable", {"status": "starting"})
        if len(parts) == 3 and parts[:2] == ["_stack", "outcomes"]:
            found = self.outcomes.get(parts[2])
            if found is None:
                return self._reply(start_response, "404 Not Found", {"detail": "no outcome yet"})
            return self._reply(start_response, "200 OK", found)
        if len(parts) == 5 and parts[0] == "functions" and parts[3] == "triggers":
            return self._trigger(parts[4], environ, start_response)
        if parts and parts[0] in self.apps:
            name = parts[0]
            if name in self.events and environ.get("REQUEST_METHOD") == "POST":
                reason = _not_an_event(environ)
                if reason is not None:
                    return self._reply(start_response, "400 Bad Request", {"detail": reason})
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/" + name
            environ["PATH_INFO"] = path[len(name) + 1 :] or "/"
            return self.apps[name](environ, start_response)
        return self._reply(start_response, "404 Not Found", {"detail": f"no function at {path}"})

    def _trigger(
        self, name: str, environ: Environ, start_response: StartResponse
    ) -> Iterable[bytes]:
        app = self.apps.get(name)
        if app is None:
            return self._reply(start_response, "404 Not Found", {"detail": f"no trigger {name}"})
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        try:
            decoded = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            decoded = body  # already raw protobuf (as Eventarc sends it)
        environ["wsgi.input"] = io.BytesIO(decoded)
        environ["CONTENT_LENGTH"] = str(len(decoded))
        environ["PATH_INFO"] = "/"
        return app(environ, start_response)


class FunctionsServer:
    """A threaded HTTP server for a Dispatcher, run in a background thread."""

    def __init__(self, dispatcher: Dispatcher, host: str, port: int) -> None:
        self.dispatcher = dispatcher
        self.host = host
        self.port = port
        self._server: BaseWSGIServer = make_server(
            host, port, dispatcher, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="functions-server", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        logging.getLogger().addHandler(self.dispatcher.outcomes)
        self._thread.start()

    def stop(self, drain_s: float = 10.0) -> None:
        """Stop accepting, then let the requests being handled finish (up to ``drain_s``)
        while the emulators they use still run: none fails half-way or logs after its
        caller has gone."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        deadline = time.monotonic() + drain_s
        while self.dispatcher.inflight and time.monotonic() < deadline:
            time.sleep(0.01)
        logging.getLogger().removeHandler(self.dispatcher.outcomes)
