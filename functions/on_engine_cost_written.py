"""on-engine-cost-written: record every version of ``ai_engine_costs/{engine_id}``.

Usage events are priced at the engine cost in force at the event's own time, so a cost
changed after an event is never applied to it retroactively. This trigger keeps that
history in ``ai_engine_cost_history`` (effective from the document's ``updated_at``, or the
write time when absent; deletions are not recorded: a deleted engine is unknown). It writes
only the
history collection, never ``ai_engine_costs``, so it cannot loop; the record is
idempotent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import functions_framework

from shared.clients import firestore_client
from shared.clock import ensure_utc, get_clock
from shared.entry import firestore_entry
from shared.events import DocumentChange
from shared.usage.config import record_engine_version


@functions_framework.cloud_event
@firestore_entry("on-engine-cost-written")
def on_engine_cost_written(change: DocumentChange) -> Any:
    now = get_clock().now()
    after = change.after
    if after is None:
        return None
    updated_at = after.get("updated_at")
    if isinstance(updated_at, datetime):
        effective_from = ensure_utc(updated_at)
    else:
        effective_from = change.time or now
    return record_engine_version(
        firestore_client(),
        change.document_id,
        after,
        effective_from=effective_from,
        recorded_at=now,
    )
