"""Run a schedule now on the local stack: publish its message, show what it did.

``python -m devstack trigger cron-daily-rollup --date 2026-01-04`` publishes
``{"date": "2026-01-04"}`` to the schedule's topic, as Cloud Scheduler would publish ``{}``,
and waits for the function's outcome (from the functions server, ``/_stack/outcomes``).
A period that has not ended yet (today, this month) is allowed and reported as partial:
the function computes it from the data so far, and the next run after the period ends
rewrites it in full.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import httpx

from devstack.preflight import functions_url
from shared.registry import REGISTRY, FunctionSpec, Schedule

#: Schedule -> the period option it reads (others take ``{}`` or ``--data``).
PERIODS = {
    "cron-daily-rollup": "date",
    "cron-hourly-loss-scan": "date",
    "cron-retention": "date",
    "cron-monthly-rollup": "month",
}
WAIT_S = 60.0


class TriggerError(RuntimeError):
    """A refused trigger (unknown schedule, bad period): one line for the user."""


def schedules() -> dict[str, FunctionSpec]:
    return {s.name: s for s in REGISTRY if isinstance(s.trigger, Schedule)}


def build_message(
    name: str,
    *,
    day: str | None = None,
    month: str | None = None,
    data: str | None = None,
    today: date | None = None,
) -> tuple[dict[str, Any], str | None]:
    """The message for ``name`` and, for a period that has not ended, why it is partial."""
    if name not in schedules():
        raise TriggerError(f"no schedule {name!r}; schedules: {', '.join(sorted(schedules()))}")
    today = today or datetime.now(UTC).date()
    if data is not None:
        try:
            message = json.loads(data)
        except json.JSONDecodeError:
            raise TriggerError("--data is not JSON") from None
        if not isinstance(message, dict):
            raise TriggerError("--data must be a JSON object")
        return message, None
    wanted = PERIODS.get(name)
    if day is not None:
        if wanted != "date":
            raise TriggerError(
                f"{name} takes no --date" + (f" (it takes --{wanted})" if wanted else "")
            )
        try:
            named = date.fromisoformat(day)
        except ValueError:
            raise TriggerError(f"--date {day!r} is not YYYY-MM-DD") from None
        partial = None
        if named >= today:
            partial = f"{day} has not ended (UTC): the figures so far; the next run rewrites them"
        return {"date": named.isoformat()}, partial
    if month is not None:
        if wanted != "month":
            raise TriggerError(
                f"{name} takes no --month" + (f" (it takes --{wanted})" if wanted else "")
            )
        try:
            first = date.fromisoformat(f"{month}-01")
        except ValueError:
            raise TriggerError(f"--month {month!r} is not YYYY-MM") from None
        partial = None
        if (first.year, first.month) >= (today.year, today.month):
            partial = f"{month} has not ended (UTC): the figures so far; the next run rewrites them"
        return {"month": f"{first.year:04d}-{first.month:02d}"}, partial
    return {}, None


def outcome(event_id: str) -> dict[str, Any] | None:
    """The functions server's record of what became of one event, if any yet."""
    try:
        response = httpx.get(
            f"{functions_url()}/_stack/outcomes/{quote(event_id, safe='')}", timeout=2
        )
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    found: dict[str, Any] = response.json()
    return found


def wait_outcome(
    event_id: str, wait_s: float = WAIT_S, after: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The outcome of ``event_id``; with ``after`` (the outcome seen before sending), only a
    newer one counts, so a resent id never reads its earlier delivery's outcome."""
    seen = None if after is None else after.get("seq")

    def fresh(found: dict[str, Any] | None) -> dict[str, Any] | None:
        if found is None or (seen is not None and found.get("seq") == seen):
            return None
        return found

    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        found = fresh(outcome(event_id))
        if found and found.get("outcome") != "retry":
            return found
        time.sleep(0.2)
    return fresh(outcome(event_id))


def publish(topic: str, message: dict[str, Any]) -> str:
    """Publish to the local Pub/Sub emulator; returns the message id."""
    from shared.clients import publisher_client
    from shared.settings import get_settings

    publisher = publisher_client()
    path = publisher.topic_path(get_settings().google_cloud_project, topic)
    return str(publisher.publish(path, json.dumps(message).encode()).result(timeout=30))
