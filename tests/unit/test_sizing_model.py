"""The load model and the path patterns of bench/ (pure functions, no emulator)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from bench.model import Load, Profile, hottest, per_user_threshold, scope_of, zipf_top_share
from bench.profile import pattern, usd_per_million


def test_patterns_name_subjects_ids_and_numbers() -> None:
    subjects = {"u-7": "{user}", "req-1": "{event}", "2026-12-01": "{day}", "2026": "{year}"}
    assert pattern("usage_user_days/2026-12-01_u-7", subjects) == "usage_user_days/{day}_{user}"
    assert pattern("usage_user_periods/2026_u-7", subjects) == "usage_user_periods/{year}_{user}"
    assert pattern("usage_day_shards/2026-12-01_0517", subjects) == "usage_day_shards/{day}_{n}"
    tx = "6f1c2a3e-8d4b-5e7f-9a0b-1c2d3e4f5a6b"
    assert pattern(f"credit_transactions/{tx}", subjects) == "credit_transactions/{id}"
    assert pattern("audit_logs/AbCdEfGhIjKlMnOpQrSt", subjects) == "audit_logs/{id}"
    digest = hashlib.sha256(b"u-7").hexdigest()[:32]
    assert pattern(f"rate_limits/user_{digest}_29412345", subjects) == "rate_limits/user_{user}_{n}"
    assert pattern("promo_counters/p1/users/u-7", {"p1": "{promo}", "u-7": "{user}"}) == (
        "promo_counters/{promo}/users/{user}"
    )


def test_scopes() -> None:
    assert scope_of("users/{user}") == "user"
    assert scope_of("rate_limits/ip_{ip}_{n}") == "user"
    assert scope_of("provider_event_windows/{provider}") == "provider"
    assert scope_of("promotions/{promo}") == "promotion"
    assert scope_of("usage_logs/{event}") == "event"
    assert scope_of("usage_day_shards/{day}_{n}") == "app"


def test_zipf_top_share() -> None:
    assert zipf_top_share(1) == 1.0
    assert zipf_top_share(5) == pytest.approx(1 / (1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5))
    assert zipf_top_share(100_000) == pytest.approx(0.0827, abs=1e-4)


def test_hottest_documents_by_scope_and_fanout() -> None:
    usage = Profile(
        "usage",
        reads=7,
        writes=4,
        patterns={
            "users/{user}": 1,
            "usage_logs/{event}": 1,
            "usage_day_shards/{day}_{n}": 1,
            "totals/all": 1,
        },
    )
    loads = [Load("usage", 1000.0, users=100_000)]
    docs = {
        d.pattern: d for d in hottest({"usage": usage}, loads, {"usage_day_shards/{day}_{n}": 1024})
    }
    assert docs["totals/all"].writes_per_s == 1000.0 and docs["totals/all"].over_budget
    assert docs["usage_day_shards/{day}_{n}"].writes_per_s == pytest.approx(1000 / 1024)
    assert not docs["usage_day_shards/{day}_{n}"].over_budget
    assert docs["users/{user}"].writes_per_s == pytest.approx(1000 * zipf_top_share(100_000))
    assert not docs["users/{user}"].app_wide
    assert docs["usage_logs/{event}"].writes_per_s == 0.0
    assert per_user_threshold(usage) == 1.0


def test_price_per_million() -> None:
    # us-central1 list prices: $0.03 / $0.09 / $0.01 per 100,000 reads / writes / deletes
    assert usd_per_million(1, 0) == pytest.approx(0.30)
    assert usd_per_million(0, 1) == pytest.approx(0.90)
    assert usd_per_million(7, 10, 1) == pytest.approx(2.1 + 9.0 + 0.1)


class _WipeFailsOnce:
    """A stack whose first wipe times out, as an emulator can after a heavy section."""

    def __init__(self) -> None:
        self.wipes = 0

    def wipe(self) -> None:
        self.wipes += 1
        if self.wipes == 1:
            raise TimeoutError("emulator reset timed out")


def test_a_failing_wipe_fails_its_section_only() -> None:
    from bench.__main__ import run_sections
    from bench.common import BenchContext, Result, result

    stack = _WipeFailsOnce()
    ctx = BenchContext(stack=stack, db=None)

    def section(name: str) -> Callable[[BenchContext], list[Result]]:
        return lambda _ctx: [result(f"{name} figure", 1.0, "ops/s")]

    results, failed = run_sections(
        ctx, [("first", section("first")), ("second", section("second"))]
    )
    assert failed == ["first"]
    assert [(section, r.name) for section, r in results] == [("second", "second figure")]
    assert stack.wipes == 2


def test_a_partial_run_replaces_every_row_of_the_sections_it_ran() -> None:
    from bench.__main__ import merge_rows

    previous = [
        {"name": "gone figure", "section": "sizing"},
        {"name": "kept figure", "section": "sizing"},
        {"name": "ledger figure", "section": "ledger"},
        {"name": "old unlabelled", "value": 1},
        {"name": "kept figure", "value": 2},
    ]
    fresh = [{"name": "kept figure", "section": "sizing", "value": 3}]
    merged = merge_rows(previous, fresh, ["sizing"])
    assert merged == [
        {"name": "ledger figure", "section": "ledger"},
        {"name": "old unlabelled", "value": 1},
        {"name": "kept figure", "section": "sizing", "value": 3},
    ]
    # A section that failed keeps its earlier rows.
    assert {"name": "gone figure", "section": "sizing"} in merge_rows(previous, [], [])
