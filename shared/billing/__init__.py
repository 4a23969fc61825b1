"""Money in from Stripe: event models, pure billing rules and the Firestore service."""

from shared.billing.context import Outcome
from shared.billing.parking import list_parked_events, list_shortfalls
from shared.billing.service import process_event, process_payload, replay_parked_event

__all__ = [
    "Outcome",
    "list_parked_events",
    "list_shortfalls",
    "process_event",
    "process_payload",
    "replay_parked_event",
]
