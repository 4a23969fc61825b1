"""BigEye promotions: a pure engine over ``promotions`` documents, and the client's list.

The engine (everything above ``# -- Firestore``) has no I/O and no clock: the time, the
customer's facts and the redemption counts are passed in. It decides which ONE promotion
applies to an occasion and how many bonus credits it gives:

- occasions: a top-up (RATE_BOOST, TIERED_BONUS, FLAT_BONUS, FIRST_TOPUP), a sign-up
  (WELCOME_BONUS) and a finished job (USAGE_REWARD, the base being the credits it used);
- reward types: BONUS_CREDITS (a fixed bonus), PERCENTAGE_BONUS (``floor(base × % / 100)``),
  RATE_OVERRIDE (``floor(baht × override_rate) - base``, never negative) and TIERED_BONUS;
- TIERED_BONUS reading of 004's example (100-299 → 400, 300-499 → 1,300, 500+ → 2,200 at an
  exchange rate of 4): a tier's ``credits`` is what a top-up of exactly ``min_baht`` receives
  in total, so the tier's bonus is ``credits - min_baht × exchange_rate`` (0, 100, 200) and it
  is added to the base of any amount in the tier: 500 baht → 2,000 + 200 = 2,200 (the banner),
  700 baht → 2,800 + 200 = 3,000. Bounds compare the whole-baht part (299.50 is in 100-299).
- conditions: ACTIVE status, ``start_date <= now <= end_date``, ``min/max_topup_baht``
  (top-ups only), ``max_redemptions`` (all users), ``max_per_user``, ``new_users_only`` (the
  user signed up at or after the promotion's ``start_date``), ``first_topup_only`` (and every
  FIRST_TOPUP) for users with no earlier top-up, ``require_code`` (the promotion applies only
  when its ``code`` is given, compared case-insensitively);
- choice: a code given names the promotion to apply (it must be eligible, else the reason
  is raised); without a code the eligible promotion with the highest ``priority`` wins, then
  the larger bonus, then the smaller document id. A promotion whose bonus would be 0 does
  not apply.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from shared.clock import ensure_utc
from shared.errors import Conflict, InvalidInput

PROMOTIONS_COLLECTION = "promotions"
REDEMPTIONS_COLLECTION = "promo_redemptions"


class PromoType(StrEnum):
    """``promotions.type``."""

    RATE_BOOST = "RATE_BOOST"
    TIERED_BONUS = "TIERED_BONUS"
    FLAT_BONUS = "FLAT_BONUS"
    WELCOME_BONUS = "WELCOME_BONUS"
    FIRST_TOPUP = "FIRST_TOPUP"
    USAGE_REWARD = "USAGE_REWARD"


class PromoStatus(StrEnum):
    """``promotions.status``."""

    DRAFT = "DRAFT"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


class RewardType(StrEnum):
    """``promotions.reward.type``."""

    BONUS_CREDITS = "BONUS_CREDITS"
    RATE_OVERRIDE = "RATE_OVERRIDE"
    PERCENTAGE_BONUS = "PERCENTAGE_BONUS"
    TIERED_BONUS = "TIERED_BONUS"


class Occasion(StrEnum):
    """What a promotion rewards."""

    TOPUP = "TOPUP"
    SIGNUP = "SIGNUP"
    USAGE = "USAGE"


OCCASION_OF: Mapping[PromoType, Occasion] = {
    PromoType.RATE_BOOST: Occasion.TOPUP,
    PromoType.TIERED_BONUS: Occasion.TOPUP,
    PromoType.FLAT_BONUS: Occasion.TOPUP,
    PromoType.FIRST_TOPUP: Occasion.TOPUP,
    PromoType.WELCOME_BONUS: Occasion.SIGNUP,
    PromoType.USAGE_REWARD: Occasion.USAGE,
}


class Ineligible(StrEnum):
    """Why a promotion does not apply."""

    NOT_ACTIVE = "not active"
    NOT_STARTED = "not started yet"
    ENDED = "ended"
    OTHER_OCCASION = "not for this kind of credit"
    CODE_REQUIRED = "needs its promo code"
    UNKNOWN_CODE = "unknown promo code"
    BELOW_MIN = "amount below the promotion's minimum"
    ABOVE_MAX = "amount above the promotion's maximum"
    SOLD_OUT = "no redemptions left"
    USER_LIMIT = "already redeemed the maximum times by this user"
    NOT_NEW_USER = "only for users who signed up during the promotion"
    NOT_FIRST_TOPUP = "only for a first top-up"
    NO_BONUS = "gives no bonus for this amount"


#: Reasons that are a clash with the current state (409) rather than bad input (400).
EXHAUSTED = frozenset({Ineligible.SOLD_OUT, Ineligible.USER_LIMIT})


class InvalidPromotion(ValueError):
    """A ``promotions`` document the engine cannot read (it is then ignored, with a log)."""


class PromoCodeRejected(InvalidInput):
    """The promo code given does not apply (400; see ``promo_code_error`` for 409)."""

    def __init__(self, code: str, reason: Ineligible) -> None:
        super().__init__(f"promo code {code!r} cannot be used: {reason.value}")
        self.reason = reason


def promo_code_error(code: str, reason: Ineligible) -> InvalidInput | Conflict:
    """The error for a rejected promo code: 409 when used up, else 400."""
    if reason in EXHAUSTED:
        return Conflict(f"promo code {code!r} cannot be used: {reason.value}")
    return PromoCodeRejected(code, reason)


# -- values --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tier:
    """One ``reward.tiers`` entry; ``max_baht`` None means no upper bound."""

    min_baht: Decimal | None
    max_baht: Decimal | None
    credits: int

    def contains(self, baht: Decimal) -> bool:
        whole = Decimal(math.floor(baht))
        if self.min_baht is not None and baht < self.min_baht:
            return False
        return self.max_baht is None or whole <= self.max_baht


@dataclass(frozen=True)
class Conditions:
    """``promotions.conditions.*``."""

    start_date: datetime | None = None
    end_date: datetime | None = None
    min_topup_baht: Decimal | None = None
    max_topup_baht: Decimal | None = None
    max_redemptions: int | None = None
    max_per_user: int | None = None
    new_users_only: bool = False
    first_topup_only: bool = False
    require_code: bool = False


@dataclass(frozen=True)
class Reward:
    """``promotions.reward.*``."""

    type: RewardType
    bonus_credits: int | None = None
    override_rate: Decimal | None = None
    bonus_percentage: Decimal | None = None
    tiers: tuple[Tier, ...] = ()


@dataclass(frozen=True)
class Promotion:
    """One promotion as the engine reads it."""

    promo_id: str
    name: str
    type: PromoType
    status: PromoStatus
    reward: Reward
    conditions: Conditions = Conditions()
    code: str | None = None
    priority: int = 0
    display: Mapping[str, Any] = field(default_factory=dict)

    @property
    def occasion(self) -> Occasion:
        return OCCASION_OF[self.type]

    @property
    def limited(self) -> bool:
        """True when a global redemption count must be checked under a precondition."""
        return self.conditions.max_redemptions is not None


@dataclass(frozen=True)
class Customer:
    """What the engine needs to know about the user."""

    created_at: datetime | None = None
    has_topped_up: bool = False


@dataclass(frozen=True)
class Redemptions:
    """How often a promotion was redeemed, in total and by this user."""

    total: int = 0
    by_user: int = 0


@dataclass(frozen=True)
class Quote:
    """What an occasion credits: base + bonus of at most one promotion."""

    base_credits: int
    bonus_credits: int
    promotion: Promotion | None = None

    @property
    def total_credits(self) -> int:
        return self.base_credits + self.bonus_credits

    @property
    def promo_id(self) -> str | None:
        return self.promotion.promo_id if self.promotion else None


# -- parsing -------------------------------------------------------------------------------
def _decimal(value: Any, name: str, *, required: bool = False) -> Decimal | None:
    if value is None:
        if required:
            raise InvalidPromotion(f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise InvalidPromotion(f"{name} must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InvalidPromotion(f"{name} must be a number") from None
    if not number.is_finite() or number < 0:
        raise InvalidPromotion(f"{name} must be a non-negative number")
    return number


def _whole(value: Any, name: str) -> int | None:
    number = _decimal(value, name)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise InvalidPromotion(f"{name} must be a whole number")
    return int(number)


def _when(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return ensure_utc(value)
    if isinstance(value, str):
        from shared.clock import parse_instant

        try:
            return parse_instant(value)
        except ValueError:
            pass
    raise InvalidPromotion(f"{name} must be a timestamp")


def _flag(value: Any, name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidPromotion(f"{name} must be true or false")
    return value


def _map(value: Any, name: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidPromotion(f"{name} must be a map")
    return value


def parse_promotion(promo_id: str, data: Mapping[str, Any]) -> Promotion:
    """A ``promotions`` document as a ``Promotion`` (InvalidPromotion when unreadable)."""
    try:
        type_ = PromoType(str(data.get("type")))
        status = PromoStatus(str(data.get("status")))
    except ValueError:
        raise InvalidPromotion("unknown type or status") from None
    cond = _map(data.get("conditions"), "conditions")
    rew = _map(data.get("reward"), "reward")
    try:
        reward_type = RewardType(str(rew.get("type")))
    except ValueError:
        raise InvalidPromotion("unknown reward.type") from None
    tiers: list[Tier] = []
    raw_tiers = rew.get("tiers")
    if raw_tiers is not None:
        if not isinstance(raw_tiers, list):
            raise InvalidPromotion("reward.tiers must be a list")
        for i, raw in enumerate(raw_tiers):
            tier = _map(raw, f"reward.tiers[{i}]")
            credits = _whole(tier.get("credits"), f"reward.tiers[{i}].credits")
            if credits is None:
                raise InvalidPromotion(f"reward.tiers[{i}].credits is required")
            tiers.append(
                Tier(
                    _decimal(tier.get("min_baht"), f"reward.tiers[{i}].min_baht"),
                    _decimal(tier.get("max_baht"), f"reward.tiers[{i}].max_baht"),
                    credits,
                )
            )
    tiers.sort(key=lambda t: t.min_baht or Decimal(0))
    reward = Reward(
        type=reward_type,
        bonus_credits=_whole(rew.get("bonus_credits"), "reward.bonus_credits"),
        override_rate=_decimal(rew.get("override_rate"), "reward.override_rate"),
        bonus_percentage=_decimal(rew.get("bonus_percentage"), "reward.bonus_percentage"),
        tiers=tuple(tiers),
    )
    needed = {
        RewardType.BONUS_CREDITS: reward.bonus_credits,
        RewardType.RATE_OVERRIDE: reward.override_rate,
        RewardType.PERCENTAGE_BONUS: reward.bonus_percentage,
        RewardType.TIERED_BONUS: reward.tiers or None,
    }[reward_type]
    if needed is None:
        raise InvalidPromotion(f"a {reward_type.value} reward needs its value")
    conditions = Conditions(
        start_date=_when(cond.get("start_date"), "conditions.start_date"),
        end_date=_when(cond.get("end_date"), "conditions.end_date"),
        min_topup_baht=_decimal(cond.get("min_topup_baht"), "conditions.min_topup_baht"),
        max_topup_baht=_decimal(cond.get("max_topup_baht"), "conditions.max_topup_baht"),
        max_redemptions=_whole(cond.get("max_redemptions"), "conditions.max_redemptions"),
        max_per_user=_whole(cond.get("max_per_user"), "conditions.max_per_user"),
        new_users_only=_flag(cond.get("new_users_only"), "conditions.new_users_only"),
        first_topup_only=_flag(cond.get("first_topup_only"), "conditions.first_topup_only"),
        require_code=_flag(cond.get("require_code"), "conditions.require_code"),
    )
    code = data.get("code")
    if code is not None and (not isinstance(code, str) or not code.strip()):
        code = None
    if conditions.require_code and code is None:
        raise InvalidPromotion("require_code is set but the promotion has no code")
    priority = data.get("priority")
    if priority is None:
        priority = 0
    if isinstance(priority, bool) or not isinstance(priority, int | float):
        raise InvalidPromotion("priority must be a number")
    name = data.get("name")
    return Promotion(
        promo_id=promo_id,
        name=name if isinstance(name, str) else promo_id,
        type=type_,
        status=status,
        reward=reward,
        conditions=conditions,
        code=code,
        priority=int(priority),
        display=_map(data.get("display"), "display"),
    )


# -- rules ---------------------------------------------------------------------------------
def same_code(given: str | None, promo: Promotion) -> bool:
    """True when ``given`` is the promotion's code (trimmed, case-insensitive)."""
    if given is None or promo.code is None:
        return False
    return given.strip().casefold() == promo.code.strip().casefold()


