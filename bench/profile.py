"""Write profiles: what each operation reads, writes and creates in Firestore, per document.

Used by ``make bench`` (``bench/sizing.py``) and by tests, never by production code. A
``Recorder`` counts, while it is open, every billed Firestore call of this process (the
local stack serves every function in-process, so handlers and triggers are counted too):

- at the RPC layer (the client's ``FirestoreClient`` methods): documents read by lookups
  (found or missing: both are billed), documents returned by queries (at least one read per
  query), aggregation queries (one read per 1,000 index entries, at least one), and every
  write and delete of each committed batch with its document path;
- at ``shared.atomic.commit_hook``: each committed unit of work, with what it read and how
  it wrote each document (create, update, set, merge, delete).

``pattern(path, subjects)`` turns a document path into its collection pattern, e.g.
``usage_user_days/{day}_{user}``: the operation's own subject values (its user, event,
provider...) become placeholders, then ids that are uuids or Firestore auto ids become
``{id}`` and the remaining runs of digits ``{n}`` (shard numbers, minute windows).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from google.cloud.firestore_v1.services.firestore import client as gapic

from shared import atomic

#: Firestore list prices, US$ per 100,000 documents (Standard edition).
#: Source: https://firebase.google.com/docs/firestore/standard-edition ("Billing and
#: limits", prices shown for us-central1: reads $0.03, writes $0.09, deletes $0.01 per
#: 100,000), read 2026-12-01. Multi-region locations (nam5, eur3) list twice these
#: ($0.06 / $0.18 / $0.02: https://cloud.google.com/firestore/pricing, same date).
PRICES_PER_100K = {"read": 0.03, "write": 0.09, "delete": 0.01}
PRICE_SOURCE = "firebase.google.com/docs/firestore/standard-edition, us-central1, 2026-12-01"
MULTI_REGION_FACTOR = 2.0

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_AUTO_ID = re.compile(r"^[A-Za-z0-9]{20}$")
_DIGITS = re.compile(r"\d{2,}")


def usd_per_million(reads: float, writes: float, deletes: float = 0.0) -> float:
    """US$ per million operations that each do ``reads``, ``writes`` and ``deletes``."""
    per_op = (
        reads * PRICES_PER_100K["read"]
        + writes * PRICES_PER_100K["write"]
        + deletes * PRICES_PER_100K["delete"]
    ) / 100_000
    return per_op * 1_000_000


def _doc_path(name: str) -> str:
    """``projects/p/databases/d/documents/a/b`` -> ``a/b``."""
    marker = "/documents/"
    return name.split(marker, 1)[1] if marker in name else name


def pattern(path: str, subjects: dict[str, str] | None = None) -> str:
    """The collection pattern of a document path (see the module docstring)."""
    subs: dict[str, str] = {}
    for value, placeholder in (subjects or {}).items():
        subs[value] = placeholder
        # Ids that embed a hash of the subject (rate-limit counters) name it too.
        subs[hashlib.sha256(value.encode()).hexdigest()[:32]] = placeholder
    ordered = sorted(subs, key=len, reverse=True)
    parts = path.split("/")
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(part)
            continue
        if part in subs:
            out.append(subs[part])
            continue
        if _AUTO_ID.match(part):
            out.append("{id}")
            continue
        part = _UUID.sub("{id}", part)
        for value in ordered:
            if value and value in part:
                part = part.replace(value, subs[value])
        out.append(_DIGITS.sub("{n}", part))
    return "/".join(out)


@dataclass
class Tally:
    """What one run of an operation cost."""

    reads: int = 0
    writes: int = 0
    deletes: int = 0
    commits: int = 0
    units: int = 0
    #: path -> writes to it (deletes excluded)
    written: Counter[str] = field(default_factory=Counter)
    #: (op, path) as the units wrote them
    unit_ops: list[tuple[str, str]] = field(default_factory=list)
    unit_reads: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.reads += other.reads
        self.writes += other.writes
        self.deletes += other.deletes
        self.commits += other.commits
        self.units += other.units
        self.written.update(other.written)
        self.unit_ops += other.unit_ops
        self.unit_reads += other.unit_reads

    @property
    def creates(self) -> int:
        return sum(1 for op, _ in self.unit_ops if op == "create")


class Recorder:
    """Counts every billed Firestore call of this process while open (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tally = Tally()

    def take(self) -> Tally:
        """What was counted since the last ``take`` (and start again from zero)."""
        with self._lock:
            out, self.tally = self.tally, Tally()
        return out

    # -- the RPC layer -------------------------------------------------------------------
    def _reads(self, n: int) -> None:
        with self._lock:
            self.tally.reads += n

    def _commit(self, request: Any) -> None:
        writes = request.get("writes", []) if isinstance(request, dict) else request.writes
        with self._lock:
            self.tally.commits += 1
            for w in writes:
                if w.delete:
                    self.tally.deletes += 1
                    continue
                path = _doc_path(w.update.name if w.update.name else w.transform.document)
                self.tally.writes += 1
                self.tally.written[path] += 1

    def _unit(self, unit: atomic.Unit) -> None:
        reads, ops = unit.footprint()
        with self._lock:
            self.tally.units += 1 if ops else 0
            self.tally.unit_ops += ops
            self.tally.unit_reads += reads

    @contextlib.contextmanager
    def patched(self) -> Iterator[Recorder]:
        cls = gapic.FirestoreClient
        originals = {
            name: getattr(cls, name)
            for name in ("commit", "batch_get_documents", "run_query", "run_aggregation_query")
        }
        recorder = self

        def commit(api: Any, *args: Any, **kwargs: Any) -> Any:
            response = originals["commit"](api, *args, **kwargs)
            recorder._commit(kwargs.get("request") if "request" in kwargs else args[0])
            return response

        def counted(name: str, per_response: Any) -> Any:
            def call(api: Any, *args: Any, **kwargs: Any) -> Any:
                responses = originals[name](api, *args, **kwargs)

                def stream() -> Iterator[Any]:
                    n = 0
                    try:
                        for response in responses:
                            n += per_response(response)
                            yield response
                    finally:
                        recorder._reads(max(1, n) if name != "batch_get_documents" else n)

                return stream()

            return call

        def lookup(response: Any) -> int:
            return 1 if (response.found.name or response.missing) else 0

        def query(response: Any) -> int:
            return 1 if response.document.name else 0

        def aggregation(response: Any) -> int:
            fields = response.result.aggregate_fields if response.result else {}
            entries = sum(int(v.integer_value) for v in fields.values())
            return max(1, -(-entries // 1000))

        cls.commit = commit  # type: ignore[method-assign,assignment]
        cls.batch_get_documents = counted("batch_get_documents", lookup)  # type: ignore[method-assign]
        cls.run_query = counted("run_query", query)  # type: ignore[method-assign]
        cls.run_aggregation_query = counted("run_aggregation_query", aggregation)  # type: ignore[method-assign]
        previous_hook = atomic.commit_hook
        atomic.commit_hook = self._unit
        try:
            yield self
        finally:
            atomic.commit_hook = previous_hook
            for name, original in originals.items():
                setattr(cls, name, original)


@contextlib.contextmanager
def recording() -> Iterator[Recorder]:
    """Record every billed Firestore call of this process inside the block."""
    recorder = Recorder()
    with recorder.patched():
        yield recorder
