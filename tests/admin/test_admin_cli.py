"""``credits-admin`` through click's CliRunner against the emulators (the session stack)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import httpx
from click.testing import CliRunner, Result
from google.cloud import firestore

from devstack import stripe_send as fx
from devstack.admin import cli
from shared.clock import SystemClock
from shared.ledger import KITESFORU, Kind, Ledger
from tests.helpers import all_documents, wait_for


def run(*args: str, profile: str = "kitesforu") -> Result:
    return CliRunner().invoke(cli, ["--profile", profile, *args], catch_exceptions=False)


def seed_user(db: Any, user_id: str, credits: int = 0, profile: str = "kitesforu") -> None:
    field = "credits" if profile == "bigeye" else "credits_balance"
    db.collection("users").document(user_id).set({"email": f"{user_id}@example.com", field: 0})
    if credits:
        ledger = Ledger(db, KITESFORU, SystemClock())
        if profile == "kitesforu":
            ledger.run(
                lambda u: ledger.credit(
                    u,
                    user_id=user_id,
                    kind=Kind.PURCHASE,
                    amount=credits,
                    key=f"seed:{user_id}",
                    description="Credit pack",
                )
            )


def test_help_everywhere() -> None:
    def walk(command: click.Command, path: list[str]) -> list[list[str]]:
        found = [path]
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                found += walk(sub, [*path, name])
        return found

    paths = walk(cli, [])
    assert len(paths) >= 14
    for path in paths:
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output


def test_grant_adjust_refund_history_and_reconcile(db: Any) -> None:
    seed_user(db, "u1", credits=100)
    granted = run("grant", "u1", "50", "--actor", "ops@acme", "--reason", "goodwill", "--json")
    assert granted.exit_code == 0, granted.output
    view = json.loads(granted.output)
    assert view["balance_after"] == 150 and view["replayed"] is False
    # The same command again replays: no second grant.
    again = run("grant", "u1", "50", "--actor", "ops@acme", "--reason", "goodwill")
    assert again.exit_code == 0 and "replay" in again.output
    removed = run("adjust", "u1", "--actor", "ops@acme", "--reason", "typo", "--", "-30")
    assert removed.exit_code == 0, removed.output
    assert "balance after: 120" in removed.output
    too_much = run("adjust", "u1", "--actor", "ops@acme", "--reason", "x", "--", "-500")
    assert too_much.exit_code == 2 and "Insufficient credits" in too_much.output

    balance = json.loads(run("balance", "u1", "--json").output)
    assert balance["balance"] == 120
    rows = json.loads(run("history", "u1", "--json").output)
    assert [r["type"] for r in rows] == ["ADMIN_ADJUSTMENT", "ADMIN_ADJUSTMENT", "PURCHASE"]
    assert [r["amount"] for r in rows] == [-30, 50, 100]
    purchase = rows[-1]["transaction_id"]
    refunded = run(
        "refund", purchase, "--amount", "40", "--actor", "ops@acme", "--reason", "chargeback"
    )
    assert refunded.exit_code == 0, refunded.output
    assert "balance after: 80" in refunded.output
    actions = [d for p, d in all_documents(db).items() if p.startswith("admin_actions/")]
    assert sorted(a["action"] for a in actions) == ["adjust", "grant", "refund"]
    assert all(a["actor"] == "ops@acme" and a["reason"] for a in actions)

    clean = run("reconcile", "u1")
    assert clean.exit_code == 0 and clean.output.startswith("clean")
    # Drift: someone edits a balance by hand. Reconcile reports it and exits 1.
    db.collection("users").document("u1").update({"credits_balance": 999})
    drift = run("reconcile", "--json")
    assert drift.exit_code == 1
    report = json.loads(drift.output)
    assert report["clean"] is False
    assert {d["problem"] for d in report["discrepancies"]} == {"balance_mismatch"}
    assert db.collection("users").document("u1").get().get("credits_balance") == 999


def test_an_operator_key_never_reaches_a_derived_key(db: Any) -> None:
    # A Stripe purchase's posting; an operator's --key spelled like its key must not
    # replay it (nor be blocked by it): keys with ':' or '%' are refused, nothing written.
    seed_user(db, "u1", credits=100)
    before = all_documents(db)
    for bad in ("seed:u1", "stripe:checkout:cs_1", "x%3Ay", "tab\there"):
        refused = run("grant", "u1", "5", "--actor", "a", "--reason", "r", "--key", bad)
        assert refused.exit_code == 2 and "--key must not contain" in refused.output, bad
    assert all_documents(db) == before
    first = run("grant", "u1", "5", "--actor", "a", "--reason", "r", "--key", "gift-1", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["balance_after"] == 105
    again = run("grant", "u1", "5", "--actor", "a", "--reason", "r", "--key", "gift-1", "--json")
    assert json.loads(again.output)["replayed"] is True


def test_clear_errors(db: Any) -> None:
    missing = run("balance", "nobody")
    assert missing.exit_code == 2 and "unknown user nobody" in missing.output
    no_actor = run("grant", "u1", "5", "--reason", "r")
    assert no_actor.exit_code == 2 and "--actor" in no_actor.output
    zero = run("grant", "u1", "0", "--actor", "a", "--reason", "r")
    assert zero.exit_code == 2
    unknown_tx = run("refund", "tx-nope", "--actor", "a", "--reason", "r")
    assert unknown_tx.exit_code == 2 and "unknown transaction" in unknown_tx.output
    bad_range = run("backfill", "--from", "2026-01-05", "--to", "2026-01-01")
    assert bad_range.exit_code == 2
    before = all_documents(db)
    assert run("engine-cost", "nope", "-1", "--actor", "a", "--reason", "r").exit_code == 2
    assert run("engine-cost", "nope", "abc", "--actor", "a", "--reason", "r").exit_code == 2
    assert all_documents(db) == before


def test_bigeye_profile_grant(db: Any) -> None:
    seed_user(db, "b1", profile="bigeye")
    out = run("grant", "b1", "25", "--actor", "ops", "--reason", "promo fix", profile="bigeye")
    assert out.exit_code == 0, out.output
    [tx] = [d for p, d in all_documents(db).items() if p.startswith("transactions/")]
    assert tx["type"] == "BONUS" and tx["amount"] == 25 and tx["balance_after"] == 25
    assert db.collection("users").document("b1").get().get("credits") == 25


def seed_engine(db: Any, engine_id: str = "openai_chat_gpt4") -> None:
    """The seed's example engine at 0.03 USD, last changed a day ago by ``admin_uid``."""
    db.collection("ai_engine_costs").document(engine_id).set(
        {
            "engine_id": engine_id,
            "provider_name": "OpenAI",
            "ai_type": "chat",
            "cost_per_unit": 0.03,
            "unit_type": "1k_tokens",
            "updated_at": datetime.now(UTC) - timedelta(days=1),
            "updated_by": "admin_uid",
            "is_active": True,
        }
    )