def base_credits(baht: Decimal, exchange_rate: Decimal) -> int:
    """Credits a top-up buys without any promotion: ``floor(baht × exchange_rate)``."""
    return math.floor(baht * exchange_rate)


def bonus_for(promo: Promotion, *, amount: Decimal, base: int, rate: Decimal) -> int:
    """The bonus credits ``promo`` gives on ``base`` (``amount``: baht, or credits used)."""
    reward = promo.reward
    if reward.type is RewardType.BONUS_CREDITS:
        return reward.bonus_credits or 0
    if reward.type is RewardType.PERCENTAGE_BONUS:
        pct = reward.bonus_percentage or Decimal(0)
        return math.floor(Decimal(base) * pct / 100)
    if reward.type is RewardType.RATE_OVERRIDE:
        if promo.occasion is not Occasion.TOPUP:
            return 0
        override = reward.override_rate or Decimal(0)
        return max(0, math.floor(amount * override) - base)
    # TIERED_BONUS: the tier's credits are the total of a top-up of its minimum.
    for tier in reversed(reward.tiers):
        if tier.contains(amount):
            floor_credits = math.floor((tier.min_baht or Decimal(0)) * rate)
            return max(0, tier.credits - floor_credits)
    return 0


def ineligibility(
    promo: Promotion,
    occasion: Occasion,
    *,
    now: datetime,
    code: str | None,
    customer: Customer,
    redemptions: Redemptions,
    baht: Decimal | None = None,
) -> Ineligible | None:
    """Why ``promo`` does not apply to this occasion, or None when it does."""
    c = promo.conditions
    if promo.status is not PromoStatus.ACTIVE:
        return Ineligible.NOT_ACTIVE
    if c.start_date is not None and now < c.start_date:
        return Ineligible.NOT_STARTED
    if c.end_date is not None and now > c.end_date:
        return Ineligible.ENDED
    if promo.occasion is not occasion:
        return Ineligible.OTHER_OCCASION
    if c.require_code and not same_code(code, promo):
        return Ineligible.CODE_REQUIRED
    if occasion is Occasion.TOPUP and baht is not None:
        if c.min_topup_baht is not None and baht < c.min_topup_baht:
            return Ineligible.BELOW_MIN
        if c.max_topup_baht is not None and baht > c.max_topup_baht:
            return Ineligible.ABOVE_MAX
    if c.new_users_only and (
        customer.created_at is None
        or (c.start_date is not None and customer.created_at < c.start_date)
    ):
        return Ineligible.NOT_NEW_USER
    if (
        occasion is Occasion.TOPUP
        and (c.first_topup_only or promo.type is PromoType.FIRST_TOPUP)
        and customer.has_topped_up
    ):
        return Ineligible.NOT_FIRST_TOPUP
    if c.max_redemptions is not None and redemptions.total >= c.max_redemptions:
        return Ineligible.SOLD_OUT
    if c.max_per_user is not None and redemptions.by_user >= c.max_per_user:
        return Ineligible.USER_LIMIT
    return None


