"""Finding 5, what an outsider sees of a login: a right password on another device, an
unknown address and a locked account look alike; parallel guesses are counted exactly; the
per-IP limit takes the configured proxy hop (docs/security.md, "Logins")."""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest

from shared.bigeye.auth import email_key
from shared.clock import FixedClock, SystemClock, set_clock
from shared.settings import get_settings, override_settings
from tests.bigeye_api.client import api_url

PASSWORD = "correct-horse-9"
DEVICE = "hw-owner"
#: Headers that differ between any two answers (time, connection), not between outcomes.
_VOLATILE = {"date", "server", "connection", "keep-alive"}


@pytest.fixture
def frozen(money: Any) -> FixedClock:
    """One rate-limit window and one lock period for the whole test."""
    clock = FixedClock(SystemClock().now().replace(second=10, microsecond=0))
    set_clock(clock)
    return clock


def _register(base_url: str, email: str, status: str | None = None, db: Any = None) -> str:
    answer = httpx.post(
        api_url(base_url, "auth/register"),
        json={
            "email": email,
            "password": PASSWORD,
            "full_name": "Owner",
            "phone": "0800000000",
            "hardware_id": DEVICE,
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    user_id = str(answer.json()["user_id"])
    if status is not None:
        db.collection("users").document(user_id).update({"status": status})
    return user_id


def _login(
    base_url: str, email: str, password: str, device: str = DEVICE, ip: str = "198.51.100.9"
) -> httpx.Response:
    return httpx.post(
        api_url(base_url, "auth/login"),
        json={"email": email, "password": password, "hardware_id": device},
        headers={"X-Forwarded-For": ip},
        timeout=60,
    )


def _seen(response: httpx.Response) -> tuple[int, str, list[tuple[str, str]]]:
    """What an outsider can compare: status, body, headers (timing is not compared)."""
    headers = sorted((k.lower(), v) for k, v in response.headers.items())
    return (
        response.status_code,
        response.text,
        [(k, v) for k, v in headers if k not in _VOLATILE],
    )


def _events(db: Any, user_id: str) -> Counter[str]:
    return Counter(
        a.to_dict()["event_type"]
        for a in db.collection("audit_logs").where("user_id", "==", user_id).stream()
    )


def test_right_password_on_another_device_looks_like_a_wrong_password(
    stack: Any, money: Any, fast_accounts: None, frozen: FixedClock
) -> None:
    """Decision: 401 ``Invalid email or password`` for both (the seed's 403 is "account
    suspended"); the device mismatch is audited and counts towards the lock."""
    user_id = _register(stack.base_url, "owner@example.com")
    wrong = _login(stack.base_url, "owner@example.com", "guess-1", device="hw-thief")
    stolen = _login(stack.base_url, "owner@example.com", PASSWORD, device="hw-thief")
    unknown = _login(stack.base_url, "nobody@example.com", PASSWORD, device="hw-thief")
    assert _seen(wrong) == _seen(stolen) == _seen(unknown)
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "Invalid email or password"}
    events = _events(money, user_id)
    assert events["LOGIN_FAILED_WRONG_PASSWORD"] == 1
    assert events["LOGIN_FAILED_DEVICE_MISMATCH"] == 1
    # The stolen password keeps getting the wrong password's answers, lock included.
    later = [_login(stack.base_url, "owner@example.com", PASSWORD, "hw-thief") for _ in range(4)]
    assert [r.status_code for r in later] == [401, 401, 401, 429]
    assert _login(stack.base_url, "owner@example.com", PASSWORD).status_code == 429


def test_a_suspended_accounts_password_is_not_confirmed_to_another_device(
    stack: Any, money: Any, fast_accounts: None, frozen: FixedClock
) -> None:
    _register(stack.base_url, "held@example.com", status="suspended", db=money)
    other = _login(stack.base_url, "held@example.com", PASSWORD, device="hw-thief")
    assert other.status_code == 401, other.text
    own = _login(stack.base_url, "held@example.com", PASSWORD)
    assert own.status_code == 403 and own.json() == {"detail": "Account suspended"}


def test_the_lock_does_not_reveal_that_an_account_exists(
    stack: Any, money: Any, fast_accounts: None, frozen: FixedClock
) -> None:
    """Decision: unknown addresses are throttled exactly like accounts."""
    _register(stack.base_url, "known@example.com")
    known = [
        _login(stack.base_url, "known@example.com", f"g{n}", ip=f"192.0.2.{n}") for n in range(7)
    ]
    unknown = [
        _login(stack.base_url, "unknown@example.com", f"g{n}", ip=f"192.0.2.{n}") for n in range(7)
    ]
    assert [_seen(r) for r in known] == [_seen(r) for r in unknown]
    assert [r.status_code for r in known] == [401] * 5 + [429] * 2
    assert re.fullmatch(r"Too many failed logins; retry in \d+ s", known[-1].json()["detail"])
    # The right password of the locked account, and any for the locked unknown address.
    assert _seen(_login(stack.base_url, "known@example.com", PASSWORD)) == _seen(
        _login(stack.base_url, "unknown@example.com", PASSWORD)
    )


def _burst(base_url: str, email: str, passwords: list[str]) -> list[httpx.Response]:
    """All logins at once (one thread each, released together)."""
    gate = threading.Barrier(len(passwords))
    answers: list[httpx.Response | None] = [None] * len(passwords)

    def one(n: int) -> None:
        gate.wait()
        answers[n] = _login(base_url, email, passwords[n], ip=f"203.0.113.{n}")

    threads = [threading.Thread(target=one, args=(n,)) for n in range(len(passwords))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def _failures(db: Any, email: str, clock: FixedClock) -> int:
    """The failures the throttle remembers for ``email`` (0 once forgotten)."""
    state = db.collection("login_throttle").document(email_key(email)).get().to_dict() or {}
    expires_at = state.get("expires_at")
    if expires_at is not None and expires_at <= clock.now():
        return 0
    return int(state.get("failures") or 0)


def test_parallel_guesses_are_counted_exactly(
    stack: Any, money: Any, fast_accounts: None, frozen: FixedClock
) -> None:
    """Twenty guesses at once: at most LOGIN_MAX_FAILURES (5) passwords are ever checked."""
    with override_settings(bcrypt_rounds=8):  # a slower hash widens the race
        user_id = _register(stack.base_url, "burst@example.com")
    answers = _burst(stack.base_url, "burst@example.com", [f"guess-{n}" for n in range(20)])
    codes = Counter(r.status_code for r in answers)
    assert set(codes) <= {401, 429}, codes
    assert 1 <= codes[401] <= 5, codes
    assert _events(money, user_id)["LOGIN_FAILED_WRONG_PASSWORD"] == codes[401]
    assert _failures(money, "burst@example.com", frozen) == codes[401]


def test_a_success_resets_only_failures_counted_before_it(
    stack: Any, money: Any, fast_accounts: None, frozen: FixedClock
) -> None:
    """Four failures, then the right password racing 11 guesses: either a guess is checked
    first (the fifth failure locks the account, the right password gets 429) or the success
    comes first and only the guesses checked after it are counted."""
    with override_settings(bcrypt_rounds=8):
        user_id = _register(stack.base_url, "race@example.com")
    for n in range(4):
        assert _login(stack.base_url, "race@example.com", f"early-{n}").status_code == 401
    passwords = [PASSWORD] + [f"guess-{n}" for n in range(11)]
    answers = _burst(stack.base_url, "race@example.com", passwords)
    right, guesses = answers[0], answers[1:]
    wrong = sum(r.status_code == 401 for r in guesses)
    assert {r.status_code for r in guesses} <= {401, 429}
    failures = _failures(money, "race@example.com", frozen)
    if right.status_code == 200:
        assert wrong <= 5 and failures == wrong
    else:
        assert right.status_code == 429, right.text
        assert wrong == 1 and failures == 5
    assert _events(money, user_id)["LOGIN_FAILED_WRONG_PASSWORD"] == 4 + wrong


def test_per_ip_limit_uses_the_configured_proxy_hop(
    stack: Any, money: Any, fast_accounts: None, frozen: FixedClock
) -> None:
    """Behind two proxies (TRUSTED_PROXY_HOPS=2) the client is the second hop from the right:
    forged prefixes and the proxies' own addresses do not make new clients."""
    with override_settings(
        trusted_proxy_hops=2, rate_limit_auth_ip_per_min=3, login_max_failures=1000
    ):
        forged = [
            _login(
                stack.base_url,
                "nobody@example.com",
                "x",
                ip=f"10.9.{n}.1, 172.16.0.{n}, 203.0.113.77, 10.0.0.{n}",
            ).status_code
            for n in range(5)
        ]
        other_client = _login(
            stack.base_url, "nobody@example.com", "x", ip="10.9.0.1, 203.0.113.78, 10.0.0.1"
        )
    assert forged == [401, 401, 401, 429, 429]
    assert other_client.status_code == 401
    # A real spread of clients (a botnet) escapes the per-IP limit, not the account's lock.
    _register(stack.base_url, "spread@example.com")
    with override_settings(trusted_proxy_hops=2, rate_limit_auth_ip_per_min=3):
        spread = [
            _login(
                stack.base_url, "spread@example.com", f"g{n}", ip=f"198.18.0.{n}, 10.0.0.1"
            ).status_code
            for n in range(8)
        ]
        right = _login(stack.base_url, "spread@example.com", PASSWORD, ip="198.18.1.1, 10.0.0.1")
    assert spread == [401] * 5 + [429] * 3
    assert right.status_code == 429
    assert right.json()["detail"].startswith("Too many failed logins")


def test_a_check_that_never_finished_frees_the_address_after_its_lease(
    stack: Any, money: Any, fast_accounts: None, frozen: FixedClock
) -> None:
    """An instance that took the check and crashed: logins are 429 (retry in 1 s) until
    LOGIN_CHECK_LEASE_S has passed, then the right password works and nothing was counted."""
    from shared.bigeye.auth import _begin_check, throttle_ref

    user_id = _register(stack.base_url, "crash@example.com")
    _begin_check(money, throttle_ref(money, "crash@example.com"), user_id, {}, frozen.now())
    busy = _login(stack.base_url, "crash@example.com", PASSWORD)
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "1", busy.text
    frozen.advance(timedelta(seconds=get_settings().login_check_lease_s + 1))
    assert _login(stack.base_url, "crash@example.com", PASSWORD).status_code == 200
    assert _failures(money, "crash@example.com", frozen) == 0
