"""Test fixtures: one emulator stack per session (same wiring as ``make run``), wiped per test."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from devstack.emulators import free_port
from devstack.stack import Stack, StackConfig
from shared.clock import SystemClock, set_clock

PROJECT = "demo-test"
_END_TO_END = ("e2e", "chaos", "fuzz")
#: Tests that start other processes (make, the CLIs, bundles in fresh interpreters) or,
#: like the fuzz coverage check, depend on emulator tests: not in the pure tier.
_BY_NODE = {
    "tests/e2e/test_make_run.py": ("emulator", "e2e", "process"),
    "tests/devx/test_interrupt.py": ("emulator", "process"),  # its child starts a stack
    "tests/devx/": ("process",),
    "tests/deploy/test_deploy.py::test_every_bundle_imports_in_a_clean_interpreter": ("process",),
    "tests/deploy/test_deploy.py::test_make_deploy_plan": ("process",),
    "tests/fuzz/test_fuzz_endpoints.py::test_fuzz_covered_every_target": ("emulator", "e2e"),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tiers: a test that uses the emulator stack is ``emulator`` (and ``e2e`` when
    it drives the whole wiring); the pure tier (``make test-fast``) is everything else that
    starts no process."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.emulator)
            if Path(str(item.path)).parent.name in _END_TO_END:
                item.add_marker(pytest.mark.e2e)
        for prefix, marks in _BY_NODE.items():
            if item.nodeid.startswith(prefix):
                for mark in marks:
                    item.add_marker(getattr(pytest.mark, mark))


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
    # A kill (SIGTERM: a CI timeout, a closed terminal) unwinds like Ctrl-C, so the
    # emulators, which run in their own sessions, are stopped too.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    # However the session ends (even by a second Ctrl-C while pytest reports the first),
    # the stack is stopped before the interpreter exits.
    atexit.register(running.stop)
    _RUNNING.append(running)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        _RUNNING.remove(running)
        signal.signal(signal.SIGTERM, previous)


#: The session's stack while it runs (``pytest_keyboard_interrupt``).
_RUNNING: list[Stack] = []


@pytest.hookimpl(tryfirst=True)
def pytest_keyboard_interrupt() -> None:
    """Ctrl-C: stop the stack at once, before pytest reports the interrupt and closes its
    output capture, so no request still being handled logs into a closed stream."""
    for running in list(_RUNNING):
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: already stopping
            running.stop()
    # Nothing is left to clean up: another Ctrl-C ends the session at once, quietly,
    # instead of breaking pytest's report of the first one with a traceback of its own.
    signal.signal(signal.SIGINT, _exit_now)


def _exit_now(signum: int, frame: FrameType | None) -> None:
    os._exit(128 + signum)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


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
