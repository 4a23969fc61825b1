"""Optimistic atomic units of work on Firestore.

Read-write transactions on one hot document livelock on the emulator and are limited to
about one sustained write per second per document in production. A unit of work here
reads documents (remembering each one's ``update_time``), buffers writes, and commits them
as ONE atomic batch in which every write to a document that was read carries the
precondition "unchanged since I read it" (``last_update_time``, or "does not exist" via
``create``). If anything moved underneath, the batch fails as a whole, nothing is written,
and the unit is run again from its reads, with jittered exponential backoff.

A ``create`` that fails because the document exists is contention only when this unit read
that document as missing (someone else created it since: the re-run sees it). A document
the unit created without reading it as missing will exist on every re-run, so that is a
``Conflict`` naming the document, raised at once instead of retried.

This gives serialisable read-modify-write on the documents a unit writes, with no lock
waits. Documents that are only read are not protected, unless the unit ``verify``s them:
a write that changes nothing (an empty field mask; for a document read as missing, a
delete of nothing) carrying the same precondition, so the commit fails if the document
moved, without changing it (its ``update_time`` stays: other readers are not disturbed).

Staleness: a unit's reads are made one round trip after another, so they are not one
snapshot (a job read just before a racing close commits, its hold just after). A commit
catches that for documents the unit writes; an error raised by ``work`` (a refusal such
as ``InsufficientCredits`` or ``Conflict``, a "park this event"; anything but a transient
fault) writes nothing, so ``run_atomically`` checks it instead: before surfacing the
error it reads again, in one round trip, every document the attempt read, and when any of
them changed, appeared or vanished since, the error was computed from a stale view and
``work`` runs again from fresh reads. An error is therefore surfaced only when everything
it was computed from was current at one moment. Services need no "maybe stale" wrappers.

Queries count as reads too. A query inside a unit runs through ``Unit.query``, which
records it with its answer (each returned document's path and ``update_time``); the
staleness check re-runs every recorded query, in parallel with the documents' re-read
(one round trip of latency), and a query whose answer gained or lost a document, or
returned one that changed since, makes ``work`` run again as a changed document does. A
raw query (``.stream()``, ``.get()``) inside ``work`` is refused: while ``work`` runs,
``Query.stream`` and ``Query.get`` of the Firestore client raise ``RawQueryInUnit``
unless called by ``Unit.query`` (installed once, when this module is imported; outside
a unit nothing changes). At commit, a query's answer is not protected by itself: what
protects each site's decision (the documents it returned, and documents inserted later,
the phantoms) is decided per site (docs/ledger.md, "Queries in a unit").
"""

from __future__ import annotations

import contextvars
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.base_document import DocumentSnapshot
from google.cloud.firestore_v1.query import Query

from shared.errors import Conflict, Transient, is_transient

T = TypeVar("T")

_RETRYABLE = (gexc.FailedPrecondition, gexc.Aborted, gexc.Conflict)


class RawQueryInUnit(RuntimeError):
    """A query run inside a unit's ``work`` without ``Unit.query`` (a programming error)."""


#: Whether the current thread runs a unit's ``work`` (and is not inside ``Unit.query``).
_IN_WORK: contextvars.ContextVar[bool] = contextvars.ContextVar("in_unit_work", default=False)


@contextmanager
def in_work(flag: bool = True) -> Iterator[None]:
    """Mark the current thread as running a unit's ``work`` (``flag``), or not."""
    token = _IN_WORK.set(flag)
    try:
        yield
    finally:
        _IN_WORK.reset(token)


