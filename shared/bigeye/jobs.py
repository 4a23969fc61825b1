"""The BigEye job lifecycle: reserve -> finalize (COMPLETED) or expiry (EXPIRED).

Credits move only through the shared ledger, with the job token as the hold id:
- reserve: ``hold(hold_id=job_token, amount=reserved_credits, expires_at)`` (a RESERVE
  transaction) + the ``jobs`` document RESERVED + audit JOB_RESERVED, in one unit, which
  reads the app settings too (maintenance, version, rates, prompts);
- finalize: ``settle(hold_id=job_token, used=actual_usage)`` (a REFUND of the rest) + the
  job COMPLETED + audit JOB_COMPLETED, in one unit; a repeat replays the first answer;
- expiry: ``expire(hold_id=job_token)`` (a REFUND of everything) + the job EXPIRED +
  audit JOB_EXPIRED_AUTO_REFUND, in one unit.
The ledger lets exactly one close of a hold commit, and the job document is written in the
same unit with an "unchanged since read" precondition, so finalize and expiry racing each
other end with exactly one winner; the loser re-reads and sees the winner's status.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from google.cloud import firestore

from shared.atomic import Unit
from shared.bigeye.appsettings import AppSettings, app_settings_ref
from shared.bigeye.audit import audit
from shared.bigeye.configcrypt import encrypt_config
from shared.bigeye.models import (
    JOBS,
    USERS,
    AuditEvent,
    FinalizeRequest,
    JobStatus,
    KeywordStyle,
    Mode,
    ReserveRequest,
)
from shared.clock import FixedClock, ensure_utc
from shared.errors import (
    Conflict,
    Gone,
    InvalidInput,
    NotFound,
    Unavailable,
    UpgradeRequired,
)
from shared.ledger import BIGEYE, Ledger, ledger_for, posting_key, transaction_id_for
from shared.logs import get_logger, log
from shared.settings import get_settings
from shared.sweeps import due

logger = get_logger(__name__)


# -- pure rules --------------------------------------------------------------------------
def reserved_credits(photo_count: int, video_count: int, photo_rate: int, video_rate: int) -> int:
    """``photo_count × photo_rate + video_count × video_rate``."""
    return photo_count * photo_rate + video_count * video_rate


def actual_usage(job: dict[str, Any], success: int, photos: int | None, videos: int | None) -> int:
    """Credits the successful files cost (docs/bigeye-api.md, "How finalize charges").

    ``photos``/``videos`` are read as the successful photos and videos when they add up to
    ``success`` and fit the reservation; otherwise the split of the successes is unknown
    and they are priced in the user's favour: as many as the job reserved at the cheaper
    rate first. Never more than the job reserved.
    """
    photo_count = int(job["photo_count"])
    video_count = int(job["video_count"])
    photo_rate = int(job["photo_rate"])
    video_rate = int(job["video_rate"])
    if (
        photos is not None
        and videos is not None
        and photos + videos == success
        and photos <= photo_count
        and videos <= video_count
    ):
        used = photos * photo_rate + videos * video_rate
    else:
        if photo_rate <= video_rate:
            cheap = min(success, photo_count)
            used = cheap * photo_rate + min(success - cheap, video_count) * video_rate
        else:
            cheap = min(success, video_count)
            used = cheap * video_rate + min(success - cheap, photo_count) * photo_rate
    return min(used, int(job["reserved_credits"]))


def decide_finalize(
    job: dict[str, Any] | None, *, user_id: str, request: FinalizeRequest, now: datetime
) -> int:
    """The credits a finalize of ``job`` (as read) charges, or why it is refused.

    404 when the job is not the caller's, 410 once it expired, 409 when it cannot be
    finalized (or was, with other counts), 400 when the counts exceed its files. A job
    already COMPLETED with these counts is finalized again (the ledger replays).
    """
    if job is None or job.get("user_id") != user_id:
        raise NotFound("Job not found")
    status = job.get("status")
    if status == JobStatus.EXPIRED.value:
        raise Gone("Job expired; its reserved credits were refunded")
    if status not in (JobStatus.RESERVED.value, JobStatus.COMPLETED.value):
        raise Conflict(f"Job is {status} and cannot be finalized")
    if request.success + request.failed > int(job["file_count"]):
        raise InvalidInput("success + failed exceeds the job's file_count")
    if status == JobStatus.RESERVED.value and now >= ensure_utc(job["expires_at"]):
        raise Gone("Job expired; its reserved credits are refunded automatically")
    if status == JobStatus.COMPLETED.value and (
        job.get("success_count") != request.success or job.get("failed_count") != request.failed
    ):
        raise Conflict("Job was already finalized with different counts")
    return actual_usage(job, request.success, request.photos, request.videos)


def due_for_expiry(job: dict[str, Any] | None, now: datetime) -> bool:
    """Whether ``job`` (as read) is still RESERVED and past its ``expires_at``."""
    if job is None or job.get("status") != JobStatus.RESERVED.value:
        return False
    return ensure_utc(job["expires_at"]) <= now


def prompt_for(settings: AppSettings, mode: Mode, style: KeywordStyle | None) -> str:
    """The prompt a job runs with: iStock's own, else Single Words or (default) Hybrid."""
    if mode is Mode.ISTOCK:
        key = "prompts.istock"
    elif style is KeywordStyle.SINGLE_WORDS:
        key = "prompts.single"
    else:
        key = "prompts.hybrid"
    prompt = settings.get(key)
    if not isinstance(prompt, str) or not prompt:
        raise Unavailable(f"{key} is not configured")
    return prompt


