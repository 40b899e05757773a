"""The claims API's request and response bodies, and the verification steps' payloads.

Field names are camelCase, as in the JSON. Request amounts are strict integers in the
minor unit of the ``currency`` beside them (``1500.0`` or ``"1500"`` is refused, never
coerced); every amount in a response is a money object ``{"amount", "currency"}``
(DESIGN "HTTP API"). Instants carry an offset. The OpenAPI document is generated from
these models.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from functions.campaigns.config.fields import CampaignId
from functions.campaigns.rewards import LineItem
from functions.core.clock import Instant
from functions.core.fields import CustomerId, ExternalId
from functions.core.money import MAX_AMOUNT, CurrencyCode, Money

__all__ = [
    "ClaimAccepted",
    "ClaimList",
    "ClaimRequest",
    "ClaimView",
    "DecisionRecorded",
    "EvidenceView",
    "PurchaseRequest",
    "ReviewRequest",
    "TimelineView",
    "UploadGranted",
    "UploadRequest",
]

MAX_LINES: Final = 500
# A receipt key as the uploads route hands it out: `receipts/<customer>/<id><ext>`.
RECEIPT_KEY_PATTERN: Final = r"^receipts/[A-Za-z0-9_-]{1,700}/[A-Za-z0-9_.-]{1,80}$"

Text = Annotated[StrictStr, Field(min_length=1, max_length=200)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- requests -------------------------------------------------------------------------


class UploadRequest(_Body):
    """A receipt the customer is about to upload: its type and exact size in bytes."""

    customerId: CustomerId
    contentType: Annotated[StrictStr, Field(min_length=1, max_length=100)] = Field(
        description="image/jpeg, image/png or application/pdf."
    )
    size: Annotated[StrictInt, Field(ge=0, le=2**40)] = Field(
        description="The file's size in bytes (at most 10 MiB); the upload must be exactly it."
    )


class PurchaseRequest(_Body):
    """The purchase the claim is for, as the receipt shows it."""

    orderId: ExternalId | None = None
    retailer: Text
    receiptNumber: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    purchasedAt: Instant = Field(description="When the purchase was made (RFC 3339, offset).")
    currency: CurrencyCode
    items: Annotated[tuple[LineItem, ...], Field(min_length=1, max_length=MAX_LINES)]
    total: Annotated[StrictInt, Field(ge=1, le=MAX_AMOUNT)] = Field(
        description="What the receipt says was paid, in the minor unit of currency."
    )

    @model_validator(mode="after")
    def _lines_in_range(self) -> Self:
        lines = sum(item.unitPrice * item.quantity for item in self.items)
        if lines > MAX_AMOUNT:
            raise ValueError(f"the items' total is above the largest amount ({MAX_AMOUNT})")
        if lines > self.total:
            raise ValueError(f"the items add up to {lines}, more than the total {self.total}")
        return self


class ClaimRequest(_Body):
    campaignId: CampaignId
    customerId: CustomerId
    purchase: PurchaseRequest
    receiptKey: Annotated[StrictStr, Field(pattern=RECEIPT_KEY_PATTERN)] | None = Field(
        default=None, description="The key `POST /v1/claims/uploads` gave for the receipt."
    )


class ReviewRequest(_Body):
    decision: Literal["approve", "reject"]
    reason: Annotated[StrictStr, Field(min_length=1, max_length=500)]
    reviewer: Annotated[StrictStr, Field(min_length=1, max_length=200)]


# -- responses ------------------------------------------------------------------------


class UploadGranted(_Body):
    receiptKey: str
    upload: UploadForm
    expiresAt: Instant


class UploadForm(_Body):
    """A presigned POST: send ``fields`` and then the file as ``file`` to ``url``."""

    url: str
    fields: dict[str, str]


class ClaimAccepted(_Body):
    claimId: str
    status: str


class TimelineView(_Body):
    at: Instant
    status: str
    note: str | None = None


class EvidenceView(_Body):
    rule: str
    reason: str
    claimIds: list[str]
    note: str | None = None


class ClaimView(_Body):
    claimId: str
    campaignId: str
    customerId: str
    status: str
    reward: Money | None
    reasons: list[str]
    reviewReasons: list[str]
    evidence: list[EvidenceView]
    purchaseTotal: Money
    submittedAt: Instant
    updatedAt: Instant
    reviewDueAt: Instant | None = None
    timeline: list[TimelineView]


class ClaimList(_Body):
    claims: list[ClaimView]
    nextToken: str | None = None


class DecisionRecorded(_Body):
    claimId: str
    decision: str
    reviewer: str
    status: str


UploadGranted.model_rebuild()
