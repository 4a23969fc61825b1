"""Record the shape of every Firestore query this process runs (functions included).

The local stack serves every function in-process, so patching the client's query
serialisation sees the queries of the handlers, the crons and the admin CLI alike.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from google.cloud.firestore_v1 import base_query

from devstack.indexes import QueryShape, shape_from_pb


class QueryRecorder:
    """A set of query shapes seen while recording."""

    def __init__(self) -> None:
        self.shapes: set[QueryShape] = set()
        self._lock = threading.Lock()

    def add(self, pb: Any) -> None:
        try:
            shape = shape_from_pb(pb)
        except Exception:  # never let the recorder break the code under test
            return
        with self._lock:
            self.shapes.add(shape)


@contextlib.contextmanager
def recording() -> Iterator[QueryRecorder]:
    """Record every query serialised inside the block."""
    recorder = QueryRecorder()
    original = base_query.BaseQuery._to_protobuf

    def spy(self: Any) -> Any:
        pb = original(self)
        recorder.add(pb)
        return pb

    base_query.BaseQuery._to_protobuf = spy  # type: ignore[method-assign]
    try:
        yield recorder
    finally:
        base_query.BaseQuery._to_protobuf = original  # type: ignore[method-assign]
