"""BigEye names (collections, enums as 004 spells them) and the API's request bodies.

Request bodies are strict: unknown keys are refused (a client sending ``promoCode`` or
``fileCount`` gets a 400 naming the key, instead of the key being silently ignored),
numbers must be JSON numbers (no strings, no booleans) and every string is bounded.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any

import idna
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

USERS = "users"
JOBS = "jobs"
TRANSACTIONS = "transactions"
AUDIT_LOGS = "audit_logs"
PROMOTIONS = "promotions"
SYSTEM_CONFIG = "system_config"
APP_SETTINGS_ID = "app_settings"
# Not in the seed: one document per e-mail address (id = sha256 of the lower-cased address)
# so that two registrations of one address cannot both commit (docs/bigeye-api.md).
USER_EMAILS = "user_emails"


class UserStatus(StrEnum):
    """``users.status``."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    BANNED = "banned"


class JobStatus(StrEnum):
    """``jobs.status``."""

    RESERVED = "RESERVED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    REFUNDED = "REFUNDED"
    EXPIRED = "EXPIRED"
    FAILED = "FAILED"


class Mode(StrEnum):
    """``jobs.mode``: the stock site a job keywords for (case as in the seed)."""

    ISTOCK = "iStock"
    ADOBE = "Adobe"
    SHUTTERSTOCK = "Shutterstock"

    @property
    def rate_prefix(self) -> str:
        """The ``credit_rates`` key prefix of this mode (``istock_photo``...)."""
        return {"iStock": "istock", "Adobe": "adobe", "Shutterstock": "shutterstock"}[self.value]


class KeywordStyle(StrEnum):
    """``jobs.keyword_style`` (or null)."""

    HYBRID = "Hybrid"
    SINGLE_WORDS = "Single Words"


class AuditEvent(StrEnum):
    """``audit_logs.event_type`` values the server writes."""

    USER_REGISTER = "USER_REGISTER"
    LOGIN_FAILED_DEVICE_MISMATCH = "LOGIN_FAILED_DEVICE_MISMATCH"
    LOGIN_FAILED_WRONG_PASSWORD = "LOGIN_FAILED_WRONG_PASSWORD"
    LOGIN_FAILED_THROTTLED = "LOGIN_FAILED_THROTTLED"
    TOPUP_SUCCESS = "TOPUP_SUCCESS"
    JOB_RESERVED = "JOB_RESERVED"
    JOB_COMPLETED = "JOB_COMPLETED"
    JOB_EXPIRED_AUTO_REFUND = "JOB_EXPIRED_AUTO_REFUND"
    WELCOME_BONUS_DEVICE_REUSED = "WELCOME_BONUS_DEVICE_REUSED"


class Severity(StrEnum):
    """``audit_logs.severity``."""

    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


# -- request bodies ----------------------------------------------------------------------
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_VERSION_RE = re.compile(r"^\d{1,6}(\.\d{1,6}){0,3}$")
_PROMO_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DATA_URL_RE = re.compile(r"^data:image/[A-Za-z0-9.+-]{1,32};base64,[A-Za-z0-9+/=\s]+$")
_MAX_FILES = 100_000
_MAX_TOPUP_BAHT = Decimal("1000000")

Text = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Count = Annotated[StrictInt, Field(ge=0, le=_MAX_FILES)]


def parse_version(text: str) -> tuple[int, ...]:
    """``"2.0.1"`` -> ``(2, 0, 1)`` (missing parts count as zero when compared)."""
    parts = tuple(int(p) for p in text.split("."))
    return parts + (0,) * (4 - len(parts))


def check_version(value: str) -> str:
    """A dotted numeric version such as ``2.0.1`` (ValueError otherwise)."""
    value = value.strip()
    if not _VERSION_RE.match(value):
        raise ValueError("must be a version such as 2.0.1")
    return value


def check_email(value: str) -> str:
    """A plausible e-mail address in its one canonical form (addresses are unique in it).

    NFKC (full-width letters become plain ones), surrounding white space removed, lower
    case, the domain's trailing dots dropped and the domain in IDNA ASCII form (UTS 46), so
    ``x@example.com.``, ``X@EXAMPLE.com`` and ``x@ＥＸＡＭＰＬＥ.com`` are one account.
    """
    value = unicodedata.normalize("NFKC", value).strip()
    local, at, domain = value.rpartition("@")
    domain = domain.rstrip(".")
    if not at or not local or not domain or len(value) > 254:
        raise ValueError("must be an e-mail address")
    try:
        domain = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise ValueError("must be an e-mail address") from None
    value = f"{local.lower()}@{domain.lower()}"
    if len(value) > 254 or not _EMAIL_RE.match(value):
        raise ValueError("must be an e-mail address")
    return value


