"""Retention: delete what the schemas say expires, in bounded batches that resume.

- ``usage_logs`` whose ``created_at`` is more than 90 days before the run (002); the
  aggregates and counters built from them stay;
- ``learningPathPreviews`` that are ``committed`` or whose ``expiresAt`` has passed (001);
- ``daily_token_usage`` archived into ``token_usage_history``: days more than
  ``TOKEN_DAYS_KEPT`` days old whose daily rollup has run (003);
- the analytics day counters (``usage_user_days``, ``usage_day_shards``) older than
  ``COUNTER_DAYS_KEPT`` days;
- ``profit_audit_log`` entries whose ``changed_at`` is more than two years
  (``AUDIT_DAYS_KEPT`` = 731 days) before the run (002: "Retention: 2 years").
Each collection is read oldest first, 500 documents at a time, each page deleted in one
batch; a run stops after ``max_batches`` pages per collection or at its deadline and the
next run carries on from the oldest document left (deleted documents are gone, skipped
ones are passed with a cursor), so progress is never lost. Every run records what it did
in ``analytics_runs/retention``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_document import DocumentSnapshot
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.analytics.counters import DAY_SHARDS_COLLECTION, USER_DAYS
from shared.analytics.rollups import AGGREGATES
from shared.analytics.rules import daily_id, parse_day
from shared.clock import ensure_utc

USAGE_LOG_DAYS_KEPT = 90
TOKEN_DAYS_KEPT = 35
COUNTER_DAYS_KEPT = 400
AUDIT_DAYS_KEPT = 731
PAGE = 500
RUNS = "analytics_runs"


@dataclass
class RetentionReport:
    """Documents deleted per collection, and whether anything is left for the next run."""

    deleted: dict[str, int] = field(default_factory=dict)
    complete: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pages(query: firestore.Query, order: str, size: int) -> Iterator[list[DocumentSnapshot]]:
    """Pages of ``query`` oldest first; the caller deletes (or skips) each page."""
    cursor: DocumentSnapshot | None = None
    while True:
        page_query = query.order_by(order).limit(size)
        if cursor is not None:
            page_query = page_query.start_after(cursor)
        page = list(page_query.stream())
        if not page:
            return
        yield page
        cursor = page[-1]
        if len(page) < size:
            return


def _purge(
    db: firestore.Client,
    name: str,
    query: firestore.Query,
    order: str,
    report: RetentionReport,
    max_batches: int,
    deadline: float,
    page_size: int,
    keep: Callable[[DocumentSnapshot], bool] = lambda _s: False,
) -> None:
    for batches, page in enumerate(_pages(query, order, page_size)):
        if batches >= max_batches or time.monotonic() > deadline:
            report.complete = False
            return
        batch = db.batch()
        doomed = [s for s in page if not keep(s)]
        for snap in doomed:
            batch.delete(snap.reference)
        if doomed:
            batch.commit()
        report.deleted[name] = report.deleted.get(name, 0) + len(doomed)


def run_retention(
    db: firestore.Client,
    as_of: datetime,
    *,
    max_batches: int = 200,
    budget_s: float = 480.0,
    recorded_at: datetime | None = None,
    page_size: int = PAGE,
) -> RetentionReport:
    """Delete everything past its retention as of ``as_of`` (the schedule's time)."""
    as_of = ensure_utc(as_of)
    deadline = time.monotonic() + budget_s
    report = RetentionReport()
    args = (report, max_batches, deadline, page_size)
    logs_cutoff = as_of - timedelta(days=USAGE_LOG_DAYS_KEPT)
    _purge(
        db,
        "usage_logs",
        db.collection("usage_logs").where(filter=FieldFilter("created_at", "<", logs_cutoff)),
        "created_at",
        *args,
    )
    previews = db.collection("learningPathPreviews")
    _purge(
        db,
        "learningPathPreviews",
        previews.where(filter=FieldFilter("status", "==", "committed")),
        "__name__",
        *args,
    )
    _purge(
        db,
        "learningPathPreviews",
        previews.where(filter=FieldFilter("expiresAt", "<", as_of)),
        "expiresAt",
        *args,
    )

    rolled: dict[str, bool] = {}

    def not_archived(snap: DocumentSnapshot) -> bool:
        day = str((snap.to_dict() or {}).get("date") or "")
        if day not in rolled:
            try:
                ref = db.collection(AGGREGATES).document(daily_id(parse_day(day)))
                rolled[day] = ref.get().exists
            except ValueError:
                rolled[day] = False
        return not rolled[day]

    token_cutoff = (as_of - timedelta(days=TOKEN_DAYS_KEPT)).date().isoformat()
    _purge(
        db,
        "daily_token_usage",
        db.collection("daily_token_usage").where(filter=FieldFilter("date", "<", token_cutoff)),
        "date",
        *args,
        keep=not_archived,
    )
    counter_cutoff = (as_of - timedelta(days=COUNTER_DAYS_KEPT)).date().isoformat()
    for name in (USER_DAYS, DAY_SHARDS_COLLECTION):
        _purge(
            db,
            name,
            db.collection(name).where(filter=FieldFilter("day", "<", counter_cutoff)),
            "day",
            *args,
        )
    audit_cutoff = as_of - timedelta(days=AUDIT_DAYS_KEPT)
    _purge(
        db,
        "profit_audit_log",
        db.collection("profit_audit_log").where(
            filter=FieldFilter("changed_at", "<", audit_cutoff)
        ),
        "changed_at",
        *args,
    )
    db.collection(RUNS).document("retention").set(
        {"as_of": as_of, "recorded_at": recorded_at or as_of, **report.as_dict()}
    )
    return report
