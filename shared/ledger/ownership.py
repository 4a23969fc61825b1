"""Which app (schema profile) a ``users`` document belongs to, read from its own fields.

All apps may share one ``users`` collection on the emulators (and a careless deploy could
point two apps at one database), but their ledgers spell the balance differently: BigEye
keeps ``credits``, KitesForU and Kaiwa ``credits_balance``. Reading a BigEye user through
KitesForU's fields shows balance 0 and no transactions; writing through them creates a
second, invisible balance. Tools that take a user id therefore check the owner first.

The marks are fields only one seed defines (004 for BigEye, 000 for KitesForU, 001's
camelCase profile fields for Kaiwa). A document with none of them (a user the app created
with nothing but a balance) is not claimed by anyone and is accepted by every profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.cloud import firestore

from shared.errors import NotFound
from shared.ledger.profiles import PROFILES, LedgerProfile

_MARKS: dict[str, frozenset[str]] = {
    "bigeye": frozenset(
        {"password_hash", "hardware_id", "credits", "full_name", "total_topup_baht"}
    ),
    # Not ``tier``: BigEye's users have one too.
    "kitesforu": frozenset(
        {"subscription_status", "subscription_period_end", "stripe_customer_id"}
    ),
    "kaiwa": frozenset(
        {
            "googleId",
            "displayName",
            "username",
            "avatarUrl",
            "stripeCustomerId",
            "nativeLanguageId",
            "preferredUILanguageId",
        }
    ),
}


def profiles_of_user(user: Mapping[str, Any]) -> frozenset[str]:
    """The profiles whose marks the document carries (empty: unclaimed)."""
    return frozenset(name for name, marks in _MARKS.items() if marks & user.keys())


def owner_of_user(user: Mapping[str, Any]) -> str | None:
    """The one profile the document belongs to, or None when unclaimed or ambiguous."""
    found = profiles_of_user(user)
    return next(iter(found)) if len(found) == 1 else None


def check_owner(user_id: str, user: Mapping[str, Any], profile: str) -> None:
    """NotFound naming the right profile when ``user`` clearly belongs to another app."""
    owner = owner_of_user(user)
    if owner is not None and owner != profile:
        raise NotFound(
            f"user {user_id} belongs to the {owner} profile, not {profile}",
            user_id=user_id,
            owner=owner,
        )


def ledgers_present(db: firestore.Client) -> list[LedgerProfile]:
    """One profile per distinct ledger (balance field, transactions collection) that has
    transactions in ``db``: what "every profile present" reconciles. KitesForU and Kaiwa
    share their ledger's names, so KitesForU's profile covers both."""
    found: list[LedgerProfile] = []
    seen: set[tuple[str, str]] = set()
    for profile in PROFILES.values():
        names = (profile.balance_field, profile.transactions_collection)
        if names in seen:
            continue
        seen.add(names)
        if list(db.collection(profile.transactions_collection).limit(1).stream()):
            found.append(profile)
    return found
