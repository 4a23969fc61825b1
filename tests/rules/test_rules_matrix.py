"""The security rules matrix, evaluated by the Firestore emulator over REST.

Every collection of the five seeds (and the project's own) gets at least five cases: the
owner, another user, no user, the admin claim, and a tampered field, id or claim. Documents
are seeded with the Python client (which bypasses rules); each case is one REST call made
with an unsigned ID token. docs/security.md explains the choices.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.rules.rest import RulesClient, load_rules, unsigned_token

NOW = datetime(2026, 1, 4, 10, 0, tzinfo=UTC)

Who = tuple[str, dict[str, Any]] | None

# Callers: a uid, optionally with custom claims; None is unauthenticated.
ALICE: Who = ("alice", {})
BOB: Who = ("bob", {})
ADMIN: Who = ("root", {"role": "super_admin"})
MALLORY: Who = ("mallory", {})  # users/mallory.role == 'super_admin': a document, not a claim
FAKE_ADMIN: Who = ("eve", {"role": "admin"})
WRONG_CASE_ADMIN: Who = ("eve", {"role": "Super_Admin"})
ANON: Who = None


@dataclass(frozen=True)
class Case:
    collection: str
    label: str
    who: Who
    op: str  # get | list | create | update | delete
    path: str
    allowed: bool
    data: dict[str, Any] = field(default_factory=dict)
    where: tuple[str, Any] | None = None

    @property
    def id(self) -> str:
        return f"{self.collection}:{self.label}"


SEED: dict[str, dict[str, Any]] = {
    "users/alice": {
        "email": "alice@example.com",
        "credits_balance": 100,
        "total_credits_used": 0,
        "tier": "FREE",
        "stripe_customer_id": "cus_alice",
        "displayName": "Alice",
    },
    "users/bob": {
        "email": "bob@example.com",
        "credits_balance": 50,
        "stripe_customer_id": "cus_bob",
    },
    "users/mallory": {"email": "m@example.com", "credits_balance": 0, "role": "super_admin"},
    # BigEye users (004): credentials and device/IP data are never returned to a client.
    "users/be_carol": {
        "email": "carol@example.com",
        "password_hash": "$2b$12$abcdefghijklmnopqrstuv",
        "hardware_id": "HW-CAROL",
        "credits": 40,
        "status": "active",
        "metadata": {"os": "Windows 11", "registration_ip": "203.0.113.9", "notes": ""},
    },
    "users/be_hashonly": {"email": "h@example.com", "password_hash": "$2b$12$x"},
    "users/be_ipnly": {"email": "i@example.com", "metadata": {"registration_ip": "1.2.3.4"}},
    "users/be_devonly": {"email": "d@example.com", "hardware_id": "HW-D"},
    "credit_transactions/t_alice": {"user_id": "alice", "type": "PURCHASE", "amount": 100},
    "credit_transactions/t_bob": {"user_id": "bob", "type": "PURCHASE", "amount": 50},
    "transactions/bt_alice": {"user_id": "alice", "type": "TOPUP", "amount": 2000},
    "transactions/bt_bob": {"user_id": "bob", "type": "TOPUP", "amount": 400},
    "courses/c_alice": {"user_id": "alice", "status": "completed", "credits_charged": 10},
    "courses/c_bob": {"user_id": "bob", "status": "completed", "credits_charged": 10},
    "podcast_jobs/j_alice": {"user_id": "alice", "status": "pending", "credits_deducted": 5},
    "podcast_jobs/j_bob": {"user_id": "bob", "status": "pending", "credits_deducted": 5},
    "subscriptions/s_kaiwa_alice": {"userId": "alice", "tierId": "plus", "status": "active"},
    "subscriptions/s_kaiwa_bob": {"userId": "bob", "tierId": "plus", "status": "active"},
    "subscriptions/s_kites_alice": {"stripe_customer_id": "cus_alice", "tier": "PRO"},
    "subscriptions/s_kites_bob": {"stripe_customer_id": "cus_bob", "tier": "PRO"},
    "subscriptions/s_nocustomer": {"tier": "PRO", "stripe_customer_id": None},
    "processed_invoices/in_1": {"subscription_id": "s_kites_alice", "amount": 1900},
    "model_provider_health/openai": {"provider": "openai", "status": "healthy"},
    "circuit_breakers/openai": {"provider": "openai", "state": "closed"},
    "model_quotas/openai_gpt-4o_tokens": {"provider": "openai", "limit": 1000, "used": 1},
    "routing_decisions/r1": {"job_id": "j_alice", "selected_model": "gpt-4o"},
    "model_router_alerts/a1": {"type": "QUOTA_WARNING", "severity": "warning"},
    "pipeline_config/flags": {"planner_enabled": True},
    "error_reports/e1": {"message": "boom"},
    "worker_errors/w1": {"message": "boom"},
    "userPreferences/alice": {"learningGoal": "Travel", "speakingLevel": 10},
    "userPreferences/bob": {"learningGoal": "Career", "speakingLevel": 50},
    "session/s1": {"userId": "alice", "expiresAt": NOW},
    "languages/ja": {"code": "ja", "name": "Japanese", "nativeName": "日本語"},
    "speakers/ja-jp-male": {"languageId": "ja", "gender": "male"},
    "tiers/free": {"monthlySeconds": 600, "monthlyPriceUsd": 0},
    "scenarios/sc_public": {"title": "Cafe", "isActive": True, "visibility": "public"},
    "scenarios/sc_draft": {
        "title": "Draft",
        "isActive": True,
        "visibility": "private",
        "createdByUserId": "bob",
    },
    "scenarioMetadata/sc_public": {"totalTimesUsed": 3, "averageRating": 4.5},
    "userScenarioProgress/alice_sc_public": {
        "userId": "alice",
        "scenarioId": "sc_public",
        "isSaved": False,
        "timesCompleted": 1,
    },
    "userScenarioProgress/bob_sc_public": {
        "userId": "bob",
        "scenarioId": "sc_public",
        "isSaved": True,
        "timesCompleted": 2,
    },
    "conversations/cv_alice": {"userId": "alice", "durationSeconds": 60},
    "conversations/cv_bob": {"userId": "bob", "durationSeconds": 60},
    "messages/m_alice": {"conversationId": "cv_alice", "role": "user", "content": "hi"},
    "messages/m_bob": {"conversationId": "cv_bob", "role": "user", "content": "hi"},
    "payments/p_alice": {"userId": "alice", "amount": 999, "currency": "usd"},
    "payments/p_bob": {"userId": "bob", "amount": 999, "currency": "usd"},
    "userUsage/alice_2026-01": {"userId": "alice", "period": "2026-01", "secondsUsed": 30},
    "userUsage/bob_2026-01": {"userId": "bob", "period": "2026-01", "secondsUsed": 30},
    "conversationSessions/cs_alice": {"userId": "alice", "durationSeconds": 60},
    "conversationSessions/cs_bob": {"userId": "bob", "durationSeconds": 60},
    "analyticsEvents/ev1": {"userId": "alice", "eventName": "signup", "ipAddress": "1.2.3.4"},
    "learningPaths/lp_template": {"isTemplate": True, "isPublic": True, "title": "JP 4 weeks"},
    "learningPaths/lp_unlisted": {"isTemplate": True, "isPublic": False, "title": "Draft"},
    "learningPaths/lp_alice": {"userId": "alice", "isTemplate": False, "isPublic": False},
    "learningPaths/lp_bob": {"userId": "bob", "isTemplate": False, "isPublic": False},
    "learningPathAssignments/la_alice": {
        "userId": "alice",
        "pathId": "lp_alice",
        "currentDayIndex": 3,
        "emailRemindersEnabled": False,
    },
    "learningPathAssignments/la_bob": {
        "userId": "bob",
        "pathId": "lp_bob",
        "currentDayIndex": 1,
        "emailRemindersEnabled": False,
    },
    "learningPathPreviews/pv_alice": {"userId": "alice", "status": "ready"},
    "learningPathPreviews/pv_bob": {"userId": "bob", "status": "ready"},
    "scenarioGenerationQueue/q1": {"pathId": "lp_alice", "dayIndex": 1, "status": "pending"},
    "ai_engine_costs/openai_chat_gpt4": {
        "engine_id": "openai_chat_gpt4",
        "cost_per_unit": 0.03,
        "unit_type": "1k_tokens",
        "updated_by": "admin_uid",
        "updated_at": NOW,
        "is_active": True,
    },
    "usage_logs/ul_alice": {"user_id": "alice", "real_cost_usd": 0.03, "credits_used": 5},
    "profit_aggregates/all_time": {"period_id": "all_time", "total_cost_usd": 1.0},
    "loss_users/alice": {"user_id": "alice", "total_profit_usd": -1.0},
    "profit_audit_log/pa1": {"action_type": "cost_updated", "changed_by": "admin_uid"},
    "daily_token_usage/alice_2026-01-04": {
        "userId": "alice",
        "date": "2026-01-04",
        "tokensUsed": 100,
        "tokenLimit": 10000,
    },
    "daily_token_usage/bob_2026-01-04": {
        "userId": "bob",
        "date": "2026-01-04",
        "tokensUsed": 100,
        "tokenLimit": 10000,
    },
    # Tampered: the field names alice but the id is not {alice}_{date}.
    "daily_token_usage/bob_2026-01-05": {
        "userId": "alice",
        "date": "2026-01-05",
        "tokensUsed": 1,
        "tokenLimit": 10000,
    },
    "token_usage_history/alice_2026_01": {"userId": "alice", "year": 2026, "month": 1},
    "token_usage_history/bob_2026_01": {"userId": "bob", "year": 2026, "month": 1},
    "jobs/jt_alice": {"user_id": "alice", "status": "RESERVED", "reserved_credits": 21},
    "jobs/jt_bob": {"user_id": "bob", "status": "RESERVED", "reserved_credits": 21},
    "jobs/jt_carol": {
        "user_id": "be_carol",
        "status": "RESERVED",
        "metadata": {"app_version": "1.0", "hardware_id": "HW-CAROL"},
    },
    "slips/sl_alice": {"user_id": "alice", "status": "VERIFIED", "amount_detected": 500},
    "slips/sl_bob": {"user_id": "bob", "status": "VERIFIED", "amount_detected": 500},
    "promo_redemptions/pr_alice": {"user_id": "alice", "promo_id": "promo1", "bonus_credits": 1},
    "promo_redemptions/pr_bob": {"user_id": "bob", "promo_id": "promo1", "bonus_credits": 1},
    "system_config/app_settings": {"exchange_rate": 4, "maintenance_mode": False},
    "audit_logs/al1": {"event_type": "TOPUP_SUCCESS", "user_id": "alice"},
    "promotions/promo1": {"name": "New year", "code": "SECRET", "status": "ACTIVE"},
    # The project's own bookkeeping.
    "ledger_postings/lp1": {"user_id": "alice", "key": "stripe:evt_1"},
    "credit_holds/h1": {"user_id": "alice", "amount": 21, "status": "PENDING"},
    "ledger_reconciliations/run1": {"clean": True},
    "stripe_events/evt_1": {"user_id": "alice", "type": "checkout.session.completed"},
    "billing_config/prices": {"price_1": 100},
    "plan_pricing/pro": {"user_id": "alice", "monthly_usd": "19.00"},
    "rate_limits/alice": {"user_id": "alice", "count": 1},
    # Sharded and grouped counters of the production sizing (docs/benchmarks.md).
    "promo_stats_shards/promo1_07": {"promo_id": "promo1", "redemptions": 3},
    "promo_counters/promo1": {"promo_id": "promo1", "redemptions": 3},
    "provider_event_windows/openai": {"provider": "openai", "tail": []},
    "usage_day_shards/2026-01-04_0517": {"day": "2026-01-04", "n": 2},
}


def owned(
    collection: str, mine: str, theirs: str, owner_field: str, write: dict[str, Any]
) -> list[Case]:
    """A user-owned, server-written collection: read own only, never write."""
    c = collection
    return [
        Case(c, "owner reads own", ALICE, "get", f"{c}/{mine}", True),
        Case(c, "owner lists own", ALICE, "list", c, True, where=(owner_field, "alice")),
        Case(c, "other user reads", BOB, "get", f"{c}/{mine}", False),
        Case(
            c,
            "other user lists someone else's",
            BOB,
            "list",
            c,
            False,
            where=(owner_field, "alice"),
        ),
        Case(c, "unfiltered list", ALICE, "list", c, False),
        Case(c, "unauthenticated reads", ANON, "get", f"{c}/{mine}", False),
        Case(c, "admin claim reads", ADMIN, "get", f"{c}/{theirs}", True),
        Case(c, "doc role is no admin", MALLORY, "get", f"{c}/{theirs}", False),
        Case(c, "owner tampers own", ALICE, "update", f"{c}/{mine}", False, data=write),
        Case(
            c,
            "owner forges new",
            ALICE,
            "create",
            f"{c}/forged",
            False,
            data={owner_field: "alice", **write},
        ),
        Case(c, "owner deletes own", ALICE, "delete", f"{c}/{mine}", False),
        Case(c, "admin writes", ADMIN, "update", f"{c}/{theirs}", False, data=write),
    ]


def admin_only(collection: str, doc: str, write: dict[str, Any]) -> list[Case]:
    """Server-written, admin-read collections."""
    c = collection
    return [
        Case(c, "user reads", ALICE, "get", f"{c}/{doc}", False),
        Case(c, "user lists", ALICE, "list", c, False),
        Case(c, "unauthenticated reads", ANON, "get", f"{c}/{doc}", False),
        Case(c, "admin claim reads", ADMIN, "get", f"{c}/{doc}", True),
        Case(c, "admin claim lists", ADMIN, "list", c, True),
        Case(c, "doc role is no admin", MALLORY, "get", f"{c}/{doc}", False),
        Case(c, "other role claim", FAKE_ADMIN, "get", f"{c}/{doc}", False),
        Case(c, "role claim in wrong case", WRONG_CASE_ADMIN, "get", f"{c}/{doc}", False),
        Case(c, "user writes", ALICE, "update", f"{c}/{doc}", False, data=write),
        Case(c, "admin writes", ADMIN, "update", f"{c}/{doc}", False, data=write),
        Case(c, "admin creates", ADMIN, "create", f"{c}/new_by_admin", False, data=write),
        Case(c, "admin deletes", ADMIN, "delete", f"{c}/{doc}", False),
    ]


def public_catalog(collection: str, doc: str, write: dict[str, Any]) -> list[Case]:
    """A catalog anyone may read and no client may write."""
    c = collection
    return [
        Case(c, "unauthenticated reads", ANON, "get", f"{c}/{doc}", True),
        Case(c, "unauthenticated lists", ANON, "list", c, True),
        Case(c, "user reads", ALICE, "get", f"{c}/{doc}", True),
        Case(c, "admin claim reads", ADMIN, "get", f"{c}/{doc}", True),
        Case(c, "user writes", ALICE, "update", f"{c}/{doc}", False, data=write),
        Case(c, "user creates", ALICE, "create", f"{c}/forged", False, data=write),
        Case(c, "admin writes", ADMIN, "update", f"{c}/{doc}", False, data=write),
        Case(c, "unauthenticated deletes", ANON, "delete", f"{c}/{doc}", False),
    ]


def _cases() -> list[Case]:
    cases: list[Case] = []
    # users: own profile only; balances and role never.
    u = "users"
    cases += [
        Case(u, "owner reads own", ALICE, "get", "users/alice", True),
        Case(u, "other user reads", BOB, "get", "users/alice", False),
        Case(u, "unauthenticated reads", ANON, "get", "users/alice", False),
        Case(u, "admin claim reads", ADMIN, "get", "users/alice", True),
        Case(u, "list of users", ALICE, "list", u, False),
        Case(
            u,
            "owner edits profile",
            ALICE,
            "update",
            "users/alice",
            True,
            data={"displayName": "Alice A.", "preferredUILanguageId": "en"},
        ),
        Case(
            u,
            "owner sets role",
            ALICE,
            "update",
            "users/alice",
            False,
            data={"role": "super_admin"},
        ),
        Case(
            u,
            "owner sets own balance",
            ALICE,
            "update",
            "users/alice",
            False,
            data={"credits_balance": 1_000_000},
        ),
        Case(
            u,
            "owner sets BigEye credits",
            ALICE,
            "update",
            "users/alice",
            False,
            data={"credits": 1_000_000},
        ),
        Case(u, "owner changes tier", ALICE, "update", "users/alice", False, data={"tier": "PRO"}),
        Case(
            u,
            "profile edit smuggles balance",
            ALICE,
            "update",
            "users/alice",
            False,
            data={"displayName": "x", "credits_balance": 5},
        ),
        Case(
            u,
            "profile field of wrong type",
            ALICE,
            "update",
            "users/alice",
            False,
            data={"displayName": 42},
        ),
        Case(
            u,
            "other user edits profile",
            BOB,
            "update",
            "users/alice",
            False,
            data={"displayName": "pwned"},
        ),
        Case(
            u,
            "client creates own user",
            ANON,
            "create",
            "users/newbie",
            False,
            data={"credits_balance": 10},
        ),
        Case(
            u,
            "signed-in creates own user",
            ("newbie", {}),
            "create",
            "users/newbie",
            False,
            data={"credits_balance": 10, "email": "n@example.com"},
        ),
        Case(
            u,
            "admin claim writes balance",
            ADMIN,
            "update",
            "users/bob",
            False,
            data={"credits_balance": 0},
        ),
        Case(u, "owner deletes self", ALICE, "delete", "users/alice", False),
        # Credentials, device and registration IP: no client reads them, not even the owner.
        Case(u, "BigEye owner reads own secrets", ("be_carol", {}), "get", "users/be_carol", False),
        Case(
            u,
            "owner reads own password hash",
            ("be_hashonly", {}),
            "get",
            "users/be_hashonly",
            False,
        ),
        Case(
            u, "owner reads own registration IP", ("be_ipnly", {}), "get", "users/be_ipnly", False
        ),
        Case(
            u, "owner reads own hardware id", ("be_devonly", {}), "get", "users/be_devonly", False
        ),
        Case(u, "other user reads BigEye secrets", BOB, "get", "users/be_carol", False),
        Case(u, "unauthenticated reads BigEye user", ANON, "get", "users/be_carol", False),
        Case(u, "admin claim reads BigEye user", ADMIN, "get", "users/be_carol", True),
        Case(
            u,
            "owner adds a registration IP",
            ALICE,
            "update",
            "users/alice",
            False,
            data={"metadata": {"registration_ip": "1.1.1.1"}},
        ),
        Case(
            u,
            "owner adds a hardware id",
            ALICE,
            "update",
            "users/alice",
            False,
            data={"hardware_id": "HW-X"},
        ),
    ]
    cases += owned("credit_transactions", "t_alice", "t_bob", "user_id", {"amount": 999})
    cases += owned("transactions", "bt_alice", "bt_bob", "user_id", {"amount": 999})
    cases += owned("courses", "c_alice", "c_bob", "user_id", {"status": "failed"})
    cases += owned("podcast_jobs", "j_alice", "j_bob", "user_id", {"status": "failed"})
    # Jobs record their device (metadata.hardware_id): a query cannot prove a result set
    # free of it, so clients read single jobs without device data and never list them.
    cases += [
        c
        for c in owned("jobs", "jt_alice", "jt_bob", "user_id", {"status": "COMPLETED"})
        if c.label != "owner lists own"
    ]
    cases += [
        Case("jobs", "owner lists own", ALICE, "list", "jobs", False, where=("user_id", "alice")),
        Case(
            "jobs",
            "owner reads job with device id",
            ("be_carol", {}),
            "get",
            "jobs/jt_carol",
            False,
        ),
        Case("jobs", "admin claim reads job with device id", ADMIN, "get", "jobs/jt_carol", True),
    ]
    cases += owned("slips", "sl_alice", "sl_bob", "user_id", {"status": "VERIFIED"})
    cases += owned("promo_redemptions", "pr_alice", "pr_bob", "user_id", {"bonus_credits": 9})
    cases += owned("payments", "p_alice", "p_bob", "userId", {"amount": 1})
    cases += owned("userUsage", "alice_2026-01", "bob_2026-01", "userId", {"secondsUsed": 0})
    cases += owned("conversations", "cv_alice", "cv_bob", "userId", {"durationSeconds": 0})
    cases += owned("conversationSessions", "cs_alice", "cs_bob", "userId", {"secondsConsumed": 0})
    cases += owned("learningPathPreviews", "pv_alice", "pv_bob", "userId", {"status": "committed"})
    cases += owned(
        "token_usage_history", "alice_2026_01", "bob_2026_01", "userId", {"totalMonthlyTokens": 0}
    )
    cases += owned(
        "daily_token_usage", "alice_2026-01-04", "bob_2026-01-04", "userId", {"tokensUsed": 0}
    )
    cases += [
        Case(
            "daily_token_usage",
            "tampered id with own userId",
            ALICE,
            "get",
            "daily_token_usage/bob_2026-01-05",
            False,
        ),
        Case(
            "daily_token_usage",
            "owner creates today's counter",
            ALICE,
            "create",
            "daily_token_usage/alice_2026-01-06",
            False,
            data={"userId": "alice", "date": "2026-01-06", "tokensUsed": 0},
        ),
    ]
    cases += owned(
        "userScenarioProgress", "alice_sc_public", "bob_sc_public", "userId", {"timesCompleted": 99}
    )
    p = "userScenarioProgress"
    cases += [
        Case(
            p,
            "owner saves and rates",
            ALICE,
            "update",
            f"{p}/alice_sc_public",
            True,
            data={"isSaved": True, "savedAt": NOW, "userRating": 5, "updatedAt": NOW},
        ),
        Case(
            p,
            "rating out of range",
            ALICE,
            "update",
            f"{p}/alice_sc_public",
            False,
            data={"userRating": 6},
        ),
        Case(
            p,
            "other user rates",
            BOB,
            "update",
            f"{p}/alice_sc_public",
            False,
            data={"userRating": 1},
        ),
        Case(
            p,
            "owner creates progress",
            BOB,
            "create",
            f"{p}/bob_sc_draft",
            True,
            data={"userId": "bob", "scenarioId": "sc_draft", "isSaved": True, "savedAt": NOW},
        ),
        Case(
            p,
            "create under someone else's id",
            BOB,
            "create",
            f"{p}/alice_sc_draft",
            False,
            data={"userId": "bob", "scenarioId": "sc_draft", "isSaved": True},
        ),
        Case(
            p,
            "create naming someone else",
            BOB,
            "create",
            f"{p}/bob_sc_x",
            False,
            data={"userId": "alice", "scenarioId": "sc_x", "isSaved": True},
        ),
        Case(
            p,
            "create for unknown scenario",
            ALICE,
            "create",
            f"{p}/alice_nope",
            False,
            data={"userId": "alice", "scenarioId": "nope", "isSaved": True},
        ),
        Case(
            p,
            "create with counters",
            ALICE,
            "create",
            f"{p}/alice_sc_draft",
            False,
            data={"userId": "alice", "scenarioId": "sc_draft", "timesCompleted": 50},
        ),
        Case(
            p,
            "unauthenticated creates",
            ANON,
            "create",
            f"{p}/x_sc_public",
            False,
            data={"userId": "x", "scenarioId": "sc_public"},
        ),
    ]
    # subscriptions: Kaiwa userId or KitesForU stripe_customer_id link.
    s = "subscriptions"
    cases += [
        Case(s, "owner reads Kaiwa subscription", ALICE, "get", f"{s}/s_kaiwa_alice", True),
        Case(
            s, "owner lists Kaiwa subscriptions", ALICE, "list", s, True, where=("userId", "alice")
        ),
        Case(s, "owner reads KitesForU subscription", ALICE, "get", f"{s}/s_kites_alice", True),
        Case(s, "other user reads Kaiwa", BOB, "get", f"{s}/s_kaiwa_alice", False),
        Case(s, "other user reads KitesForU", BOB, "get", f"{s}/s_kites_alice", False),
        Case(s, "no customer id matches nobody", MALLORY, "get", f"{s}/s_nocustomer", False),
        Case(s, "unknown user, no customer id", ("ghost", {}), "get", f"{s}/s_nocustomer", False),
        Case(s, "unauthenticated reads", ANON, "get", f"{s}/s_kites_alice", False),
        Case(s, "admin claim reads", ADMIN, "get", f"{s}/s_kites_bob", True),
        Case(
            s,
            "owner upgrades own tier",
            ALICE,
            "update",
            f"{s}/s_kaiwa_alice",
            False,
            data={"tierId": "premium"},
        ),
        Case(
            s,
            "owner forges subscription",
            ALICE,
            "create",
            f"{s}/forged",
            False,
            data={"userId": "alice", "status": "active"},
        ),
    ]
    # Kaiwa preferences: owner-written with fixed keys and validated values.
    up = "userPreferences"
    cases += [
        Case(up, "owner reads own", ALICE, "get", f"{up}/alice", True),
        Case(up, "other user reads", BOB, "get", f"{up}/alice", False),
        Case(up, "unauthenticated reads", ANON, "get", f"{up}/alice", False),
        Case(up, "admin claim reads", ADMIN, "get", f"{up}/alice", True),
        Case(
            up,
            "owner updates levels",
            ALICE,
            "update",
            f"{up}/alice",
            True,
            data={"speakingLevel": 40, "correctionStyle": "gentle", "targetLanguageId": "ja"},
        ),
        Case(
            up,
            "owner creates own",
            ("carol", {}),
            "create",
            f"{up}/carol",
            True,
            data={"learningGoal": "Culture", "readingLevel": 1, "specificGoals": ["order food"]},
        ),
        Case(
            up,
            "owner adds a foreign key",
            ALICE,
            "update",
            f"{up}/alice",
            False,
            data={"role": "super_admin"},
        ),
        Case(
            up,
            "level out of range",
            ALICE,
            "update",
            f"{up}/alice",
            False,
            data={"speakingLevel": 101},
        ),
        Case(
            up,
            "unknown goal",
            ALICE,
            "update",
            f"{up}/alice",
            False,
            data={"learningGoal": "Money"},
        ),
        Case(
            up,
            "unknown language",
            ALICE,
            "update",
            f"{up}/alice",
            False,
            data={"targetLanguageId": "xx"},
        ),
        Case(
            up, "other user writes", BOB, "update", f"{up}/alice", False, data={"speakingLevel": 1}
        ),
        Case(
            up,
            "create for someone else",
            BOB,
            "create",
            f"{up}/dave",
            False,
            data={"learningGoal": "Travel"},
        ),
        Case(up, "list everyone's", ALICE, "list", up, False),
        Case(up, "owner deletes", ALICE, "delete", f"{up}/alice", False),
    ]
    # Learning paths: public templates, own paths.
    lp = "learningPaths"
    cases += [
        Case(lp, "unauthenticated reads public template", ANON, "get", f"{lp}/lp_template", True),
        Case(lp, "unauthenticated lists public templates", ANON, "list", lp, False),
        Case(lp, "unlisted template is private", ANON, "get", f"{lp}/lp_unlisted", False),
        Case(lp, "owner reads own path", ALICE, "get", f"{lp}/lp_alice", True),
        Case(lp, "owner lists own", ALICE, "list", lp, True, where=("userId", "alice")),
        Case(lp, "other user reads", BOB, "get", f"{lp}/lp_alice", False),
        Case(lp, "admin claim reads", ADMIN, "get", f"{lp}/lp_unlisted", True),
        Case(
            lp,
            "owner publishes own path",
            ALICE,
            "update",
            f"{lp}/lp_alice",
            False,
            data={"isPublic": True, "isTemplate": True},
        ),
        Case(
            lp,
            "user creates path",
            ALICE,
            "create",
            f"{lp}/mine",
            False,
            data={"userId": "alice", "isTemplate": False},
        ),
    ]
    la = "learningPathAssignments"
    cases += owned(la, "la_alice", "la_bob", "userId", {"currentDayIndex": 28})
    cases += [
        Case(
            la,
            "owner toggles reminders",
            ALICE,
            "update",
            f"{la}/la_alice",
            True,
            data={"emailRemindersEnabled": True},
        ),
        Case(
            la,
            "reminders of wrong type",
            ALICE,
            "update",
            f"{la}/la_alice",
            False,
            data={"emailRemindersEnabled": "yes"},
        ),
        Case(
            la,
            "other user toggles",
            BOB,
            "update",
            f"{la}/la_alice",
            False,
            data={"emailRemindersEnabled": True},
        ),
    ]
    # Messages: through the conversation's owner.
    m = "messages"
    cases += [
        Case(m, "owner reads message", ALICE, "get", f"{m}/m_alice", True),
        Case(m, "other user reads", BOB, "get", f"{m}/m_alice", False),
        Case(m, "unauthenticated reads", ANON, "get", f"{m}/m_alice", False),
        Case(m, "admin claim reads", ADMIN, "get", f"{m}/m_bob", True),
        Case(
            m,
            "owner edits message",
            ALICE,
            "update",
            f"{m}/m_alice",
            False,
            data={"content": "edited"},
        ),
        Case(
            m,
            "owner plants message in other's conversation",
            ALICE,
            "create",
            f"{m}/planted",
            False,
            data={"conversationId": "cv_bob", "role": "assistant", "content": "x"},
        ),
    ]
    # Scenarios: public active catalog; private ones to their author.
    sc = "scenarios"
    cases += [
        Case(sc, "unauthenticated reads public", ANON, "get", f"{sc}/sc_public", True),
        Case(sc, "private hidden from others", ALICE, "get", f"{sc}/sc_draft", False),
        Case(sc, "author reads private", BOB, "get", f"{sc}/sc_draft", True),
        Case(sc, "admin claim reads", ADMIN, "get", f"{sc}/sc_draft", True),
        Case(
            sc,
            "author bumps usageCount",
            BOB,
            "update",
            f"{sc}/sc_draft",
            False,
            data={"usageCount": 1000},
        ),
        Case(
            sc,
            "user publishes scenario",
            ALICE,
            "create",
            f"{sc}/mine",
            False,
            data={"isActive": True, "visibility": "public", "createdByUserId": "alice"},
        ),
    ]
    sm = "scenarioMetadata"
    cases += [
        Case(sm, "signed-in user reads", ALICE, "get", f"{sm}/sc_public", True),
        Case(sm, "signed-in user lists", BOB, "list", sm, True),
        Case(sm, "unauthenticated reads", ANON, "get", f"{sm}/sc_public", False),
        Case(sm, "admin claim reads", ADMIN, "get", f"{sm}/sc_public", True),
        Case(
            sm,
            "user inflates rating",
            ALICE,
            "update",
            f"{sm}/sc_public",
            False,
            data={"averageRating": 5.0},
        ),
        Case(
            sm,
            "admin writes aggregate",
            ADMIN,
            "update",
            f"{sm}/sc_public",
            False,
            data={"totalTimesUsed": 0},
        ),
    ]
    cases += public_catalog("languages", "ja", {"name": "Klingon"})
    cases += public_catalog("speakers", "ja-jp-male", {"gender": "female"})
    cases += public_catalog("tiers", "free", {"monthlySeconds": 10**9})
    # Engine costs: admin claim may edit, as itself, audited by the trigger.
    ec = "ai_engine_costs"
    cases += admin_only_reads(ec, "openai_chat_gpt4")
    cases += [
        Case(
            ec,
            "admin edits cost as self",
            ADMIN,
            "update",
            f"{ec}/openai_chat_gpt4",
            True,
            data={"cost_per_unit": 0.031, "updated_by": "root", "updated_at": NOW},
        ),
        Case(
            ec,
            "admin forges updated_by",
            ADMIN,
            "update",
            f"{ec}/openai_chat_gpt4",
            False,
            data={"cost_per_unit": 0.02, "updated_by": "someone_else", "updated_at": NOW},
        ),
        Case(
            ec,
            "negative cost",
            ADMIN,
            "update",
            f"{ec}/openai_chat_gpt4",
            False,
            data={"cost_per_unit": -1.0, "updated_by": "root", "updated_at": NOW},
        ),
        Case(
            ec,
            "user edits cost",
            ALICE,
            "update",
            f"{ec}/openai_chat_gpt4",
            False,
            data={"cost_per_unit": 0.0, "updated_by": "alice", "updated_at": NOW},
        ),
        Case(
            ec,
            "doc role edits cost",
            MALLORY,
            "update",
            f"{ec}/openai_chat_gpt4",
            False,
            data={"cost_per_unit": 0.0, "updated_by": "mallory", "updated_at": NOW},
        ),
        Case(ec, "admin deletes engine", ADMIN, "delete", f"{ec}/openai_chat_gpt4", False),
    ]
    for collection, doc, write in (
        ("usage_logs", "ul_alice", {"real_cost_usd": 0.0}),
        ("profit_aggregates", "all_time", {"total_cost_usd": 0.0}),
        ("loss_users", "alice", {"total_profit_usd": 1.0}),
        ("profit_audit_log", "pa1", {"changed_by": "nobody"}),
        ("processed_invoices", "in_1", {"amount": 0}),
        ("model_provider_health", "openai", {"status": "unavailable"}),
        ("circuit_breakers", "openai", {"state": "open"}),
        ("model_quotas", "openai_gpt-4o_tokens", {"used": 0}),
        ("routing_decisions", "r1", {"selected_model": "x"}),
        ("model_router_alerts", "a1", {"acknowledged": True}),
        ("pipeline_config", "flags", {"planner_enabled": False}),
        ("error_reports", "e1", {"message": "x"}),
        ("worker_errors", "w1", {"message": "x"}),
        ("session", "s1", {"expiresAt": NOW}),
        ("analyticsEvents", "ev1", {"eventName": "x"}),
        ("scenarioGenerationQueue", "q1", {"status": "ready"}),
        ("system_config", "app_settings", {"maintenance_mode": True}),
        ("audit_logs", "al1", {"severity": "INFO"}),
        ("promotions", "promo1", {"status": "ACTIVE"}),
        ("ledger_postings", "lp1", {"key": "x"}),
        ("credit_holds", "h1", {"status": "RELEASED"}),
        ("ledger_reconciliations", "run1", {"clean": True}),
        ("stripe_events", "evt_1", {"type": "x"}),
        ("billing_config", "prices", {"price_1": 1}),
        ("plan_pricing", "pro", {"monthly_usd": "0"}),
        ("rate_limits", "alice", {"count": 0}),
        ("promo_stats_shards", "promo1_07", {"redemptions": 0}),
        ("promo_counters", "promo1", {"redemptions": 0}),
        ("provider_event_windows", "openai", {"tail": []}),
        ("usage_day_shards", "2026-01-04_0517", {"n": 0}),
    ):
        cases += admin_only(collection, doc, write)
    # Documents about alice in admin-only collections stay closed to alice herself.
    cases += [
        Case("usage_logs", "owner reads own log", ALICE, "get", "usage_logs/ul_alice", False),
        Case("loss_users", "owner reads own entry", ALICE, "get", "loss_users/alice", False),
        Case(
            "audit_logs",
            "owner lists own",
            ALICE,
            "list",
            "audit_logs",
            False,
            where=("user_id", "alice"),
        ),
    ]
    return cases


def admin_only_reads(collection: str, doc: str) -> list[Case]:
    c = collection
    return [
        Case(c, "user reads", ALICE, "get", f"{c}/{doc}", False),
        Case(c, "unauthenticated reads", ANON, "get", f"{c}/{doc}", False),
        Case(c, "admin claim reads", ADMIN, "get", f"{c}/{doc}", True),
        Case(c, "doc role is no admin", MALLORY, "get", f"{c}/{doc}", False),
        Case(c, "other role claim", FAKE_ADMIN, "get", f"{c}/{doc}", False),
    ]


CASES = _cases()


def seed_collections() -> set[str]:
    return {path.split("/", 1)[0] for path in SEED}


@pytest.fixture(scope="module")
def rules_env(stack: Any) -> Iterator[Any]:
    """The rules loaded and the matrix's documents seeded once for the module."""
    from shared.clients import firestore_client

    load_rules(stack.firestore_host, stack.config.project)
    stack.wipe()
    db = firestore_client()
    batch = db.batch()
    for path, data in SEED.items():
        batch.set(db.document(path), data)
    batch.commit()
    clients: dict[Any, RulesClient] = {}

    def client_for(who: Who) -> RulesClient:
        key = None if who is None else (who[0], tuple(sorted(who[1].items())))
        if key not in clients:
            token = None if who is None else unsigned_token(stack.config.project, who[0], **who[1])
            clients[key] = RulesClient(stack.firestore_host, stack.config.project, token)
        return clients[key]

    yield client_for
    stack.wipe()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rules_matrix(rules_env: Any, case: Case) -> None:
    client: RulesClient = rules_env(case.who)
    if case.op == "get":
        response = client.get(case.path)
    elif case.op == "list":
        response = client.list(case.path, case.where)
    elif case.op == "create":
        response = client.create(case.path, case.data)
    elif case.op == "update":
        response = client.update(case.path, case.data)
    else:
        response = client.delete(case.path)
    if case.allowed:
        assert response.status_code == 200, response.text[:500]
        if case.op == "list" and case.where is not None:
            rows = [r for r in response.json() if "document" in r]
            assert rows, "an allowed filtered list returned nothing"
    else:
        assert response.status_code == 403, response.text[:500]
        assert "PERMISSION_DENIED" in response.text


