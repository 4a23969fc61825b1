"""Token history, retention and the Kaiwa rollover on the emulator."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from shared.analytics.retention import run_retention
from shared.analytics.rollover import rollover_month
from shared.analytics.rollups import rollup_day
from shared.analytics.tokens import roll_token_day
from shared.schema_extensions import declared_fields
from tests.analytics.support import make_log, write_logs

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _daily(db, user: str, day: str, tokens: int, user_type: str = "trial") -> None:
    db.collection("daily_token_usage").document(f"{user}_{day}").set(
        {
            "userId": user,
            "date": day,
            "tokensUsed": tokens,
            "tokenLimit": 10_000,
            "userType": user_type,
            "lastUpdated": NOW,
            "resetAt": NOW,
        }
    )


def test_token_history_from_daily_usage(db) -> None:
    _daily(db, "abc", "2024-01-01", 850)
    _daily(db, "abc", "2024-01-02", 1200)
    _daily(db, "abc", "2024-01-04", 2100)
    _daily(db, "abc", "2024-01-05", 1750, "subscribed")
    _daily(db, "other", "2024-01-02", 10)
    for d in (1, 2, 3, 4, 5):
        roll_token_day(db, date(2024, 1, d))
    doc = db.collection("token_usage_history").document("abc_2024_01").get().to_dict()
    expected = {
        "userId": "abc",
        "year": 2024,
        "month": 1,
        "dailyUsage": {"01": 850, "02": 1200, "03": 0, "04": 2100, "05": 1750},
        "totalMonthlyTokens": 5900,
        "averageDailyUsage": 1180.0,
        "peakUsageDate": "04",
        "peakUsageTokens": 2100,
        "userType": "subscribed",
        "createdAt": datetime(2024, 1, 1, tzinfo=UTC),
        "updatedAt": datetime(2024, 1, 5, 23, 59, 59, 999999, tzinfo=UTC),
    }
    assert doc == expected
    # Late tokens on day 2, then a rerun of day 2: the same document with the new figure.
    _daily(db, "abc", "2024-01-02", 1300)
    roll_token_day(db, date(2024, 1, 2))
    roll_token_day(db, date(2024, 1, 2))
    doc = db.collection("token_usage_history").document("abc_2024_01").get().to_dict()
    assert doc["dailyUsage"]["02"] == 1300 and doc["totalMonthlyTokens"] == 6000
    assert doc["userType"] == "subscribed" and doc["updatedAt"] == expected["updatedAt"]
    other = db.collection("token_usage_history").document("other_2024_01").get().to_dict()
    assert other["dailyUsage"] == {"01": 0, "02": 10} and other["averageDailyUsage"] == 5.0


def test_retention_in_bounded_batches_that_resume(db) -> None:
    rng = random.Random(2)
    as_of = datetime(2026, 6, 1, 3, 30, tzinfo=UTC)
    old = [make_log(rng, user_id="u", at=as_of - timedelta(days=91, minutes=i)) for i in range(7)]
    young = [make_log(rng, user_id="u", at=as_of - timedelta(days=89, minutes=i)) for i in range(3)]
    write_logs(db, old + young)
    previews = db.collection("learningPathPreviews")
    previews.document("committed").set(
        {"status": "committed", "expiresAt": as_of + timedelta(hours=5)}
    )
    previews.document("expired").set({"status": "ready", "expiresAt": as_of - timedelta(hours=1)})
    previews.document("live").set({"status": "ready", "expiresAt": as_of + timedelta(hours=1)})
    old_day = (as_of - timedelta(days=40)).date()
    _daily(db, "u", old_day.isoformat(), 5)
    _daily(db, "v", (as_of - timedelta(days=41)).date().isoformat(), 5)  # never rolled up
    _daily(db, "u", (as_of - timedelta(days=2)).date().isoformat(), 5)
    rollup_day(db, old_day, now=lambda: NOW, cascade=False)

    runs = 0
    while True:
        runs += 1
        report = run_retention(db, as_of, max_batches=1, page_size=2)
        if report.complete:
            break
        assert runs < 10
    assert runs >= 4  # 7 old logs, 2 per batch, 1 batch per run
    left = {s.to_dict()["request_id"] for s in db.collection("usage_logs").stream()}
    assert left == {x["request_id"] for x in young}
    assert sorted(s.id for s in previews.stream()) == ["live"]
    days = sorted(s.to_dict()["date"] for s in db.collection("daily_token_usage").stream())
    assert days == [
        (as_of - timedelta(days=41)).date().isoformat(),
        (as_of - timedelta(days=2)).date().isoformat(),
    ]
    # The aggregate of the purged day stays.
    assert db.collection("profit_aggregates").document(f"daily_{old_day:%Y_%m_%d}").get().exists
    state = db.collection("analytics_runs").document("retention").get().to_dict()
    assert state["complete"] is True


def test_kaiwa_rollover_banks_unused_seconds(db) -> None:
    db.collection("tiers").document("plus").set(
        {"monthlySeconds": 3600, "sessionBankingEnabled": True}
    )
    db.collection("tiers").document("free").set(
        {"monthlySeconds": 1800, "sessionBankingEnabled": False}
    )
    db.collection("subscriptions").document("s1").set(
        {"userId": "p", "tierId": "plus", "status": "active"}
    )
    usage = db.collection("userUsage")
    usage.document("p_2024-12").set(
        {
            "userId": "p",
            "period": "2024-12",
            "secondsUsed": 1000,
            "conversationsUsed": 3,
            "realtimeSessionsUsed": 0,
            "bankedSeconds": 200,
            "bankedSecondsUsed": 0,
        }
    )
    usage.document("f_2024-12").set({"userId": "f", "period": "2024-12", "secondsUsed": 100})
    # Usage already metered in the new period must survive the rollover.
    usage.document("p_2025-01").set(
        {"userId": "p", "period": "2025-01", "secondsUsed": 60, "conversationsUsed": 1}
    )
    for _ in range(2):
        report = rollover_month(db, 2024, 12, updated_at=NOW)
    assert report.users == 2 and report.banked_users == 1
    p = usage.document("p_2025-01").get().to_dict()
    assert p["bankedSeconds"] == 2800 and p["secondsUsed"] == 60 and p["conversationsUsed"] == 1
    assert p["bankedSecondsUsed"] == 0 and p["realtimeSessionsUsed"] == 0
    f = usage.document("f_2025-01").get().to_dict()
    assert f == {
        "userId": "f",
        "period": "2025-01",
        "conversationsUsed": 0,
        "secondsUsed": 0,
        "realtimeSessionsUsed": 0,
        "bankedSeconds": 0,
        "bankedSecondsUsed": 0,
        "updatedAt": NOW,
    }
    assert set(f) == declared_fields("userUsage")  # the seed's fields, plus updatedAt
