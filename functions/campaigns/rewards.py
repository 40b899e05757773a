"""What a cart earns under a campaign: eligibility, rewards, offer discounts. Pure rules.

Every amount is exact integer money in the cart's currency, which must be the
campaign's (`CurrencyMismatch` otherwise: there is no conversion). The order of checks
is the same for a reward and for an offer's discount:

1. the channel, when the caller knows it;
2. the eligible lines (by SKU, by category, or all) and their subtotal; no eligible line
   is ``not_eligible``, a subtotal under ``eligibility.min_purchase`` is
   ``below_min_purchase``;
3. the amount: fixed, a percentage rounded down, or the highest tier reached; then
   capped by ``max_per_reward`` (or the discount's ``max``) and by the eligible subtotal,
   so nobody is ever given more than they spent on eligible goods.

A quote that fails a check is zero with the reasons (snake_case codes, as the API and
the claim rejections use them). Whether the campaign is running is a separate question
(`check_window`), because callers answer it with different errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from functions.campaigns.config import (
    CampaignConfig,
    DiscountConfig,
    EligibilityConfig,
    OfferConfig,
    RewardConfig,
    Tier,
)
from functions.core.clock import WindowStatus
from functions.core.errors import CurrencyMismatch
from functions.core.money import MAX_AMOUNT, CurrencyCode, Money, min_of, sum_of
from functions.core.vocabulary import SalesChannel

__all__ = [
    "Cart",
    "LineItem",
    "Reason",
    "RewardQuote",
    "check_window",
    "eligible_subtotal",
    "offer_accepts_channel",
    "offer_discount",
    "reward_for",
]


class LineItem(BaseModel):
    """One line of a cart or purchase; unitPrice is in the minor unit of its currency."""

    # camelCase attribute names, as in the API's JSON: one spelling everywhere (the
    # convention of functions.core.event_types).
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    category: Annotated[StrictStr, Field(min_length=1, max_length=100)] | None = None
    quantity: Annotated[StrictInt, Field(ge=1, le=1_000_000)]
    unitPrice: Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT)]

    def total(self, currency: str) -> Money:
        return Money.of(self.unitPrice, currency).times(self.quantity)


class Cart(BaseModel):
    """Lines with their prices, all in one currency."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: CurrencyCode
    items: Annotated[tuple[LineItem, ...], Field(min_length=1, max_length=500)]

    @model_validator(mode="after")
    def _total_in_range(self) -> Self:
        # Checked here so an absurd cart is a 400 on the way in, not an error mid-quote.
        if sum(item.unitPrice * item.quantity for item in self.items) > MAX_AMOUNT:
            raise ValueError(f"the cart's total is above the largest amount ({MAX_AMOUNT})")
        return self

    @property
    def subtotal(self) -> Money:
        """The total of every line."""
        return sum_of((item.total(self.currency) for item in self.items), self.currency)


class Reason(StrEnum):
    """Why a quote is zero; the values are the API's and the claims' reason codes."""

    NOT_ELIGIBLE = "not_eligible"
    BELOW_MIN_PURCHASE = "below_min_purchase"
    WRONG_CHANNEL = "wrong_channel"
    NO_REWARD = "no_reward"


@dataclass(frozen=True)
class RewardQuote:
    """What a cart would earn (a reward or a discount), zero with reasons when nothing."""

    amount: Money
    reasons: list[str] = field(default_factory=list)

    @property
    def eligible(self) -> bool:
        return not self.reasons


# -- eligibility ----------------------------------------------------------------------


@lru_cache(maxsize=256)
def _listed(eligibility: EligibilityConfig) -> tuple[frozenset[str] | None, frozenset[str] | None]:
    # A campaign may list thousands of SKUs; sets make a quote linear in the cart size.
    # The config is frozen and hashable, so the sets are built once per campaign version.
    skus = frozenset(eligibility.skus) if eligibility.skus is not None else None
    categories = frozenset(eligibility.categories) if eligibility.categories is not None else None
    return skus, categories


def _eligible_lines(eligibility: EligibilityConfig, cart: Cart) -> list[LineItem]:
    skus, categories = _listed(eligibility)
    if skus is not None:
        return [item for item in cart.items if item.sku in skus]
    if categories is not None:
        return [item for item in cart.items if item.category in categories]
    return list(cart.items)


def _eligibility_for(campaign: CampaignConfig | EligibilityConfig, cart: Cart) -> EligibilityConfig:
    if isinstance(campaign, EligibilityConfig):
        return campaign
    if cart.currency != campaign.currency:
        raise CurrencyMismatch(campaign.currency, cart.currency)
    return campaign.eligibility


