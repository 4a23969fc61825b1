"""An injectable clock: business rules take the time as an argument, never read it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current time (timezone-aware, UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to (tests, backfills)."""

    def __init__(self, at: datetime) -> None:
        self._at = ensure_utc(at)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._at

    def set(self, at: datetime) -> None:
        with self._lock:
            self._at = ensure_utc(at)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._at += delta
            return self._at


_clock: Clock = SystemClock()


class ProcessClock:
    """Delegates to whatever clock the process uses now (so tests can swap it later)."""

    def now(self) -> datetime:
        return _clock.now()


def get_clock() -> Clock:
    """The clock entry points use; tests may replace it with ``set_clock``."""
    return _clock


def set_clock(clock: Clock) -> Clock:
    """Replace the process clock; returns the previous one."""
    global _clock
    previous, _clock = _clock, clock
    return previous


def ensure_utc(value: datetime) -> datetime:
    """A timezone-aware UTC datetime (naive values are taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_instant(text: str) -> datetime:
    """Parse an RFC 3339 / ISO 8601 instant ("Z" allowed) into an aware UTC datetime."""
    return ensure_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
