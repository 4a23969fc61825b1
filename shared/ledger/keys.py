"""Idempotency keys that no two different causes can share.

A key is its cause's name followed by the cause's parts (``hold``, ``x`` → ``hold:x``), each
part with ``%`` and ``:`` percent-escaped before the parts are joined with ``:``. Escaped
parts contain no ``:``, so splitting a key on ``:`` gives back exactly the parts it was made
from: two keys are equal only when their causes and all their parts are. Without the
escaping, hold ``x``'s close (``hold:x:close``) and the opening of a hold named ``x:close``
would share one key.

Parts free of ``%`` and ``:`` (every Stripe id, UUID and hex digest) are written unchanged,
so keys built before this encoding keep their transaction ids.
"""

from __future__ import annotations

import re

_ESCAPED = re.compile("%(25|3A)")


def _escape(part: object) -> str:
    if isinstance(part, bool) or not isinstance(part, str | int):
        raise TypeError(f"a key part must be a string or an integer, not {type(part).__name__}")
    return str(part).replace("%", "%25").replace(":", "%3A")


def posting_key(cause: str, *parts: str | int) -> str:
    """The idempotency key of ``cause`` with ``parts``; injective in (cause, *parts)."""
    if not cause or not isinstance(cause, str):
        raise TypeError("a key needs the name of its cause")
    return ":".join(_escape(p) for p in (cause, *parts))


def key_parts(key: str) -> list[str]:
    """The cause and parts a key was built from (the inverse of ``posting_key``)."""
    return [_ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), p) for p in key.split(":")]