def _choose(
    promotions: Iterable[Promotion],
    occasion: Occasion,
    *,
    amount: Decimal,
    base: int,
    rate: Decimal,
    now: datetime,
    code: str | None,
    customer: Customer,
    redemptions: Mapping[str, Redemptions],
) -> Quote:
    promos = list(promotions)
    if code is not None and code.strip():
        named = [p for p in promos if same_code(code, p)]
        if not named:
            raise PromoCodeRejected(code, Ineligible.UNKNOWN_CODE)
        # Several promotions may share a code: the best eligible one, else the first reason.
        first_reason: Ineligible | None = None
        for promo in _ranked(named):
            reason = ineligibility(
                promo,
                occasion,
                now=now,
                code=code,
                customer=customer,
                redemptions=redemptions.get(promo.promo_id, Redemptions()),
                baht=amount if occasion is Occasion.TOPUP else None,
            )
            bonus = 0
            if reason is None:
                bonus = bonus_for(promo, amount=amount, base=base, rate=rate)
                if bonus <= 0:
                    reason = Ineligible.NO_BONUS
            if reason is None:
                return Quote(base, bonus, promo)
            first_reason = first_reason or reason
        raise promo_code_error(code, first_reason or Ineligible.UNKNOWN_CODE)
    best: tuple[tuple[int, int, str], Promotion, int] | None = None
    for promo in promos:
        reason = ineligibility(
            promo,
            occasion,
            now=now,
            code=None,
            customer=customer,
            redemptions=redemptions.get(promo.promo_id, Redemptions()),
            baht=amount if occasion is Occasion.TOPUP else None,
        )
        if reason is not None:
            continue
        bonus = bonus_for(promo, amount=amount, base=base, rate=rate)
        if bonus <= 0:
            continue
        rank = (-promo.priority, -bonus, promo.promo_id)
        if best is None or rank < best[0]:
            best = (rank, promo, bonus)
    if best is None:
        return Quote(base, 0, None)
    return Quote(base, best[2], best[1])


