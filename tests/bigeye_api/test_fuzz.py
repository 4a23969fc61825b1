"""Fuzzed request bodies: always a 4xx with a ``detail``, never a 5xx, and nothing written.

Rate-limit counters (``rate_limits/``) count every request, rejected ones included (that
is their job), so they are left out of the "nothing written" comparison.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.bigeye_client import reserve_body
from tests.bigeye_api.client import api_url, give_credits, register_and_login, registration
from tests.helpers import all_documents

FUZZ = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
not_a_string = (
    st.integers()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)
not_a_count = (
    st.text(max_size=5)
    | st.booleans()
    | st.integers(max_value=-1)
    | st.integers(min_value=100_001)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.lists(st.integers(), max_size=2)
)

# A top-up amount is a number of baht in (0, 1,000,000] with at most two decimals, so
# 500.5 or 200,000 are valid amounts (and not counts): its own invalid values.
not_an_amount = (
    st.text(max_size=5)
    | st.booleans()
    | st.integers(max_value=0)
    | st.integers(min_value=1_000_001)
    | st.floats(max_value=0.0, allow_nan=False, allow_infinity=False)
    | st.floats(min_value=1_000_000.5, allow_nan=False, allow_infinity=False)
    | st.lists(st.integers(), max_size=2)
)

STRING, COUNT, AMOUNT, OPTIONAL_STRING, OPTIONAL_COUNT = "s", "c", "a", "os", "oc"
WRONG = {
    STRING: not_a_string,
    OPTIONAL_STRING: not_a_string,
    COUNT: not_a_count,
    OPTIONAL_COUNT: not_a_count,
    AMOUNT: not_an_amount,
}


def corrupted(valid: dict[str, Any], kinds: dict[str, str]) -> st.SearchStrategy[Any]:
    """Bodies that are certainly invalid: a required key dropped, a value of the wrong
    type, an unknown key added, or not a JSON object at all."""
    required = [k for k, kind in kinds.items() if not kind.startswith("o")]

    def wrong_value(key: str) -> st.SearchStrategy[Any]:
        kind = kinds[key]
        base = WRONG[kind]
        return base if kind.startswith("o") else base | st.none()

    dropped = st.sampled_from(required).map(
        lambda key: {k: v for k, v in valid.items() if k != key}
    )
    retyped = st.sampled_from(sorted(kinds)).flatmap(
        lambda key: wrong_value(key).map(lambda value: {**valid, key: value})
    )
    extra = (
        st.text(min_size=1, max_size=12)
        .filter(lambda k: k not in kinds)
        .flatmap(lambda key: json_values.map(lambda value: {**valid, key: value}))
    )
    not_object = json_values.filter(lambda v: not isinstance(v, dict))
    return dropped | retyped | extra | not_object


def _stored(db) -> dict[str, Any]:
    return {p: d for p, d in all_documents(db).items() if not p.startswith("rate_limits/")}


def _assert_rejected(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, response.text
    assert response.status_code != 429
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"]


@pytest.fixture
def session(stack, bigeye):
    session = register_and_login(stack.base_url)
    give_credits(bigeye, session.user_id, 1000)
    return session


REGISTER_KINDS = {
    "email": STRING,
    "password": STRING,
    "full_name": STRING,
    "phone": STRING,
    "hardware_id": STRING,
    "app_version": OPTIONAL_STRING,
    "os": OPTIONAL_STRING,
}
LOGIN_KINDS = {
    "email": STRING,
    "password": STRING,
    "hardware_id": STRING,
    "app_version": OPTIONAL_STRING,
}
RESERVE_KINDS = {
    "file_count": COUNT,
    "photo_count": COUNT,
    "video_count": COUNT,
    "mode": STRING,
    "keyword_style": OPTIONAL_STRING,
    "model": STRING,
    "version": STRING,
}
FINALIZE_KINDS = {
    "job_token": STRING,
    "success": COUNT,
    "failed": COUNT,
    "photos": OPTIONAL_COUNT,
    "videos": OPTIONAL_COUNT,
}
TOPUP_KINDS = {"slip": STRING, "amount": AMOUNT, "promo_code": OPTIONAL_STRING}
VALID_RESERVE = reserve_body()


def test_fuzzed_register_and_login_bodies(stack, bigeye) -> None:
    existing = register_and_login(stack.base_url)
    before = _stored(bigeye)
    valid_login = {
        "email": existing.email,
        "password": existing.password,
        "hardware_id": existing.hardware_id,
    }

    @FUZZ
    @given(
        register=corrupted(registration(), REGISTER_KINDS),
        login=corrupted(valid_login, LOGIN_KINDS),
    )
    def check(register: Any, login: Any) -> None:
        _assert_rejected(
            httpx.post(api_url(stack.base_url, "auth/register"), json=register, timeout=30)
        )
        _assert_rejected(httpx.post(api_url(stack.base_url, "auth/login"), json=login, timeout=30))
        assert _stored(bigeye) == before

    check()


def test_fuzzed_job_bodies(session, bigeye) -> None:
    token = session.post("job/reserve", VALID_RESERVE).json()["job_token"]
    before = _stored(bigeye)
    valid_finalize = {"job_token": token, "success": 5, "failed": 2, "photos": 4, "videos": 3}

    @FUZZ
    @given(
        reserve=corrupted(VALID_RESERVE, RESERVE_KINDS),
        finalize=corrupted(valid_finalize, FINALIZE_KINDS),
    )
    def check(reserve: Any, finalize: Any) -> None:
        _assert_rejected(session.post("job/reserve", reserve))
        _assert_rejected(session.post("job/finalize", finalize))
        assert _stored(bigeye) == before

    check()


def test_fuzzed_topup_and_update_check_bodies(stack, session, bigeye) -> None:
    before = _stored(bigeye)
    slip = "data:image/jpeg;base64," + "QUJD" * 8

    @FUZZ
    @given(
        topup=corrupted({"slip": slip, "amount": 500, "promo_code": None}, TOPUP_KINDS),
        update=corrupted({"version": "2.0.0"}, {"version": STRING}),
    )
    def check(topup: Any, update: Any) -> None:
        _assert_rejected(session.post("credit/topup", topup))
        _assert_rejected(
            httpx.post(api_url(stack.base_url, "system/check-update"), json=update, timeout=30)
        )
        assert _stored(bigeye) == before

    check()


def test_fuzzed_raw_bytes_and_wild_values(stack, session, bigeye) -> None:
    before = _stored(bigeye)
    paths = [
        "auth/register",
        "auth/login",
        "job/reserve",
        "job/finalize",
        "credit/topup",
        "system/check-update",
    ]

    @FUZZ
    @given(path=st.sampled_from(paths), raw=st.binary(max_size=64))
    def check(path: str, raw: bytes) -> None:
        try:
            value = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            value = None
        if isinstance(value, dict):
            return  # a (rare) JSON object: covered by the structured strategies
        _assert_rejected(
            httpx.post(
                api_url(stack.base_url, path), content=raw, headers=session.headers, timeout=30
            )
        )
        assert _stored(bigeye) == before

    check()
    # Values at the edges of the numeric and string limits.
    for body in (
        {**VALID_RESERVE, "file_count": 2**70, "photo_count": 2**70},
        {**VALID_RESERVE, "model": "x" * 10_000},
        {**VALID_RESERVE, "mode": "istock"},
        {**VALID_RESERVE, "keyword_style": "hybrid"},
        {**VALID_RESERVE, "file_count": 0, "photo_count": 0, "video_count": 0},
        {**VALID_RESERVE, "file_count": 8},
    ):
        _assert_rejected(session.post("job/reserve", body))
    for body in (
        {"job_token": "not-a-uuid", "success": 1, "failed": 0},
        {"job_token": str(uuid.uuid4()) + "/x", "success": 1, "failed": 0},
        {"job_token": "../../users/x", "success": 1, "failed": 0},
    ):
        _assert_rejected(session.post("job/finalize", body))
    assert _stored(bigeye) == before
