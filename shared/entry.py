"""Thin entry-point wrappers: decode the trigger's input, call one service, map errors.

Retry policy per trigger kind (STYLE.md, practice 7):
- HTTP: a ``CreditsError`` becomes its status and ``{"detail": ...}``; anything else is a
  500 with a generic detail (and a logged traceback), so the caller may retry. A function
  whose secrets are unsafe outside the emulators answers 503 to every request
  (``shared.secretcheck``).
- Pub/Sub and Firestore events: bad input is logged as an error and acknowledged (the
  wrapper returns normally); transient faults raise so the platform redelivers; an
  unexpected error raises too, unless the event is older than ``max_age_s``, in which case
  it is dropped with an error log instead of being retried forever.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared import jsonsafe, secretcheck
from shared.clock import get_clock
from shared.errors import CreditsError, InvalidInput, http_error_body, http_status, is_transient
from shared.events import DocumentChange, PubSubMessage, document_change, pubsub_message
from shared.logs import get_logger, log
from shared.settings import get_settings

M = TypeVar("M", bound=BaseModel)

logger = get_logger("entry")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    """A JSON Flask response."""
    import flask

    response = flask.Response(
        json.dumps(body, ensure_ascii=False, default=str),
        status=status,
        mimetype="application/json",
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def validation_detail(error: ValidationError) -> str:
    """A short, human-readable summary of a pydantic validation error."""
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item.get("loc", ())) or "body"
        parts.append(f"{where}: {item.get('msg')}")
    return "; ".join(parts)


def parse_model(model: type[M], data: Any) -> M:
    """Validate ``data`` into ``model`` or raise InvalidInput with a clear detail."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(validation_detail(exc)) from None


def request_json(
    request: Any, *, max_bytes: int = 1024 * 1024, max_string: int = jsonsafe.MAX_STRING_CHARS
) -> Any:
    """The request body as strict JSON (InvalidInput when absent, too large or malformed:
    see ``shared.jsonsafe`` for what is refused)."""
    raw = request.get_data(cache=True)
    if len(raw) > max_bytes:
        from shared.errors import PayloadTooLarge

        raise PayloadTooLarge(f"the body is larger than {max_bytes} bytes")
    if not raw:
        raise InvalidInput("a JSON body is required")
    return jsonsafe.loads(raw, what="the body", max_string=max_string)


def _secrets_of(name: str) -> tuple[str, ...]:
    from shared.registry import by_name

    try:
        return by_name(name).secrets
    except KeyError:
        return ()


def http_entry(name: str) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Wrap an HTTP handler with the error table and structured logs."""

    def decorate(handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        @functools.wraps(handler)
        def wrapper(request: Any) -> Any:
            # One line per handled request with its outcome (method, path, status, time).
            started = time.monotonic()
            where = f"{getattr(request, 'method', '?')} {getattr(request, 'path', '?')}"
            if secretcheck.refusal(name, _secrets_of(name), get_settings()) is not None:
                return json_response({"detail": "Service unavailable: not configured"}, 503)
            try:
                response = handler(request)
            except CreditsError as exc:
                status = http_status(exc)
                level = logging.ERROR if status >= 500 else logging.INFO
                log(
                    logger,
                    level,
                    f"{where} -> {status}: {exc.detail}",
                    function=name,
                    status=status,
                    code=exc.code,
                    duration_ms=_ms_since(started),
                )
                return json_response(http_error_body(exc), status)
            except Exception:
                logger.exception(
                    f"{where} -> 500: unhandled error",
                    extra={"json_fields": {"function": name, "status": 500}},
                )
                return json_response({"detail": "Internal error"}, 500)
            status = _status_of(response)
            log(
                logger,
                logging.INFO,
                f"{where} -> {status}",
                function=name,
                status=status,
                duration_ms=_ms_since(started),
            )
            return response

        return wrapper

    return decorate


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _status_of(response: Any) -> int:
    """The HTTP status of whatever a handler returned (a Response, a tuple, a body)."""
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return status
    if isinstance(response, tuple) and len(response) > 1 and isinstance(response[1], int):
        return response[1]
    return 200


#: Ids a JSON message body may carry, and the log field each becomes.
_MESSAGE_IDS = {"request_id": "request_id", "user_id": "user_id", "event_id": "message_event_id"}


def message_ids(data: bytes) -> dict[str, str]:
    """The ids a JSON message body carries (``request_id``, ``user_id``, its own
    ``event_id`` as ``message_event_id``), for the event's log line; best effort."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError, TypeError):
        return {}
    if not isinstance(body, dict):
        return {}
    return {
        field: v[:200]
        for key, field in _MESSAGE_IDS.items()
        if isinstance(v := body.get(key), str) and v
    }