class UnderMaintenance(Unavailable):
    """Maintenance mode, found by a request that reads the app settings in its own unit
    (reserve): answered 503 with nothing written and nothing counted, as the router answers
    every other route in maintenance."""


@dataclass(frozen=True)
class _Priced:
    """What a reserve charges and runs with, decided from the app settings."""

    photo_rate: int
    video_rate: int
    amount: int
    prompt: str


def price_reserve(settings: AppSettings, request: ReserveRequest) -> _Priced:
    """The reserve's rates, credits and prompt, or why the settings refuse it: 503 in
    maintenance (``UnderMaintenance``), 426 for a client below ``force_update_below``, 503
    when the mode's rates or prompt are not configured."""
    if settings.maintenance_mode:
        raise UnderMaintenance(settings.maintenance_message or "Service under maintenance")
    if settings.must_update(request.version):
        raise UpgradeRequired(
            f"Version {request.version} is no longer supported; please update to "
            f"{settings.latest_version or 'the latest version'}"
        )
    photo_rate, video_rate = settings.rates_for(request.mode)
    amount = reserved_credits(request.photo_count, request.video_count, photo_rate, video_rate)
    return _Priced(
        photo_rate, video_rate, amount, prompt_for(settings, request.mode, request.keyword_style)
    )


def settings_from(snap: Any) -> AppSettings:
    """The app settings of a ``system_config/app_settings`` snapshot, or 503 when missing."""
    if not snap.exists:
        raise Unavailable("The service is not configured yet; try again later")
    return AppSettings(snap.to_dict() or {})


class Admission(Protocol):
    """Lets a request in from inside its unit of work (``shared.bigeye.api``): reads the
    caller's user document and rate-limit counters with the unit's other documents, checks
    the caller, counts the request in the unit; returns the caller's user document."""

    def refs(self, db: firestore.Client) -> list[firestore.DocumentReference]: ...

    def admit(self, unit: Unit) -> dict[str, Any]: ...


