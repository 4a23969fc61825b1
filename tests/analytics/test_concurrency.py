"""Counters under concurrency: racing writers and duplicate logs count exactly once."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

from shared.analytics.counters import count_usage
from shared.analytics.rollups import rollup_day
from shared.atomic import Unit, run_atomically
from tests.analytics.support import brute_force, log_id, make_log, metrics, stored_logs


def _meter(db, log: dict) -> bool:
    """What the metering does: create the log if absent and count it, in one unit."""

    def work(unit: Unit) -> bool:
        ref = db.collection("usage_logs").document(log_id(log))
        if unit.get(ref).exists:
            return False  # a replay: nothing written, nothing counted
        unit.create(ref, log)
        count_usage(unit, log)
        return True

    return run_atomically(db, work)


def test_racing_writers_and_duplicates_count_once(db) -> None:
    rng = random.Random(99)
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    logs = [
        make_log(
            rng, user_id=rng.choice(["hot", "hot", "hot", "cold"]), at=at + timedelta(seconds=i)
        )
        for i in range(60)
    ]
    work = logs + logs[:20] + logs[10:30]  # 40 duplicates racing their originals
    rng.shuffle(work)
    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(lambda log: _meter(db, log), work))
    assert sum(created) == 60
    rollup_day(db, date(2026, 3, 1), now=lambda: at)
    doc = db.collection("profit_aggregates").document("daily_2026_03_01").get().to_dict()
    raw = stored_logs(db)
    assert len(raw) == 60
    assert metrics(doc) == brute_force(raw)
    assert doc["data_completeness_percent"] == 100.0
