"""Signed events with randomly broken fields: a 200 (applied, or parked with the reason so
a fix and a replay recover it), never a 500 and never a partial effect."""

from __future__ import annotations

import copy
import random
from typing import Any

from devstack import stripe_send as fx
from shared.billing import list_parked_events
from tests.stripe.support import assert_balance_is_sum, deliver, make_user

ODD_VALUES: list[Any] = [None, "", "x/y", -1, 10**20, 3.5, [], {}, True, "evt_ok", {"id": 5}]


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))] or [path]
    return [path]


def _set(root: Any, path: tuple[Any, ...], new: Any) -> None:
    for key in path[:-1]:
        root = root[key]
    root[path[-1]] = new


def _valid_events() -> list[dict[str, Any]]:
    sub = fx.subscription(
        subscription_id="sub_m",
        customer="cus_m",
        price_id="price_kites_pro_monthly",
        period_start=1_767_225_600,
        period_end=1_769_904_000,
        user_id="u_m",
    )
    inv = fx.invoice(
        invoice_id="in_m",
        subscription_id="sub_m",
        customer="cus_m",
        price_id="price_kites_pro_monthly",
        period_start=1_767_225_600,
        period_end=1_769_904_000,
        payment_intent="pi_m_inv",
        user_id="u_m",
    )
    return [
        fx.event(
            "checkout.session.completed",
            fx.checkout_session(
                user_id="u_m", price_id="price_credits_500", payment_intent="pi_m", customer="cus_m"
            ),
        ),
        fx.event("customer.subscription.created", sub),
        fx.event("customer.subscription.updated", sub),
        fx.event("customer.subscription.deleted", sub),
        fx.event("invoice.paid", inv),
        fx.event("invoice.payment_failed", inv),
        fx.event(
            "charge.refunded", fx.charge(payment_intent="pi_m", amount=500, amount_refunded=250)
        ),
        fx.event("charge.dispute.created", fx.dispute(payment_intent="pi_m", amount=500)),
    ]


def test_mutated_events_never_cause_a_server_error(billing: Any, stack: Any) -> None:
    make_user(billing, "u_m")
    rng = random.Random(31337)
    statuses: dict[int, int] = {}
    for base in _valid_events():
        paths = [p for p in _leaves(base["data"]["object"]) if p]
        for _ in range(6):
            evt = copy.deepcopy(base)
            evt["id"] = fx.new_id("evt")
            for _ in range(rng.randint(1, 3)):
                _set(evt["data"]["object"], rng.choice(paths), rng.choice(ODD_VALUES))
            if rng.random() < 0.2:
                evt["created"] = rng.choice(ODD_VALUES)
            response = deliver(stack, evt)
            assert response.status_code in (200, 400), (response.status_code, response.text)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    assert statuses.get(200)
    reasons = [p["reason"] for p in list_parked_events(billing, limit=1000)]
    assert any(r.startswith("rejected by the") for r in reasons), reasons
    assert_balance_is_sum(billing, "u_m")