def test_engine_cost_update_is_audited_by_the_trigger(db: Any) -> None:
    seed_engine(db)
    out = run(
        "engine-cost", "openai_chat_gpt4", "0.035", "--actor", "cfo@acme", "--reason", "price rise"
    )
    assert out.exit_code == 0, out.output
    doc = db.collection("ai_engine_costs").document("openai_chat_gpt4").get().to_dict()
    assert doc["cost_per_unit"] == 0.035 and doc["updated_by"] == "cfo@acme"

    def audited() -> list[dict[str, Any]]:
        return [
            s.to_dict() or {}
            for s in db.collection("profit_audit_log").stream()
            if (s.to_dict() or {}).get("changed_by") == "cfo@acme"
        ]

    [entry] = wait_for(audited)
    assert entry["entity_id"] == "openai_chat_gpt4" and entry["reason"] == "price rise"
    assert entry["before_value"]["cost_per_unit"] == 0.03
    assert entry["after_value"]["cost_per_unit"] == 0.035


def test_promotions_create_list_pause(db: Any) -> None:
    now = datetime.now(UTC)
    created = run(
        "promotions",
        "create",
        "newyear",
        "--name",
        "New year",
        "--type",
        "TIERED_BONUS",
        "--status",
        "ACTIVE",
        "--priority",
        "5",
        "--min-baht",
        "100",
        "--start",
        (now - timedelta(days=1)).isoformat(),
        "--end",
        (now + timedelta(days=30)).isoformat(),
        "--tiers",
        "100-299:400,300-499:1300,500-:2200",
        "--actor",
        "ops",
        profile="bigeye",
    )
    assert created.exit_code == 0, created.output
    duplicate = run(
        "promotions",
        "create",
        "newyear",
        "--name",
        "x",
        "--type",
        "FLAT_BONUS",
        "--bonus-credits",
        "5",
        "--actor",
        "ops",
        profile="bigeye",
    )
    assert duplicate.exit_code == 2 and "already exists" in duplicate.output

    # Deleted by hand and created again: its creation's audit record is still there, so the
    # second creation is refused at once, naming that record (not retried as contention).
    def create_gone() -> Result:
        return run(
            "promotions", "create", "gone", "--name", "x", "--type", "FLAT_BONUS",
            "--bonus-credits", "5", "--actor", "ops", profile="bigeye",
        )  # fmt: skip

    assert create_gone().exit_code == 0
    db.collection("promotions").document("gone").delete()
    started = time.monotonic()
    recreated = create_gone()
    assert recreated.exit_code == 2, recreated.output
    assert "admin_actions/promotion_create_gone already exists" in recreated.output
    assert time.monotonic() - started < 2
    assert not db.collection("promotions").document("gone").get().exists
    no_reward = run(
        "promotions", "create", "empty", "--name", "x", "--type", "FLAT_BONUS", "--actor", "ops"
    )
    assert no_reward.exit_code == 2
    rows = json.loads(run("promotions", "list", "--status", "ACTIVE", "--json").output)
    assert [r["promo_id"] for r in rows] == ["newyear"]
    assert rows[0]["reward"]["tiers"][2] == {"min_baht": 500, "max_baht": None, "credits": 2200}
    paused = run("promotions", "pause", "newyear", "--actor", "ops", "--reason", "budget spent")
    assert paused.exit_code == 0 and "PAUSED" in paused.output
    again = run("promotions", "pause", "newyear", "--actor", "ops", "--reason", "again")
    assert again.exit_code == 0
    doc = db.collection("promotions").document("newyear").get().to_dict()
    assert doc["status"] == "PAUSED" and doc["created_by"] == "ops"
    pauses = [
        d
        for p, d in all_documents(db).items()
        if p.startswith("admin_actions/") and d["action"] == "promotion_pause"
    ]
    assert len(pauses) == 1 and pauses[0]["reason"] == "budget spent"
    assert run("promotions", "pause", "ghost", "--actor", "o", "--reason", "r").exit_code == 2


