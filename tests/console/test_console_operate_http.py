"""The console's loss users, providers, promotions and settings, and the Users page's holds,
reconcile and BigEye account actions, over real HTTP, each checked in Firestore."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.console import seed
from tests.helpers import all_documents


def signed_in(stack: Any) -> tuple[httpx.Client, str]:
    c = httpx.Client(base_url=f"{stack.base_url}/admin-console", timeout=30)
    assert c.post("/login/dev", data={"email": "ops@example.com"}).status_code == 303
    found = re.search(r'name="csrf"\s+value="([^"]+)"', c.get("/users").text)
    assert found
    return c, found.group(1)


def actions(db: Any, name: str) -> list[dict[str, Any]]:
    return [
        d
        for p, d in all_documents(db).items()
        if p.startswith("admin_actions/") and d.get("action") == name
    ]


def test_loss_actions_and_provider_alerts(db: Any, stack: Any) -> None:
    seed.loss_user(db)
    alerts = seed.provider_outage(db)
    assert alerts, "the outage raised no alert"
    c, csrf = signed_in(stack)

    page = c.get("/loss")
    assert page.status_code == 200 and seed.LOSS_USER in page.text and ">4<" in page.text
    form = {"csrf": csrf, "user_id": seed.LOSS_USER, "reason": "burning GPT-4 on free"}
    before = all_documents(db)
    bad = c.post("/loss/action", data={**form, "action": "banned"})
    assert bad.status_code == 400 and "action must be one of" in bad.text
    ghost = c.post("/loss/action", data={**form, "user_id": "nobody", "action": "monitored"})
    assert ghost.status_code == 404 and "not in loss_users" in ghost.text
    assert all_documents(db) == before
    done = c.post("/loss/action", data={**form, "action": "rate_limited"})
    assert done.status_code == 200 and "action_taken rate_limited" in done.text
    entry = db.collection("loss_users").document(seed.LOSS_USER).get().to_dict()
    assert entry["action_taken"] == "rate_limited" and entry["notes"] == "burning GPT-4 on free"
    cleared = c.post("/loss/action", data={**form, "action": "clear", "reason": "upgraded"})
    assert cleared.status_code == 200
    assert db.collection("loss_users").document(seed.LOSS_USER).get().get("action_taken") is None
    audit = sorted(actions(db, "loss_action"), key=lambda a: a["created_at"])
    assert [(a["before"], a["after"]) for a in audit] == [
        (None, "rate_limited"),
        ("rate_limited", None),
    ]
    assert {a["actor"] for a in audit} == {"console:ops@example.com"}
    assert all(a["ip_address"] == "127.0.0.1" for a in audit)

    page = c.get("/providers")
    assert page.status_code == 200
    assert 'class="state-open">open<' in page.text and "gpt-4o" in page.text
    ack = c.post("/providers/ack", data={"csrf": csrf, "alert_id": alerts[0], "reason": "paged"})
    assert ack.status_code == 200 and f"{alerts[0]} acknowledged" in ack.text
    assert db.collection("model_router_alerts").document(alerts[0]).get().get("acknowledged")
    assert f"ack-{alerts[0]}" not in ack.text  # no longer among the open alerts
    again = c.post("/providers/ack", data={"csrf": csrf, "alert_id": alerts[0], "reason": "x"})
    assert again.status_code == 200 and "already acknowledged" in again.text
    assert len(actions(db, "router_alert_ack")) == 1
    missing = c.post("/providers/ack", data={"csrf": csrf, "alert_id": "nope", "reason": "x"})
    assert missing.status_code == 404
    flag = {"csrf": csrf, "flag": "model_routing_enabled", "value": "false", "reason": "incident"}
    assert c.post("/providers/flag", data=flag).status_code == 200
    flags = db.collection("pipeline_config").document("global").get().to_dict()
    assert flags["model_routing_enabled"] is False
    assert c.post("/providers/flag", data={**flag, "flag": "made_up"}).status_code == 400
    assert len(actions(db, "pipeline_flag")) == 1


def test_promotions_and_app_settings(db: Any, stack: Any) -> None:
    seed.promotions_and_settings(db)
    c, csrf = signed_in(stack)
    assert "demo-newyear-tiered" in c.get("/promotions").text
    form = {
        "csrf": csrf,
        "promo_id": seed.PROMO,
        "name": "Songkran bonus",
        "type": "FLAT_BONUS",
        "status": "ACTIVE",
        "priority": "5",
        "end": (datetime.now(UTC) + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"),
    }
    before = all_documents(db)
    no_reward = c.post("/promotions/create", data=form)
    assert no_reward.status_code == 400 and "give a reward" in no_reward.text
    assert 'value="Songkran bonus"' in no_reward.text  # the form keeps what was typed
    bad_number = c.post("/promotions/create", data={**form, "bonus_credits": "lots"})
    assert bad_number.status_code == 400 and "whole number" in bad_number.text
    assert all_documents(db) == before
    made = c.post("/promotions/create", data={**form, "bonus_credits": "50"})
    assert made.status_code == 200 and f"created {seed.PROMO} (ACTIVE)" in made.text
    doc = db.collection("promotions").document(seed.PROMO).get().to_dict()
    assert doc["status"] == "ACTIVE" and doc["created_by"] == "console:ops@example.com"
    assert doc["reward"] == {
        "type": "BONUS_CREDITS",
        "bonus_credits": 50,
        "override_rate": None,
        "bonus_percentage": None,
        "tiers": None,
    }
    assert doc["conditions"]["end_date"] > datetime.now(UTC)
    twice = c.post("/promotions/create", data={**form, "bonus_credits": "50"})
    assert twice.status_code == 409 and "already exists" in twice.text

    change = {"csrf": csrf, "promo_id": seed.PROMO, "reason": "budget"}
    for step, status in (("pause", "PAUSED"), ("resume", "ACTIVE"), ("cancel", "CANCELLED")):
        answer = c.post("/promotions/change", data={**change, "change": step})
        assert answer.status_code == 200 and f"{seed.PROMO} is {status}" in answer.text
        assert db.collection("promotions").document(seed.PROMO).get().get("status") == status
    refused = c.post("/promotions/change", data={**change, "change": "resume"})
    assert refused.status_code == 409 and "CANCELLED" in refused.text
    assert c.post("/promotions/change", data={**change, "change": "delete"}).status_code == 400
    audit = [
        a["action"]
        for a in sorted(
            (d for p, d in all_documents(db).items() if p.startswith("admin_actions/")),
            key=lambda a: a["created_at"],
        )
    ]
    assert audit == [
        "promotion_create",
        "promotion_pause",
        "promotion_resume",
        "promotion_cancel",
    ]

    settings = {"csrf": csrf, "reason": "deploy window"}
    on = c.post("/settings", data={**settings, "field": "maintenance_mode", "value": "true"})
    assert on.status_code == 200 and "maintenance_mode changed" in on.text
    app = db.collection("system_config").document("app_settings").get().to_dict()
    assert app["maintenance_mode"] is True
    before = all_documents(db)
    unknown = c.post("/settings", data={**settings, "field": "password_pepper", "value": "x"})
    assert unknown.status_code == 400 and "not an editable app setting" in unknown.text
    bad = c.post("/settings", data={**settings, "field": "exchange_rate", "value": "-1"})
    assert bad.status_code == 400 and "positive number" in bad.text
    assert all_documents(db) == before
    [record] = actions(db, "app_settings")
    assert record["changes"]["maintenance_mode"]["after"] is True
    assert record["ip_address"] == "127.0.0.1"


def test_user_holds_reconcile_and_bigeye_account_actions(db: Any, stack: Any) -> None:
    user = seed.bigeye_user(db, credits=100)
    seed.open_hold(user, "job-console-1", 30)
    db.collection("stripe_clawback_shortfalls").document("evt_short_1").set(
        {
            "user_id": "u-spent",
            "payment_intent_id": "pi_1",
            "original_transaction_id": "t1",
            "refund_transaction_id": "t2",
            "reason": "refund",
            "requested_credits": 500,
            "clawed_credits": 120,
            "shortfall_credits": 380,
            "created_at": datetime.now(UTC),
        }
    )
    c, csrf = signed_in(stack)
    queue = c.get("/queue").text
    assert "evt_short_1" in queue and "<b>380</b>" in queue

    page = c.get("/users", params={"q": user, "profile": "bigeye"})
    assert page.status_code == 200 and 'id="balance">70<' in page.text
    holds = page.text[page.text.index('id="holds"') :]
    assert "job-console-1" in holds and "<td>30</td>" in holds
    base = {"csrf": csrf, "profile": "bigeye", "user_id": user}
    checked = c.post("/users/reconcile", data=base)
    assert checked.status_code == 200 and f"reconciled {user}: clean" in checked.text
    reports = [d for p, d in all_documents(db).items() if p.startswith("ledger_reconciliations/")]
    assert len(reports) == 1 and reports[0]["clean"] and reports[0]["scope"] == "users"
    # Drift (a balance written by hand) is reported, not fixed.
    db.collection("users").document(user).update({"credits": 999})
    drift = c.post("/users/reconcile", data=base)
    assert drift.status_code == 200 and "DRIFT" in drift.text
    assert db.collection("users").document(user).get().get("credits") == 999

    before = all_documents(db)
    kites = c.post("/users/status", data={**base, "profile": "kitesforu", "change": "ban"})
    assert kites.status_code == 400 and "BigEye account actions" in kites.text
    odd = c.post("/users/status", data={**base, "change": "delete", "reason": "r"})
    assert odd.status_code == 400
    no_reason = c.post("/users/status", data={**base, "change": "suspend"})
    assert no_reason.status_code == 400 and "reason is required" in no_reason.text
    assert all_documents(db) == before
    for change, status in (("suspend", "suspended"), ("ban", "banned"), ("unban", "active")):
        done = c.post("/users/status", data={**base, "change": change, "reason": "abuse"})
        assert done.status_code == 200 and f"{user} is now {status}" in done.text
        assert db.collection("users").document(user).get().get("status") == status
    moved = c.post("/users/rebind", data={**base, "hardware_id": "hw-new", "reason": "new PC"})
    assert moved.status_code == 200 and "bound to hw-new" in moved.text
    assert db.collection("users").document(user).get().get("hardware_id") == "hw-new"
    audit = sorted(
        (d for p, d in all_documents(db).items() if p.startswith("admin_actions/")),
        key=lambda a: a["created_at"],
    )
    assert [a["action"] for a in audit] == [
        "grant",
        "user_suspended",
        "user_banned",
        "user_unban",
        "device_rebind",
    ]
    assert {a["actor"] for a in audit[1:]} == {"console:ops@example.com"}


def test_slip_reject_and_stripe_replay_record_the_operator(db: Any, stack: Any) -> None:
    from devstack.demo import bigeye
    from shared.bigeye.topup import _pending_slip
    from tests.admin.test_admin_cli import _park_orphan_checkout, link_customer, replays
    from tests.bigeye_money.conftest import make_user

    now = datetime.now(UTC)
    bigeye.seed(db, now)
    make_user(db, "slip-rejected")
    db.collection("slips").document("slip-http-1").set(
        _pending_slip("slip-rejected", "sha256:" + "0" * 64, now - timedelta(hours=1))
    )
    c, csrf = signed_in(stack)
    rejected = c.post(
        "/queue/slips/reject",
        data={"csrf": csrf, "slip_id": "slip-http-1", "reason": "not a bank slip"},
    )
    assert rejected.status_code == 200 and "slip-http-1 is REJECTED" in rejected.text
    [record] = actions(db, "slip_reject")
    assert (record["actor"], record["reason"], record["ip_address"]) == (
        "console:ops@example.com",
        "not a bank slip",
        "127.0.0.1",
    )

    evt = _park_orphan_checkout(db, stack, "cus_http")
    form = {"csrf": csrf, "event_id": evt["id"], "profile": "kitesforu"}
    before = all_documents(db)
    refused = c.post("/queue/replay", data=form)
    assert refused.status_code == 400 and "reason is required" in refused.text
    assert all_documents(db) == before
    link_customer(db, "u-http", "cus_http")
    form["reason"] = "customer linked by support"
    done = c.post("/queue/replay", data=form)
    assert done.status_code == 200 and f"{evt['id']}: applied" in done.text
    again = c.post("/queue/replay", data=form)
    assert again.status_code == 200 and "already_replayed" in again.text
    assert db.collection("users").document("u-http").get().get("credits_balance") == 500
    [replayed] = replays(db)
    assert replayed["outcome"] == "applied" and replayed["event_id"] == evt["id"]
    assert (replayed["actor"], replayed["reason"], replayed["ip_address"]) == (
        "console:ops@example.com",
        "customer linked by support",
        "127.0.0.1",
    )
