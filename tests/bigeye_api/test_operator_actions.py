"""Operator lifecycles through credits-admin, checked over real HTTP and in Firestore:
promotions (resume, cancel, expiry on schedule), accounts (suspend, ban, unban, device
rebind revoking old tokens) and the audited edit of ``system_config/app_settings``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from click.testing import CliRunner, Result

from devstack.admin import cli
from devstack.demo.bigeye import DEMO_PROMOTION_ID
from devstack.demo.bigeye import seed as seed_bigeye
from tests.bigeye_api.client import api_url, register_and_login
from tests.bigeye_api.test_jobs import SEED_RESERVE
from tests.helpers import all_documents, wait_for


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--profile", "bigeye", *args], catch_exceptions=False)


def _actions(db: Any) -> list[dict[str, Any]]:
    return [s.to_dict() or {} for s in db.collection("admin_actions").stream()]


def _promo(db: Any, promo_id: str = DEMO_PROMOTION_ID) -> dict[str, Any]:
    return db.collection("promotions").document(promo_id).get().to_dict() or {}


def test_promotion_pause_resume_cancel(bigeye) -> None:
    db = bigeye
    seed_bigeye(db, datetime.now(UTC))
    who = ("--actor", "ops", "--reason", "budget")
    assert run("promotions", "pause", DEMO_PROMOTION_ID, *who).exit_code == 0
    resumed = run("promotions", "resume", DEMO_PROMOTION_ID, *who)
    assert resumed.exit_code == 0 and "ACTIVE" in resumed.output
    assert _promo(db)["status"] == "ACTIVE"
    # Resuming an ACTIVE promotion changes nothing.
    assert run("promotions", "resume", DEMO_PROMOTION_ID, *who).exit_code == 0
    cancelled = run("promotions", "cancel", DEMO_PROMOTION_ID, *who)
    assert cancelled.exit_code == 0 and _promo(db)["status"] == "CANCELLED"
    again = run("promotions", "resume", DEMO_PROMOTION_ID, *who)
    assert again.exit_code == 2 and "CANCELLED" in again.output
    assert run("promotions", "pause", DEMO_PROMOTION_ID, *who).exit_code == 2
    actions = sorted(a["action"] for a in _actions(db))
    assert actions == ["promotion_cancel", "promotion_pause", "promotion_resume"]
    assert all(a["actor"] == "ops" and a["reason"] == "budget" for a in _actions(db))


def test_a_paused_promotion_past_its_end_cannot_resume(bigeye) -> None:
    db = bigeye
    seed_bigeye(db, datetime.now(UTC))
    ref = db.collection("promotions").document(DEMO_PROMOTION_ID)
    ref.update({"status": "PAUSED", "conditions.end_date": datetime.now(UTC) - timedelta(hours=1)})
    result = run("promotions", "resume", DEMO_PROMOTION_ID, "--actor", "o", "--reason", "r")
    assert result.exit_code == 2 and "cannot resume" in result.output
    assert _promo(db)["status"] == "PAUSED"


def test_the_schedule_expires_promotions_past_their_end_date(stack, bigeye) -> None:
    db = bigeye
    seed_bigeye(db, datetime.now(UTC))
    past = datetime.now(UTC) - timedelta(minutes=5)
    ended = {**_promo(db), "conditions": {**_promo(db)["conditions"], "end_date": past}}
    db.collection("promotions").document("ended-active").set(ended)
    db.collection("promotions").document("ended-paused").set({**ended, "status": "PAUSED"})
    db.collection("promotions").document("ended-draft").set({**ended, "status": "DRAFT"})
    stack.publish("cron-expire-promotions", b"{}")
    assert wait_for(lambda: _promo(db, "ended-paused")["status"] == "EXPIRED", timeout_s=20)
    assert wait_for(lambda: _promo(db, "ended-active")["status"] == "EXPIRED", timeout_s=20)
    assert _promo(db, "ended-draft")["status"] == "DRAFT"  # never ran: nothing to end
    assert _promo(db)["status"] == "ACTIVE"  # ends in 90 days
    expiries = [a for a in _actions(db) if a["action"] == "promotion_expire"]
    assert sorted(a["promo_id"] for a in expiries) == ["ended-active", "ended-paused"]
    assert {a["actor"] for a in expiries} == {"system:promotion-expiry"}
    # Running it again (the CLI does the same) finds nothing.
    assert "none" in run("promotions", "expire").output


def test_suspend_ban_unban_over_http(stack, bigeye) -> None:
    session = register_and_login(stack.base_url)
    who = ("--actor", "ops@example.com", "--reason", "chargeback")
    assert run("accounts", "suspend", session.user_id, *who).exit_code == 0
    response = session.get("credit/balance")
    assert response.status_code == 403 and response.json() == {"detail": "Account suspended"}
    assert run("accounts", "ban", session.user_id, *who).exit_code == 0
    login = {
        "email": session.email,
        "password": session.password,
        "hardware_id": session.hardware_id,
    }
    response = httpx.post(api_url(stack.base_url, "auth/login"), json=login, timeout=30)
    assert response.status_code == 403 and response.json() == {"detail": "Account banned"}
    assert run("accounts", "unban", session.user_id, *who).exit_code == 0
    assert session.get("credit/balance").status_code == 200
    again = run("accounts", "unban", session.user_id, *who)
    assert again.exit_code == 0 and "already" in again.output
    actions = [a for a in _actions(bigeye) if a["user_id"] == session.user_id]
    assert sorted((a["before"], a["after"]) for a in actions) == [
        ("active", "suspended"),
        ("banned", "active"),
        ("suspended", "banned"),
    ]
    assert run("accounts", "ban", "no-such-user", *who).exit_code == 2


def test_device_rebind_revokes_the_old_devices_tokens(stack, bigeye) -> None:
    session = register_and_login(stack.base_url)
    assert session.get("credit/balance").status_code == 200
    result = run(
        "accounts",
        "rebind",
        session.user_id,
        "HW-NEW-LAPTOP",
        "--actor",
        "ops",
        "--reason",
        "new laptop, old one stolen",
    )
    assert result.exit_code == 0, result.output
    response = session.get("credit/balance")
    assert response.status_code == 401
    assert response.json() == {"detail": "Token is not valid for this device"}
    old = {"email": session.email, "password": session.password}
    response = httpx.post(
        api_url(stack.base_url, "auth/login"),
        json={**old, "hardware_id": session.hardware_id},
        timeout=30,
    )
    assert response.status_code == 401  # the old device: answered as a wrong password
    response = httpx.post(
        api_url(stack.base_url, "auth/login"),
        json={**old, "hardware_id": "HW-NEW-LAPTOP"},
        timeout=30,
    )
    assert response.status_code == 200
    token = response.json()["token"]
    balance = httpx.get(
        api_url(stack.base_url, "credit/balance"),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert balance.status_code == 200
    (action,) = [a for a in _actions(bigeye) if a["action"] == "device_rebind"]
    assert (action["before"], action["after"]) == (session.hardware_id, "HW-NEW-LAPTOP")


def test_app_settings_edit_is_validated_audited_and_takes_effect(stack, bigeye) -> None:
    db = bigeye
    session = register_and_login(stack.base_url)
    who = ("--actor", "ops", "--reason", "db migration")
    before = all_documents(db)
    for bad in (
        "credit_rates.istock_photo=0",
        "nope=1",
        "maintenance_mode=maybe",
        "app_latest_version=v3",
        "exchange_rate=-1",
    ):
        result = run("app-settings", "set", bad, *who)
        assert result.exit_code == 2, (bad, result.output)
    assert all_documents(db) == before

    result = run(
        "app-settings",
        "set",
        "maintenance_mode=true",
        "maintenance_message=Back at 10:00",
        "credit_rates.istock_photo=5",
        "blacklist=nike, adidas",
        *who,
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["changed"]["credit_rates.istock_photo"] == [3, 5]
    settings = db.collection("system_config").document("app_settings").get().to_dict()
    assert settings["maintenance_mode"] is True
    assert settings["credit_rates"]["istock_photo"] == 5
    assert settings["credit_rates"]["adobe_photo"] == 2  # siblings untouched
    assert settings["blacklist"] == ["nike", "adidas"]
    response = session.post("job/reserve", SEED_RESERVE)
    assert response.status_code == 503 and response.json() == {"detail": "Back at 10:00"}

    (action,) = _actions(db)
    assert action["action"] == "app_settings" and action["actor"] == "ops"
    assert action["changes"]["maintenance_mode"] == {"before": False, "after": True}
    assert action["changes"]["blacklist"]["after"] == ["nike", "adidas"]
    # The same values again change nothing and record nothing.
    result = run("app-settings", "set", "maintenance_mode=true", *who)
    assert "nothing changed" in result.output and len(_actions(db)) == 1
    shown = json.loads(run("app-settings", "show", "--json").output)
    assert shown["maintenance_message"] == "Back at 10:00"


def test_dictionary_from_a_file_updates_its_count(bigeye, tmp_path) -> None:
    words = tmp_path / "dictionary.txt"
    words.write_text("kite\nbeach\nsunset\n", encoding="utf-8")
    result = run(
        "app-settings",
        "set",
        "dictionary_version=2026.2",
        "--from-file",
        f"dictionary={words}",
        "--actor",
        "ops",
        "--reason",
        "new words",
    )
    assert result.exit_code == 0, result.output
    settings = bigeye.collection("system_config").document("app_settings").get().to_dict()
    assert settings["dictionary_word_count"] == 3
    assert settings["dictionary_version"] == "2026.2"
    assert settings["dictionary_updated_at"] is not None
