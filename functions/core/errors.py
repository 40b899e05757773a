"""Errors a client is meant to see, in the contract's shape.

Every 4xx the API returns is one of these, rendered by ``to_body()`` as
``{"error": {"code": "snake_case_reason", "message": "human text", "details": {...}}}``.
The ``code`` is the stable, machine-readable part storefronts branch on; the message is
for people and may change. Anything that is not a ``RebatesError`` is a bug and becomes a
5xx at the API edge, so bad input must always surface as one of these.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "Conflict",
    "CurrencyMismatch",
    "DomainError",
    "InvalidMoney",
    "NotFound",
    "RebatesError",
    "Throttled",
    "Unprocessable",
]

# Codes are part of the public contract (clients switch on them), so a typo such as
# "Not-Found" must fail where it is written, not in a storefront's error handling.
_CODE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


class RebatesError(Exception):
    """Base of the client-facing errors; raise a subclass, which fixes the HTTP status."""

    status: ClassVar[int]

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        if not hasattr(type(self), "status"):
            # Without a status the API edge could only guess, so refuse the abstract base.
            raise TypeError("raise a subclass of RebatesError (BadRequest, NotFound, ...)")
        if not _CODE.fullmatch(code):
            raise ValueError(f"error code must be snake_case, got {code!r}")
        super().__init__(code, message, details)
        self.code = code
        self.message = message
        # Copied so a caller mutating its dict afterwards cannot change a raised error.
        self.details: dict[str, Any] = dict(details) if details else {}

    def to_body(self) -> dict[str, Any]:
        """The response body; ``details`` values must be JSON-serialisable."""
        return {
            "error": {"code": self.code, "message": self.message, "details": dict(self.details)}
        }

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r}, {self.details!r})"


class BadRequest(RebatesError):
    """Malformed input: wrong type, missing field, unparsable value."""

    status = 400


class NotFound(RebatesError):
    """An id in the path or body that does not exist."""

    status = 404


class Conflict(RebatesError):
    """The request is valid but the current state forbids it: a limit reached, already done."""

    status = 409


class Unprocessable(RebatesError):
    """Well-formed but not eligible: outside the window, below the minimum, wrong currency."""

    status = 422


class Throttled(RebatesError):
    """Too many requests; the client should retry later."""

    status = 429


class CurrencyMismatch(Unprocessable):
    """Money in two currencies met in one operation; there is no implicit conversion."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(
            "currency_mismatch",
            f"expected an amount in {expected}, got one in {actual}",
            {"expected": expected, "actual": actual},
        )
        # Exception pickling rebuilds from args, which must match this signature.
        self.args = (expected, actual)


class InvalidMoney(BadRequest):
    """A money value that cannot be represented: unknown currency, too many decimals, too big."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__("invalid_money", message, details)
        self.args = (message, details)


class DomainError(Exception):
    """Base of a domain's refusals, in the domain's own terms: no HTTP status.

    A stable snake_case `code` (the class's, or one given), a message for people and the
    ids it concerns. The store and the rules raise these; each API maps them to statuses
    in one place (`functions.core.api.status_mapping`), and a CLI or a consumer reusing
    the store gets plain domain exceptions.
    """

    code: str = "domain_error"

    def __init__(
        self, message: str, details: Mapping[str, object] | None = None, *, code: str | None = None
    ) -> None:
        if code is not None:
            self.code = code
        super().__init__(self.code, message)
        self.message = message
        self.details: dict[str, object] = dict(details or {})

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
