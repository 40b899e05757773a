"""The storefront API's request and response bodies for purchases, refunds and the wallet.

Field names are camelCase, as in the JSON (the convention of `functions.core.event_types`).
Request amounts are strict integers in the minor unit of the ``currency`` beside them
(``1500.0`` or ``"1500"`` is refused, never coerced); every amount in a response is a
money object ``{"amount", "currency"}`` (DESIGN "HTTP API"). Ids follow the offers API:
customer ids are the storefront's opaque strings of 1-128 printable characters, compared
exactly; order, refund and store ids are opaque strings without spaces. The OpenAPI
document is generated from these models.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    model_validator,
)

from functions.campaigns.config.fields import CampaignId
from functions.campaigns.rewards import LineItem
from functions.core.clock import Instant
from functions.core.fields import MAX_CUSTOMER_ID_LENGTH, PRINTABLE, CustomerId, ExternalId
from functions.core.money import MAX_AMOUNT, CurrencyCode, Money
from functions.core.vocabulary import SalesChannel

__all__ = [
    "MAX_CUSTOMER_ID_LENGTH",
    "MAX_LINES",
    "PRINTABLE",
    "CancelledSpend",
    "ClaimCredit",
    "ClaimCredited",
    "CustomerId",
    "EarningView",
    "EntryView",
    "ExternalId",
    "LotDrawView",
    "MoveView",
    "PositiveAmount",
    "PurchaseRecordedView",
    "PurchaseRequest",
    "RefundLine",
    "RefundRecordedView",
    "RefundRequest",
    "ReversalView",
    "SpendRequest",
    "SpentView",
    "WalletBody",
]

# As a cart (`functions.campaigns.rewards.Cart`): a storefront's order has at most this
# many lines.
MAX_LINES: Final = 500

# An amount a request moves: a refund or a spend of zero is no refund or spend, and a
# negative one would run the operation backwards.
PositiveAmount = Annotated[StrictInt, Field(ge=1, le=MAX_AMOUNT)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- requests -------------------------------------------------------------------------


class PurchaseRequest(_Body):
    """A purchase the storefront recorded; it earns cashback in running cashback campaigns."""

    orderId: ExternalId
    customerId: CustomerId
    channel: SalesChannel
    placedAt: Instant
    """When the order was placed (RFC 3339 with an offset): the campaign window and the
    pending days count from here."""
    currency: CurrencyCode
    items: Annotated[tuple[LineItem, ...], Field(min_length=1, max_length=MAX_LINES)]
    total: PositiveAmount
    """What the customer paid for the order, in the minor unit of ``currency``; refunds
    are measured against it."""

    @model_validator(mode="after")
    def _lines_in_range(self) -> Self:
        # Checked here so an absurd order is a 400 on the way in, not an error mid-quote.
        if sum(item.unitPrice * item.quantity for item in self.items) > MAX_AMOUNT:
            raise ValueError(f"the items' total is above the largest amount ({MAX_AMOUNT})")
        return self


class RefundLine(_Body):
    sku: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    quantity: Annotated[StrictInt, Field(ge=1, le=1_000_000)]


class RefundRequest(_Body):
    """Either ``{refundId, amount, currency}`` or ``{refundId, items}`` (the lines refunded,
    valued at their price in the order)."""

    refundId: ExternalId
    amount: PositiveAmount | None = None
    currency: CurrencyCode | None = None
    items: Annotated[tuple[RefundLine, ...], Field(min_length=1, max_length=MAX_LINES)] | None = (
        None
    )

    @model_validator(mode="after")
    def _amount_or_items(self) -> Self:
        by_amount = self.amount is not None or self.currency is not None
        if by_amount and self.items is not None:
            raise ValueError("give either amount and currency, or items, not both")
        if self.items is None and (self.amount is None or self.currency is None):
            raise ValueError("give amount and currency, or items")
        if self.items is not None:
            skus = [line.sku for line in self.items]
            if len(set(skus)) != len(skus):
                raise ValueError("each sku appears once in items")
        return self


class SpendRequest(_Body):
    """Cashback spent at checkout on the order ``orderId``."""

    orderId: ExternalId
    amount: PositiveAmount
    currency: CurrencyCode


# -- responses ------------------------------------------------------------------------


class EarningView(_Body):
    campaignId: str
    outcome: str
    """``credited``, or why the purchase earned nothing in this campaign:
    ``below_min_purchase``, ``not_eligible``, ``wrong_channel``, ``currency_mismatch``,
    ``outside_window``, ``budget_exhausted``, ``limit_reached``, ``no_reward``."""
    amount: Money | None = None
    """Credited: the cashback earned."""
    availableAt: Instant | None = None
    """Credited: when it becomes spendable."""


class PurchaseRecordedView(_Body):
    orderId: str
    customerId: str
    earnings: list[EarningView]
    """One per running cashback campaign the purchase was measured against."""


class ReversalView(_Body):
    campaignId: str
    lotId: str
    reversed: Money
    """Cashback taken back from this lot by the refund."""
    owed: Money
    """The part of it already spent: the customer owes it, settled from later credits."""


class RefundRecordedView(_Body):
    orderId: str
    refundId: str
    amount: Money
    """This refund."""
    refundedTotal: Money
    """Every refund of the order so far, this one included."""
    reversals: list[ReversalView]


class LotDrawView(_Body):
    lotId: str
    campaignId: str
    amount: Money


class SpentView(_Body):
    spendId: str
    orderId: str
    amount: Money
    lots: list[LotDrawView]
    """The lots drawn from, the one expiring first first."""
    available: Money
    """The available balance after this spend."""


class CancelledSpend(_Body):
    spendId: str
    orderId: str
    amount: Money
    status: Literal["cancelled"]
    alreadyCancelled: bool
    """True when an earlier cancel had already returned the spend: this one did nothing."""


class MoveView(_Body):
    at: Instant
    amount: Money


class EntryView(_Body):
    entryId: str
    kind: str
    """``credit``, ``release``, ``spend``, ``cancel``, ``reverse``, ``expire``, ``settle``."""
    amount: Money
    recordedAt: Instant
    campaignId: str | None
    orderId: str | None
    claimId: str | None
    refundId: str | None
    lots: list[LotDrawView]


class WalletBody(_Body):
    customerId: str
    available: Money
    pending: Money
    owed: Money
    """Cashback reversed after it was spent; settled first from the next credits."""
    nextRelease: MoveView | None
    nextExpiry: MoveView | None
    entries: list[EntryView]
    """Newest first."""
    nextToken: str | None = None
    """Pass it back as ``nextToken`` for the next page of entries; null on the last page."""


# -- the claims workflow's credit (a Lambda task, not an HTTP route) ---------------------


class ClaimCredit(_Body):
    """What the claims state machine hands the credit function: an approved claim's reward."""

    # Strict: the state machine builds this from its own state, so anything coerced would
    # be a bug upstream, better seen than guessed at.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    customerId: CustomerId
    campaignId: CampaignId
    claimId: ExternalId
    amount: Money
    approvedAt: Instant

    @model_validator(mode="after")
    def _positive(self) -> Self:
        if not self.amount.is_positive:
            raise ValueError("amount must be positive: a credit of nothing is no credit")
        return self


class ClaimCredited(_Body):
    """The credit function's answer: the lot made for the claim (or made before, ``new``
    false, when the workflow retried the task)."""

    lotId: str
    entryId: str
    amount: Money
    availableAt: Instant
    expiresAt: Instant | None
    new: bool