def _park_orphan_checkout(db: Any, stack: Any, customer: str) -> dict[str, Any]:
    """A paid checkout of ``customer`` that no user has (yet): parked by the webhook."""
    from devstack.demo import billing as demo_billing

    demo_billing.seed(db, datetime.now(UTC))
    session = fx.checkout_session(
        user_id=None,
        price_id="price_credits_500",
        payment_intent=fx.new_id("pi"),
        customer=customer,
        amount_total=500,
        payment_status="paid",
    )
    evt = fx.event("checkout.session.completed", session)
    response: httpx.Response = fx.send(
        f"{stack.base_url}/stripe-webhook", evt, secret="whsec_demo_local_only"
    )
    assert response.status_code == 200 and response.json()["status"] == "parked"
    return evt


def link_customer(db: Any, user_id: str, customer: str) -> None:
    from devstack.demo import billing as demo_billing

    user = demo_billing.demo_user("kitesforu", datetime.now(UTC))
    db.collection("users").document(user_id).set(
        {
            **user,
            "email": f"{user_id}@example.com",
            "credits_balance": 0,
            "stripe_customer_id": customer,
        }
    )


def replays(db: Any) -> list[dict[str, Any]]:
    """The ``stripe_replay`` admin actions, oldest first."""
    found = [
        d
        for p, d in all_documents(db).items()
        if p.startswith("admin_actions/") and d["action"] == "stripe_replay"
    ]
    return sorted(found, key=lambda d: d["created_at"])


