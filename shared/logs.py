"""Structured logging: one Cloud Logging JSON line per entry on stdout.

``StructuredLogHandler`` (google-cloud-logging) writes the format Cloud Run / Cloud
Functions ingest, without credentials. Fields passed as ``extra={"json_fields": {...}}``
land as top-level JSON keys; ``log`` below is the short way to do that.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

_configured = False
_lock = threading.Lock()

_REDACT = ("secret", "password", "token", "authorization", "signature")


def _redacted(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        k: ("[redacted]" if any(word in k.lower() for word in _REDACT) else v)
        for k, v in fields.items()
    }


def configure(level: str | None = None) -> None:
    """Install the structured handler on the root logger once per process."""
    global _configured
    if _configured:
        return
    with _lock:
        if _configured:
            return
        from google.cloud.logging.handlers import StructuredLogHandler

        from shared.settings import get_settings

        handler = StructuredLogHandler(stream=sys.stdout)
        root = logging.getLogger()
        root.handlers = [h for h in root.handlers if not isinstance(h, StructuredLogHandler)]
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
