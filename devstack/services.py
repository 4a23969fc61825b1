"""Local stand-ins for external services, started with the stack.

Each entry of ``SERVICES`` is a callable taking the ``Stack`` and returning an object with
``stop()``; it may add environment variables (for example a base URL) before the functions
are served.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SERVICES: list[Callable[[Any], Any]] = []


def _slip2go_standin(stack: Any) -> Any:
    """The local Slip2Go (sets ``SLIP2GO_BASE_URL`` when unset)."""
    from devstack.slip2go_standin import start

    return start(stack)


SERVICES.append(_slip2go_standin)


def start_all(stack: Any) -> list[Any]:
    """Start every stand-in; returns them in start order."""
    started = []
    for start in SERVICES:
        started.append(start(stack))
    return started
