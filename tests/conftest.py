"""Test fixtures: one emulator stack per session (same wiring as ``make run``), wiped per test."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.emulators import free_port
from devstack.stack import Stack, StackConfig
from shared.clock import SystemClock, set_clock

PROJECT = "demo-test"


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """Firestore + Pub/Sub emulators, every function served over HTTP, triggers wired."""
    log_dir = Path(tempfile.mkdtemp(prefix="credits-stack-"))
    config = StackConfig(
        project=PROJECT,
        firestore_port=free_port(),
        pubsub_port=free_port(),
        storage_port=free_port(),
        functions_port=free_port(),
        log_dir=log_dir,
        seed_demo=False,
        scheduler=False,
    )
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    running = Stack(config)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def db(stack: Stack):  # type: ignore[no-untyped-def]
    """A Firestore client on a freshly wiped emulator, with the real clock."""
    from shared.clients import firestore_client

    set_clock(SystemClock())
    stack.wipe_quiet()
    yield firestore_client()
    set_clock(SystemClock())


@pytest.fixture
def demo(db, stack: Stack):  # type: ignore[no-untyped-def]
    """The wiped emulator with ``make run``'s demo configuration written."""
    stack.seed()
    return db
