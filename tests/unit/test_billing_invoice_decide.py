"""decide_invoice_paid: the pure plan of a paid subscription invoice (no emulator)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.billing.events import Invoice
from shared.billing.rules import BillingConfig, decide_invoice_paid, invoice_payment_keys

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SNAPSHOT = {
    "subscription_id": "sub_1",
    "customer_id": "cus_1",
    "status": "active",
    "price_id": "price_pro",
    "tier": "PRO",
    "monthly_credits": 3000,
    "current_period_start": 1700000000,
    "current_period_end": 1702592000,
    "cancel_at_period_end": False,
}


def _invoice(**kw: Any) -> Invoice:
    return Invoice.model_validate(
        {
            "id": "in_1",
            "customer": "cus_1",
            "billing_reason": "subscription_cycle",
            "amount_paid": 900,
            "total": 900,
            "currency": "usd",
            "subscription_id": "sub_1",
            "period_end": 1700000000,
            **kw,
        }
    )


def _decide(inv: Invoice, profile: str = "kitesforu", **kw: Any) -> Any:
    args: dict[str, Any] = {
        "config": BillingConfig(),
        "profile": profile,
        "sub_id": "sub_1",
        "user_id": "u1",
        "state": {"snapshot": SNAPSHOT, "granted_periods": []},
        "link": {},
        "now": NOW,
        **kw,
    }
    return decide_invoice_paid(inv, **args)


def test_a_renewal_grants_the_stored_plan_and_marks_its_period() -> None:
    plan = _decide(_invoice(payment_intent="pi_1"))
    assert plan.grant.credits == 3000
    assert plan.state["granted_periods"] == [1700000000]
    assert plan.state["user_id"] == "u1" and plan.state["customer_id"] == "cus_1"
    assert plan.state["updated_at"] == NOW
    assert plan.granted_this_period is True
    assert plan.payment_keys == ["pi_1"]
    assert plan.payment_record is not None
    assert plan.payment_record["credits"] == 3000 and plan.payment_record["invoice_id"] == "in_1"
    assert plan.payment_record["price_ids"] == ["price_pro"]
    assert plan.payment_record["kaiwa_payment_id"] is None
    assert plan.processed == {
        "subscription_id": "sub_1",
        "processed_at": NOW,
        "amount": 900,
        "currency": "usd",
    }
    assert plan.link["payment_keys"] == ["pi_1"] and plan.link["payment_intent"] == "pi_1"
    assert plan.kaiwa_payment is None


def test_nothing_paid_grants_nothing_and_writes_no_payment_record() -> None:
    plan = _decide(_invoice(amount_paid=0, total=0))
    assert plan.grant.credits == 0 and plan.payment_record is None
    assert plan.state["granted_periods"] == []
    assert plan.granted_this_period is False


def test_the_links_payments_join_the_invoices_own() -> None:
    link = {"payment_keys": ["pi_b"], "payment_intent": "pi_b", "note": "kept"}
    inv = _invoice(charge="ch_a")
    assert invoice_payment_keys(inv, link) == ["ch_a", "pi_b"]
    plan = _decide(inv, link=link)
    assert plan.payment_keys == ["ch_a", "pi_b"]
    assert plan.link["payment_intent"] == "pi_b" and plan.link["note"] == "kept"


def test_kaiwa_writes_its_payment_and_no_period_flag() -> None:
    plan = _decide(_invoice(payment_intent="pi_1"), profile="kaiwa")
    assert plan.granted_this_period is None
    assert plan.kaiwa_payment is not None and plan.kaiwa_payment["status"] == "succeeded"
    assert plan.payment_record is not None
    assert plan.payment_record["kaiwa_payment_id"] == plan.link["kaiwa_payment_id"]
