"""on-plan-pricing-written: a ``profit_audit_log`` ``pricing_changed`` entry per plan change.

Fires on every write of ``plan_pricing/{plan_id}`` (the plan name); records the document
before and after, ``changed_by`` from ``updated_by``, ``changed_at`` and ``reason`` (see
shared/analytics/audit.py). Writes only ``profit_audit_log``: no loop.
"""

from __future__ import annotations

import functions_framework

from shared.analytics.audit import audit_trigger

on_plan_pricing_written = functions_framework.cloud_event(
    audit_trigger("on-plan-pricing-written", action_type="pricing_changed", entity_type="plan")
)
