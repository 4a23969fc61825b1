"""on-plan-pricing-written: a ``profit_audit_log`` ``pricing_changed`` entry per plan change.

Fires on every write of ``plan_pricing/{plan_id}`` (the plan name); records the document
before and after, ``changed_by`` from ``updated_by``, ``changed_at`` and ``reason`` (see
shared/analytics/audit.py). Writes only ``profit_audit_log``: no loop.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.analytics.audit import record_change
from shared.clients import firestore_client
from shared.clock import get_clock
from shared.entry import firestore_entry
from shared.events import DocumentChange


@functions_framework.cloud_event
@firestore_entry("on-plan-pricing-written")
def on_plan_pricing_written(change: DocumentChange) -> Any:
    return record_change(
        firestore_client(),
        event_id=change.event_id or f"{change.path}@{change.time}",
        action_type="pricing_changed",
        entity_type="plan",
        entity_id=change.document_id,
        before=change.before,
        after=change.after,
        event_time=change.time or get_clock().now(),
    )
