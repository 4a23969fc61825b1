"""ledger-api request bodies (the OpenAPI document is generated from these models).

Bodies are strict: unknown keys are refused, numbers must be JSON integers (no strings,
no booleans, no fractions) and every string is bounded, so a typo never becomes a silent
default.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

MAX_CREDITS = 1_000_000_000
HOLD_TTL_S_MIN = 60
HOLD_TTL_S_MAX = 7 * 24 * 3600
HOLD_TTL_S_DEFAULT = 2 * 3600

_ID_RE = re.compile(r"^[A-Za-z0-9_.:@+=-]{1,200}$")

Credits = Annotated[StrictInt, Field(gt=0, le=MAX_CREDITS)]
Text = Annotated[StrictStr, Field(min_length=1, max_length=500)]
Ref = Annotated[
    StrictStr,
    Field(
        min_length=1,
        max_length=200,
        pattern=_ID_RE.pattern,
        description="An id: letters, digits and _ . : @ + = -, at most 200 characters",
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChargeRequest(_Body):
    """Take credits from an account (402 when the balance is short)."""

    amount: Credits = Field(description="Credits to take")
    description: Text | None = Field(default=None, description="Shown in the history")
    job_id: Ref | None = Field(default=None, description="The job this charge pays for")
    reference_id: Ref | None = Field(default=None, description="The caller's own reference")
    allow_partial: StrictBool = Field(
        default=False,
        description="Take what is there when short (the rest is reported as shortfall) "
        "instead of answering 402",
    )


class GrantRequest(_Body):
    """Give credits to an account, as one of the profile's credit types."""

    amount: Credits = Field(description="Credits to give")
    type: StrictStr = Field(
        max_length=40,
        description="The profile's credit type: kitesforu/kaiwa PURCHASE or "
        "SUBSCRIPTION_GRANT; bigeye TOPUP or BONUS",
    )
    description: Text | None = None
    job_id: Ref | None = None
    reference_id: Ref | None = None


class AdjustmentRequest(_Body):
    """An operator's correction of either sign; never below zero."""

    amount: Annotated[StrictInt, Field(ge=-MAX_CREDITS, le=MAX_CREDITS)] = Field(
        description="Signed credits, not zero"
    )
    actor: Text = Field(description="Who made the correction")
    reason: Text = Field(description="Why")

    @field_validator("amount")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("amount must not be zero")
        return value


class RefundRequest(_Body):
    """Refund (part of) an earlier transaction, linked to it; never more than it in total."""

    original_transaction_id: Ref
    amount: Credits | None = Field(default=None, description="Default: all that remains")
    reason: Text
    job_id: Ref | None = None


class HoldRequest(_Body):
    """Reserve credits until settled, released or expired."""

    hold_id: Ref = Field(description="The caller's id of this hold (for example the job id)")
    user_id: Ref
    amount: Credits
    ttl_s: Annotated[StrictInt, Field(ge=HOLD_TTL_S_MIN, le=HOLD_TTL_S_MAX)] = Field(
        default=HOLD_TTL_S_DEFAULT,
        description="Seconds until the hold expires and all of it comes back",
    )
    description: Text | None = None
    job_id: Ref | None = Field(default=None, description="Default: hold_id")


class SettleRequest(_Body):
    """Close a hold having used part (or all) of it; the rest comes back."""

    used: Annotated[StrictInt, Field(ge=0, le=MAX_CREDITS)]
    description: Text | None = None


class ReleaseRequest(_Body):
    """Close a hold with nothing used; all of it comes back."""

    reason: Text


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    ChargeRequest,
    GrantRequest,
    AdjustmentRequest,
    RefundRequest,
    HoldRequest,
    SettleRequest,
    ReleaseRequest,
)
