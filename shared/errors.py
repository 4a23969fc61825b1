"""One error tree and one status table.

Every domain error carries a ``code``; ``STATUS_BY_CODE`` maps codes to HTTP status and
``http_error_body`` builds the ``{"detail": "..."}`` body the APIs promise. Event handlers
use ``is_transient`` to decide between "raise so the platform retries" and "log and ack".
"""

from __future__ import annotations

from typing import Any


class CreditsError(Exception):
    """Base of every error this suite raises on purpose."""

    code = "error"

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context


class InvalidInput(CreditsError):
    """The request or message is malformed or out of range: never retried."""

    code = "invalid_input"


class Unauthenticated(CreditsError):
    """Missing, malformed, expired or wrongly signed credentials."""

    code = "unauthenticated"


class InsufficientCredits(CreditsError):
    """A debit larger than the available balance."""

    code = "insufficient_credits"


class Forbidden(CreditsError):
    """The caller is known but not allowed (suspended, banned, foreign resource)."""

    code = "forbidden"


class NotFound(CreditsError):
    """A referenced user, transaction, hold or document does not exist."""

    code = "not_found"


class MethodNotAllowed(CreditsError):
    """The HTTP method is not served at this path."""

    code = "method_not_allowed"


class Conflict(CreditsError):
    """A duplicate (email, slip, idempotency key with other content) or a state clash."""

    code = "conflict"


class Gone(CreditsError):
    """The resource existed but can no longer be acted on (an expired hold or job)."""

    code = "gone"


class PayloadTooLarge(CreditsError):
    """The body exceeds the documented size limit."""

    code = "payload_too_large"


class UpgradeRequired(CreditsError):
    """The client version is below the forced-update floor."""

    code = "upgrade_required"


class RateLimited(CreditsError):
    """Too many requests, or a usage limit would be exceeded."""

    code = "rate_limited"


class Unavailable(CreditsError):
    """Maintenance mode or a dependency outage; the caller may retry later."""

    code = "unavailable"


class Transient(CreditsError):
    """A fault worth retrying (contention that outlived its retries, a network blip)."""

    code = "transient"


STATUS_BY_CODE: dict[str, int] = {
    InvalidInput.code: 400,
    Unauthenticated.code: 401,
    InsufficientCredits.code: 402,
    Forbidden.code: 403,
    NotFound.code: 404,
    MethodNotAllowed.code: 405,
    Conflict.code: 409,
    Gone.code: 410,
    PayloadTooLarge.code: 413,
    UpgradeRequired.code: 426,
    RateLimited.code: 429,
    Unavailable.code: 503,
    Transient.code: 503,
    CreditsError.code: 500,
}


def http_status(error: CreditsError) -> int:
    """The HTTP status an error maps to."""
    return STATUS_BY_CODE.get(error.code, 500)


def http_error_body(error: CreditsError) -> dict[str, str]:
    """The API's error body."""
    return {"detail": error.detail}


def is_transient(error: BaseException) -> bool:
    """True when retrying the same input may succeed."""
    if isinstance(error, Transient | Unavailable):
        return True
    if isinstance(error, CreditsError):
        return False
    # Errors from Google client libraries and the network: retry.
    from google.api_core import exceptions as gexc

    return isinstance(
        error,
        gexc.ServiceUnavailable
        | gexc.DeadlineExceeded
        | gexc.InternalServerError
        | gexc.Aborted
        | gexc.TooManyRequests
        | gexc.Unknown
        | ConnectionError
        | TimeoutError,
    )
