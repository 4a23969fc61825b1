"""BigEye demo configuration (docs/contract.md section 8): app settings and 004's promotion.

- ``system_config/app_settings``: 004's ``credit_rates`` and ``exchange_rate`` 4, version
  2.0.1 (clients below 2.0.0 must update), not in maintenance, three short prompts, a small
  keyword dictionary, the blacklist ``["nike", "adidas", "iphone"]``, concurrency 5 images /
  2 videos and a context-cache threshold of 20 (as in 004's reserve response).
- ``promotions/demo-newyear-tiered``: 004's TIERED_BONUS example, ACTIVE, from 30 days
  before to 90 days after the time of seeding.

Top-up slips must be paid to the demo receiver account, KBank (``01004``) ``1234567890``
("BIGEYE PRO CO LTD"; see ``SLIP2GO_RECEIVER_ACCOUNTS`` in docs/bigeye-topups.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.clock import ensure_utc

APP_SETTINGS = ("system_config", "app_settings")
DEMO_PROMOTION_ID = "demo-newyear-tiered"

DICTIONARY_WORDS = (
    "abstract",
    "architecture",
    "background",
    "beach",
    "business",
    "city",
    "color image",
    "landscape",
    "nature",
    "no people",
    "outdoors",
    "photography",
    "sky",
    "sunset",
    "travel",
    "tree",
    "water",
)


#: 004's ``credit_rates``: credits per file by stock site and media.
CREDIT_RATES: dict[str, int] = {
    "istock_photo": 3,
    "istock_video": 3,
    "adobe_photo": 2,
    "adobe_video": 2,
    "shutterstock_photo": 2,
    "shutterstock_video": 2,
}


def with_changes(doc: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``changes``: a field by name, a field of a map as ``map__field``."""
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            doc[section] = {**doc[section], name: value}
        else:
            doc[key] = value
    return doc


def app_settings(now: datetime, **changes: Any) -> dict[str, Any]:
    """The demo ``system_config/app_settings`` document (every field of 004), with
    ``changes`` (``with_changes``)."""
    doc: dict[str, Any] = {
        "prompts": {
            "istock": "Describe the image for iStock: a title, a description and up to 50 "
            "keywords from the dictionary, most relevant first.",
            "hybrid": "Write keywords for the image mixing single words and short phrases, "
            "most relevant first.",
            "single": "Write single-word keywords for the image, most relevant first.",
        },
        "dictionary": "\n".join(DICTIONARY_WORDS),
        "dictionary_word_count": len(DICTIONARY_WORDS),
        "dictionary_version": "1.0.0",
        "dictionary_updated_at": now,
        "blacklist": ["nike", "adidas", "iphone"],
        "credit_rates": dict(CREDIT_RATES),
        "exchange_rate": 4,
        "app_latest_version": "2.0.1",
        "app_download_url": "https://example.com/bigeye-pro/download",
        "app_update_notes": "Bug fixes and improvements",
        "force_update_below": "2.0.0",
        "maintenance_mode": False,
        "maintenance_message": "",
        "context_cache_threshold": 20,
        "max_concurrent_images": 5,
        "max_concurrent_videos": 2,
        "prompts_version": "1.0.0",
        "prompts_updated_at": now,
        "updated_at": now,
    }
    return with_changes(doc, changes)


def tiered_promotion(now: datetime, **changes: Any) -> dict[str, Any]:
    """004's TIERED_BONUS example with a date window around ``now``, with ``changes``
    (``with_changes``: ``status="PAUSED"``, ``conditions__end_date=...``)."""
    doc: dict[str, Any] = {
        "name": "โปรปีใหม่",
        "code": None,
        "type": "TIERED_BONUS",
        "status": "ACTIVE",
        "priority": 10,
        "conditions": {
            "start_date": now - timedelta(days=30),
            "end_date": now + timedelta(days=90),
            "min_topup_baht": 100,
            "max_topup_baht": None,
            "max_redemptions": None,
            "max_per_user": None,
            "new_users_only": False,
            "first_topup_only": False,
            "require_code": False,
        },
        "reward": {
            "type": "TIERED_BONUS",
            "bonus_credits": None,
            "override_rate": None,
            "bonus_percentage": None,
            "tiers": [
                {"min_baht": 100, "max_baht": 299, "credits": 400},
                {"min_baht": 300, "max_baht": 499, "credits": 1300},
                {"min_baht": 500, "max_baht": None, "credits": 2200},
            ],
        },
        "display": {
            "banner_text": "🎄 เติม 500+ รับ 2,200 cr!",
            "banner_color": "#FF4560",
            "show_in_client": True,
            "show_in_topup": True,
        },
        "stats": {
            "total_redemptions": 0,
            "total_bonus_credits": 0,
            "total_baht_collected": 0,
            "unique_users": 0,
        },
        "created_at": now,
        "created_by": "demo-seed",
        "updated_at": now,
    }
    return with_changes(doc, changes)


def seed(db: Any, now: datetime) -> None:
    """Write the BigEye demo documents (fixed ids: re-seeding replaces them)."""
    now = ensure_utc(now)
    db.collection(APP_SETTINGS[0]).document(APP_SETTINGS[1]).set(app_settings(now))
    db.collection("promotions").document(DEMO_PROMOTION_ID).set(tiered_promotion(now))
