"""The hourly loss scan on the emulator: episodes, days not scans, one alert, recovery."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from shared.analytics.loss import scan_losses
from tests.analytics.support import brute_force, make_log, write_log_one_by_one, write_logs

T1 = datetime(2026, 1, 20, 10, 0, tzinfo=UTC)


def _audits(db) -> list[dict]:
    return [s.to_dict() for s in db.collection("profit_audit_log").stream()]


def test_loss_episode_lifecycle(db) -> None:
    rng = random.Random(11)
    db.collection("users").document("loser").set({"email": "loser@example.com"})
    losing = [
        make_log(
            rng,
            user_id="loser",
            at=T1 - timedelta(days=d, hours=1),
            plan="free",
            engine="seddream_video",
        )
        for d in range(0, 40, 3)
    ]
    winning = [
        make_log(
            rng,
            user_id="winner",
            at=T1 - timedelta(days=d, hours=1),
            plan="pro",
            engine="dalle_3_standard",
        )
        for d in range(0, 20, 2)
    ]
    write_logs(db, losing + winning)

    report = scan_losses(db, T1)
    assert report.in_loss == ["loser"] and report.detected == ["loser"]
    doc = db.collection("loss_users").document("loser").get().to_dict()
    window = [x for x in losing if x["created_at"].date() >= (T1 - timedelta(days=29)).date()]
    expected = brute_force(window)
    assert doc["user_id"] == "loser" and doc["email"] == "loser@example.com"
    assert doc["subscription_plan"] == "free"
    assert doc["total_cost_usd"] == expected["total_cost_usd"]
    assert doc["total_revenue_usd"] == 0.0
    assert doc["total_profit_usd"] == expected["total_profit_usd"] < 0
    assert doc["profit_margin_percent"] == -100.0
    assert doc["total_generations"] == len(window)
    assert doc["most_used_engine"] == doc["most_expensive_engine"] == "seddream_video"
    assert doc["detected_at"] == doc["last_checked_at"] == doc["alert_sent_at"] == T1
    assert doc["days_in_loss"] == 1 and doc["alert_sent"] is True
    audits = _audits(db)
    assert len(audits) == 1 and audits[0]["action_type"] == "loss_detected"
    assert audits[0]["entity_type"] == "user" and audits[0]["entity_id"] == "loser"

    # 24 more hourly scans: still one day later at most two days, one alert, one audit entry.
    db.collection("loss_users").document("loser").update({"action_taken": "monitored"})
    for hour in range(1, 25):
        scan_losses(db, T1 + timedelta(hours=hour))
    doc = db.collection("loss_users").document("loser").get().to_dict()
    assert doc["days_in_loss"] == 2  # Jan 20 and Jan 21, not 25 scans
    assert doc["detected_at"] == T1 and doc["alert_sent_at"] == T1
    assert doc["action_taken"] == "monitored"
    assert len(_audits(db)) == 1
    # A rerun of the same hour is identical.
    scan_losses(db, T1 + timedelta(hours=24))
    assert db.collection("loss_users").document("loser").get().to_dict() == doc

    # Recovery: profitable usage brings the 30-day profit above zero.
    big = make_log(
        rng, user_id="loser", at=T1 + timedelta(hours=25), plan="pro", engine="dalle_3_standard"
    )
    big["revenue_estimated_usd"] = 100000.0
    write_log_one_by_one(db, big)
    report = scan_losses(db, T1 + timedelta(hours=26))
    assert report.recovered == ["loser"]
    assert not db.collection("loss_users").document("loser").get().exists
    assert len(_audits(db)) == 1


def test_no_usage_no_loss_users(db) -> None:
    report = scan_losses(db, T1)
    assert report.in_loss == [] and report.users_scanned == 0
    assert list(db.collection("loss_users").stream()) == []
