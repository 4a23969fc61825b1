"""on-engine-cost-audit: a ``profit_audit_log`` ``cost_updated`` entry per engine cost change.

Fires on every write of ``ai_engine_costs/{engine_id}``; records the document before and
after, ``changed_by`` from ``updated_by``, ``changed_at``, ``reason`` and, for a change made
through the admin services with a known client address, ``ip_address`` (from that change's
``admin_actions`` record; see shared/analytics/audit.py). Writes only ``profit_audit_log``:
no loop.
"""

from __future__ import annotations

import functions_framework

from shared.admin.operations import engine_cost_ip
from shared.analytics.audit import audit_trigger

on_engine_cost_audit = functions_framework.cloud_event(
    audit_trigger(
        "on-engine-cost-audit",
        action_type="cost_updated",
        entity_type="engine",
        address_of=engine_cost_ip,
    )
)