def _total(lines: list[LineItem], currency: str) -> Money:
    return sum_of((line.total(currency) for line in lines), currency)


def eligible_subtotal(campaign: CampaignConfig | EligibilityConfig, cart: Cart) -> Money:
    """The total of the cart's eligible lines (all lines when the campaign lists none).

    Given the whole campaign, the cart's currency must be the campaign's
    (`CurrencyMismatch`); given only its eligibility, the currency is not checked.
    """
    eligibility = _eligibility_for(campaign, cart)
    return _total(_eligible_lines(eligibility, cart), cart.currency)


def offer_accepts_channel(offer: OfferConfig, channel: SalesChannel) -> bool:
    return offer.channel in ("both", channel)


# -- quotes ---------------------------------------------------------------------------


def _capped(amount: Money, cap: int | None) -> Money:
    return amount if cap is None else min_of(amount, Money.of(cap, amount.currency))


def _quote(
    config: CampaignConfig,
    cart: Cart,
    channel_ok: bool,
    amount_for: Callable[[Money], Money | None],
) -> RewardQuote:
    """The common pipeline; ``amount_for`` maps the eligible subtotal to an amount, or to
    None when the subtotal reaches no tier."""
    eligibility = _eligibility_for(config, cart)
    lines = _eligible_lines(eligibility, cart)
    subtotal = _total(lines, cart.currency)
    zero = Money.zero(cart.currency)
    reasons: list[str] = [] if channel_ok else [Reason.WRONG_CHANNEL]
    if not lines:
        reasons.append(Reason.NOT_ELIGIBLE)
    elif subtotal.amount < eligibility.min_purchase:
        reasons.append(Reason.BELOW_MIN_PURCHASE)
    if reasons:
        return RewardQuote(zero, reasons)
    amount = amount_for(subtotal)
    if amount is None:
        return RewardQuote(zero, [Reason.BELOW_MIN_PURCHASE])
    return RewardQuote(min_of(amount, subtotal))


def _tier_reached(tiers: tuple[Tier, ...], subtotal: int) -> Tier | None:
    reached = [tier for tier in tiers if tier.min_purchase <= subtotal]
    return max(reached, key=lambda tier: tier.min_purchase, default=None)


def _reward_amount(reward: RewardConfig, subtotal: Money) -> Money | None:
    if reward.fixed is not None:
        amount = Money.of(reward.fixed, subtotal.currency)
    elif reward.percentage is not None:
        amount = subtotal.percentage(reward.percentage)
    else:
        tier = _tier_reached(reward.tiered or (), subtotal.amount)
        if tier is None:
            return None
        amount = Money.of(tier.amount, subtotal.currency)
    return _capped(amount, reward.max_per_reward)


def _discount_amount(discount: DiscountConfig, subtotal: Money) -> Money:
    if discount.percentage is not None:
        return _capped(subtotal.percentage(discount.percentage), discount.max)
    if discount.amount is not None:
        return Money.of(discount.amount, subtotal.currency)
    # A parsed config always has one of the two (the campaign file rules).
    raise ValueError("a discount needs a percentage or an amount")


def reward_for(
    config: CampaignConfig, cart: Cart, channel: SalesChannel | None = None
) -> RewardQuote:
    """The campaign's reward for this cart (a rebate to claim, or cashback earned).

    ``channel``, when given, must be one of ``eligibility.channels`` (else
    ``wrong_channel``). A campaign without a reward (kind offer) quotes zero with
    ``no_reward``.
    """
    reward = config.reward
    if reward is None:
        _eligibility_for(config, cart)  # a wrong currency is an error whatever the kind
        return RewardQuote(Money.zero(cart.currency), [Reason.NO_REWARD])
    channel_ok = channel is None or channel in config.eligibility.channels
    return _quote(config, cart, channel_ok, lambda subtotal: _reward_amount(reward, subtotal))


def offer_discount(
    offer: OfferConfig, config: CampaignConfig, cart: Cart, channel: SalesChannel | None = None
) -> RewardQuote:
    """The discount ``offer`` (of ``config``) gives this cart, under the campaign's
    eligibility; ``channel``, when given, must be one the offer accepts."""
    channel_ok = channel is None or offer_accepts_channel(offer, channel)
    return _quote(
        config, cart, channel_ok, lambda subtotal: _discount_amount(offer.discount, subtotal)
    )


def check_window(config: CampaignConfig, instant: datetime) -> WindowStatus | None:
    """``not_started`` or ``expired`` when ``instant`` is outside the campaign, else None.

    The result is a `WindowStatus`, a `str` equal to the reason code.
    """
    status = config.window.status_at(instant)
    return None if status is WindowStatus.OPEN else status
