"""Schema profiles: how each app's seed spells the ledger's documents.

KitesForU (000): ``users.credits_balance``, ``total_credits_used``,
``total_credits_purchased``, ``updated_at`` and ``credit_transactions`` with DEDUCTION,
REFUND, PURCHASE, SUBSCRIPTION_GRANT, ADMIN_ADJUSTMENT.
BigEye (004): ``users.credits``, ``total_credits_used`` and ``transactions`` with TOPUP,
RESERVE, REFUND, ADJUSTMENT, BONUS and ``metadata.*``.
Kaiwa (001) defines no credit fields; it keeps KitesForU's ledger names (the only seed that
defines ``credit_transactions``), see docs/ledger.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.ledger.core import Kind
from shared.settings import ProfileName


@dataclass(frozen=True)
class TopupMeta:
    """BigEye ``transactions.metadata.*`` (TOPUP only; null elsewhere)."""

    baht_amount: int | float | None = None
    slip_ref: str | None = None
    base_credits: int | None = None
    bonus_credits: int | None = None
    promo_id: str | None = None


@dataclass(frozen=True)
class Refs:
    """What a posting points at; each profile keeps the references its seed has."""

    job_id: str | None = None
    stripe_payment_intent_id: str | None = None
    subscription_id: str | None = None
    original_transaction_id: str | None = None
    refund_reason: str | None = None
    reference_id: str | None = None
    topup: TopupMeta | None = None

    def fingerprint_fields(self) -> dict[str, Any]:
        """The references that make two postings the same posting."""
        data: dict[str, Any] = {
            "job_id": self.job_id,
            "stripe_payment_intent_id": self.stripe_payment_intent_id,
            "subscription_id": self.subscription_id,
            "original_transaction_id": self.original_transaction_id,
            "reference_id": self.reference_id,
        }
        if self.topup is not None:
            data["topup"] = {
                "baht_amount": number(self.topup.baht_amount),
                "slip_ref": self.topup.slip_ref,
                "base_credits": self.topup.base_credits,
                "bonus_credits": self.topup.bonus_credits,
                "promo_id": self.topup.promo_id,
            }
        return data


def number(value: int | float | Decimal | None) -> int | float | None:
    """A schema "number": an int when whole, else a float (Firestore has no decimal)."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class LedgerProfile:
    """Collection, field and enum names of one app's ledger."""

    name: ProfileName
    balance_field: str
    transactions_collection: str
    type_names: Mapping[Kind, str]
    purchased_field: str | None
    updated_at_field: str | None
    users_collection: str = "users"
    used_field: str = "total_credits_used"
    kind_by_type: Mapping[str, Kind] = field(default_factory=dict)

    def type_name(self, kind: Kind) -> str:
        """The seed's ``type`` value for a posting kind."""
        return self.type_names[kind]

    def kind_of(self, type_name: str) -> Kind:
        """Read a stored transaction's kind back (for originals we did not write)."""
        kind = self.kind_by_type.get(type_name)
        if kind is None:
            raise ValueError(f"unknown transaction type {type_name!r}")
        return kind

    def transaction_doc(
        self,
        *,
        user_id: str,
        kind: Kind,
        amount: int,
        balance_after: int,
        description: str,
        created_at: datetime,
        refs: Refs,
    ) -> dict[str, Any]:
        """The transaction document exactly as the profile's seed names it."""
        doc: dict[str, Any] = {
            "user_id": user_id,
            "type": self.type_name(kind),
            "amount": amount,
            "balance_after": balance_after,
            "description": description,
            "created_at": created_at,
        }
        if self.name == "bigeye":
            doc["reference_id"] = refs.reference_id or refs.job_id or refs.original_transaction_id
            meta = refs.topup or TopupMeta()
            doc["metadata"] = {
                "baht_amount": number(meta.baht_amount),
                "slip_ref": meta.slip_ref,
                "base_credits": meta.base_credits,
                "bonus_credits": meta.bonus_credits,
                "promo_id": meta.promo_id,
            }
            return doc
        optional = {
            "job_id": refs.job_id,
            "stripe_payment_intent_id": refs.stripe_payment_intent_id,
            "subscription_id": refs.subscription_id,
            "original_transaction_id": refs.original_transaction_id,
            "refund_reason": refs.refund_reason,
        }
        doc.update({k: v for k, v in optional.items() if v is not None})
        return doc


_KITES_TYPES = {
    Kind.PURCHASE: "PURCHASE",
    Kind.TOPUP: "PURCHASE",
    Kind.SUBSCRIPTION_GRANT: "SUBSCRIPTION_GRANT",
    Kind.BONUS: "ADMIN_ADJUSTMENT",
    Kind.DEDUCTION: "DEDUCTION",
    Kind.RESERVE: "DEDUCTION",
    Kind.REFUND: "REFUND",
    Kind.ADJUSTMENT: "ADMIN_ADJUSTMENT",
}
_KITES_KINDS = {
    "PURCHASE": Kind.PURCHASE,
    "SUBSCRIPTION_GRANT": Kind.SUBSCRIPTION_GRANT,
    "DEDUCTION": Kind.DEDUCTION,
    "REFUND": Kind.REFUND,
    "ADMIN_ADJUSTMENT": Kind.ADJUSTMENT,
}
_BIGEYE_TYPES = {
    Kind.PURCHASE: "TOPUP",
    Kind.TOPUP: "TOPUP",
    Kind.SUBSCRIPTION_GRANT: "TOPUP",
    Kind.BONUS: "BONUS",
    Kind.DEDUCTION: "RESERVE",
    Kind.RESERVE: "RESERVE",
    Kind.REFUND: "REFUND",
    Kind.ADJUSTMENT: "ADJUSTMENT",
}
_BIGEYE_KINDS = {
    "TOPUP": Kind.TOPUP,
    "BONUS": Kind.BONUS,
    "RESERVE": Kind.RESERVE,
    "REFUND": Kind.REFUND,
    "ADJUSTMENT": Kind.ADJUSTMENT,
}

KITESFORU = LedgerProfile(
    name="kitesforu",
    balance_field="credits_balance",
    transactions_collection="credit_transactions",
    type_names=_KITES_TYPES,
    kind_by_type=_KITES_KINDS,
    purchased_field="total_credits_purchased",
    updated_at_field="updated_at",
)
BIGEYE = LedgerProfile(
    name="bigeye",
    balance_field="credits",
    transactions_collection="transactions",
    type_names=_BIGEYE_TYPES,
    kind_by_type=_BIGEYE_KINDS,
    purchased_field=None,
    updated_at_field=None,
)
#: Kaiwa's users and credit_transactions carry KitesForU's names.
KAIWA = replace(KITESFORU, name="kaiwa")

PROFILES: dict[str, LedgerProfile] = {p.name: p for p in (KITESFORU, BIGEYE, KAIWA)}


def ledger_profile(name: str) -> LedgerProfile:
    """The ledger profile called ``name`` (``SCHEMA_PROFILE``)."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown schema profile {name!r}") from None
