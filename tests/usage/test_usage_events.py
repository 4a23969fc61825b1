"""usage-events through the real wiring: Pub/Sub emulator push to the served function."""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest
from google.cloud import firestore

from devstack.demo.usage import ENGINES, PLANS
from shared import atomic
from shared.schema_extensions import declared_fields
from shared.settings import override_settings
from shared.usage.pricing import usage_log_id
from tests.helpers import all_documents, triggers_settled, wait_for
from tests.usage.conftest import make_user, settled
from tests.usage.events import push, usage_message

EVENT_TIME = "2026-01-04T10:00:00Z"


def _log(db: Any, request_id: str) -> dict[str, Any] | None:
    snap = db.collection("usage_logs").document(usage_log_id(request_id)).get()
    return snap.to_dict() if snap.exists else None


def _balance(db: Any, user_id: str) -> int:
    return int(db.collection("users").document(user_id).get().get("credits_balance"))


def _transactions(db: Any, user_id: str) -> list[dict[str, Any]]:
    query = db.collection("credit_transactions").where(
        filter=firestore.FieldFilter("user_id", "==", user_id)
    )
    return [s.to_dict() for s in query.stream()]


def test_published_event_becomes_log_deduction_and_counters(usage_db, stack) -> None:
    db = usage_db
    make_user(db, "u1", credits=100, tier="PRO")
    body = {
        "request_id": "gen-7f3a",
        "user_id": "u1",
        "engine_id": "openai_chat_gpt4",
        "usage_units": 2.5,
        "credits_used": 5,
        "tokens": 2500,
        "created_at": EVENT_TIME,
        "conversation_seconds": 30,
        "request_meta": {"country_code": "TH", "device_type": "web", "generation_time_ms": 812},
    }
    stack.publish("usage-events", json.dumps(body).encode())
    log = wait_for(lambda: _log(db, "gen-7f3a"))
    # pro prices openai_chat_gpt4 at 0.06 / 1k tokens: 2.5 * 0.06 = 0.15; cost 2.5 * 0.03.
    assert log["real_cost_usd"] == 0.075
    assert log["revenue_estimated_usd"] == 0.15
    assert log["profit_usd"] == 0.075
    assert log["profit_margin_percent"] == 50.0
    assert log["pricing_source"] == "plan_override"
    assert log["subscription_plan"] == "pro"
    assert log["ai_type"] == "chat"
    assert log["usage_units"] == 2.5
    assert log["credits_used"] == 5 and log["credits_deducted"] == 5
    assert log["credits_shortfall"] == 0
    assert log["created_at"] == datetime(2026, 1, 4, 10, tzinfo=UTC)
    assert set(log) == declared_fields("usage_logs")  # the seed's fields, plus declared ones
    assert (log["country_code"], log["device_type"], log["generation_time_ms"]) == (
        "TH",
        "web",
        812,
    )
    assert _balance(db, "u1") == 95
    deductions = [t for t in _transactions(db, "u1") if t["type"] == "DEDUCTION"]
    assert len(deductions) == 1 and deductions[0]["amount"] == -5
    assert log["transaction_id"]
    daily = db.collection("daily_token_usage").document("u1_2026-01-04").get().to_dict()
    assert daily["userId"] == "u1" and daily["date"] == "2026-01-04"
    assert daily["tokensUsed"] == 2500
    assert daily["tokenLimit"] == 200_000 and daily["userType"] == "subscribed"
    assert daily["resetAt"] == datetime(2026, 1, 5, tzinfo=UTC)
    assert isinstance(daily["lastUpdated"], datetime)
    monthly = db.collection("userUsage").document("u1_2026-01").get().to_dict()
    assert set(monthly) == declared_fields("userUsage")  # the seed's fields, plus updatedAt
    assert monthly["period"] == "2026-01"
    assert (
        monthly["conversationsUsed"],
        monthly["secondsUsed"],
        monthly["realtimeSessionsUsed"],
    ) == (1, 30, 0)


