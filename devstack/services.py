"""Local stand-ins for external services, started with the stack.

Each entry of ``SERVICES`` is a callable taking the ``Stack`` and returning an object with
``stop()``; it may add environment variables (for example a base URL) before the functions
are served.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SERVICES: list[Callable[[Any], Any]] = []


def start_all(stack: Any) -> list[Any]:
    """Start every stand-in; returns them in start order."""
    started = []
    for start in SERVICES:
        started.append(start(stack))
    return started
