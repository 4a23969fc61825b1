"""Balance (rates, exchange rate, promotions shown) and history (newest first, pages)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from devstack.demo.bigeye import CREDIT_RATES, tiered_promotion
from shared.clock import FixedClock
from shared.ledger import BIGEYE, Kind, Ledger, Refs, TopupMeta
from tests.bigeye_api.client import api_url, give_credits, register_and_login

SEED_TIERS = [
    {"min_baht": 100, "max_baht": 299, "credits": 400},
    {"min_baht": 300, "max_baht": 499, "credits": 1300},
    {"min_baht": 500, "max_baht": None, "credits": 2200},
]


def _promo(name: str, now: datetime, **changes: Any) -> dict[str, Any]:
    """004's TIERED_BONUS example, ending 2027-02-28, with ``changes``."""
    end = datetime(2027, 2, 28, 23, 59, 59, tzinfo=UTC)
    return tiered_promotion(now, **{"name": name, "conditions__end_date": end, **changes})


def test_balance_shows_rates_exchange_rate_and_only_the_promotions_to_show(stack, bigeye) -> None:
    session = register_and_login(stack.base_url)
    give_credits(bigeye, session.user_id, 500)
    now = datetime.now(UTC)
    promos = bigeye.collection("promotions")
    promos.document("newyear").set(_promo("โปรปีใหม่", now))
    promos.document("hidden").set(_promo("hidden", now, display__show_in_client=False))
    promos.document("paused").set(_promo("paused", now, status="PAUSED"))
    promos.document("over").set(_promo("over", now, conditions__end_date=now - timedelta(1)))
    promos.document("later").set(_promo("later", now, conditions__start_date=now + timedelta(1)))
    response = session.get("credit/balance")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "credits": 500,
        "credit_rates": CREDIT_RATES,
        "exchange_rate": 4,
        "active_promos": [
            {
                "name": "โปรปีใหม่",
                "type": "TIERED_BONUS",
                "display": {
                    "banner_text": "🎄 เติม 500+ รับ 2,200 cr!",
                    "banner_color": "#FF4560",
                    "show_in_client": True,
                    "show_in_topup": True,
                },
                "conditions": {"min_topup_baht": 100, "end_date": "2027-02-28T23:59:59Z"},
                "reward": {"type": "TIERED_BONUS", "tiers": SEED_TIERS},
            }
        ],
    }


def _post(
    db,
    user_id: str,
    at: datetime,
    amount: int,
    description: str,
    key: str,
    kind: Kind = Kind.BONUS,
    refs: Refs = Refs(),
) -> None:
    ledger = Ledger(db, BIGEYE, FixedClock(at))
    ledger.run(
        lambda unit: ledger.credit(
            unit,
            user_id=user_id,
            kind=kind,
            amount=amount,
            key=key,
            description=description,
            refs=refs,
        )
    )


def test_history_matches_the_seed_example(stack, bigeye) -> None:
    session = register_and_login(stack.base_url)
    _post(
        bigeye,
        session.user_id,
        datetime(2026, 2, 1, 3, 0, tzinfo=UTC),
        500,
        "Welcome bonus",
        "welcome",
    )
    _post(
        bigeye,
        session.user_id,
        datetime(2026, 2, 8, 10, 0, tzinfo=UTC),
        2000,
        "Top-up 500 THB → 2000 credits",
        "slip:T1",
        kind=Kind.TOPUP,
        refs=Refs(
            reference_id="slip1", topup=TopupMeta(baht_amount=500, slip_ref="T1", base_credits=2000)
        ),
    )
    response = session.get("credit/history")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "transactions": [
            # 10:00 UTC is 17:00 in Asia/Bangkok (settings.display_timezone).
            {
                "date": "2026-02-08 17:00",
                "description": "Top-up 500 THB → 2000 credits",
                "amount": 2000,
                "type": "TOPUP",
            },
            {
                "date": "2026-02-01 10:00",
                "description": "Welcome bonus",
                "amount": 500,
                "type": "BONUS",
            },
        ],
        "balance": 2500,
    }
    assert "X-Next-Cursor" not in response.headers


def test_history_pages_with_limit_and_cursor(stack, bigeye) -> None:
    session = register_and_login(stack.base_url)
    other = register_and_login(stack.base_url)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for i in range(5):
        _post(bigeye, session.user_id, start + timedelta(hours=i), 10 + i, f"credit {i}", f"k{i}")
    _post(bigeye, other.user_id, start, 99, "someone else", "other")
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        response = session.get("credit/history", params=params)
        assert response.status_code == 200, response.text
        page = response.json()["transactions"]
        assert len(page) <= 2
        seen += [t["amount"] for t in page]
        pages += 1
        cursor = response.headers.get("X-Next-Cursor")
        if not cursor:
            break
    assert seen == [14, 13, 12, 11, 10] and pages == 3
    # Someone else's transaction id is not a cursor for this user.
    foreign = next(
        s.id
        for s in bigeye.collection("transactions").stream()
        if s.get("user_id") == other.user_id
    )
    response = session.get("credit/history", params={"cursor": foreign})
    assert response.status_code == 400 and response.json() == {"detail": "cursor is not valid"}
    for bad in ("0", "101", "abc", "-1"):
        response = session.get("credit/history", params={"limit": bad})
        assert response.status_code == 400, bad
        assert "limit" in response.json()["detail"]


def test_history_and_balance_need_a_token(stack, bigeye) -> None:
    for path in ("credit/history", "credit/balance"):
        response = httpx.get(api_url(stack.base_url, path), timeout=30)
        assert response.status_code == 401 and response.json() == {"detail": "Missing token"}
