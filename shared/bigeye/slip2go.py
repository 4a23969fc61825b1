"""A small Slip2Go client: verify a slip image, map the result code to an outcome.

Base URL and secret come from settings (``SLIP2GO_BASE_URL``, ``SLIP2GO_API_SECRET``); the
receiver accounts from ``SLIP2GO_RECEIVER_ACCOUNTS``. Result codes (spec/SLIP2GO.md):

| code | outcome |
|---|---|
| 200200, 200000 | VALID (our own amount and receiver checks still run) |
| 200401 / 200402 / 200403 | WRONG_RECEIVER / WRONG_AMOUNT / WRONG_DATE |
| (our own check) | WRONG_BANK: the account digits match but Slip2Go names another bank |
| 200404 | NOT_FOUND (no readable slip QR) |
| 200501 | DUPLICATE (Slip2Go has seen this slip: the caller checks its own records) |
| 400xxx | BAD_REQUEST |
| 401xxx, 500500, network faults, anything else | UNAVAILABLE (never credited, retryable) |
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import httpx

from shared.settings import get_settings

VERIFY_BASE64_PATH = "/verify-slip/qr-base64/info"


class Outcome(StrEnum):
    """What a Slip2Go answer means for a top-up."""

    VALID = "VALID"
    WRONG_RECEIVER = "WRONG_RECEIVER"
    WRONG_BANK = "WRONG_BANK"
    WRONG_AMOUNT = "WRONG_AMOUNT"
    WRONG_DATE = "WRONG_DATE"
    NOT_FOUND = "NOT_FOUND"
    DUPLICATE = "DUPLICATE"
    BAD_REQUEST = "BAD_REQUEST"
    UNAVAILABLE = "UNAVAILABLE"


_OUTCOME_BY_CODE = {
    "200000": Outcome.VALID,
    "200001": Outcome.VALID,
    "200200": Outcome.VALID,
    "200401": Outcome.WRONG_RECEIVER,
    "200402": Outcome.WRONG_AMOUNT,
    "200403": Outcome.WRONG_DATE,
    "200404": Outcome.NOT_FOUND,
    "200501": Outcome.DUPLICATE,
    "400001": Outcome.BAD_REQUEST,
    "400002": Outcome.BAD_REQUEST,
    "400003": Outcome.BAD_REQUEST,
    "400400": Outcome.BAD_REQUEST,
}


def outcome_of(code: str) -> Outcome:
    """The outcome of a Slip2Go result code (unknown codes are never credited)."""
    return _OUTCOME_BY_CODE.get(code, Outcome.UNAVAILABLE)


def bank_code(value: Any) -> str | None:
    """A Thai bank code in its three-digit form (``"004"`` KBank, ``"014"`` SCB), or None.

    Slip2Go gives ``receiver.bank.id`` as ``"004"``; ``4`` or ``" 004 "`` are the same bank.
    Anything that is not one to three digits is no bank code (the bank is then not compared).
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or not 1 <= len(text) <= 3:
        return None
    return text.zfill(3)


@dataclass(frozen=True)
class Receiver:
    """One account a slip may be paid to (a Slip2Go ``checkReceiver`` entry).

    ``bank``: the account's three-digit bank code, from the entry's ``bankCode`` or, for a
    bank account (``accountType`` ``01`` + bank code, e.g. ``01004`` = KBank ``004``), from
    its type; None for PromptPay entries (``02xxx``) without a ``bankCode``.
    """

    account_type: str
    account_number: str
    name_th: str = ""
    name_en: str = ""
    bank: str | None = None

    def condition(self) -> dict[str, str]:
        return {
            "accountType": self.account_type,
            "accountNameTH": self.name_th,
            "accountNameEN": self.name_en,
            "accountNumber": self.account_number,
        }