def _ranked(promos: Iterable[Promotion]) -> list[Promotion]:
    return sorted(promos, key=lambda p: (-p.priority, p.promo_id))


def quote_topup(
    promotions: Iterable[Promotion],
    *,
    baht: Decimal,
    exchange_rate: Decimal,
    now: datetime,
    code: str | None = None,
    customer: Customer = Customer(),
    redemptions: Mapping[str, Redemptions] | None = None,
) -> Quote:
    """Base and bonus credits of a top-up of ``baht`` (PromoCodeRejected/Conflict for a code)."""
    if baht <= 0 or exchange_rate <= 0:
        raise InvalidInput("the amount and the exchange rate must be positive")
    base = base_credits(baht, exchange_rate)
    return _choose(
        promotions,
        Occasion.TOPUP,
        amount=baht,
        base=base,
        rate=exchange_rate,
        now=now,
        code=code,
        customer=customer,
        redemptions=redemptions or {},
    )


def quote_welcome(
    promotions: Iterable[Promotion],
    *,
    now: datetime,
    customer: Customer,
    redemptions: Mapping[str, Redemptions] | None = None,
) -> Quote:
    """The welcome bonus of a new user (no code can be given at sign-up)."""
    return _choose(
        promotions,
        Occasion.SIGNUP,
        amount=Decimal(0),
        base=0,
        rate=Decimal(0),
        now=now,
        code=None,
        customer=customer,
        redemptions=redemptions or {},
    )


