"""The hourly loss-user scan: ``loss_users/{user_id}`` for users losing money over 30 days.

The window is the 30 UTC days ending with the scan's day (29 closed days plus today so
far), read from the per-user month counters (``usage_user_periods``, whose ``days.{DD}``
keep each day): at most two documents per user, never the logs.

An episode: the first scan that finds a user's 30-day profit negative creates the
``loss_users`` document (``detected_at`` = that scan's time), writes ``profit_audit_log``
``loss_detected`` and raises the alert (a WARNING log line with ``alert="loss_user"`` and a
``loss_user`` message on the ``alerts`` topic, ``shared/alerts.py``), all
at once and only once (``create`` of both documents in one batch; a concurrent or repeated
scan finds them and only refreshes figures). Later scans refresh the figures and
``last_checked_at``; ``days_in_loss`` is the number of calendar days (UTC) from
``detected_at`` through the scan's day, so 24 hourly scans in one day count one day.
Recovery: a scan that finds the user's 30-day profit at zero or above deletes the
document (the collection lists the users in loss now; the audit entry stays). A later
loss starts a new episode with a new detection, audit entry and alert.
Fields an admin sets (``action_taken``, ``notes``) are never touched by the scan.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.analytics.counters import USER_PERIODS
from shared.analytics.rules import Breakdown, Tally, margin_percent, usd
from shared.atomic import chunked
from shared.clock import ensure_utc
from shared.logs import get_logger, log

LOSS_USERS = "loss_users"
AUDIT_LOG = "profit_audit_log"
WINDOW_DAYS = 30
#: The figures of a loss user that its audit entry and its alert report.
REPORTED_FIGURES = (
    "subscription_plan",
    "total_cost_usd",
    "total_revenue_usd",
    "total_profit_usd",
    "profit_margin_percent",
    "total_generations",
)
logger = get_logger(__name__)


@dataclass
class _UserWindow:
    usage: Breakdown = field(default_factory=Breakdown)
    latest_day: str = ""
    latest_plans: dict[str, Tally] = field(default_factory=dict)


@dataclass(frozen=True)
class LossScanReport:
    users_scanned: int
    in_loss: list[str]
    detected: list[str]
    recovered: list[str]
    documents_read: int


def window_start(scan_day: date) -> date:
    return scan_day - timedelta(days=WINDOW_DAYS - 1)


def _most(tallies: dict[str, Tally], key: str) -> str:
    """The name with the most generations (key="n") or the highest cost; ties by name."""
    used = [(name, t) for name, t in tallies.items() if t.n > 0]
    if not used:
        return ""
    return min(used, key=lambda item: (-getattr(item[1], key), item[0]))[0]


def loss_figures(window: _UserWindow) -> dict[str, Any]:
    """The financial and usage fields of a loss_users document (pure)."""
    total = window.usage.total
    return {
        "subscription_plan": _most(window.latest_plans, "n"),
        "total_cost_usd": usd(total.cost),
        "total_revenue_usd": usd(total.revenue),
        "total_profit_usd": usd(total.profit),
        "profit_margin_percent": margin_percent(total.revenue, total.cost),
        "total_generations": total.n,
        "most_used_engine": _most(window.usage.engines, "n"),
        "most_expensive_engine": _most(window.usage.engines, "cost"),
    }


def days_in_loss(detected_at: datetime, scan_at: datetime) -> int:
    """Calendar days (UTC) from detection through the scan's day, at least 1."""
    return max(1, (ensure_utc(scan_at).date() - ensure_utc(detected_at).date()).days + 1)


def audit_id(user_id: str, detected_at: datetime) -> str:
    digest = hashlib.sha256(f"{user_id}|{ensure_utc(detected_at).isoformat()}".encode())
    return f"loss_detected_{digest.hexdigest()[:24]}"


