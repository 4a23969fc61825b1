"""Slip top-ups against the Firestore emulator and the Slip2Go stand-in over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from google.cloud import firestore

from devstack.demo.bigeye import DEMO_PROMOTION_ID, tiered_promotion
from shared import atomic
from shared.admin.operations import pause_promotion
from shared.bigeye.redemptions import fold_stats
from shared.bigeye.slip2go import Slip2GoClient, configured_receivers
from shared.bigeye.topup import topup
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from shared.settings import override_settings
from tests.bigeye_money.conftest import make_slip, make_user
from tests.helpers import all_documents


def _now() -> datetime:
    return datetime.now(UTC)


def _docs(db: Any, collection: str) -> list[dict[str, Any]]:
    return [s.to_dict() or {} for s in db.collection(collection).stream()]


def _user(db: Any, user_id: str) -> dict[str, Any]:
    return db.collection("users").document(user_id).get().to_dict() or {}


def _assert_ledger_consistent(db: Any, user_id: str) -> None:
    txs = [t for t in _docs(db, "transactions") if t["user_id"] == user_id]
    assert _user(db, user_id)["credits"] == sum(t["amount"] for t in txs)


SLIP_FIELDS = {
    "user_id",
    "status",
    "image_url",
    "amount_detected",
    "amount_credited",
    "bank_ref",
    "verification_method",
    "verification_result",
    "reject_reason",
    "created_at",
    "verified_at",
    "metadata",
}


def test_tiered_topup_credits_base_plus_tier_bonus_with_every_record(money) -> None:
    db = money
    make_user(db, "u1")
    body = topup(
        db, user_id="u1", slip=make_slip("TR-500"), amount=500, promo_code=None, now=_now()
    )
    assert body["credits"] == 2200
    assert body["added"] == 2200
    assert (body["base_credits"], body["bonus_credits"]) == (2000, 200)
    assert body["promo_id"] == DEMO_PROMOTION_ID

    (tx,) = _docs(db, "transactions")
    assert tx["type"] == "TOPUP"
    assert tx["amount"] == 2200 and tx["balance_after"] == 2200
    assert tx["reference_id"] == body["slip_id"]
    assert tx["description"] == "Top-up 500 THB → 2200 credits"
    assert tx["metadata"] == {
        "baht_amount": 500,
        "slip_ref": "TR-500",
        "base_credits": 2000,
        "bonus_credits": 200,
        "promo_id": DEMO_PROMOTION_ID,
    }
    user = _user(db, "u1")
    assert user["credits"] == 2200 and user["total_topup_baht"] == 500

    slip = db.collection("slips").document(body["slip_id"]).get().to_dict()
    assert set(slip) == SLIP_FIELDS
    assert slip["status"] == "VERIFIED"
    assert slip["amount_detected"] == 500 and slip["amount_credited"] == 2200
    assert slip["bank_ref"] == "TR-500"
    assert slip["verification_method"] == "AUTO_DEV"  # checked by the local stand-in
    assert slip["verification_result"]["provider"] == "Slip2Go"
    assert slip["verification_result"]["confidence"] == 1.0
    assert slip["verification_result"]["raw_response"]["code"] == "200200"
    assert slip["metadata"] == {
        "sender_name": "Somchai Jaidee",
        "receiver_account": "xxx-x-x6789-x",
    }
    assert slip["image_url"].endswith(".jpg") and "/slips/" in slip["image_url"]
    assert slip["verified_at"] is not None

    (redemption,) = _docs(db, "promo_redemptions")
    assert redemption | {"created_at": None} == {
        "promo_id": DEMO_PROMOTION_ID,
        "user_id": "u1",
        "topup_baht": 500,
        "base_credits": 2000,
        "bonus_credits": 200,
        "total_credits": 2200,
        "promo_name": "โปรปีใหม่",
        "slip_id": body["slip_id"],
        "created_at": None,
    }
    fold_stats(db, datetime.now(UTC))
    stats = db.collection("promotions").document(DEMO_PROMOTION_ID).get().get("stats")
    assert stats == {
        "total_redemptions": 1,
        "total_bonus_credits": 200,
        "total_baht_collected": 500,
        "unique_users": 1,
    }
    (audit,) = _docs(db, "audit_logs")
    assert audit["event_type"] == "TOPUP_SUCCESS" and audit["severity"] == "INFO"
    assert audit["user_id"] == "u1"
    assert audit["details"]["total_credits"] == 2200
    assert audit["details"]["slip_ref"] == "TR-500"


@pytest.mark.parametrize(
    ("baht", "expected"),
    [(50, (200, 0)), (100, (400, 0)), (300, (1200, 100)), (299.5, (1198, 0)), (700, (2800, 200))],
)
def test_tier_reading_of_the_seed_example(money, baht, expected) -> None:
    db = money
    make_user(db, "u1")
    body = topup(
        db,
        user_id="u1",
        slip=make_slip(f"TR-{baht}", baht),
        amount=baht,
        promo_code=None,
        now=_now(),
    )
    assert (body["base_credits"], body["bonus_credits"]) == expected
    assert body["credits"] == sum(expected)
    assert (body["promo_id"] is not None) == (expected[1] > 0)
    _assert_ledger_consistent(db, "u1")
    assert _user(db, "u1")["total_topup_baht"] == baht


def test_stats_accumulate_and_unique_users_count_people(money) -> None:
    db = money
    make_user(db, "u1")
    make_user(db, "u2")
    for i, user in enumerate(["u1", "u1", "u2"]):
        topup(
            db,
            user_id=user,
            slip=make_slip(f"TR-S{i}", 300),
            amount=300,
            promo_code=None,
            now=_now(),
        )
    fold_stats(db, datetime.now(UTC))
    stats = db.collection("promotions").document(DEMO_PROMOTION_ID).get().get("stats")
    assert stats == {
        "total_redemptions": 3,
        "total_bonus_credits": 300,
        "total_baht_collected": 900,
        "unique_users": 2,
    }
    assert _user(db, "u1")["total_topup_baht"] == 600


@pytest.mark.parametrize(
    ("slip_kwargs", "amount", "reason"),
    [
        ({"amount": 300}, 500, "amount"),
        ({"account": "xxx-x-x1111-x"}, 500, "account"),
    ],
)
def test_rejected_slip_is_recorded_and_credits_nothing(money, slip_kwargs, amount, reason) -> None:
    db = money
    make_user(db, "u1")
    with pytest.raises(InvalidInput, match=reason):
        topup(
            db,
            user_id="u1",
            slip=make_slip("TR-X", **slip_kwargs),
            amount=amount,
            promo_code=None,
            now=_now(),
        )
    (slip,) = _docs(db, "slips")
    assert slip["status"] == "REJECTED" and reason in slip["reject_reason"]
    assert slip["bank_ref"] == "TR-X"
    assert _docs(db, "transactions") == []
    assert _user(db, "u1")["credits"] == 0


def test_unreadable_slip_is_rejected(money) -> None:
    db = money
    make_user(db, "u1")
    with pytest.raises(InvalidInput, match="QR"):
        topup(
            db,
            user_id="u1",
            slip="data:image/jpeg;base64,/9j/4AAQSkZJRg==",
            amount=100,
            promo_code=None,
            now=_now(),
        )
    (slip,) = _docs(db, "slips")
    assert slip["status"] == "REJECTED"
    assert slip["verification_result"]["raw_response"]["code"] == "200404"
    assert _docs(db, "transactions") == []


def test_we_recheck_what_slip2go_calls_valid(money, standin) -> None:
    db = money
    make_user(db, "u1")
    standin.fail_next("200200", 200)  # Slip2Go says valid for a 300-baht slip
    with pytest.raises(InvalidInput, match="amount"):
        topup(
            db, user_id="u1", slip=make_slip("TR-LIE", 300), amount=500, promo_code=None, now=_now()
        )
    standin.fail_next("200200", 200)  # ... and for a slip paid to someone else
    with pytest.raises(InvalidInput, match="account"):
        topup(
            db,
            user_id="u1",
            slip=make_slip("TR-LIE2", 500, account="999-9-99999-9"),
            amount=500,
            promo_code=None,
            now=_now(),
        )
    assert _docs(db, "transactions") == []


def test_the_same_slip_never_credits_twice(money) -> None:
    db = money
    make_user(db, "u1")
    make_user(db, "u2")
    slip = make_slip("TR-DUP", 100)
    topup(db, user_id="u1", slip=slip, amount=100, promo_code=None, now=_now())
    for user in ("u1", "u2"):
        with pytest.raises(Conflict, match="already been used"):
            topup(db, user_id=user, slip=slip, amount=100, promo_code=None, now=_now())
    statuses = sorted(s["status"] for s in _docs(db, "slips"))
    assert statuses == ["DUPLICATE", "DUPLICATE", "VERIFIED"]
    assert len(_docs(db, "transactions")) == 1
    assert _user(db, "u2")["credits"] == 0


@pytest.mark.parametrize(
    ("code", "status"),
    [("500500", 500), ("401005", 401), ("401006", 401), ("401004", 401), ("401001", 401)],
)
def test_slip2go_outage_is_503_and_the_slip_stays_retryable(money, standin, code, status) -> None:
    db = money
    make_user(db, "u1")
    standin.fail_next(code, status)
    slip = make_slip("TR-OUT", 100)
    with pytest.raises(Unavailable):
        topup(db, user_id="u1", slip=slip, amount=100, promo_code=None, now=_now())
    (pending,) = _docs(db, "slips")
    assert pending["status"] == "PENDING"
    assert _docs(db, "transactions") == [] and _user(db, "u1")["credits"] == 0
    body = topup(db, user_id="u1", slip=slip, amount=100, promo_code=None, now=_now())
    assert body["credits"] == 400


def test_out_of_quota_and_unreachable_slip2go_are_503(money, standin) -> None:
    db = money
    make_user(db, "u1")
    standin.quota_remaining = 0
    with pytest.raises(Unavailable):
        topup(
            db, user_id="u1", slip=make_slip("TR-Q", 100), amount=100, promo_code=None, now=_now()
        )
    standin.quota_remaining = None
    with (
        override_settings(slip2go_base_url="http://127.0.0.1:9/api", slip2go_timeout_s=2.0),
        pytest.raises(Unavailable),
    ):
        topup(
            db, user_id="u1", slip=make_slip("TR-Q", 100), amount=100, promo_code=None, now=_now()
        )
    assert _docs(db, "transactions") == []
    assert (
        topup(
            db, user_id="u1", slip=make_slip("TR-Q", 100), amount=100, promo_code=None, now=_now()
        )["credits"]
        == 400
    )


def test_slip_verified_earlier_but_never_credited_can_be_submitted_again(money, standin) -> None:
    """Slip2Go remembers a slip it passed (200501); our ledger decides if it was used."""
    db = money
    make_user(db, "u1")
    slip = make_slip("TR-AGAIN", 100)
    first = Slip2GoClient().verify(slip, amount=Decimal(100), receivers=configured_receivers())
    assert first.code == "200200"
    body = topup(db, user_id="u1", slip=slip, amount=100, promo_code=None, now=_now())
    assert body["credits"] == 400
    (record,) = _docs(db, "slips")
    assert record["verification_result"]["raw_response"]["code"] == "200501"
    assert record["status"] == "VERIFIED"


BAD_REQUESTS = [
    {"slip": "not a data url", "amount": 100},
    {"slip": "data:image/jpeg;base64,***", "amount": 100},
    {"slip": "data:image/jpeg;base64,", "amount": 100},
    {"slip": None, "amount": 100},
    {"slip": 12, "amount": 100},
    {"amount": 0},
    {"amount": -5},
    {"amount": "500"},
    {"amount": True},
    {"amount": None},
    {"amount": 1.234},
    {"amount": float("nan")},
    {"amount": float("inf")},
    {"amount": 10**9},
    {"amount": 100, "promo_code": 7},
    {"amount": 100, "promo_code": "X" * 65},
    {"amount": 100, "promo_code": "NO-SUCH-CODE"},
]


@pytest.mark.parametrize("request_body", BAD_REQUESTS)
def test_bad_requests_are_400_and_write_nothing(money, request_body) -> None:
    db = money
    make_user(db, "u1")
    before = all_documents(db)
    args = {"slip": make_slip("TR-BAD", 100), "promo_code": None} | request_body
    with pytest.raises(InvalidInput):
        topup(db, user_id="u1", now=_now(), **args)
    assert all_documents(db) == before


def test_unknown_suspended_and_banned_users_write_nothing(money) -> None:
    db = money
    make_user(db, "s1", status="suspended")
    make_user(db, "b1", status="banned")
    before = all_documents(db)
    with pytest.raises(NotFound):
        topup(db, user_id="ghost", slip=make_slip("TR-G"), amount=500, promo_code=None, now=_now())
    for user in ("s1", "b1"):
        with pytest.raises(Forbidden):
            topup(db, user_id=user, slip=make_slip("TR-G"), amount=500, promo_code=None, now=_now())
    assert all_documents(db) == before


def test_missing_exchange_rate_is_503_with_nothing_written(bare) -> None:
    db = bare
    make_user(db, "u1")
    before = all_documents(db)
    with pytest.raises(Unavailable):
        topup(
            db, user_id="u1", slip=make_slip("TR-NOCONF"), amount=500, promo_code=None, now=_now()
        )
    assert all_documents(db) == before


def _promotion(db: Any, promo_id: str, **changes: Any) -> None:
    """An ACTIVE FLAT_BONUS of 50 credits for one day around now, priority 50, with
    ``changes`` (a map's field as ``"conditions.max_redemptions"``)."""
    now = _now()
    base: dict[str, Any] = {
        "name": promo_id,
        "type": "FLAT_BONUS",
        "priority": 50,
        "conditions__start_date": now - timedelta(days=1),
        "conditions__end_date": now + timedelta(days=1),
        "conditions__min_topup_baht": None,
        "reward": {
            "type": "BONUS_CREDITS",
            "bonus_credits": 50,
            "override_rate": None,
            "bonus_percentage": None,
            "tiers": None,
        },
        "display__banner_text": promo_id,
        "display__banner_color": "#000000",
        "created_by": "test",
    }
    changed = {key.replace(".", "__"): value for key, value in changes.items()}
    doc = tiered_promotion(now, **{**base, **changed})
    db.collection("promotions").document(promo_id).set(doc)


def test_code_promotion_applies_only_with_its_code(money) -> None:
    db = money
    make_user(db, "u1")
    _promotion(
        db,
        "code500",
        code="NEWYEAR2027",
        **{"conditions.require_code": True, "reward.bonus_credits": 500},
    )
    body = topup(db, user_id="u1", slip=make_slip("TR-C1"), amount=500, promo_code=None, now=_now())
    assert body["promo_id"] == DEMO_PROMOTION_ID  # the code-only promotion is not applied
    body = topup(
        db,
        user_id="u1",
        slip=make_slip("TR-C2"),
        amount=500,
        promo_code=" newyear2027 ",
        now=_now(),
    )
    assert body["promo_id"] == "code500" and body["bonus_credits"] == 500
    assert body["added"] == 2500


def test_a_code_that_does_not_apply_is_refused_before_slip2go(money, standin) -> None:
    db = money
    make_user(db, "u1")
    _promotion(db, "big-only", code="BIG", **{"conditions.min_topup_baht": 1000})
    _promotion(db, "used-up", code="GONE", **{"conditions.max_redemptions": 0})
    before = all_documents(db)
    with pytest.raises(InvalidInput, match="minimum"):
        topup(db, user_id="u1", slip=make_slip("TR-B"), amount=500, promo_code="BIG", now=_now())
    with pytest.raises(Conflict, match="no redemptions left"):
        topup(db, user_id="u1", slip=make_slip("TR-B"), amount=500, promo_code="gone", now=_now())
    assert all_documents(db) == before
    assert standin.requests == 0


def test_priority_per_user_limit_and_first_topup(money) -> None:
    db = money
    make_user(db, "u1")
    _promotion(db, "first", type="FIRST_TOPUP", priority=100, **{"reward.bonus_credits": 1000})
    _promotion(db, "once", priority=60, **{"conditions.max_per_user": 1})
    results = [
        topup(
            db,
            user_id="u1",
            slip=make_slip(f"TR-P{i}", 100),
            amount=100,
            promo_code=None,
            now=_now(),
        )["promo_id"]
        for i in range(3)
    ]
    # FIRST_TOPUP wins the first top-up, "once" the second, nothing (tier 100 gives 0) after.
    assert results == ["first", "once", None]
    _assert_ledger_consistent(db, "u1")
    counter = db.document("promo_counters/once/users/u1").get().to_dict()
    assert counter["redemptions"] == 1


def test_new_users_only_means_signed_up_during_the_promotion(money) -> None:
    db = money
    make_user(db, "old", created_at=_now() - timedelta(days=30))
    make_user(db, "new")
    _promotion(db, "newbies", **{"conditions.new_users_only": True})
    assert (
        topup(
            db, user_id="old", slip=make_slip("TR-N1", 50), amount=50, promo_code=None, now=_now()
        )["promo_id"]
        is None
    )
    assert (
        topup(
            db, user_id="new", slip=make_slip("TR-N2", 50), amount=50, promo_code=None, now=_now()
        )["promo_id"]
        == "newbies"
    )


def test_paused_or_out_of_window_promotions_do_not_apply(money) -> None:
    db = money
    make_user(db, "u1")
    db.collection("promotions").document(DEMO_PROMOTION_ID).update({"status": "PAUSED"})
    _promotion(
        db,
        "later",
        **{
            "conditions.start_date": _now() + timedelta(days=1),
            "conditions.end_date": _now() + timedelta(days=2),
        },
    )
    body = topup(db, user_id="u1", slip=make_slip("TR-W"), amount=500, promo_code=None, now=_now())
    assert body["promo_id"] is None and body["added"] == 2000
    assert _docs(db, "promo_redemptions") == []


def test_a_pause_committed_before_the_topup_commits_is_honoured(money) -> None:
    # The operator's pause lands after the top-up has chosen the promotion and just before
    # its commit (the unit's "before_commit" point): the top-up must not apply it.
    db = money
    make_user(db, "u1")
    paused: list[str] = []

    def operator_pauses(stage: str) -> None:
        if stage == "before_commit" and not paused:
            paused.append(stage)  # first, so the pause's own commit passes through
            pause_promotion(db, promo_id=DEMO_PROMOTION_ID, actor="ops", reason="x", now=_now())

    atomic.fault_hook = operator_pauses
    try:
        body = topup(
            db, user_id="u1", slip=make_slip("TR-P"), amount=500, promo_code=None, now=_now()
        )
    finally:
        atomic.fault_hook = None
    assert paused
    assert db.collection("promotions").document(DEMO_PROMOTION_ID).get().get("status") == "PAUSED"
    assert body["promo_id"] is None and body["added"] == 2000
    assert _docs(db, "promo_redemptions") == []
    assert _user(db, "u1")["credits"] == 2000
    _assert_ledger_consistent(db, "u1")


def test_decimal_baht_amounts_are_exact(money) -> None:
    db = money
    make_user(db, "u1", total_topup_baht=0.1)
    body = topup(
        db,
        user_id="u1",
        slip=make_slip("TR-D", "150.25"),
        amount=150.25,
        promo_code=None,
        now=_now(),
    )
    assert body["base_credits"] == 601  # floor(150.25 × 4)
    assert _user(db, "u1")["total_topup_baht"] == 150.35
    tx = _docs(db, "transactions")[0]
    assert tx["metadata"]["baht_amount"] == 150.25


def test_query_by_slip_ref_finds_the_topup(money) -> None:
    db = money
    make_user(db, "u1")
    topup(db, user_id="u1", slip=make_slip("TR-Q1", 100), amount=100, promo_code=None, now=_now())
    found = list(
        db.collection("slips")
        .where(filter=firestore.FieldFilter("bank_ref", "==", "TR-Q1"))
        .stream()
    )
    assert len(found) == 1