def test_engine_default_and_free_plan_margin(usage_db, stack) -> None:
    db = usage_db
    make_user(db, "u2")  # no tier: the free plan
    status = push(
        stack,
        "usage-events",
        usage_message(
            request_id="g-free",
            user_id="u2",
            engine_id="dalle_3_standard",
            usage_units=3,
            created_at=EVENT_TIME,
            tokens=10,
        ),
    )
    assert 200 <= status < 300
    log = _log(db, "g-free")  # the push returns once the message is handled
    assert log is not None
    assert (log["real_cost_usd"], log["revenue_estimated_usd"], log["profit_usd"]) == (
        0.12,
        0.0,
        -0.12,
    )
    assert log["profit_margin_percent"] == -100.0 and log["pricing_source"] == "engine_default"
    assert log["subscription_plan"] == "free"
    daily = db.collection("daily_token_usage").document("u2_2026-01-04").get().to_dict()
    assert (daily["userType"], daily["tokenLimit"]) == ("trial", 10_000)
    make_user(db, "u3")
    push(
        stack,
        "usage-events",
        usage_message(
            request_id="g-ultra",
            user_id="u3",
            engine_id="seddream_video",
            usage_units=2.5,
            subscription_plan="ULTRA",
            created_at=EVENT_TIME,
        ),
    )
    log = wait_for(lambda: _log(db, "g-ultra"))
    # ultra overrides seddream_video at 0.20/s: revenue 0.5, cost 0.3, margin 40 %.
    assert (
        log["real_cost_usd"],
        log["revenue_estimated_usd"],
        log["profit_usd"],
        log["profit_margin_percent"],
        log["pricing_source"],
    ) == (0.3, 0.5, 0.2, 40.0, "plan_override")


def test_shortfall_takes_balance_to_zero_and_is_recorded(usage_db, stack) -> None:
    db = usage_db
    make_user(db, "poor", credits=3)
    status = push(
        stack,
        "usage-events",
        usage_message(
            request_id="g-short",
            user_id="poor",
            engine_id="dalle_3_hd",
            usage_units=1,
            credits_used=5,
            created_at=EVENT_TIME,
        ),
    )
    assert 200 <= status < 300
    log = _log(db, "g-short")
    assert log is not None
    assert (log["credits_used"], log["credits_deducted"], log["credits_shortfall"]) == (5, 3, 2)
    assert _balance(db, "poor") == 0
    deduction = next(t for t in _transactions(db, "poor") if t["type"] == "DEDUCTION")
    assert deduction["amount"] == -3 and deduction["balance_after"] == 0
    assert "2 credits not covered" in deduction["description"]


