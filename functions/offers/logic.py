"""Offer rules with no I/O: what a code may do now, why not, and the API views.

A redemption is decided in two halves. The static half is here (`check_redemption`): the
campaign and offer still live, the code still one the offer gives out (a republish
retires a replaced shared code and unissued codes beyond a lowered count), the window,
the channel, whose code it is, the currency and what the cart earns. Each failure is a
reason code; the first one is the error the API answers with, and
``/v1/redemptions/validate`` lists them all. The counted half (the code's uses, the
customer's limit, the offer's ``max_total``, the budget) is decided by DynamoDB inside the
redemption transaction (`functions.offers.dal`), the only place it can be decided exactly
under concurrency; its refusals use the reason codes below too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Final

from functions.campaigns.codes import canonical_code
from functions.campaigns.config import CampaignConfig, OfferConfig
from functions.campaigns.rewards import Cart, offer_discount
from functions.campaigns.states import ACTIVE
from functions.core.clock import WindowStatus, local_date
from functions.core.errors import CurrencyMismatch
from functions.core.money import Money
from functions.core.vocabulary import SalesChannel

__all__ = [
    "COUNTED_REFUSALS",
    "CodeFacts",
    "CustomerOffers",
    "DueReminder",
    "LiveCampaign",
    "OfferFacts",
    "RedemptionCheck",
    "Refusal",
    "campaign_view",
    "check_redemption",
    "discount_view",
    "is_current_code",
    "issue_refusal",
    "offers_to_show",
    "open_offers",
    "post_purchase_offers",
    "refusal_message",
    "reminder_due",
]


class Refusal(StrEnum):
    """Why a code does not apply; the values are the API's error and reason codes."""

    CAMPAIGN_ARCHIVED = "campaign_archived"
    OFFER_ARCHIVED = "offer_archived"
    CODE_RETIRED = "code_retired"
    NOT_STARTED = "not_started"
    EXPIRED = "expired"
    WRONG_CHANNEL = "wrong_channel"
    CODE_NOT_ISSUED = "code_not_issued"
    CODE_ISSUED_TO_ANOTHER_CUSTOMER = "code_issued_to_another_customer"
    CURRENCY_MISMATCH = "currency_mismatch"
    NOT_ELIGIBLE = "not_eligible"
    BELOW_MIN_PURCHASE = "below_min_purchase"
    NO_DISCOUNT = "no_discount"
    # Counted: decided by the redemption transaction (409).
    ALREADY_REDEEMED = "already_redeemed"
    CODE_USED_UP = "code_used_up"
    CUSTOMER_LIMIT_REACHED = "customer_limit_reached"
    OFFER_LIMIT_REACHED = "offer_limit_reached"
    BUDGET_EXHAUSTED = "budget_exhausted"


_MESSAGES: Final[dict[Refusal, str]] = {
    Refusal.CAMPAIGN_ARCHIVED: "The campaign of this code has ended and was archived.",
    Refusal.OFFER_ARCHIVED: "This offer is no longer available.",
    Refusal.CODE_RETIRED: "This code has been withdrawn by the campaign and no longer works.",
    Refusal.NOT_STARTED: "The campaign of this code has not started yet.",
    Refusal.EXPIRED: "This code has expired.",
    Refusal.WRONG_CHANNEL: "This code cannot be used on this sales channel.",
    Refusal.CODE_NOT_ISSUED: "This code has not been issued to anyone yet.",
    Refusal.CODE_ISSUED_TO_ANOTHER_CUSTOMER: "This code was issued to another customer.",
    Refusal.CURRENCY_MISMATCH: "The cart is not in the campaign's currency.",
    Refusal.NOT_ELIGIBLE: "Nothing in the cart is eligible for this offer.",
    Refusal.BELOW_MIN_PURCHASE: "The eligible items do not reach the minimum purchase.",
    Refusal.NO_DISCOUNT: "This offer gives nothing off this cart.",
    Refusal.ALREADY_REDEEMED: "This order has already redeemed this code.",
    Refusal.CODE_USED_UP: "This code has already been used as many times as it may be.",
    Refusal.CUSTOMER_LIMIT_REACHED: "This customer has used this offer as often as allowed.",
    Refusal.OFFER_LIMIT_REACHED: "This offer has been redeemed as many times as it may be.",
    Refusal.BUDGET_EXHAUSTED: "The campaign's budget cannot cover this discount.",
}

