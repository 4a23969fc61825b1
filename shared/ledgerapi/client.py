"""A small typed client of ledger-api for app backends (vendor this one file; needs httpx).

    client = LedgerApiClient("https://REGION-PROJECT.cloudfunctions.net/ledger-api",
                             headers={"Authorization": f"Bearer {id_token}"})
    posting = client.charge("user_1", 5, idempotency_key="gen-7f3a", job_id="job_42")

Every write takes an ``idempotency_key``: send the same key again after a timeout or a
5xx and you get the first answer (``replayed=True``) — never a second charge. Errors raise
``LedgerApiError`` (``InsufficientCredits`` for 402, ``KeyConflict`` for 409,
``NotFound`` for 404) carrying the status and the server's ``detail``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx


class LedgerApiError(Exception):
    """A 4xx/5xx answer: ``status`` and the server's ``detail``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class InsufficientCredits(LedgerApiError):
    """402: the balance is short (nothing was taken)."""


class NotFound(LedgerApiError):
    """404: unknown user, transaction or hold."""


class KeyConflict(LedgerApiError):
    """409: the key was used for another request, or the hold/transaction state clashes."""


_ERRORS: dict[int, type[LedgerApiError]] = {
    402: InsufficientCredits,
    404: NotFound,
    409: KeyConflict,
}


@dataclass(frozen=True)
class Account:
    """Balance and totals."""

    user_id: str
    profile: str
    balance: int
    total_credits_used: int
    total_credits_purchased: int | None = None


@dataclass(frozen=True)
class Posting:
    """What a write did (or, when ``replayed``, what it did the first time)."""

    transaction_id: str | None
    user_id: str
    type: str | None
    amount: int
    balance_after: int
    shortfall: int = 0
    replayed: bool = False
    hold_id: str | None = None
    hold_status: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hold:
    """A hold's state."""

    hold_id: str
    user_id: str
    amount: int
    status: str
    expires_at: str | None
    used_amount: int | None
    returned_amount: int | None


_POSTING_FIELDS = {
    "transaction_id",
    "user_id",
    "type",
    "amount",
    "balance_after",
    "shortfall",
    "hold_id",
    "hold_status",
}


class LedgerApiClient:
    """Synchronous ledger-api calls over one pooled ``httpx.Client``."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout_s: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        self._http = http or httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers or {}, timeout=timeout_s
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LedgerApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        key: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key is not None else {}
        payload = None if body is None else {k: v for k, v in body.items() if v is not None}
        response = self._http.request(method, path, json=payload, headers=headers, params=params)
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("detail"))
            except ValueError:
                detail = response.text
            raise _ERRORS.get(response.status_code, LedgerApiError)(response.status_code, detail)
        return response

    def _posting(self, response: httpx.Response) -> Posting:
        data = response.json()
        return Posting(
            transaction_id=data.get("transaction_id"),
            user_id=data["user_id"],
            type=data.get("type"),
            amount=int(data["amount"]),
            balance_after=int(data["balance_after"]),
            shortfall=int(data.get("shortfall") or 0),
            replayed=response.headers.get("Idempotent-Replayed") == "true",
            hold_id=data.get("hold_id"),
            hold_status=data.get("hold_status"),
            extra={k: v for k, v in data.items() if k not in _POSTING_FIELDS},
        )

    # -- reads ---------------------------------------------------------------------------
    def account(self, user_id: str) -> Account:
        data = self._call("GET", f"/v1/accounts/{user_id}").json()
        return Account(
            user_id=data["user_id"],
            profile=data["profile"],
            balance=int(data["balance"]),
            total_credits_used=int(data["total_credits_used"]),
            total_credits_purchased=data.get("total_credits_purchased"),
        )

    def transactions_page(
        self, user_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        data = self._call("GET", f"/v1/accounts/{user_id}/transactions", params=params).json()
        return list(data["transactions"]), data.get("next_cursor")

    def transactions(self, user_id: str, *, page_size: int = 50) -> Iterator[dict[str, Any]]:
        """Every transaction, newest first, following the cursor."""
        cursor: str | None = None
        while True:
            items, cursor = self.transactions_page(user_id, limit=page_size, cursor=cursor)
            yield from items
            if not cursor:
                return

    def hold(self, hold_id: str) -> Hold:
        data = self._call("GET", f"/v1/holds/{hold_id}").json()
        return Hold(
            hold_id=data["hold_id"],
            user_id=data["user_id"],
            amount=int(data["amount"]),
            status=data["status"],
            expires_at=data.get("expires_at"),
            used_amount=data.get("used_amount"),
            returned_amount=data.get("returned_amount"),
        )

    def openapi(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/openapi.json").json()
        return result

    # -- writes --------------------------------------------------------------------------
    def charge(
        self,
        user_id: str,
        amount: int,
        *,
        idempotency_key: str,
        description: str | None = None,
        job_id: str | None = None,
        reference_id: str | None = None,
        allow_partial: bool = False,
    ) -> Posting:
        body = {
            "amount": amount,
            "description": description,
            "job_id": job_id,
            "reference_id": reference_id,
            "allow_partial": allow_partial or None,
        }
        return self._posting(
            self._call("POST", f"/v1/accounts/{user_id}/charges", body=body, key=idempotency_key)
        )

    def grant(
        self,
        user_id: str,
        amount: int,
        *,
        type: str,
        idempotency_key: str,
        description: str | None = None,
        job_id: str | None = None,
        reference_id: str | None = None,
    ) -> Posting:
        body = {
            "amount": amount,
            "type": type,
            "description": description,
            "job_id": job_id,
            "reference_id": reference_id,
        }
        return self._posting(
            self._call("POST", f"/v1/accounts/{user_id}/grants", body=body, key=idempotency_key)
        )

    def adjust(
        self, user_id: str, amount: int, *, actor: str, reason: str, idempotency_key: str
    ) -> Posting:
        body = {"amount": amount, "actor": actor, "reason": reason}
        return self._posting(
            self._call(
                "POST", f"/v1/accounts/{user_id}/adjustments", body=body, key=idempotency_key
            )
        )

    def refund(
        self,
        original_transaction_id: str,
        *,
        reason: str,
        idempotency_key: str,
        amount: int | None = None,
        job_id: str | None = None,
    ) -> Posting:
        body = {
            "original_transaction_id": original_transaction_id,
            "amount": amount,
            "reason": reason,
            "job_id": job_id,
        }
        return self._posting(self._call("POST", "/v1/refunds", body=body, key=idempotency_key))

    def create_hold(
        self,
        user_id: str,
        hold_id: str,
        amount: int,
        *,
        idempotency_key: str,
        ttl_s: int | None = None,
        description: str | None = None,
        job_id: str | None = None,
    ) -> Posting:
        body = {
            "hold_id": hold_id,
            "user_id": user_id,
            "amount": amount,
            "ttl_s": ttl_s,
            "description": description,
            "job_id": job_id,
        }
        return self._posting(self._call("POST", "/v1/holds", body=body, key=idempotency_key))

    def settle(
        self, hold_id: str, used: int, *, idempotency_key: str, description: str | None = None
    ) -> Posting:
        body = {"used": used, "description": description}
        return self._posting(
            self._call("POST", f"/v1/holds/{hold_id}/settle", body=body, key=idempotency_key)
        )

    def release(self, hold_id: str, *, reason: str, idempotency_key: str) -> Posting:
        return self._posting(
            self._call(
                "POST",
                f"/v1/holds/{hold_id}/release",
                body={"reason": reason},
                key=idempotency_key,
            )
        )
