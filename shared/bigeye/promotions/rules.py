"""BigEye promotions, the rules: a pure engine over ``Promotion`` values, and the client's list.

No I/O and no clock: the time, the customer's facts and the redemption counts are passed
in. The engine decides which ONE promotion applies to an occasion and how many bonus
credits it gives:

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from shared.bigeye.promotions.model import (
    Customer,
    Ineligible,
    InvalidPromotion,
    Occasion,
    PromoCodeRejected,
    PromoStatus,
    Promotion,
    PromoType,
    QuotaShard,
    Quote,
    Redemptions,
    RewardType,
    parse_promotion,
    promo_code_error,
)
from shared.clock import ensure_utc
from shared.errors import Conflict, InvalidInput, NotFound
from shared.ledger.profiles import number


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
    if c.max_redemptions is not None and redemptions.sold_out(c.max_redemptions):
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


def _quote_without_code(
    promotions: Iterable[Promotion],
    occasion: Occasion,
    *,
    used: int,
    now: datetime,
    customer: Customer,
    redemptions: Mapping[str, Redemptions] | None,
) -> Quote:
    """A reward no code can be given for: sign-up (``used`` 0: nothing to rate) or usage
    (``used`` credits, rated one to one, so tiers read in credits)."""
    return _choose(
        promotions,
        occasion,
        amount=Decimal(used),
        base=used,
        rate=Decimal(1 if used else 0),
        now=now,
        code=None,
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
    return _quote_without_code(
        promotions, Occasion.SIGNUP, used=0, now=now, customer=customer, redemptions=redemptions
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
    quote = _quote_without_code(
        promotions,
        Occasion.USAGE,
        used=credits_used,
        now=now,
        customer=customer,
        redemptions=redemptions,
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


# -- limited promotions: max_redemptions split over quota shards ---------------------------
def has_room(shard: QuotaShard, max_redemptions: int) -> bool:
    """True when ``shard`` has a quota split for ``max_redemptions`` and a slot left in it."""
    return (
        shard.quota_for == max_redemptions
        and shard.quota is not None
        and shard.redemptions < shard.quota
    )


def split_quota(max_redemptions: int, counts: Sequence[int], counted: int = 0) -> tuple[int, ...]:
    """Each shard's quota for ``max_redemptions``: what it holds plus its share of what is
    left. What is left is ``max_redemptions`` minus the redemptions so far (the shards'
    sum, or ``counted`` when another record counted more), never below 0, spread as
    evenly as whole numbers allow (the first ``left % n`` shards take one more). So the
    quotas never sum to more than ``max(max_redemptions, redemptions so far)``."""
    n = len(counts)
    if n == 0:
        raise ValueError("no shards")
    left = max(0, max_redemptions - max(sum(counts), counted))
    return tuple(c + left // n + (1 if k < left % n else 0) for k, c in enumerate(counts))


def plan_slot(
    max_redemptions: int, home: int, shards: Sequence[QuotaShard], counted: int = 0
) -> Redemptions:
    """Where one more redemption of a limited promotion counts, from EVERY shard as read.

    When a shard has no quota split for ``max_redemptions`` (a new limited promotion, or
    its limit changed) the limit is split again (``split_quota``) and the plan carries the
    new quotas, to be written on every shard with the redemption. The slot is the first
    shard with room from ``home`` on (wrapping), so the last slots are found wherever they
    are; none: sold out. ``by_user`` is left 0 for the caller to fill in.
    """
    n = len(shards)
    quotas: tuple[int, ...] | None = None
    if not all(s.quota_for == max_redemptions and s.quota is not None for s in shards):
        quotas = split_quota(max_redemptions, [s.redemptions for s in shards], counted)
        shards = [
            QuotaShard(s.redemptions, q, max_redemptions)
            for s, q in zip(shards, quotas, strict=True)
        ]
    slot = next(
        (k for k in ((home + i) % n for i in range(n)) if has_room(shards[k], max_redemptions)),
        None,
    )
    total = max(sum(s.redemptions for s in shards), counted)
    return Redemptions(total=total, sharded=True, slot=slot, quotas=quotas)


#: Shards count baht in exact integer satang; ``fold_stats`` writes ``stats.total_baht_collected``.
SATANG_KEY = "total_satang_collected"


def satang(baht: Any) -> int:
    """Baht as a whole number of satang (1/100 baht), exactly."""
    if not baht:
        return 0
    exact = Decimal(str(baht)) * 100
    return int(exact.to_integral_value(rounding=ROUND_HALF_EVEN))


def _shard_count(data: Mapping[str, Any] | None) -> int:
    value = (data or {}).get("redemptions")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class RedemptionPlan:
    """The documents one redemption writes, decided from what was read.

    ``redemption``: the ``promo_redemptions`` document (created); ``user_counter``: the
    user's ``promo_counters/{promo_id}/users/{user_id}`` (set); ``shards``: every stats
    shard the redemption writes back, by shard number, in write order (the slot last).
    """

    promo_id: str
    user_id: str
    redemption_id: str
    redemption: dict[str, Any]
    user_counter: dict[str, Any]
    shards: tuple[tuple[int, dict[str, Any]], ...]


def redemption_slot(promo: Promotion, counts: Redemptions, home: int) -> int:
    """The stats shard a redemption of ``promo`` counts in: the slot ``counts`` found for a
    limited promotion, else the redemption's ``home`` shard."""
    if promo.limited:
        if counts.slot is None:
            raise ValueError(f"promotion {promo.promo_id} has no redemption left to record")
        return counts.slot
    return home