def _refusing(original: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _IN_WORK.get():
            raise RawQueryInUnit("a query inside a unit of work must run through Unit.query")
        return original(self, *args, **kwargs)

    guarded._unit_guarded = True  # type: ignore[attr-defined]
    guarded.__doc__ = original.__doc__
    return guarded


def _guard_raw_queries() -> None:
    """Make ``Query.stream``/``Query.get`` refuse to run inside ``work`` (see above)."""
    for name in ("stream", "get"):
        original = getattr(Query, name)
        if not getattr(original, "_unit_guarded", False):
            setattr(Query, name, _refusing(original))


_guard_raw_queries()


@dataclass(frozen=True)
class RecordedQuery:
    """A query a unit ran, with its answer: each returned document's path and version."""

    query: Query
    answer: tuple[tuple[str, Any], ...]

    def label(self) -> str:
        return f"query on {self.query._parent.id}"


def _answer(snaps: Iterable[DocumentSnapshot]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((s.reference.path, s.update_time) for s in snaps))


def _run_query(query: Query) -> list[DocumentSnapshot]:
    with in_work(False):
        return list(query.stream())


@dataclass
class _Write:
    op: str  # "create" | "update" | "set" | "merge" | "verify"
    ref: firestore.DocumentReference
    data: dict[str, Any] = field(default_factory=dict)


class Unit:
    """One attempt of an atomic unit of work: tracked reads, buffered writes."""

    def __init__(self, db: firestore.Client, now: datetime | None = None) -> None:
        self.db = db
        #: The unit's one instant: every timestamp its writes carry (the service's own
        #: ``now`` when it gives one, else read once from the ledger's clock: ``Ledger.now``).
        self.now = now
        self._seen: dict[str, DocumentSnapshot] = {}
        #: The queries this attempt ran, with their answers (for the staleness check).
        self._queries: list[RecordedQuery] = []
        self._writes: dict[str, _Write] = {}
        #: State that services keep for the rest of this attempt (e.g. pending balances).
        self.scratch: dict[str, Any] = {}

    # -- reads ---------------------------------------------------------------------------
    def get(self, ref: firestore.DocumentReference) -> DocumentSnapshot:
        """Read one document (cached for the rest of this attempt)."""
        return self.get_all([ref])[0]

    def get_all(self, refs: Sequence[firestore.DocumentReference]) -> list[DocumentSnapshot]:
        """Read several documents in one round trip, in the order given."""
        missing = [r for r in refs if r.path not in self._seen]
        if missing:
            unique = list({r.path: r for r in missing}.values())
            for snap in self.db.get_all(unique):
                self._seen[snap.reference.path] = snap
        return [self._seen[r.path] for r in refs]

    def query(self, query: Query) -> list[DocumentSnapshot]:
        """Run a query through the unit: its answer is recorded for the staleness check.

        The one way to query inside ``work`` (a raw ``stream``/``get`` raises
        ``RawQueryInUnit``). The returned documents are not cached as the unit's reads: a
        document the unit means to write or ``verify`` it reads with ``get``.
        """
        snaps = _run_query(query)
        self._queries.append(RecordedQuery(query, _answer(snaps)))
        return snaps

    # -- writes --------------------------------------------------------------------------
    def create(self, ref: firestore.DocumentReference, data: dict[str, Any]) -> None:
        """Create a document; the whole unit fails (and retries) if it already exists."""
        self._add(_Write("create", ref, dict(data)))

    def update(self, ref: firestore.DocumentReference, fields: dict[str, Any]) -> None:
        """Update field paths of a document that must exist (and be unchanged if read)."""
        snap = self._seen.get(ref.path)
        if snap is not None and not snap.exists:
            raise ValueError(f"update of {ref.path}, which this unit read as missing")
        existing = self._writes.get(ref.path)
        if existing is not None and existing.op == "update":
            existing.data.update(fields)
            return
        self._add(_Write("update", ref, dict(fields)))

    def set(self, ref: firestore.DocumentReference, data: dict[str, Any]) -> None:
        """Write a whole document: create if read as missing, replace if read as present."""
        snap = self._seen.get(ref.path)
        op = "create" if snap is not None and not snap.exists else "set"
        self._add(_Write(op, ref, dict(data)))

    def merge(self, ref: firestore.DocumentReference, data: dict[str, Any]) -> None:
        """Blind ``set(..., merge=True)`` with no precondition: for commutative counters.

        Use it with ``firestore.Increment`` values (and nested maps of them) for aggregates
        that many units bump at once; it never conflicts, and since the whole batch is
        atomic, a unit that is retried still counts once.
        """
        existing = self._writes.get(ref.path)
        if existing is not None and existing.op == "merge":
            _deep_merge(existing.data, data)
            return
        self._add(_Write("merge", ref, dict(data)))

    def verify(self, ref: firestore.DocumentReference) -> None:
        """Commit only if ``ref`` (read by this unit, not written) is unchanged since read.

        For a decision that depends on a document the unit does not write (the user
        document whose balance a hold closed with nothing returned reports): a change
        committed before this unit's commit fails the commit, and the unit re-runs and sees
        it. Nothing is written to the document.
        """
        if ref.path not in self._seen:
            raise ValueError(f"verify of {ref.path}, which this unit did not read")
        existing = self._writes.get(ref.path)
        if existing is not None and existing.op != "merge":
            return  # that write carries the precondition already
        if existing is not None:
            raise ValueError(f"verify of {ref.path}, which this unit merges into blindly")
        self._add(_Write("verify", ref))

    @property
    def has_writes(self) -> bool:
        return bool(self._writes)

    def taken_by_others(self) -> tuple[list[str], list[str]]:
        """After a failed commit: the created documents that exist now.

        Returns (paths this unit read as missing, paths it never read as missing).
        """
        creates = [w.ref for w in self._writes.values() if w.op == "create"]
        raced: list[str] = []
        blind: list[str] = []
        if not creates:
            return raced, blind
        for snap in self.db.get_all(creates):
            if not snap.exists:
                continue
            path = snap.reference.path
            seen = self._seen.get(path)
            (raced if seen is not None and not seen.exists else blind).append(path)
        return sorted(raced), sorted(blind)

    def stale(self, paths: Iterable[str] | None = None) -> list[str]:
        """What this attempt read that changed since: documents (their paths) and queries
        (a label each), re-read in parallel (one round trip of latency).

        ``paths``: only these of the documents read (default: all of them, and every query).
        """
        wanted = list(self._seen) if paths is None else [p for p in paths if p in self._seen]
        snaps = [self._seen[p] for p in dict.fromkeys(wanted)]
        queries = self._queries if paths is None else []
        docs, moved = changed_reads(snaps, queries, self.db)
        return docs + [q.label() for q in moved]

    def footprint(self) -> tuple[list[str], list[tuple[str, str]]]:
        """(paths read, [(op, path) written]) of this attempt, for ``commit_hook``."""
        return list(self._seen), [(w.op, path) for path, w in self._writes.items()]

    def _add(self, write: _Write) -> None:
        existing = self._writes.get(write.ref.path)
        if existing is not None and existing.op == "verify" and write.op != "merge":
            del self._writes[write.ref.path]  # the write carries the same precondition
        if write.ref.path in self._writes:
            raise ValueError(f"{write.ref.path} is written twice in one unit")
        self._writes[write.ref.path] = write

    # -- commit --------------------------------------------------------------------------
    def commit(self) -> list[Any]:
        """Commit every buffered write as one atomic batch with its preconditions.

        Returns the batch's write results (each with the document's new ``update_time``),
        in the order of the writes.
        """
        batch = self.db.batch()
        for write in self._writes.values():
            snap = self._seen.get(write.ref.path)
            guard = (
                self.db.write_option(last_update_time=snap.update_time)
                if snap is not None and snap.exists
                else None
            )
            if write.op == "verify":
                batch._add_write_pbs([_verify_pb(write.ref, snap)])
            elif write.op == "create":
                batch.create(write.ref, write.data)
            elif write.op == "update":
                batch.update(write.ref, write.data, option=guard)
            elif write.op == "merge":
                batch.set(write.ref, write.data, merge=True)
            elif guard is None:
                batch.set(write.ref, write.data)
            else:
                # A full replacement that only applies if the document is unchanged.
                pbs = _helpers.pbs_for_set_no_merge(write.ref._document_path, write.data)
                guard.modify_write(pbs[0])
                batch._add_write_pbs(pbs)
        return batch.commit()


def _verify_pb(ref: firestore.DocumentReference, snap: DocumentSnapshot | None) -> Any:
    """A write that changes nothing and fails unless ``ref`` is as ``snap`` found it."""
    from google.cloud.firestore_v1.types import common, write

    if snap is None:
        raise ValueError(f"verify of {ref.path}, which this unit did not read")
    if snap.exists:
        return write.Write(
            update={"name": ref._document_path},
            update_mask=common.DocumentMask(field_paths=[]),
            current_document=common.Precondition(update_time=snap.update_time),
        )
    return write.Write(
        delete=ref._document_path, current_document=common.Precondition(exists=False)
    )


def _deep_merge(into: dict[str, Any], data: dict[str, Any]) -> None:
    from google.cloud.firestore_v1.transforms import Increment

    for key, value in data.items():
        current = into.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            _deep_merge(current, value)
        elif isinstance(value, Increment) and isinstance(current, Increment):
            into[key] = Increment(current.value + value.value)
        else:
            into[key] = value


def changed_since(snaps: Sequence[DocumentSnapshot], db: firestore.Client) -> list[str]:
    """Paths of ``snaps`` whose document changed, appeared or vanished since it was read."""
    if not snaps:
        return []
    before = {snap.reference.path: snap for snap in snaps}
    changed = []
    for now in db.get_all([snap.reference for snap in before.values()]):
        old = before[now.reference.path]
        if now.exists != old.exists or (now.exists and now.update_time != old.update_time):
            changed.append(now.reference.path)
    return sorted(changed)


def changed_queries(queries: Sequence[RecordedQuery]) -> list[RecordedQuery]:
    """The recorded queries whose answer differs when run again now."""
    return [q for q in queries if _answer(_run_query(q.query)) != q.answer]


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="stale-check")
        return _pool


