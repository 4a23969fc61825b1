"""What every benchmark section shares: the result record, timing and the stack context."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Result:
    """One measured figure and the baseline it is compared with (same run, same emulator)."""

    name: str
    value: float
    unit: str
    baseline_name: str | None = None
    baseline_value: float | None = None
    ratio: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def result(
    name: str,
    value: float,
    unit: str,
    baseline_name: str | None = None,
    baseline_value: float | None = None,
    *,
    higher_is_better: bool = True,
) -> Result:
    """A Result whose ratio is value / baseline (or baseline / value for costs)."""
    ratio = None
    if baseline_value:
        ratio = value / baseline_value if higher_is_better else baseline_value / value
    return Result(
        name,
        round(value, 3),
        unit,
        baseline_name,
        None if baseline_value is None else round(baseline_value, 3),
        None if ratio is None else round(ratio, 3),
    )


def percentile(samples: list[float], pct: float) -> float:
    """The pct-th percentile (0-100) of samples (nearest rank)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def latency_results(
    name: str,
    samples: list[float],
    baseline_name: str | None = None,
    baseline: list[float] | None = None,
) -> list[Result]:
    """The p50 and p99 rows (in ms) of ``samples``; ``{pct}`` in the names is 50, then 99."""
    return [
        result(
            name.format(pct=pct),
            percentile(samples, pct) * 1000,
            "ms",
            None if baseline_name is None else baseline_name.format(pct=pct),
            None if baseline is None else percentile(baseline, pct) * 1000,
            higher_is_better=False,
        )
        for pct in (50, 99)
    ]


def drive(
    workers: int,
    n_per_worker: int,
    post: Callable[[int, int], None],
    *,
    errors: tuple[type[Exception], ...] = (),
) -> tuple[float, list[float], int]:
    """Run ``post(worker, i)`` from ``workers`` threads; returns (seconds, latencies in
    seconds, how many calls raised one of ``errors``; any other exception propagates)."""
    latencies: list[float] = []
    failed = 0
    lock = threading.Lock()

    def worker(w: int) -> None:
        nonlocal failed
        for i in range(n_per_worker):
            start = time.perf_counter()
            try:
                post(w, i)
            except errors:
                with lock:
                    failed += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(worker, range(workers)))
    return time.perf_counter() - start, latencies, failed


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else 0.0


@dataclass
class BenchContext:
    """The running stack and its Firestore client, handed to every section."""

    stack: Any
    db: Any
    quick: bool = False

    def wipe(self) -> None:
        self.stack.wipe()
