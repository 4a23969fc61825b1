"""Promotion redemptions on Firestore: counts read under a precondition, records written.

Limits must hold when two top-ups take the last redemption at once, so the counts the
engine decides on are documents the same atomic unit writes back:

- ``promo_stats_shards/{promo_id}_{shard}``: ``redemptions`` and the ``stats.*`` counts of
  the redemptions counted in that shard, on one of ``STATS_SHARDS`` documents. Every
  redemption reads its shard and writes it back under "unchanged since read". Every
  top-up under a promotion used to bump the promotion document itself (20 writes/s on
  one document during a promotion at the load of docs/benchmarks.md); 32 shards keep each
  under one write per second. ``fold_stats`` (run by BigEye's five-minute schedule,
  ``cron-expire-jobs``) writes their sums into ``promotions/{id}.stats``, so the seed's
  field lags by at most a run.
- A promotion with ``max_redemptions`` (limited) splits that limit over the same shards:
  each shard carries ``quota`` (how many redemptions it may hold in all) and
  ``quota_for`` (the ``max_redemptions`` the split was made for). A redemption reads its
  home shard (a hash of the redemption id) and counts there when it has room; otherwise
  it reads all the shards and takes the first with room from home on (the last slots are
  found wherever they are), or finds none: sold out. Since every shard holds at most its
  quota and the quotas sum to ``max_redemptions``, the limit is exact, and two units
  taking the last slot of a shard write the same shard: one commits, the other re-runs.
  When the shards carry no split for the promotion's current ``max_redemptions`` (a new
  limited promotion, a promotion made limited, a changed limit) the unit that finds out
  reads every shard and splits what is left again (``rules.split_quota``), writing the
  new quotas on every shard with its redemption. There is no per-promotion counter
  document, so nothing takes every redemption of a promotion (it was
  ``promo_counters/{promo_id}``, about one redemption per second at most; it is still read
  when splitting, so counts written there before are never lost).
- ``promo_counters/{promo_id}/users/{user_id}``: ``redemptions`` by that user, always read
  and written back (it decides ``max_per_user`` and ``stats.unique_users``).

The ``promo_redemptions`` document has a deterministic id and a re-run unit commits once,
so each redemption is counted once in every counter.

The promotions themselves are read through the same unit (``current_promotions``): the
ACTIVE query outside the unit only names the candidates, and the unit decides on each
candidate's document as it reads it (still ACTIVE, its conditions and reward as they are
now). Every status change of a promotion (pause, resume, cancel, expire:
``shared.admin.operations.promotion_transition``) writes all of its shards in the same
commit (``mark_shards``). So a change committed before the redemption's commit fails it,
and the re-run sees the change, without any top-up holding the promotion document itself:
that document took one precondition per top-up (20 per second at the load of
docs/benchmarks.md), a shard takes 1/32 of them. A ``max_redemptions`` edited straight
into the document (no operation of the suite changes it) is not fenced that way: a
redemption that read the promotion just before the edit may still count under the old
limit, as it could with the single counter before.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from google.cloud import firestore

from shared.atomic import Unit
from shared.bigeye.promotions import (
    PROMOTIONS_COLLECTION,
    REDEMPTIONS_COLLECTION,
    SATANG_KEY,
    InvalidPromotion,
    PromoStatus,
    Promotion,
    QuotaShard,
    RedemptionPlan,
    Redemptions,
    has_room,
    parse_promotion,
    plan_slot,
    redemption_slot,
    satang,
)
from shared.ledger.profiles import number
from shared.logs import get_logger, log

logger = get_logger(__name__)

COUNTERS_COLLECTION = "promo_counters"
STATS_SHARDS_COLLECTION = "promo_stats_shards"
#: Sized from the load model (docs/benchmarks.md): 20 top-ups/s under one promotion.
STATS_SHARDS = 32
#: ``fold_stats`` refolds every promotion whose shards moved within this long.
FOLD_LOOKBACK = timedelta(days=1)
STATS_KEYS = ("total_redemptions", "total_bonus_credits", "total_baht_collected", "unique_users")


def counter_ref(db: firestore.Client, promo_id: str) -> firestore.DocumentReference:
    return db.collection(COUNTERS_COLLECTION).document(promo_id)


def user_counter_ref(
    db: firestore.Client, promo_id: str, user_id: str
) -> firestore.DocumentReference:
    return counter_ref(db, promo_id).collection("users").document(user_id)


def stats_shard_ref(db: firestore.Client, promo_id: str, shard: int) -> firestore.DocumentReference:
    return db.collection(STATS_SHARDS_COLLECTION).document(f"{promo_id}_{shard:02d}")


def stats_shard_of(redemption_id: str) -> int:
    """A stable shard for a redemption (independent of the process's hash seed)."""
    digest = hashlib.blake2b(redemption_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % STATS_SHARDS


def _count(snap: Any) -> int:
    if snap is None or not snap.exists:
        return 0
    value = (snap.to_dict() or {}).get("redemptions")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def promotion_ref(db: firestore.Client, promo_id: str) -> firestore.DocumentReference:
    return db.collection(PROMOTIONS_COLLECTION).document(promo_id)


def _quota_shard(snap: Any) -> QuotaShard:
    data = (snap.to_dict() or {}) if snap is not None and snap.exists else {}

    def whole(value: Any) -> int | None:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return int(value) if ok else None

    return QuotaShard(_count(snap), whole(data.get("quota")), whole(data.get("quota_for")))


def _home_refs(
    db: firestore.Client, promos: Iterable[Promotion], redemption_id: str | None
) -> list[firestore.DocumentReference]:
    if redemption_id is None:
        return []
    home = stats_shard_of(redemption_id)
    return [stats_shard_ref(db, p.promo_id, home) for p in promos if p.limited]


def promotion_refs(
    db: firestore.Client, candidates: Iterable[Promotion], user_id: str, redemption_id: str
) -> list[firestore.DocumentReference]:
    """Every document a redemption of one of ``candidates`` starts from, for a service to
    read in its first batched round trip: each promotion, the user's counter of each, and
    the ``redemption_id``'s home shard of each (limited or not: an unlimited promotion
    counts there, and a candidate's limit is only known once its document is read)."""
    promos = list(candidates)
    home = stats_shard_of(redemption_id)
    return [
        *(promotion_ref(db, p.promo_id) for p in promos),
        *(user_counter_ref(db, p.promo_id, user_id) for p in promos),
        *(stats_shard_ref(db, p.promo_id, home) for p in promos),
    ]


def current_promotions(
    unit: Unit,
    candidates: Iterable[Promotion],
    user_id: str,
    redemption_id: str | None = None,
) -> tuple[Promotion, ...]:
    """The candidates as ``unit`` reads them now: those still ACTIVE, as they now read.

    Their redemption counters for ``user_id`` (and, given the ``redemption_id``, the home
    shards of limited ones) are read in the same round trip, so the ``read_redemptions``
    that follows usually costs nothing more. Documents the unit already read
    (``promotion_refs``) cost no round trip.
    """
    promos = list(candidates)
    if not promos:
        return ()
    refs = [promotion_ref(unit.db, p.promo_id) for p in promos]
    refs += [user_counter_ref(unit.db, p.promo_id, user_id) for p in promos]
    refs += _home_refs(unit.db, promos, redemption_id)
    snaps = unit.get_all(refs)[: len(promos)]
    current = []
    for snap in snaps:
        data = snap.to_dict() or {} if snap.exists else {}
        if data.get("status") != PromoStatus.ACTIVE.value:
            continue
        try:
            current.append(parse_promotion(snap.id, data))
        except InvalidPromotion as exc:
            log(logger, logging.ERROR, f"promotion ignored: {exc}", promo_id=snap.id)
    return tuple(current)


def read_redemptions(
    unit: Unit, promotions: Iterable[Promotion], user_id: str, redemption_id: str
) -> dict[str, Redemptions]:
    """Redemption counts of every promotion for ``user_id``, and for a limited one where
    the redemption ``redemption_id`` would count (``rules.plan_slot``): its home shard
    when that has room, else every shard is read (one more round trip, for all such
    promotions at once)."""
    promos = list(promotions)
    refs = [user_counter_ref(unit.db, p.promo_id, user_id) for p in promos]
    refs += _home_refs(unit.db, promos, redemption_id)
    snaps = unit.get_all(refs) if refs else []
    by_path = {s.reference.path: s for s in snaps}
    home = stats_shard_of(redemption_id)
    counts = {}
    full: list[tuple[Promotion, int]] = []
    by_user = {
        p.promo_id: _count(by_path.get(user_counter_ref(unit.db, p.promo_id, user_id).path))
        for p in promos
    }
    for p in promos:
        limit = p.conditions.max_redemptions
        if limit is None:
            counts[p.promo_id] = Redemptions(by_user=by_user[p.promo_id])
            continue
        mine = _quota_shard(by_path[stats_shard_ref(unit.db, p.promo_id, home).path])
        if has_room(mine, limit):
            counts[p.promo_id] = Redemptions(by_user=by_user[p.promo_id], sharded=True, slot=home)
            continue
        full.append((p, limit))
    if full:
        every = [
            ref
            for p, _ in full
            for ref in (
                *(stats_shard_ref(unit.db, p.promo_id, k) for k in range(STATS_SHARDS)),
                counter_ref(unit.db, p.promo_id),
            )
        ]
        snaps = unit.get_all(every)
        for i, (p, limit) in enumerate(full):
            *shards, legacy = snaps[i * (STATS_SHARDS + 1) : (i + 1) * (STATS_SHARDS + 1)]
            plan = plan_slot(limit, home, [_quota_shard(s) for s in shards], _count(legacy))
            counts[p.promo_id] = replace(plan, by_user=by_user[p.promo_id])
    return {p.promo_id: counts[p.promo_id] for p in promos}


def redemption_shards(
    unit: Unit, promo: Promotion, counts: Redemptions, redemption_id: str
) -> dict[int, dict[str, Any] | None]:
    """The stats shards a redemption of ``promo`` writes back, as ``unit`` read them (None:
    missing): its slot, and every shard when ``counts`` carries a new split. After
    ``promotion_refs`` and ``read_redemptions`` every one is already read: no round trip."""
    slot = redemption_slot(promo, counts, stats_shard_of(redemption_id))
    wanted = range(STATS_SHARDS) if counts.quotas is not None else [slot]
    snaps = unit.get_all([stats_shard_ref(unit.db, promo.promo_id, k) for k in wanted])
    return {
        k: ((s.to_dict() or {}) if s.exists else None) for k, s in zip(wanted, snaps, strict=True)
    }


def record_redemption(unit: Unit, plan: RedemptionPlan) -> None:
    """Write a redemption decided by ``rules.plan_redemption``, in ``unit`` (no reads).

    The stats shards it writes were read through ``unit`` (``redemption_shards``), so each
    is written back under "unchanged since read": a status change of the promotion
    committed since writes every shard (``mark_shards``), so it fails this commit and the
    re-run decides on the promotion as it is then.
    """
    db = unit.db
    unit.create(db.collection(REDEMPTIONS_COLLECTION).document(plan.redemption_id), plan.redemption)
    unit.set(user_counter_ref(db, plan.promo_id, plan.user_id), plan.user_counter)
    for k, data in plan.shards:
        unit.set(stats_shard_ref(db, plan.promo_id, k), data)


def shards_of(db: firestore.Client, promo_id: str) -> list[QuotaShard]:
    """Every stats shard of a promotion as its quota sees it (reads, outside any unit)."""
    refs = [stats_shard_ref(db, promo_id, k) for k in range(STATS_SHARDS)]
    return [_quota_shard(snap) for snap in db.get_all(refs)]


def mark_shards(unit: Unit, promo_id: str, status: str, now: datetime) -> None:
    """Write the promotion's new ``status`` into every stats shard, in ``unit``.

    A redemption reads and writes back its shard under "unchanged since read", so this
    fails any redemption that decided on the promotion before the change; it re-runs and
    sees the change (``record_redemption``).
    """
    for k in range(STATS_SHARDS):
        unit.merge(
            stats_shard_ref(unit.db, promo_id, k),
            {"promo_id": promo_id, "status": status, "updated_at": now},
        )


def fold_stats(db: firestore.Client, now: datetime) -> int:
    """Write the shards' sums into ``promotions/{id}.stats`` for every promotion whose
    shards moved within ``FOLD_LOOKBACK``; returns how many promotions were folded.

    Idempotent: each run writes the full sums, never an increment."""
    recent = db.collection(STATS_SHARDS_COLLECTION).where(
        filter=firestore.FieldFilter("updated_at", ">=", now - FOLD_LOOKBACK)
    )
    promo_ids = sorted({str((s.to_dict() or {}).get("promo_id")) for s in recent.stream()})
    folded = 0
    for promo_id in promo_ids:
        shards = db.get_all([stats_shard_ref(db, promo_id, k) for k in range(STATS_SHARDS)])
        sums: dict[str, Any] = {}
        for snap in shards:
            if not snap.exists:
                continue
            for key, value in ((snap.to_dict() or {}).get("stats") or {}).items():
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                if key == "total_baht_collected":  # shards written before satang
                    key, value = SATANG_KEY, satang(value)
                if key in STATS_KEYS or key == SATANG_KEY:
                    sums[key] = sums.get(key, 0) + value
        if SATANG_KEY in sums:
            sums["total_baht_collected"] = number(Decimal(sums.pop(SATANG_KEY)) / 100)
        ref = db.collection(PROMOTIONS_COLLECTION).document(promo_id)
        if not sums or not ref.get().exists:
            continue
        ref.update({f"stats.{key}": value for key, value in sums.items()})
        folded += 1
    return folded