# Refusals that depend on counters other requests move; the rest are properties of the
# request and the campaign. The API answers the first 409 and the others 422.
COUNTED_REFUSALS: Final = frozenset(
    {
        Refusal.ALREADY_REDEEMED,
        Refusal.CODE_USED_UP,
        Refusal.CUSTOMER_LIMIT_REACHED,
        Refusal.OFFER_LIMIT_REACHED,
        Refusal.BUDGET_EXHAUSTED,
    }
)


def refusal_message(reason: Refusal) -> str:
    """What `reason` means, for people."""
    return _MESSAGES[reason]


@dataclass(frozen=True)
class LiveCampaign:
    """A campaign as the API uses it: its parsed file and the state the table holds."""

    config: CampaignConfig
    version: int
    status: str
    budget_amount: int | None
    budget_max_rewards: int | None

    def offer(self, offer_id: str) -> OfferConfig | None:
        """The offer in this version, or None (a version that dropped it retired it)."""
        try:
            return self.config.offer(offer_id)
        except KeyError:
            return None


@dataclass(frozen=True)
class CodeFacts:
    """What the code item says about who may use it."""

    code: str
    offer_id: str
    campaign_id: str
    mode: str
    issued_to: str | None
    uses: int = 0
    max_uses: int | None = None
    # A version stopped giving it out (a shared code replaced, a unique one beyond a
    # lowered count): it is refused, whatever the campaign's file says.
    retired: bool = False


@dataclass(frozen=True)
class OfferFacts:
    """What the table says of an offer now: its state and counters (the file says the
    rest, through its campaign)."""

    offer_id: str
    campaign_id: str
    status: str
    channel: str
    code_mode: str
    shared_code: str | None
    code_prefix: str | None
    max_total: int | None
    per_customer: int | None
    redemptions_count: int
    # A purchase in the campaign issues the buyer one of its codes.
    issue_after_purchase: bool = False

    @property
    def used_up(self) -> bool:
        return self.max_total is not None and self.redemptions_count >= self.max_total


@dataclass(frozen=True)
class CustomerOffers:
    """A customer's codes and uses, by offer id (empty for an anonymous listing)."""

    customer_id: str | None
    issued: Mapping[str, str]
    uses: Mapping[str, int]


def issue_refusal(
    offer: OfferFacts, campaign: LiveCampaign | None, now: datetime
) -> Refusal | None:
    """Why `offer` cannot give out a code now, or None.

    Codes may be handed out before the campaign starts (they work from its start); after
    its end there is nothing left to give.
    """
    if offer.status != ACTIVE or campaign is None or campaign.offer(offer.offer_id) is None:
        return Refusal.OFFER_ARCHIVED
    if campaign.status != ACTIVE:
        return Refusal.CAMPAIGN_ARCHIVED
    if now >= campaign.config.ends_at:
        return Refusal.EXPIRED
    return None


def post_purchase_offers(
    campaigns: Sequence[LiveCampaign], channel: SalesChannel, placed_at: datetime
) -> list[tuple[LiveCampaign, OfferConfig]]:
    """The offers whose code a purchase on `channel` at `placed_at` issues its buyer: of
    each live campaign whose window holds the purchase, its offer with
    ``issue_after_purchase`` (a file has one at most), if that offer takes the channel.

    Whether the offer can still give out a code now is `issue_refusal`'s to say.
    """
    chosen = []
    for campaign in campaigns:
        if campaign.status != ACTIVE or not campaign.config.window.contains(placed_at):
            continue
        for offer in campaign.config.offers:
            if offer.issue_after_purchase and offer.channel in ("both", channel):
                chosen.append((campaign, offer))
    return chosen


@dataclass(frozen=True)
class DueReminder:
    """A reminder due today for every unused code of an offer."""

    # Today in the campaign's time zone: the reminder's day, one per code.
    day: date
    days_before: int
    expires_at: datetime


