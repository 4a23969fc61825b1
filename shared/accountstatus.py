"""Which accounts may act: only the exact status ``active`` (BigEye's ``users.status``).

BigEye's seed defines ``"active"`` / ``"suspended"`` / ``"banned"``. Every path that lets an
account act (the credit API, slip top-ups, ledger-api's charges, grants and new holds,
usage-limits, the welcome bonus and usage rewards) asks ``refusal``: a document without a
``status`` (or with null) is active (the other products' users carry none); any other
value, ``"Banned"``, ``"disabled"``, ``"suspended "`` or ``""`` included, is refused.
``suspended`` and ``banned`` keep their own messages; anything else is "Account not active".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.errors import Forbidden

ACTIVE = "active"
_MESSAGES = {"suspended": "Account suspended", "banned": "Account banned"}


def refusal(user: Mapping[str, Any]) -> str | None:
    """None when the account may act, else the reason it may not."""
    status = user.get("status")
    if status is None or status == ACTIVE:
        return None
    if isinstance(status, str) and status in _MESSAGES:
        return _MESSAGES[status]
    return "Account not active"


def check_active(user: Mapping[str, Any]) -> None:
    """Forbidden (403) unless the account may act."""
    reason = refusal(user)
    if reason is not None:
        raise Forbidden(reason)