def quote_usage(
    promotions: Iterable[Promotion],
    *,
    credits_used: int,
    now: datetime,
    customer: Customer,
    redemptions: Mapping[str, Redemptions] | None = None,
) -> Quote:
    """The USAGE_REWARD bonus for a job that used ``credits_used`` (tiers read in credits).

    The returned ``base_credits`` is 0: nothing but the bonus is credited.
    """
    if credits_used <= 0:
        return Quote(0, 0, None)
    quote = _choose(
        promotions,
        Occasion.USAGE,
        amount=Decimal(credits_used),
        base=credits_used,
        rate=Decimal(1),
        now=now,
        code=None,
        customer=customer,
        redemptions=redemptions or {},
    )
    return Quote(0, quote.bonus_credits, quote.promotion)


# -- client view ---------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return ensure_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def visible_in_client(promo: Promotion, now: datetime) -> bool:
    """ACTIVE, inside its date window and ``display.show_in_client``."""
    c = promo.conditions
    return (
        promo.status is PromoStatus.ACTIVE
        and (c.start_date is None or c.start_date <= now)
        and (c.end_date is None or now <= c.end_date)
        and promo.display.get("show_in_client") is True
    )


def client_view(promo: Promotion) -> dict[str, Any]:
    """One ``active_promos`` entry shaped as in 004's balance example (codes are not shown)."""
    display = promo.display
    reward: dict[str, Any] = {"type": promo.reward.type.value}
    r = promo.reward
    if r.type is RewardType.BONUS_CREDITS:
        reward["bonus_credits"] = r.bonus_credits
    elif r.type is RewardType.RATE_OVERRIDE:
        reward["override_rate"] = _plain(r.override_rate)
    elif r.type is RewardType.PERCENTAGE_BONUS:
        reward["bonus_percentage"] = _plain(r.bonus_percentage)
    else:
        reward["tiers"] = [
            {"min_baht": _plain(t.min_baht), "max_baht": _plain(t.max_baht), "credits": t.credits}
            for t in r.tiers
        ]
    return {
        "name": promo.name,
        "type": promo.type.value,
        "display": {
            "banner_text": display.get("banner_text", ""),
            "banner_color": display.get("banner_color", ""),
            "show_in_client": display.get("show_in_client") is True,
            "show_in_topup": display.get("show_in_topup") is True,
        },
        "conditions": {
            "min_topup_baht": _plain(promo.conditions.min_topup_baht),
            "end_date": _iso(promo.conditions.end_date),
        },
        "reward": reward,
    }


def client_list(promotions: Iterable[Promotion], now: datetime) -> list[dict[str, Any]]:
    """The ``active_promos`` list: visible promotions, highest priority first."""
    shown = [p for p in promotions if visible_in_client(p, now)]
    return [client_view(p) for p in _ranked(shown)]


# -- Firestore -----------------------------------------------------------------------------
def load_active(db: Any) -> list[Promotion]:
    """Every readable ACTIVE promotion (unreadable documents are logged and skipped)."""
    import logging

    from google.cloud import firestore

    from shared.logs import get_logger, log

    query = db.collection(PROMOTIONS_COLLECTION).where(
        filter=firestore.FieldFilter("status", "==", PromoStatus.ACTIVE.value)
    )
    found = []
    for snap in query.stream():
        try:
            found.append(parse_promotion(snap.id, snap.to_dict() or {}))
        except InvalidPromotion as exc:
            log(get_logger(__name__), logging.ERROR, f"promotion ignored: {exc}", promo_id=snap.id)
    return found


def active_for_client(db: Any, now: datetime) -> list[dict[str, Any]]:
    """``active_promos`` of ``GET /api/v1/credit/balance``."""
    return client_list(load_active(db), ensure_utc(now))
