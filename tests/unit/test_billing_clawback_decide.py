"""decide_clawback: the pure rule of a refund or dispute (no emulator)."""

from __future__ import annotations

from typing import Any

from shared.billing.events import Charge, Dispute
from shared.billing.rules import decide_clawback, kaiwa_refund_updates


def _pay(**kw: Any) -> dict[str, Any]:
    return {
        "user_id": "u1",
        "transaction_id": "tx1",
        "credits": 2000,
        "amount": 1800,
        "refund_clawed": 0,
        "dispute_clawed": 0,
        "clawed_credits": 0,
        "amount_refunded": 0,
        "disputes": [],
        **kw,
    }


def _charge(refunded: int, amount: int = 1800) -> Charge:
    return Charge.model_validate(
        {"id": "ch_1", "amount": amount, "amount_refunded": refunded, "payment_intent": "pi_1"}
    )


def _dispute(amount: int = 1800, dispute_id: str = "dp_1") -> Dispute:
    return Dispute.model_validate(
        {"id": dispute_id, "amount": amount, "charge": "ch_1", "payment_intent": "pi_1"}
    )


def test_a_partial_refund_claws_back_in_proportion() -> None:
    plan = decide_clawback(_pay(), _charge(600), refundable=2000)
    assert plan.amount == 666
    assert plan.payment_updates == {
        "refund_clawed": 666,
        "amount_refunded": 600,
        "charge_id": "ch_1",
    }
    assert plan.kaiwa_updates is None and plan.kaiwa_disputed_id is None


def test_refunds_are_cumulative_and_an_older_one_changes_nothing() -> None:
    pay = _pay(refund_clawed=2000, clawed_credits=2000, amount_refunded=1800)
    plan = decide_clawback(pay, _charge(600), refundable=0)
    assert plan.amount == 0
    assert plan.payment_updates["refund_clawed"] == 2000
    assert plan.payment_updates["amount_refunded"] == 1800


def test_the_ledgers_refundable_figure_bounds_the_clawback() -> None:
    # 500 already refunded by a linked REFUND the ledger did not post: 1500 is left.
    plan = decide_clawback(_pay(), _charge(1800), refundable=1500)
    assert plan.amount == 1500
    assert plan.payment_updates["refund_clawed"] == 2000  # what Stripe's refund asked for
    assert decide_clawback(_pay(), _charge(1800), refundable=0).amount == 0


def test_an_unknown_refundable_figure_leaves_the_amount_to_the_ledger() -> None:
    assert decide_clawback(_pay(), _charge(1800), refundable=None).amount == 2000


def test_a_dispute_once_per_dispute_and_kaiwa_marked_only_when_clawing() -> None:
    pay = _pay(kaiwa_payment_id="kp_1")
    plan = decide_clawback(pay, _dispute(900), refundable=2000, profile="kaiwa")
    assert plan.amount == 1000 and plan.kaiwa_disputed_id == "kp_1"
    assert plan.payment_updates == {
        "dispute_clawed": 1000,
        "disputes": ["dp_1"],
        "charge_id": "ch_1",
    }
    again = decide_clawback(
        _pay(kaiwa_payment_id="kp_1", disputes=["dp_1"]), _dispute(900), refundable=1000
    )
    assert again.amount == 0 and again.kaiwa_disputed_id is None
    other = decide_clawback(pay, _dispute(900), refundable=2000, profile="kitesforu")
    assert other.kaiwa_disputed_id is None


def test_kaiwa_refund_updates_are_cumulative() -> None:
    assert kaiwa_refund_updates({}, _charge(600)) == {
        "amountRefunded": 600,
        "status": "partially_refunded",
    }
    assert kaiwa_refund_updates({"amountRefunded": 1800}, _charge(600)) == {
        "amountRefunded": 1800,
        "status": "refunded",
    }
    done = {"amountRefunded": 1800, "status": "refunded"}
    assert kaiwa_refund_updates(done, _charge(1800)) is None
    assert kaiwa_refund_updates({}, _charge(0)) is None
    plan = decide_clawback(_pay(), _charge(1800), refundable=2000, kaiwa_payment={})
    assert plan.kaiwa_updates == {"amountRefunded": 1800, "status": "refunded"}