def plan_redemption(
    *,
    promo: Promotion,
    quote: Quote,
    user_id: str,
    redemption_id: str,
    counts: Redemptions,
    home: int,
    shards: Mapping[int, Mapping[str, Any] | None],
    topup_baht: Decimal,
    slip_id: str | None,
    now: datetime,
) -> RedemptionPlan:
    """What one redemption writes: its record, the user's counter and the stats shards.

    ``counts`` is what the redemption was decided on (``read_redemptions``), ``home`` the
    redemption's home shard and ``shards`` the data of the shards as read (None or absent:
    missing): the slot, and every shard when ``counts`` carries a new split of the limit.
    """
    slot = redemption_slot(promo, counts, home)
    data = dict(shards.get(slot) or {})
    stats: dict[str, Any] = dict(data.get("stats") or {})
    adds = {"total_redemptions": 1, "total_bonus_credits": quote.bonus_credits}
    in_satang = satang(topup_baht)
    if in_satang:
        # Exact integer units in the shards; the fold writes the seed's baht number.
        adds[SATANG_KEY] = in_satang
    if counts.by_user == 0:
        adds["unique_users"] = 1
    for key, add in adds.items():
        stats[key] = int(stats.get(key) or 0) + add
    counted = {
        **data,
        "promo_id": promo.promo_id,
        "redemptions": _shard_count(data) + 1,
        "stats": stats,
        "updated_at": now,
    }
    writes: list[tuple[int, dict[str, Any]]] = []
    if counts.quotas is not None:  # a new split of the limit, on every shard
        limit = promo.conditions.max_redemptions
        for k, quota in enumerate(counts.quotas):
            if k == slot:
                counted.update({"quota": quota, "quota_for": limit})
                continue
            other = dict(shards.get(k) or {})
            writes.append(
                (
                    k,
                    {
                        **other,
                        "promo_id": promo.promo_id,
                        "redemptions": _shard_count(other),
                        "quota": quota,
                        "quota_for": limit,
                        "updated_at": now,
                    },
                )
            )
    writes.append((slot, counted))
    return RedemptionPlan(
        promo_id=promo.promo_id,
        user_id=user_id,
        redemption_id=redemption_id,
        redemption={
            "promo_id": promo.promo_id,
            "user_id": user_id,
            "topup_baht": number(topup_baht),
            "base_credits": quote.base_credits,
            "bonus_credits": quote.bonus_credits,
            "total_credits": quote.total_credits,
            "promo_name": promo.name,
            "slip_id": slip_id,
            "created_at": now,
        },
        user_counter={
            "promo_id": promo.promo_id,
            "user_id": user_id,
            "redemptions": counts.by_user + 1,
            "updated_at": now,
        },
        shards=tuple(writes),
    )


