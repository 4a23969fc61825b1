"""Events of one provider arriving together commit as one group, with the state of one by one."""

from __future__ import annotations

import threading

from bench.profile import recording
from devstack.demo import providers as demo
from shared.providers.service import ProviderEvent, record_event
from shared.settings import override_settings
from tests.providers.test_emulator import NOW, event, markers, provider_state


def _events() -> list[ProviderEvent]:
    bodies = [event(i, "failure" if i % 4 == 0 else "success") for i in range(12)]
    return [ProviderEvent.model_validate(b) for b in bodies + bodies[:3]]  # 3 duplicates


def test_a_group_commits_once_and_leaves_the_state_of_one_event_at_a_time(db, stack) -> None:
    demo.seed(db, NOW)
    for e in _events():
        record_event(db, e, now=NOW)
    one_by_one = provider_state(db, "openai")
    assert markers(db) == 12

    stack.wipe_quiet()
    demo.seed(db, NOW)
    events = _events()
    results: list[object] = [None] * len(events)
    start = threading.Barrier(len(events))

    def deliver(k: int) -> None:
        start.wait()
        results[k] = record_event(db, events[k], now=NOW)

    with override_settings(provider_group_linger_ms=300), recording() as recorder:
        recorder.take()
        threads = [threading.Thread(target=deliver, args=(k,)) for k in range(len(events))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        tally = recorder.take()
    assert all(r is not None for r in results)
    assert sum(r.duplicate for r in results) == 3  # type: ignore[attr-defined]
    assert markers(db) == 12
    # The leader waited 300 ms: one group (two if a thread was late), not one per event.
    assert tally.units <= 2 and tally.commits == tally.units
    assert tally.written["provider_event_windows/openai"] == tally.units
    assert provider_state(db, "openai") == one_by_one
