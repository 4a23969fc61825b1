"""Documents the console tests act on, each as the project's own services write them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

LOSS_USER = "loser1"
BIGEYE_USER = "eye1"
PROMO = "songkran"


def loss_user(db: Any, user_id: str = LOSS_USER, now: datetime | None = None) -> None:
    """A ``loss_users`` entry as the hourly loss scan creates it (002's fields)."""
    now = now or datetime.now(UTC)
    db.collection("loss_users").document(user_id).set(
        {
            "user_id": user_id,
            "email": f"{user_id}@example.com",
            "subscription_plan": "free",
            "total_cost_usd": 12.5,
            "total_revenue_usd": 2.0,
            "total_profit_usd": -10.5,
            "profit_margin_percent": -525.0,
            "total_generations": 40,
            "most_used_engine": "openai_chat_gpt4",
            "most_expensive_engine": "openai_chat_gpt4",
            "detected_at": now - timedelta(days=3),
            "last_checked_at": now,
            "days_in_loss": 4,
            "alert_sent": True,
            "alert_sent_at": now - timedelta(days=3),
            "action_taken": None,
            "notes": None,
        }
    )


def provider_outage(db: Any, provider: str = "openai", failures: int = 5) -> list[str]:
    """Demo providers, then ``failures`` failed calls through the provider service: the
    breaker opens and the service raises its alerts. Returns the open alerts' ids."""
    from devstack.demo import providers
    from shared.admin.router import list_alerts
    from shared.providers.core import Outcome
    from shared.providers.service import ProviderEvent, record_event

    now = datetime.now(UTC)
    providers.seed(db, now)
    for n in range(failures):
        event = ProviderEvent(
            event_id=f"console-{provider}-{n}",
            provider=provider,
            model_id="gpt-4o",
            outcome=Outcome.FAILURE,
            latency_ms=120,
            error="upstream 503",
            occurred_at=now - timedelta(seconds=failures - n),
        )
        record_event(db, event, now=now)
    return [a["alert_id"] for a in list_alerts(db)]


def bigeye_user(db: Any, user_id: str = BIGEYE_USER, credits: int = 0) -> str:
    """A BigEye account; its credits come from a ledger grant, so it reconciles clean."""
    from shared.admin import operations
    from shared.ledger import ledger_for
    from tests.bigeye_money.conftest import make_user

    make_user(db, user_id)
    if credits:
        operations.grant(
            ledger_for("bigeye"),
            user_id=user_id,
            amount=credits,
            actor="seed",
            reason="test credits",
            key=f"seed:{user_id}",
            now=datetime.now(UTC),
        )
    return user_id


def open_hold(user_id: str, hold_id: str, amount: int) -> None:
    """A PENDING hold through the BigEye ledger (an open reservation)."""
    from shared.ledger import ledger_for

    ledger = ledger_for("bigeye")
    ledger.run(
        lambda unit: ledger.hold(
            unit,
            user_id=user_id,
            hold_id=hold_id,
            amount=amount,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            description="console test reservation",
        )
    )


def promotions_and_settings(db: Any) -> None:
    """BigEye's demo ``system_config/app_settings`` and promotion."""
    from devstack.demo import bigeye

    bigeye.seed(db, datetime.now(UTC))
