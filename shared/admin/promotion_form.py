"""A ``promotions`` document from an operator's answers (``credits-admin promotions create``
and the console's form build it here, then ``operations.create_promotion`` checks and
writes it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.errors import InvalidInput

PROMO_TYPES = (
    "RATE_BOOST",
    "TIERED_BONUS",
    "FLAT_BONUS",
    "WELCOME_BONUS",
    "FIRST_TOPUP",
    "USAGE_REWARD",
)
CREATE_STATUSES = ("DRAFT", "ACTIVE")


def parse_tiers(text: str | None) -> list[dict[str, Any]] | None:
    """``100-299:400,300-499:1300,500-:2200`` -> ``reward.tiers``."""
    if not text or not text.strip():
        return None
    tiers = []
    for part in text.split(","):
        try:
            span, credits = part.strip().split(":")
            low, high = span.split("-")
            tiers.append(
                {
                    "min_baht": int(low),
                    "max_baht": int(high) if high.strip() else None,
                    "credits": int(credits),
                }
            )
        except ValueError:
            raise InvalidInput(f"tier {part.strip()!r} is not MIN-MAX:CREDITS") from None
    return tiers


def promotion_document(
    *,
    name: str,
    type_: str,
    status: str = "DRAFT",
    priority: int = 0,
    start: datetime | None = None,
    end: datetime | None = None,
    code: str | None = None,
    min_baht: int | None = None,
    max_baht: int | None = None,
    max_redemptions: int | None = None,
    max_per_user: int | None = None,
    new_users_only: bool = False,
    first_topup_only: bool = False,
    bonus_credits: int | None = None,
    bonus_percentage: float | None = None,
    override_rate: float | None = None,
    tiers: list[dict[str, Any]] | None = None,
    banner_text: str = "",
    banner_color: str = "#FF4560",
) -> dict[str, Any]:
    """The document, its ``reward.type`` chosen by which reward is given (tiers, then a rate
    override, then a percentage, then bonus credits)."""
    if type_ not in PROMO_TYPES:
        raise InvalidInput(f"type must be one of {', '.join(PROMO_TYPES)}")
    if status not in CREATE_STATUSES:
        raise InvalidInput("a new promotion is DRAFT or ACTIVE")
    if tiers:
        reward_type = "TIERED_BONUS"
    elif override_rate is not None:
        reward_type = "RATE_OVERRIDE"
    elif bonus_percentage is not None:
        reward_type = "PERCENTAGE_BONUS"
    elif bonus_credits is not None:
        reward_type = "BONUS_CREDITS"
    else:
        raise InvalidInput(
            "give a reward: bonus credits, a bonus percentage, an override rate or tiers"
        )
    return {
        "name": name,
        "code": code,
        "type": type_,
        "status": status,
        "priority": priority,
        "conditions": {
            "start_date": start,
            "end_date": end,
            "min_topup_baht": min_baht,
            "max_topup_baht": max_baht,
            "max_redemptions": max_redemptions,
            "max_per_user": max_per_user,
            "new_users_only": new_users_only,
            "first_topup_only": first_topup_only,
            "require_code": bool(code),
        },
        "reward": {
            "type": reward_type,
            "bonus_credits": bonus_credits,
            "override_rate": override_rate,
            "bonus_percentage": bonus_percentage,
            "tiers": tiers,
        },
        "display": {
            "banner_text": banner_text,
            "banner_color": banner_color,
            "show_in_client": True,
            "show_in_topup": True,
        },
    }
