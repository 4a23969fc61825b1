"""The pure promotions engine: the seed's examples and properties (hypothesis), no I/O."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.demo.bigeye import tiered_promotion
from shared.bigeye.promotions import (
    Customer,
    Ineligible,
    InvalidPromotion,
    Occasion,
    PromoCodeRejected,
    Promotion,
    PromoType,
    Redemptions,
    RewardType,
    client_list,
    ineligibility,
    parse_promotion,
    quote_topup,
    quote_usage,
    quote_welcome,
)
from shared.errors import Conflict

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
RATE = Decimal(4)
TIERED = parse_promotion("tiered", tiered_promotion(NOW))


def promo(promo_id: str = "p", **changes: Any) -> Promotion:
    doc: dict[str, Any] = {
        "name": promo_id,
        "code": None,
        "type": "FLAT_BONUS",
        "status": "ACTIVE",
        "priority": 0,
        "conditions": {"start_date": NOW - timedelta(days=1), "end_date": NOW + timedelta(days=1)},
        "reward": {"type": "BONUS_CREDITS", "bonus_credits": 50},
        "display": {"show_in_client": True},
    }
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".", 1)
            doc[outer][inner] = value
        else:
            doc[key] = value
    return parse_promotion(promo_id, doc)


@pytest.mark.parametrize(
    ("baht", "total"),
    [(100, 400), (299, 1196), (300, 1300), (499, 2096), (500, 2200), (700, 3000), (99, 396)],
)
def test_seed_tier_example(baht, total) -> None:
    quote = quote_topup([TIERED], baht=Decimal(baht), exchange_rate=RATE, now=NOW)
    assert quote.total_credits == total
    assert quote.base_credits == baht * 4


def test_each_reward_type() -> None:
    amount = Decimal(250)
    flat = promo(**{"reward.bonus_credits": 70})
    pct = promo(**{"reward": {"type": "PERCENTAGE_BONUS", "bonus_percentage": 12.5}})
    rate = promo(type="RATE_BOOST", **{"reward": {"type": "RATE_OVERRIDE", "override_rate": 5}})
    lower = promo(type="RATE_BOOST", **{"reward": {"type": "RATE_OVERRIDE", "override_rate": 3}})
    assert quote_topup([flat], baht=amount, exchange_rate=RATE, now=NOW).bonus_credits == 70
    assert quote_topup([pct], baht=amount, exchange_rate=RATE, now=NOW).bonus_credits == 125
    assert quote_topup([rate], baht=amount, exchange_rate=RATE, now=NOW).bonus_credits == 250
    none = quote_topup([lower], baht=amount, exchange_rate=RATE, now=NOW)
    assert none.bonus_credits == 0 and none.promotion is None


def test_every_condition() -> None:
    young = Customer(created_at=NOW - timedelta(hours=1))
    old = Customer(created_at=NOW - timedelta(days=10), has_topped_up=True)

    def why(
        p: Promotion,
        customer: Customer = young,
        used: Redemptions = Redemptions(),
        baht: int = 100,
        code: str | None = None,
        now: datetime = NOW,
    ) -> Ineligible | None:
        return ineligibility(
            p,
            Occasion.TOPUP,
            now=now,
            code=code,
            customer=customer,
            redemptions=used,
            baht=Decimal(baht),
        )

    assert why(promo()) is None
    assert why(promo(status="PAUSED")) is Ineligible.NOT_ACTIVE
    assert why(promo(), now=NOW - timedelta(days=2)) is Ineligible.NOT_STARTED
    assert why(promo(), now=NOW + timedelta(days=2)) is Ineligible.ENDED
    assert why(promo(type="WELCOME_BONUS")) is Ineligible.OTHER_OCCASION
    assert why(promo(**{"conditions.min_topup_baht": 101})) is Ineligible.BELOW_MIN
    assert why(promo(**{"conditions.max_topup_baht": 99})) is Ineligible.ABOVE_MAX
    assert why(promo(**{"conditions.max_redemptions": 3}), used=Redemptions(3, 0)) is (
        Ineligible.SOLD_OUT
    )
    assert why(promo(**{"conditions.max_per_user": 1}), used=Redemptions(5, 1)) is (
        Ineligible.USER_LIMIT
    )
    assert why(promo(**{"conditions.new_users_only": True}), customer=old) is (
        Ineligible.NOT_NEW_USER
    )
    assert why(promo(**{"conditions.first_topup_only": True}), customer=old) is (
        Ineligible.NOT_FIRST_TOPUP
    )
    assert why(promo(type="FIRST_TOPUP"), customer=old) is Ineligible.NOT_FIRST_TOPUP
    coded = promo(code="Hello", **{"conditions.require_code": True})
    assert why(coded) is Ineligible.CODE_REQUIRED
    assert why(coded, code="hello ") is None


def test_codes() -> None:
    coded = promo(
        "c", code="VIP", priority=-5, **{"conditions.require_code": True, "reward.bonus_credits": 9}
    )
    best = promo("b", priority=5, **{"reward.bonus_credits": 1})
    assert (
        quote_topup(
            [coded, best], baht=Decimal(10), exchange_rate=RATE, now=NOW, code="vip"
        ).promo_id
        == "c"
    )
    assert quote_topup([coded, best], baht=Decimal(10), exchange_rate=RATE, now=NOW).promo_id == "b"
    with pytest.raises(PromoCodeRejected, match="unknown"):
        quote_topup([coded], baht=Decimal(10), exchange_rate=RATE, now=NOW, code="nope")
    with pytest.raises(Conflict, match="no redemptions left"):
        quote_topup(
            [promo("d", code="X", **{"conditions.max_redemptions": 1})],
            baht=Decimal(10),
            exchange_rate=RATE,
            now=NOW,
            code="x",
            redemptions={"d": Redemptions(1, 0)},
        )


def test_welcome_and_usage_occasions() -> None:
    welcome = promo("w", type="WELCOME_BONUS", **{"reward.bonus_credits": 30})
    usage = promo(
        "u", type="USAGE_REWARD", **{"reward": {"type": "PERCENTAGE_BONUS", "bonus_percentage": 10}}
    )
    both = [welcome, usage, TIERED]
    assert quote_welcome(both, now=NOW, customer=Customer(NOW)).promo_id == "w"
    assert quote_usage(both, credits_used=40, now=NOW, customer=Customer(NOW)).bonus_credits == 4
    assert quote_topup(both, baht=Decimal(500), exchange_rate=RATE, now=NOW).promo_id == "tiered"


@pytest.mark.parametrize(
    "doc",
    [
        {
            "type": "NOPE",
            "status": "ACTIVE",
            "reward": {"type": "BONUS_CREDITS", "bonus_credits": 1},
        },
        {"type": "FLAT_BONUS", "status": "ACTIVE", "reward": {"type": "BONUS_CREDITS"}},
        {
            "type": "FLAT_BONUS",
            "status": "ACTIVE",
            "reward": {"type": "BONUS_CREDITS", "bonus_credits": -1},
        },
        {
            "type": "FLAT_BONUS",
            "status": "ACTIVE",
            "reward": {"type": "BONUS_CREDITS", "bonus_credits": 1.5},
        },
        {
            "type": "FLAT_BONUS",
            "status": "ACTIVE",
            "reward": {"type": "TIERED_BONUS", "tiers": "x"},
        },
        {
            "type": "FLAT_BONUS",
            "status": "ACTIVE",
            "reward": {"type": "BONUS_CREDITS", "bonus_credits": 1},
            "conditions": {"require_code": True},
        },
        {
            "type": "FLAT_BONUS",
            "status": "ACTIVE",
            "reward": {"type": "BONUS_CREDITS", "bonus_credits": 1},
            "conditions": {"start_date": "yesterday"},
        },
    ],
)
def test_unreadable_promotions_are_refused(doc) -> None:
    with pytest.raises(InvalidPromotion):
        parse_promotion("bad", doc)


def test_client_list_is_shaped_like_the_seed_example() -> None:
    hidden = promo("hidden", **{"display": {"show_in_client": False}})
    paused = promo("paused", status="PAUSED")
    (entry,) = client_list([TIERED, hidden, paused], NOW)
    assert entry == {
        "name": "โปรปีใหม่",
        "type": "TIERED_BONUS",
        "display": {
            "banner_text": "🎄 เติม 500+ รับ 2,200 cr!",
            "banner_color": "#FF4560",
            "show_in_client": True,
            "show_in_topup": True,
        },
        "conditions": {
            "min_topup_baht": 100,
            "end_date": (NOW + timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "reward": {
            "type": "TIERED_BONUS",
            "tiers": [
                {"min_baht": 100, "max_baht": 299, "credits": 400},
                {"min_baht": 300, "max_baht": 499, "credits": 1300},
                {"min_baht": 500, "max_baht": None, "credits": 2200},
            ],
        },
    }


# -- properties ----------------------------------------------------------------------------
bahts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100_000), places=2)
rates = st.sampled_from([Decimal(1), Decimal(4), Decimal("4.5"), Decimal(10)])
reward_docs = st.one_of(
    st.builds(lambda n: {"type": "BONUS_CREDITS", "bonus_credits": n}, st.integers(0, 10_000)),
    st.builds(lambda p: {"type": "PERCENTAGE_BONUS", "bonus_percentage": p}, st.integers(0, 200)),
    st.builds(lambda r: {"type": "RATE_OVERRIDE", "override_rate": r}, st.integers(0, 20)),
    st.just(tiered_promotion(NOW)["reward"]),
)
promo_docs = st.builds(
    lambda i, t, pr, rw, mn, mr, used: (
        promo(
            f"p{i}",
            type=t,
            priority=pr,
            reward=rw,
            **{"conditions.min_topup_baht": mn, "conditions.max_redemptions": mr},
        ),
        Redemptions(used, 0),
    ),
    st.integers(0, 50),
    st.sampled_from([t.value for t in PromoType]),
    st.integers(-3, 3),
    reward_docs,
    st.one_of(st.none(), st.integers(0, 2000)),
    st.one_of(st.none(), st.integers(0, 3)),
    st.integers(0, 3),
)


@settings(max_examples=300, deadline=None)
@given(
    baht=bahts,
    rate=rates,
    items=st.lists(promo_docs, max_size=6, unique_by=lambda x: x[0].promo_id),
)
def test_quote_properties(baht, rate, items) -> None:
    promos = [p for p, _ in items]
    used = {p.promo_id: r for p, r in items}
    quote = quote_topup(
        promos, baht=baht, exchange_rate=rate, now=NOW, customer=Customer(NOW), redemptions=used
    )
    assert quote.base_credits == math.floor(baht * rate)
    assert quote.bonus_credits >= 0
    assert quote.total_credits == quote.base_credits + quote.bonus_credits
    eligible = [
        p
        for p in promos
        if ineligibility(
            p,
            Occasion.TOPUP,
            now=NOW,
            code=None,
            customer=Customer(NOW),
            redemptions=used[p.promo_id],
            baht=baht,
        )
        is None
    ]
    if quote.promotion is None:
        assert quote.bonus_credits == 0
    else:
        chosen = quote.promotion
        assert chosen in eligible
        assert chosen.type is not PromoType.WELCOME_BONUS
        assert chosen.type is not PromoType.USAGE_REWARD
        assert all(p.priority <= chosen.priority for p in eligible if _gives(p, baht, rate))
        limit = chosen.conditions.max_redemptions
        assert limit is None or used[chosen.promo_id].total < limit


def _gives(p: Promotion, baht: Decimal, rate: Decimal) -> bool:
    return (
        quote_topup(
            [p], baht=baht, exchange_rate=rate, now=NOW, customer=Customer(NOW)
        ).bonus_credits
        > 0
    )


@settings(max_examples=200, deadline=None)
@given(a=bahts, b=bahts)
def test_tiered_total_never_decreases_with_the_amount(a, b) -> None:
    low, high = sorted([a, b])
    q_low = quote_topup([TIERED], baht=low, exchange_rate=RATE, now=NOW)
    q_high = quote_topup([TIERED], baht=high, exchange_rate=RATE, now=NOW)
    assert q_low.total_credits <= q_high.total_credits


@settings(max_examples=200, deadline=None)
@given(baht=bahts, rate=st.integers(1, 20), boost=st.integers(0, 40))
def test_rate_override_credits_floor_of_the_boosted_rate(baht, rate, boost) -> None:
    p = promo(
        type="RATE_BOOST", reward={"type": RewardType.RATE_OVERRIDE.value, "override_rate": boost}
    )
    quote = quote_topup([p], baht=baht, exchange_rate=Decimal(rate), now=NOW)
    assert quote.total_credits == max(math.floor(baht * rate), math.floor(baht * boost))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(amount=json_values, code=json_values, slip=json_values)
def test_request_parsing_only_ever_raises_invalid_input(amount, code, slip) -> None:
    from shared.bigeye.topup import MAX_TOPUP_BAHT, parse_amount, parse_promo_code, parse_slip
    from shared.errors import InvalidInput

    try:
        baht = parse_amount(amount)
    except InvalidInput:
        baht = None
    assert baht is None or (0 < baht <= MAX_TOPUP_BAHT and baht == baht.quantize(Decimal("0.01")))
    try:
        parsed_code = parse_promo_code(code)
    except InvalidInput:
        parsed_code = "invalid"
    assert parsed_code is None or isinstance(parsed_code, str)
    try:
        url, image_url = parse_slip(slip)
    except InvalidInput:
        url, image_url = None, None
    assert url is None or (url == slip and image_url.startswith("sha256:"))


@settings(max_examples=200, deadline=None)
@given(
    doc=st.dictionaries(
        st.sampled_from(
            ["type", "status", "reward", "conditions", "code", "priority", "name", "display"]
        ),
        json_values,
    )
)
def test_promotion_parsing_only_ever_raises_invalid_promotion(doc) -> None:
    try:
        parsed = parse_promotion("fuzz", doc)
    except InvalidPromotion:
        parsed = None
    assert parsed is None or parsed.type.value == doc["type"]
