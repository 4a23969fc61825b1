"""on-engine-cost-audit: a ``profit_audit_log`` ``cost_updated`` entry per engine cost change.

Fires on every write of ``ai_engine_costs/{engine_id}``; records the document before and
after, ``changed_by`` from ``updated_by``, ``changed_at``, ``reason`` and, for a change made
through the admin services with a known client address, ``ip_address`` (from that change's
``admin_actions`` record; see shared/analytics/audit.py). Writes only ``profit_audit_log``:
no loop.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.admin.operations import engine_cost_ip
from shared.analytics.audit import record_change
from shared.clients import firestore_client
from shared.clock import get_clock
from shared.entry import firestore_entry
from shared.events import DocumentChange


@functions_framework.cloud_event
@firestore_entry("on-engine-cost-audit")
def on_engine_cost_audit(change: DocumentChange) -> Any:
    db = firestore_client()
    return record_change(
        db,
        event_id=change.event_id or f"{change.path}@{change.time}",
        action_type="cost_updated",
        entity_type="engine",
        entity_id=change.document_id,
        before=change.before,
        after=change.after,
        event_time=change.time or get_clock().now(),
        ip_address=engine_cost_ip(db, change.document_id, change.after),
    )
