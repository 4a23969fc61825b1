"""Logging: Cloud Logging JSON in production, one readable line per entry locally.

- ``json``: ``StructuredLogHandler`` (google-cloud-logging) writes the format Cloud Run /
  Cloud Functions ingest, on stdout, without credentials. Fields passed as
  ``extra={"json_fields": {...}}`` land as top-level JSON keys.
- ``text``: ``19:52:01 INFO  usage-events  usage metered  request_id=gen-1 user_id=u1`` on
  stderr, so a command line's own output (stdout) stays clean.

``LOG_FORMAT`` chooses (``json`` | ``text``); unset or ``auto``, it is ``json`` where Cloud
Functions / Cloud Run runs the code (they set ``K_SERVICE``) and ``text`` everywhere else
(``make run``, the tests, ``credits-admin``). ``log`` below is the short way to log fields.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from typing import Any

_configured = False
_lock = threading.Lock()

_REDACT = ("secret", "password", "token", "authorization", "signature")


def _redacted(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        k: ("[redacted]" if any(word in k.lower() for word in _REDACT) else v)
        for k, v in fields.items()
    }


#: Set by Cloud Run (which runs 2nd-gen Cloud Functions) in every instance. Not
#: ``FUNCTION_TARGET``: functions-framework sets that itself, also under ``make run``.
_CLOUD_MARKERS = ("K_SERVICE",)


def log_format() -> str:
    """``json`` or ``text`` (``LOG_FORMAT``, else chosen by where the code runs)."""
    chosen = os.environ.get("LOG_FORMAT", "auto").strip().lower()
    if chosen in ("json", "text"):
        return chosen
    return "json" if any(os.environ.get(m) for m in _CLOUD_MARKERS) else "text"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, str) and (not value or any(c in value for c in ' ="')):
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 200 else text[:197] + "..."


class TextFormatter(logging.Formatter):
    """One line: time, level, the function (when known), the message, then key=value."""

    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, "json_fields", None) or {})
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        head = [f"{stamp} {record.levelname:<7}"]
        function = fields.pop("function", None)
        if function:
            head.append(str(function))
        head.append(record.getMessage().replace("\n", "\\n"))
        pairs = " ".join(f"{k}={_short(v)}" for k, v in fields.items() if v is not None)
        line = "  ".join([*head, pairs] if pairs else head)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _TextHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Marks the handler this module installed (replaced, not doubled, on reconfigure)."""


def configure(level: str | None = None) -> None:
    """Install the JSON or text handler on the root logger once per process."""
    global _configured
    if _configured:
        return
    with _lock:
        if _configured:
            return
        from google.cloud.logging.handlers import StructuredLogHandler

        from shared.settings import get_settings

        handler: logging.Handler
        if log_format() == "json":
            handler = StructuredLogHandler(stream=sys.stdout)
        else:
            handler = _TextHandler(stream=sys.stderr)
            handler.setFormatter(TextFormatter())
        root = logging.getLogger()
        root.handlers = [
            h for h in root.handlers if not isinstance(h, StructuredLogHandler | _TextHandler)
        ]
        root.addHandler(handler)
        root.setLevel((level or get_settings().log_level).upper())
        # The Google clients are chatty at DEBUG/INFO.
        for noisy in ("urllib3", "google", "grpc", "werkzeug", "httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        _configured = True


def get_logger(name: str) -> logging.Logger:
    """A logger whose records become structured JSON lines."""
    configure()
    return logging.getLogger(name)


def log(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """Log ``message`` with ``fields`` as structured JSON keys (secrets redacted)."""
    logger.log(level, message, extra={"json_fields": _redacted(fields)})
