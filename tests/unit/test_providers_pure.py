"""Pure rules of provider events: the packed history and the replay's window figures."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from shared.providers.core import (
    History,
    Observation,
    Outcome,
    Thresholds,
    admit,
    replay,
    window_stats,
)
from shared.providers.service import (
    history_from_doc,
    history_to_doc,
    pack_observations,
    unpack_observations,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _calls(n: int, seed: int) -> list[Observation]:
    rng = random.Random(seed)
    outcomes = list(Outcome)
    return sorted(
        Observation(
            at=T0 + timedelta(microseconds=rng.randrange(600_000_000)),
            event_id=f"e{i}",
            outcome=rng.choice(outcomes),
            latency_ms=None if rng.random() < 0.1 else rng.random() * 900.0,
            error=None if rng.random() < 0.5 else "x" * rng.randrange(300),
        )
        for i in range(n)
    )


def test_packed_observations_come_back_exactly() -> None:
    calls = [*_calls(300, 1), Observation(at=T0 + timedelta(hours=1), event_id="tick:1")]
    back = unpack_observations(pack_observations(calls))
    assert [o.key for o in back] == [o.key for o in calls]
    assert [o.outcome for o in back] == [o.outcome for o in calls]
    assert [o.latency_ms for o in back] == [o.latency_ms for o in calls]
    assert [o.error for o in back] == [None if o.error is None else o.error[:120] for o in calls]
    assert all(o.at.tzinfo is not None for o in back)


def test_a_history_written_as_maps_before_packing_is_read_the_same() -> None:
    th = Thresholds(history_max=40)
    history = History()
    for obs in _calls(60, 2):
        history = admit("openai", history, obs, th).history
    packed = history_to_doc("openai", history)
    assert isinstance(packed["tail"], str)
    as_maps = dict(
        packed,
        tail=[
            {"id": o.event_id, "at": o.at, "outcome": o.outcome, "latency_ms": o.latency_ms,
             "error": o.error}
            for o in history.tail
        ],
        context=[
            {"id": o.event_id, "at": o.at, "outcome": o.outcome, "latency_ms": o.latency_ms,
             "error": o.error}
            for o in history.context
        ],
    )  # fmt: skip
    assert history_from_doc(as_maps) == history_from_doc(packed) == history


def test_the_replay_window_figures_equal_a_recount_of_the_window() -> None:
    th = Thresholds(window_s=120, window_max_calls=50)
    calls = _calls(400, 3)
    for cut in (1, 37, 200, 400):
        got = replay("openai", History().base, calls[:cut], th).stats
        last = calls[cut - 1].at
        inside = [o for o in calls[:cut] if o.at > last - timedelta(seconds=th.window_s)]
        assert got == window_stats(inside[-th.window_max_calls :])


def test_a_watch_counts_deliveries_in_flight_and_stops_counting() -> None:
    from devstack.server import Watch

    watch = Watch()
    watch.enter()
    watch.enter()
    watch.leave(0.5)
    watch.enter()
    watch.leave(0.25)
    watch.leave(0.25)
    assert watch.peak == 2 and watch.durations == [0.5, 0.25, 0.25]
    watch.stop()
    mean = watch.mean_inflight()
    watch.enter()
    watch.leave(9.0)  # after stop: left out
    assert watch.durations == [0.5, 0.25, 0.25] and watch.mean_inflight() == mean > 0