@pytest.mark.parametrize("age", ["old", "recent"])
def test_duplicates_sequential_and_racing_change_nothing(usage_db, stack, age) -> None:
    """An old event (more than 30 days at receipt) has a receipt as its once-only record;
    a recent one only its log, which a racing duplicate's create fails on all the same."""
    db = usage_db
    make_user(db, "dup", credits=1000, tier="pro")
    if age == "old":
        created = datetime(2026, 1, 4, 10, tzinfo=UTC)
    else:
        created = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    created_at = created.isoformat().replace("+00:00", "Z")
    data = usage_message(
        request_id="g-dup",
        user_id="dup",
        engine_id="dalle_3_standard",
        usage_units=1,
        credits_used=7,
        tokens=100,
        conversation_seconds=5,
        created_at=created_at,
    )
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(push(stack, "usage-events", data)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(200 <= s < 300 for s in statuses), statuses
    for _ in range(2):
        stack.publish("usage-events", data)
    before = settled(db, stack)  # both published copies acknowledged
    assert len([p for p in before if p.startswith("usage_logs/")]) == 1
    assert _balance(db, "dup") == 993
    assert len([t for t in _transactions(db, "dup") if t["type"] == "DEDUCTION"]) == 1
    assert before[f"daily_token_usage/dup_{created:%Y-%m-%d}"]["tokensUsed"] == 100
    assert before[f"userUsage/dup_{created:%Y-%m}"]["secondsUsed"] == 5
    assert before[f"usage_user_periods/{created:%Y-%m}_dup"]["n"] == 1
    receipts = [p for p in before if p.startswith("usage_receipts/")]
    assert receipts == ([f"usage_receipts/{usage_log_id('g-dup')}"] if age == "old" else [])
    # The same request id with other content is refused, acknowledged, and writes nothing.
    other = usage_message(
        request_id="g-dup",
        user_id="dup",
        engine_id="dalle_3_standard",
        usage_units=2,
        credits_used=7,
        created_at=created_at,
    )
    assert 200 <= push(stack, "usage-events", other) < 300
    assert all_documents(db) == before


def test_concurrent_distinct_events_on_one_user_are_exact(usage_db, stack) -> None:
    db = usage_db
    make_user(db, "busy", credits=10_000, tier="pro")
    n = 24
    errors: list[int] = []

    def send(i: int) -> None:
        status = push(
            stack,
            "usage-events",
            usage_message(
                request_id=f"busy-{i}",
                user_id="busy",
                engine_id="openai_chat_gpt4",
                usage_units=1,
                credits_used=3,
                tokens=50,
                created_at=EVENT_TIME,
            ),
        )
        if not 200 <= status < 300:
            errors.append(status)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _balance(db, "busy") == 10_000 - 3 * n
    txs = _transactions(db, "busy")
    assert sum(t["amount"] for t in txs) == _balance(db, "busy")
    daily = db.collection("daily_token_usage").document("busy_2026-01-04").get().to_dict()
    assert daily["tokensUsed"] == 50 * n
    assert len(list(db.collection("usage_logs").stream())) == n


def _expected(units: Fraction, cost: Fraction, plan: str, engine_id: str) -> tuple[Fraction, ...]:
    """An independent recomputation with exact fractions (half-up to 1e-6 / 1e-2)."""

    def round_to(value: Fraction, places: int) -> Fraction:
        scale = 10**places
        scaled = value * scale
        sign = -1 if scaled < 0 else 1
        whole = int(abs(scaled) + Fraction(1, 2))
        return Fraction(sign * whole, scale)

    _, markup, prices = PLANS[plan]
    c = round_to(units * cost, 6)
    if engine_id in prices:
        rev = round_to(units * Fraction(str(prices[engine_id])), 6)
    else:
        rev = round_to(units * cost * Fraction(str(markup)), 6)
    profit = rev - c
    margin = (
        round_to(profit / rev * 100, 2) if rev else (Fraction(0) if profit == 0 else Fraction(-100))
    )
    return c, rev, profit, margin


def test_randomized_batch_matches_an_independent_recomputation(usage_db, stack) -> None:
    db = usage_db
    rng = random.Random(20260104)
    plans = ["free", "pro", "ultra", "payg"]
    for plan in plans:
        make_user(db, f"r-{plan}")
    sent = []
    for i in range(40):
        plan = rng.choice(plans)
        engine_id = rng.choice(sorted(ENGINES))
        units = Fraction(rng.randint(1, 5000), rng.choice([1, 10, 100, 1000]))
        sent.append((f"rand-{i}", plan, engine_id, units))
        body = {
            "request_id": f"rand-{i}",
            "user_id": f"r-{plan}",
            "engine_id": engine_id,
            "usage_units": float(units),
            "subscription_plan": plan,
            "created_at": EVENT_TIME,
        }
        stack.publish("usage-events", json.dumps(body).encode())
    wait_for(lambda: len(list(db.collection("usage_logs").stream())) == len(sent), timeout_s=60)
    for request_id, plan, engine_id, units in sent:
        log = _log(db, request_id)
        assert log is not None
        cost = Fraction(str(ENGINES[engine_id][2]))
        c, rev, profit, margin = _expected(units, cost, plan, engine_id)
        assert Fraction(str(log["real_cost_usd"])) == c, request_id
        assert Fraction(str(log["revenue_estimated_usd"])) == rev, request_id
        assert Fraction(str(log["profit_usd"])) == profit, request_id
        assert Fraction(str(log["profit_margin_percent"])) == margin, request_id


INVALID: list[bytes] = [
    b"not json at all",
    b"\xff\xfe",
    b"[1, 2]",
    json.dumps({"user_id": "ok", "engine_id": "dalle_3_standard", "usage_units": 1}).encode(),
    json.dumps({"request_id": "i1", "engine_id": "dalle_3_standard", "usage_units": 1}).encode(),
    json.dumps({"request_id": "i2", "user_id": "ok", "usage_units": 1}).encode(),
    json.dumps({"request_id": "i3", "user_id": "ok", "engine_id": "dalle_3_standard"}).encode(),
    json.dumps(
        {"request_id": "i4", "user_id": "ok", "engine_id": "dalle_3_standard", "usage_units": 0}
    ).encode(),
    json.dumps(
        {"request_id": "i5", "user_id": "ok", "engine_id": "dalle_3_standard", "usage_units": -2}
    ).encode(),
    json.dumps(
        {"request_id": "i6", "user_id": "ok", "engine_id": "no_such_engine", "usage_units": 1}
    ).encode(),
    json.dumps(
        {"request_id": "i7", "user_id": "ok", "engine_id": "dalle_3_standard", "usage_units": "1"}
    ).encode(),
    json.dumps(
        {
            "request_id": "i8",
            "user_id": "ok",
            "engine_id": "dalle_3_standard",
            "usage_units": 1,
            "credits_used": "5",
        }
    ).encode(),
    json.dumps(
        {
            "request_id": "i9",
            "user_id": "ok",
            "engine_id": "dalle_3_standard",
            "usage_units": 1,
            "tokens": 1.5,
        }
    ).encode(),
    json.dumps(
        {"request_id": "i10", "user_id": "ghost", "engine_id": "dalle_3_standard", "usage_units": 1}
    ).encode(),
    json.dumps(
        {
            "request_id": "i11",
            "user_id": "ok",
            "engine_id": "dalle_3_standard",
            "usage_units": 1,
            "subscription_plan": "no_such_plan",
        }
    ).encode(),
    json.dumps(
        {"request_id": "i12", "user_id": "ok", "engine_id": "retired", "usage_units": 1}
    ).encode(),
    json.dumps(
        {
            "request_id": "i13",
            "user_id": "ok",
            "engine_id": "dalle_3_standard",
            "usage_units": 1,
            "created_at": "2999-01-01T00:00:00Z",
        }
    ).encode(),
]


def test_invalid_messages_are_acknowledged_and_write_nothing(usage_db, stack) -> None:
    db = usage_db
    make_user(db, "ok", credits=50)
    retired = {
        "engine_id": "retired",
        "provider_name": "X",
        "ai_type": "image",
        "cost_per_unit": 0.5,
        "unit_type": "image",
        "is_active": False,
        "updated_at": datetime(2025, 1, 1, tzinfo=UTC),
        "updated_by": "admin_uid",
    }
    with triggers_settled(stack):  # its cost history and audit written
        db.collection("ai_engine_costs").document("retired").set(retired)
    before = settled(db, stack)
    for data in INVALID:
        status = push(stack, "usage-events", data)
        assert 200 <= status < 300, (data, status)  # acknowledged: never redelivered
    assert all_documents(db) == before
    for data in INVALID[:3]:
        stack.publish("usage-events", data)
    # A valid message published after them is processed; the invalid ones left no trace.
    stack.publish(
        "usage-events",
        usage_message(
            request_id="after",
            user_id="ok",
            engine_id="dalle_3_standard",
            usage_units=1,
            created_at=EVENT_TIME,
        ),
    )
    wait_for(lambda: _log(db, "after"))
    after = settled(db, stack)  # the invalid ones acknowledged too, not just "after"
    added = {p for p in after if p not in before}
    assert {p for p in added if p.startswith(("usage_logs/", "usage_receipts/"))} == {
        f"usage_logs/{usage_log_id('after')}",
        f"usage_receipts/{usage_log_id('after')}",
    }
    # Besides the log and its receipt, only the analytics counters of that one log appeared.
    counters = ("usage_user_days/", "usage_user_periods/", "usage_day_shards/")
    assert all(
        p.startswith(counters)
        for p in added
        if not p.startswith(("usage_logs/", "usage_receipts/"))
    )
    assert {p: after[p] for p in before} == before


def test_cost_changed_later_is_not_applied_retroactively(usage_db, stack) -> None:
    db = usage_db
    make_user(db, "hist", tier="pro")
    ref = db.collection("ai_engine_costs").document("seddream_video")
    ref.update({"cost_per_unit": 0.15, "updated_at": datetime(2026, 1, 10, tzinfo=UTC)})
    wait_for(
        lambda: (
            len(
                list(
                    db.collection("ai_engine_cost_history")
                    .where(filter=firestore.FieldFilter("engine_id", "==", "seddream_video"))
                    .stream()
                )
            )
            == 2
        )
    )
    for request_id, when in (
        ("before-change", EVENT_TIME),
        ("after-change", "2026-01-11T00:00:00Z"),
    ):
        push(
            stack,
            "usage-events",
            usage_message(
                request_id=request_id,
                user_id="hist",
                engine_id="seddream_video",
                usage_units=10,
                subscription_plan="free",
                created_at=when,
            ),
        )
    assert _log(db, "before-change")["real_cost_usd"] == 1.2
    assert _log(db, "after-change")["real_cost_usd"] == 1.5
    assert _log(db, "after-change")["cost_per_unit_usd"] == 0.15


def test_tokens_across_midnight_in_the_configured_zone(usage_db, stack) -> None:
    db = usage_db
    make_user(db, "night")
    for request_id, when in (("n1", "2026-01-04T23:59:59Z"), ("n2", "2026-01-05T00:00:00Z")):
        push(
            stack,
            "usage-events",
            usage_message(
                request_id=request_id,
                user_id="night",
                engine_id="openai_chat_gpt4",
                usage_units=1,
                tokens=100,
                created_at=when,
            ),
        )
    days = db.collection("daily_token_usage")
    assert days.document("night_2026-01-04").get().get("tokensUsed") == 100
    assert days.document("night_2026-01-05").get().get("resetAt") == datetime(
        2026, 1, 6, tzinfo=UTC
    )
    with override_settings(token_day_timezone="Asia/Bangkok"):
        push(
            stack,
            "usage-events",
            usage_message(
                request_id="n3",
                user_id="night",
                engine_id="openai_chat_gpt4",
                usage_units=1,
                tokens=7,
                created_at="2026-01-05T16:59:59Z",
            ),
        )
        push(
            stack,
            "usage-events",
            usage_message(
                request_id="n4",
                user_id="night",
                engine_id="openai_chat_gpt4",
                usage_units=1,
                tokens=9,
                created_at="2026-01-05T17:00:00Z",
            ),
        )
    assert days.document("night_2026-01-05").get().get("tokensUsed") == 107
    six = days.document("night_2026-01-06").get().to_dict()
    assert six["tokensUsed"] == 9
    assert six["resetAt"] == datetime(2026, 1, 6, 17, tzinfo=UTC)


def test_monthly_usage_per_conversation_across_month_end(usage_db, stack) -> None:
    db = usage_db
    make_user(db, "kaiwa")
    sends = [
        ("k1", "2026-01-31T23:59:59Z", "c1", "realtime", 60),
        ("k2", "2026-01-31T23:59:59Z", "c1", "realtime", 40),  # same conversation
        ("k3", "2026-02-01T00:00:00Z", "c1", "realtime", 20),  # continues into February
        ("k4", "2026-02-01T00:00:01Z", "c2", "traditional", 10),
    ]
    for request_id, when, conversation, mode, seconds in sends:
        assert (
            200
            <= push(
                stack,
                "usage-events",
                usage_message(
                    request_id=request_id,
                    user_id="kaiwa",
                    engine_id="openai_tts",
                    usage_units=1,
                    created_at=when,
                    conversation_id=conversation,
                    conversation_mode=mode,
                    conversation_seconds=seconds,
                ),
            )
            < 300
        )
    usage = db.collection("userUsage")
    jan = usage.document("kaiwa_2026-01").get().to_dict()
    feb = usage.document("kaiwa_2026-02").get().to_dict()
    assert (jan["conversationsUsed"], jan["secondsUsed"], jan["realtimeSessionsUsed"]) == (
        1,
        100,
        1,
    )
    assert (feb["conversationsUsed"], feb["secondsUsed"], feb["realtimeSessionsUsed"]) == (2, 30, 1)


@pytest.mark.parametrize("profile", ["bigeye"])
def test_deduction_under_another_profile(usage_db, stack, profile) -> None:
    db = usage_db
    db.collection("users").document("be").set(
        {"email": "be@example.com", "credits": 0, "tier": "standard"}
    )
    from shared.ledger import Kind, ledger_for

    with override_settings(schema_profile=profile):
        ledger = ledger_for()
        ledger.run(
            lambda u: ledger.credit(
                u, user_id="be", kind=Kind.TOPUP, amount=20, key="seed:be", description="Top-up"
            )
        )
        push(
            stack,
            "usage-events",
            usage_message(
                request_id="be-1",
                user_id="be",
                engine_id="dalle_3_standard",
                usage_units=1,
                credits_used=4,
                created_at=EVENT_TIME,
            ),
        )
    assert db.collection("users").document("be").get().get("credits") == 16
    txs = [s.to_dict() for s in db.collection("transactions").stream()]
    reserve = [t for t in txs if t["type"] == "RESERVE"]
    assert len(reserve) == 1 and reserve[0]["amount"] == -4 and reserve[0]["reference_id"] == "be-1"
    assert _log(db, "be-1")["subscription_plan"] == "standard"


def test_published_messages_without_time_use_publish_time(usage_db, stack) -> None:
    db = usage_db
    make_user(db, "now")
    stack.publish(
        "usage-events",
        usage_message(
            request_id="no-time", user_id="now", engine_id="dalle_3_standard", usage_units=1
        ),
    )
    log = wait_for(lambda: _log(db, "no-time"))
    assert abs(log["created_at"] - datetime.now(UTC)) < timedelta(minutes=1)


def test_transient_contention_is_retried_not_acknowledged(usage_db, stack) -> None:
    """A unit that loses its commit to another writer more often than it may retry answers
    5xx, so Pub/Sub redelivers; the redelivery meters the event exactly once."""
    db = usage_db
    make_user(db, "hot", credits=1_000, tier="pro")
    user = db.collection("users").document("hot")
    bodies = [
        usage_message(
            request_id=f"hot-{i}",
            user_id="hot",
            engine_id="dalle_3_standard",
            usage_units=1,
            credits_used=2,
            tokens=10,
            created_at=EVENT_TIME,
        )
        for i in range(3)
    ]
    contend = {"on": False}

    def another_writer(stage: str) -> None:
        # Another writer moves the user document between this unit's read and its commit.
        if stage == "before_commit" and contend["on"]:
            user.update({"updated_at": firestore.SERVER_TIMESTAMP})

    atomic.fault_hook = another_writer
    try:
        with override_settings(ledger_max_attempts=1):
            for body in bodies:
                contend["on"] = True
                assert push(stack, "usage-events", body) >= 500  # not acknowledged
                contend["on"] = False
                assert 200 <= push(stack, "usage-events", body) < 300  # the redelivery
                assert 200 <= push(stack, "usage-events", body) < 300  # and a duplicate
    finally:
        atomic.fault_hook = None
    assert _balance(db, "hot") == 1_000 - 2 * len(bodies)
    assert len(list(db.collection("usage_logs").stream())) == len(bodies)
    daily = db.collection("daily_token_usage").document("hot_2026-01-04").get().to_dict()
    assert daily["tokensUsed"] == 10 * len(bodies)


def test_the_once_only_record_outlives_the_log_of_an_old_event(usage_db, stack) -> None:
    """An event dated 95 days ago writes a log that is already past its TTL; once TTL has
    deleted it, a redelivery is still recognised and meters nothing again."""
    db = usage_db
    make_user(db, "late", credits=100, tier="pro")
    created = datetime.now(UTC) - timedelta(days=95)
    body = usage_message(
        request_id="late-1",
        user_id="late",
        engine_id="dalle_3_standard",
        usage_units=1,
        credits_used=5,
        tokens=100,
        created_at=created.isoformat().replace("+00:00", "Z"),
    )
    assert 200 <= push(stack, "usage-events", body) < 300
    day = f"daily_token_usage/late_{created.date().isoformat()}"
    assert db.document(day).get().get("tokensUsed") == 100
    log_ref = db.collection("usage_logs").document(usage_log_id("late-1"))
    assert log_ref.get().get("expires_at") < datetime.now(UTC)
    log_ref.delete()  # what the TTL policy does to an expired log
    assert 200 <= push(stack, "usage-events", body) < 300  # Pub/Sub redelivers
    assert db.document(day).get().get("tokensUsed") == 100
    assert _balance(db, "late") == 95
    assert not log_ref.get().exists
    # The once-only record lives from its receipt, past any redelivery (31 days at most).
    receipt = db.collection("usage_receipts").document(usage_log_id("late-1")).get()
    assert receipt.get("expires_at") > datetime.now(UTC) + timedelta(days=31)
