"""Slip images in the storage emulator, re-verification of PENDING slips, operator review."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from devstack.admin import cli
from shared.bigeye import slipimages
from shared.bigeye.topup import (
    SlipAlreadyUsed,
    approve_slip,
    automatic_method,
    reject_slip,
    reverify_pending,
    topup,
)
from shared.clients import storage_client
from shared.errors import Conflict, InvalidInput, Unavailable
from shared.settings import get_settings, override_settings
from tests.bigeye_money.conftest import make_slip, make_user
from tests.helpers import all_documents, wait_for


def _docs(db: Any, collection: str) -> dict[str, dict[str, Any]]:
    return {s.id: s.to_dict() or {} for s in db.collection(collection).stream()}


def _credits(db: Any, user_id: str) -> int:
    return int(db.collection("users").document(user_id).get().get("credits"))


def _earlier(minutes: int = 10) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


def _pending(db: Any, standin: Any, user_id: str, ref: str, baht: int = 100) -> str:
    """A slip left PENDING by a Slip2Go outage ten minutes ago; returns its id."""
    standin.fail_next("500500", 500)
    with pytest.raises(Unavailable):
        topup(
            db,
            user_id=user_id,
            slip=make_slip(ref, baht),
            amount=baht,
            promo_code=None,
            now=_earlier(),
        )
    (slip_id,) = [i for i, s in _docs(db, "slips").items() if s["status"] == "PENDING"]
    return slip_id


def test_the_slip_image_is_stored_and_image_url_names_the_object(money) -> None:
    db = money
    make_user(db, "u1")
    slip = make_slip("TR-IMG", 100)
    body = topup(db, user_id="u1", slip=slip, amount=100, promo_code=None, now=_earlier(0))
    url = db.collection("slips").document(body["slip_id"]).get().get("image_url")
    bucket = get_settings().slip_bucket_name()
    assert f"/{bucket}/slips/" in url and url.endswith(".jpg")
    stored = storage_client().bucket(bucket).blob(slipimages.object_of(url))
    assert stored.download_as_bytes() == slipimages.decode(slip).content
    assert slipimages.load(url).data_url() == slip


def test_slips_checked_by_the_local_standin_are_auto_dev(money) -> None:
    db = money
    make_user(db, "u1")
    body = topup(
        db, user_id="u1", slip=make_slip("TR-DEV", 100), amount=100, promo_code=None,
        now=_earlier(0),
    )  # fmt: skip
    assert _docs(db, "slips")[body["slip_id"]]["verification_method"] == "AUTO_DEV"
    (audit,) = _docs(db, "audit_logs").values()
    assert audit["event_type"] == "TOPUP_SUCCESS"
    assert audit["details"]["verification_method"] == "AUTO_DEV"


def test_auto_dev_is_never_written_outside_development(monkeypatch) -> None:
    standin = "http://127.0.0.1:9/api"
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080")
    monkeypatch.delenv("K_SERVICE", raising=False)
    with override_settings(slip2go_base_url=standin):
        assert automatic_method() == "AUTO_DEV"
        monkeypatch.setenv("K_SERVICE", "credit-api")  # a deployed function
        assert automatic_method() == "AUTO_API"
        monkeypatch.delenv("K_SERVICE")
        monkeypatch.delenv("FIRESTORE_EMULATOR_HOST")  # production Firestore
        assert automatic_method() == "AUTO_API"
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080")
    # The local stack pointed at the real Slip2Go: real verifications.
    with override_settings(slip2go_base_url="https://connect.slip2go.com/api/"):
        assert automatic_method() == "AUTO_API"


def test_storage_outage_is_503_and_writes_nothing(money) -> None:
    db = money
    make_user(db, "u1")
    before = all_documents(db)
    with (
        override_settings(slip_bucket="no-such-bucket-anywhere"),
        pytest.raises(Unavailable, match="storage"),
    ):
        topup(
            db,
            user_id="u1",
            slip=make_slip("TR-NOSTORE", 100),
            amount=100,
            promo_code=None,
            now=_earlier(0),
        )
    assert all_documents(db) == before


def test_a_pending_slip_is_credited_once_after_the_outage(money, standin) -> None:
    db = money
    make_user(db, "u1")
    slip_id = _pending(db, standin, "u1", "TR-LATER")
    assert _docs(db, "slip_submissions")[slip_id]["amount_baht"] == 100
    report = reverify_pending(db, datetime.now(UTC))
    assert (report.checked, report.credited) == (1, 1)
    slip = _docs(db, "slips")[slip_id]
    assert slip["status"] == "VERIFIED" and slip["verification_method"] == "AUTO_DEV"
    assert slip["bank_ref"] == "TR-LATER" and slip["amount_credited"] == 400
    assert _credits(db, "u1") == 400
    assert _docs(db, "slip_submissions")[slip_id]["attempts"] == 2
    # A second run finds nothing to do.
    assert reverify_pending(db, datetime.now(UTC)).checked == 0
    assert _credits(db, "u1") == 400


def test_reverify_now_from_the_cli(money, standin) -> None:
    db = money
    make_user(db, "u1")
    slip_id = _pending(db, standin, "u1", "TR-CLI")
    listed = json.loads(_cli("slips", "list", "--json").output)
    assert [r["slip_id"] for r in listed] == [slip_id]
    result = _cli("slips", "reverify", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["credited"] == 1
    assert _docs(db, "slips")[slip_id]["status"] == "VERIFIED" and _credits(db, "u1") == 400
    assert "no PENDING slips" in _cli("slips", "list").output


def test_an_ongoing_outage_leaves_the_slip_pending_and_young_slips_alone(money, standin) -> None:
    db = money
    make_user(db, "u1")
    slip_id = _pending(db, standin, "u1", "TR-STILL")
    standin.fail_next("500500", 500)
    report = reverify_pending(db, datetime.now(UTC))
    assert (report.checked, report.still_pending) == (1, 1)
    assert _docs(db, "slips")[slip_id]["status"] == "PENDING"
    # Within the grace period the request that wrote it may still be verifying it.
    assert reverify_pending(db, _earlier(9)).checked == 0
    assert _credits(db, "u1") == 0


def test_a_pending_slip_the_user_resubmitted_becomes_duplicate(money, standin) -> None:
    db = money
    make_user(db, "u1")
    slip_id = _pending(db, standin, "u1", "TR-AGAIN")
    topup(
        db,
        user_id="u1",
        slip=make_slip("TR-AGAIN", 100),
        amount=100,
        promo_code=None,
        now=datetime.now(UTC),
    )
    report = reverify_pending(db, datetime.now(UTC))
    assert (report.checked, report.duplicate) == (1, 1)
    assert _docs(db, "slips")[slip_id]["status"] == "DUPLICATE"
    assert _credits(db, "u1") == 400


def test_racing_reverify_runs_credit_once(money, standin) -> None:
    db = money
    make_user(db, "u1")
    _pending(db, standin, "u1", "TR-RACE")
    barrier = threading.Barrier(3)
    reports: list[Any] = []

    def run() -> None:
        barrier.wait()
        reports.append(reverify_pending(db, datetime.now(UTC)))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.credited for r in reports) == 1
    assert _credits(db, "u1") == 400
    txs = [t for t in _docs(db, "transactions").values() if t["type"] == "TOPUP"]
    assert len(txs) == 1


def test_the_schedule_resolves_pending_slips_over_pubsub(money, standin, stack) -> None:
    db = money
    make_user(db, "u1")
    slip_id = _pending(db, standin, "u1", "TR-CRON")
    stack.publish("cron-reverify-slips", b"{}")
    assert wait_for(lambda: _docs(db, "slips")[slip_id]["status"] == "VERIFIED", timeout_s=20)
    assert _credits(db, "u1") == 400


def _cli(*args: str) -> Any:
    return CliRunner().invoke(cli, ["--profile", "bigeye", *args], catch_exceptions=False)


def test_operator_approves_a_rejected_slip_once_through_the_slip_key(money, standin) -> None:
    db = money
    make_user(db, "u1")
    # The user typed 500 for a 100-baht slip: rejected on the amount.
    with pytest.raises(InvalidInput, match="amount"):
        topup(
            db,
            user_id="u1",
            slip=make_slip("TR-TYPO", 100),
            amount=500,
            promo_code=None,
            now=_earlier(0),
        )
    (slip_id,) = _docs(db, "slips")
    listed = _cli("slips", "list", "--status", "REJECTED", "--json")
    assert [r["slip_id"] for r in json.loads(listed.output)] == [slip_id]

    result = _cli(
        "slips",
        "approve",
        slip_id,
        "--actor",
        "ops@example.com",
        "--reason",
        "paid 100, typo",
        "--amount",
        "100",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["added"] == 400
    slip = _docs(db, "slips")[slip_id]
    assert slip["status"] == "VERIFIED" and slip["verification_method"] == "MANUAL"
    assert slip["amount_credited"] == 400 and slip["reject_reason"] is None
    (action,) = _docs(db, "admin_actions").values()
    assert action["action"] == "slip_approve" and action["actor"] == "ops@example.com"
    assert action["reason"] == "paid 100, typo" and action["key"] == "slip:tr-typo"
    (tx,) = _docs(db, "transactions").values()
    assert tx["metadata"]["slip_ref"] == "TR-TYPO" and tx["reference_id"] == slip_id

    again = _cli("slips", "approve", slip_id, "--actor", "ops", "--reason", "again")
    assert again.exit_code == 2 and "VERIFIED" in again.output
    assert _credits(db, "u1") == 400

    # The same slip submitted again, rejected for another reason, cannot credit twice either.
    with pytest.raises(InvalidInput):
        topup(
            db,
            user_id="u1",
            slip=make_slip("TR-TYPO", 100),
            amount=300,
            promo_code=None,
            now=_earlier(0),
        )
    (other,) = [i for i, s in _docs(db, "slips").items() if s["status"] == "REJECTED"]
    with pytest.raises(SlipAlreadyUsed):
        approve_slip(db, slip_id=other, actor="ops", reason="r", amount=100, now=_earlier(0))
    assert _docs(db, "slips")[other]["status"] == "DUPLICATE"
    assert _credits(db, "u1") == 400


def test_an_unread_slip_needs_the_bank_reference_to_be_approved(money, standin) -> None:
    db = money
    make_user(db, "u1")
    slip_id = _pending(db, standin, "u1", "TR-UNREAD")
    with pytest.raises(InvalidInput, match="bank_ref"):
        approve_slip(db, slip_id=slip_id, actor="ops", reason="checked", now=_earlier(0))
    with pytest.raises(InvalidInput, match="actor"):
        approve_slip(db, slip_id=slip_id, actor=" ", reason="x", bank_ref="B", now=_earlier(0))
    body = approve_slip(
        db,
        slip_id=slip_id,
        actor="ops",
        reason="checked with the bank",
        bank_ref="TR-UNREAD",
        now=_earlier(0),
        ip_address="203.0.113.9",  # the console's client address
    )
    assert body["added"] == 400 and _credits(db, "u1") == 400
    assert _docs(db, "admin_actions")[f"slip_approve_{slip_id}"]["ip_address"] == "203.0.113.9"
    # Slip2Go coming back later finds nothing pending.
    assert reverify_pending(db, datetime.now(UTC)).checked == 0


def test_operator_rejects_a_pending_slip(money, standin) -> None:
    db = money
    make_user(db, "u1")
    slip_id = _pending(db, standin, "u1", "TR-FAKE")
    result = _cli("slips", "reject", slip_id, "--actor", "ops", "--reason", "edited image")
    assert result.exit_code == 0, result.output
    slip = _docs(db, "slips")[slip_id]
    assert slip["status"] == "REJECTED" and slip["reject_reason"] == "edited image"
    assert slip["verification_method"] == "MANUAL"
    (action,) = _docs(db, "admin_actions").values()
    assert action["action"] == "slip_reject" and action["actor"] == "ops"
    assert action["ip_address"] is None  # the CLI knows no client address
    # Rejecting again changes nothing; a rejected slip is not re-verified.
    reject_slip(db, slip_id=slip_id, actor="ops", reason="again", now=_earlier(0))
    assert len(_docs(db, "admin_actions")) == 1
    assert reverify_pending(db, datetime.now(UTC)).checked == 0
    assert _credits(db, "u1") == 0


def test_a_verified_slip_cannot_be_rejected(money) -> None:
    db = money
    make_user(db, "u1")
    body = topup(
        db,
        user_id="u1",
        slip=make_slip("TR-OK", 100),
        amount=100,
        promo_code=None,
        now=_earlier(0),
    )
    with pytest.raises(Conflict):
        reject_slip(db, slip_id=body["slip_id"], actor="ops", reason="r", now=_earlier(0))
    assert _docs(db, "slips")[body["slip_id"]]["status"] == "VERIFIED"


def test_a_slip_that_cannot_be_reverified_goes_to_operators_without_blocking(
    money, standin
) -> None:
    db = money
    make_user(db, "u1")
    slip_id = _pending(db, standin, "u1", "TR-BEHIND")
    # An older PENDING slip from before images were kept: no image, no submission record.
    legacy = db.collection("slips").document("legacy")
    legacy.set(
        {
            "user_id": "u1",
            "status": "PENDING",
            "image_url": "sha256:" + "0" * 64,
            "amount_detected": None,
            "created_at": _earlier(60),
        }
    )
    first = reverify_pending(db, datetime.now(UTC), limit=1)
    assert (first.checked, first.manual_review, first.credited) == (1, 1, 0)
    review = _docs(db, "slip_submissions")["legacy"]
    assert review["manual_review"] is True and review["manual_review_reason"]
    assert _docs(db, "slips")["legacy"]["status"] == "PENDING"
    # The next run passes over it and resolves the slip behind it.
    second = reverify_pending(db, datetime.now(UTC), limit=1)
    assert (second.checked, second.credited, second.manual_review) == (1, 1, 1)
    assert _docs(db, "slips")[slip_id]["status"] == "VERIFIED"
    assert _credits(db, "u1") == 400
    listed = _cli("slips", "list", "--json")
    assert [r["slip_id"] for r in json.loads(listed.output)] == ["legacy"]


def test_slip_images_are_private_in_the_deploy_and_have_no_client_path(tmp_path) -> None:
    """The storage emulator cannot prove privacy: it serves every object to any caller and
    ignores ACLs, uniform bucket-level access and public access prevention (docs/
    bigeye-topups.md). So this checks what production relies on: the deploy makes the bucket
    private (new or existing) and grants no one on it, nothing gives clients a Storage path
    (no Firebase Storage rules), and the client API has no route that serves an image."""
    from devstack.deploy import PUBLIC_FUNCTIONS, ROOT, Target, _already_exists, plan
    from functions.credit_api import ROUTES

    target = Target(project="acme-prod", region="europe-west1", profile="bigeye")
    commands = plan(target, build_dir=tmp_path)
    bucket = "gs://acme-prod-bigeye-slips"
    (create,) = [c for c in commands if c.argv[:4] == ("gcloud", "storage", "buckets", "create")]
    assert create.argv[4] == bucket
    assert {"--uniform-bucket-level-access", "--public-access-prevention"} <= set(create.argv)
    assert create.on_exists is not None and create.on_exists[:5] == (
        "gcloud", "storage", "buckets", "update", bucket,
    )  # fmt: skip
    assert {"--uniform-bucket-level-access", "--public-access-prevention"} <= set(create.on_exists)
    assert _already_exists("HTTPError 409: ... succeeded and you already own it.")
    about_bucket = [c for c in commands if any("bigeye-slips" in a for a in c.argv)]
    assert about_bucket == [create]  # no IAM binding, no ACL, no public reader
    others = plan(Target("acme-prod", "europe-west1", profile="kitesforu"), build_dir=tmp_path)
    assert not [c for c in others if "storage" in c.argv[:2]]

    firebase = json.loads((ROOT / "firebase.json").read_text())
    assert "storage" not in firebase and not (ROOT / "storage.rules").exists()
    assert "admin-console" not in PUBLIC_FUNCTIONS  # the console's image proxy is behind IAM
    assert [(m, p) for m, p in ROUTES if m == "GET"] == [
        ("GET", "/api/v1/credit/balance"),
        ("GET", "/api/v1/credit/history"),
    ]
