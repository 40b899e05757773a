"""The sections of a campaign file (budget, eligibility, reward, claims, cashback,
offers and their codes) as pydantic models."""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from functions.campaigns.config.fields import (
    CodeMode,
    CodePrefix,
    Count,
    NonNegativeAmount,
    OfferId,
    Percentage,
    PositiveAmount,
    SharedCode,
    Text,
)
from functions.campaigns.config.kinds import code_modes_schema
from functions.core.vocabulary import OfferChannel, SalesChannel

MAX_UNIQUE_CODES: Final = 100_000


class Section(BaseModel):
    # Docstrings (the class's and each field's) become descriptions in the JSON Schema
    # marketers' editors show, so they are written for marketers; notes for developers
    # go in comments.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def _one_of_required(*names: str) -> dict[str, Any]:
    return {"oneOf": [{"required": [name]} for name in names]}


class BudgetConfig(Section):
    """Hard caps on everything the campaign gives, never exceeded: amount, max_rewards or both."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["amount"]}, {"required": ["max_rewards"]}]}
    )

    amount: PositiveAmount | None = None
    """Total of all rewards and discounts, in the currency's minor unit."""
    max_rewards: Count | None = None
    """Number of rewards and redemptions in all."""


class EligibilityConfig(Section):
    """Which purchases count: channels, and either skus or categories (omitted: every line)."""

    channels: Annotated[tuple[SalesChannel, ...], Field(min_length=1, max_length=2)]
    skus: Annotated[tuple[Text, ...], Field(min_length=1, max_length=10_000)] | None = None
    """Only these SKUs count (exact match)."""
    categories: Annotated[tuple[Text, ...], Field(min_length=1, max_length=1_000)] | None = None
    """Only lines of these categories count (exact match)."""
    min_purchase: NonNegativeAmount = 0
    """Minimum total of the eligible lines, in the currency's minor unit (default 0)."""


class Tier(Section):
    min_purchase: NonNegativeAmount
    """Eligible total from which this tier applies."""
    amount: PositiveAmount


class RewardConfig(Section):
    """What a customer earns: exactly one of fixed, percentage or tiered."""

    model_config = ConfigDict(
        json_schema_extra={
            **_one_of_required("fixed", "percentage", "tiered"),
            "dependencies": {
                "max_per_reward": {
                    "anyOf": [{"required": ["percentage"]}, {"required": ["tiered"]}]
                }
            },
        }
    )

    fixed: PositiveAmount | None = None
    percentage: Percentage | None = None
    """Percent of the eligible total, rounded down to the minor unit."""
    tiered: Annotated[tuple[Tier, ...], Field(min_length=1, max_length=50)] | None = None
    """The highest tier reached applies; tiers ascend by min_purchase."""
    max_per_reward: PositiveAmount | None = None
    """Cap on one percentage or tiered reward."""


class LimitsConfig(Section):
    per_customer: Count | None = None
    """Rewards one customer may receive in this campaign; omitted: no limit."""


class ClaimsConfig(Section):
    """How rebate claims are verified (kind rebate only)."""

    window_days: Annotated[StrictInt, Field(ge=1, le=365)]
    """Days after the purchase (in the campaign's timezone) to submit a claim."""
    require_receipt: StrictBool = True
    """A claim needs a receipt upload (default true)."""
    auto_approve_up_to: NonNegativeAmount | None = None
    """Larger rewards go to review; 0 sends every claim to review; omitted: none does."""
    # Each claim is one Step Functions Standard execution, which lasts at most a year.
    review_timeout_hours: Annotated[StrictInt, Field(ge=1, le=24 * 300)] = 72
    """Hours a claim waits for review before it is rejected with review_timeout (default 72)."""


class CashbackConfig(Section):
    """When credited cashback becomes spendable and when it expires."""

    pending_days: Annotated[StrictInt, Field(ge=0, le=365)]
    """Return window before cashback is spendable; 0 = at once."""
    expires_after_days: Annotated[StrictInt, Field(ge=1, le=3650)] | None = None
    """Days after it becomes available; omitted: never expires."""


class DiscountConfig(Section):
    """Either percentage (with an optional max) or amount."""

    model_config = ConfigDict(
        json_schema_extra={
            **_one_of_required("percentage", "amount"),
            "dependencies": {"max": ["percentage"]},
        }
    )

    percentage: Percentage | None = None
    """Percent of the eligible total, rounded down to the minor unit."""
    max: PositiveAmount | None = None
    """Cap on a percentage discount."""
    amount: PositiveAmount | None = None
    """A fixed discount, never more than the eligible total."""


class CodesConfig(Section):
    """unique: one code per customer, generated at publish; shared: one code for everyone."""

    model_config = ConfigDict(json_schema_extra=code_modes_schema())

    mode: CodeMode
    prefix: CodePrefix | None = None
    """unique: start of every generated code."""
    count: Annotated[StrictInt, Field(ge=1, le=MAX_UNIQUE_CODES)] | None = None
    """unique: how many codes to generate; each is redeemed once."""
    code: SharedCode | None = None
    """shared: the code itself (case-insensitive, stored upper-case)."""


class UsageConfig(Section):
    max_total: Count | None = None
    """Redemptions of the offer in all; with unique codes, at most codes.count."""
    per_customer: Count | None = None
    """Redemptions by one customer."""


class OfferConfig(Section):
    """A discount given through codes at checkout."""

    id: OfferId
    """Unique across all campaigns: the API addresses offers by id alone."""
    channel: OfferChannel
    discount: DiscountConfig
    codes: CodesConfig
    usage: UsageConfig = UsageConfig()
    reminders_days_before_expiry: Annotated[
        tuple[Annotated[StrictInt, Field(ge=1, le=365)], ...], Field(max_length=10)
    ] = ()
    """Days before the campaign ends to remind customers holding an unused code."""
