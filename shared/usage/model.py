"""The ``usage-events`` message (docs/contract.md, message shapes) and the usage-limits request."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from shared import jsonsafe
from shared.clock import parse_instant
from shared.errors import InvalidInput

_ID_RE = re.compile(r"^[^/\x00]{1,500}$")
MAX_UNITS = Decimal(1_000_000_000)
MAX_UNIT_DECIMALS = 9
MAX_COUNT = 1_000_000_000


def _check_id(value: str, name: str) -> str:
    text = value.strip()
    if not text or not _ID_RE.match(text) or text in {".", ".."} or text.startswith("__"):
        raise ValueError(f"{name} must be a non-empty id without '/'")
    return text


def exact_decimal(value: Any, name: str) -> Decimal:
    """A JSON number as an exact Decimal (strings, booleans and non-finite values refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"{name} must be a number")
    try:
        # A float's shortest repr is the decimal the sender wrote (0.1 -> "0.1").
        number = value if isinstance(value, Decimal) else Decimal(repr(value))
    except InvalidOperation:
        raise ValueError(f"{name} must be a number") from None
    if not number.is_finite():
        raise ValueError(f"{name} must be a finite number")
    return number


class RequestMeta(BaseModel):
    """Where and how the generation ran (copied onto the usage log)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    country_code: StrictStr | None = Field(default=None, max_length=8)
    device_type: StrictStr | None = Field(default=None, max_length=32)
    generation_time_ms: StrictInt | None = Field(default=None, ge=0, le=86_400_000)


class UsageEvent(BaseModel):
    """One AI generation to meter; ``request_id`` is its idempotency key."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    request_id: StrictStr
    user_id: StrictStr
    engine_id: StrictStr
    usage_units: Decimal
    credits_used: StrictInt = Field(default=0, ge=0, le=MAX_COUNT)
    tokens: StrictInt = Field(default=0, ge=0, le=MAX_COUNT)
    subscription_plan: StrictStr | None = Field(default=None, max_length=64)
    created_at: datetime | None = None
    conversation_seconds: StrictInt | None = Field(default=None, ge=0, le=86_400)
    # The podcast/course job this use is charged to: recorded on the DEDUCTION, so the
    # failed-job refund finds it (docs/usage.md).
    job_id: StrictStr | None = Field(default=None, max_length=500)
    # Kaiwa extensions (optional, documented in docs/usage.md).
    conversation_id: StrictStr | None = Field(default=None, max_length=500)
    conversation_mode: Literal["traditional", "realtime"] | None = None
    request_meta: RequestMeta = Field(default_factory=RequestMeta)

    @field_validator("request_id", "user_id", "engine_id")
    @classmethod
    def _ids(cls, value: str, info: Any) -> str:
        return _check_id(value, info.field_name)

    @field_validator("conversation_id", "job_id")
    @classmethod
    def _optional_ids(cls, value: str | None, info: Any) -> str | None:
        return None if value is None else _check_id(value, info.field_name)

    @field_validator("subscription_plan")
    @classmethod
    def _plan(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _check_id(value, "subscription_plan").lower()

    @field_validator("usage_units", mode="before")
    @classmethod
    def _units(cls, value: Any) -> Decimal:
        units = exact_decimal(value, "usage_units")
        if units <= 0:
            raise ValueError("usage_units must be greater than zero")
        if units > MAX_UNITS:
            raise ValueError(f"usage_units must not exceed {MAX_UNITS}")
        exponent = units.normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > MAX_UNIT_DECIMALS:
            raise ValueError(f"usage_units has more than {MAX_UNIT_DECIMALS} decimals")
        return units

    @field_validator("created_at", mode="before")
    @classmethod
    def _created_at(cls, value: Any) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("created_at must be an RFC 3339 string")
        try:
            return parse_instant(value)
        except ValueError:
            raise ValueError("created_at must be an RFC 3339 string") from None


def decode_usage_event(data: bytes) -> dict[str, Any]:
    """The message data as a JSON object, numbers with a fraction read as exact Decimals."""
    body = jsonsafe.loads(data, what="the message data", parse_float=Decimal)
    if not isinstance(body, dict):
        raise InvalidInput("message data must be a JSON object")
    return body


class LimitsCheck(BaseModel):
    """``POST /usage-limits/check``: may ``user_id`` spend ``tokens`` more today?"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: StrictStr
    tokens: StrictInt = Field(ge=0, le=MAX_COUNT)
    conversation_seconds: StrictInt = Field(default=0, ge=0, le=86_400)
    # Kaiwa: a realtime conversation also needs the tier's realtime access and sessions.
    conversation_mode: Literal["traditional", "realtime"] | None = None

    @field_validator("user_id")
    @classmethod
    def _user(cls, value: str) -> str:
        return _check_id(value, "user_id")
