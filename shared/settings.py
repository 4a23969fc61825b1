"""Frozen settings read once from environment variables.

Secrets are read when a function runs (first call of ``get_settings``), never at import,
and are never logged: ``SecretStr`` hides them in ``repr``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ProfileName = Literal["kitesforu", "bigeye", "kaiwa"]

# Documented demo defaults, used only when the variable is unset (see docs/configuration.md).
DEMO_STRIPE_WEBHOOK_SECRET = "whsec_demo_local_only"
DEMO_JWT_SECRET = "demo-jwt-secret-local-only-change-me-0123456789"
DEMO_SLIP2GO_API_SECRET = "demo-slip2go-secret"
DEMO_CONFIG_ENCRYPTION_KEY = "demo-config-encryption-key-local-only-0123456789"
DEMO_CONSOLE_SESSION_SECRET = "demo-console-session-secret-local-only-0123456789"
# Outside the emulators every one of these is refused (shared/secretcheck.py).


class Settings(BaseSettings):
    """Every tunable of the suite; one frozen instance per process (or per test override)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    google_cloud_project: str = Field(default="demo-credits")
    schema_profile: ProfileName = Field(default="kitesforu")
    # Only the local stack (``make run``, the tests) serves every app from one process; a
    # deploy serves exactly ``schema_profile`` (one deploy = one app).
    serve_all_profiles: bool = False
    log_level: str = Field(default="INFO")

    # Stripe: several secrets (comma separated) are accepted during a rotation.
    stripe_webhook_secret: SecretStr = Field(default=SecretStr(DEMO_STRIPE_WEBHOOK_SECRET))
    stripe_signature_tolerance_s: int = 300
    stripe_max_body_bytes: int = 256 * 1024

    # BigEye credit API.
    jwt_secret: SecretStr = Field(default=SecretStr(DEMO_JWT_SECRET))
    jwt_ttl_s: int = 7 * 24 * 3600
    display_timezone: str = "Asia/Bangkok"
    job_reserve_ttl_s: int = 2 * 3600
    config_encryption_key: SecretStr = Field(default=SecretStr(DEMO_CONFIG_ENCRYPTION_KEY))
    bcrypt_rounds: int = 12
    # Fixed one-minute windows, counted in Firestore (docs/bigeye-api.md, "Rate limits").
    rate_limit_ip_per_min: int = 300
    rate_limit_auth_ip_per_min: int = 30
    rate_limit_user_per_min: int = 120
    rate_limit_topup_user_per_min: int = 10
    # The welcome bonus is paid at most once per device (hardware_id) as well as per user;
    # False pays it once per user only (docs/bigeye-topups.md, "Welcome bonus").
    welcome_bonus_once_per_device: bool = True
    # Per-account failed-login throttle (docs/bigeye-api.md, "Failed logins"): after this
    # many wrong passwords the account is locked for base * 2^(n - max) seconds, capped.
    login_max_failures: int = 5
    # Proxies that append to X-Forwarded-For in front of the function (Cloud Run / Cloud
    # Functions: 1, Google's front end); the client is the hop that many from the right.
    # 0 = use the socket peer only.
    trusted_proxy_hops: int = 1
    login_lockout_base_s: int = 30
    login_lockout_max_s: int = 3600
    # One password check per address in flight at a time; a check that never finished (a
    # crashed instance) frees the address after this many seconds.
    login_check_lease_s: int = 30
    # Failures of an address are forgotten this long after the last one (or after its
    # lock ends); login_throttle documents then expire (TTL policy on expires_at).
    login_failure_memory_s: int = 86400

    # Slip2Go.
    slip2go_base_url: str = "https://connect.slip2go.com/api"
    slip2go_api_secret: SecretStr = Field(default=SecretStr(DEMO_SLIP2GO_API_SECRET))
    slip2go_timeout_s: float = 15.0
    # Accounts a top-up must be paid to: a JSON list of Slip2Go checkReceiver entries
    # ({"accountType", "accountNumber", "accountNameTH", "accountNameEN"}); demo default in
    # docs/bigeye-topups.md.
    slip2go_receiver_accounts: str = (
        '[{"accountType": "01004", "accountNumber": "1234567890",'
        ' "accountNameTH": "บจก. บิ๊กอาย โปร", "accountNameEN": "BIGEYE PRO CO LTD"}]'
    )

    # Slip images (Cloud Storage): bucket name; empty = "<project>-bigeye-slips".
    slip_bucket: str = ""
    # PENDING slips younger than this are left to the request that is still verifying them.
    slip_reverify_after_s: int = 120
    slip_reverify_batch: int = 50

    # Daily token limit applied by usage-limits to a loss user whose action_taken is
    # "rate_limited" (the lower of this and the user's own limit), until the action is cleared.
    loss_rate_limited_daily_tokens: int = 10_000

    # Usage metering.
    token_day_timezone: str = "UTC"

    # Ledger.
    ledger_max_amount: int = 1_000_000_000
    ledger_max_attempts: int = 60
    # Group commit (docs/ledger.md): concurrent postings of one account in one process share
    # one commit; a leader waits up to the window for callers still arriving, and carries
    # at most max_batch postings per commit; past max_queue postings of one account waiting
    # in the process, a caller gets a retryable 503 at once.
    ledger_group_commit: bool = True
    ledger_group_window_ms: float = 10.0
    ledger_group_max_batch: int = 100
    ledger_group_max_queue: int = 500

    # Model-provider operations (docs/providers.md): JSON overrides of the thresholds, e.g.
    # PROVIDER_THRESHOLDS='{"failure_threshold": 3}'; pipeline_config flags' defaults.
    provider_thresholds: dict[str, float] = Field(default_factory=dict)
    # Events of one provider queued in a process commit together; the leader of a group
    # waits this long for more first (the deploy sets 1000 for provider-events, whose one
    # instance then writes each provider's documents at most once a second).
    provider_group_linger_ms: int = Field(default=0, ge=0, le=5000)
    pipeline_config_document: str = "global"
    pipeline_flags: dict[str, bool] = Field(default_factory=dict)

    # Operator console (docs/console.md): the key signing its session cookies, how long a
    # session lasts, and where Firebase Auth's ID-token signing certificates are published.
    console_session_secret: SecretStr = Field(default=SecretStr(DEMO_CONSOLE_SESSION_SECRET))
    console_session_ttl_s: int = 8 * 3600
    console_firebase_certs_url: str = (
        "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
    )

    def served_profiles(self) -> frozenset[str]:
        """The apps whose data this process may act on in sweeps (holds, jobs)."""
        if self.serve_all_profiles:
            return frozenset({"kitesforu", "bigeye", "kaiwa"})
        return frozenset({self.schema_profile})

    def slip_bucket_name(self) -> str:
        """The bucket of slip images (``SLIP_BUCKET``, else ``<project>-bigeye-slips``)."""
        return self.slip_bucket or f"{self.google_cloud_project}-bigeye-slips"

    def stripe_secrets(self) -> list[str]:
        """All webhook secrets accepted now (rotation: old and new, comma separated)."""
        raw = self.stripe_webhook_secret.get_secret_value()
        return [s.strip() for s in raw.split(",") if s.strip()]


_lock = threading.Lock()
_settings: Settings | None = None


def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    global _settings
    if _settings is None:
        with _lock:
            if _settings is None:
                _settings = Settings()
    return _settings


def reset_settings() -> None:
    """Forget the cached settings so the next call re-reads the environment."""
    global _settings
    with _lock:
        _settings = None


@contextlib.contextmanager
def override_settings(**changes: Any) -> Iterator[Settings]:
    """Run a block with some settings changed (tests and the local stack's profiles)."""
    global _settings
    previous = get_settings()
    updated = previous.model_copy(update=changes)
    with _lock:
        _settings = updated
    try:
        yield updated
    finally:
        with _lock:
            _settings = previous
