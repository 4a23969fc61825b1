"""BigEye promotions, the values: what a ``promotions`` document says, read and checked.

``parse_promotion`` turns a document into a ``Promotion`` (``InvalidPromotion`` when it
cannot be read); the other values (``Customer``, ``Redemptions``, ``Quote``) are what the
rules (``rules.py``) take and return. Nothing here reads the database or the clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from shared.clock import ensure_utc, parse_instant
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
    """How often a promotion was redeemed, in total and by this user.

    A limited promotion's count is split over its quota shards (``sharded``): then
    ``slot`` is the shard with a free redemption this one takes (None: sold out), ``quotas``
    a new split of ``max_redemptions`` to write on every shard with it (None: keep the
    one written), and ``total`` is exact only when every shard was read (else 0).
    """

    total: int = 0
    by_user: int = 0
    sharded: bool = False
    slot: int | None = None
    quotas: tuple[int, ...] | None = None

    def sold_out(self, max_redemptions: int) -> bool:
        """True when no redemption of ``max_redemptions`` is left."""
        if self.sharded:
            return self.slot is None
        return self.total >= max_redemptions


@dataclass(frozen=True)
class QuotaShard:
    """One stats shard of a limited promotion as its quota sees it: the redemptions it
    holds, how many it may hold in all (``quota``) and the ``max_redemptions`` that
    quota was split for (``quota_for``; a quota split for another limit is no quota)."""

    redemptions: int = 0
    quota: int | None = None
    quota_for: int | None = None


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
def _decimal(value: Any, name: str) -> Decimal | None:
    if value is None:
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
