"""The storefront API's request and response bodies for campaigns, offers and redemption.

Field names are camelCase, as in the JSON (the convention of `functions.core.event_types`).
Request amounts are integers in the minor unit of the cart's ``currency``; every amount
in a response is a money object ``{"amount", "currency"}`` (DESIGN "HTTP API"). The
OpenAPI document is generated from these models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from functions.campaigns.rewards import Cart
from functions.core.fields import MAX_CUSTOMER_ID_LENGTH, PRINTABLE, CustomerId, ExternalId
from functions.core.money import Money
from functions.core.vocabulary import CampaignKind, OfferChannel, SalesChannel

__all__ = [
    "MAX_CUSTOMER_ID_LENGTH",
    "PRINTABLE",
    "CampaignList",
    "CampaignView",
    "CustomerId",
    "DiscountView",
    "EligibilityView",
    "IssueCodeRequest",
    "IssuedCode",
    "OfferList",
    "OfferView",
    "QrView",
    "RedeemRequest",
    "Redeemed",
    "RewardView",
    "RollbackRequest",
    "RolledBack",
    "TierView",
    "ValidateRequest",
    "Validation",
]

# As typed at checkout: normalised (and refused if it cannot be a code) by the handler, so
# the error is `invalid_code` rather than a pattern message.
TypedCode = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- requests -------------------------------------------------------------------------


class IssueCodeRequest(_Body):
    customerId: CustomerId


class ValidateRequest(_Body):
    code: TypedCode
    customerId: CustomerId
    channel: SalesChannel
    cart: Cart


class RedeemRequest(_Body):
    code: TypedCode
    customerId: CustomerId
    orderId: ExternalId
    channel: SalesChannel
    storeId: ExternalId | None = None
    """The till's store, for in-store redemptions (reporting only)."""
    cart: Cart


class RollbackRequest(_Body):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    """Why, in the storefront's words: ``order_cancelled``, ``payment_failed``..."""


# -- responses ------------------------------------------------------------------------


class TierView(_Body):
    minPurchase: Money
    amount: Money


class RewardView(_Body):
    """Exactly one of fixed, percentage or tiered is set."""

    fixed: Money | None = None
    percentage: float | int | None = None
    tiered: list[TierView] | None = None
    maxPerReward: Money | None = None


class EligibilityView(_Body):
    channels: list[SalesChannel]
    skus: list[str] | None = None
    categories: list[str] | None = None
    minPurchase: Money
    """Over the eligible lines only."""


class CampaignView(_Body):
    """A campaign's public fields: no budget, no counters, no internal settings."""

    campaignId: str
    name: str
    kind: CampaignKind
    status: Literal["active", "archived"]
    version: int
    currency: str
    timezone: str
    startsAt: datetime
    endsAt: datetime
    """Exclusive."""
    open: bool
    """Whether the campaign runs now (startsAt <= now < endsAt) and is active."""
    eligibility: EligibilityView
    reward: RewardView | None
    claimWindowDays: int | None
    """Rebates: days after the purchase to claim."""
    requireReceipt: bool | None
    offerIds: list[str]


class CampaignList(_Body):
    campaigns: list[CampaignView]


class DiscountView(_Body):
    """Either ``amount``, or ``percentage`` with an optional ``max``."""

    amount: Money | None = None
    percentage: float | int | None = None
    max: Money | None = None


class OfferView(_Body):
    offerId: str
    campaignId: str
    channel: OfferChannel
    discount: DiscountView
    codeMode: Literal["unique", "shared"]
    startsAt: datetime
    endsAt: datetime
    """Exclusive: codes expire at this instant."""
    maxTotal: int | None
    perCustomer: int | None
    remaining: int | None
    """Redemptions left under maxTotal (null: unlimited); a snapshot, not a reservation."""
    issuedCode: str | None = None
    """With ``customerId``: the code already issued to that customer, if any."""
    customerUses: int | None = None
    """With ``customerId``: how many times that customer redeemed this offer."""


class OfferList(_Body):
    offers: list[OfferView]


class QrView(_Body):
    payload: str
    """What a till's scanner reads: ``REBATES1:<CODE>``."""
    svg: str
    """An inline SVG image of the QR code."""


class IssuedCode(_Body):
    code: str
    offerId: str
    campaignId: str
    mode: Literal["unique", "shared"]
    expiresAt: datetime
    qr: QrView | None
    """For in-store offers (channel ``in_store`` or ``both``), else null."""


class Validation(_Body):
    valid: bool
    discount: Money
    """What the code would take off this cart now; zero when not valid."""
    reasons: list[str]
    """Why not, as snake_case codes (the redemption's error codes)."""


class Redeemed(_Body):
    redemptionId: str
    discount: Money
    code: str
    offerId: str
    campaignId: str
    status: Literal["redeemed"]
    redeemedAt: datetime


class RolledBack(_Body):
    redemptionId: str
    status: Literal["rolled_back"]
    rolledBackAt: datetime
    alreadyRolledBack: bool
    """True when an earlier rollback had already released the usage: this one did nothing."""