def check_password(value: str) -> str:
    """8 to 72 UTF-8 bytes (bcrypt reads at most 72)."""
    size = len(value.encode("utf-8"))
    if size < 8:
        raise ValueError("must be at least 8 characters")
    if size > 72:
        raise ValueError("must be at most 72 bytes")
    return value


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class ClientBody(_Body):
    """A body sent by the desktop client, which may name its version (checked against
    ``force_update_below``)."""

    app_version: StrictStr | None = None

    @field_validator("app_version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        return None if value is None else check_version(value)


class RegisterRequest(ClientBody):
    """``POST /api/v1/auth/register`` (docs/bigeye-api.md)."""

    email: StrictStr
    password: StrictStr
    full_name: Text
    phone: Annotated[StrictStr, Field(min_length=3, max_length=32)]
    hardware_id: Text
    os: Annotated[StrictStr, Field(max_length=100)] | None = None

    _email = field_validator("email")(check_email)
    _password = field_validator("password")(check_password)

    @field_validator("full_name", "phone", "hardware_id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class LoginRequest(ClientBody):
    """``POST /api/v1/auth/login`` (docs/bigeye-api.md)."""

    email: StrictStr
    password: Annotated[StrictStr, Field(min_length=1, max_length=1000)]
    hardware_id: Text

    _email = field_validator("email")(check_email)


class CheckUpdateRequest(_Body):
    """``POST /api/v1/system/check-update``: the client's version."""

    version: StrictStr

    _version = field_validator("version")(check_version)


class TopupRequest(_Body):
    """``POST /api/v1/credit/topup``: a slip image data URL, the baht paid, a promo code."""

    slip: Annotated[StrictStr, Field(min_length=16, max_length=8 * 1024 * 1024)]
    amount: Any
    promo_code: StrictStr | None = None

    @field_validator("slip")
    @classmethod
    def _slip(cls, value: str) -> str:
        if not _DATA_URL_RE.match(value):
            raise ValueError("must be a data URL such as data:image/jpeg;base64,...")
        return value

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number of baht")
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise ValueError("must be a number of baht") from None
        if not amount.is_finite() or amount <= 0:
            raise ValueError("must be greater than zero")
        if amount > _MAX_TOPUP_BAHT:
            raise ValueError(f"must not exceed {_MAX_TOPUP_BAHT} baht")
        if amount != amount.quantize(Decimal("0.01")):
            raise ValueError("must have at most two decimals (satang)")
        return amount

    @field_validator("promo_code")
    @classmethod
    def _promo(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not _PROMO_RE.match(value):
            raise ValueError("must be letters, digits, '-' or '_' (at most 64)")
        return value


class ReserveRequest(_Body):
    """``POST /api/v1/job/reserve``."""

    file_count: Count
    photo_count: Count
    video_count: Count
    mode: Mode
    keyword_style: KeywordStyle | None = None
    model: Text
    version: StrictStr

    _version = field_validator("version")(check_version)

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("must be one of iStock, Adobe, Shutterstock")
        return value

    @field_validator("keyword_style", mode="before")
    @classmethod
    def _style(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            raise ValueError("must be Hybrid, Single Words or null")
        return value

    @model_validator(mode="after")
    def _counts(self) -> ReserveRequest:
        if self.photo_count + self.video_count == 0:
            raise ValueError("a job needs at least one photo or video")
        if self.file_count != self.photo_count + self.video_count:
            raise ValueError("file_count must equal photo_count + video_count")
        return self


class FinalizeRequest(_Body):
    """``POST /api/v1/job/finalize``: how the job went."""

    job_token: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    success: Count
    failed: Count
    photos: Count | None = None
    videos: Count | None = None

    @field_validator("job_token")
    @classmethod
    def _token(cls, value: str) -> str:
        import uuid

        try:
            parsed = uuid.UUID(value)
        except ValueError:
            raise ValueError("must be the job_token returned by /job/reserve") from None
        return str(parsed)
