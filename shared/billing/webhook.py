"""The webhook's edge: size limit, signature check on the raw body, envelope parsing."""

from __future__ import annotations

import time
from typing import Any

import stripe

from shared import jsonsafe
from shared.errors import InvalidInput, PayloadTooLarge


def read_body(request: Any, max_bytes: int) -> bytes:
    """The raw body, never more than ``max_bytes`` read (PayloadTooLarge beyond)."""
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise PayloadTooLarge(f"the body is larger than {max_bytes} bytes")
    raw: bytes = request.stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"the body is larger than {max_bytes} bytes")
    return raw


def signature_timestamp(header: str) -> int | None:
    """The ``t=`` of a ``Stripe-Signature`` header (None when absent or not a number)."""
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            return int(value) if value.isdigit() and len(value) <= 12 else None
    return None


def verify_signature(
    raw: bytes,
    header: str | None,
    secrets: list[str],
    tolerance_s: int,
    now_s: float | None = None,
) -> None:
    """Accept the body if its ``Stripe-Signature`` matches any current secret (rotation).

    The signature's timestamp must be within ``tolerance_s`` of now in either direction:
    the library only refuses old ones, and a timestamp in the future would let a captured
    delivery be replayed for as long as it lies ahead.
    """
    if not header:
        raise InvalidInput("missing Stripe-Signature header")
    if not secrets:
        raise InvalidInput("no webhook secret is configured")
    try:
        raw.decode("utf-8")  # stripe's verify_header decodes it and would raise
    except UnicodeDecodeError:
        raise InvalidInput("the body is not UTF-8") from None
    timestamp = signature_timestamp(header)
    now = time.time() if now_s is None else now_s
    if timestamp is not None and timestamp > now + tolerance_s:
        raise InvalidInput("invalid Stripe signature (timestamp in the future)")
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(raw, header, secret, tolerance_s)
            return
        except stripe.SignatureVerificationError:
            continue
    raise InvalidInput("invalid Stripe signature (wrong secret, tampered body or stale timestamp)")


def parse_event(raw: bytes) -> tuple[dict[str, Any], str]:
    """The verified body as a JSON object and as text (InvalidInput when it is neither).

    The envelope's own validation happens in the service, which parks a signed event that
    our models reject instead of refusing it (Stripe would retry it for days, and its
    payload would be kept nowhere).
    """
    data = jsonsafe.loads(raw, what="the body")
    text = raw.decode("utf-8")
    if not isinstance(data, dict):
        raise InvalidInput("the body is not a Stripe event object")
    return data, text
