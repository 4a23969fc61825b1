"""on-scenario-progress-written: keep ``scenarioMetadata`` current from progress writes.

Every write of ``userScenarioProgress/{id}`` applies the difference between the old and new
document to ``scenarioMetadata/{scenarioId}`` once per event (the event id is recorded in
the same atomic unit). It writes only ``scenarioMetadata`` and its event record, never the
progress document that triggered it, so it cannot loop.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.clients import firestore_client
from shared.clock import get_clock
from shared.entry import firestore_entry
from shared.events import DocumentChange
from shared.logs import get_logger
from shared.usage.scenarios import apply_progress_change

logger = get_logger(__name__)


@functions_framework.cloud_event
@firestore_entry("on-scenario-progress-written")
def on_scenario_progress_written(change: DocumentChange) -> Any:
    applied = apply_progress_change(
        firestore_client(),
        event_id=change.event_id,
        before=change.before,
        after=change.after,
        now=get_clock().now(),
    )
    # The fields of the event's one log line (written by the entry wrapper).
    return {
        "message": "scenario progress applied",
        "path": change.path,
        "event_id": change.event_id,
        "applied": applied,
    }
