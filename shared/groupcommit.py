"""Group commit: concurrent units of work on one hot document, committed together.

Every posting of an account rewrites the account's user document, so with one commit per
posting an account tops out at one commit per optimistic read-commit cycle (and, in
production, near Firestore's sustained write rate on one document). Here concurrent units
of the same *group* (an account's user document) within one process queue up; one of their
callers, the leader, runs a batch of them in arrival order against one shared view and
commits all their writes as ONE atomic batch:

- each member's ``work`` runs unchanged, on a ``Unit`` that layers over the batch: it sees
  the documents earlier members updated (the balance, through the ledger's carried
  account), so each member's ``balance_after`` follows the previous one exactly;
- a member that raises (``InsufficientCredits``, ``Conflict``...) is left out of the batch
  with nothing written, and its caller gets the exception; the others go on. As in
  ``run_atomically``, a domain error is surfaced only if every document the member read is
  still current (one round trip for all such members before the commit); otherwise the
  member goes again in the next batch, from fresh reads;
- a member that would read or write a document an earlier member of the same batch
  created, replaced or deleted (the same idempotency key twice, a hold and its close...)
  closes the batch and goes first into the next one, where it sees that member's commit
  (a replayed key returns the first result);
- the batch commits with the same "unchanged since read" preconditions as a single unit;
  if it fails, it is re-run from fresh reads, and after ``SPLIT_AFTER`` failures it is
  split in halves, so that a member that can never commit fails alone (``Transient``).

Each member's own domain writes (a usage log, a job document, an audit entry...) are part
of the batch, so each member still commits atomically with them: either the whole batch
commits or none of it does. Counters written with ``merge`` + ``Increment`` add up.

Reads: each caller first runs its ``work`` once on its own (a *probe*, writes discarded)
to learn which documents it reads; the leader then reads the union of all members'
documents in one round trip per attempt, so a batch of N members costs about one read,
N runs of Python and one commit.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_document import DocumentSnapshot
from google.cloud.firestore_v1.transforms import Sentinel, _NumericValue, _ValueList

from shared import atomic
from shared.atomic import _RETRYABLE, Unit, _deep_merge, _Write
from shared.errors import Conflict, Transient

T = TypeVar("T")

#: Firestore's limit of writes in one commit.
MAX_WRITES = 500
#: Failed commits of one batch before it is split in halves.
SPLIT_AFTER = 2
_RETRY = object()
_SPLIT = object()

#: Documents remembered as written by recent commits (then the memory starts over).
_WRITTEN_KEPT = 20_000


@dataclass(frozen=True)
class GroupSettings:
    """How long a leader waits for company and how many members one commit may carry."""

    window_s: float = 0.010
    max_batch: int = 100
    max_attempts: int = 60
    base_delay_s: float = 0.004
    max_delay_s: float = 0.25


class _Deferred(BaseException):
    """The member touches what an earlier member of this batch wrote: next batch."""


class _Member(Generic[T]):
    """One caller's unit of work waiting for a batch, and then its outcome."""

    def __init__(self, work: Callable[[Unit], T]) -> None:
        self.work = work
        #: What the probe read, and this committer's commit count when it started.
        self.probed: list[DocumentSnapshot] = []
        self.probe_seq = 0
        self.signal = threading.Event()  # set once: finished, or promoted to leader
        self.done = False
        self.promoted = False
        self.value: Any = None
        self.error: BaseException | None = None
        #: Runs whose domain error came from reads that had changed since.
        self.stale_runs = 0

    def finish(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error
        self.done = True
        self.signal.set()

    def promote(self) -> None:
        self.promoted = True
        self.signal.set()


def _simple(data: dict[str, Any]) -> bool:
    """Top-level field names and plain values only (no transforms, no field paths)."""
    return all("." not in k and not _has_transform(v) for k, v in data.items())


def _has_transform(value: Any) -> bool:
    if isinstance(value, Sentinel | _NumericValue | _ValueList):
        return True
    if isinstance(value, dict):
        return any(_has_transform(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_transform(v) for v in value)
    return False


def _copy_maps(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy_maps(v) if isinstance(v, dict) else v for k, v in data.items()}


def _combine_updates(into: dict[str, Any], later: dict[str, Any]) -> None:
    """Two updates of one document, in order: the later value wins, increments add up."""
    from google.cloud.firestore_v1.transforms import Increment

    for key, value in later.items():
        current = into.get(key)
        if isinstance(value, Increment) and isinstance(current, Increment):
            into[key] = Increment(current.value + value.value)
        else:
            into[key] = value


class _MemberUnit(Unit):
    """A unit for one member: reads through the batch, writes checked against it."""

    def __init__(self, batch: Unit, scratch: dict[str, Any]) -> None:
        super().__init__(batch.db)
        self._batch = batch
        self._seen = batch._seen  # one snapshot per document for the whole batch
        self.scratch = scratch
        self._reads: dict[str, None] = {}  # what this member read, for ``footprint``

    def footprint(self) -> tuple[list[str], list[tuple[str, str]]]:
        """This member's own reads and writes (the batch's view is shared)."""
        return list(self._reads), [(w.op, path) for path, w in self._writes.items()]

    def get_all(self, refs: Sequence[firestore.DocumentReference]) -> list[DocumentSnapshot]:
        self._reads.update(dict.fromkeys(r.path for r in refs))
        out: list[DocumentSnapshot | None] = []
        for ref in refs:
            earlier = self._batch._writes.get(ref.path)
            if earlier is None or earlier.op == "verify":  # verified: unchanged, as read
                out.append(None)
                continue
            base = self._seen.get(ref.path)
            if earlier.op != "update" or base is None or not base.exists:
                raise _Deferred
            if not _simple(earlier.data):
                raise _Deferred
            data = {**(base.to_dict() or {}), **earlier.data}
            out.append(
                DocumentSnapshot(
                    ref, data, True, base.read_time, base.create_time, base.update_time
                )
            )
        plain = [r for r, snap in zip(refs, out, strict=True) if snap is None]
        if plain:
            fetched = iter(super().get_all(plain))
            out = [snap if snap is not None else next(fetched) for snap in out]
        return [snap for snap in out if snap is not None]

    def _add(self, write: _Write) -> None:
        earlier = self._batch._writes.get(write.ref.path)
        if earlier is not None:
            if write.op == "verify" and earlier.op != "merge":
                return  # the batch's write to it carries the same precondition
            combinable = (
                (earlier.op == write.op == "merge")
                or (earlier.op == "verify" and write.op in {"create", "update", "set"})
                or (
                    earlier.op == write.op == "update"
                    and all("." not in k for k in (*earlier.data, *write.data))
                )
            )
            if not combinable:
                raise _Deferred
        super()._add(write)

    def fold_into(self, batch: Unit) -> None:
        """Add this member's writes to the batch (checked by ``_add`` as they were made)."""
        for path, write in self._writes.items():
            earlier = batch._writes.get(path)
            if earlier is None or earlier.op == "verify":  # a write carries the precondition
                batch._writes[path] = _Write(write.op, write.ref, _copy_maps(write.data))
            elif write.op == "merge":
                _deep_merge(earlier.data, _copy_maps(write.data))
            else:
                _combine_updates(earlier.data, write.data)

    def new_paths(self, batch: Unit) -> int:
        return sum(1 for path in self._writes if path not in batch._writes)


def _copy_scratch(scratch: dict[str, Any]) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, dict) else v for k, v in scratch.items()}