# -- operator changes: creation and status transitions ------------------------------------
#: Status transitions: action -> (target status, the statuses it may come from).
TRANSITIONS: dict[str, tuple[str, frozenset[str]]] = {
    "promotion_pause": ("PAUSED", frozenset({"ACTIVE", "DRAFT"})),
    "promotion_resume": ("ACTIVE", frozenset({"PAUSED"})),
    "promotion_cancel": ("CANCELLED", frozenset({"DRAFT", "ACTIVE", "PAUSED"})),
    "promotion_expire": ("EXPIRED", frozenset({"ACTIVE", "PAUSED"})),
}
#: The statuses ``expire_promotions`` looks at.
EXPIRABLE = ("ACTIVE", "PAUSED")


@dataclass(frozen=True)
class Transition:
    """What a status transition does to a promotion document: set ``status`` to
    ``target`` (with ``updated_at``), unless it already has it (``changed`` False:
    nothing is written, nothing recorded). ``data`` is the document after the change."""

    action: str
    target: str
    before: Any
    changed: bool
    data: dict[str, Any]


def transition_target(action: str) -> str:
    """The status ``action`` leads to; InvalidInput for an unknown action."""
    if action not in TRANSITIONS:
        raise InvalidInput(f"unknown promotion action {action}")
    return TRANSITIONS[action][0]


def end_date_of(data: Mapping[str, Any]) -> datetime | None:
    """``conditions.end_date`` of a promotion document as stored (None: open or unreadable)."""
    conditions = data.get("conditions")
    end = conditions.get("end_date") if isinstance(conditions, Mapping) else None
    return end if isinstance(end, datetime) else None


def expirable(data: Mapping[str, Any], now: datetime) -> bool:
    """True when a promotion document's ``end_date`` has passed at ``now``."""
    end = end_date_of(data)
    return end is not None and end < now


def decide_transition(
    action: str, promo_id: str, data: Mapping[str, Any] | None, now: datetime
) -> Transition:
    """The transition ``action`` of promotion ``promo_id`` whose document reads ``data``
    (None: missing) at ``now``. Already in the target status: nothing changes. Refused
    (Conflict) from a status the action does not come from, a resume once ``end_date``
    has passed, an expiry before it has; NotFound for a missing promotion."""
    target = transition_target(action)
    if data is None:
        raise NotFound(f"no promotion {promo_id}")
    before = data.get("status")
    if type(before) is str and before == target:
        return Transition(action, target, before, False, dict(data))
    allowed = TRANSITIONS[action][1]
    if before not in allowed:
        raise Conflict(
            f"promotion {promo_id} is {before}; only {' or '.join(sorted(allowed))} can "
            f"become {target}"
        )
    end = end_date_of(data)
    if action == "promotion_resume" and end is not None and end < now:
        raise Conflict(f"promotion {promo_id} ended at {end.isoformat()}; it cannot resume")
    if action == "promotion_expire" and (end is None or end >= now):
        raise Conflict(f"promotion {promo_id} has not ended")
    after = {**data, "status": target, "updated_at": now}
    return Transition(action, target, before, True, after)


def new_promotion(
    promo_id: str, document: Mapping[str, Any], actor: str, now: datetime
) -> dict[str, Any]:
    """The ``promotions/{promo_id}`` document an operator's creation writes: ``document``
    with zeroed ``stats`` and the creation fields, refused (InvalidInput) unless the
    engine can read it."""
    doc = {
        **document,
        "stats": {
            "total_redemptions": 0,
            "total_bonus_credits": 0,
            "total_baht_collected": 0,
            "unique_users": 0,
        },
        "created_at": now,
        "created_by": actor,
        "updated_at": now,
    }
    try:
        parse_promotion(promo_id, doc)
    except InvalidPromotion as exc:
        raise InvalidInput(f"the promotion is not valid: {exc}") from None
    return doc


def decide_create(promo_id: str, exists: bool) -> None:
    """A promotion is created once: Conflict when ``promotions/{promo_id}`` exists."""
    if exists:
        raise Conflict(f"promotion {promo_id} already exists")