def _age_exceeded(published: Any, max_age_s: float | None) -> bool:
    if max_age_s is None or published is None:
        return False
    return bool(get_clock().now() - published > timedelta(seconds=max_age_s))


def _handle_event_error(
    name: str,
    exc: BaseException,
    event_id: str,
    published: Any,
    max_age_s: float | None,
    ids: dict[str, str] | None = None,
) -> None:
    """Log and ack poison input; re-raise what a retry may fix."""
    ids = ids or {}
    if isinstance(exc, CreditsError) and not is_transient(exc):
        log(
            logger,
            logging.ERROR,
            f"rejected event: {exc.detail}",
            function=name,
            event_id=event_id,
            **ids,
            code=exc.code,
            outcome="rejected",
        )
        return
    if _age_exceeded(published, max_age_s):
        log(
            logger,
            logging.ERROR,
            f"dropping event older than {max_age_s}s after error: {exc}",
            function=name,
            event_id=event_id,
            **ids,
            outcome="dropped",
        )
        return
    log(
        logger,
        logging.WARNING,
        f"retrying event after error: {exc!r}",
        function=name,
        event_id=event_id,
        **ids,
        outcome="retry",
    )
    raise exc


def _log_handled(name: str, event_id: str, started: float, result: Any, **ids: str) -> None:
    """The one line of a handled event; a handler may return a dict of fields to add."""
    fields = dict(result) if isinstance(result, dict) else {}
    message = str(fields.pop("message", "event handled"))
    line = {"function": name, "event_id": event_id, **ids, **fields}
    line.update(outcome="done", duration_ms=_ms_since(started))
    log(logger, logging.INFO, message, **line)


def pubsub_entry(
    name: str, *, max_age_s: float | None = 24 * 3600
) -> Callable[[Callable[[PubSubMessage], Any]], Callable[[Any], None]]:
    """Wrap a Pub/Sub handler: it receives a decoded ``PubSubMessage``."""

    def decorate(handler: Callable[[PubSubMessage], Any]) -> Callable[[Any], None]:
        @functools.wraps(handler)
        def wrapper(cloud_event: Any) -> None:
            started = time.monotonic()
            event_id = str(cloud_event.get("id") or "")
            published = None
            ids: dict[str, str] = {}
            try:
                message = pubsub_message(cloud_event)
                event_id = message.message_id or event_id
                published = message.publish_time
                ids = message_ids(message.data)
                result = handler(message)
            except Exception as exc:
                _handle_event_error(name, exc, event_id, published, max_age_s, ids)
                return
            _log_handled(name, event_id, started, result, **ids)

        return wrapper

    return decorate


def _document_of(cloud_event: Any) -> str:
    try:
        return str(cloud_event.get("document") or cloud_event.get("subject") or "")
    except Exception:  # an odd event must never break its log line
        return ""


def firestore_entry(
    name: str, *, max_age_s: float | None = 24 * 3600
) -> Callable[[Callable[[DocumentChange], Any]], Callable[[Any], None]]:
    """Wrap a Firestore trigger: it receives a decoded ``DocumentChange``."""

    def decorate(handler: Callable[[DocumentChange], Any]) -> Callable[[Any], None]:
        @functools.wraps(handler)
        def wrapper(cloud_event: Any) -> None:
            started = time.monotonic()
            event_id = str(cloud_event.get("id") or "")
            published = None
            try:
                change = document_change(cloud_event)
                published = change.time
                result = handler(change)
            except Exception as exc:
                _handle_event_error(name, exc, event_id, published, max_age_s)
                return
            _log_handled(name, event_id, started, result, document=_document_of(cloud_event))

        return wrapper

    return decorate