def reminder_due(config: CampaignConfig, offer: OfferConfig, now: datetime) -> DueReminder | None:
    """The offer's reminder due on today's local day, if one is.

    A code expires with its campaign (`ends_at`, the current file's: a republish that
    moves the end moves the reminders). "N days before" is counted in local calendar
    days, from today to the day the campaign ends on, both in the campaign's time zone:
    a campaign ending at local midnight starting June 1 reminds "3 days before" on May 29,
    whatever the hour. Nothing is due outside the campaign's window.
    """
    if not offer.reminders_days_before_expiry or not config.window.contains(now):
        return None
    today = local_date(now, config.timezone)
    days_before = (local_date(config.ends_at, config.timezone) - today).days
    if days_before not in offer.reminders_days_before_expiry:
        return None
    return DueReminder(day=today, days_before=days_before, expires_at=config.ends_at)


def open_offers(
    candidates: Sequence[tuple[OfferFacts, LiveCampaign | None]],
    channel: SalesChannel | None,
    now: datetime,
) -> list[tuple[OfferFacts, LiveCampaign]]:
    """The offers a storefront should show now on `channel` (any channel: None): live, in
    a live campaign's window, on that channel, and not used up."""
    return [
        (offer, campaign)
        for offer, campaign in candidates
        if campaign is not None and _open(offer, campaign, channel, now)
    ]


def _open(
    offer: OfferFacts, campaign: LiveCampaign, channel: SalesChannel | None, now: datetime
) -> bool:
    if campaign.status != ACTIVE or offer.status != ACTIVE:
        return False
    if not campaign.config.window.contains(now) or campaign.offer(offer.offer_id) is None:
        return False
    if channel is not None and offer.channel not in ("both", channel):
        return False
    return not offer.used_up


def offers_to_show(
    listed: Sequence[tuple[OfferFacts, LiveCampaign]],
    customer: CustomerOffers,
) -> list[dict[str, object]]:
    """The views (`functions.offers.schemas.OfferView`) of the open offers `listed`,
    without those the customer has used as often as allowed, each with their code and
    uses when a customer asks."""
    views = []
    for offer, campaign in listed:
        used = customer.uses.get(offer.offer_id, 0)
        known = customer.customer_id is not None
        if known and offer.per_customer is not None and used >= offer.per_customer:
            continue
        code = customer.issued.get(offer.offer_id)
        if code is not None and offer.code_mode == "shared":
            # The offer's code now: a republish may have replaced the one given out.
            code = offer.shared_code
        views.append(_offer_view(offer, campaign, code=code, used=used if known else None))
    return views


def _offer_view(
    offer: OfferFacts, campaign: LiveCampaign, *, code: str | None, used: int | None
) -> dict[str, object]:
    config = campaign.config
    remaining = (
        None if offer.max_total is None else max(offer.max_total - offer.redemptions_count, 0)
    )
    return {
        "offerId": offer.offer_id,
        "campaignId": offer.campaign_id,
        "channel": offer.channel,
        "discount": discount_view(config.offer(offer.offer_id), config.currency),
        "codeMode": offer.code_mode,
        "startsAt": config.starts_at,
        "endsAt": config.ends_at,
        "maxTotal": offer.max_total,
        "perCustomer": offer.per_customer,
        "remaining": remaining,
        "issuedCode": code,
        "customerUses": used,
    }


@dataclass(frozen=True)
class RedemptionCheck:
    """The static half of a redemption: the discount if every reason is absent."""

    discount: Money
    reasons: list[Refusal]

    @property
    def allowed(self) -> bool:
        return not self.reasons


