"""What the expiry sweeps page through: documents of one status whose ``expires_at`` has
passed, oldest first, a batch per query."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from google.cloud import firestore
from google.cloud.firestore_v1.base_document import DocumentSnapshot


def due(
    db: firestore.Client,
    collection: str,
    *,
    status: str,
    now: datetime,
    batch_size: int,
    limit: int,
) -> Iterator[DocumentSnapshot]:
    """Every ``collection`` document with ``status`` and ``expires_at <= now``, in
    ``expires_at`` order; no new batch is read once ``limit`` documents were yielded."""
    base = (
        db.collection(collection)
        .where(filter=firestore.FieldFilter("status", "==", status))
        .where(filter=firestore.FieldFilter("expires_at", "<=", now))
        .order_by("expires_at")
    )
    last: DocumentSnapshot | None = None
    examined = 0
    while examined < limit:
        query = base.start_after(last) if last is not None else base
        snaps = list(query.limit(batch_size).stream())
        if not snaps:
            return
        last = snaps[-1]
        examined += len(snaps)
        yield from snaps
