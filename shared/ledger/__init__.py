"""The shared credit ledger: pure rules (``core``), schema profiles and the Firestore store."""

from shared.groupcommit import GroupSettings
from shared.ledger.core import Account, Entry, HoldStatus, Kind
from shared.ledger.keys import posting_key
from shared.ledger.profiles import (
    BIGEYE,
    KAIWA,
    KITESFORU,
    LedgerProfile,
    Refs,
    TopupMeta,
    ledger_profile,
)
from shared.ledger.store import (
    HOLDS_COLLECTION,
    POSTINGS_COLLECTION,
    Ledger,
    PostingResult,
    transaction_id_for,
)

__all__ = [
    "BIGEYE",
    "HOLDS_COLLECTION",
    "KAIWA",
    "KITESFORU",
    "POSTINGS_COLLECTION",
    "Account",
    "Entry",
    "HoldStatus",
    "Kind",
    "Ledger",
    "LedgerProfile",
    "PostingResult",
    "Refs",
    "TopupMeta",
    "group_settings",
    "ledger_for",
    "ledger_profile",
    "posting_key",
    "transaction_id_for",
]


def group_settings() -> GroupSettings:
    """Group commit as configured (``LEDGER_GROUP_*``, ``LEDGER_MAX_ATTEMPTS``)."""
    from shared.settings import get_settings

    settings = get_settings()
    return GroupSettings(
        window_s=settings.ledger_group_window_ms / 1000,
        max_batch=settings.ledger_group_max_batch,
        max_queue=settings.ledger_group_max_queue,
        max_attempts=settings.ledger_max_attempts,
    )


def ledger_for(profile_name: str | None = None) -> Ledger:
    """The ledger of the configured (or named) profile on the process's Firestore client."""
    from shared.clients import firestore_client
    from shared.clock import ProcessClock
    from shared.settings import get_settings

    settings = get_settings()
    db = firestore_client()
    group = None
    if settings.ledger_group_commit:
        from shared.groupcommit import committer_for

        group = committer_for(db, group_settings())
    return Ledger(
        db,
        ledger_profile(profile_name or settings.schema_profile),
        ProcessClock(),
        max_amount=settings.ledger_max_amount,
        max_attempts=settings.ledger_max_attempts,
        group=group,
    )
