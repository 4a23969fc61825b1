"""cron-stripe-parked-sweep: replay parked Stripe events that have become resolvable."""

from __future__ import annotations

from typing import Any

import functions_framework
from pydantic import BaseModel, ConfigDict, Field

from shared.billing.sweep import sweep_parked_events
from shared.clients import firestore_client
from shared.entry import parse_model, pubsub_entry
from shared.events import PubSubMessage


class SweepRequest(BaseModel):
    """``{}``, or ``{"limit": n}`` to bound one run."""

    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=200, ge=1, le=1000)


@functions_framework.cloud_event
@pubsub_entry("cron-stripe-parked-sweep")
def cron_stripe_parked_sweep(message: PubSubMessage) -> Any:
    request = parse_model(SweepRequest, message.json() if message.data else {})
    return sweep_parked_events(firestore_client(), limit=request.limit)
