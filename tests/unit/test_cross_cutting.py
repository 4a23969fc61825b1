"""Settings, errors, logs, Pub/Sub envelopes and the registry: the pieces every function uses."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cloudevents.http import CloudEvent
from pydantic import ValidationError

from shared import errors
from shared.events import pubsub_message
from shared.registry import REGISTRY, Document, Http, Schedule, Topic
from shared.settings import Settings, override_settings

ROOT = Path(__file__).resolve().parents[2]


def test_settings_are_frozen_and_hide_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_old, whsec_new")
    monkeypatch.setenv("SCHEMA_PROFILE", "bigeye")
    settings = Settings()
    assert settings.stripe_secrets() == ["whsec_old", "whsec_new"]
    assert settings.schema_profile == "bigeye"
    assert "whsec_old" not in repr(settings)
    with pytest.raises(ValidationError):
        settings.schema_profile = "kaiwa"  # type: ignore[misc]


def test_unknown_profile_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEMA_PROFILE", "acme")
    with pytest.raises(ValidationError, match="schema_profile"):
        Settings()


def test_override_settings_restores() -> None:
    from shared.settings import get_settings

    before = get_settings().schema_profile
    with override_settings(schema_profile="kaiwa") as s:
        assert s.schema_profile == "kaiwa" == get_settings().schema_profile
    assert get_settings().schema_profile == before


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.InvalidInput, 400),
        (errors.Unauthenticated, 401),
        (errors.InsufficientCredits, 402),
        (errors.Forbidden, 403),
        (errors.NotFound, 404),
        (errors.Conflict, 409),
        (errors.UpgradeRequired, 426),
        (errors.RateLimited, 429),
        (errors.Unavailable, 503),
        (errors.Transient, 503),
    ],
)
def test_one_status_table(error: type[errors.CreditsError], status: int) -> None:
    exc = error("Insufficient credits")
    assert errors.http_status(exc) == status
    assert errors.http_error_body(exc) == {"detail": "Insufficient credits"}
    assert errors.is_transient(exc) == (status == 503)


def test_logs_are_one_json_line_with_severity_and_no_secrets() -> None:
    code = (
        "import logging; from shared.logs import get_logger, log;"
        "log(get_logger('t'), logging.ERROR, 'boom', user_id='u1', jwt_secret='s3cret')"
    )
    env = {**os.environ, "LOG_FORMAT": "json"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    line = json.loads(out.strip().splitlines()[-1])
    assert line["severity"] == "ERROR"
    assert line["message"] == "boom"
    assert line["user_id"] == "u1"
    assert line["jwt_secret"] == "[redacted]"
    assert logging.getLevelName(logging.ERROR) == "ERROR"


def _push(payload: bytes | None, **message: object) -> CloudEvent:
    body = dict(message)
    if payload is not None:
        body["data"] = base64.b64encode(payload).decode()
    return CloudEvent(
        {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub/x"},
        {"message": body, "subscription": "s"},
    )


def test_pubsub_envelope_decoding() -> None:
    msg = pubsub_message(
        _push(b'{"a": 1}', messageId="42", publishTime="2026-01-04T10:00:00.5Z", attributes={})
    )
    assert msg.json() == {"a": 1}
    assert msg.message_id == "42"
    assert msg.publish_time is not None and msg.publish_time.year == 2026
    with pytest.raises(errors.InvalidInput):
        pubsub_message(_push(b"\xff\xfe", messageId="1")).json()
    with pytest.raises(errors.InvalidInput):
        pubsub_message(_push(None, data="***", messageId="1"))
    with pytest.raises(errors.InvalidInput):
        pubsub_message(CloudEvent({"type": "t", "source": "s"}, {"nope": 1}))


def test_registry_is_consistent() -> None:
    names = [s.name for s in REGISTRY]
    assert len(names) == len(set(names))
    for spec in REGISTRY:
        assert spec.source.exists(), spec
        assert isinstance(spec.trigger, Http | Topic | Schedule | Document)
        if isinstance(spec.trigger, Schedule):
            from croniter import croniter

            assert croniter.is_valid(spec.trigger.cron)
        text = spec.source.read_text()
        # A function, or a handler made by a factory (the audit triggers).
        assert f"def {spec.entry_point}(" in text or f"\n{spec.entry_point} = " in text
