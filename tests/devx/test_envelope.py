"""A Pub/Sub push body that json.loads cannot even decode is bad input (found by the fuzz test)."""

from __future__ import annotations

import pytest


def test_an_envelope_json_cannot_decode_is_bad_input_not_a_crash() -> None:
    """Raw bytes that look like UTF-32 to json.loads (found by the fuzz test) are refused as
    InvalidInput (acknowledged), not raised as UnicodeDecodeError (retried forever)."""
    from cloudevents.http import CloudEvent

    from shared.errors import InvalidInput
    from shared.events import pubsub_message

    event = CloudEvent(
        {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub/x"},
        b"\x00\x00\x00{\x00",
    )
    with pytest.raises(InvalidInput):
        pubsub_message(event)
