"""Malformed input to every registered HTTP endpoint and Pub/Sub handler, over real HTTP.

Targets come from the registry at test time, so a function added later is fuzzed too.
Each target gets ``FUZZ_EXAMPLES`` (default 30) hypothesis examples against the demo data:
never a 5xx (for Pub/Sub a 5xx means endless redelivery of a poison message), an error
answer always carries ``{"detail": ...}``, and nothing is written. Rate-limit counters
(``rate_limits/``) count rejected requests by design and are left out of the comparison.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.registry import REGISTRY, FunctionSpec, Http, Schedule, Topic
from shared.settings import override_settings
from tests.helpers import all_documents, triggers_settled

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
TRIED: dict[str, int] = {}

HTTP_SPECS = [s for s in REGISTRY if isinstance(s.trigger, Http)]
PUBSUB_SPECS = [s for s in REGISTRY if isinstance(s.trigger, Topic | Schedule)]

KNOWN_PATHS = {
    "credit-api": [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/credit/balance",
        "/api/v1/credit/topup",
        "/api/v1/credit/history",
        "/api/v1/job/reserve",
        "/api/v1/job/finalize",
        "/api/v1/system/check-update",
    ],
    "usage-limits": ["/check"],
    "stripe-webhook": ["/"],
    "ledger-api": [
        "/v1/accounts/u1",
        "/v1/accounts/u1/transactions",
        "/v1/accounts/u1/charges",
        "/v1/accounts/u1/grants",
        "/v1/accounts/u1/adjustments",
        "/v1/refunds",
        "/v1/holds",
        "/v1/holds/h1/settle",
        "/v1/holds/h1/release",
    ],
}
# Fields of each message (docs/contract.md, message shapes and schedule requests).
MESSAGE_FIELDS = {
    "usage-events": ["request_id", "user_id", "engine_id", "usage_units"],
    "provider-events": ["event_id", "provider", "model_id", "outcome"],
}
SCHEDULE_FIELDS = ["date", "month", "user_ids", "at"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
# Never coerced to a scalar by validation: a required scalar field with one is always invalid.
wrong_types = st.lists(scalars, max_size=3) | st.dictionaries(
    st.text(max_size=5), scalars, max_size=3
)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def forged_token(sub: str) -> str:
    """A well-formed JWT signed with the wrong key (the API must answer 401)."""
    now = int(time.time())
    return jwt.encode(
        {"sub": sub, "user_id": sub, "iat": now, "exp": now + 600},
        "not-the-secret-but-long-enough-for-hs256!",
        "HS256",
    )


@st.composite
def http_requests(draw: st.DrawFn, name: str) -> dict[str, Any]:
    known = KNOWN_PATHS.get(name, ["/"])
    path = draw(
        st.sampled_from(known) | st.text(max_size=30).map(lambda t: "/" + quote(t, safe="/"))
    )
    method = draw(st.sampled_from(["GET", "POST", "POST", "POST", "PUT", "PATCH", "DELETE"]))
    headers: dict[str, str] = {}
    auth = draw(st.sampled_from(["none", "garbage", "forged", "bearer-empty"]))
    if auth == "garbage":
        headers["Authorization"] = "Bearer " + draw(
            st.text(alphabet="abcXYZ019.-_", min_size=1, max_size=60)
        )
    elif auth == "forged":
        headers["Authorization"] = "Bearer " + forged_token(
            draw(st.sampled_from(["u1", "demo_user", ""]))
        )
    elif auth == "bearer-empty":
        headers["Authorization"] = "Bearer"
    if draw(st.booleans()):
        ts = draw(st.integers(min_value=0, max_value=2**40))
        headers["Stripe-Signature"] = f"t={ts},v1=" + draw(
            st.text(alphabet="0123456789abcdef", max_size=64)
        )
    headers["Content-Type"] = draw(
        st.sampled_from(["application/json", "text/plain", "application/octet-stream"])
    )
    body = draw(
        st.binary(max_size=300)
        | json_values.map(_json_bytes)
        | st.dictionaries(
            st.sampled_from(
                [
                    "email",
                    "password",
                    "slip",
                    "amount",
                    "job_token",
                    "user_id",
                    "tokens",
                    "type",
                    "id",
                    "data",
                    "file_count",
                    "mode",
                    "version",
                ]
            ),
            json_values,
            max_size=5,
        ).map(_json_bytes)
    )
    return {"method": method, "path": path, "headers": headers, "body": body}


@st.composite
def push_bodies(draw: st.DrawFn, spec: FunctionSpec) -> bytes:
    """A Pub/Sub push request body that is malformed somewhere."""
    kind = draw(st.sampled_from(["envelope", "data", "data", "data", "fields"]))
    if kind == "envelope":  # not a push envelope at all, or one with broken data
        return draw(
            st.binary(max_size=200)
            | json_values.map(_json_bytes)
            | st.builds(
                lambda d: _json_bytes(
                    {"message": {"data": d, "messageId": "m"}, "subscription": "s"}
                ),
                st.text(max_size=20).filter(lambda t: t.strip() != ""),
            )
        )
    if kind == "data":  # a valid envelope carrying bytes that are not a JSON object
        data = draw(
            st.binary(min_size=1, max_size=200).filter(lambda b: b.strip()[:1] != b"{")
            | json_values.filter(lambda v: not isinstance(v, dict)).map(_json_bytes)
        )
    else:  # a JSON object whose known fields have the wrong types
        fields = MESSAGE_FIELDS.get(spec.name, SCHEDULE_FIELDS)
        bad = draw(st.sampled_from(fields))
        message = draw(st.dictionaries(st.sampled_from(fields), json_values, max_size=4))
        message[bad] = draw(wrong_types)
        message["x_unknown_" + draw(st.text(alphabet="abc", min_size=1, max_size=3))] = 1
        data = _json_bytes(message)
    return _json_bytes(
        {
            "message": {
                "data": base64.b64encode(data).decode(),
                "messageId": str(draw(st.integers(min_value=1, max_value=10**9))),
                "publishTime": "2026-01-04T10:00:00Z",
                "attributes": {},
            },
            "subscription": f"projects/demo-test/subscriptions/{spec.name}-push",
        }
    )


def _snapshot(db: Any) -> dict[str, Any]:
    return {p: d for p, d in all_documents(db).items() if not p.startswith("rate_limits/")}


@pytest.fixture
def demo(db: Any, stack: Any) -> Any:
    """The demo data, once every trigger event its writes owe (audit, cost history) has
    been handled: the snapshot taken before fuzzing cannot still be changing."""
    with triggers_settled(stack):
        stack.seed()
    return db


def _settled(db: Any) -> dict[str, Any]:
    """The documents before fuzzing (the ``demo`` fixture settled the seed's triggers)."""
    return _snapshot(db)


def _check(response: httpx.Response, name: str) -> None:
    assert response.status_code < 500, f"{name}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        assert "detail" in response.json(), response.text[:300]


@pytest.mark.parametrize("spec", HTTP_SPECS, ids=[s.name for s in HTTP_SPECS])
def test_http_endpoint_rejects_malformed_input(demo: Any, stack: Any, spec: FunctionSpec) -> None:
    before = _settled(demo)
    client = httpx.Client(base_url=f"{stack.base_url}/{spec.name}", timeout=60)
    count = 0

    @FUZZ
    @given(request=http_requests(spec.name))
    def probe(request: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        response = client.request(
            request["method"], request["path"], headers=request["headers"], content=request["body"]
        )
        _check(response, spec.name)

    probe()
    huge = client.post(KNOWN_PATHS.get(spec.name, ["/"])[0], content=b"{" + b" " * 3_000_000)
    _check(huge, spec.name)
    TRIED[spec.name] = count + 1
    assert _snapshot(demo) == before


@pytest.mark.parametrize("spec", PUBSUB_SPECS, ids=[s.name for s in PUBSUB_SPECS])
def test_pubsub_handler_acks_malformed_messages(demo: Any, stack: Any, spec: FunctionSpec) -> None:
    before = _settled(demo)
    client = httpx.Client(base_url=stack.base_url, timeout=120)
    count = 0

    @FUZZ
    @given(body=push_bodies(spec))
    def probe(body: bytes) -> None:
        nonlocal count
        count += 1
        response = client.post(
            f"/{spec.name}/", content=body, headers={"Content-Type": "application/json"}
        )
        _check(response, spec.name)

    probe()
    TRIED[spec.name] = count
    assert _snapshot(demo) == before


def test_fuzz_covered_every_target() -> None:
    """Runs last in this module: every registered HTTP and Pub/Sub function was fuzzed."""
    wanted = {s.name for s in HTTP_SPECS + PUBSUB_SPECS}
    assert set(TRIED) == wanted
    print(f"\nfuzz inputs tried: {sum(TRIED.values())} over {len(TRIED)} targets: {TRIED}")


# -- the poison corpus ------------------------------------------------------------------
# Hand-made classes of hostile JSON, sent to every registered HTTP route and every Pub/Sub
# handler (docs/security.md, "Hostile input"). Each must get exactly ``expected_status``
# with ``{"detail"}`` over HTTP and an acknowledged (200) push on Pub/Sub, and write nothing.
FUZZ_USER = "fuzz_poison_user"
VALID_BODIES: dict[str, dict[str, Any]] = {
    "/api/v1/auth/register": {
        "email": "poison@example.com",
        "password": "correct-horse-9",
        "full_name": "Poison",
        "phone": "0800000000",
        "hardware_id": "hw-poison",
    },
    "/api/v1/auth/login": {
        "email": "poison@example.com",
        "password": "correct-horse-9",
        "hardware_id": "hw-poison",
    },
    "/api/v1/credit/topup": {"slip": "data:image/jpeg;base64,e30=", "amount": 100},
    "/api/v1/job/reserve": {"mode": "istock", "file_count": 1},
    "/api/v1/job/finalize": {"job_token": "x", "success_count": 1, "failed_count": 0},
    "/api/v1/system/check-update": {"version": "2.0.0"},
    "/check": {"user_id": FUZZ_USER, "tokens": 5},
    "/v1/accounts/u1/grants": {"amount": 5, "type": "PURCHASE"},
    "/v1/accounts/u1/adjustments": {"amount": 5, "reason": "poison"},
    "/v1/refunds": {"transaction_id": "t1", "amount": 5},
    "/v1/holds": {"hold_id": "h-poison", "user_id": FUZZ_USER, "amount": 5},
    "usage-events": {
        "request_id": "poison-1",
        "user_id": FUZZ_USER,
        "engine_id": "openai_chat_gpt4",
        "usage_units": 2.5,
        "credits_used": 5,
        "tokens": 2500,
    },
    "provider-events": {
        "event_id": "poison-1",
        "provider": "openai",
        "model_id": "gpt-4o",
        "outcome": "failure",
    },
}
BIG = 2 * 1024 * 1024
GET_PATHS = {
    "/api/v1/credit/balance",
    "/api/v1/credit/history",
    "/v1/accounts/u1",
    "/v1/accounts/u1/transactions",
}


def _with_duplicate_key(valid: dict[str, Any]) -> bytes:
    """``valid`` with its first key repeated (another value first, the valid one last)."""
    if not valid:
        return b'{"date": "2026-01-01", "date": "2026-01-02"}'
    key, value = next(iter(valid.items()))
    other = json.dumps("other" if not isinstance(value, str) else value + "-other")
    text = json.dumps(valid)
    return ("{" + json.dumps(key) + ": " + other + ", " + text[1:]).encode()


def poison_bodies(valid: dict[str, Any], *, huge_string_field: str = "email") -> dict[str, bytes]:
    """Every poison class, shaped after ``valid`` where the class allows it."""
    first = next(iter(valid), "date")
    return {
        "huge-int": json.dumps({**valid, first: 0}).replace("0", "1" + "0" * 5000, 1).encode()
        if valid
        else b'{"date": 1' + b"0" * 5000 + b"}",
        "huge-int-top-level": b"9" * 5000,
        "long-float": b'{"amount": 1.' + b"5" * 5000 + b"}",
        "float-overflow": b'{"amount": 1e400, "tokens": 1e400}',
        "nan": b'{"amount": NaN, "tokens": NaN, "usage_units": NaN}',
        "infinity": b'{"amount": Infinity, "tokens": -Infinity, "usage_units": Infinity}',
        "deep-array": b"[" * 20_000 + b"]" * 20_000,
        "deep-object": b'{"a":' * 6_000 + b"1" + b"}" * 6_000,
        "nested-65": b'{"a":' * 65 + b"1" + b"}" * 65,
        "duplicate-keys": _with_duplicate_key(valid),
        "bom-utf8": b"\xef\xbb\xbf" + json.dumps(valid).encode(),
        "bom-utf16": "\ufeff".encode("utf-16-le") + json.dumps(valid).encode("utf-16-le"),
        "utf16": json.dumps(valid).encode("utf-16"),
        "huge-string": json.dumps({**valid, huge_string_field: "a" * BIG}).encode(),
        "huge-key": json.dumps({"k" * BIG: 1}).encode(),
        "not-json": b"\x00\xff{",
        "empty": b"",
    }


POISON_TRIED: dict[str, int] = {}
STATUSES: dict[tuple[str, int], int] = {}
POISON_5XX: dict[str, int] = {}


def _seed_fuzz_user(db: Any) -> None:
    db.collection("users").document(FUZZ_USER).set(
        {
            "email": f"{FUZZ_USER}@example.com",
            "status": "active",
            "credits": 1000,
            "tier": "standard",
            "hardware_id": "hw-fuzz",
        }
    )


def _signed_token(sub: str) -> str:
    """A valid credit-api token of ``sub`` on its device: the body reaches the parser."""
    from shared.bigeye.auth import issue_token
    from shared.clock import get_clock

    return issue_token(sub, "hw-fuzz", get_clock().now())


def _stripe_headers(body: bytes) -> dict[str, str]:
    import stripe

    from shared.settings import get_settings

    ts = int(time.time())
    secret = get_settings().stripe_secrets()[0]
    signature = stripe.WebhookSignature._compute_signature(
        f"{ts}.{body.decode('utf-8', 'replace')}", secret
    )
    return {"Stripe-Signature": f"t={ts},v1={signature}"}


def name_is_ledger(spec: FunctionSpec) -> bool:
    return spec.name == "ledger-api"


#: Body limits of the routes (a larger body is 413 before it is parsed).
def _body_limit(name: str, path: str) -> int | None:
    from shared.bigeye.api import MAX_BODY_BYTES, MAX_TOPUP_BODY_BYTES
    from shared.ledgerapi.http import MAX_BODY_BYTES as LEDGER_MAX_BODY_BYTES
    from shared.settings import get_settings

    if name == "credit-api":
        return MAX_TOPUP_BODY_BYTES if path.endswith("/topup") else MAX_BODY_BYTES
    return {
        "ledger-api": LEDGER_MAX_BODY_BYTES,
        "usage-limits": 16 * 1024,  # functions/usage_limits.py
        "stripe-webhook": get_settings().stripe_max_body_bytes,
    }.get(name)


def expected_status(name: str, method: str, path: str, body: bytes) -> int:
    """The one right answer to a poison body at a route (docs/security.md).

    A GET never reads its body: the credit API's balance and history answer the valid
    caller (200), ledger-api's account reads answer that ``u1`` is unknown (404). The
    operator console answers 401 before any body (no signed-in operator). Every POST is
    413 when the body is over the route's limit, else 400 from the strict JSON reader.
    """
    if name == "admin-console":
        return 401
    if method == "GET":
        return 200 if name == "credit-api" else 404
    limit = _body_limit(name, path)
    if limit is not None and len(body) > limit:
        return 413
    return 400


def _http_cases() -> list[tuple[str, str, str, bytes, dict[str, str]]]:
    """(target, method, path, body, headers) for every HTTP route and poison class."""
    cases = []
    for spec in HTTP_SPECS:
        routes = [
            ("GET" if p in GET_PATHS else "POST", p) for p in KNOWN_PATHS.get(spec.name, ["/"])
        ]
        for method, path in routes:
            default = (
                {"amount": 5} if name_is_ledger(spec) else {"id": "evt_p", "type": "invoice.paid"}
            )
            valid = VALID_BODIES.get(path, default)
            field = "slip" if path.endswith("/topup") else next(iter(valid))
            for kind, body in poison_bodies(valid, huge_string_field=field).items():
                cases.append((spec.name, method, path, body, {"x-poison": kind}))
    return cases


def _push(spec: FunctionSpec, data: bytes, index: int) -> bytes:
    return _json_bytes(
        {
            "message": {
                "data": base64.b64encode(data).decode(),
                "messageId": f"poison-{index}",
                "publishTime": "2026-01-04T10:00:00Z",
                "attributes": {},
            },
            "subscription": f"projects/demo-test/subscriptions/{spec.name}-push",
        }
    )


@pytest.fixture
def unlimited() -> Iterator[None]:
    """Every answer comes from the route itself, never from a per-IP or per-user limit."""
    with override_settings(
        rate_limit_ip_per_min=0,
        rate_limit_auth_ip_per_min=0,
        rate_limit_user_per_min=0,
        rate_limit_topup_user_per_min=0,
    ):
        yield


def test_poison_corpus_over_every_route_and_topic(demo: Any, stack: Any, unlimited: None) -> None:
    """Every poison class at every HTTP route (authenticated, signed) and every topic."""
    with triggers_settled(stack):
        _seed_fuzz_user(demo)
    before = _settled(demo)

    client = httpx.Client(base_url=stack.base_url, timeout=120)
    token = _signed_token(FUZZ_USER)
    failures: list[str] = []
    for name, method, path, body, headers in _http_cases():
        headers = {**headers, "Content-Type": "application/json"}
        if name == "credit-api":
            headers["Authorization"] = f"Bearer {token}"
        if name == "stripe-webhook":
            headers.update(_stripe_headers(body))
        if name == "ledger-api":
            headers["Idempotency-Key"] = "poison-" + headers["x-poison"]
        response = client.request(method, f"/{name}{path}", content=body, headers=headers)
        POISON_TRIED[name] = POISON_TRIED.get(name, 0) + 1
        if response.status_code >= 500:
            POISON_5XX[name] = POISON_5XX.get(name, 0) + 1
        kind = headers["x-poison"]
        want = expected_status(name, method, path, body)
        STATUSES[(name, want)] = STATUSES.get((name, want), 0) + 1
        if response.status_code != want:
            failures.append(
                f"{name} {method} {path} {kind}: {response.status_code} (want {want}) "
                f"{response.text[:120]}"
            )
        elif response.status_code >= 400 and "detail" not in response.json():
            failures.append(f"{name} {path} {kind}: no detail")
    for index, spec in enumerate(PUBSUB_SPECS):
        valid = VALID_BODIES.get(spec.name, {})
        bodies = poison_bodies(valid, huge_string_field=next(iter(valid), "date"))
        if isinstance(spec.trigger, Schedule):
            del bodies["empty"]  # an empty message is a scheduler tick: the job runs
        for kind, data in bodies.items():
            response = client.post(
                f"/{spec.name}/",
                content=_push(spec, data, index),
                headers={"Content-Type": "application/json"},
            )
            POISON_TRIED[spec.name] = POISON_TRIED.get(spec.name, 0) + 1
            if response.status_code >= 500:
                POISON_5XX[spec.name] = POISON_5XX.get(spec.name, 0) + 1
            if response.status_code != 200:
                failures.append(f"{spec.name} {kind}: {response.status_code} (want 200, acked)")
    assert not failures, "\n".join(failures[:40])
    assert _snapshot(demo) == before
    assert set(POISON_TRIED) == {s.name for s in HTTP_SPECS + PUBSUB_SPECS}
    print(
        f"\npoison inputs tried: {sum(POISON_TRIED.values())} over {len(POISON_TRIED)} "
        f"targets, 5xx: {sum(POISON_5XX.values())}, writes outside rate_limits/: 0; "
        f"expected statuses met: {dict(sorted(STATUSES.items()))}"
    )
