"""Job reserve, finalize and expiry over real HTTP, with the seed's examples and races."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from google.cloud import firestore

from devstack.bigeye_client import reserve_body
from devstack.demo.bigeye import tiered_promotion
from shared.bigeye.configcrypt import decrypt_config
from shared.bigeye.jobs import expire_due_jobs
from shared.clock import FixedClock, SystemClock, ensure_utc, set_clock
from shared.settings import get_settings
from tests.bigeye_api.client import give_credits, register_and_login, write_app_settings
from tests.helpers import all_documents, wait_for

SEED_RESERVE = reserve_body()
SEED_FINALIZE = {"success": 5, "failed": 2, "photos": 4, "videos": 3}
SEED_JOB_FIELDS = {
    "job_token",
    "user_id",
    "status",
    "mode",
    "keyword_style",
    "file_count",
    "photo_count",
    "video_count",
    "photo_rate",
    "video_rate",
    "credit_rate",
    "reserved_credits",
    "actual_usage",
    "refund_amount",
    "success_count",
    "failed_count",
    "created_at",
    "completed_at",
    "expires_at",
    "metadata",
}


def _docs(db, collection, **equal):
    query = db.collection(collection)
    for name, value in equal.items():
        query = query.where(filter=firestore.FieldFilter(name, "==", value))
    return [s.to_dict() for s in query.stream()]


def _credits(db, user_id) -> int:
    return db.collection("users").document(user_id).get().get("credits")


def _sum_of_transactions(db, user_id) -> int:
    return sum(t["amount"] for t in _docs(db, "transactions", user_id=user_id))


def _without_rate_limits(docs):
    return {path: doc for path, doc in docs.items() if not path.startswith("rate_limits/")}


@pytest.fixture
def funded(stack, bigeye):
    session = register_and_login(stack.base_url)
    give_credits(bigeye, session.user_id, 500)
    return session


def test_seed_example_reserve_then_finalize(funded, bigeye) -> None:
    reserved = funded.post("job/reserve", SEED_RESERVE)
    assert reserved.status_code == 200, reserved.text
    body = reserved.json()
    assert set(body) == {
        "job_token",
        "reserved_credits",
        "photo_rate",
        "video_rate",
        "config",
        "dictionary",
        "blacklist",
        "concurrency",
        "cache_threshold",
    }
    assert body["reserved_credits"] == 21
    assert (body["photo_rate"], body["video_rate"]) == (3, 3)
    assert body["dictionary"] == "keyword1\nkeyword2\nkeyword3"
    assert body["blacklist"] == ["nike", "adidas", "iphone"]
    assert body["concurrency"] == {"image": 5, "video": 2}
    assert body["cache_threshold"] == 20
    token = body["job_token"]
    assert uuid.UUID(token).version == 4
    config = decrypt_config(body["config"], token)
    assert config["prompt"].startswith("Describe the photo for iStock")
    assert config["mode"] == "iStock" and config["prompts_version"] == "7"
    int(body["config"], 16)  # a hex string

    job = bigeye.collection("jobs").document(token).get().to_dict()
    assert set(job) == SEED_JOB_FIELDS
    assert job["status"] == "RESERVED" and job["reserved_credits"] == 21
    assert job["credit_rate"] == 3 and job["user_id"] == funded.user_id
    assert job["metadata"] == {
        "app_version": "2.0.0",
        "model_used": "gemini-2.5-flash",
        "hardware_id": funded.hardware_id,
    }
    ttl = ensure_utc(job["expires_at"]) - ensure_utc(job["created_at"])
    assert ttl == timedelta(seconds=get_settings().job_reserve_ttl_s)
    assert _credits(bigeye, funded.user_id) == 479
    [reserve_tx] = _docs(bigeye, "transactions", type="RESERVE")
    assert reserve_tx["amount"] == -21 and reserve_tx["reference_id"] == token
    assert len(_docs(bigeye, "audit_logs", event_type="JOB_RESERVED")) == 1

    finalized = funded.post("job/finalize", {"job_token": token, **SEED_FINALIZE})
    assert finalized.status_code == 200, finalized.text
    assert finalized.json() == {"refunded": 6, "balance": 485}
    job = bigeye.collection("jobs").document(token).get().to_dict()
    assert job["status"] == "COMPLETED"
    assert (job["actual_usage"], job["refund_amount"]) == (15, 6)
    assert (job["success_count"], job["failed_count"]) == (5, 2)
    assert job["completed_at"] is not None
    [refund] = _docs(bigeye, "transactions", type="REFUND")
    assert refund["amount"] == 6 and refund["reference_id"] == token
    assert len(_docs(bigeye, "audit_logs", event_type="JOB_COMPLETED")) == 1
    user = bigeye.collection("users").document(funded.user_id).get().to_dict()
    assert user["total_credits_used"] == 15
    assert _sum_of_transactions(bigeye, funded.user_id) == 485

    # A repeat answers the same and writes nothing; other counts are a conflict.
    before = _without_rate_limits(all_documents(bigeye))
    again = funded.post("job/finalize", {"job_token": token, **SEED_FINALIZE})
    assert again.status_code == 200 and again.json() == {"refunded": 6, "balance": 485}
    other = funded.post("job/finalize", {"job_token": token, "success": 7, "failed": 0})
    assert other.status_code == 409
    assert "different counts" in other.json()["detail"]
    assert _without_rate_limits(all_documents(bigeye)) == before


def test_adobe_rates_and_keyword_style_pick_the_prompt(funded, bigeye) -> None:
    body = funded.post(
        "job/reserve", {**SEED_RESERVE, "mode": "Adobe", "keyword_style": "Single Words"}
    ).json()
    assert body["reserved_credits"] == 14 and body["photo_rate"] == 2
    assert decrypt_config(body["config"], body["job_token"])["prompt"].startswith(
        "Write 49 single-word"
    )
    body = funded.post(
        "job/reserve", {**SEED_RESERVE, "mode": "Shutterstock", "keyword_style": "Hybrid"}
    ).json()
    assert decrypt_config(body["config"], body["job_token"])["prompt"].startswith("Write 49 hybrid")


def test_finalize_prices_successes_by_type_when_rates_differ(funded, bigeye) -> None:
    rates = {
        "istock_photo": 2,
        "istock_video": 5,
        "adobe_photo": 2,
        "adobe_video": 2,
        "shutterstock_photo": 2,
        "shutterstock_video": 2,
    }
    write_app_settings(bigeye, credit_rates=rates)
    # 5 photos x 2 + 2 videos x 5 = 20 reserved.
    token = funded.post("job/reserve", SEED_RESERVE).json()["job_token"]
    # photos + videos == success: read as the successful photos and videos: 3x2 + 1x5 = 11.
    done = funded.post(
        "job/finalize", {"job_token": token, "success": 4, "failed": 3, "photos": 3, "videos": 1}
    )
    assert done.json() == {"refunded": 9, "balance": 489}
    # Without a usable split the successes are priced cheapest first: 5x2 + 1x5 = 15.
    token = funded.post("job/reserve", SEED_RESERVE).json()["job_token"]
    done = funded.post("job/finalize", {"job_token": token, "success": 6, "failed": 1})
    assert done.json() == {"refunded": 5, "balance": 489 - 20 + 5}


def test_everything_succeeded_refunds_nothing_and_nothing_succeeded_refunds_all(
    funded, bigeye
) -> None:
    token = funded.post("job/reserve", SEED_RESERVE).json()["job_token"]
    assert funded.post("job/finalize", {"job_token": token, "success": 7, "failed": 0}).json() == {
        "refunded": 0,
        "balance": 479,
    }
    token = funded.post("job/reserve", SEED_RESERVE).json()["job_token"]
    assert funded.post("job/finalize", {"job_token": token, "success": 0, "failed": 7}).json() == {
        "refunded": 21,
        "balance": 479,
    }
    assert _sum_of_transactions(bigeye, funded.user_id) == 479


def test_short_balance_is_402_with_no_write(stack, bigeye) -> None:
    session = register_and_login(stack.base_url)
    give_credits(bigeye, session.user_id, 20)
    before = _without_rate_limits(all_documents(bigeye))
    response = session.post("job/reserve", SEED_RESERVE)
    assert response.status_code == 402
    assert response.json() == {"detail": "Insufficient credits"}
    assert _without_rate_limits(all_documents(bigeye)) == before


def test_old_client_is_426_and_maintenance_is_503(funded, bigeye) -> None:
    response = funded.post("job/reserve", {**SEED_RESERVE, "version": "1.4.2"})
    assert response.status_code == 426 and "2.0.1" in response.json()["detail"]
    write_app_settings(bigeye, maintenance_mode=True, maintenance_message="Back at 10:00")
    response = funded.post("job/reserve", SEED_RESERVE)
    assert response.status_code == 503
    assert response.json() == {"detail": "Back at 10:00"}
    assert _docs(bigeye, "jobs") == []
    assert _credits(bigeye, funded.user_id) == 500


def test_missing_app_settings_is_503(funded, bigeye) -> None:
    bigeye.collection("system_config").document("app_settings").delete()
    assert funded.post("job/reserve", SEED_RESERVE).status_code == 503
    assert funded.get("credit/balance").status_code == 503


def test_finalize_of_unknown_or_foreign_job_is_404(stack, funded, bigeye) -> None:
    token = funded.post("job/reserve", SEED_RESERVE).json()["job_token"]
    stranger = register_and_login(stack.base_url)
    response = stranger.post("job/finalize", {"job_token": token, **SEED_FINALIZE})
    assert response.status_code == 404 and response.json() == {"detail": "Job not found"}
    response = funded.post("job/finalize", {"job_token": str(uuid.uuid4()), **SEED_FINALIZE})
    assert response.status_code == 404
    response = funded.post("job/finalize", {"job_token": token, "success": 6, "failed": 2})
    assert response.status_code == 400 and "file_count" in response.json()["detail"]
    assert bigeye.collection("jobs").document(token).get().get("status") == "RESERVED"


def test_finalize_after_expires_at_is_410(funded, bigeye) -> None:
    token = funded.post("job/reserve", SEED_RESERVE).json()["job_token"]
    later = SystemClock().now() + timedelta(seconds=get_settings().job_reserve_ttl_s + 1)
    set_clock(FixedClock(later))
    response = funded.post("job/finalize", {"job_token": token, **SEED_FINALIZE})
    assert response.status_code == 410
    assert "expired" in response.json()["detail"]
    assert _credits(bigeye, funded.user_id) == 479


def test_cron_expire_jobs_refunds_in_full_through_pubsub(stack, funded, bigeye) -> None:
    token = funded.post("job/reserve", SEED_RESERVE).json()["job_token"]
    fresh = funded.post(
        "job/reserve", {**SEED_RESERVE, "photo_count": 1, "video_count": 0, "file_count": 1}
    ).json()["job_token"]
    # Move the fresh job's deadline into the future relative to the clock below.
    far = SystemClock().now() + timedelta(days=2)
    bigeye.collection("jobs").document(fresh).update({"expires_at": far})
    bigeye.collection("credit_holds").document(fresh).update({"expires_at": far})
    set_clock(
        FixedClock(SystemClock().now() + timedelta(seconds=get_settings().job_reserve_ttl_s + 60))
    )
    stack.publish("cron-expire-jobs", b"{}")

    def expired():
        job = bigeye.collection("jobs").document(token).get().to_dict()
        return job if job["status"] == "EXPIRED" else None

    job = wait_for(expired)
    assert job["refund_amount"] == 21 and job["actual_usage"] == 0
    assert bigeye.collection("jobs").document(fresh).get().get("status") == "RESERVED"
    assert _credits(bigeye, funded.user_id) == 500 - 3
    [entry] = _docs(bigeye, "audit_logs", event_type="JOB_EXPIRED_AUTO_REFUND")
    assert entry["details"]["job_token"] == token and entry["user_id"] == funded.user_id
    assert _sum_of_transactions(bigeye, funded.user_id) == 497
    # Later runs expire only what has come due since, and each job once.
    assert expire_due_jobs(bigeye, SystemClock().now() + timedelta(days=3)).expired == 1
    assert bigeye.collection("jobs").document(fresh).get().get("status") == "EXPIRED"
    assert expire_due_jobs(bigeye, SystemClock().now() + timedelta(days=3)).expired == 0
    assert len(_docs(bigeye, "transactions", type="REFUND")) == 2
    assert _credits(bigeye, funded.user_id) == 500 == _sum_of_transactions(bigeye, funded.user_id)
    response = funded.post("job/finalize", {"job_token": token, **SEED_FINALIZE})
    assert response.status_code == 410


def test_concurrent_double_finalize_settles_once(funded, bigeye) -> None:
    token = funded.post("job/reserve", SEED_RESERVE).json()["job_token"]
    body = {"job_token": token, **SEED_FINALIZE}
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: funded.post("job/finalize", body), range(6)))
    assert {r.status_code for r in responses} == {200}
    assert {json.dumps(r.json()) for r in responses} == {'{"refunded": 6, "balance": 485}'}
    assert len(_docs(bigeye, "transactions", type="REFUND")) == 1
    assert len(_docs(bigeye, "audit_logs", event_type="JOB_COMPLETED")) == 1
    assert _credits(bigeye, funded.user_id) == 485 == _sum_of_transactions(bigeye, funded.user_id)


def test_finalize_racing_expiry_has_exactly_one_winner(funded, bigeye) -> None:
    tokens = [funded.post("job/reserve", SEED_RESERVE).json()["job_token"] for _ in range(6)]
    # The sweeper runs as of a time past every deadline while the requests use real time,
    # so both sides are eligible at once and only the atomic units decide.
    later = SystemClock().now() + timedelta(seconds=get_settings().job_reserve_ttl_s + 1)

    def finalize(token):
        return funded.post("job/finalize", {"job_token": token, **SEED_FINALIZE})

    with ThreadPoolExecutor(7) as pool:
        sweep = pool.submit(expire_due_jobs, bigeye, later)
        responses = list(pool.map(finalize, tokens))
        report = sweep.result()
    expected_balance = 500 - 21 * 6
    for token, response in zip(tokens, responses, strict=True):
        job = bigeye.collection("jobs").document(token).get().to_dict()
        if response.status_code == 200:
            assert job["status"] == "COMPLETED" and job["refund_amount"] == 6
            expected_balance += 6
        else:
            assert response.status_code == 410, response.text
            assert job["status"] == "EXPIRED" and job["refund_amount"] == 21
            expected_balance += 21
    expired = sum(1 for r in responses if r.status_code == 410)
    assert report.expired == expired
    assert len(_docs(bigeye, "transactions", type="REFUND")) == 6
    assert _credits(bigeye, funded.user_id) == expected_balance
    assert _sum_of_transactions(bigeye, funded.user_id) == expected_balance
    holds = [s.to_dict()["status"] for s in bigeye.collection("credit_holds").stream()]
    assert sorted(holds) == sorted(["EXPIRED"] * expired + ["SETTLED"] * (6 - expired))


def test_the_demo_configuration_serves_the_seed_example(stack, demo, fast_settings) -> None:
    session = register_and_login(stack.base_url)
    give_credits(demo, session.user_id, 500)
    body = session.post("job/reserve", SEED_RESERVE)
    assert body.status_code == 200, body.text
    assert body.json()["reserved_credits"] == 21
    assert body.json()["blacklist"] == ["nike", "adidas", "iphone"]
    token = body.json()["job_token"]
    assert decrypt_config(body.json()["config"], token)["prompt"]
    done = session.post("job/finalize", {"job_token": token, **SEED_FINALIZE})
    assert done.json() == {"refunded": 6, "balance": 485}
    promos = session.get("credit/balance").json()["active_promos"]
    assert [p["type"] for p in promos] == ["TIERED_BONUS"]


def test_the_sweep_pages_through_every_due_job(funded, bigeye) -> None:
    tokens = [funded.post("job/reserve", SEED_RESERVE).json()["job_token"] for _ in range(5)]
    later = SystemClock().now() + timedelta(seconds=get_settings().job_reserve_ttl_s + 1)
    report = expire_due_jobs(bigeye, later, batch_size=2)
    assert (report.expired, report.refunded_credits, report.skipped) == (5, 105, 0)
    statuses = {bigeye.collection("jobs").document(t).get().get("status") for t in tokens}
    assert statuses == {"EXPIRED"}
    assert _credits(bigeye, funded.user_id) == 500 == _sum_of_transactions(bigeye, funded.user_id)


def test_finalize_pays_a_usage_reward_once(funded, bigeye) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    bigeye.collection("promotions").document("cashback").set(
        tiered_promotion(
            now,
            name="Cashback 10%",
            type="USAGE_REWARD",
            conditions__start_date=now - timedelta(days=1),
            conditions__end_date=now + timedelta(days=1),
            conditions__min_topup_baht=None,
            reward={
                "type": "PERCENTAGE_BONUS",
                "bonus_credits": None,
                "override_rate": None,
                "bonus_percentage": 10,
                "tiers": None,
            },
            display={
                "banner_text": "",
                "banner_color": "",
                "show_in_client": False,
                "show_in_topup": False,
            },
            created_by="ops",
        )
    )
    reserve = {**SEED_RESERVE, "file_count": 40, "photo_count": 40, "video_count": 0}
    token = funded.post("job/reserve", reserve).json()["job_token"]
    body = {"job_token": token, "success": 40, "failed": 0, "photos": 40, "videos": 0}
    first = funded.post("job/finalize", body)
    assert first.status_code == 200, first.text
    # 40 photos x 3 = 120 used; 10 % back = 12 credits, as one BONUS transaction.
    assert first.json() == {"refunded": 0, "balance": 500 - 120 + 12}
    again = funded.post("job/finalize", body)
    assert again.json() == first.json()
    bonuses = _docs(bigeye, "transactions", user_id=funded.user_id, reference_id=token)
    assert sorted((b["type"], b["amount"]) for b in bonuses) == [("BONUS", 12), ("RESERVE", -120)]
    assert _credits(bigeye, funded.user_id) == 392 == _sum_of_transactions(bigeye, funded.user_id)


class _TickingClock(FixedClock):
    """Moves one second at every reading: two readings in one unit would differ."""

    def now(self):  # type: ignore[no-untyped-def]
        return self.advance(timedelta(seconds=1))


def test_every_timestamp_one_unit_writes_is_the_services_now(funded, bigeye) -> None:
    # The service reads the time once per request; the ledger's postings, the hold, the
    # job and its audit entry written in the same unit must all carry that one instant.
    token = funded.post("job/reserve", SEED_RESERVE).json()["job_token"]
    previous = set_clock(_TickingClock(SystemClock().now()))
    try:
        reply = funded.post("job/finalize", {"job_token": token, **SEED_FINALIZE})
    finally:
        set_clock(previous)
    assert reply.status_code == 200, reply.text
    job = bigeye.collection("jobs").document(token).get().to_dict()
    hold = bigeye.collection("credit_holds").document(token).get().to_dict()
    (refund_snap,) = (
        bigeye.collection("transactions")
        .where(filter=firestore.FieldFilter("user_id", "==", funded.user_id))
        .where(filter=firestore.FieldFilter("type", "==", "REFUND"))
        .get()
    )
    refund = refund_snap.to_dict()
    record = bigeye.collection("ledger_postings").document(refund_snap.id).get()
    (completed,) = _docs(bigeye, "audit_logs", event_type="JOB_COMPLETED")
    stamps = {
        "job.completed_at": job["completed_at"],
        "hold.closed_at": hold["closed_at"],
        "refund.created_at": refund["created_at"],
        "posting.created_at": record.get("created_at"),
        "audit.created_at": completed["created_at"],
    }
    assert len(set(stamps.values())) == 1, stamps
