"""A local Cloud Scheduler: publishes ``{}`` to each schedule's topic on its cron (UTC)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from croniter import croniter

from shared.registry import FunctionSpec, Schedule

logger = logging.getLogger("devstack.scheduler")


class LocalScheduler:
    """A background thread that fires every schedule at its next cron time."""

    def __init__(
        self,
        specs: Iterable[FunctionSpec],
        publish: Callable[[str, bytes], object],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.jobs = [(s.name, s.trigger) for s in specs if isinstance(s.trigger, Schedule)]
        self.publish = publish
        self.now = now
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-scheduler", daemon=True)
        self.fired: list[tuple[str, datetime]] = []

    def next_runs(self) -> list[tuple[datetime, str, Schedule]]:
        start = self.now()
        runs = []
        for name, schedule in self.jobs:
            nxt = croniter(schedule.cron, start).get_next(datetime)
            runs.append((nxt.astimezone(UTC), name, schedule))
        return sorted(runs, key=lambda r: r[0])

    def fire(self, name: str) -> None:
        """Publish one schedule's message now (what Cloud Scheduler's "force run" does)."""
        for job_name, schedule in self.jobs:
            if job_name == name:
                self.publish(schedule.topic, json.dumps({}).encode())
                self.fired.append((name, self.now()))
                return
        raise KeyError(name)

    def _run(self) -> None:
        while not self._stop.is_set():
            runs = self.next_runs()
            if not runs:
                return
            when, _, _ = runs[0]
            delay = (when - self.now()).total_seconds()
            if self._stop.wait(timeout=max(0.0, delay)):
                return
            for run_at, name, _ in runs:
                if run_at <= self.now():
                    try:
                        self.fire(name)
                    except Exception:
                        logger.exception("scheduled publish failed for %s", name)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