# -- services ----------------------------------------------------------------------------
def reserve(
    db: firestore.Client,
    *,
    user_id: str,
    admission: Admission,
    request: ReserveRequest,
    now: datetime,
) -> dict[str, Any]:
    """Reserve the job's credits; the seed's response (503, 426 and 402 on refusal).

    The app settings (maintenance, the client's version, rates, prompts) are read in the
    unit's one round trip with the caller, the counters and the ledger's documents, so a
    reserve reads nothing before its unit: as current as a read before it, one round trip
    fewer.
    """
    job_token = str(uuid.uuid4())
    expires_at = now + timedelta(seconds=get_settings().job_reserve_ttl_s)
    ledger = ledger_for("bigeye")
    job_ref = db.collection(JOBS).document(job_token)
    read: dict[str, Any] = {}

    def work(unit: Unit) -> None:
        # One round trip for everything the unit reads (settings, caller, counters, ledger).
        settings_snap = unit.get_all(
            [
                app_settings_ref(db),
                *admission.refs(db),
                ledger.posting_ref(transaction_id_for(posting_key("hold", job_token))),
                ledger.hold_ref(job_token),
            ]
        )[0]
        settings = settings_from(settings_snap)
        priced = price_reserve(settings, request)
        user = admission.admit(unit)
        read["settings"], read["priced"] = settings, priced
        job: dict[str, Any] = {
            "job_token": job_token,
            "user_id": user_id,
            "status": JobStatus.RESERVED.value,
            "mode": request.mode.value,
            "keyword_style": request.keyword_style.value if request.keyword_style else None,
            "file_count": request.file_count,
            "photo_count": request.photo_count,
            "video_count": request.video_count,
            "photo_rate": priced.photo_rate,
            "video_rate": priced.video_rate,
            "credit_rate": priced.photo_rate,
            "reserved_credits": priced.amount,
            "actual_usage": 0,
            "refund_amount": 0,
            "success_count": 0,
            "failed_count": 0,
            "created_at": now,
            "completed_at": None,
            "expires_at": expires_at,
            "metadata": {
                "app_version": request.version,
                "model_used": request.model,
                "hardware_id": user.get("hardware_id"),
            },
        }
        ledger.hold(
            unit,
            user_id=user_id,
            hold_id=job_token,
            amount=priced.amount,
            expires_at=expires_at,
            description=f"Reserve {request.file_count} files ({request.mode.value})",
        )
        unit.create(job_ref, job)
        unit.update(db.collection(USERS).document(user_id), {"last_active": now})
        audit(
            unit,
            AuditEvent.JOB_RESERVED,
            user_id=user_id,
            details={
                "job_token": job_token,
                "mode": request.mode.value,
                "reserved_credits": priced.amount,
                "file_count": request.file_count,
            },
            now=now,
        )

    # Group commit: one user's concurrent reserves share commits (docs/ledger.md).
    ledger.run(work, account=user_id, now=now)
    settings: AppSettings = read["settings"]
    priced: _Priced = read["priced"]
    concurrency = {
        "image": settings.get("max_concurrent_images"),
        "video": settings.get("max_concurrent_videos"),
    }
    config = encrypt_config(
        {
            "mode": request.mode.value,
            "keyword_style": request.keyword_style.value if request.keyword_style else None,
            "prompt": priced.prompt,
            "prompts_version": settings.get("prompts_version"),
        },
        job_token,
    )
    return {
        "job_token": job_token,
        "reserved_credits": priced.amount,
        "photo_rate": priced.photo_rate,
        "video_rate": priced.video_rate,
        "config": config,
        "dictionary": settings.get("dictionary") or "",
        "blacklist": list(settings.get("blacklist") or []),
        "concurrency": concurrency,
        "cache_threshold": settings.get("context_cache_threshold"),
    }


def finalize(
    db: firestore.Client,
    *,
    user_id: str,
    admission: Admission,
    request: FinalizeRequest,
    now: datetime,
) -> dict[str, Any]:
    """Charge what succeeded, refund the rest; ``{"refunded", "balance", "actual_usage"}``
    (the last one for ``with_usage_reward``, not the client); idempotent."""
    ledger = ledger_for("bigeye")
    job_ref = db.collection(JOBS).document(request.job_token)
    close_ref = ledger.posting_ref(
        transaction_id_for(posting_key("hold", request.job_token, "close"))
    )

    def work(unit: Unit) -> dict[str, Any]:
        # One round trip for everything the unit reads (caller, counters, job, ledger).
        unit.get_all([*admission.refs(db), job_ref, close_ref, ledger.hold_ref(request.job_token)])
        admission.admit(unit)
        snap = unit.get(job_ref)  # read
        job = snap.to_dict() or {} if snap.exists else None
        used = decide_finalize(job, user_id=user_id, request=request, now=now)  # decide
        try:  # apply
            result = ledger.settle(
                unit,
                hold_id=request.job_token,
                used=used,
                description=f"Job {request.job_token}: refund of {request.failed} failed files",
            )
        except Conflict:
            # The hold was closed with other counts (the job, read in this same unit, and
            # re-checked as current before this error is surfaced, says so too).
            raise Conflict("Job was already finalized with different counts") from None
        refunded = result.amount if result.amount > 0 else 0
        if not result.replayed:
            unit.update(
                job_ref,
                {
                    "status": JobStatus.COMPLETED.value,
                    "actual_usage": used,
                    "refund_amount": refunded,
                    "success_count": request.success,
                    "failed_count": request.failed,
                    "completed_at": now,
                },
            )
            audit(
                unit,
                AuditEvent.JOB_COMPLETED,
                user_id=user_id,
                details={
                    "job_token": request.job_token,
                    "actual_usage": used,
                    "refund_amount": refunded,
                    "success_count": request.success,
                    "failed_count": request.failed,
                },
                now=now,
            )
        return {"refunded": refunded, "balance": result.balance_after, "actual_usage": used}

    return ledger.run(work, account=user_id, now=now)


