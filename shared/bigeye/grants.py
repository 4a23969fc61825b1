"""BigEye's credit grants, the pure decisions: a slip top-up (``decide_topup``) and a
promotion reward (``decide_reward``, ``shared.bigeye.rewards``).

No I/O and no clock: the services read every document through their unit first
(``topup.read_topup``, ``rewards.read_reward``), these functions decide from what was
read, and the services apply the plan (the ledger's posting and the unit's writes). A
refusal is raised, with the error the API answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.accountstatus import check_active, refusal
from shared.bigeye.promotions import (
    Customer,
    Occasion,
    Promotion,
    Quote,
    RedemptionPlan,
    Redemptions,
    plan_redemption,
    quote_topup,
    quote_usage,
    quote_welcome,
)
from shared.bigeye.slip2go import SlipData, Verification, canonical_ref
from shared.clock import ensure_utc
from shared.errors import Conflict, NotFound
from shared.ledger import posting_key
from shared.ledger.profiles import number


class SlipAlreadyUsed(Conflict):
    """The slip's ``transRef`` was already credited (409)."""


def customer_facts(user: Mapping[str, Any]) -> Customer:
    created = user.get("created_at")
    total = user.get("total_topup_baht")
    return Customer(
        created_at=ensure_utc(created) if isinstance(created, datetime) else None,
        has_topped_up=isinstance(total, int | float) and not isinstance(total, bool) and total > 0,
    )