def check_redemption(
    campaign: LiveCampaign,
    code: CodeFacts,
    *,
    customer_id: str,
    channel: SalesChannel,
    cart: Cart,
    now: datetime,
) -> RedemptionCheck:
    """Every static reason `code` cannot be redeemed by `customer_id` on `cart` now."""
    reasons: list[Refusal] = []
    offer = campaign.offer(code.offer_id)
    if campaign.status != ACTIVE:
        reasons.append(Refusal.CAMPAIGN_ARCHIVED)
    if offer is None:
        reasons.append(Refusal.OFFER_ARCHIVED)
    retired = code.retired or (offer is not None and not is_current_code(offer, code))
    if retired:
        reasons.append(Refusal.CODE_RETIRED)
    window = campaign.config.window.status_at(now)
    if window is WindowStatus.NOT_STARTED:
        reasons.append(Refusal.NOT_STARTED)
    elif window is WindowStatus.EXPIRED:
        reasons.append(Refusal.EXPIRED)
    if code.mode == "unique" and not retired:
        if code.issued_to is None:
            reasons.append(Refusal.CODE_NOT_ISSUED)
        elif code.issued_to != customer_id:
            reasons.append(Refusal.CODE_ISSUED_TO_ANOTHER_CUSTOMER)
    if offer is None:
        return RedemptionCheck(Money.zero(cart.currency), reasons)
    try:
        quote = offer_discount(offer, campaign.config, cart, channel)
    except CurrencyMismatch:
        reasons.append(Refusal.CURRENCY_MISMATCH)
        return RedemptionCheck(Money.zero(cart.currency), reasons)
    reasons.extend(Refusal(reason) for reason in quote.reasons)
    if quote.eligible and quote.amount.is_zero:
        reasons.append(Refusal.NO_DISCOUNT)
    return RedemptionCheck(quote.amount if not reasons else Money.zero(cart.currency), reasons)


def is_current_code(offer: OfferConfig, code: CodeFacts) -> bool:
    """Whether `code` is one the offer gives out in this version: its shared code, or one
    of its unique codes. A code left from an earlier version (a shared code replaced, the
    mode changed) is not, even before the loader has marked it retired."""
    if code.mode == "shared":
        current = offer.codes.code if offer.codes.mode == "shared" else None
        return current is not None and canonical_code(current) == code.code
    return offer.codes.mode == "unique"


# -- views ----------------------------------------------------------------------------


def _number(value: Decimal) -> int | float:
    # A percentage as the file wrote it: 10 stays 10, 12.5 is 12.5.
    return int(value) if value == value.to_integral_value() else float(value)


def discount_view(offer: OfferConfig, currency: str) -> dict[str, object]:
    discount = offer.discount
    if discount.percentage is not None:
        cap = Money.of(discount.max, currency) if discount.max is not None else None
        return {"percentage": _number(discount.percentage), "max": cap}
    return {"amount": Money.of(discount.amount or 0, currency)}


def _reward_view(config: CampaignConfig) -> dict[str, object] | None:
    reward = config.reward
    if reward is None:
        return None
    money = config.money
    cap = money(reward.max_per_reward) if reward.max_per_reward is not None else None
    if reward.fixed is not None:
        return {"fixed": money(reward.fixed), "maxPerReward": cap}
    if reward.percentage is not None:
        return {"percentage": _number(reward.percentage), "maxPerReward": cap}
    tiers = [
        {"minPurchase": money(tier.min_purchase), "amount": money(tier.amount)}
        for tier in reward.tiered or ()
    ]
    return {"tiered": tiers, "maxPerReward": cap}


def campaign_view(campaign: LiveCampaign, now: datetime) -> dict[str, object]:
    """The public fields of a campaign (`functions.offers.schemas.CampaignView`)."""
    config = campaign.config
    eligibility = config.eligibility
    claims = config.claims
    return {
        "campaignId": config.id,
        "name": config.name,
        "kind": config.kind,
        "status": campaign.status,
        "version": campaign.version,
        "currency": config.currency,
        "timezone": config.timezone,
        "startsAt": config.starts_at,
        "endsAt": config.ends_at,
        "open": campaign.status == ACTIVE and config.window.contains(now),
        "eligibility": {
            "channels": list(eligibility.channels),
            "skus": list(eligibility.skus) if eligibility.skus is not None else None,
            "categories": (
                list(eligibility.categories) if eligibility.categories is not None else None
            ),
            "minPurchase": config.money(eligibility.min_purchase),
        },
        "reward": _reward_view(config),
        "claimWindowDays": claims.window_days if claims is not None else None,
        "requireReceipt": claims.require_receipt if claims is not None else None,
        "offerIds": [offer.id for offer in config.offers],
    }
