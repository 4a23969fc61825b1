"""What the pure provider-core tests share: a fixed start time and small thresholds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.providers.core import Thresholds

T0 = datetime(2026, 1, 4, 10, 0, tzinfo=UTC)


def small_thresholds(**changes: Any) -> Thresholds:
    """Thresholds small enough to cross in a few calls (a 60 s window, 3 failures open
    the breaker, 2 half-open successes close it), with ``changes``."""
    return Thresholds(
        **{
            "failure_threshold": 3,
            "failure_rate": 0.5,
            "failure_rate_min_events": 6,
            "window_s": 60,
            "cooldown_s": 30,
            "half_open_successes": 2,
            "half_open_max_attempts": 3,
            "health_min_events": 4,
            **changes,
        }
    )
