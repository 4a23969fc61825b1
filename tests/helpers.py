"""Small helpers shared by the emulator and end-to-end tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None], *, timeout_s: float = 15.0, interval_s: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s (last: {last!r})")


def all_documents(db: Any) -> dict[str, dict[str, Any]]:
    """Every document of every top-level collection (and their subcollections), by path."""
    found: dict[str, dict[str, Any]] = {}

    def walk(collections: Any) -> None:
        for coll in collections:
            for snap in coll.stream():
                found[snap.reference.path] = snap.to_dict() or {}
                walk(snap.reference.collections())

    walk(db.collections())
    return found
