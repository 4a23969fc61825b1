"""``profit_audit_log`` entries for changes of engine costs and plan pricing.

One entry per creation or update, with the whole document before (``None`` when created)
and after, ``changed_by`` from the document's ``updated_by`` (``"unknown"`` if absent),
``changed_at`` from its ``updated_at`` (else the event time), ``reason`` from its
``reason`` or ``notes`` field (else "created" / "updated"), and ``ip_address`` only when the
operator path that made the change knew the client address (an engine cost set through the
admin services from the console: ``shared.admin.operations.engine_cost_ip``). Deletions are
not recorded: a deletion carries no ``updated_by`` to attribute it to, engines and plans are retired
with ``is_active`` (an update, recorded), and the local stack's wipes delete everything.
The entry id is derived from the event id, so a redelivered event writes nothing; a write
that changes nothing is not recorded. The trigger never writes the collection it watches.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from shared.clients import firestore_client
from shared.clock import ensure_utc, get_clock
from shared.entry import firestore_entry
from shared.events import DocumentChange

AUDIT_LOG = "profit_audit_log"


def audit_entry(
    *,
    action_type: str,
    entity_type: str,
    entity_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    event_time: datetime,
    ip_address: str | None = None,
) -> dict[str, Any] | None:
    """The audit document for one change (pure), or None when nothing changed.

    ``ip_address`` (the seed's optional field) is written only when the change's operator
    path knew the client address; otherwise the field is left out."""
    if after is None or before == after:
        return None
    changed_by = after.get("updated_by")
    updated_at = after.get("updated_at")
    changed_at = ensure_utc(updated_at) if isinstance(updated_at, datetime) else event_time
    reason = after.get("reason") or after.get("notes")
    if not isinstance(reason, str) or not reason.strip():
        reason = "created" if before is None else "updated"
    entry = {
        "action_type": action_type,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "before_value": before,
        "after_value": after,
        "changed_by": str(changed_by) if changed_by else "unknown",
        "changed_at": changed_at,
        "reason": reason,
    }
    if ip_address:
        entry["ip_address"] = ip_address
    return entry


def entry_id(action_type: str, event_id: str) -> str:
    return f"{action_type}_{hashlib.sha256(event_id.encode()).hexdigest()[:32]}"


def record_change(db: firestore.Client, *, event_id: str, **kwargs: Any) -> str | None:
    """Write the entry for one change once; returns its id (None when nothing changed)."""
    entry = audit_entry(**kwargs)
    if entry is None:
        return None
    doc_id = entry_id(entry["action_type"], event_id)
    with contextlib.suppress(gexc.AlreadyExists):  # a redelivered event
        db.collection(AUDIT_LOG).document(doc_id).create(entry)
    return doc_id


#: Finds the client address of the change that wrote ``after`` (db, document id, after).
AddressOf = Callable[[firestore.Client, str, dict[str, Any] | None], str | None]


def audit_trigger(
    name: str, *, action_type: str, entity_type: str, address_of: AddressOf | None = None
) -> Callable[[Any], None]:
    """The Firestore trigger ``name``: one ``action_type`` entry per write of the watched
    ``entity_type`` document (``on-engine-cost-audit``, ``on-plan-pricing-written``), with
    the client address ``address_of`` finds, if given."""

    @firestore_entry(name)
    def handler(change: DocumentChange) -> str | None:
        db = firestore_client()
        return record_change(
            db,
            event_id=change.event_id or f"{change.path}@{change.time}",
            action_type=action_type,
            entity_type=entity_type,
            entity_id=change.document_id,
            before=change.before,
            after=change.after,
            event_time=change.time or get_clock().now(),
            ip_address=None
            if address_of is None
            else address_of(db, change.document_id, change.after),
        )

    return handler
