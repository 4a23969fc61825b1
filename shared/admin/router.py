"""Operator actions of the model router: acknowledge ``model_router_alerts``, edit the
``pipeline_config`` flags. Each effective change commits with an ``admin_actions`` record."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.cloud import firestore

from shared.admin.accounts import _record, _stamp
from shared.admin.operations import _text
from shared.atomic import Unit, run_atomically
from shared.errors import InvalidInput, NotFound
from shared.providers.routing import DEFAULT_FLAGS, PIPELINE_CONFIG, pipeline_flags
from shared.providers.service import ALERTS
from shared.settings import get_settings


def list_alerts(
    db: firestore.Client, *, include_acknowledged: bool = False
) -> list[dict[str, Any]]:
    """Router alerts, newest first (only those not acknowledged unless asked)."""
    query: Any = db.collection(ALERTS)
    if not include_acknowledged:
        query = query.where(filter=firestore.FieldFilter("acknowledged", "==", False))
    rows = [{"alert_id": s.id, **(s.to_dict() or {})} for s in query.stream()]
    rows.sort(key=lambda r: str(r.get("created_at") or ""), reverse=True)
    return rows


def acknowledge_alert(
    db: firestore.Client,
    *,
    alert_id: str,
    actor: str,
    reason: str,
    now: datetime,
    ip_address: str | None = None,
) -> dict[str, Any]:
    """``acknowledged`` = true (already acknowledged: nothing changes). The provider service
    never resets an operator's acknowledgement when it refreshes the alert."""
    actor, reason = _text(actor, "actor"), _text(reason, "reason")
    alert_id = _text(alert_id, "alert id", 300)
    if "/" in alert_id:
        raise InvalidInput("alert id must not contain '/'")
    ref = db.collection(ALERTS).document(alert_id)

    def work(unit: Unit) -> dict[str, Any]:
        snap = unit.get(ref)
        if not snap.exists:
            raise NotFound(f"no router alert {alert_id}")
        data = snap.to_dict() or {}
        if data.get("acknowledged") is True:
            return {"alert_id": alert_id, **data, "changed": False}
        unit.update(ref, {"acknowledged": True})
        _record(
            unit,
            f"alert_ack_{_stamp(now)}",
            {
                "action": "router_alert_ack",
                "actor": actor,
                "reason": reason,
                "alert_id": alert_id,
                "alert_type": data.get("type"),
                "provider": data.get("provider"),
                "ip_address": ip_address,
                "created_at": now,
            },
        )
        return {"alert_id": alert_id, **data, "acknowledged": True, "changed": True}

    return run_atomically(db, work)


def set_pipeline_flag(
    db: firestore.Client,
    *,
    flag: str,
    value: bool,
    actor: str,
    reason: str,
    now: datetime,
    ip_address: str | None = None,
) -> dict[str, Any]:
    """Set one ``pipeline_config`` flag (only the known ones: ``DEFAULT_FLAGS``)."""
    actor, reason = _text(actor, "actor"), _text(reason, "reason")
    if flag not in DEFAULT_FLAGS:
        raise InvalidInput(f"unknown flag {flag}; one of {', '.join(sorted(DEFAULT_FLAGS))}")
    if not isinstance(value, bool):
        raise InvalidInput("a flag is true or false")
    ref = db.collection(PIPELINE_CONFIG).document(get_settings().pipeline_config_document)

    def work(unit: Unit) -> dict[str, Any]:
        snap = unit.get(ref)
        before = (snap.to_dict() or {}).get(flag) if snap.exists else None
        if before is value:
            return {"flag": flag, "value": value, "changed": False}
        unit.merge(ref, {flag: value})
        _record(
            unit,
            f"pipeline_flag_{_stamp(now)}",
            {
                "action": "pipeline_flag",
                "actor": actor,
                "reason": reason,
                "flag": flag,
                "before": before,
                "after": value,
                "ip_address": ip_address,
                "created_at": now,
            },
        )
        return {"flag": flag, "value": value, "changed": True}

    return run_atomically(db, work)


def show_pipeline_flags(db: firestore.Client) -> dict[str, bool]:
    """The flags in force (the document over the settings' defaults)."""
    return pipeline_flags(db)
