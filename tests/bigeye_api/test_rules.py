"""Pure rules of the credit API (no emulator): pricing, bodies, tokens, config, views."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from devstack.bigeye_client import reserve_body
from shared.bigeye.appsettings import AppSettings
from shared.bigeye.auth import issue_token, verify_token
from shared.bigeye.configcrypt import decrypt_config, encrypt_config
from shared.bigeye.history import display_date
from shared.bigeye.jobs import actual_usage, reserved_credits
from shared.bigeye.models import FinalizeRequest, Mode, ReserveRequest, TopupRequest
from shared.bigeye.promotions import client_view, parse_promotion, visible_in_client
from shared.entry import parse_model
from shared.errors import InvalidInput, MethodNotAllowed, NotFound, Unauthenticated
from shared.settings import override_settings

NOW = datetime(2026, 2, 8, 10, 0, tzinfo=UTC)


def _job(photos: int, videos: int, photo_rate: int, video_rate: int) -> dict:
    return {
        "photo_count": photos,
        "video_count": videos,
        "photo_rate": photo_rate,
        "video_rate": video_rate,
        "reserved_credits": reserved_credits(photos, videos, photo_rate, video_rate),
    }


def test_seed_pricing() -> None:
    job = _job(5, 2, 3, 3)
    assert job["reserved_credits"] == 21
    used = actual_usage(job, success=5, photos=4, videos=3)
    assert (used, job["reserved_credits"] - used) == (15, 6)


def test_successes_split_by_type_when_the_client_says_so() -> None:
    job = _job(5, 2, 2, 5)
    assert actual_usage(job, success=4, photos=3, videos=1) == 11
    assert actual_usage(job, success=2, photos=0, videos=2) == 10


def test_unknown_split_is_priced_in_the_users_favour() -> None:
    assert actual_usage(_job(5, 2, 2, 5), success=6, photos=None, videos=None) == 15
    assert actual_usage(_job(5, 2, 5, 2), success=3, photos=None, videos=None) == 2 * 2 + 5


@given(
    photos=st.integers(0, 50),
    videos=st.integers(0, 50),
    pr=st.integers(1, 9),
    vr=st.integers(1, 9),
    data=st.data(),
)
def test_usage_never_exceeds_the_reservation(photos, videos, pr, vr, data) -> None:
    job = _job(photos, videos, pr, vr)
    success = data.draw(st.integers(0, photos + videos))
    p = data.draw(st.none() | st.integers(0, 60))
    v = data.draw(st.none() | st.integers(0, 60))
    used = actual_usage(job, success=success, photos=p, videos=v)
    assert 0 <= used <= job["reserved_credits"]
    if success == photos + videos:
        assert used == job["reserved_credits"]
    if success == 0:
        assert used == 0


def test_request_bodies_are_strict() -> None:
    body = reserve_body()
    assert parse_model(ReserveRequest, body).mode is Mode.ISTOCK
    for bad in (
        {**body, "fileCount": 7},
        {**body, "file_count": "7"},
        {**body, "mode": "ISTOCK"},
        {**body, "file_count": 6},
        {**body, "photo_count": True},
    ):
        with pytest.raises(InvalidInput):
            parse_model(ReserveRequest, bad)
    token = "550e8400-e29b-41d4-a716-446655440000"
    assert (
        parse_model(
            FinalizeRequest, {"job_token": token.upper(), "success": 5, "failed": 2}
        ).job_token
        == token
    )
    assert (
        str(
            parse_model(
                TopupRequest, {"slip": "data:image/png;base64,QUJDREVGR0g=", "amount": 500.5}
            ).amount
        )
        == "500.5"
    )


def test_tokens_expire_on_the_given_clock() -> None:
    with override_settings(jwt_ttl_s=60):
        token = issue_token("u1", "hw1", NOW)
        assert verify_token(token, NOW + timedelta(seconds=59))["sub"] == "u1"
        with pytest.raises(Unauthenticated, match="expired"):
            verify_token(token, NOW + timedelta(seconds=60))
    with override_settings(jwt_secret=SecretStr("x" * 40)), pytest.raises(Unauthenticated):
        verify_token(token, NOW)


def test_config_round_trip_is_bound_to_its_job() -> None:
    sealed = encrypt_config({"prompt": "p"}, "job-1")
    assert decrypt_config(sealed, "job-1") == {"prompt": "p"}
    assert sealed != encrypt_config({"prompt": "p"}, "job-1")  # fresh nonce each time
    with pytest.raises(InvalidTag):
        decrypt_config(sealed, "job-2")
    with (
        override_settings(config_encryption_key=SecretStr("another-key")),
        pytest.raises(InvalidTag),
    ):
        decrypt_config(sealed, "job-1")


def test_versions_compare_numerically() -> None:
    settings = AppSettings({"app_latest_version": "2.0.10", "force_update_below": "1.10"})
    assert settings.update_available("2.0.9") and not settings.update_available("2.0.10")
    assert settings.must_update("1.9.9") and not settings.must_update("1.10.0")
    assert not AppSettings({"force_update_below": None}).must_update("0.0.1")


def test_promotion_window_and_view() -> None:
    promo = {
        "status": "ACTIVE",
        "name": "n",
        "type": "FLAT_BONUS",
        "code": "SECRET",
        "conditions": {
            "start_date": NOW - timedelta(1),
            "end_date": NOW + timedelta(1),
            "min_topup_baht": None,
        },
        "reward": {"type": "BONUS_CREDITS", "bonus_credits": 100, "tiers": None},
        "display": {"show_in_client": True},
    }
    parsed = parse_promotion("p1", promo)
    assert visible_in_client(parsed, NOW)
    assert not visible_in_client(parse_promotion("p1", {**promo, "status": "PAUSED"}), NOW)
    assert not visible_in_client(parsed, NOW + timedelta(2))
    view = client_view(parsed)
    assert "code" not in view and view["reward"] == {"type": "BONUS_CREDITS", "bonus_credits": 100}


def test_history_dates_use_the_display_time_zone() -> None:
    assert display_date(NOW) == "2026-02-08 17:00"
    with override_settings(display_timezone="UTC"):
        assert display_date(NOW) == "2026-02-08 10:00"


def _router():
    path = Path(__file__).resolve().parents[2] / "functions" / "credit_api.py"
    spec = importlib.util.spec_from_file_location("credit_api_router", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_route_table() -> None:
    router = _router()
    assert (
        router.route("POST", "/api/v1/job/reserve/")
        is router.ROUTES[("POST", "/api/v1/job/reserve")]
    )
    with pytest.raises(MethodNotAllowed) as exc:
        router.route("PUT", "/api/v1/credit/balance")
    assert exc.value.context["allow"] == "GET"
    with pytest.raises(NotFound):
        router.route("GET", "/api/v2/credit/balance")
