"""Which composite index a Firestore query needs, and whether ``firestore.indexes.json`` has it.

The emulator serves any query; production rejects one that needs a composite index the
project has not declared (FAILED_PRECONDITION "The query requires an index"). This module
reproduces Firestore's rule closely enough to catch that before a deploy:

- equality filters (``==``, ``in``, ``array-contains``...) alone, or one range/order field
  alone, are served by the automatic single-field indexes;
- otherwise the query needs a composite index whose leading fields are exactly its equality
  fields (any order) followed by its range/order fields in order, with the same
  directions. A range filter without an ``order_by`` orders on its field ascending; a
  trailing ``__name__`` order is implicit in every index.

Queries are described by ``QueryShape``; ``shape_from_pb`` reads one from the
``StructuredQuery`` protobuf the client sends (see ``tests/indexes/recorder.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INDEXES_FILE = Path(__file__).resolve().parent.parent / "firestore.indexes.json"

ASC = "ASCENDING"
DESC = "DESCENDING"
_EQUALITY_OPS = {"EQUAL", "IN", "ARRAY_CONTAINS", "ARRAY_CONTAINS_ANY"}
_NAME = "__name__"


@dataclass(frozen=True)
class QueryShape:
    """What matters about a query for index selection."""

    collection: str
    equalities: frozenset[str] = frozenset()
    ranges: tuple[str, ...] = ()  # fields with <, <=, >, >=, !=, not-in
    orders: tuple[tuple[str, str], ...] = ()  # (field, ASC|DESC), as given
    collection_group: bool = False
    contains: frozenset[str] = frozenset()  # fields with array-contains(-any)

    def __str__(self) -> str:
        parts = [f"{f} ==" for f in sorted(self.equalities)]
        parts += [f"{f} range" for f in self.ranges]
        parts += [f"order {f} {d[:3]}" for f, d in self.orders]
        return f"{self.collection}: " + ", ".join(parts)


@dataclass(frozen=True)
class IndexField:
    path: str
    order: str | None = None  # ASC | DESC, or None for arrayConfig CONTAINS
    contains: bool = False


@dataclass(frozen=True)
class Index:
    collection: str
    fields: tuple[IndexField, ...]
    collection_group: bool = False


def effective_orders(shape: QueryShape) -> tuple[tuple[str, str], ...]:
    """The orders Firestore applies: explicit ones, else the range field ascending."""
    orders = [o for o in shape.orders if o[0] != _NAME]
    if not orders:
        orders = [(f, ASC) for f in dict.fromkeys(shape.ranges)]
    return tuple(o for o in orders if o[0] not in shape.equalities)


def needs_composite(shape: QueryShape) -> bool:
    """False when the automatic single-field indexes serve the query."""
    orders = effective_orders(shape)
    equalities = shape.equalities | shape.contains
    if not orders:
        return False  # equality filters only: index merging on single-field indexes
    return bool(equalities) or len(orders) > 1


def covers(index: Index, shape: QueryShape) -> bool:
    """Whether ``index`` serves ``shape`` exactly."""
    if index.collection != shape.collection or index.collection_group != shape.collection_group:
        return False
    fields = [f for f in index.fields if f.path != _NAME]
    orders = effective_orders(shape)
    prefix = fields[: len(fields) - len(orders)]
    suffix = fields[len(fields) - len(orders) :]
    if len(suffix) != len(orders):
        return False
    if any(f.path != o[0] or f.order != o[1] for f, o in zip(suffix, orders, strict=True)):
        return False
    want = shape.equalities | shape.contains
    if {f.path for f in prefix} != want or len(prefix) != len(want):
        return False
    return all(f.contains == (f.path in shape.contains) for f in prefix)


def load_indexes(path: Path = INDEXES_FILE) -> list[Index]:
    """The composite indexes declared in ``firestore.indexes.json``."""
    data = json.loads(path.read_text())
    found = []
    for entry in data.get("indexes", []):
        fields = tuple(
            IndexField(
                f["fieldPath"],
                f.get("order"),
                contains=f.get("arrayConfig") == "CONTAINS",
            )
            for f in entry["fields"]
        )
        found.append(
            Index(
                entry["collectionGroup"],
                fields,
                collection_group=entry.get("queryScope") == "COLLECTION_GROUP",
            )
        )
    return found


def missing_indexes(shapes: list[QueryShape], indexes: list[Index]) -> list[QueryShape]:
    """The shapes that need a composite index the file does not declare."""
    return [s for s in shapes if needs_composite(s) and not any(covers(i, s) for i in indexes)]


def index_json(shape: QueryShape) -> dict[str, Any]:
    """The ``firestore.indexes.json`` entry that would serve ``shape``."""
    fields: list[dict[str, str]] = []
    for name in sorted(shape.equalities):
        fields.append({"fieldPath": name, "order": ASC})
    for name in sorted(shape.contains):
        fields.append({"fieldPath": name, "arrayConfig": "CONTAINS"})
    fields += [{"fieldPath": f, "order": d} for f, d in effective_orders(shape)]
    scope = "COLLECTION_GROUP" if shape.collection_group else "COLLECTION"
    return {"collectionGroup": shape.collection, "queryScope": scope, "fields": fields}


def _filters(pb: Any, shape: dict[str, Any]) -> None:
    kind = pb.WhichOneof("filter_type") if pb is not None else None
    if kind == "composite_filter":
        for sub in pb.composite_filter.filters:
            _filters(sub, shape)
    elif kind == "field_filter":
        ff = pb.field_filter
        op = type(ff).Operator.Name(ff.op)
        path = ff.field.field_path
        if op in {"ARRAY_CONTAINS", "ARRAY_CONTAINS_ANY"}:
            shape["contains"].add(path)
        elif op in _EQUALITY_OPS:
            shape["equalities"].add(path)
        else:
            shape["ranges"].append(path)
    elif kind == "unary_filter":
        shape["equalities"].add(pb.unary_filter.field.field_path)


def shape_from_pb(structured_query: Any) -> QueryShape:
    """The shape of a ``google.cloud.firestore_v1.types.StructuredQuery``."""
    pb = getattr(structured_query, "_pb", structured_query)
    selector = pb.from_[0]
    shape: dict[str, Any] = {"equalities": set(), "ranges": [], "contains": set()}
    if pb.HasField("where"):
        _filters(pb.where, shape)
    orders = tuple((o.field.field_path, DESC if o.direction == 2 else ASC) for o in pb.order_by)
    return QueryShape(
        collection=selector.collection_id,
        equalities=frozenset(shape["equalities"]),
        ranges=tuple(shape["ranges"]),
        orders=orders,
        collection_group=bool(selector.all_descendants),
        contains=frozenset(shape["contains"]),
    )