def check_user(user: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The user document (None: missing) of a user who may top up, or the refusal."""
    if user is None:
        raise NotFound("unknown user")
    check_active(user)  # only the exact status "active" (shared.accountstatus)
    return user


def legacy_key(slip: SlipData) -> str | None:
    """The key a top-up credited before references were canonical (the text as given)."""
    return posting_key("slip", slip.trans_ref) if slip.trans_ref != slip.ref_key else None


def verification_fields(check: Verification) -> dict[str, Any]:
    """The ``slips`` fields that record Slip2Go's answer."""
    fields: dict[str, Any] = {
        "verification_result.raw_response": check.raw
        or {"code": check.code, "message": check.message}
    }
    if check.slip is not None:
        fields.update(
            {
                "amount_detected": number(check.slip.amount),
                "bank_ref": check.slip.trans_ref,
                "metadata.sender_name": check.slip.sender_name,
                "metadata.receiver_account": check.slip.receiver_account,
            }
        )
    return fields


def total_topup_baht(user: Mapping[str, Any], baht: Decimal) -> int | float | None:
    """``users.total_topup_baht`` after a top-up of ``baht`` (a missing or non-numeric
    total counts as 0)."""
    previous = user.get("total_topup_baht")
    before = (
        Decimal(str(previous))
        if isinstance(previous, int | float) and not isinstance(previous, bool)
        else Decimal(0)
    )
    return number(before + baht)


@dataclass(frozen=True)
class TopupReads:
    """What a top-up's unit read: the user document (None: missing), whether the slip's
    pre-canonical key was posted, the promotions as read now (still ACTIVE), their
    redemption counts and, by promotion, the stats shards a redemption of it writes back
    (None: missing; a sold-out limited promotion has none)."""

    user: Mapping[str, Any] | None
    legacy_posted: bool
    promos: tuple[Promotion, ...]
    counts: Mapping[str, Redemptions]
    shards: Mapping[str, Mapping[int, Mapping[str, Any] | None]]


@dataclass(frozen=True)
class TopupPlan:
    """A credit: the quote, the user's new ``total_topup_baht``, the ``slips`` fields of a
    VERIFIED slip and the promotion's redemption (None: no promotion applies)."""

    quote: Quote
    total_topup_baht: int | float | None
    slip_fields: dict[str, Any]
    redemption: RedemptionPlan | None


def decide_topup(
    reads: TopupReads,
    *,
    user_id: str,
    slip_id: str,
    baht: Decimal,
    code: str | None,
    rate: Decimal,
    slip: SlipData,
    check: Verification,
    method: str,
    redemption_id: str,
    home: int,
    now: datetime,
) -> TopupPlan:
    """Credit a verified slip, or refuse: an unknown or inactive user (404/403), a slip
    posted under its pre-canonical key (``SlipAlreadyUsed``), a promo code the engine
    refuses (``quote_topup``). ``home``: the redemption's home stats shard."""
    user = check_user(reads.user)
    if reads.legacy_posted:
        raise SlipAlreadyUsed("this slip has already been used")
    quote = quote_topup(
        reads.promos,
        baht=baht,
        exchange_rate=rate,
        now=now,
        code=code,
        customer=customer_facts(user),
        redemptions=reads.counts,
    )
    slip_fields = verification_fields(check)
    slip_fields.update(
        {
            "status": "VERIFIED",
            "amount_detected": number(slip.amount),
            "amount_credited": quote.total_credits,
            "bank_ref": slip.trans_ref,
            "reject_reason": None,
            "verified_at": now,
            "verification_method": method,
        }
    )
    redemption = None
    if quote.promotion is not None:
        promo = quote.promotion
        redemption = plan_redemption(
            promo=promo,
            quote=quote,
            user_id=user_id,
            redemption_id=redemption_id,
            counts=reads.counts[promo.promo_id],
            home=home,
            shards=reads.shards.get(promo.promo_id, {}),
            topup_baht=baht,
            slip_id=slip_id,
            now=now,
        )
    return TopupPlan(quote, total_topup_baht(user, baht), slip_fields, redemption)


# -- promotion rewards (the welcome bonus, usage rewards) ----------------------------------
def checks_device(
    user: Mapping[str, Any], occasion: Occasion, *, once_per_device: bool
) -> str | None:
    """The ``hardware_id`` whose device marker a reward must check (None: none): a welcome
    bonus while the setting ``welcome_bonus_once_per_device`` is on, for a user with an id
    that is not blank once canonical."""
    hardware_id = user.get("hardware_id")
    if (
        occasion is Occasion.SIGNUP
        and once_per_device
        and isinstance(hardware_id, str)
        and canonical_ref(hardware_id)
    ):
        return hardware_id
    return None


@dataclass(frozen=True)
class RewardReads:
    """What a reward's unit read: the posting record under its key and the user (None:
    missing); when the reward goes on to a promotion (no posting, an active user): the
    device's ``hardware_id`` when its marker is checked, the marker (None: missing),
    whether this user's refusal on that device is recorded, and the promotions as for a
    top-up (``TopupReads``)."""

    posting: Mapping[str, Any] | None
    user: Mapping[str, Any] | None
    hardware_id: str | None = None
    device_marker: Mapping[str, Any] | None = None
    refused_recorded: bool = False
    promos: tuple[Promotion, ...] = ()
    counts: Mapping[str, Redemptions] = field(default_factory=dict)
    shards: Mapping[str, Mapping[int, Mapping[str, Any] | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Replay:
    """The reward was posted before: its amount."""

    amount: int


@dataclass(frozen=True)
class Nothing:
    """No reward, nothing written."""


@dataclass(frozen=True)
class DeviceRefused:
    """A welcome bonus refused because another user had it on the device: ``audit`` is the
    ``WELCOME_BONUS_DEVICE_REUSED`` details to record with the refusal, None when this
    user's refusal is recorded already (nothing is written)."""

    audit: dict[str, Any] | None


@dataclass(frozen=True)
class Grant:
    """A bonus: the quote, the device marker to write (without the posting's
    ``transaction_id``; None: no marker) and the redemption."""

    quote: Quote
    promo: Promotion
    device_marker: dict[str, Any] | None
    redemption: RedemptionPlan


def decide_reward(
    reads: RewardReads,
    *,
    user_id: str,
    occasion: Occasion,
    credits_used: int,
    redemption_id: str,
    home: int,
    now: datetime,
) -> Replay | Nothing | DeviceRefused | Grant:
    """A welcome bonus or usage reward, in this order: a posting under its key is a replay;
    a missing user or one who may not act (``shared.accountstatus``) gets nothing, and
    nothing is marked; a welcome bonus on a device another user had it on is refused; no
    promotion, or a bonus of 0: nothing. ``home``: the redemption's home stats shard."""
    if reads.posting is not None:
        return Replay(int(reads.posting.get("amount") or 0))
    if reads.user is None or refusal(reads.user) is not None:
        return Nothing()
    if reads.hardware_id is not None:
        first = (reads.device_marker or {}).get("user_id")
        if first is not None and first != user_id:
            if reads.refused_recorded:
                return DeviceRefused(None)
            return DeviceRefused({"hardware_id": reads.hardware_id, "first_user_id": first})
    customer = customer_facts(reads.user)
    if occasion is Occasion.SIGNUP and customer.created_at is None:
        customer = Customer(created_at=now, has_topped_up=customer.has_topped_up)
    quote: Quote
    if occasion is Occasion.SIGNUP:
        quote = quote_welcome(reads.promos, now=now, customer=customer, redemptions=reads.counts)
    else:
        quote = quote_usage(
            reads.promos,
            credits_used=credits_used,
            now=now,
            customer=customer,
            redemptions=reads.counts,
        )
    promo = quote.promotion
    if promo is None or quote.bonus_credits <= 0:
        return Nothing()
    marker = None
    if reads.hardware_id is not None:
        marker = {"user_id": user_id, "promo_id": promo.promo_id, "created_at": now}
    redemption = plan_redemption(
        promo=promo,
        quote=quote,
        user_id=user_id,
        redemption_id=redemption_id,
        counts=reads.counts[promo.promo_id],
        home=home,
        shards=reads.shards.get(promo.promo_id, {}),
        topup_baht=Decimal(0),
        slip_id=None,
        now=now,
    )
    return Grant(quote, promo, marker, redemption)
