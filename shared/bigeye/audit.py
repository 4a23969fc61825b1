"""``audit_logs`` entries, written in the same atomic unit as the change they record."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.cloud import firestore

from shared.atomic import Unit, run_atomically
from shared.bigeye.models import AUDIT_LOGS, AuditEvent, Severity


def audit_doc(
    event_type: AuditEvent,
    *,
    user_id: str,
    details: dict[str, Any],
    now: datetime,
    severity: Severity = Severity.INFO,
) -> dict[str, Any]:
    """One ``audit_logs`` document exactly as the seed names it."""
    return {
        "event_type": event_type.value,
        "severity": severity.value,
        "user_id": user_id,
        "details": details,
        "created_at": now,
    }


def audit(
    unit: Unit,
    event_type: AuditEvent,
    *,
    user_id: str,
    details: dict[str, Any],
    now: datetime,
    severity: Severity = Severity.INFO,
) -> None:
    """Add an audit entry to ``unit`` (a fresh auto id per attempt: only one commits)."""
    ref = unit.db.collection(AUDIT_LOGS).document()
    unit.create(
        ref, audit_doc(event_type, user_id=user_id, details=details, now=now, severity=severity)
    )


def audit_now(
    db: firestore.Client,
    event_type: AuditEvent,
    *,
    user_id: str,
    details: dict[str, Any],
    now: datetime,
    severity: Severity = Severity.INFO,
) -> None:
    """Write one audit entry on its own (failed logins: nothing else changes)."""
    run_atomically(
        db,
        lambda unit: audit(
            unit, event_type, user_id=user_id, details=details, now=now, severity=severity
        ),
    )
