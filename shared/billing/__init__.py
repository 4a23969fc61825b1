"""Money in from Stripe: event models, pure billing rules and the Firestore service."""

from shared.billing.service import (
    Outcome,
    list_parked_events,
    list_shortfalls,
    process_event,
    replay_parked_event,
)

__all__ = [
    "Outcome",
    "list_parked_events",
    "list_shortfalls",
    "process_event",
    "replay_parked_event",
]
