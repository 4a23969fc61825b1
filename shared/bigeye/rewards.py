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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.cloud import firestore

from shared.accountstatus import refusal
from shared.atomic import Unit
from shared.bigeye.audit import audit
from shared.bigeye.grants import (
    DeviceRefused,
    Grant,
    Nothing,
    Replay,
    RewardReads,
    checks_device,
    decide_reward,
)
from shared.bigeye.models import AuditEvent, Severity
from shared.bigeye.promotions import Occasion, Promotion, load_active
from shared.bigeye.redemptions import (
    current_promotions,
    promotion_refs,
    read_redemptions,
    record_redemption,
    redemption_shards,
    stats_shard_of,
)
from shared.bigeye.slip2go import canonical_ref
from shared.bigeye.topup import bigeye_ledger
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


def _data(snap: Any) -> dict[str, Any] | None:
    return (snap.to_dict() or {}) if snap.exists else None


def read_reward(
    unit: Unit, *, user_id: str, key: str, occasion: Occasion, promos: Sequence[Promotion]
) -> RewardReads:
    """What a reward decides on, read through ``unit`` in two batched round trips: the
    posting under ``key`` and the user; then, unless that settles it (a replay, a missing
    user or one who may not act), the device marker and this user's refusal on it (a
    welcome bonus checked once per device), every candidate promotion, the user's counter
    and the redemption's home stats shard of each (a third round trip only when a limited
    promotion's home shard has no room: ``read_redemptions``)."""
    ledger = bigeye_ledger(unit.db)
    tx_id = transaction_id_for(key)
    posting, user_snap = unit.get_all([ledger.posting_ref(tx_id), ledger.user_ref(user_id)])
    user = _data(user_snap)
    if posting.exists or user is None or refusal(user) is not None:
        return RewardReads(_data(posting), user)
    hardware_id = checks_device(
        user, occasion, once_per_device=get_settings().welcome_bonus_once_per_device
    )
    device = []
    if hardware_id is not None:
        device_ref = unit.db.collection(WELCOME_DEVICES).document(device_key(hardware_id))
        device = [device_ref, device_ref.collection("refused").document(user_id)]
    snaps = unit.get_all([*device, *promotion_refs(unit.db, promos, user_id, tx_id)])
    current = current_promotions(unit, promos, user_id, tx_id)
    counts = read_redemptions(unit, current, user_id, tx_id)
    shards = {
        p.promo_id: redemption_shards(unit, p, counts[p.promo_id], tx_id)
        for p in current
        if not (p.limited and counts[p.promo_id].slot is None)
    }
    return RewardReads(
        None,
        user,
        hardware_id=hardware_id,
        device_marker=_data(snaps[0]) if device else None,
        refused_recorded=bool(device) and snaps[1].exists,
        promos=current,
        counts=counts,
        shards=shards,
    )


def apply_reward(
    unit: Unit,
    decision: Replay | Nothing | DeviceRefused | Grant,
    *,
    user_id: str,
    key: str,
    reads: RewardReads,
    description: str,
    reference_id: str | None,
    now: datetime,
) -> Reward:
    """Write what ``decide_reward`` decided, in ``unit``: the posting, the redemption and
    the device marker of a grant, or the recorded refusal of a reused device."""
    tx_id = transaction_id_for(key)
    if isinstance(decision, Replay):
        return Reward(user_id, decision.amount, None, tx_id, replayed=True)
    if isinstance(decision, DeviceRefused):
        if decision.audit is not None and reads.hardware_id is not None:
            # Recorded once per user, so a redelivered event audits nothing more.
            device_ref = unit.db.collection(WELCOME_DEVICES).document(device_key(reads.hardware_id))
            unit.create(
                device_ref.collection("refused").document(user_id),
                {"user_id": user_id, "created_at": now},
            )
            audit(
                unit,
                AuditEvent.WELCOME_BONUS_DEVICE_REUSED,
                user_id=user_id,
                details=decision.audit,
                now=now,
                severity=Severity.WARNING,
            )
        return Reward(user_id, 0, None, None)
    if isinstance(decision, Nothing):
        return Reward(user_id, 0, None, None)
    promo, quote = decision.promo, decision.quote
    result = bigeye_ledger(unit.db).credit(
        unit,
        user_id=user_id,
        kind=Kind.BONUS,
        amount=quote.bonus_credits,
        key=key,
        description=f"{description}: {promo.name}",
        refs=Refs(reference_id=reference_id or promo.promo_id),
    )
    record_redemption(unit, decision.redemption)
    if decision.device_marker is not None and reads.hardware_id is not None:
        marker = decision.device_marker
        unit.set(
            unit.db.collection(WELCOME_DEVICES).document(device_key(reads.hardware_id)),
            {
                "user_id": marker["user_id"],
                "promo_id": marker["promo_id"],
                "transaction_id": result.transaction_id,
                "created_at": marker["created_at"],
            },
        )
    return Reward(user_id, quote.bonus_credits, promo.promo_id, result.transaction_id)


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
        reads = read_reward(unit, user_id=user_id, key=key, occasion=occasion, promos=promos)
        decision = decide_reward(
            reads,
            user_id=user_id,
            occasion=occasion,
            credits_used=credits_used,
            redemption_id=tx_id,
            home=stats_shard_of(tx_id),
            now=now,
        )
        return apply_reward(
            unit,
            decision,
            user_id=user_id,
            key=key,
            reads=reads,
            description=description,
            reference_id=reference_id,
            now=now,
        )

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
