"""What every operator action shares: who did it, and one field changed with its record.

``Operator`` is the actor, reason, time and (when the path knows it) the client address of
one action. ``set_field`` is the one implementation of "set this field of this document,
unless it already has that value, together with an ``admin_actions`` record": account
status, device rebind, loss actions, router alert acknowledgements, pipeline flags and
promotion transitions all go through it.

``ip_address`` in ``admin_actions`` (and, for engine cost changes, in ``profit_audit_log``)
is the operator's client address where the path knows one: the console passes the
request's address (``request_ip``, the ``TRUSTED_PROXY_HOPS`` rule of the credit API); the
CLI passes none, because it runs on the operator's own machine with their own Google
credentials, where the only address it could name is a local or NAT one that identifies
nobody (the record is ``null`` in ``admin_actions``; the optional field is left out of a
``profit_audit_log`` entry).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.cloud import firestore

from shared.atomic import Unit, run_atomically
from shared.errors import InvalidInput, NotFound

ACTIONS_COLLECTION = "admin_actions"


def text(value: str | None, name: str, limit: int = 500) -> str:
    """A required operator text (actor, reason, id), stripped; InvalidInput otherwise."""
    if value is None or not value.strip():
        raise InvalidInput(f"{name} is required")
    if len(value) > limit:
        raise InvalidInput(f"{name} is longer than {limit} characters")
    return value.strip()


def doc_id(value: str | None, name: str, limit: int = 200) -> str:
    """A document id given by an operator (no ``/``)."""
    value = text(value, name, limit)
    if "/" in value:
        raise InvalidInput(f"{name} must not contain '/'")
    return value


def stamp(now: datetime) -> str:
    """A time-ordered, unique suffix for an ``admin_actions`` id (two changes in the same
    microsecond, or under a fixed test clock, still get two records)."""
    return f"{now.strftime('%Y%m%dT%H%M%S%f')}_{uuid.uuid4().hex[:8]}"


def record(unit: Unit, action_id: str, fields: dict[str, Any]) -> None:
    """Create ``admin_actions/{action_id}`` in ``unit`` (with the change it records)."""
    unit.create(unit.db.collection(ACTIONS_COLLECTION).document(action_id), fields)


def request_ip(request: Any) -> str:
    """The client address of an operator's HTTP request (the console's), by the project's
    trusted-proxy-hops rule (``TRUSTED_PROXY_HOPS``), for ``ip_address``."""
    from shared.bigeye.api import client_ip

    return client_ip(request)


@dataclass(frozen=True)
class Operator:
    """Who acts, why, when, and from where (``ip_address`` None when the path cannot know)."""

    actor: str
    reason: str
    now: datetime
    ip_address: str | None = None

    @classmethod
    def of(cls, actor: str, reason: str, now: datetime, ip_address: str | None = None) -> Operator:
        """Validated: actor and reason required, at most 500 characters; the address is
        kept as given, cut to 64 characters (blank is none)."""
        ip = ip_address.strip()[:64] if isinstance(ip_address, str) else None
        return cls(text(actor, "actor"), text(reason, "reason"), now, ip or None)

    def fields(self, action: str) -> dict[str, Any]:
        """The common fields of an ``admin_actions`` record."""
        return {
            "action": action,
            "actor": self.actor,
            "reason": self.reason,
            "ip_address": self.ip_address,
            "created_at": self.now,
        }


def _same(before: Any, after: Any) -> bool:
    # True == 1 in Python; a flag stored as 1 is not the boolean true.
    return type(before) is type(after) and before == after


@dataclass(frozen=True)
class FieldChange:
    """What ``set_field`` did: the document as read, the value before, whether it changed."""

    data: dict[str, Any]
    before: Any
    changed: bool


def set_field(
    db: firestore.Client,
    ref: Any,
    *,
    field: str,
    value: Any,
    who: Operator,
    action: str,
    missing: str | None,
    default: Any = None,
    also: dict[str, Any] | None = None,
    details: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> FieldChange:
    """Set ``ref.field`` = ``value`` (and ``also``) with an ``admin_actions`` record, in one
    atomic unit; a document that already has the value changes nothing and records nothing.

    ``missing``: the NotFound detail for a missing document (None: the document is created
    with the field). ``default``: the value a document without the field has. ``details``:
    more record fields from the document (formatting only: the decision is ``_same``).
    The record is ``admin_actions/{action}_{ref.id}_{stamp}`` with ``before`` and ``after``.
    """

    def work(unit: Unit) -> FieldChange:
        snap = unit.get(ref)
        if not snap.exists and missing is not None:
            raise NotFound(missing)
        data = (snap.to_dict() or {}) if snap.exists else {}
        before = data.get(field, default)
        if before is None:
            before = default
        if _same(before, value):
            return FieldChange(data, before, False)
        fields = {field: value, **(also or {})}
        if snap.exists:
            unit.update(ref, fields)
        else:
            unit.merge(ref, fields)
        record(
            unit,
            f"{action}_{ref.id}_{stamp(who.now)}",
            {
                **who.fields(action),
                **(details(data) if details else {}),
                "before": before,
                "after": value,
            },
        )
        return FieldChange({**data, **fields}, before, True)

    return run_atomically(db, work)
