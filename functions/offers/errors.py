"""What the offers domain refuses, in its own terms.

The store and the rules raise these; none of them knows HTTP. The API handler maps each
to its status in one place (`functions.offers.handlers.api.api_error`), so a status is
decided once, whichever layer found the problem, and a consumer or a CLI that reuses the
store gets plain domain exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from functions.core.errors import DomainError
from functions.offers.logic import Refusal, refusal_message

__all__ = [
    "CodesExhausted",
    "Contended",
    "Missing",
    "NotFoundError",
    "OfferError",
    "Refused",
]


class OfferError(DomainError):
    """Base of the offers domain's refusals: a stable snake_case `code`, a message for
    people and the ids it concerns."""

    def __init__(self, code: str, message: str, details: Mapping[str, object] | None) -> None:
        super().__init__(message, details, code=code)


class Refused(OfferError):
    """A code does not apply: one of the `Refusal` reasons, static or counted."""

    def __init__(self, reason: Refusal, details: Mapping[str, object] | None = None) -> None:
        super().__init__(reason.value, refusal_message(reason), details)
        self.reason = reason


class Missing(StrEnum):
    """What an id named that does not exist."""

    CAMPAIGN = "campaign_not_found"
    OFFER = "offer_not_found"
    CODE = "code_not_found"
    REDEMPTION = "redemption_not_found"


_MISSING_MESSAGES: Final = {
    Missing.CAMPAIGN: "No such campaign.",
    Missing.OFFER: "No such offer.",
    Missing.CODE: "No such code.",
    Missing.REDEMPTION: "No such redemption.",
}


class NotFoundError(OfferError):
    def __init__(self, what: Missing, details: Mapping[str, object] | None = None) -> None:
        super().__init__(what.value, _MISSING_MESSAGES[what], details)
        self.what = what


class CodesExhausted(OfferError):
    """Every code of a unique-mode offer has been issued."""

    def __init__(self, offer_id: str) -> None:
        super().__init__(
            "codes_exhausted", "Every code of this offer has been issued.", {"offerId": offer_id}
        )


class Contended(OfferError):
    """Too many concurrent changes to the same items got in the way; retrying shortly
    will likely get through."""

    RETRY_AFTER_SECONDS: Final = 1

    def __init__(self, message: str) -> None:
        super().__init__("contended", message, {"retryAfterSeconds": self.RETRY_AFTER_SECONDS})