def configured_receivers(raw: str | None = None) -> tuple[Receiver, ...]:
    """The receiver accounts of ``SLIP2GO_RECEIVER_ACCOUNTS`` (ValueError when malformed)."""
    text = get_settings().slip2go_receiver_accounts if raw is None else raw
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("SLIP2GO_RECEIVER_ACCOUNTS is not JSON") from None
    if not isinstance(items, list) or not items:
        raise ValueError("SLIP2GO_RECEIVER_ACCOUNTS must be a non-empty JSON list")
    found = []
    for item in items:
        if not isinstance(item, dict) or not str(item.get("accountNumber") or "").strip():
            raise ValueError("every receiver account needs an accountNumber")
        account_type = str(item.get("accountType") or "")
        bank = None
        if item.get("bankCode") is not None:
            bank = bank_code(item["bankCode"])
            if bank is None:
                raise ValueError("bankCode must be a three-digit bank code such as 004")
        elif re.fullmatch(r"01\d{3}", account_type):
            bank = account_type[2:]
        found.append(
            Receiver(
                account_type=account_type,
                account_number=str(item["accountNumber"]).strip(),
                name_th=str(item.get("accountNameTH") or ""),
                name_en=str(item.get("accountNameEN") or ""),
                bank=bank,
            )
        )
    return tuple(found)


_ACCOUNT_CHARS = re.compile(r"[^0-9xX*]")


#: A masked slip must show at least this many digits of the receiver's account, all
#: matching; fewer cannot tell BigEye's account from a stranger's (REJECTED with the reason).
MIN_VISIBLE_DIGITS = 4


def account_matches(shown: str | None, account_number: str) -> bool:
    """True when a slip's (possibly masked) account is ``account_number``.

    Slips mask digits (``xxx-x-x5678-x``): separators are dropped, both sides must have the
    same length, at least ``MIN_VISIBLE_DIGITS`` digits must be shown, and every digit shown
    must equal the account's digit at that position.
    """
    if not shown:
        return False
    a = _ACCOUNT_CHARS.sub("", shown)
    b = _ACCOUNT_CHARS.sub("", account_number)
    if not a or len(a) != len(b) or sum(ch.isdigit() for ch in a) < MIN_VISIBLE_DIGITS:
        return False
    return all(x in "xX*" or x == y for x, y in zip(a, b, strict=True))


def matches_any(
    shown: str | None, receivers: tuple[Receiver, ...], bank: str | None = None
) -> bool:
    """True when the slip's receiver account is one of ``receivers``.

    ``bank``: the receiver's bank code as Slip2Go gave it; when given, it must also be that
    receiver's bank (a receiver with no known bank, a PromptPay entry, matches any bank).
    """
    return receiver_outcome(shown, receivers, bank) is Outcome.VALID


def receiver_outcome(
    shown: str | None, receivers: tuple[Receiver, ...], bank: str | None = None
) -> Outcome:
    """VALID when one receiver matches both the account and (when known) the bank;
    WRONG_BANK when the digits match only receivers at another bank; else WRONG_RECEIVER."""
    digits = [r for r in receivers if account_matches(shown, r.account_number)]
    if not digits:
        return Outcome.WRONG_RECEIVER
    if bank is None or any(r.bank is None or r.bank == bank for r in digits):
        return Outcome.VALID
    return Outcome.WRONG_BANK


# Characters that never tell two bank references apart: white space of any kind, control
# characters and invisible format characters (zero-width space and joiners, BOM, soft hyphen).
_IGNORED_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def canonical_ref(text: str) -> str:
    """The one form of a bank slip reference used as its duplicate key everywhere.

    NFKC (full-width and compatibility forms become plain letters and digits), every white
    space, control and invisible format character removed, case folded, NFKC again (case
    folding can leave unnormalised text). ``" advref\u200b\n"`` and ``"ADVREF"`` are one slip.
    """
    text = unicodedata.normalize("NFKC", text)
    text = "".join(
        ch
        for ch in text
        if not ch.isspace() and unicodedata.category(ch) not in _IGNORED_CATEGORIES
    )
    return unicodedata.normalize("NFKC", text.casefold())


@dataclass(frozen=True)
class SlipData:
    """The fields of a Slip2Go ``data`` object a top-up uses.

    ``trans_ref`` is the reference as Slip2Go gave it, kept for people on the slip
    (``bank_ref``), the transaction (``metadata.slip_ref``) and the audit log; ``ref_key``
    is its canonical form (``canonical_ref``), the duplicate key of the ledger and of every
    slip lookup.
    """

    trans_ref: str
    amount: Decimal | None
    receiver_account: str | None
    sender_name: str | None
    date_time: str | None
    receiver_bank: str | None = None

    @property
    def ref_key(self) -> str:
        """The canonical reference: one slip, one key, however it is spelled."""
        return canonical_ref(self.trans_ref)


