"""Typed event details: one pydantic model per EventBridge detail-type on the `rebates` bus.

These models are the single source of the event contract. `cli/contracts.py` generates
`events/detail/<DetailType>.schema.json` from them, the publisher validates every detail
against that committed schema before `PutEvents`, and consumers parse a detail back with
`EVENT_TYPES[detail_type].model_validate(detail)`.

Conventions, so that every consumer can rely on them:

- JSON field names are camelCase, and so are the attribute names: one spelling in code,
  samples, rule patterns and logs, with no alias to keep in sync.
- Every detail carries `eventId` (stable across publish retries, so consumers dedupe on
  it), `occurredAt` (when the fact happened, UTC) and `correlationId` (what caused it,
  for log search; never part of the fact, so never part of a derived `eventId`), then
  the ids it concerns.
- Amounts are `Money` objects. What a detail moves is never negative (the detail-type
  says the direction); only balances can be.
- Details carry facts and ids, never display text: reasons are snake_case codes and
  notifications render them per locale. Descriptive campaign data (name, timezone,
  discount terms) is read from the campaign by id, except in `CampaignPublished`, whose
  subject it is.
- Every key is always present in the published JSON (null when it does not apply), so
  the schemas list every property as required.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from functions.core.clock import Instant, TimeZoneName, utc_now
from functions.core.ids import new_id
from functions.core.money import CurrencyCode, Money
from functions.core.vocabulary import (
    CampaignKind,
    Locale,
    NotificationChannel,
    OfferChannel,
    SalesChannel,
)

Id = Annotated[str, StringConstraints(min_length=1, max_length=256)]
# Codes are case-insensitive on input and stored upper-case; events carry the stored form.
Code = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9_-]*$", max_length=64)]
# Reason codes and template names are snake_case and locale-free; notifications word them.
SnakeCase = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
DetailTypeName = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Za-z0-9]*$")]


def _not_negative(money: Money) -> Money:
    if money.is_negative:
        raise ValueError("an amount in an event is never negative: the detail-type says the sign")
    return money


# What a detail moves (a discount, a reward, a credit, a refund). Balances may be negative
# after a reversal of spent cashback, so they are plain `Money`.
Amount = Annotated[Money, AfterValidator(_not_negative)]


class _Fields(BaseModel):
    """Configuration shared by event details and the field groups they are built from."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        # Twenty detail types, of which a function uses a few: each is built on its
        # first use, not at import (a Lambda cold start pays for every model it builds).
        defer_build=True,
        # Defaults are filled in before publishing, so the published JSON always has every
        # key: make the (serialization-mode) schema require them all.
        json_schema_serialization_defaults_required=True,
    )


class EventDetail(_Fields):
    """Base of every detail: identity and time, plus the EventBridge routing fields."""

    detail_type: ClassVar[str]
    source: ClassVar[str]

    eventId: Id = Field(
        default_factory=lambda: new_id("evt"),
        description=(
            "Unique per fact; a replay or publish retry carries the same id, so dedupe on it."
        ),
    )
    occurredAt: Instant = Field(default_factory=utc_now)
    correlationId: Id | None = Field(
        default=None,
        description=(
            "What caused it, for tracing across functions: the API request id or the "
            "id of the event or record being handled; stamped by the publisher, null "
            "when nothing did."
        ),
    )


# One base per producing domain: the source is a property of the domain, not of each type.
class _CampaignsEvent(EventDetail):
    source: ClassVar[str] = "rebates.campaigns"


class _OffersEvent(EventDetail):
    source: ClassVar[str] = "rebates.offers"


class _ClaimsEvent(EventDetail):
    source: ClassVar[str] = "rebates.claims"


class _WalletEvent(EventDetail):
    source: ClassVar[str] = "rebates.wallet"


class _NotificationsEvent(EventDetail):
    source: ClassVar[str] = "rebates.notifications"


# Field groups shared by several details. Detail models name their domain base first, so
# mypy infers a list of details from several domains as `list[EventDetail]`.
class CampaignRef(_Fields):
    campaignId: Id


class CustomerRef(_Fields):
    customerId: Id = Field(description="Opaque id given by the storefront.")


class CodeRef(CustomerRef, CampaignRef):
    """A code held by one customer for one offer of a campaign."""

    offerId: Id
    code: Code


class RedemptionRef(CodeRef):
    redemptionId: Id
    orderId: Id
    discount: Amount = Field(
        description="Discount given at checkout; the amount counted against the campaign budget."
    )


class ClaimRef(CustomerRef, CampaignRef):
    claimId: Id


class WalletEntryRef(CustomerRef):
    """One wallet ledger entry and the (positive) amount it moves."""

    entryId: Id
    amount: Amount


