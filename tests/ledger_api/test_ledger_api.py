"""ledger-api over real HTTP on the emulators: every operation, its errors and its races."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest

from shared.clock import FixedClock, SystemClock, set_clock
from shared.groupcommit import committer_for
from shared.ledger import Ledger, group_settings, ledger_profile
from shared.ledgerapi.client import (
    InsufficientCredits,
    KeyConflict,
    LedgerApiClient,
    LedgerApiError,
    NotFound,
)
from shared.ledgerapi.models import REQUEST_MODELS
from shared.ledgerapi.service import expire_due_holds
from shared.settings import override_settings
from tests.helpers import wait_for
from tests.ledger_api.conftest import balance, make_user, transactions


def _funded(api: LedgerApiClient, db: Any, user_id: str, credits: int) -> str:
    make_user(db, user_id)
    api.grant(user_id, credits, type="PURCHASE", idempotency_key=f"fund-{user_id}")
    return user_id


def _sum(db: Any, user_id: str, collection: str = "credit_transactions") -> int:
    return sum(int(t["amount"]) for t in transactions(db, user_id, collection))


def test_account_and_transactions_newest_first_with_cursor_paging(api, db) -> None:
    user = _funded(api, db, "u_read", 100)
    for i in range(4):
        api.charge(user, i + 1, idempotency_key=f"c{i}", description=f"charge {i}")
    account = api.account(user)
    assert (account.balance, account.total_credits_used) == (90, 10)
    assert account.total_credits_purchased == 100 and account.profile == "kitesforu"
    items, cursor = api.transactions_page(user, limit=2)
    assert [t["amount"] for t in items] == [-4, -3] and cursor
    rest, end = api.transactions_page(user, limit=2, cursor=cursor)
    assert [t["amount"] for t in rest] == [-2, -1] and end
    everything = list(api.transactions(user, page_size=2))
    assert [t["amount"] for t in everything] == [-4, -3, -2, -1, 100]
    assert everything[0]["type"] == "DEDUCTION" and everything[-1]["type"] == "PURCHASE"
    with pytest.raises(LedgerApiError) as bad:
        api.transactions_page(user, cursor="nope")
    assert bad.value.status == 400
    with pytest.raises(NotFound):
        api.account("u_missing")


def test_charge_402_when_short_writes_nothing_unless_partial_is_asked(api, db) -> None:
    user = _funded(api, db, "u_short", 10)
    with pytest.raises(InsufficientCredits) as short:
        api.charge(user, 11, idempotency_key="k-short")
    assert short.value.status == 402
    assert balance(db, user) == 10 and len(transactions(db, user)) == 1
    posting = api.charge(user, 11, idempotency_key="k-partial", allow_partial=True)
    assert (posting.amount, posting.balance_after, posting.shortfall) == (-10, 0, 1)
    assert balance(db, user) == 0 == _sum(db, user)


def test_write_replays_first_answer_and_key_reuse_is_409(api, db) -> None:
    user = _funded(api, db, "u_idem", 50)
    first = api.charge(user, 7, idempotency_key="k1", job_id="job_1")
    again = api.charge(user, 7, idempotency_key="k1", job_id="job_1")
    assert not first.replayed and again.replayed
    assert (again.transaction_id, again.balance_after) == (first.transaction_id, 43)
    with pytest.raises(KeyConflict) as reused:
        api.charge(user, 8, idempotency_key="k1", job_id="job_1")
    assert reused.value.status == 409
    with pytest.raises(KeyConflict):
        api.grant(user, 7, type="PURCHASE", idempotency_key="k1")
    assert balance(db, user) == 43
    [charge] = [t for t in transactions(db, user) if t["type"] == "DEDUCTION"]
    assert charge["job_id"] == "job_1" and charge["amount"] == -7
    # A write without the header is refused before anything happens.
    raw = httpx.post(f"{_base(api)}/v1/accounts/{user}/charges", json={"amount": 1})
    assert raw.status_code == 400 and "Idempotency-Key" in raw.json()["detail"]


def test_grant_types_of_the_profile_and_adjustments(api, db) -> None:
    user = make_user(db, "u_grant")
    sub = api.grant(user, 30, type="SUBSCRIPTION_GRANT", idempotency_key="g1")
    assert sub.type == "SUBSCRIPTION_GRANT" and sub.balance_after == 30
    with pytest.raises(LedgerApiError) as bad:
        api.grant(user, 5, type="TOPUP", idempotency_key="g2")
    assert bad.value.status == 400 and "PURCHASE" in bad.value.detail
    up = api.adjust(user, 5, actor="ops@x", reason="goodwill", idempotency_key="a1")
    down = api.adjust(user, -3, actor="ops@x", reason="fix", idempotency_key="a2")
    assert (up.type, up.balance_after, down.balance_after) == ("ADMIN_ADJUSTMENT", 35, 32)
    assert down.extra["actor"] == "ops@x"
    with pytest.raises(InsufficientCredits):
        api.adjust(user, -33, actor="ops@x", reason="too much", idempotency_key="a3")
    raw = httpx.post(
        f"{_base(api)}/v1/accounts/{user}/adjustments",
        json={"amount": 1, "reason": "no actor"},
        headers={"Idempotency-Key": "a4"},
    )
    assert raw.status_code == 400 and "actor" in raw.json()["detail"]
    assert balance(db, user) == 32 == _sum(db, user)
    assert db.collection("users").document(user).get().get("total_credits_purchased") == 0


def test_refund_is_linked_and_bounded_by_its_original(api, db) -> None:
    user = _funded(api, db, "u_refund", 100)
    charge = api.charge(user, 40, idempotency_key="c", job_id="job_r")
    assert charge.transaction_id
    part = api.refund(charge.transaction_id, amount=15, reason="partial", idempotency_key="r1")
    assert (part.type, part.amount, part.balance_after) == ("REFUND", 15, 75)
    with pytest.raises(LedgerApiError) as over:
        api.refund(charge.transaction_id, amount=26, reason="too much", idempotency_key="r2")
    assert over.value.status == 400
    rest = api.refund(charge.transaction_id, reason="the rest", idempotency_key="r3")
    assert rest.amount == 25 and rest.balance_after == 100
    with pytest.raises(KeyConflict):
        api.refund(charge.transaction_id, reason="again", idempotency_key="r4")
    with pytest.raises(NotFound):
        api.refund("no-such-transaction", reason="x", idempotency_key="r5")
    refunds = [t for t in transactions(db, user) if t["type"] == "REFUND"]
    assert {t["original_transaction_id"] for t in refunds} == {charge.transaction_id}
    assert balance(db, user) == 100 == _sum(db, user)


def test_hold_settle_release_and_their_conflicts(api, db) -> None:
    user = _funded(api, db, "u_hold", 100)
    held = api.create_hold(user, "job_h1", 30, idempotency_key="h1")
    assert (held.hold_status, held.balance_after, held.amount) == ("PENDING", 70, -30)
    with pytest.raises(InsufficientCredits):
        api.create_hold(user, "job_h2", 71, idempotency_key="h2")
    settled = api.settle("job_h1", 12, idempotency_key="s1")
    assert (settled.hold_status, settled.amount, settled.balance_after) == ("SETTLED", 18, 88)
    assert api.settle("job_h1", 12, idempotency_key="s1").replayed
    with pytest.raises(KeyConflict):
        api.release("job_h1", reason="late", idempotency_key="s2")
    state = api.hold("job_h1")
    assert (state.status, state.used_amount, state.returned_amount) == ("SETTLED", 12, 18)
    api.create_hold(user, "job_h3", 50, idempotency_key="h3", job_id="job_other")
    released = api.release("job_h3", reason="cancelled", idempotency_key="rel")
    assert (released.hold_status, released.balance_after) == ("RELEASED", 88)
    with pytest.raises(KeyConflict):
        api.settle("job_h3", 1, idempotency_key="s3")
    with pytest.raises(NotFound):
        api.settle("job_nope", 1, idempotency_key="s4")
    with pytest.raises(LedgerApiError) as over:
        api.create_hold(user, "job_h4", 10, idempotency_key="h4")
        api.settle("job_h4", 11, idempotency_key="s5")
    assert over.value.status == 400
    reserve = [t for t in transactions(db, user) if t.get("job_id") == "job_other"]
    assert reserve and reserve[0]["amount"] == -50
    assert balance(db, user) == 78 == _sum(db, user)


def test_http_errors_are_detail_bodies(api, db) -> None:
    base = _base(api)
    make_user(db, "u_http")
    key = {"Idempotency-Key": "e"}
    cases = [
        (httpx.get(f"{base}/v1/nowhere"), 404),
        (httpx.delete(f"{base}/v1/accounts/u_http"), 405),
        (httpx.post(f"{base}/v1/accounts/u_http/charges", content=b"{", headers=key), 400),
        (
            httpx.post(f"{base}/v1/accounts/u_http/charges", json={"amount": "5"}, headers=key),
            400,
        ),
        (
            httpx.post(
                f"{base}/v1/accounts/u_http/charges", json={"amount": 5, "x": 1}, headers=key
            ),
            400,
        ),
        (
            httpx.post(
                f"{base}/v1/accounts/u_http/charges",
                json={"amount": 1, "description": "x" * 20_000},
                headers=key,
            ),
            413,
        ),
        (httpx.post(f"{base}/v1/accounts/u_ghost/charges", json={"amount": 1}, headers=key), 404),
        (httpx.get(f"{base}/v1/accounts/u_http/transactions?limit=0"), 400),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert set(response.json()) == {"detail"}
    assert httpx.delete(f"{base}/v1/accounts/u_http").headers["Allow"] == "GET"
    assert balance(db, "u_http") == 0


def test_openapi_document_comes_from_the_request_models(api) -> None:
    doc = api.openapi()
    assert doc["openapi"].startswith("3.")
    for model in REQUEST_MODELS:
        assert model.__name__ in doc["components"]["schemas"]
    charge = doc["paths"]["/v1/accounts/{user_id}/charges"]["post"]
    assert charge["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ChargeRequest"
    )
    assert "402" in charge["responses"] and "409" in charge["responses"]
    assert any(p["name"] == "Idempotency-Key" and p["required"] for p in charge["parameters"])
    schema = doc["components"]["schemas"]["ChargeRequest"]
    assert schema["required"] == ["amount"] and schema["additionalProperties"] is False


def test_a_user_of_another_profile_is_refused_naming_it(api, db) -> None:
    db.collection("users").document("u_bigeye").set(
        {"email": "b@x", "password_hash": "x", "hardware_id": "hw", "credits": 40}
    )
    with pytest.raises(NotFound) as other:
        api.account("u_bigeye")
    assert "bigeye" in other.value.detail
    with pytest.raises(NotFound):
        api.charge("u_bigeye", 1, idempotency_key="x")
    with override_settings(schema_profile="bigeye"):
        account = api.account("u_bigeye")
        assert (account.profile, account.balance) == ("bigeye", 40)


def test_concurrent_charges_on_one_account_are_exact(api, db, stack) -> None:
    user = _funded(api, db, "u_hot", 1000)
    writers, each = 8, 50
    group = committer_for(db, group_settings())  # the served function's (same process)
    commits, members = group.commits, group.committed_members

    def run(w: int) -> list[int]:
        with LedgerApiClient(_base(api)) as client:
            return [
                client.charge(user, 1, idempotency_key=f"w{w}-{i}").balance_after
                for i in range(each)
            ]

    with ThreadPoolExecutor(writers) as pool:
        seen = [b for batch in pool.map(run, range(writers)) for b in batch]
    assert sorted(seen) == list(range(1000 - writers * each, 1000))
    assert balance(db, user) == 1000 - writers * each == _sum(db, user)
    assert len(transactions(db, user)) == writers * each + 1
    # The charges went through group commit and shared commits.
    assert group.committed_members - members == writers * each
    assert group.commits - commits < writers * each


def test_holds_racing_expiry_end_with_exactly_one_outcome_each(api, db) -> None:
    user = _funded(api, db, "u_race", 1000)
    holds = [f"job_x{i}" for i in range(12)]
    for hold_id in holds:
        api.create_hold(user, hold_id, 20, idempotency_key=f"h-{hold_id}", ttl_s=60)
    later = SystemClock().now() + timedelta(hours=1)

    def ledger_of(profile: str) -> Ledger:
        return Ledger(db, ledger_profile(profile), FixedClock(later))

    def settle(hold_id: str) -> int:
        with LedgerApiClient(_base(api)) as client:
            try:
                return client.settle(hold_id, 5, idempotency_key=f"s-{hold_id}").amount
            except KeyConflict:
                return -1

    with ThreadPoolExecutor(6) as pool:
        sweep = pool.submit(
            expire_due_holds, db, later, profiles=frozenset({"kitesforu"}), make_ledger=ledger_of
        )
        answers = dict(zip(holds, pool.map(settle, holds), strict=True))
        report = sweep.result()
    states = {h: api.hold(h).status for h in holds}
    for hold_id in holds:
        assert (answers[hold_id] == 15) == (states[hold_id] == "SETTLED"), hold_id
        assert states[hold_id] in {"SETTLED", "EXPIRED"}
    settled = sum(1 for s in states.values() if s == "SETTLED")
    assert report.expired == len(holds) - settled
    assert balance(db, user) == 1000 - 5 * settled == _sum(db, user)
    # A second sweep finds nothing; a late settle of an expired hold is refused.
    again = expire_due_holds(db, later, profiles=frozenset({"kitesforu"}), make_ledger=ledger_of)
    assert again.expired == 0


def test_cron_expire_jobs_expires_ledger_api_holds_through_pubsub(api, db, stack) -> None:
    user = _funded(api, db, "u_cron", 100)
    api.create_hold(user, "job_c1", 40, idempotency_key="h", ttl_s=60)
    api.create_hold(user, "job_c2", 10, idempotency_key="h2", ttl_s=7200)
    set_clock(FixedClock(SystemClock().now() + timedelta(minutes=5)))
    with pytest.raises(KeyConflict) as late:
        api.settle("job_c1", 1, idempotency_key="s")
    assert "expired" in late.value.detail
    stack.publish("cron-expire-jobs", b"{}")
    wait_for(lambda: api.hold("job_c1").status == "EXPIRED")
    assert api.hold("job_c2").status == "PENDING"
    assert balance(db, user) == 90 == _sum(db, user)
    assert api.settle("job_c2", 10, idempotency_key="s2").balance_after == 90


def _base(api: LedgerApiClient) -> str:
    return str(api._http.base_url).rstrip("/")


def test_openapi_is_valid_json_for_tools(api) -> None:
    text = httpx.get(f"{_base(api)}/openapi.json").text
    assert json.loads(text)["info"]["title"] == "ledger-api"
