"""The local stack: emulators, every function over HTTP, every trigger wired, demo data.

``make run`` and the end-to-end tests use this same class, so the tests exercise the
wiring users run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from devstack.emulators import (
    Emulator,
    StackError,
    check_tools,
    export_firestore,
    find_export,
    firestore_emulator,
    pubsub_emulator,
    require_free,
    storage_emulator,
)
from shared.registry import REGISTRY, FunctionSpec

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class StackConfig:
    """Where the stack listens and what it starts."""

    project: str = "demo-credits"
    host: str = "127.0.0.1"
    firestore_port: int = 8080
    pubsub_port: int = 8085
    storage_port: int = 9199
    functions_port: int = 8000
    rules: Path | None = ROOT / "firestore.rules"
    log_dir: Path = ROOT / ".stack"
    specs: tuple[FunctionSpec, ...] = REGISTRY
    seed_demo: bool = True
    scheduler: bool = True
    #: JVM heap of the Firestore emulator (it keeps deleted data's history in memory).
    firestore_heap: str = "1g"
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Start Firestore with the export in this directory (``run --import``); the demo data
    #: is then not rewritten, so the imported state is exactly what was exported.
    import_dir: Path | None = None
    #: Export Firestore into this directory when the stack stops (``run --export-on-exit``).
    export_dir: Path | None = None

    @classmethod
    def from_env(cls) -> StackConfig:
        """Ports and project from the environment (docs/contract.md section 1 defaults)."""

        def port(variable: str, default: int) -> int:
            value = os.environ.get(variable, "")
            if ":" in value:
                value = value.rsplit(":", 1)[1]
            try:
                return int(value) if value else default
            except ValueError:
                raise StackError(f"{variable}={value!r} is not a port") from None

        return cls(
            project=os.environ.get("GOOGLE_CLOUD_PROJECT", "demo-credits"),
            firestore_port=port("FIRESTORE_EMULATOR_HOST", 8080),
            pubsub_port=port("PUBSUB_EMULATOR_HOST", 8085),
            storage_port=port("STORAGE_EMULATOR_HOST", 9199),
            functions_port=port("FUNCTIONS_PORT", 8000),
        )


class Stack:
    """A running local stack (start with ``start()``, always ``stop()``)."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.firestore: Emulator | None = None
        self.pubsub: Emulator | None = None
        self.storage: Emulator | None = None
        self.server: Any = None
        self.scheduler: Any = None
        self.services: list[Any] = []
        self._stopped = threading.Event()
        #: The export the Firestore emulator started from (``config.import_dir``), if any.
        self.imported: Path | None = None
        #: Where the data went at stop (``config.export_dir``), once exported.
        self.exported: Path | None = None
        #: Messages published through ``publish`` not yet acknowledged by every function
        #: subscribed to their topic: message id -> those functions (``wait_settled``).
        self._unacked: dict[str, set[str]] = {}
        self._published_lock = threading.Lock()

    # -- addresses -----------------------------------------------------------------------
    @property
    def firestore_host(self) -> str:
        return f"{self.config.host}:{self.config.firestore_port}"

    @property
    def pubsub_host(self) -> str:
        return f"{self.config.host}:{self.config.pubsub_port}"

    @property
    def storage_host(self) -> str:
        return f"http://{self.config.host}:{self.config.storage_port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.config.functions_port}"

    def env(self) -> dict[str, str]:
        """The environment variables that point clients at this stack."""
        return {
            "FIRESTORE_EMULATOR_HOST": self.firestore_host,
            "PUBSUB_EMULATOR_HOST": self.pubsub_host,
            "STORAGE_EMULATOR_HOST": self.storage_host,
            "GOOGLE_CLOUD_PROJECT": self.config.project,
            "FUNCTIONS_PORT": str(self.config.functions_port),
            # One local process serves every app (docs/local-stack.md).
            "SERVE_ALL_PROFILES": "1",
            **self.config.extra_env,
        }

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> Stack:
        c = self.config
        check_tools()
        require_free(
            c.host,
            {
                "FIRESTORE_EMULATOR_HOST": c.firestore_port,
                "PUBSUB_EMULATOR_HOST": c.pubsub_port,
                "STORAGE_EMULATOR_HOST": c.storage_port,
                "FUNCTIONS_PORT": c.functions_port,
            },
        )
        os.environ.update(self.env())
        from shared.clients import reset_clients
        from shared.settings import reset_settings

        reset_settings()
        reset_clients()
        try:
            self._start_emulators()
            self._start_services()
            self._start_functions()
            self._wire()
            if c.seed_demo and self.imported is None:
                self.seed()
            if c.scheduler:
                self._start_scheduler()
            self.server.dispatcher.ready.set()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_emulators(self) -> None:
        c = self.config
        if c.import_dir is not None:
            self.imported = find_export(c.import_dir)
            if self.imported is None:
                raise StackError(
                    f"no Firestore export in {c.import_dir} (made by `make run` with "
                    "--export-on-exit, or by the emulator's export)"
                )
        self.firestore = firestore_emulator(
            c.host,
            c.firestore_port,
            c.project,
            c.log_dir / "firestore.log",
            rules=c.rules if c.rules and c.rules.exists() else None,
            functions_emulator=f"{c.host}:{c.functions_port}",
            heap=c.firestore_heap,
            seed_from=self.imported,
        )
        self.pubsub = pubsub_emulator(c.host, c.pubsub_port, c.project, c.log_dir / "pubsub.log")
        from shared.settings import get_settings

        self.storage = storage_emulator(
            c.host, c.storage_port, get_settings().slip_bucket_name(), c.log_dir / "storage.log"
        )
        emulators = [self.firestore, self.pubsub, self.storage]
        for emulator in emulators:
            emulator.start()
        with ThreadPoolExecutor(len(emulators)) as pool:
            list(pool.map(lambda e: e.wait_ready(), emulators))

    def _start_services(self) -> None:
        """Local stand-ins for external services (see ``devstack.services``)."""
        from devstack import services

        self.services = services.start_all(self)

    def _start_functions(self) -> None:
        from devstack.server import Dispatcher, FunctionsServer

        dispatcher = Dispatcher(self.config.specs)
        self.server = FunctionsServer(dispatcher, self.config.host, self.config.functions_port)
        self.server.start()

    def _wire(self) -> None:
        from devstack.wiring import wire_firestore, wire_pubsub

        wire_pubsub(self.config.specs, self.config.project, self.base_url)
        wire_firestore(self.config.specs, self.config.project, self.firestore_host)

    def _start_scheduler(self) -> None:
        from devstack.scheduler import LocalScheduler

        self.scheduler = LocalScheduler(self.config.specs, self.publish)
        self.scheduler.start()

    def seed(self) -> None:
        """Write the demo configuration (docs/contract.md section 8)."""
        from devstack.demo import seed_all
        from shared.clients import firestore_client
        from shared.clock import get_clock

        seed_all(firestore_client(), get_clock().now())

    def stop(self) -> None:
        """Stop every part and free every port, once, whatever interrupts it.

        Ctrl-C (and a second, impatient one) during the stop is held until every part is
        down, then raised: an interrupted stop would leave emulators running on their ports
        (they run in their own sessions, so the terminal's Ctrl-C never reaches them).
        """
        if self._stopped.is_set():
            return
        self._stopped.set()
        with _signals_held():
            self._stop_parts()

    def _stop_parts(self) -> None:
        if self.scheduler is not None:
            with contextlib.suppress(Exception):
                self.scheduler.stop()
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.stop()
        for service in reversed(self.services):
            with contextlib.suppress(Exception):
                service.stop()
        self._export()
        emulators = [e for e in (self.firestore, self.pubsub, self.storage) if e is not None]
        if emulators:
            # In parallel: each one may take seconds to exit on a busy machine.
            with ThreadPoolExecutor(len(emulators)) as pool:
                list(pool.map(_stop_quietly, emulators))

    def _export(self) -> None:
        """With ``export_dir``, keep the data for the next start (after the functions stop,
        so no write is in flight)."""
        c = self.config
        if c.export_dir is None or self.firestore is None or self.firestore.process is None:
            return
        try:
            self.exported = export_firestore(self.firestore_host, c.project, c.export_dir)
        except (StackError, httpx.HTTPError, OSError) as exc:
            self.export_error = str(exc)

    export_error: str | None = None

    # -- helpers for tests and the CLI ---------------------------------------------------
    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        """Publish one message to a topic of this stack; returns the message id."""
        from shared.clients import publisher_client

        publisher = publisher_client()
        path = publisher.topic_path(self.config.project, topic)
        message_id = str(publisher.publish(path, data, **attributes).result(timeout=30))
        subscribers = {spec.name for spec in self.config.specs if spec.topic == topic}
        if subscribers:
            with self._published_lock:
                self._unacked[message_id] = subscribers
        return message_id

    def unacked(self) -> dict[str, set[str]]:
        """The messages published through ``publish`` that some subscribed function has not
        acknowledged yet: message id -> those functions."""
        dispatcher = self.server.dispatcher if self.server is not None else None
        with self._published_lock:
            if dispatcher is not None:
                waiting: dict[str, list[str]] = {}
                for message_id, functions in self._unacked.items():
                    for function in functions:
                        waiting.setdefault(function, []).append(message_id)
                for function, message_ids in waiting.items():
                    for message_id in dispatcher.acked(function, message_ids):
                        self._unacked[message_id].discard(function)
                for message_id in [m for m, fs in self._unacked.items() if not fs]:
                    del self._unacked[message_id]
            return {m: set(fs) for m, fs in self._unacked.items()}

    def wait_settled(self, timeout_s: float = 60.0, handled: dict[str, int] | None = None) -> None:
        """A barrier: every message published through ``publish`` has been acknowledged by
        each function subscribed to its topic (after its retries: a 5xx is not an ack),
        each function in ``handled`` has finished at least that many requests or events
        in all (trigger deliveries, see ``wait_handled``), and no request is in flight.

        It waits for counts the caller knows are owed, never for a quiet period, so what
        a test asserts after it cannot still be on its way."""
        deadline = time.monotonic() + timeout_s
        wanted = handled or {}
        while True:
            pending = self.unacked()
            short = {f: n for f, n in wanted.items() if self.handled(f) < n}
            inflight = self.server.dispatcher.inflight if self.server is not None else 0
            if not pending and not short and inflight == 0:
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"not settled after {timeout_s:.0f} s: {len(pending)} published messages "
                    f"not acknowledged (e.g. {sorted(pending.items())[:3]}), handled short of "
                    f"the expected counts: {short}, {inflight} requests in flight"
                )
            time.sleep(0.01)

    def wipe(self) -> None:
        """Delete every Firestore document (rules and triggers survive)."""
        url = (
            f"http://{self.firestore_host}/emulator/v1/projects/{self.config.project}"
            "/databases/(default)/documents"
        )
        httpx.delete(url, timeout=30).raise_for_status()

    def quiesce(self, timeout_s: float = 10.0, settle_s: float = 0.03) -> None:
        """Wait until no function is handling a request (triggers fire ~5 ms after writes)."""
        deadline = time.monotonic() + timeout_s
        dispatcher = self.server.dispatcher if self.server is not None else None
        if dispatcher is None:
            return
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            if dispatcher.inflight == 0:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle_s:
                    return
            else:
                quiet_since = None
            time.sleep(0.005)

    def handled(self, function: str) -> int:
        """How many requests or events ``function`` has finished handling."""
        return self.server.dispatcher.handled(function) if self.server is not None else 0

    def wait_handled(self, function: str, count: int, timeout_s: float = 30.0) -> None:
        """Wait until ``function`` has finished handling ``count`` requests or events in all
        (a barrier: the events of writes made before it have been handled, not skipped)."""
        deadline = time.monotonic() + timeout_s
        while self.handled(function) < count:
            if time.monotonic() > deadline:
                raise StackError(
                    f"{function} handled {self.handled(function)} events, expected {count}"
                )
            time.sleep(0.005)

    def wipe_quiet(self) -> None:
        """Wipe Firestore and absorb the writes that in-flight triggers make afterwards.

        It starts a new test: messages published before it no longer hold up
        ``wait_settled`` (a test that leaves one being retried does not stall the next)."""
        from shared.clients import firestore_client

        with self._published_lock:
            self._unacked.clear()
        self.quiesce()
        for _ in range(5):
            self.wipe()
            self.quiesce()
            if not list(firestore_client().collections()):
                return


def _stop_quietly(emulator: Emulator) -> None:
    with contextlib.suppress(Exception):
        emulator.stop()


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM in the block (main thread only; elsewhere a no-op), then
    raise KeyboardInterrupt if one came, or SystemExit for SIGTERM."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
    if signal.SIGTERM in held:
        raise SystemExit(128 + signal.SIGTERM)
    if held:
        raise KeyboardInterrupt