def changed_reads(
    snaps: Sequence[DocumentSnapshot], queries: Sequence[RecordedQuery], db: firestore.Client
) -> tuple[list[str], list[RecordedQuery]]:
    """(paths of ``snaps`` that changed, ``queries`` whose answer changed) since read.

    The documents in one batched read and each query in its own call, all at once: the
    check costs one round trip of latency however many queries the attempt ran.
    """
    if not queries:
        return changed_since(snaps, db), []
    pool = _executor()
    docs = pool.submit(changed_since, snaps, db)
    runs = [pool.submit(changed_queries, [q]) for q in queries]
    moved = [q for run in runs for q in run.result()]
    return docs.result(), moved


def surfaces(error: BaseException) -> bool:
    """Whether ``error`` is a decision to re-check for staleness before surfacing it.

    Every error ``work`` raises on purpose or by surprise (a refusal, "park this event", a
    ``KeyError`` from documents that disagree), except transient faults (contention, a
    read that failed), which are not decisions about what was read.
    """
    return isinstance(error, Exception) and not is_transient(error)


def run_atomically(
    db: firestore.Client,
    work: Callable[[Unit], T],
    *,
    max_attempts: int = 60,
    base_delay_s: float = 0.004,
    max_delay_s: float = 0.25,
    now: datetime | None = None,
) -> T:
    """Run ``work`` in a fresh ``Unit`` until its batch commits; returns its result.

    ``now``: the unit's one instant (``Unit.now``), the same on every attempt.

    ``work`` must be free of side effects other than the unit's reads and writes: it is
    re-run from scratch after every conflict. A unit with no writes returns at once. A
    domain error ``work`` raises is surfaced only if nothing the attempt read (documents,
    and the answers of its queries) has changed since; otherwise ``work`` runs again from
    fresh reads.
    """
    for attempt in range(max_attempts):
        unit = Unit(db, now)
        try:
            with in_work():
                result = work(unit)
        except Exception as exc:
            if not surfaces(exc) or not unit.stale():
                raise
            continue  # decided on a view that has moved on: decide again
        if not unit.has_writes:
            if commit_hook is not None:
                commit_hook(unit)
            return result
        try:
            if fault_hook is not None:
                fault_hook("before_commit")
            unit.commit()
        except gexc.AlreadyExists:
            raced, blind = unit.taken_by_others()
            if blind and not raced:
                raise Conflict(f"{blind[0]} already exists", path=blind[0]) from None
            _backoff(attempt, base_delay_s, max_delay_s)
            continue
        except _RETRYABLE:
            _backoff(attempt, base_delay_s, max_delay_s)
            continue
        if commit_hook is not None:
            commit_hook(unit)
        if fault_hook is not None:
            fault_hook("after_commit")
        return result
    raise Transient("too much contention on the same documents; retry later")


def _backoff(attempt: int, base_delay_s: float, max_delay_s: float) -> None:
    ceiling = min(max_delay_s, base_delay_s * (2 ** min(attempt, 10)))
    time.sleep(random.uniform(0, ceiling))


# Fault injection for the randomized fault run (tests/chaos); always None in production.
# Called with "before_commit" / "after_commit" around each commit; raising simulates a
# crash before the write, or a lost acknowledgement after it.
fault_hook: Callable[[str], None] | None = None

# Write profiles (bench/sizing.py, tests); always None in production, where it costs one
# ``is None`` test. Called with each unit that committed (or that found nothing to write).
commit_hook: Callable[[Unit], None] | None = None


def chunked(items: Iterable[T], size: int) -> Iterable[list[T]]:
    """Split ``items`` into lists of at most ``size`` (Firestore: 500 writes per batch)."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
