"""Promotion credits that are not top-ups: the welcome bonus and usage rewards.

Both are BONUS transactions with a key derived from their cause, so a redelivered event
credits once: ``welcome:{user_id}`` (one welcome bonus per user, whatever promotion gave
it) and ``usage-reward:{job_token}`` (one reward per finished job). The redemption, its
counters and ``stats.*`` are written in the same atomic unit (see ``redemptions``).

Only an account that may act (``shared.accountstatus``) is paid; ``"Banned"``, ``"disabled"``
and every other status but ``active`` get nothing.

The welcome bonus is also paid at most once per device (setting
``welcome_bonus_once_per_device``): the bonus creates ``welcome_devices/{device_key}``
(``device_key`` = SHA-256 of the canonical ``hardware_id``) in the same unit as the
posting; a later user of that device gets nothing, and one ``audit_logs`` entry
``WELCOME_BONUS_DEVICE_REUSED`` with ``welcome_devices/{device_key}/refused/{user_id}`` in one
unit (so a redelivered event audits nothing more).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from google.cloud import firestore

from shared.accountstatus import refusal
from shared.atomic import Unit
from shared.bigeye.audit import audit
from shared.bigeye.models import AuditEvent, Severity
from shared.bigeye.promotions import (
    Customer,
    Occasion,
    Promotion,
    Quote,
    load_active,
    plan_redemption,
    quote_usage,
    quote_welcome,
)
from shared.bigeye.redemptions import (
    current_promotions,
    read_redemptions,
    record_redemption,
    redemption_shards,
    stats_shard_of,
)
from shared.bigeye.slip2go import canonical_ref
from shared.bigeye.topup import bigeye_ledger, customer_facts
from shared.clock import ensure_utc
from shared.errors import InvalidInput
from shared.ledger import Kind, Refs, posting_key, transaction_id_for
from shared.logs import get_logger, log
from shared.settings import get_settings

logger = get_logger(__name__)


@dataclass(frozen=True)
class Reward:
    """What a reward did: ``promo_id`` None when no promotion applied."""

    user_id: str
    credits: int
    promo_id: str | None
    transaction_id: str | None
    replayed: bool = False


def is_bigeye_user(user: dict[str, Any] | None) -> bool:
    """True for a BigEye ``users`` document (``credits`` or ``hardware_id``, 004)."""
    return isinstance(user, dict) and ("credits" in user or "hardware_id" in user)


WELCOME_DEVICES = "welcome_devices"


def device_key(hardware_id: str) -> str:
    """The marker id of a device: SHA-256 of its canonical ``hardware_id`` (NFKC, white
    space and invisible characters removed, case folded), so spellings of one id are one
    device and the raw id is not repeated in another collection."""
    return hashlib.sha256(canonical_ref(hardware_id).encode("utf-8")).hexdigest()


def _reward(
    db: firestore.Client,
    *,
    user_id: str,
    key: str,
    occasion: Occasion,
    now: datetime,
    credits_used: int = 0,
    description: str,
    reference_id: str | None = None,
) -> Reward:
    ledger = bigeye_ledger(db)
    tx_id = transaction_id_for(key)
    promos = [p for p in load_active(db) if p.occasion is occasion]
    if not promos:
        return Reward(user_id, 0, None, None)

    def work(unit: Unit) -> Reward:
        posting, user_snap = unit.get_all([ledger.posting_ref(tx_id), ledger.user_ref(user_id)])
        if posting.exists:
            rec = posting.to_dict() or {}
            return Reward(user_id, int(rec.get("amount") or 0), None, tx_id, replayed=True)
        if not user_snap.exists:
            return Reward(user_id, 0, None, None)
        user = user_snap.to_dict() or {}
        if refusal(user) is not None:
            # Only an active account earns a bonus (shared.accountstatus); nothing is marked,
            # so an account activated later still gets its usage rewards, not the welcome
            # bonus of a signup it made while refused (that event is not redelivered).
            return Reward(user_id, 0, None, None)
        device_ref = None
        hardware_id = user.get("hardware_id")
        if (
            occasion is Occasion.SIGNUP
            and get_settings().welcome_bonus_once_per_device
            and isinstance(hardware_id, str)
            and canonical_ref(hardware_id)
        ):
            device_ref = unit.db.collection(WELCOME_DEVICES).document(device_key(hardware_id))
            refused_ref = device_ref.collection("refused").document(user_id)
            marker, refused = unit.get_all([device_ref, refused_ref])
            first = (marker.to_dict() or {}).get("user_id") if marker.exists else None
            if first is not None and first != user_id:
                if not refused.exists:
                    # Recorded once per user, so a redelivered event audits nothing more.
                    unit.create(refused_ref, {"user_id": user_id, "created_at": now})
                    audit(
                        unit,
                        AuditEvent.WELCOME_BONUS_DEVICE_REUSED,
                        user_id=user_id,
                        details={"hardware_id": hardware_id, "first_user_id": first},
                        now=now,
                        severity=Severity.WARNING,
                    )
                return Reward(user_id, 0, None, None)
        customer: Customer = customer_facts(user)
        if occasion is Occasion.SIGNUP and customer.created_at is None:
            customer = Customer(created_at=now, has_topped_up=customer.has_topped_up)
        current = current_promotions(unit, promos, user_id, tx_id)
        counts = read_redemptions(unit, current, user_id, tx_id)
        quote: Quote
        if occasion is Occasion.SIGNUP:
            quote = quote_welcome(current, now=now, customer=customer, redemptions=counts)
        else:
            quote = quote_usage(
                current, credits_used=credits_used, now=now, customer=customer, redemptions=counts
            )
        promo: Promotion | None = quote.promotion
        if promo is None or quote.bonus_credits <= 0:
            return Reward(user_id, 0, None, None)
        result = ledger.credit(
            unit,
            user_id=user_id,
            kind=Kind.BONUS,
            amount=quote.bonus_credits,
            key=key,
            description=f"{description}: {promo.name}",
            refs=Refs(reference_id=reference_id or promo.promo_id),
        )
        record_redemption(
            unit,
            plan_redemption(
                promo=promo,
                quote=quote,
                user_id=user_id,
                redemption_id=tx_id,
                counts=counts[promo.promo_id],
                home=stats_shard_of(tx_id),
                shards=redemption_shards(unit, promo, counts[promo.promo_id], tx_id),
                topup_baht=Decimal(0),
                slip_id=None,
                now=now,
            ),
        )
        if device_ref is not None:
            unit.set(
                device_ref,
                {
                    "user_id": user_id,
                    "promo_id": promo.promo_id,
                    "transaction_id": result.transaction_id,
                    "created_at": now,
                },
            )
        return Reward(user_id, quote.bonus_credits, promo.promo_id, result.transaction_id)

    reward = ledger.run(work, now=now)
    if reward.credits and not reward.replayed:
        log(
            logger,
            logging.INFO,
            f"{occasion.value.lower()} reward credited",
            user_id=user_id,
            credits=reward.credits,
            promo_id=reward.promo_id,
        )
    return reward


def welcome_bonus(db: firestore.Client, *, user_id: str, now: datetime) -> Reward:
    """Credit the welcome bonus of an ACTIVE WELCOME_BONUS promotion, once per user."""
    if not isinstance(user_id, str) or not user_id or "/" in user_id:
        raise InvalidInput("user_id is required")
    return _reward(
        db,
        user_id=user_id,
        key=posting_key("welcome", user_id),
        occasion=Occasion.SIGNUP,
        now=ensure_utc(now),
        description="Welcome bonus",
    )


def usage_reward(
    db: firestore.Client, *, user_id: str, job_token: str, credits_used: int, now: datetime
) -> Reward:
    """Credit a USAGE_REWARD promotion's bonus for a finished job, once per job."""
    if not isinstance(job_token, str) or not job_token or "/" in job_token:
        raise InvalidInput("job_token is required")
    if isinstance(credits_used, bool) or not isinstance(credits_used, int) or credits_used < 0:
        raise InvalidInput("credits_used must be a whole number of credits")
    if credits_used == 0:
        return Reward(user_id, 0, None, None)
    return _reward(
        db,
        user_id=user_id,
        key=posting_key("usage-reward", job_token),
        occasion=Occasion.USAGE,
        now=ensure_utc(now),
        credits_used=credits_used,
        description="Usage reward",
        reference_id=job_token,
    )
