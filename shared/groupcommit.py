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

Round trips. A batch's first attempt is *optimistic*: it reads nothing it can know or
presume, and lets the commit's preconditions prove it right.

- Known: after each commit, the committer keeps the state it wrote to the group's own
  document (the account's user document: its fields and the ``update_time`` the commit
  gave it), for ``KNOWN_FOR_S``. The next batch uses that state, and its write to the
  document carries "unchanged since" that ``update_time``; if anything else wrote the
  document meanwhile, the commit fails as a whole, the batch runs again at once from fresh
  reads, and the known state is not used for ``KNOWN_FOR_S`` (another writer is busy on
  it: reading is then cheaper than failing commits).
- Presumed new: documents of the collections a caller names in ``new_keys`` (the ledger's
  idempotency records, keyed by a posting's fresh key) are taken as missing without a read;
  a member that then creates one does so with "must not exist", so a replayed key fails the
  commit and the batch runs again from fresh reads, where the replay finds its first result.
- Anything a member decided on a known or presumed document that the commit does not
  guard is checked with one read before the outcome is given: a refused member's reads by
  the staleness re-check above (a stale one goes again), any other by one read for the
  batch (if wrong, the batch runs again from fresh reads).

Everything else a member reads it learns in a *probe*: each caller first runs its ``work``
once on its own (writes discarded), known and presumed documents served from memory, so the
reads it needs happen in the caller's thread, in parallel with other callers and with the
batch being committed; the leader reuses those snapshots where no commit of this process has
written the document since. A probe that read nothing from the database (a plain posting:
its account known, its record presumed new) taught nothing, so the next callers of that
group skip theirs until a member needs a read again (the leader then reads it when it runs
the member, and callers probe again). A batch of N postings of one account then costs one
commit, no read and one run of each member's work. A caller of ``run`` that finds its group
idle (nothing queued, led or probing) skips its probe too: it leads at once, so the probe
would only read, one step earlier and in the same thread, what its own run then reads; it
runs its work once (a lone unit costs what ``run_atomically`` does: its reads, one commit).

Each process bounds what waits per group (``max_queue``): past it, a caller gets a
retryable ``Transient`` at once rather than an ever longer wait.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_document import DocumentSnapshot
from google.cloud.firestore_v1.query import Query
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
_FRESH = object()  # an optimistic attempt assumed wrong: again at once, from fresh reads

#: Documents remembered as written by recent commits (then the memory starts over).
_WRITTEN_KEPT = 20_000
#: A group document's known state is used for this long after the commit that wrote it,
#: and not for this long after an optimistic attempt on it failed (another writer is busy
#: on it: reading it is then cheaper than failing commits).
KNOWN_FOR_S = 2.0


@dataclass(frozen=True)
class GroupSettings:
    """How long a leader waits for company, how many members one commit may carry, and how
    many may wait."""

    window_s: float = 0.010
    max_batch: int = 100
    #: Units of one group that may wait in this process (queued or still probing); past
    #: it a caller gets a retryable ``Transient`` at once instead of joining the queue.
    max_queue: int = 500
    max_attempts: int = 60
    base_delay_s: float = 0.004
    max_delay_s: float = 0.25


class _Deferred(BaseException):
    """The member touches what an earlier member of this batch wrote: next batch."""


def _collection(path: str) -> str:
    return path.rpartition("/")[0]


def _missing(ref: firestore.DocumentReference) -> DocumentSnapshot:
    return DocumentSnapshot(ref, None, False, None, None, None)


class _Member(Generic[T]):
    """One caller's unit of work waiting for a batch, and then its outcome."""

    def __init__(self, work: Callable[[Unit], T], new_keys: Collection[str] = ()) -> None:
        self.work = work
        #: Collections whose documents this work may take as missing without a read.
        self.new_keys = frozenset(new_keys)
        #: What the probe saw, which of it came from memory (known or presumed) rather
        #: than a read, and this committer's commit count when it started.
        self.probed: list[DocumentSnapshot] = []
        self.assumed: set[str] = set()
        self.presumed: set[str] = set()
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


class _ProbeUnit(Unit):
    """A caller's probe: known and presumed documents from memory, the rest read."""

    def __init__(self, committer: GroupCommitter, member: _Member[Any]) -> None:
        super().__init__(committer.db)
        self._committer = committer
        self._member = member
        self.read = False  # whether it read anything from the database

    def get_all(self, refs: Sequence[firestore.DocumentReference]) -> list[DocumentSnapshot]:
        unseen = [r for r in refs if r.path not in self._seen]
        if unseen:
            member = self._member
            assumed = self._committer._assumed(unseen, member.new_keys, member.presumed)
            self._seen.update(assumed)
            member.assumed.update(assumed)
            self.read = self.read or len(assumed) < len({r.path for r in unseen})
        return super().get_all(refs)

    def query(self, query: Query) -> list[DocumentSnapshot]:
        self.read = True
        return super().query(query)


class _BatchUnit(Unit):
    """The batch's view and writes; on an optimistic attempt, what it took unread."""

    def __init__(self, committer: GroupCommitter, group: str, optimistic: bool) -> None:
        super().__init__(committer.db)
        self.committer = committer
        self.group = group
        self.optimistic = optimistic
        #: Snapshots taken from memory (known or presumed), to be proven by the commit.
        self.unverified: dict[str, DocumentSnapshot] = {}

    def fetch(
        self, refs: Sequence[firestore.DocumentReference], new_keys: Collection[str]
    ) -> list[DocumentSnapshot]:
        """``get_all`` for a member: optimistically known or presumed, else read."""
        unseen = [r for r in refs if r.path not in self._seen]
        if unseen and self.optimistic:
            assumed = self.committer._assumed(unseen, new_keys, None)
            self._seen.update(assumed)
            self.unverified.update(assumed)
        if any(r.path not in self._seen for r in unseen):
            self.committer._needs_reads(self.group)  # the next callers probe again
        return self.get_all(refs)

    def doubtful(self) -> list[DocumentSnapshot]:
        """What was taken unread and is not guarded by a write of this commit."""
        return [
            snap
            for path, snap in self.unverified.items()
            if path not in self._writes or self._writes[path].op == "merge"
        ]


class _MemberUnit(Unit):
    """A unit for one member: reads through the batch, writes checked against it."""

    def __init__(
        self, batch: _BatchUnit, scratch: dict[str, Any], new_keys: frozenset[str]
    ) -> None:
        super().__init__(batch.db)
        self._batch = batch
        self._seen = batch._seen  # one snapshot per document for the whole batch
        self.scratch = scratch
        self._new_keys = new_keys
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
            fetched = iter(self._batch.fetch(plain, self._new_keys))
            out = [snap if snap is not None else next(fetched) for snap in out]
        return [snap for snap in out if snap is not None]

    def query(self, query: Query) -> list[DocumentSnapshot]:
        self._batch.committer._needs_reads(self._batch.group)  # the next callers probe again
        return super().query(query)

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
        #: Committed batches, the members they carried, failed commit attempts, and
        #: callers turned away because their group's queue was full.
        self.commits = 0
        self.committed_members = 0
        self.failed_commits = 0
        self.refused = 0
        #: Callers that found their group idle and skipped the probe (``run``).
        self.lone = 0
        # Commit sequence: which documents each commit wrote, so that a probe's snapshot
        # is reused only if no later commit of this process wrote the document.
        self._seq = 0
        self._floor = 0
        self._written: dict[str, int] = {}
        # Each group document's state as this process last committed it, and when; and
        # group documents not to take from memory for a while (monotonic deadlines).
        self._known: dict[str, tuple[DocumentSnapshot, float]] = {}
        self._doubted: dict[str, float] = {}
        # Groups whose last probe read nothing from the database: their callers skip the
        # probe (its only use is to learn reads), and the leader reads what a member
        # still needs when it runs it (then callers probe again).
        self._plain: dict[str, bool] = {}

    # -- callers -------------------------------------------------------------------------
    def run(self, group: str, work: Callable[[Unit], T], *, new_keys: Collection[str] = ()) -> T:
        """Run ``work`` as part of a batch of ``group``; its own result or exception.

        ``group`` is the path of the document every member writes (an account's user
        document). ``new_keys``: collections whose documents ``work`` reads only to create
        them when missing (idempotency records): presumed missing without a read.
        Raises ``Transient`` at once when ``max_queue`` units of ``group`` already wait.
        """
        with self._lock:
            g = self._admit(group)
            # A lone caller (nothing of its group queued, led or arriving) leads at once:
            # its probe would only read, one round trip earlier, what it then reads itself.
            lone = not g.leading and not g.queue and not g.arriving
            g.arriving += 1
            plain = self._plain.get(group, False)
        member = _Member(work, new_keys)
        try:
            if not plain and not lone:
                self._probe(group, member)
            elif lone:
                with self._lock:
                    self.lone += 1
        finally:
            with self._lock:
                g = self._group(group)
                g.arriving -= 1
                g.queue.append(member)
                self._arrived.notify_all()
        return self.wait(group, member)

    def submit(
        self, group: str, work: Callable[[Unit], T], *, new_keys: Collection[str] = ()
    ) -> _Member[T]:
        """Queue ``work`` without waiting; ``wait`` must follow (tests use it for order)."""
        with self._lock:
            self._admit(group)
            plain = self._plain.get(group, False)
        member = _Member(work, new_keys)
        if not plain:
            self._probe(group, member)
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

    def _admit(self, group: str) -> _Group:
        """The group, if one more caller may wait in it (call with the lock held)."""
        g = self._group(group)
        waiting = len(g.queue) + g.arriving
        if waiting >= self.settings.max_queue:
            self.refused += 1
            raise Transient(
                f"{waiting} postings of {group} are already waiting here; retry later",
                group=group,
                waiting=waiting,
            )
        return g

    def _assumed(
        self,
        refs: Sequence[firestore.DocumentReference],
        new_keys: Collection[str],
        presumed: set[str] | None,
    ) -> dict[str, DocumentSnapshot]:
        """What can be taken without a read: known group documents, presumed-new keys."""
        now = time.monotonic()
        out: dict[str, DocumentSnapshot] = {}
        with self._lock:
            for ref in refs:
                path = ref.path
                known = self._known.get(path)
                if known is not None and now - known[1] <= KNOWN_FOR_S:
                    out[path] = known[0]
                elif new_keys and path not in self._written and _collection(path) in new_keys:
                    out[path] = _missing(ref)
                    if presumed is not None:
                        presumed.add(path)
        return out

    def _probe(self, group: str, member: _Member[Any]) -> None:
        """Run the work once on its own, writes discarded: what it reads, and when."""
        with self._lock:
            member.probe_seq = self._seq
        unit = _ProbeUnit(self, member)
        with contextlib.suppress(Exception), atomic.in_work():
            member.work(unit)  # the real run decides; this learns the reads
        member.probed = list(unit._seen.values())
        with self._lock:
            if len(self._plain) > _WRITTEN_KEPT:
                self._plain.clear()
            self._plain[group] = not unit.read

    def _needs_reads(self, group: str) -> None:
        with self._lock:
            self._plain.pop(group, None)

    def _fresh(self, member: _Member[Any], path: str) -> bool:
        """Whether no commit of this committer wrote ``path`` since ``member``'s probe."""
        if member.probe_seq < self._floor:
            return False
        return self._written.get(path, 0) <= member.probe_seq

    def _note_commit(self, group: str, unit: _BatchUnit, members: int, results: list[Any]) -> None:
        known = self._committed_state(group, unit, results)
        with self._lock:
            self._seq += 1
            if len(self._written) > _WRITTEN_KEPT:
                self._written.clear()
                self._floor = self._seq
            for path in unit._writes:
                self._written[path] = self._seq
            now = time.monotonic()
            if known is not None and self._doubted.get(group, 0.0) <= now:
                self._known[group] = (known, now)
            elif group in unit._writes:
                self._known.pop(group, None)
            self.commits += 1
            self.committed_members += members

    @staticmethod
    def _committed_state(group: str, unit: Unit, results: list[Any]) -> DocumentSnapshot | None:
        """The group document as the commit left it, when the commit says all of it."""
        paths = list(unit._writes)
        if group not in unit._writes or len(results) != len(paths):
            return None
        write = unit._writes[group]
        result = results[paths.index(group)]
        base = unit._seen.get(group)
        if base is None or not base.exists:
            return None
        if write.op == "verify":  # proven unchanged: as read
            return base
        if write.op != "update" or not _simple(write.data):
            return None
        data = {**(base.to_dict() or {}), **_copy_maps(write.data)}
        return DocumentSnapshot(
            write.ref, data, True, result.update_time, base.create_time, result.update_time
        )

    def _doubt(self, paths: Collection[str]) -> None:
        """Known states found stale: forget them, and take none for ``KNOWN_FOR_S``."""
        until = time.monotonic() + KNOWN_FOR_S
        with self._lock:
            for path in paths:
                if self._known.pop(path, None) is not None:
                    self._doubted[path] = until
            if len(self._doubted) > _WRITTEN_KEPT:
                self._doubted.clear()

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
                    rest = self._process(group, batch)
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

    def _process(self, group: str, batch: list[_Member[Any]]) -> list[_Member[Any]]:
        """Commit ``batch`` (or its head); returns the members left for a later batch."""
        s = self.settings
        attempts = 0
        optimistic = True
        read: dict[str, Any] = {}  # what earlier attempts read: read again in one trip
        while True:
            left = self._attempt(group, batch, optimistic, read)
            if isinstance(left, list):
                return left
            if left is _FRESH and optimistic:
                optimistic = False  # at once, from fresh reads: not contention
                continue
            attempts += 1
            optimistic = False
            if len(batch) > 1 and (left is _SPLIT or attempts >= SPLIT_AFTER):
                # The head on its own first; the tail waits at the front of the queue.
                half = len(batch) // 2
                return self._process(group, batch[:half]) + batch[half:]
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
        paths = dict.fromkeys(p for _, mu in refused for p in mu._reads if p in unit._seen)
        docs, queries = atomic.changed_reads(
            [unit._seen[p] for p in paths], [q for _, mu in refused for q in mu._queries], self.db
        )
        changed = set(docs)
        moved = {id(q) for q in queries}
        self._doubt(changed)  # a known state among them is stale
        again: list[_Member[Any]] = []
        worn: list[_Member[Any]] = []
        for member, mu in refused:
            if not changed.intersection(mu._reads) and not any(id(q) in moved for q in mu._queries):
                continue
            member.stale_runs += 1
            member.probe_seq = -1  # its probe's snapshots are not to be reused
            (worn if member.stale_runs >= self.settings.max_attempts else again).append(member)
        return again, worn

    def _view(self, unit: _BatchUnit, batch: list[_Member[Any]], read: dict[str, Any]) -> None:
        """The batch's starting view of what its members' probes read.

        Optimistic (a batch's first attempt): a group document's known state and
        presumed-new keys are taken from memory (``unit.unverified``), the probes' own
        reads reused where no commit of this process wrote the document since; the rest
        is read again in one round trip. Otherwise everything is read again, with what the
        earlier attempts of the batch read (``read``: members that skipped their probe): a
        document another process changed failed the last commit's precondition.
        """
        stale: dict[str, Any] = {} if unit.optimistic else dict(read)
        now = time.monotonic()
        with self._lock:
            for m in batch:
                for snap in m.probed:
                    path = snap.reference.path
                    if path in unit._seen or path in stale:
                        continue
                    if unit.optimistic:
                        known = self._known.get(path)
                        if known is not None and now - known[1] <= KNOWN_FOR_S:
                            unit._seen[path] = unit.unverified[path] = known[0]
                            continue
                        if path in m.presumed and self._fresh(m, path):
                            unit._seen[path] = unit.unverified[path] = snap
                            continue
                    if unit.optimistic and path not in m.assumed and self._fresh(m, path):
                        unit._seen[path] = snap
                    else:
                        stale[path] = snap.reference
        if stale:
            fresh = self.db.get_all(list(stale.values()))
            unit._seen.update({snap.reference.path: snap for snap in fresh})

    def _attempt(
        self, group: str, batch: list[_Member[Any]], optimistic: bool, read: dict[str, Any]
    ) -> list[_Member[Any]] | object:
        """Run the members in order on one view and commit them once.

        Returns the members left for a later batch; ``_FRESH`` when an optimistic attempt
        took something from memory that was not so (run again at once from fresh reads);
        ``_RETRY`` when the commit failed on a precondition (retried, then split),
        ``_SPLIT`` when it failed for a reason one member may have brought (split at once,
        down to that member alone).
        """
        unit = _BatchUnit(self, group, optimistic)
        self._view(unit, batch, read)
        outcomes: list[tuple[_Member[Any], Any, BaseException | None]] = []
        units: list[_MemberUnit] = []  # of the members that succeeded, for ``commit_hook``
        deferred: list[_Member[Any]] = []
        creators: dict[str, _Member[Any]] = {}
        refused: list[tuple[_Member[Any], _MemberUnit]] = []  # domain errors, to re-check
        for i, member in enumerate(batch):
            # A member refused on reads that had changed presumes nothing new any more: a
            # key it presumed missing may be why (created elsewhere), and is read instead.
            new_keys = member.new_keys if not member.stale_runs else frozenset()
            mu = _MemberUnit(unit, _copy_scratch(unit.scratch), new_keys)
            try:
                with atomic.in_work():
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
        read.update({path: snap.reference for path, snap in unit._seen.items()})
        again, worn = self._stale(unit, refused)
        if again or worn:
            busy = Transient("too much contention on the same documents; retry later")
            outcomes = [
                (m, v, busy if any(m is w for w in worn) else e)
                for m, v, e in outcomes
                if all(m is not a for a in again)
            ]
            deferred = again + deferred
        # Whatever else was decided on memory that this commit will not prove: one read.
        checked = {p for _, mu in refused for p in mu._reads}
        doubtful = [snap for snap in unit.doubtful() if snap.reference.path not in checked]
        if doubtful:
            wrong = atomic.changed_since(doubtful, self.db)
            if wrong:
                self._doubt(wrong)
                return _FRESH
        if unit.has_writes:
            if atomic.fault_hook is not None:
                try:
                    atomic.fault_hook("before_commit")
                except Exception as exc:  # a crash before the commit: every member's error
                    for member, _, _ in outcomes:
                        member.finish(error=exc)
                    return deferred
            try:
                results = unit.commit()
            except (gexc.AlreadyExists, *_RETRYABLE) as exc:
                with self._lock:
                    self.failed_commits += 1
                if unit.optimistic and unit.unverified:
                    # What was taken from memory may be why: read it. A key presumed new
                    # that exists (a replay) says nothing against the known state.
                    if not isinstance(exc, gexc.AlreadyExists):
                        self._doubt(unit.unverified)
                    return _FRESH
                if not isinstance(exc, gexc.AlreadyExists):
                    return _RETRY
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
            except Exception as exc:
                with self._lock:
                    self.failed_commits += 1
                if len(batch) > 1:
                    return _SPLIT  # find the member that brought it
                batch[0].finish(error=exc)
                return []
            self._note_commit(
                group, unit, sum(1 for _, _, error in outcomes if error is None), results
            )
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
