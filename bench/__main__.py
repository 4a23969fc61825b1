"""Run every benchmark section on one emulator stack; print a table, write bench/latest.json."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import BenchContext, Result

OUT = Path(__file__).resolve().parent / "latest.json"


def sections() -> list[tuple[str, Callable[[BenchContext], list[Result]]]]:
    """Every section, in run order (each is a module of this package with ``run(ctx)``)."""
    from bench import ledger

    found: list[tuple[str, Callable[[BenchContext], list[Result]]]] = [("ledger", ledger.run)]
    # analytics last: it writes 110,000 documents, the heaviest load on the emulator.
    for name in ("ledger_api", "stripe", "usage", "providers", "bigeye", "sizing", "analytics"):
        try:
            module = __import__(f"bench.{name}", fromlist=["run"])
        except ModuleNotFoundError:
            continue
        found.append((name, module.run))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", action="append", help="run only these sections")
    parser.add_argument("--quick", action="store_true", help="smaller workloads")
    args = parser.parse_args()
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    from devstack.emulators import free_port
    from devstack.stack import Stack, StackConfig
    from shared.clients import firestore_client

    stack = Stack(
        StackConfig(
            project="demo-bench",
            firestore_port=free_port(),
            pubsub_port=free_port(),
            storage_port=free_port(),
            functions_port=free_port(),
            log_dir=Path(tempfile.mkdtemp(prefix="credits-bench-")),
            seed_demo=False,
            scheduler=False,
            firestore_heap="6g",
        )
    ).start()
    try:
        ctx = BenchContext(stack=stack, db=firestore_client(), quick=args.quick)
        chosen = [(n, r) for n, r in sections() if not args.only or n in args.only]
        results, failed = run_sections(ctx, chosen)
    finally:
        stack.stop()
    ran = [name for name, _ in chosen if name not in failed]
    rows = [{**r.as_dict(), "section": name} for name, r in results]
    if args.only and OUT.exists():
        rows = merge_rows(json.loads(OUT.read_text()), rows, ran)
    OUT.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\nwrote {OUT}")
    if failed:
        raise SystemExit(f"failed sections: {', '.join(failed)}")


def merge_rows(
    previous: list[dict[str, Any]], fresh: list[dict[str, Any]], ran: list[str]
) -> list[dict[str, Any]]:
    """A partial run's rows over the last run's: the sections that ran (and did not fail)
    replace all of their earlier rows, so a figure a section no longer reports does not
    linger; every other section keeps its figures from the last run. Rows written before
    rows named their section are matched by name."""
    names = {r["name"] for r in fresh}
    kept = [
        r
        for r in previous
        if r.get("section") not in ran and (r.get("section") is not None or r["name"] not in names)
    ]
    return kept + fresh


def run_sections(
    ctx: BenchContext, chosen: list[tuple[str, Callable[[BenchContext], list[Result]]]]
) -> tuple[list[tuple[str, Result]], list[str]]:
    """Run each section on a wiped stack; ((section, result) for every result, names of the
    sections that failed).

    The wipe is inside each section's error handling: a wipe that fails (an emulator timing
    out after a heavy section) fails that section only, and the others still run and are
    written.
    """
    results: list[tuple[str, Result]] = []
    failed: list[str] = []
    for name, run in chosen:
        print(f"== {name}", flush=True)
        try:
            ctx.wipe()
            for item in run(ctx):
                results.append((name, item))
                print(_row(item), flush=True)
        except Exception as exc:  # one section's failure must not lose the others'
            failed.append(name)
            print(f"  section {name} failed: {exc!r}", flush=True)
    return results, failed


def _row(r: Result) -> str:
    base = f"{r.baseline_name} = {r.baseline_value}" if r.baseline_name else ""
    ratio = f"ratio {r.ratio}" if r.ratio is not None else ""
    return f"  {r.name:<48} {r.value:>12} {r.unit:<8} {base:<52} {ratio}"


if __name__ == "__main__":
    main()
