"""Small helpers shared by the emulator and end-to-end tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.cloud.firestore_v1.batch import WriteBatch
from google.cloud.firestore_v1.query import Query

from shared.registry import Document

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None], *, timeout_s: float = 15.0, interval_s: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout_s``.

    For waiting until something happens; never as proof that something does not (use
    ``Stack.wait_settled`` / ``wait_handled`` / ``triggers_settled``, then assert)."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s (last: {last!r})")


def all_documents(db: Any) -> dict[str, dict[str, Any]]:
    """Every document of every top-level collection (and their subcollections), by path."""
    found: dict[str, dict[str, Any]] = {}

    def walk(collections: Any) -> None:
        for coll in collections:
            for snap in coll.stream():
                found[snap.reference.path] = snap.to_dict() or {}
                walk(snap.reference.collections())

    walk(db.collections())
    return found


@contextlib.contextmanager
def triggers_settled(stack: Any, timeout_s: float = 60.0) -> Iterator[None]:
    """Run the block, then wait until every Firestore trigger event its writes owe has
    been handled (``Stack.wait_settled``): a barrier on counted events, not a quiet period.

    The writes are the batches this process commits in the block (the functions run
    in-process, so their writes count too). A ``written`` trigger owes one event per write
    to a matching document, a ``created`` trigger one per document the block created (its
    Firestore ``create_time`` falls in the block). Writes the triggers themselves make while
    they are waited for are counted as well.
    """
    from shared.clients import firestore_client

    started = datetime.now(UTC)
    created: dict[str, bool] = {}  # document path -> created in the block
    specs = [s for s in stack.config.specs if isinstance(s.trigger, Document)]
    baseline = {s.name: stack.handled(s.name) for s in specs}
    writes: list[tuple[str, str]] = []  # (document path, "update" or "delete"), in order
    #: Paths every write of the block made to a document that existed then (an update under
    #: an ``exists``/``update_time`` precondition): never created in the block, not read.
    existed: dict[str, bool] = {}
    lock = threading.Lock()
    original = WriteBatch.commit

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        pbs = list(self._write_pbs)
        result = original(self, *args, **kwargs)
        with lock:
            for pb in pbs:
                operation = pb._pb.WhichOneof("operation")
                name = pb.update.name if operation == "update" else pb.delete
                path = name.split("/documents/", 1)[-1]
                writes.append((path, operation))
                condition = pb._pb.current_document.WhichOneof("condition_type")
                was_there = operation == "update" and (
                    condition == "update_time"
                    or (condition == "exists" and pb._pb.current_document.exists)
                )
                existed[path] = existed.get(path, True) and was_there
        return result

    def owed() -> dict[str, int]:
        with lock:
            done, known = list(writes), dict(existed)
        counts = {}
        for spec in specs:
            trigger = spec.trigger
            assert isinstance(trigger, Document)
            matching = [(p, op) for p, op in done if _matches(trigger.pattern, p)]
            if trigger.event == "created":
                paths = sorted({p for p, op in matching if op == "update"})
                for p in paths:
                    if known.get(p) and p not in created:
                        created[p] = False
                unknown = [p for p in paths if p not in created]
                if unknown:
                    db = firestore_client()
                    refs = [db.document(p) for p in unknown]
                    for snap in db.get_all(refs):
                        made = snap.create_time
                        created[snap.reference.path] = bool(snap.exists and made >= started)
                counts[spec.name] = sum(1 for p in paths if created.get(p))
            else:
                counts[spec.name] = len(matching)
        return counts

    WriteBatch.commit = spy  # type: ignore[method-assign]
    try:
        yield
        while True:
            expected = owed()
            stack.wait_settled(
                timeout_s, handled={name: baseline[name] + n for name, n in expected.items()}
            )
            if owed() == expected:  # the handlers wrote nothing that owes more
                return
    finally:
        WriteBatch.commit = original  # type: ignore[method-assign]


def _matches(pattern: str, path: str) -> bool:
    """Whether a document path matches a trigger pattern such as ``users/{user_id}``."""
    want, got = pattern.split("/"), path.split("/")
    return len(want) == len(got) and all(
        w.startswith("{") or w == g for w, g in zip(want, got, strict=True)
    )


def race_after_query(
    monkeypatch: Any, collection: str, race: Callable[[], None], *, nth: int = 1
) -> dict[str, int]:
    """Run ``race`` once, right after the ``nth`` query on ``collection`` returned."""
    original = Query.stream
    seen = {"queries": 0, "raced": 0}

    def stream(self: Query, *args: Any, **kwargs: Any) -> Iterator[Any]:
        snaps = list(original(self, *args, **kwargs))
        if self._parent.id == collection:
            seen["queries"] += 1
            if seen["queries"] == nth and not seen["raced"]:
                seen["raced"] += 1
                race()
        return iter(snaps)

    monkeypatch.setattr(Query, "stream", stream)
    return seen