def with_usage_reward(
    db: firestore.Client,
    reply: dict[str, Any],
    *,
    user_id: str,
    request: FinalizeRequest,
    used: int,
    now: datetime,
) -> dict[str, Any]:
    """Pay an ACTIVE USAGE_REWARD promotion for a finalized job (``used``: the credits it
    consumed, as finalize settled them), once per job.

    The reward is its own idempotent posting (key ``usage-reward:{job_token}``) right after
    the finalize commit; a repeated finalize replays it, so a reward lost to a crash between
    the two is paid when the client retries. ``balance`` then includes the reward, the same
    on every repeat.
    """
    from shared.bigeye.rewards import usage_reward

    reward = usage_reward(
        db, user_id=user_id, job_token=request.job_token, credits_used=used, now=now
    )
    if reward.credits <= 0:
        return reply
    return {**reply, "balance": int(reply["balance"]) + reward.credits}


@dataclass(frozen=True)
class ExpiryReport:
    """What one expiry sweep did."""

    expired: int
    refunded_credits: int
    skipped: int


def expire_job(ledger: Ledger, job_token: str, now: datetime) -> int | None:
    """Expire one job if it is still RESERVED and past ``expires_at``; credits refunded."""
    db = ledger.db
    job_ref = db.collection(JOBS).document(job_token)

    def work(unit: Unit) -> int | None:
        snap = unit.get(job_ref)  # read
        job = snap.to_dict() or {} if snap.exists else None
        if job is None or not due_for_expiry(job, now):  # decide
            return None
        result = ledger.expire(unit, hold_id=job_token)  # apply
        refunded = result.amount if result.amount > 0 else 0
        unit.update(
            job_ref,
            {"status": JobStatus.EXPIRED.value, "actual_usage": 0, "refund_amount": refunded},
        )
        audit(
            unit,
            AuditEvent.JOB_EXPIRED_AUTO_REFUND,
            user_id=str(job.get("user_id")),
            details={
                "job_token": job_token,
                "refund_amount": refunded,
                "reserved_credits": job.get("reserved_credits"),
                "expires_at": job["expires_at"],
            },
            now=now,
        )
        return refunded

    return ledger.run(work, now=now)


def expire_due_jobs(
    db: firestore.Client, now: datetime, *, batch_size: int = 200, max_jobs: int = 5000
) -> ExpiryReport:
    """Expire every RESERVED job past ``expires_at`` (as of ``now``), each in its own unit."""
    settings = get_settings()
    ledger = Ledger(
        db,
        BIGEYE,
        FixedClock(now),
        max_amount=settings.ledger_max_amount,
        max_attempts=settings.ledger_max_attempts,
    )
    expired = refunded = skipped = 0
    for snap in due(
        db,
        JOBS,
        status=JobStatus.RESERVED.value,
        now=now,
        batch_size=batch_size,
        limit=max_jobs,
    ):
        try:
            amount = expire_job(ledger, snap.id, now)
        except (Conflict, NotFound) as exc:
            # A job whose hold was closed some other way: report, never force.
            log(logger, logging.ERROR, f"job not expired: {exc.detail}", job_token=snap.id)
            skipped += 1
            continue
        if amount is None:
            skipped += 1
        else:
            expired += 1
            refunded += amount
    return ExpiryReport(expired=expired, refunded_credits=refunded, skipped=skipped)
