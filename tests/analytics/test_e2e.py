"""End to end: real topics, real triggers, real usage-events metering into the rollup."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

from google.cloud import firestore

from tests.analytics.support import brute_force, metrics, stored_logs
from tests.helpers import all_documents, wait_for

ENGINES = ["dalle_3_standard", "seddream_video", "openai_chat_gpt4", "openai_tts"]
PLANS = ["free", "pro", "ultra"]


def _doc(db, path: str):
    snap = db.document(path).get()
    return snap.to_dict() if snap.exists else None


def test_usage_events_are_counted_once_and_rolled_up(demo, stack) -> None:
    db = demo
    rng = random.Random(4)
    for user in ("eu1", "eu2", "eu3"):
        db.collection("users").document(user).set(
            {"email": f"{user}@example.com", "credits_balance": 0}
        )
    start = datetime(2026, 1, 4, tzinfo=UTC)
    events = []
    for i in range(15):
        events.append(
            {
                "request_id": f"e2e-{i}",
                "user_id": rng.choice(["eu1", "eu2", "eu3"]),
                "engine_id": rng.choice(ENGINES),
                "usage_units": rng.choice([1, 2.5, 10]),
                "subscription_plan": rng.choice(PLANS),
                "created_at": (start + timedelta(minutes=97 * i))
                .isoformat()
                .replace("+00:00", "Z"),
            }
        )
    for event in events + events[:4]:  # duplicates change nothing
        stack.publish("usage-events", json.dumps(event).encode())
    wait_for(lambda: len(list(db.collection("usage_logs").stream())) == 15, timeout_s=60)
    stack.publish("cron-daily-rollup", json.dumps({"date": "2026-01-04"}).encode())
    doc = wait_for(lambda: _doc(db, "profit_aggregates/daily_2026_01_04"), timeout_s=60)
    raw = stored_logs(db)
    assert len(raw) == 15
    assert metrics(doc) == brute_force(raw)
    assert doc["data_completeness_percent"] == 100.0


def test_schedule_topics_bad_input_writes_nothing(db, stack) -> None:
    before = all_documents(db)
    for topic, body in (
        ("cron-daily-rollup", b'{"date": "2026-02-30"}'),
        ("cron-daily-rollup", b"not json"),
        ("cron-monthly-rollup", b'{"month": "2026-1"}'),
        ("cron-hourly-loss-scan", b'{"at": "x"}'),
        ("cron-retention", b'{"date": 7}'),
    ):
        stack.publish(topic, body)
    stack.publish("cron-daily-rollup", json.dumps({"date": "2026-01-05"}).encode())
    wait_for(lambda: _doc(db, "profit_aggregates/daily_2026_01_05"), timeout_s=60)
    after = all_documents(db)
    assert set(after) - set(before) == {"profit_aggregates/daily_2026_01_05"}


def test_monthly_schedule_without_a_period_rolls_up_the_month_that_ended(db, stack) -> None:
    stack.publish("cron-monthly-rollup", b"{}")
    now = datetime.now(UTC)
    year, month = (now.year - 1, 12) if now.month == 1 else (now.year, now.month - 1)
    # all_time is written last.
    wait_for(lambda: _doc(db, "profit_aggregates/all_time"), timeout_s=90)
    doc = _doc(db, f"profit_aggregates/monthly_{year}_{month:02d}")
    assert doc["period_type"] == "monthly" and doc["total_generations"] == 0
    assert _doc(db, f"profit_aggregates/yearly_{year}") is not None


def test_cost_and_pricing_changes_are_audited(db) -> None:
    t1 = datetime(2026, 1, 4, 9, tzinfo=UTC)
    engine = db.collection("ai_engine_costs").document("dalle_3_standard")
    engine.set(
        {
            "engine_id": "dalle_3_standard",
            "cost_per_unit": 0.04,
            "updated_by": "admin_a",
            "updated_at": t1,
            "is_active": True,
        }
    )
    engine.update(
        {
            "cost_per_unit": 0.05,
            "updated_by": "admin_b",
            "updated_at": t1 + timedelta(hours=1),
            "notes": "vendor price rise",
        }
    )
    db.collection("plan_pricing").document("pro").set(
        {"default_markup": 2.5, "updated_by": "admin_c", "updated_at": t1, "reason": "launch"}
    )

    def entries(kind: str) -> list[dict]:
        query = db.collection("profit_audit_log").where(
            filter=firestore.FieldFilter("action_type", "==", kind)
        )
        return sorted((s.to_dict() for s in query.stream()), key=lambda e: e["changed_at"])

    costs = wait_for(lambda: (found := entries("cost_updated")) and len(found) == 2 and found)
    assert costs[0]["before_value"] is None and costs[0]["changed_by"] == "admin_a"
    assert costs[1]["before_value"]["cost_per_unit"] == 0.04
    assert costs[1]["after_value"]["cost_per_unit"] == 0.05
    assert costs[1]["changed_by"] == "admin_b" and costs[1]["reason"] == "vendor price rise"
    assert costs[1]["changed_at"] == t1 + timedelta(hours=1)
    assert costs[1]["entity_type"] == "engine" and costs[1]["entity_id"] == "dalle_3_standard"
    pricing = wait_for(lambda: entries("pricing_changed"))
    assert len(pricing) == 1 and pricing[0]["entity_type"] == "plan"
    assert pricing[0]["entity_id"] == "pro" and pricing[0]["changed_by"] == "admin_c"
    assert pricing[0]["reason"] == "launch"
