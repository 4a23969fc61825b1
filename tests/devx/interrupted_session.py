"""Run only by ``test_interrupt.py`` in a pytest of its own (the name keeps it out of the
suite's collection): requests in flight on the session's stack, then Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx


def test_interrupted_with_requests_in_flight(stack: Any) -> None:
    c = stack.config
    report = Path(os.environ["INTERRUPT_REPORT"])
    busy = threading.Event()

    def hammer() -> None:
        # A push the function refuses (acknowledged with a 4xx, and logged), again and again.
        with httpx.Client(base_url=stack.base_url, timeout=30) as client:
            while True:
                try:
                    client.post("/usage-events", json={"message": {"data": "bm90IGpzb24="}})
                    busy.set()
                except httpx.HTTPError:
                    return

    for _ in range(4):
        threading.Thread(target=hammer, daemon=True).start()
    assert busy.wait(60)
    ports = [c.firestore_port, c.pubsub_port, c.storage_port, c.functions_port]
    written = report.with_suffix(".tmp")
    written.write_text(json.dumps({"ports": ports, "interrupted_at": time.time()}))
    written.rename(report)  # whole, or not there yet
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, with requests being handled
    raise AssertionError("the SIGINT did not interrupt the session")
