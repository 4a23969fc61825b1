"""Operator actions of the model router: acknowledge ``model_router_alerts``, edit the
``pipeline_config`` flags. Each effective change commits with an ``admin_actions`` record."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.cloud import firestore

from shared.admin.changes import Operator, doc_id, set_field
from shared.errors import InvalidInput
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
    who = Operator.of(actor, reason, now, ip_address)
    ref = db.collection(ALERTS).document(doc_id(alert_id, "alert id", 300))
    done = set_field(
        db,
        ref,
        field="acknowledged",
        value=True,
        who=who,
        action="router_alert_ack",
        missing=f"no router alert {alert_id}",
        details=lambda data: {
            "alert_id": ref.id,
            "alert_type": data.get("type"),
            "provider": data.get("provider"),
        },
    )
    return {"alert_id": ref.id, **done.data, "changed": done.changed}


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
    who = Operator.of(actor, reason, now, ip_address)
    if flag not in DEFAULT_FLAGS:
        raise InvalidInput(f"unknown flag {flag}; one of {', '.join(sorted(DEFAULT_FLAGS))}")
    if not isinstance(value, bool):
        raise InvalidInput("a flag is true or false")
    ref = db.collection(PIPELINE_CONFIG).document(get_settings().pipeline_config_document)
    done = set_field(
        db,
        ref,
        field=flag,
        value=value,
        who=who,
        action="pipeline_flag",
        missing=None,
        details=lambda _: {"flag": flag},
    )
    return {"flag": flag, "value": value, "changed": done.changed}


def show_pipeline_flags(db: firestore.Client) -> dict[str, bool]:
    """The flags in force (the document over the settings' defaults)."""
    return pipeline_flags(db)
