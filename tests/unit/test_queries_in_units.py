"""No raw query inside a unit of work: every query there runs through ``Unit.query``.

Two nets: at run time a raw ``Query.stream``/``Query.get`` inside ``work`` raises (checked
here without a database: the refusal comes before any request); and in the source, no
function that takes a ``Unit`` (nor any function defined inside one) calls ``.stream(``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from shared.atomic import RawQueryInUnit, in_work

ROOT = Path(__file__).resolve().parents[2]


def _client() -> firestore.Client:
    return firestore.Client(project="no-such-project", credentials=AnonymousCredentials())


def test_a_raw_query_inside_work_raises_before_any_request() -> None:
    db = _client()
    coll = db.collection("things")
    queries = [
        lambda: list(coll.where(filter=firestore.FieldFilter("a", "==", 1)).stream()),
        lambda: coll.where(filter=firestore.FieldFilter("a", "==", 1)).get(),
        lambda: list(coll.stream()),
        lambda: coll.get(),
        lambda: list(coll.order_by("a").limit(3).stream()),
        lambda: list(db.collection_group("things").stream()),
    ]
    for run in queries:
        with in_work(), pytest.raises(RawQueryInUnit):
            run()


def test_the_guard_is_off_outside_work_and_inside_unit_query() -> None:
    from shared import atomic

    assert not atomic._IN_WORK.get()
    with in_work():
        assert atomic._IN_WORK.get()
        with in_work(False):  # what Unit.query runs its query under
            assert not atomic._IN_WORK.get()
        assert atomic._IN_WORK.get()
    assert not atomic._IN_WORK.get()


def _takes_unit(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    args = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
    return any(
        a.annotation is not None and ast.unparse(a.annotation).split(".")[-1] == "Unit"
        for a in args
    )


def _raw_queries(tree: ast.AST) -> list[tuple[str, int]]:
    """(function, line) of every ``.stream(`` call in a function that takes a Unit."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, in_unit: bool, name: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, in_unit or _takes_unit(child), child.name)
                continue
            if (
                in_unit
                and isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and child.func.attr == "stream"
            ):
                found.append((name, child.lineno))
            visit(child, in_unit, name)

    visit(tree, False, "<module>")
    return found


def test_no_function_that_takes_a_unit_streams_a_query() -> None:
    offenders = []
    for path in sorted([*ROOT.glob("shared/**/*.py"), *ROOT.glob("functions/**/*.py")]):
        tree = ast.parse(path.read_text(), filename=str(path))
        rel = path.relative_to(ROOT)
        offenders += [f"{rel}:{line} in {fn}" for fn, line in _raw_queries(tree)]
    assert offenders == []


def test_the_source_check_finds_a_raw_query() -> None:
    source = (
        "def read(unit: Unit, db):\n"
        "    def inner():\n"
        "        return list(db.collection('x').stream())\n"
        "    return inner()\n"
        "def outside(db):\n"
        "    return list(db.collection('x').stream())\n"
    )
    assert _raw_queries(ast.parse(source)) == [("inner", 3)]
