"""stripe-webhook: Stripe's signed webhook; applies each event's credits exactly once.

POST only (405 otherwise); the body is limited to ``STRIPE_MAX_BODY_BYTES`` (413); the
``Stripe-Signature`` header is checked on the raw body against every secret in
``STRIPE_WEBHOOK_SECRET`` (comma separated during a rotation) with the configured
tolerance in either direction (400 when bad, missing, stale or dated in the future); a body
that is not a JSON event with a usable id is a 400. Everything else is a 200 (applied,
duplicate, ignored, or parked with its reason — also a signed event our models reject)
or, for faults Stripe should retry, a 5xx.
See docs/stripe.md.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.billing.service import process_payload
from shared.billing.webhook import parse_event, read_body, verify_signature
from shared.clients import firestore_client
from shared.entry import http_entry, json_response
from shared.errors import MethodNotAllowed
from shared.settings import get_settings


@functions_framework.http
@http_entry("stripe-webhook")
def stripe_webhook(request: Any) -> Any:
    if request.method != "POST":
        raise MethodNotAllowed("use POST")
    settings = get_settings()
    raw = read_body(request, settings.stripe_max_body_bytes)
    verify_signature(
        raw,
        request.headers.get("Stripe-Signature"),
        settings.stripe_secrets(),
        settings.stripe_signature_tolerance_s,
    )
    data, text = parse_event(raw)
    outcome = process_payload(firestore_client(), data, text, profile=settings.schema_profile)
    body: dict[str, Any] = {"received": True, "status": outcome.status}
    if outcome.status == "parked":
        body["reason"] = outcome.detail
    return json_response(body)
