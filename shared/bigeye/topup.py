"""BigEye slip top-ups: verify a bank-transfer slip through Slip2Go, then credit it once.

Flow of ``topup`` (the service behind ``POST /api/v1/credit/topup``):

1. Validate the request (data URL slip, baht amount > 0 with at most 2 decimals, optional
   promo code) — a malformed request is a 400 with nothing written. The user must exist
   and be active; the exchange rate comes from ``system_config/app_settings``. A promo code
   is checked before Slip2Go is asked (400 unknown / not applicable, 409 used up).
2. Keep the image in Cloud Storage (``shared.bigeye.slipimages``; ``image_url`` is the
   object's URL), then write the ``slips`` document PENDING (``verification_method``
   ``AUTO_API``, or ``AUTO_DEV`` in development: ``automatic_method``) together with its
   ``slip_submissions`` record (amount and promo code, for a later re-verification), then
   ask Slip2Go with the receiver, amount and duplicate checks. An outage, quota or credit
   problem leaves it PENDING and answers 503: nothing is credited, the slip can be
   submitted again, and ``cron-reverify-slips`` resolves it once Slip2Go answers. A
   rejected slip becomes REJECTED (400 with the reason).
3. Whatever Slip2Go says, the amount and the receiver (account digits, and the bank when
   Slip2Go names it) are checked again here. Slip2Go's
   "duplicate" (200501) is a 409 only when this ledger already credited the ``transRef``;
   otherwise it is a slip an earlier attempt verified but never credited, and it proceeds.
4. One atomic unit: the TOPUP transaction (key ``slip:{transRef}`` with the canonical
   reference of ``slip2go.canonical_ref``, so case, spaces or invisible characters never
   make a second key; postings made before under the text as given are checked too; the
   slip keeps the printed text in ``bank_ref``: a slip can never credit
   twice, a racing second top-up re-runs, finds the posting and gets 409 DUPLICATE), the
   promotion chosen against counts read in the same unit, ``users.total_topup_baht``, the
   slip VERIFIED, the redemption and its counters, ``stats.*`` and the ``TOPUP_SUCCESS``
   audit log.

Operators (``credits-admin slips``, the console) approve a PENDING or REJECTED slip
(``approve_slip``: the same unit and the same ledger key ``slip:{transRef}``, so a slip can
still credit only once; ``verification_method`` MANUAL; actor and reason in
``admin_actions``) or reject it (``reject_slip``).

``slip_submissions/{slip_id}`` is a collection of this project (BigEye's ``slips`` schema gets no
extra fields): ``user_id``, ``amount_baht``, ``promo_code``, ``created_at``, ``attempts``,
``last_attempt_at``, ``last_code``, and ``manual_review`` / ``manual_review_reason`` when
the schedule cannot re-verify a slip (no stored image or amount) and leaves it to operators.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from google.cloud import firestore

from shared.atomic import Unit
from shared.bigeye import slipimages
from shared.bigeye.grants import (
    SlipAlreadyUsed,
    TopupPlan,
    TopupReads,
    check_user,
    customer_facts,
    decide_topup,
    legacy_key,
    verification_fields,
)
from shared.bigeye.promotions import (
    Promotion,
    PromoType,
    load_active,
    quote_topup,
    same_code,
)
from shared.bigeye.redemptions import (
    current_promotions,
    promotion_refs,
    read_redemptions,
    record_redemption,
    redemption_shards,
    stats_shard_of,
)
from shared.bigeye.slip2go import (
    Outcome,
    Receiver,
    Slip2GoClient,
    SlipData,
    Verification,
    canonical_ref,
    configured_receivers,
    receiver_outcome,
)
from shared.clock import ProcessClock, ensure_utc
from shared.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Unavailable,
)
from shared.ledger import (
    BIGEYE,
    Kind,
    Ledger,
    Refs,
    TopupMeta,
    posting_key,
    transaction_id_for,
)
from shared.ledger.profiles import number
from shared.logs import get_logger, log
from shared.settings import get_settings

logger = get_logger(__name__)

SLIPS_COLLECTION = "slips"
SUBMISSIONS_COLLECTION = "slip_submissions"
ADMIN_ACTIONS_COLLECTION = "admin_actions"
AUDIT_COLLECTION = "audit_logs"
APP_SETTINGS_PATH = ("system_config", "app_settings")
MAX_TOPUP_BAHT = Decimal(1_000_000)
MAX_SLIP_CHARS = 4 * 1024 * 1024
MAX_PROMO_CODE_CHARS = 64
_DATA_URL = re.compile(r"^data:[\w.+-]+/[\w.+-]+(;[\w.+-]+=[\w.+-]+)*;base64,", re.ASCII)
_TOPUP_PROMOS = {
    PromoType.RATE_BOOST,
    PromoType.TIERED_BONUS,
    PromoType.FLAT_BONUS,
    PromoType.FIRST_TOPUP,
}


# -- request validation --------------------------------------------------------------------
def parse_amount(amount: object) -> Decimal:
    """The baht amount: a JSON number > 0, at most 2 decimals, at most 1,000,000."""
    if isinstance(amount, bool) or not isinstance(amount, int | float | Decimal):
        raise InvalidInput("amount must be a number of baht")
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise InvalidInput("amount must be a number of baht") from None
    if not value.is_finite() or value <= 0:
        raise InvalidInput("amount must be greater than zero")
    if value > MAX_TOPUP_BAHT:
        raise InvalidInput(f"amount must not exceed {MAX_TOPUP_BAHT} baht")
    if value != value.quantize(Decimal("0.01")):
        raise InvalidInput("amount must have at most 2 decimals (satang)")
    return Decimal(int(value)) if value == value.to_integral_value() else value


def parse_slip(slip: object) -> tuple[str, str]:
    """(the data URL, its ``image_url`` content address ``sha256:<hex>``) or InvalidInput."""
    if not isinstance(slip, str) or not slip:
        raise InvalidInput("slip must be a data URL (data:image/jpeg;base64,...)")
    if len(slip) > MAX_SLIP_CHARS:
        raise InvalidInput("slip is too large")
    match = _DATA_URL.match(slip)
    if match is None:
        raise InvalidInput("slip must be a data URL (data:image/jpeg;base64,...)")
    try:
        content = base64.b64decode(slip[match.end() :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("slip is not valid base64") from None
    if not content:
        raise InvalidInput("slip is empty")
    return slip, "sha256:" + hashlib.sha256(content).hexdigest()


def parse_promo_code(promo_code: object) -> str | None:
    """The promo code, or None when absent or blank."""
    if promo_code is None:
        return None
    if not isinstance(promo_code, str):
        raise InvalidInput("promo_code must be a string")
    code = promo_code.strip()
    if len(code) > MAX_PROMO_CODE_CHARS:
        raise InvalidInput(f"promo_code is longer than {MAX_PROMO_CODE_CHARS} characters")
    return code or None


def exchange_rate(db: firestore.Client) -> Decimal:
    """``system_config/app_settings.exchange_rate`` (credits per baht), or 503."""
    snap = db.collection(APP_SETTINGS_PATH[0]).document(APP_SETTINGS_PATH[1]).get()
    raw = (snap.to_dict() or {}).get("exchange_rate") if snap.exists else None
    try:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise InvalidOperation
        rate = Decimal(str(raw))
    except InvalidOperation:
        raise Unavailable("top-ups are not configured (exchange_rate)") from None
    if not rate.is_finite() or rate <= 0:
        raise Unavailable("top-ups are not configured (exchange_rate)")
    return rate


def bigeye_ledger(db: firestore.Client) -> Ledger:
    settings = get_settings()
    return Ledger(
        db,
        BIGEYE,
        ProcessClock(),
        max_amount=settings.ledger_max_amount,
        max_attempts=settings.ledger_max_attempts,
    )


# -- the slip document ---------------------------------------------------------------------
def automatic_method() -> str:
    """``verification_method`` of a slip checked automatically: ``AUTO_API`` (Slip2Go), or
    ``AUTO_DEV`` ("dev only" in BigEye's schema) when the check is a development one.

    Development means all three: the process talks to the emulators
    (``FIRESTORE_EMULATOR_HOST``), it is not a deployed function (no ``K_SERVICE``), and
    ``SLIP2GO_BASE_URL`` is not the production Slip2Go (it is the local stand-in, or any
    other test double). A deployed function always writes ``AUTO_API``, and so does a local
    stack pointed at the real Slip2Go, whose answers are real verifications.
    """
    from shared.settings import Settings

    production = str(Settings.model_fields["slip2go_base_url"].default).rstrip("/")
    emulated = bool(os.environ.get("FIRESTORE_EMULATOR_HOST", "").strip())
    deployed = bool(os.environ.get("K_SERVICE"))
    real = get_settings().slip2go_base_url.rstrip("/") == production
    return "AUTO_DEV" if emulated and not deployed and not real else "AUTO_API"


def _pending_slip(user_id: str, image_url: str, now: datetime) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "status": "PENDING",
        "image_url": image_url,
        "amount_detected": None,
        "amount_credited": None,
        "bank_ref": None,
        "verification_method": automatic_method(),
        "verification_result": {"provider": "Slip2Go", "raw_response": {}, "confidence": 1.0},
        "reject_reason": None,
        "created_at": now,
        "verified_at": None,
        "metadata": {"sender_name": None, "receiver_account": None},
    }


_REJECTIONS = {
    Outcome.WRONG_RECEIVER: "the slip was not paid to BigEye's account",
    Outcome.WRONG_AMOUNT: "the slip's amount does not match the amount given",
    Outcome.WRONG_DATE: "the slip's date is not accepted",
    Outcome.NOT_FOUND: "no readable payment QR code on the slip",
    Outcome.BAD_REQUEST: "Slip2Go could not read the slip",
}


def _own_check(
    check: Verification, baht: Decimal, receivers: tuple[Receiver, ...]
) -> tuple[Outcome, SlipData | None]:
    """Re-check what Slip2Go said was fine: a transRef, the amount and the receiver."""
    slip = check.slip
    if slip is None:
        return Outcome.NOT_FOUND, None
    if slip.amount is None or slip.amount != baht:
        return Outcome.WRONG_AMOUNT, slip
    return receiver_outcome(slip.receiver_account, receivers, slip.receiver_bank), slip


# -- the service ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Request:
    user_id: str
    slip_id: str
    baht: Decimal
    code: str | None
    rate: Decimal
    promos: tuple[Promotion, ...]
    slip: SlipData
    check: Verification
    now: datetime
    method: str = field(default_factory=automatic_method)
    actor: str | None = None
    reason: str | None = None
    ip_address: str | None = None


def topup(
    db: firestore.Client,
    *,
    user_id: str,
    slip: str,
    amount: object,
    promo_code: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Verify and credit one slip; returns the response body (see docs/bigeye-topups.md)."""
    now = ensure_utc(now)
    if not isinstance(user_id, str) or not user_id or "/" in user_id:
        raise InvalidInput("user_id is required")
    data_url, image_url = parse_slip(slip)
    baht = parse_amount(amount)
    code = parse_promo_code(promo_code)
    user_ref = db.collection("users").document(user_id)
    check_user(_data(user_ref.get()))
    rate = exchange_rate(db)
    try:
        receivers = configured_receivers()
    except ValueError as exc:
        log(logger, logging.ERROR, f"top-ups misconfigured: {exc}")
        raise Unavailable("top-ups are not configured (receiver accounts)") from None
    promos = tuple(p for p in load_active(db) if p.type in _TOPUP_PROMOS)
    if code is not None:
        _precheck_code(db, promos, user_id, baht, rate, code, now)

    image_url = slipimages.store(slipimages.decode(data_url))
    slip_ref = db.collection(SLIPS_COLLECTION).document()
    batch = db.batch()
    batch.create(slip_ref, _pending_slip(user_id, image_url, now))
    batch.create(
        db.collection(SUBMISSIONS_COLLECTION).document(slip_ref.id),
        {
            "user_id": user_id,
            "amount_baht": number(baht),
            "promo_code": code,
            "created_at": now,
            "attempts": 1,
            "last_attempt_at": now,
            "last_code": None,
        },
    )
    batch.commit()
    check = Slip2GoClient().verify(data_url, amount=baht, receivers=receivers)
    return _resolve(
        db,
        slip_ref,
        user_id=user_id,
        baht=baht,
        code=code,
        rate=rate,
        promos=promos,
        receivers=receivers,
        check=check,
        now=now,
    )


def _resolve(
    db: firestore.Client,
    slip_ref: Any,
    *,
    user_id: str,
    baht: Decimal,
    code: str | None,
    rate: Decimal,
    promos: tuple[Promotion, ...],
    receivers: tuple[Receiver, ...],
    check: Verification,
    now: datetime,
) -> dict[str, Any]:
    """Act on Slip2Go's answer for a PENDING slip: credit it, or record why not."""
    log(
        logger,
        logging.INFO,
        "slip verified by Slip2Go",
        user_id=user_id,
        slip_id=slip_ref.id,
        code=check.code,
        outcome=check.outcome.value,
    )

    if check.outcome is Outcome.UNAVAILABLE:
        slip_ref.update(verification_fields(check))
        log(
            logger,
            logging.ERROR,
            "Slip2Go unavailable; slip left PENDING",
            user_id=user_id,
            slip_id=slip_ref.id,
            code=check.code,
            detail=check.message,
        )
        raise Unavailable(
            "slip verification is unavailable right now; nothing was credited, "
            "please submit the slip again later"
        )
    if check.outcome is Outcome.DUPLICATE and check.slip is not None and _credited(db, check.slip):
        _finish(slip_ref, check, "DUPLICATE", "this slip has already been used")
        raise SlipAlreadyUsed("this slip has already been used")
    outcome: Outcome = check.outcome
    if outcome in {Outcome.VALID, Outcome.DUPLICATE}:
        outcome, _ = _own_check(check, baht, receivers)
    if outcome is not Outcome.VALID or check.slip is None:
        reason = _REJECTIONS.get(outcome, "the slip could not be verified")
        if outcome is Outcome.WRONG_BANK and check.slip is not None:
            reason = (
                f"the slip was paid to an account at bank {check.slip.receiver_bank}, "
                "not BigEye's account"
            )
        _finish(slip_ref, check, "REJECTED", reason)
        raise InvalidInput(reason)

    request = _Request(user_id, slip_ref.id, baht, code, rate, promos, check.slip, check, now)
    try:
        return _credit(db, request)
    except SlipAlreadyUsed:
        _finish(slip_ref, check, "DUPLICATE", "this slip has already been used")
        raise
    except (InvalidInput, Conflict, Forbidden, NotFound) as exc:
        _finish(slip_ref, check, "REJECTED", exc.detail)
        raise


def _precheck_code(
    db: firestore.Client,
    promos: tuple[Promotion, ...],
    user_id: str,
    baht: Decimal,
    rate: Decimal,
    code: str,
    now: datetime,
) -> None:
    """Refuse an unusable promo code before the slip is sent to Slip2Go."""
    named = [p for p in promos if same_code(code, p)]
    unit = Unit(db)  # reads only: never committed
    user = check_user(_data(unit.get(db.collection("users").document(user_id))))
    # Any id: its home shard is where a check of the limit starts.
    counts = read_redemptions(unit, named, user_id, uuid.uuid4().hex)
    quote_topup(
        named,
        baht=baht,
        exchange_rate=rate,
        now=now,
        code=code,
        customer=customer_facts(user),
        redemptions=counts,
    )


def _credited(db: firestore.Client, slip: SlipData) -> bool:
    ledger = bigeye_ledger(db)
    keys = [posting_key("slip", slip.ref_key), legacy_key(slip)]
    return any(
        ledger.posting_ref(transaction_id_for(key)).get().exists for key in keys if key is not None
    )


def _finish(slip_ref: Any, check: Verification, status: str, reason: str) -> None:
    fields = verification_fields(check)
    fields.update({"status": status, "reject_reason": reason})
    try:
        slip_ref.update(fields)
    except Exception as exc:  # the answer to the client matters more than this record
        log(
            logger,
            logging.ERROR,
            f"could not record slip outcome: {exc!r}",
            slip_id=slip_ref.id,
            status=status,
        )


def _data(snap: Any) -> dict[str, Any] | None:
    """A document's fields as read (None: missing)."""
    return (snap.to_dict() or {}) if snap.exists else None


def read_topup(unit: Unit, r: _Request) -> TopupReads:
    """Everything a top-up's credit decides on, read through ``unit``: the user, the posting
    under both keys of the slip (the ledger's replay check then reads nothing), every
    candidate promotion, the user's counter and the home stats shard of each in ONE batched
    round trip; a second only when a limited promotion's home shard has no room
    (``read_redemptions`` reads all its shards then). The shards a redemption writes back
    were read by then (``redemption_shards`` costs nothing)."""
    ledger = bigeye_ledger(unit.db)
    tx_id = transaction_id_for(posting_key("slip", r.slip.ref_key))
    legacy = legacy_key(r.slip)
    legacy_ref = ledger.posting_ref(transaction_id_for(legacy)) if legacy is not None else None
    user_snap, *_ = unit.get_all(
        [
            ledger.user_ref(r.user_id),
            ledger.posting_ref(tx_id),
            *([legacy_ref] if legacy_ref is not None else []),
            *promotion_refs(unit.db, r.promos, r.user_id, tx_id),
        ]
    )
    legacy_posted = legacy_ref is not None and unit.get(legacy_ref).exists
    promos = current_promotions(unit, r.promos, r.user_id, tx_id)
    counts = read_redemptions(unit, promos, r.user_id, tx_id)
    shards = {
        p.promo_id: redemption_shards(unit, p, counts[p.promo_id], tx_id)
        for p in promos
        if not (p.limited and counts[p.promo_id].slot is None)
    }
    return TopupReads(_data(user_snap), legacy_posted, promos, counts, shards)


def apply_topup(unit: Unit, r: _Request, plan: TopupPlan) -> dict[str, Any]:
    """Post the top-up's credit and write what ``decide_topup`` planned, in ``unit``."""
    db = unit.db
    ledger = bigeye_ledger(db)
    key = posting_key("slip", r.slip.ref_key)
    tx_id = transaction_id_for(key)
    quote = plan.quote
    total = quote.total_credits
    try:
        result = ledger.credit(
            unit,
            user_id=r.user_id,
            kind=Kind.TOPUP,
            amount=total,
            key=key,
            description=f"Top-up {r.baht} THB → {total} credits",
            refs=Refs(
                reference_id=r.slip_id,
                topup=TopupMeta(
                    baht_amount=number(r.baht),
                    slip_ref=r.slip.trans_ref,
                    base_credits=quote.base_credits,
                    bonus_credits=quote.bonus_credits,
                    promo_id=quote.promo_id,
                ),
            ),
        )
    except Conflict:
        raise SlipAlreadyUsed("this slip has already been used") from None
    if result.replayed:
        raise SlipAlreadyUsed("this slip has already been used")
    unit.update(ledger.user_ref(r.user_id), {"total_topup_baht": plan.total_topup_baht})
    unit.update(db.collection(SLIPS_COLLECTION).document(r.slip_id), plan.slip_fields)
    if r.actor is not None:
        unit.create(
            db.collection(ADMIN_ACTIONS_COLLECTION).document(f"slip_approve_{r.slip_id}"),
            {
                "action": "slip_approve",
                "actor": r.actor,
                "reason": r.reason,
                "user_id": r.user_id,
                "slip_id": r.slip_id,
                "bank_ref": r.slip.trans_ref,
                "baht_amount": number(r.baht),
                "amount": total,
                "transaction_id": result.transaction_id,
                "key": key,
                "profile": BIGEYE.name,
                "ip_address": r.ip_address,
                "created_at": r.now,
            },
        )
    if plan.redemption is not None:
        record_redemption(unit, plan.redemption)
    unit.create(
        db.collection(AUDIT_COLLECTION).document(f"topup-{tx_id}"),
        {
            "event_type": "TOPUP_SUCCESS",
            "severity": "INFO",
            "user_id": r.user_id,
            "details": {
                "slip_id": r.slip_id,
                "slip_ref": r.slip.trans_ref,
                "transaction_id": result.transaction_id,
                "baht_amount": number(r.baht),
                "base_credits": quote.base_credits,
                "bonus_credits": quote.bonus_credits,
                "total_credits": total,
                "promo_id": quote.promo_id,
                "balance_after": result.balance_after,
                "verification_method": r.method,
            },
            "created_at": r.now,
        },
    )
    return {
        "credits": result.balance_after,
        "added": total,
        "base_credits": quote.base_credits,
        "bonus_credits": quote.bonus_credits,
        "promo_id": quote.promo_id,
        "promo_name": quote.promotion.name if quote.promotion else None,
        "baht_amount": number(r.baht),
        "slip_id": r.slip_id,
        "transaction_id": result.transaction_id,
    }


def _credit(db: firestore.Client, r: _Request) -> dict[str, Any]:
    ledger = bigeye_ledger(db)
    key = posting_key("slip", r.slip.ref_key)
    tx_id = transaction_id_for(key)

    def work(unit: Unit) -> dict[str, Any]:
        plan = decide_topup(
            read_topup(unit, r),
            user_id=r.user_id,
            slip_id=r.slip_id,
            baht=r.baht,
            code=r.code,
            rate=r.rate,
            slip=r.slip,
            check=r.check,
            method=r.method,
            redemption_id=tx_id,
            home=stats_shard_of(tx_id),
            now=r.now,
        )
        return apply_topup(unit, r, plan)

    body = ledger.run(work, now=r.now)
    log(
        logger,
        logging.INFO,
        "top-up credited",
        user_id=r.user_id,
        slip_id=r.slip_id,
        credits=body["added"],
        promo_id=body["promo_id"],
    )
    return body


# -- operators and the schedule ------------------------------------------------------------
def _setup(db: firestore.Client) -> tuple[Decimal, tuple[Receiver, ...], tuple[Promotion, ...]]:
    rate = exchange_rate(db)
    try:
        receivers = configured_receivers()
    except ValueError as exc:
        raise Unavailable(f"top-ups are not configured (receiver accounts): {exc}") from None
    promos = tuple(p for p in load_active(db) if p.type in _TOPUP_PROMOS)
    return rate, receivers, promos


def _submission(db: firestore.Client, slip_id: str, slip: dict[str, Any]) -> dict[str, Any]:
    snap = db.collection(SUBMISSIONS_COLLECTION).document(slip_id).get()
    if snap.exists:
        return snap.to_dict() or {}
    return {"user_id": slip.get("user_id"), "amount_baht": slip.get("amount_detected")}


def _slip(db: firestore.Client, slip_id: str) -> tuple[Any, dict[str, Any]]:
    if not isinstance(slip_id, str) or not slip_id or "/" in slip_id:
        raise InvalidInput("slip id is required")
    ref = db.collection(SLIPS_COLLECTION).document(slip_id)
    snap = ref.get()
    if not snap.exists:
        raise NotFound(f"no slip {slip_id}")
    return ref, snap.to_dict() or {}


def _operator_text(value: str | None, name: str) -> str:
    if value is None or not value.strip():
        raise InvalidInput(f"{name} is required")
    if len(value) > 500:
        raise InvalidInput(f"{name} is longer than 500 characters")
    return value.strip()


def approve_slip(
    db: firestore.Client,
    *,
    slip_id: str,
    actor: str,
    reason: str,
    now: datetime,
    bank_ref: str | None = None,
    amount: object = None,
    ip_address: str | None = None,
) -> dict[str, Any]:
    """Credit a PENDING or REJECTED slip after an operator checked it (MANUAL).

    The credit is the automatic one's unit under the same key (``slip:`` and the canonical
    reference, ``slip2go.canonical_ref``): a slip
    Slip2Go or another operator already credited is refused (409) and marked DUPLICATE.
    ``bank_ref`` is required when Slip2Go never read the slip's reference; ``amount`` (baht)
    defaults to the amount the user submitted. Promotions apply as for an automatic credit;
    a promo code that is no longer usable is dropped rather than blocking the approval.
    ``ip_address``: the operator's client address when the path knows it (the console).
    """
    now = ensure_utc(now)
    actor, reason = _operator_text(actor, "actor"), _operator_text(reason, "reason")
    slip_ref, slip = _slip(db, slip_id)
    status = slip.get("status")
    if status not in {"PENDING", "REJECTED"}:
        raise Conflict(f"slip {slip_id} is {status}; only PENDING or REJECTED can be approved")
    known_ref = slip.get("bank_ref") if isinstance(slip.get("bank_ref"), str) else None
    given_ref = bank_ref.strip() if isinstance(bank_ref, str) and bank_ref.strip() else None
    if given_ref is not None and ("/" in given_ref or len(given_ref) > 200):
        raise InvalidInput("bank_ref must be a bank transaction reference")
    if known_ref and given_ref and canonical_ref(known_ref) != canonical_ref(given_ref):
        raise InvalidInput(f"the slip's bank reference is {known_ref}, not {given_ref}")
    trans_ref = known_ref or given_ref
    if not trans_ref:
        raise InvalidInput("Slip2Go did not read this slip's reference: give bank_ref")
    submission = _submission(db, slip_id, slip)
    user_id = str(slip.get("user_id") or "")
    baht = parse_amount(submission.get("amount_baht") if amount is None else amount)
    rate, _, promos = _setup(db)
    code = submission.get("promo_code") if isinstance(submission.get("promo_code"), str) else None
    if code is not None:
        try:
            _precheck_code(db, promos, user_id, baht, rate, code, now)
        except (InvalidInput, Conflict):
            code = None
    found = slip.get("metadata")
    metadata: dict[str, Any] = found if isinstance(found, dict) else {}
    data = SlipData(
        trans_ref=trans_ref,
        amount=baht,
        receiver_account=metadata.get("receiver_account"),
        sender_name=metadata.get("sender_name"),
        date_time=None,
    )
    raw = (slip.get("verification_result") or {}).get("raw_response") or {}
    check = Verification("MANUAL", reason, Outcome.VALID, None, raw=raw, slip=data)
    request = _Request(
        user_id,
        slip_id,
        baht,
        code,
        rate,
        promos,
        data,
        check,
        now,
        method="MANUAL",
        actor=actor,
        reason=reason,
        ip_address=ip_address or None,
    )
    try:
        body = _credit(db, request)
    except SlipAlreadyUsed:
        _finish(slip_ref, check, "DUPLICATE", "this slip has already been used")
        raise
    log(logger, logging.INFO, "slip approved", slip_id=slip_id, actor=actor, user_id=user_id)
    return body


def reject_slip(
    db: firestore.Client,
    *,
    slip_id: str,
    actor: str,
    reason: str,
    now: datetime,
    ip_address: str | None = None,
) -> dict[str, Any]:
    """PENDING -> REJECTED with the operator's reason (REJECTED again: nothing changes).

    ``ip_address``: the operator's client address when the path knows it (the console)."""
    now = ensure_utc(now)
    actor, reason = _operator_text(actor, "actor"), _operator_text(reason, "reason")
    if not isinstance(slip_id, str) or not slip_id or "/" in slip_id:
        raise InvalidInput("slip id is required")
    ref = db.collection(SLIPS_COLLECTION).document(slip_id)

    def work(unit: Unit) -> dict[str, Any]:
        snap = unit.get(ref)
        if not snap.exists:
            raise NotFound(f"no slip {slip_id}")
        slip = snap.to_dict() or {}
        status = slip.get("status")
        if status == "REJECTED":
            return slip
        if status != "PENDING":
            raise Conflict(f"slip {slip_id} is {status}; only PENDING can be rejected")
        fields = {"status": "REJECTED", "reject_reason": reason, "verification_method": "MANUAL"}
        unit.update(ref, fields)
        unit.create(
            db.collection(ADMIN_ACTIONS_COLLECTION).document(f"slip_reject_{slip_id}"),
            {
                "action": "slip_reject",
                "actor": actor,
                "reason": reason,
                "user_id": slip.get("user_id"),
                "slip_id": slip_id,
                "ip_address": ip_address or None,
                "created_at": now,
            },
        )
        return {**slip, **fields}

    from shared.atomic import run_atomically

    return run_atomically(db, work)


_REVERIFY_MAX_PAGES = 10


@dataclass
class ReverifyReport:
    """What one ``reverify_pending`` run did."""

    checked: int = 0
    credited: int = 0
    rejected: int = 0
    duplicate: int = 0
    still_pending: int = 0
    failed: int = 0
    manual_review: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def reverify_pending(
    db: firestore.Client, now: datetime, *, limit: int | None = None
) -> ReverifyReport:
    """Send PENDING slips (older than ``slip_reverify_after_s``) to Slip2Go again.

    Oldest first, at most ``slip_reverify_batch`` per run. Each is resolved exactly as the
    original request would have been; an outage that goes on leaves it PENDING for the next
    run, and the ledger key makes a slip credit once however often it is checked.
    """
    from datetime import timedelta

    settings = get_settings()
    now = ensure_utc(now)
    cutoff = now - timedelta(seconds=settings.slip_reverify_after_s)
    base = (
        db.collection(SLIPS_COLLECTION)
        .where(filter=firestore.FieldFilter("status", "==", "PENDING"))
        .where(filter=firestore.FieldFilter("created_at", "<=", cutoff))
        .order_by("created_at")
    )
    want = limit or settings.slip_reverify_batch
    report = ReverifyReport()
    # Oldest first, passing over slips already handed to operators (manual_review), so a
    # slip that can never be re-verified does not hold up the ones behind it.
    candidates: list[tuple[Any, dict[str, Any], bool]] = []
    cursor = None
    for _ in range(_REVERIFY_MAX_PAGES):
        query = base.limit(want * 2)
        if cursor is not None:
            query = query.start_after(cursor)
        page = list(query.stream())
        if not page:
            break
        refs = [db.collection(SUBMISSIONS_COLLECTION).document(snap.id) for snap in page]
        subs = {sub.id: sub.to_dict() or {} for sub in db.get_all(refs) if sub.exists}
        for snap in page:
            submission = subs.get(snap.id)
            if submission is not None and submission.get("manual_review") is True:
                report.manual_review += 1
                continue
            slip = snap.to_dict() or {}
            candidates.append(
                (snap, submission or _submission(db, snap.id, slip), bool(submission))
            )
            if len(candidates) >= want:
                break
        if len(candidates) >= want or len(page) < want * 2:
            break
        cursor = page[-1]
    if not candidates:
        return report
    rate, receivers, promos = _setup(db)
    for snap, submission, recorded in candidates:
        report.checked += 1
        slip = snap.to_dict() or {}
        sub_ref = db.collection(SUBMISSIONS_COLLECTION).document(snap.id)
        try:
            baht = parse_amount(submission.get("amount_baht"))
            image = slipimages.load(str(slip.get("image_url") or ""))
        except (InvalidInput, NotFound) as exc:
            # No submitted amount or no stored image (a slip from before images were kept):
            # only an operator can decide it. It stays PENDING and is listed for review.
            sub_ref.set(
                {
                    "user_id": slip.get("user_id"),
                    "manual_review": True,
                    "manual_review_reason": exc.detail,
                    "last_attempt_at": now,
                },
                merge=True,
            )
            report.manual_review += 1
            log(
                logger,
                logging.WARNING,
                "pending slip needs an operator",
                slip_id=snap.id,
                detail=exc.detail,
            )
            continue
        try:
            check = Slip2GoClient().verify(image.data_url(), amount=baht, receivers=receivers)
            if recorded:
                sub_ref.update(
                    {
                        "attempts": firestore.Increment(1),
                        "last_attempt_at": now,
                        "last_code": check.code,
                    }
                )
            code = submission.get("promo_code")
            _resolve(
                db,
                snap.reference,
                user_id=str(slip.get("user_id") or ""),
                baht=baht,
                code=code if isinstance(code, str) else None,
                rate=rate,
                promos=promos,
                receivers=receivers,
                check=check,
                now=now,
            )
            report.credited += 1
        except SlipAlreadyUsed:
            report.duplicate += 1
        except Unavailable:
            report.still_pending += 1
        except (InvalidInput, Conflict, Forbidden) as exc:
            report.rejected += 1
            log(logger, logging.INFO, "pending slip rejected", slip_id=snap.id, detail=exc.detail)
        except NotFound as exc:
            report.failed += 1
            log(
                logger,
                logging.ERROR,
                "pending slip cannot be re-verified",
                slip_id=snap.id,
                detail=exc.detail,
            )
    return report
