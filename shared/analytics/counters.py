"""Write-time usage counters, added to the same atomic unit as the usage log they count.

``count_usage`` is called by the usage-events handler for every new usage log, inside the
unit that creates the log, so a counter moves exactly when its log is written.
"""

from __future__ import annotations

from typing import Any

from shared.atomic import Unit


def count_usage(unit: Unit, log: dict[str, Any]) -> None:
    """Add the counter updates for one new ``usage_logs`` document to ``unit``."""
    del unit, log  # The daily rollup currently reads the logs themselves.