def test_every_seed_collection_has_five_cases() -> None:
    counts: dict[str, int] = {}
    for case in CASES:
        counts[case.collection] = counts.get(case.collection, 0) + 1
    seeds = {
        # 000 KitesForU
        "users",
        "courses",
        "podcast_jobs",
        "credit_transactions",
        "subscriptions",
        "processed_invoices",
        "model_provider_health",
        "model_quotas",
        "routing_decisions",
        "model_router_alerts",
        "pipeline_config",
        "circuit_breakers",
        "error_reports",
        "worker_errors",
        # 001 Kaiwa
        "userPreferences",
        "session",
        "languages",
        "speakers",
        "conversations",
        "messages",
        "scenarios",
        "scenarioMetadata",
        "userScenarioProgress",
        "tiers",
        "payments",
        "userUsage",
        "conversationSessions",
        "analyticsEvents",
        "learningPaths",
        "learningPathAssignments",
        "learningPathPreviews",
        "scenarioGenerationQueue",
        # 002 Profit
        "ai_engine_costs",
        "usage_logs",
        "profit_aggregates",
        "loss_users",
        "profit_audit_log",
        # 003 Tokens
        "daily_token_usage",
        "token_usage_history",
        # 004 BigEye
        "jobs",
        "transactions",
        "slips",
        "system_config",
        "audit_logs",
        "promotions",
        "promo_redemptions",
    }
    missing = {c for c in seeds if counts.get(c, 0) < 5}
    assert not missing, f"collections with fewer than five cases: {sorted(missing)}"
    assert seeds <= seed_collections()


def test_denied_writes_changed_nothing(rules_env: Any) -> None:
    """After the matrix, every protected document is exactly as seeded."""
    from shared.clients import firestore_client

    db = firestore_client()
    client_writable = {
        "users/alice",
        "userScenarioProgress/alice_sc_public",
        "userPreferences/alice",
        "learningPathAssignments/la_alice",
        "ai_engine_costs/openai_chat_gpt4",
        # Server-maintained by the userScenarioProgress trigger after allowed writes.
        "scenarioMetadata/sc_public",
    }
    for path, data in SEED.items():
        if path in client_writable:
            continue
        snap = db.document(path).get()
        assert snap.exists, path
        assert snap.to_dict() == data, path
    alice = db.document("users/alice").get().to_dict() or {}
    assert alice["credits_balance"] == 100
    assert "role" not in alice
    for forged in ("credit_transactions/forged", "users/newbie", "transactions/forged"):
        assert not db.document(forged).get().exists


def test_a_rules_syntax_error_is_rejected(stack: Any) -> None:
    with pytest.raises(AssertionError, match="rules rejected"):
        load_rules(stack.firestore_host, stack.config.project, "rules_version = '2'; nope {")
    load_rules(stack.firestore_host, stack.config.project)