@dataclass(frozen=True)
class Verification:
    """One Slip2Go answer."""

    code: str
    message: str
    outcome: Outcome
    http_status: int | None
    raw: dict[str, Any] = field(default_factory=dict)
    slip: SlipData | None = None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def sub_map(parent: Any, key: str) -> dict[str, Any]:
    """``parent[key]`` when both are maps, else an empty map."""
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def slip_data(data: Any) -> SlipData | None:
    """The slip fields of a response's ``data`` (None when there is no usable transRef)."""
    if not isinstance(data, dict):
        return None
    trans_ref = _text(data.get("transRef"))
    if trans_ref is None or len(trans_ref) > 200:
        return None
    key = canonical_ref(trans_ref)
    if not key or "/" in key:
        return None
    amount: Decimal | None = None
    raw_amount = data.get("amount")
    if isinstance(raw_amount, int | float | str) and not isinstance(raw_amount, bool):
        try:
            amount = Decimal(str(raw_amount))
        except InvalidOperation:
            amount = None
        if amount is not None and not amount.is_finite():
            amount = None
    receiver = sub_map(data, "receiver")
    account = sub_map(receiver, "account")
    bank = sub_map(account, "bank")
    proxy = sub_map(account, "proxy")
    sender = sub_map(data, "sender")
    sender_account = sub_map(sender, "account")
    return SlipData(
        trans_ref=trans_ref,
        amount=amount,
        receiver_account=_text(bank.get("account")) or _text(proxy.get("account")),
        sender_name=_text(sender_account.get("name")) or _text(sender.get("displayName")),
        date_time=_text(data.get("dateTime")),
        receiver_bank=bank_code(sub_map(receiver, "bank").get("id")),
    )


class Slip2GoClient:
    """Calls Slip2Go's base64 verification endpoint."""

    def __init__(
        self,
        base_url: str | None = None,
        api_secret: str | None = None,
        timeout_s: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        settings = get_settings()
        self.base_url = (base_url or settings.slip2go_base_url).rstrip("/")
        self._secret = api_secret or settings.slip2go_api_secret.get_secret_value()
        self.timeout_s = timeout_s or settings.slip2go_timeout_s
        self._transport = transport

    def verify(
        self,
        image_data_url: str,
        *,
        amount: Decimal,
        receivers: tuple[Receiver, ...],
        check_duplicate: bool = True,
    ) -> Verification:
        """Verify a slip with the receiver, amount and duplicate checks; never raises."""
        amount_value: int | float = int(amount) if amount == amount.to_integral() else float(amount)
        body = {
            "payload": {
                "imageBase64": image_data_url,
                "checkCondition": {
                    "checkDuplicate": check_duplicate,
                    "checkReceiver": [r.condition() for r in receivers],
                    "checkAmount": {"type": "eq", "amount": amount_value},
                },
            }
        }
        headers = {"Authorization": f"Bearer {self._secret}"}
        try:
            with httpx.Client(timeout=self.timeout_s, transport=self._transport) as client:
                response = client.post(
                    self.base_url + VERIFY_BASE64_PATH, json=body, headers=headers
                )
        except httpx.HTTPError as exc:
            return Verification(
                "network", f"Slip2Go unreachable: {type(exc).__name__}", Outcome.UNAVAILABLE, None
            )
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return Verification(
                "invalid",
                f"Slip2Go answered HTTP {response.status_code} without a JSON body",
                Outcome.UNAVAILABLE,
                response.status_code,
            )
        code = str(payload.get("code") or "")
        message = str(payload.get("message") or "")
        outcome = outcome_of(code)
        if response.status_code >= 500:
            outcome = Outcome.UNAVAILABLE
        return Verification(
            code=code,
            message=message,
            outcome=outcome,
            http_status=response.status_code,
            raw=payload,
            slip=slip_data(payload.get("data")),
        )