class NotificationRef(CustomerRef):
    notificationId: Id
    channel: NotificationChannel
    template: SnakeCase = Field(description="Template name, e.g. `claim_approved`.")
    locale: Locale
    triggerEventId: Id = Field(
        description=(
            "`eventId` of the event this message is about: one message per event per channel."
        )
    )
    triggerDetailType: DetailTypeName


class ValidationIssue(_Fields):
    path: str = Field(
        description="Location in the file, e.g. `reward.tiered[1].amount`; `$` for the whole file."
    )
    message: str


class LineItem(_Fields):
    sku: Id
    category: str | None = None
    quantity: int = Field(ge=1)
    unitPrice: Amount


# --- rebates.campaigns ---------------------------------------------------------------


class CampaignPublished(_CampaignsEvent, CampaignRef):
    """A campaign file was validated and its new version is live."""

    detail_type: ClassVar[str] = "CampaignPublished"

    version: int = Field(ge=1)
    kind: CampaignKind
    name: str
    currency: CurrencyCode
    timezone: TimeZoneName = Field(
        description="IANA zone used for display and for counting days, e.g. `Asia/Tokyo`."
    )
    startsAt: Instant
    endsAt: Instant = Field(description="Exclusive end of the campaign window.")
    fileKey: str = Field(description="Key of the uploaded campaign file in the campaigns bucket.")


class CampaignRejected(_CampaignsEvent):
    """A campaign file failed validation; nothing changed."""

    detail_type: ClassVar[str] = "CampaignRejected"

    campaignId: Id | None = Field(description="The file's `id` when it could be read, else null.")
    fileKey: str
    errors: list[ValidationIssue] = Field(
        min_length=1,
        max_length=100,
        description=(
            "The first errors (at most 100, to bound the event's size); the report has them all."
        ),
    )


# --- rebates.offers ------------------------------------------------------------------


class OfferCodeIssued(_OffersEvent, CodeRef):
    """A customer received a code (a new unique code, or the offer's shared code)."""

    detail_type: ClassVar[str] = "OfferCodeIssued"

    channel: OfferChannel
    mode: Literal["unique", "shared"]
    expiresAt: Instant
    qrPayload: str | None = Field(
        default=None,
        description="Payload of the QR code shown at the till; set for in-store offers.",
    )
    orderId: Id | None = Field(
        default=None,
        description=(
            "The purchase this code was issued after (an offer with `issue_after_purchase`); "
            "null when the customer asked for the code."
        ),
    )


class OfferRedeemed(_OffersEvent, RedemptionRef):
    """A code was redeemed at checkout; usage and budget are already counted."""

    detail_type: ClassVar[str] = "OfferRedeemed"

    channel: SalesChannel
    storeId: Id | None = None
    cartTotal: Amount


class RedemptionRolledBack(_OffersEvent, RedemptionRef):
    """A redemption was undone (order cancelled, payment failed); its usage is released."""

    detail_type: ClassVar[str] = "RedemptionRolledBack"

    reason: str = Field(description="As given by the storefront.")


class OfferExpiring(_OffersEvent, CodeRef):
    """Reminder that a customer's unused code expires soon."""

    detail_type: ClassVar[str] = "OfferExpiring"

    expiresAt: Instant
    daysBefore: int = Field(
        ge=0, description="Which of the offer's `reminders_days_before_expiry` this reminder is."
    )


# --- rebates.claims ------------------------------------------------------------------


class ClaimSubmitted(_ClaimsEvent, ClaimRef):
    """A rebate claim was stored and its verification started."""

    detail_type: ClassVar[str] = "ClaimSubmitted"

    orderId: Id | None = None
    retailer: str
    purchasedAt: Instant
    purchaseTotal: Amount


class ClaimNeedsReview(_ClaimsEvent, ClaimRef):
    """Verification passed but an operator must decide (e.g. above the auto-approve limit)."""

    detail_type: ClassVar[str] = "ClaimNeedsReview"

    reward: Amount
    reasons: list[SnakeCase] = Field(
        min_length=1,
        description="Why the claim needs a person, e.g. `above_auto_approve_limit`, `velocity`.",
    )
    reviewDueAt: Instant = Field(
        description="When the claim is rejected with `review_timeout` if nobody decided."
    )


class ClaimApproved(_ClaimsEvent, ClaimRef):
    """A claim was approved; crediting the reward follows."""

    detail_type: ClassVar[str] = "ClaimApproved"

    reward: Amount
    reviewer: str | None = Field(
        default=None, description="The operator who approved it; null when approved automatically."
    )