@dataclass
class _Group:
    queue: deque[_Member[Any]] = field(default_factory=deque)
    leading: bool = False
    arriving: int = 0  # callers probing, about to join the queue


class GroupCommitter:
    """Per-process group commit of units of work, grouped by a key (an account)."""

    def __init__(self, db: firestore.Client, settings: GroupSettings | None = None) -> None:
        self.db = db
        self.settings = settings or GroupSettings()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._groups: dict[str, _Group] = {}
        #: Committed batches, the members they carried, and failed commit attempts.
        self.commits = 0
        self.committed_members = 0
        self.failed_commits = 0
        # Commit sequence: which documents each commit wrote, so that a probe's snapshot
        # is reused only if no later commit of this process wrote the document.
        self._seq = 0
        self._floor = 0
        self._written: dict[str, int] = {}

    # -- callers -------------------------------------------------------------------------
    def run(self, group: str, work: Callable[[Unit], T]) -> T:
        """Run ``work`` as part of a batch of ``group``; its own result or exception."""
        with self._lock:
            self._group(group).arriving += 1
        member = _Member(work)
        try:
            self._probe(member)
        finally:
            with self._lock:
                g = self._group(group)
                g.arriving -= 1
                g.queue.append(member)
                self._arrived.notify_all()
        return self.wait(group, member)

    def submit(self, group: str, work: Callable[[Unit], T]) -> _Member[T]:
        """Queue ``work`` without waiting; ``wait`` must follow (tests use it for order)."""
        member = _Member(work)
        self._probe(member)
        with self._lock:
            self._group(group).queue.append(member)
            self._arrived.notify_all()
        return member

    def wait(self, group: str, member: _Member[T]) -> T:
        """Wait for ``member``'s outcome, leading batches of ``group`` when it is its turn."""
        with self._lock:
            g = self._group(group)
            if not member.done and not g.leading:
                g.leading = True
                member.promoted = True
        if not member.promoted:
            member.signal.wait()
        if not member.done:
            self._lead(group, member)
        if member.error is not None:
            raise member.error
        return member.value

    # -- internals -----------------------------------------------------------------------
    def _group(self, group: str) -> _Group:
        g = self._groups.get(group)
        if g is None:
            g = self._groups[group] = _Group()
        return g

    def _probe(self, member: _Member[Any]) -> None:
        """Run the work once on its own, writes discarded: what it reads, and when."""
        with self._lock:
            member.probe_seq = self._seq
        unit = Unit(self.db)
        with contextlib.suppress(Exception):  # the real run decides; this learns the reads
            member.work(unit)
        member.probed = list(unit._seen.values())

    def _fresh(self, member: _Member[Any], path: str) -> bool:
        """Whether no commit of this committer wrote ``path`` since ``member``'s probe."""
        if member.probe_seq < self._floor:
            return False
        return self._written.get(path, 0) <= member.probe_seq

    def _note_commit(self, unit: Unit, members: int) -> None:
        with self._lock:
            self._seq += 1
            if len(self._written) > _WRITTEN_KEPT:
                self._written.clear()
                self._floor = self._seq
            for path in unit._writes:
                self._written[path] = self._seq
            self.commits += 1
            self.committed_members += members

    def _lead(self, group: str, own: _Member[Any]) -> None:
        """Commit batches of ``group`` until ``own`` has its outcome, then hand over."""
        s = self.settings
        try:
            while not own.done:
                with self._lock:
                    g = self._group(group)
                    deadline = time.monotonic() + s.window_s
                    # Wait for callers still probing, up to the window or a full batch.
                    while len(g.queue) < s.max_batch and g.arriving > 0:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._arrived.wait(left)
                    batch = [g.queue.popleft() for _ in range(min(s.max_batch, len(g.queue)))]
                try:
                    rest = self._process(batch)
                except Exception as exc:  # a failed read: these callers get the error
                    for member in batch:
                        if not member.done:
                            member.finish(error=exc)
                    rest = []
                if rest:
                    with self._lock:
                        self._group(group).queue.extendleft(reversed(rest))
        finally:
            with self._lock:
                g = self._group(group)
                if g.queue:
                    g.queue[0].promote()
                else:
                    g.leading = False
                    if not g.arriving:
                        del self._groups[group]

    def _process(self, batch: list[_Member[Any]]) -> list[_Member[Any]]:
        """Commit ``batch`` (or its head); returns the members left for a later batch."""
        s = self.settings
        attempts = 0
        while True:
            attempts += 1
            left = self._attempt(batch, attempts)
            if isinstance(left, list):
                return left
            with self._lock:
                self.failed_commits += 1
            if len(batch) > 1 and (left is _SPLIT or attempts >= SPLIT_AFTER):
                # The head on its own first; the tail waits at the front of the queue.
                half = len(batch) // 2
                return self._process(batch[:half]) + batch[half:]
            if attempts >= s.max_attempts:
                batch[0].finish(
                    error=Transient("too much contention on the same documents; retry later")
                )
                return batch[1:]
            ceiling = min(s.max_delay_s, s.base_delay_s * (2 ** min(attempts, 10)))
            time.sleep(random.uniform(0, ceiling))

    @staticmethod
    def _hook(units: list[_MemberUnit]) -> None:
        """``commit_hook`` with each member as the unit it would have been on its own."""
        if atomic.commit_hook is not None:
            for mu in units:
                atomic.commit_hook(mu)

    def _stale(
        self, unit: Unit, refused: list[tuple[_Member[Any], _MemberUnit]]
    ) -> tuple[list[_Member[Any]], list[_Member[Any]]]:
        """The refused members whose reads changed since: (to run again, worn out).

        They go again from fresh reads; one refused on changed reads ``max_attempts`` times
        is worn out and gets ``Transient`` instead, as a single unit would.
        """
        if not refused:
            return [], []
        changed = set(unit.stale([p for _, mu in refused for p in mu._reads]))
        again: list[_Member[Any]] = []
        worn: list[_Member[Any]] = []
        for member, mu in refused:
            if not changed.intersection(mu._reads):
                continue
            member.stale_runs += 1
            member.probe_seq = -1  # its probe's snapshots are not to be reused
            (worn if member.stale_runs >= self.settings.max_attempts else again).append(member)
        return again, worn

    def _attempt(self, batch: list[_Member[Any]], attempts: int) -> list[_Member[Any]] | object:
        """Run the members in order on one view and commit them once.

        Returns the members left for a later batch; ``_RETRY`` when the commit failed on a
        precondition (retried, then split), ``_SPLIT`` when it failed for a reason one
        member may have brought (split at once, down to that member alone).
        """
        unit = Unit(self.db)
        # One view for the batch: the probes' snapshots where nothing this process
        # committed since can have changed them (first attempt only), the rest read
        # again in one round trip. A document changed by another process fails the
        # commit's precondition and the next attempt reads everything again.
        stale: dict[str, Any] = {}
        with self._lock:
            for m in batch:
                for snap in m.probed:
                    path = snap.reference.path
                    if path in unit._seen or path in stale:
                        continue
                    if attempts == 1 and self._fresh(m, path):
                        unit._seen[path] = snap
                    else:
                        stale[path] = snap.reference
        if stale:
            fresh = self.db.get_all(list(stale.values()))
            unit._seen.update({snap.reference.path: snap for snap in fresh})
        outcomes: list[tuple[_Member[Any], Any, BaseException | None]] = []
        units: list[_MemberUnit] = []  # of the members that succeeded, for ``commit_hook``
        deferred: list[_Member[Any]] = []
        creators: dict[str, _Member[Any]] = {}
        refused: list[tuple[_Member[Any], _MemberUnit]] = []  # domain errors, to re-check
        for i, member in enumerate(batch):
            mu = _MemberUnit(unit, _copy_scratch(unit.scratch))
            try:
                value = member.work(mu)
            except _Deferred:
                deferred = batch[i:]
                break
            except Exception as exc:
                outcomes.append((member, None, exc))
                if atomic.surfaces(exc):
                    refused.append((member, mu))
                continue
            if unit.has_writes and len(unit._writes) + mu.new_paths(unit) > MAX_WRITES:
                deferred = batch[i:]
                break
            creators.update({p: member for p, w in mu._writes.items() if w.op == "create"})
            mu.fold_into(unit)
            unit.scratch = mu.scratch
            outcomes.append((member, value, None))
            units.append(mu)
        again, worn = self._stale(unit, refused)
        if again or worn:
            busy = Transient("too much contention on the same documents; retry later")
            outcomes = [
                (m, v, busy if any(m is w for w in worn) else e)
                for m, v, e in outcomes
                if all(m is not a for a in again)
            ]
            deferred = again + deferred
        if unit.has_writes:
            if atomic.fault_hook is not None:
                try:
                    atomic.fault_hook("before_commit")
                except Exception as exc:  # a crash before the commit: every member's error
                    for member, _, _ in outcomes:
                        member.finish(error=exc)
                    return deferred
            try:
                unit.commit()
            except gexc.AlreadyExists:
                raced, blind = unit.taken_by_others()
                if raced or not blind:
                    return _RETRY  # created since read as missing: the re-run replays
                # Created without being read as missing: it will exist on every re-run.
                # As in a single unit, a Conflict for the member that wrote it; the others
                # go again at once.
                bad = {id(creators[p]): (creators[p], p) for p in blind if p in creators}
                for member, path in bad.values():
                    member.finish(error=Conflict(f"{path} already exists", path=path))
                if not bad:
                    return _SPLIT
                return [m for m in batch if id(m) not in bad]
            except _RETRYABLE:
                return _RETRY
            except Exception as exc:
                if len(batch) > 1:
                    return _SPLIT  # find the member that brought it
                batch[0].finish(error=exc)
                return []
            self._note_commit(unit, sum(1 for _, _, error in outcomes if error is None))
            self._hook(units)
            if atomic.fault_hook is not None:
                try:
                    atomic.fault_hook("after_commit")
                except Exception as exc:  # a lost acknowledgement: written, reported failed
                    for member, _, _ in outcomes:
                        member.finish(error=exc)
                    return deferred
        if not unit.has_writes:
            self._hook(units)
        for member, value, error in outcomes:
            member.finish(value, error)
        return deferred


_committers: dict[int, tuple[firestore.Client, GroupCommitter]] = {}
_committers_lock = threading.Lock()


def committer_for(db: firestore.Client, settings: GroupSettings) -> GroupCommitter:
    """The process's committer for ``db`` (one per client, so one queue per account)."""
    with _committers_lock:
        entry = _committers.get(id(db))
        if entry is None or entry[0] is not db or entry[1].settings != settings:
            entry = (db, GroupCommitter(db, settings))
            _committers[id(db)] = entry
        return entry[1]
