"""Demo configuration written by ``make run`` (docs/contract.md section 8).

Each area keeps its demo documents in its own module ``devstack/demo/<area>.py`` with a
``seed(db, now)`` function; ``SECTIONS`` names them in the order they are written. The tests
seed the same data (the ``demo`` fixture).
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

SECTIONS: tuple[str, ...] = ("usage", "bigeye", "billing", "providers")


def seed_all(db: Any, now: datetime) -> None:
    """Write every demo section (idempotent: documents are set by fixed ids)."""
    for name in SECTIONS:
        importlib.import_module(f"devstack.demo.{name}").seed(db, now)
