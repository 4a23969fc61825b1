"""Demo configuration written by ``make run`` (CONTRACT.md section 8).

Each area keeps its demo documents in its own module with a ``seed(db, now)`` function;
``SECTIONS`` lists them in the order they are written. The tests seed the same data.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

SECTIONS: list[Callable[[Any, datetime], None]] = []


def _usage_seed(db: Any, now: datetime) -> None:
    from devstack.demo import usage

    usage.seed(db, now)


SECTIONS.append(_usage_seed)


def _bigeye_seed(db: Any, now: datetime) -> None:
    from devstack.demo import bigeye

    bigeye.seed(db, now)


SECTIONS.append(_bigeye_seed)


def _billing_seed(db: Any, now: datetime) -> None:
    from devstack.demo import billing

    billing.seed(db, now)


SECTIONS.append(_billing_seed)


def _providers_seed(db: Any, now: datetime) -> None:
    from devstack.demo import providers

    providers.seed(db, now)


SECTIONS.append(_providers_seed)


def seed_all(db: Any, now: datetime) -> None:
    """Write every demo section (idempotent: documents are set by fixed ids)."""
    for seed in SECTIONS:
        seed(db, now)