def test_replay_a_parked_stripe_event(db: Any, stack: Any) -> None:
    evt = _park_orphan_checkout(db, stack, "cus_orphan")
    listed = json.loads(run("stripe", "parked", "--json").output)
    assert [p["event_id"] for p in listed] == [evt["id"]]
    who = ("--actor", "ops@acme", "--reason", "linked the customer")
    assert run("stripe", "replay", evt["id"]).exit_code == 2  # actor and reason required
    assert replays(db) == []
    still = run("stripe", "replay", evt["id"], *who)
    assert still.exit_code == 0 and "parked" in still.output
    link_customer(db, "u9", "cus_orphan")
    applied = json.loads(run("stripe", "replay", evt["id"], *who, "--json").output)
    assert applied[0]["status"] == "applied" and applied[0]["user_id"] == "u9"
    assert db.collection("users").document("u9").get().get("credits_balance") == 500
    twice = json.loads(run("stripe", "replay", evt["id"], *who, "--json").output)
    assert twice[0]["status"] == "already_replayed"
    assert db.collection("users").document("u9").get().get("credits_balance") == 500
    assert run("stripe", "replay", "evt_nope", *who).exit_code == 2
    # Each replay that wrote something is audited; the one that found it done wrote nothing.
    audit = replays(db)
    assert [(a["outcome"], a["credits"], a["user_id"]) for a in audit] == [
        ("parked", 0, None),
        ("applied", 500, "u9"),
    ]
    assert {(a["actor"], a["reason"], a["event_id"], a["ip_address"]) for a in audit} == {
        ("ops@acme", "linked the customer", evt["id"], None)
    }
    assert audit[1]["transaction_id"] == applied[0]["transaction_id"]
    assert run("reconcile", "u9").exit_code == 0


def test_backfill_rebuilds_daily_rollups_with_progress(db: Any) -> None:
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=3), today - timedelta(days=1)
    out = run("backfill", "--from", first.isoformat(), "--to", last.isoformat())
    assert out.exit_code == 0, out.output
    assert "daily rollups" in out.output and "rebuilt 3 days" in out.output
    ids = {s.id for s in db.collection("profit_aggregates").stream()}
    for i in range(3):
        day = first + timedelta(days=i)
        assert f"daily_{day.strftime('%Y_%m_%d')}" in ids
    rerun = run("backfill", "--from", first.isoformat(), "--to", last.isoformat())
    assert rerun.exit_code == 0
    future = run("backfill", "--from", today.isoformat(), "--to", today.isoformat())
    assert future.exit_code == 2 and "ended" in future.output
    assert firestore  # the client module is the one the CLI uses


def test_a_user_of_another_profile_is_refused_naming_the_right_one(db: Any) -> None:
    from shared.ledger import BIGEYE

    db.collection("users").document("be1").set(
        {"email": "be1@x", "password_hash": "x", "hardware_id": "hw-1", "credits": 0}
    )
    bigeye = Ledger(db, BIGEYE, SystemClock())
    bigeye.run(
        lambda u: bigeye.credit(
            u, user_id="be1", kind=Kind.TOPUP, amount=70, key="seed:be1", description="Top-up"
        )
    )
    before = all_documents(db)
    for args in (
        ("balance", "be1"),
        ("history", "be1"),
        ("grant", "be1", "5", "--actor", "ops", "--reason", "r"),
        ("adjust", "be1", "5", "--actor", "ops", "--reason", "r"),
    ):
        refused = run(*args)
        assert refused.exit_code == 2, (args, refused.output)
        assert "belongs to the bigeye profile" in refused.output
        assert "--profile bigeye" in refused.output
    assert all_documents(db) == before
    shown = json.loads(run("balance", "be1", "--json", profile="bigeye").output)
    assert shown["balance"] == 70 and shown["profile"] == "bigeye"


def test_reconcile_without_a_profile_covers_every_ledger_present(db: Any, monkeypatch) -> None:
    from shared.ledger import BIGEYE

    seed_user(db, "k1", credits=10)
    db.collection("users").document("be2").set({"email": "be2@x", "credits": 0})
    bigeye = Ledger(db, BIGEYE, SystemClock())
    bigeye.run(
        lambda u: bigeye.credit(
            u, user_id="be2", kind=Kind.TOPUP, amount=30, key="seed:be2", description="Top-up"
        )
    )
    db.collection("users").document("be2").update({"credits": 31})  # drift in BigEye only
    monkeypatch.delenv("SCHEMA_PROFILE", raising=False)
    result = CliRunner().invoke(cli, ["reconcile", "--json"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    reports = {r["profile"]: r for r in json.loads(result.output)}
    assert set(reports) == {"kitesforu", "bigeye"}
    assert reports["kitesforu"]["clean"] is True
    assert [d["user_id"] for d in reports["bigeye"]["discrepancies"]] == ["be2"]