class ClaimRejected(_ClaimsEvent, ClaimRef):
    """A claim was rejected, automatically or by an operator."""

    detail_type: ClassVar[str] = "ClaimRejected"

    reasons: list[SnakeCase] = Field(
        min_length=1,
        description=(
            "Rejection reason codes, e.g. `outside_window`, `duplicate_receipt`, `review_timeout`."
        ),
    )
    reviewer: str | None = Field(
        default=None, description="The operator who rejected it; null when rejected automatically."
    )


# --- rebates.wallet ------------------------------------------------------------------


class PurchaseRecorded(_WalletEvent, CustomerRef):
    """A storefront recorded a purchase (it may earn cashback)."""

    detail_type: ClassVar[str] = "PurchaseRecorded"

    orderId: Id
    channel: SalesChannel
    placedAt: Instant
    total: Amount
    items: list[LineItem] = Field(min_length=1)


class PurchaseRefunded(_WalletEvent, CustomerRef):
    """Part or all of a recorded purchase was refunded."""

    detail_type: ClassVar[str] = "PurchaseRefunded"

    orderId: Id
    refundId: Id
    amount: Amount = Field(description="Refunded amount of the order.")


class CashbackCredited(_WalletEvent, WalletEntryRef, CampaignRef):
    """Cashback was credited, pending until `availableAt` (which may be now)."""

    detail_type: ClassVar[str] = "CashbackCredited"

    claimId: Id | None = Field(
        default=None, description="The approved rebate claim paid out; null for purchase cashback."
    )
    orderId: Id | None = Field(
        default=None, description="The purchase that earned it; null for rebate payouts."
    )
    availableAt: Instant
    expiresAt: Instant | None = None

    @model_validator(mode="after")
    def _one_origin(self) -> Self:
        if (self.claimId is None) == (self.orderId is None):
            raise ValueError("exactly one of claimId and orderId must be set")
        return self


class CashbackAvailable(_WalletEvent, WalletEntryRef, CampaignRef):
    """A pending credit became spendable (its return window passed)."""

    detail_type: ClassVar[str] = "CashbackAvailable"

    expiresAt: Instant | None = None
    availableBalance: Money = Field(
        description="The customer's spendable balance after this credit."
    )


class CashbackSpent(_WalletEvent, WalletEntryRef):
    """Available cashback was spent at checkout; `entryId` is the spend entry."""

    detail_type: ClassVar[str] = "CashbackSpent"

    orderId: Id
    availableBalance: Money = Field(
        description="The customer's spendable balance after this spend."
    )


class CashbackReversed(_WalletEvent, WalletEntryRef, CampaignRef):
    """Cashback was taken back after a refund; `entryId` is the reversal entry."""

    detail_type: ClassVar[str] = "CashbackReversed"

    creditEntryId: Id = Field(description="The credit being reversed.")
    orderId: Id
    refundId: Id
    negativeAdjustment: bool = Field(
        description="True when the credit was already spent, so the balance is adjusted below zero."
    )


class CashbackExpiring(_WalletEvent, WalletEntryRef, CampaignRef):
    """Reminder that the unspent remainder of a credit expires soon; `entryId` is that credit.

    `amount` is what would expire if nothing more is spent.
    """

    detail_type: ClassVar[str] = "CashbackExpiring"

    expiresAt: Instant
    daysBefore: int = Field(ge=0, description="How many local days before `expiresAt` it is sent.")


class CashbackExpired(_WalletEvent, WalletEntryRef, CampaignRef):
    """The unspent remainder of a credit expired; `entryId` is that credit."""

    detail_type: ClassVar[str] = "CashbackExpired"


# --- rebates.notifications -----------------------------------------------------------


class NotificationSent(_NotificationsEvent, NotificationRef):
    """A message was handed to SES or SNS."""

    detail_type: ClassVar[str] = "NotificationSent"

    providerMessageId: str = Field(description="SES or SNS message id.")


class NotificationFailed(_NotificationsEvent, NotificationRef):
    """A message could not be sent and will not be retried."""

    detail_type: ClassVar[str] = "NotificationFailed"

    cause: str = Field(description="Error code and message from the provider or the renderer.")


EVENT_TYPES: dict[str, type[EventDetail]] = {
    model.detail_type: model
    for model in (
        CampaignPublished,
        CampaignRejected,
        OfferCodeIssued,
        OfferRedeemed,
        RedemptionRolledBack,
        OfferExpiring,
        PurchaseRecorded,
        PurchaseRefunded,
        ClaimSubmitted,
        ClaimNeedsReview,
        ClaimApproved,
        ClaimRejected,
        CashbackCredited,
        CashbackAvailable,
        CashbackSpent,
        CashbackReversed,
        CashbackExpiring,
        CashbackExpired,
        NotificationSent,
        NotificationFailed,
    )
}
"""Every detail-type on the bus, keyed by its name."""