def scan_losses(db: firestore.Client, scan_at: datetime) -> LossScanReport:
    """Run one scan as of ``scan_at`` (the schedule's time, so a rerun is identical)."""
    scan_at = ensure_utc(scan_at)
    scan_day = scan_at.date()
    first_day = window_start(scan_day)
    first, last = first_day.isoformat(), scan_day.isoformat()
    months = sorted({f"{first_day:%Y-%m}", f"{scan_day:%Y-%m}"})
    query = db.collection(USER_PERIODS).where(filter=FieldFilter("period", "in", months))
    windows: dict[str, _UserWindow] = {}
    read = 0
    for snap in query.stream():
        read += 1
        data = snap.to_dict() or {}
        user_id = str(data.get("user_id") or "")
        window = windows.setdefault(user_id, _UserWindow())
        for dd, entry in (data.get("days") or {}).items():
            day = f"{data.get('period')}-{dd}"
            if not first <= day <= last:
                continue
            day_usage = Breakdown.from_counter(entry)
            window.usage.add(day_usage)
            if day > window.latest_day:
                window.latest_day, window.latest_plans = day, day_usage.plans
    losing = {u: w for u, w in windows.items() if u and w.usage.total.profit < 0}
    existing: dict[str, dict[str, Any]] = {}
    for snap in db.collection(LOSS_USERS).stream():
        read += 1
        existing[snap.id] = snap.to_dict() or {}
    emails: dict[str, str] = {}
    for chunk in chunked(sorted(losing), 300):
        refs = [db.collection("users").document(u) for u in chunk]
        for snap in db.get_all(refs):
            read += 1
            if snap.exists:
                emails[snap.id] = str((snap.to_dict() or {}).get("email") or "")
    detected: list[str] = []
    for user_id, window in sorted(losing.items()):
        figures = {**loss_figures(window), "email": emails.get(user_id, "")}
        ref = db.collection(LOSS_USERS).document(user_id)
        current = existing.get(user_id)
        if current is not None:
            detected_at = current.get("detected_at") or scan_at
            ref.update(
                {
                    **figures,
                    "last_checked_at": scan_at,
                    "days_in_loss": days_in_loss(detected_at, scan_at),
                }
            )
            continue
        if _open_episode(db, user_id, scan_at, figures, window):
            detected.append(user_id)
    recovered = []
    for user_id, current in sorted(existing.items()):
        if user_id in losing:
            continue
        detected_at = current.get("detected_at")
        if isinstance(detected_at, datetime) and ensure_utc(detected_at) > scan_at:
            continue  # an older scan rerun never ends a newer episode
        db.collection(LOSS_USERS).document(user_id).delete()
        recovered.append(user_id)
        log(logger, logging.INFO, "loss user recovered", user_id=user_id)
    return LossScanReport(len(windows), sorted(losing), detected, recovered, read)


def _open_episode(
    db: firestore.Client,
    user_id: str,
    scan_at: datetime,
    figures: dict[str, Any],
    window: _UserWindow,
) -> bool:
    """Create the loss_users document and its audit entry together; alert if this run did."""
    batch = db.batch()
    batch.create(
        db.collection(LOSS_USERS).document(user_id),
        {
            "user_id": user_id,
            **figures,
            "detected_at": scan_at,
            "last_checked_at": scan_at,
            "days_in_loss": 1,
            "alert_sent": True,
            "alert_sent_at": scan_at,
        },
    )
    batch.create(
        db.collection(AUDIT_LOG).document(audit_id(user_id, scan_at)),
        {
            "action_type": "loss_detected",
            "entity_type": "user",
            "entity_id": user_id,
            "before_value": None,
            "after_value": {k: figures[k] for k in REPORTED_FIGURES},
            "changed_by": "system:cron-hourly-loss-scan",
            "changed_at": scan_at,
            "reason": f"30-day profit {figures['total_profit_usd']} USD is negative",
        },
    )
    try:
        batch.commit()
    except (gexc.AlreadyExists, gexc.Conflict):
        return False
    log(
        logger,
        logging.WARNING,
        "loss user detected",
        alert="loss_user",
        user_id=user_id,
        total_profit_usd=figures["total_profit_usd"],
        total_generations=window.usage.total.n,
    )
    from shared.alerts import alert_message, publish_alert

    publish_alert(
        alert_message(
            "loss_user",
            f"loss_user:{user_id}:{scan_at.strftime('%Y%m%dT%H%M%SZ')}",
            raised_at=scan_at,
            summary=(
                f"{user_id} lost {-float(figures['total_profit_usd'])} USD over the last 30 days"
            ),
            details={
                "user_id": user_id,
                "detected_at": scan_at.isoformat(),
                **{k: figures.get(k) for k in REPORTED_FIGURES},
            },
        )
    )
    return True
