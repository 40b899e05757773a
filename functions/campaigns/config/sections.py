"""The sections of a campaign file (budget, eligibility, reward, limits, goals, claims,
cashback, offers and their codes) as pydantic models."""

from __future__ import annotations

from decimal import Decimal
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
    Rate,
    SharedCode,
    Text,
)
from functions.campaigns.config.kinds import code_modes_schema
from functions.core.vocabulary import OfferChannel, SalesChannel

MAX_UNIQUE_CODES: Final = 100_000


class Section(BaseModel):
    # Class docstrings and field descriptions become descriptions in the JSON Schema
    # marketers' editors show, so they are written for marketers; notes for developers
    # go in comments. Descriptions are given in `Field` rather than as attribute
    # docstrings: reading those means parsing the source of every model at import, which
    # every cold start would pay.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_of_required(*names: str) -> dict[str, Any]:
    return {"oneOf": [{"required": [name]} for name in names]}


class BudgetConfig(Section):
    """Hard caps on everything the campaign gives, never exceeded: amount, max_rewards or both."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["amount"]}, {"required": ["max_rewards"]}]}
    )

    amount: PositiveAmount | None = Field(
        default=None,
        description="Total of all rewards and discounts, in the currency's minor unit.",
    )
    max_rewards: Count | None = Field(
        default=None, description="Number of rewards and redemptions in all."
    )


class EligibilityConfig(Section):
    """Which purchases count: channels, and either skus or categories (omitted: every line)."""

    channels: Annotated[tuple[SalesChannel, ...], Field(min_length=1, max_length=2)]
    skus: Annotated[tuple[Text, ...], Field(min_length=1, max_length=10_000)] | None = Field(
        default=None, description="Only these SKUs count (exact match)."
    )
    categories: Annotated[tuple[Text, ...], Field(min_length=1, max_length=1_000)] | None = Field(
        default=None, description="Only lines of these categories count (exact match)."
    )
    min_purchase: NonNegativeAmount = Field(
        default=0,
        description=(
            "Minimum total of the eligible lines, in the currency's minor unit (default 0)."
        ),
    )


class Tier(Section):
    min_purchase: NonNegativeAmount = Field(
        description="Eligible total from which this tier applies."
    )
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
    percentage: Percentage | None = Field(
        default=None, description="Percent of the eligible total, rounded down to the minor unit."
    )
    tiered: Annotated[tuple[Tier, ...], Field(min_length=1, max_length=50)] | None = Field(
        default=None, description="The highest tier reached applies; tiers ascend by min_purchase."
    )
    max_per_reward: PositiveAmount | None = Field(
        default=None, description="Cap on one percentage or tiered reward."
    )


class LimitsConfig(Section):
    per_customer: Count | None = Field(
        default=None,
        description="Rewards one customer may receive in this campaign; omitted: no limit.",
    )


class GoalsConfig(Section):
    """Targets for the whole campaign, shown beside the actual figures: at least one of them."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    conversions: Count | None = Field(
        default=None, description="Purchases to reach, counted once per visit (session)."
    )
    sales: PositiveAmount | None = Field(
        default=None, description="Total sales to reach, in the currency's minor unit."
    )
    conversion_rate: Rate | None = Field(
        default=None, description="Share of visits (sessions) that end in a purchase."
    )
    redemptions: Count | None = Field(
        default=None, description="Codes redeemed at checkout (the campaign needs offers)."
    )
    claims_approved: Count | None = Field(
        default=None, description="Rebate claims approved (kind rebate only)."
    )
    cost_per_acquisition: PositiveAmount | None = Field(
        default=None,
        description=(
            "Most to spend per new customer (discounts and rewards paid), in the currency's "
            "minor unit: lower is better."
        ),
    )

    def targets(self) -> dict[str, int | Decimal]:
        """The targets given, by their key in the file (conversions, sales, ...), in the
        order this section lists them."""
        return {name: value for name, value in self if value is not None}


class ClaimsConfig(Section):
    """How rebate claims are verified (kind rebate only)."""

    window_days: Annotated[StrictInt, Field(ge=1, le=365)] = Field(
        description="Days after the purchase (in the campaign's timezone) to submit a claim."
    )
    require_receipt: StrictBool = Field(
        default=True, description="A claim needs a receipt upload (default true)."
    )
    auto_approve_up_to: NonNegativeAmount | None = Field(
        default=None,
        description=(
            "Larger rewards go to review; 0 sends every claim to review; omitted: none does."
        ),
    )
    # Each claim is one Step Functions Standard execution, which lasts at most a year.
    review_timeout_hours: Annotated[StrictInt, Field(ge=1, le=24 * 300)] = Field(
        default=72,
        description=(
            "Hours a claim waits for review before it is rejected with review_timeout (default 72)."
        ),
    )


class CashbackConfig(Section):
    """When credited cashback becomes spendable and when it expires."""

    pending_days: Annotated[StrictInt, Field(ge=0, le=365)] = Field(
        description="Return window before cashback is spendable; 0 = at once."
    )
    expires_after_days: Annotated[StrictInt, Field(ge=1, le=3650)] | None = Field(
        default=None, description="Days after it becomes available; omitted: never expires."
    )


class DiscountConfig(Section):
    """Either percentage (with an optional max) or amount."""

    model_config = ConfigDict(
        json_schema_extra={
            **_one_of_required("percentage", "amount"),
            "dependencies": {"max": ["percentage"]},
        }
    )

    percentage: Percentage | None = Field(
        default=None, description="Percent of the eligible total, rounded down to the minor unit."
    )
    max: PositiveAmount | None = Field(default=None, description="Cap on a percentage discount.")
    amount: PositiveAmount | None = Field(
        default=None, description="A fixed discount, never more than the eligible total."
    )


class CodesConfig(Section):
    """unique: one code per customer, generated at publish; shared: one code for everyone."""

    model_config = ConfigDict(json_schema_extra=code_modes_schema())

    mode: CodeMode
    prefix: CodePrefix | None = Field(
        default=None, description="unique: start of every generated code."
    )
    count: Annotated[StrictInt, Field(ge=1, le=MAX_UNIQUE_CODES)] | None = Field(
        default=None, description="unique: how many codes to generate; each is redeemed once."
    )
    code: SharedCode | None = Field(
        default=None, description="shared: the code itself (case-insensitive, stored upper-case)."
    )


class UsageConfig(Section):
    max_total: Count | None = Field(
        default=None,
        description="Redemptions of the offer in all; with unique codes, at most codes.count.",
    )
    per_customer: Count | None = Field(default=None, description="Redemptions by one customer.")


class OfferConfig(Section):
    """A discount given through codes at checkout."""

    id: OfferId = Field(
        description="Unique across all campaigns: the API addresses offers by id alone."
    )
    channel: OfferChannel
    discount: DiscountConfig
    codes: CodesConfig
    usage: UsageConfig = UsageConfig()
    reminders_days_before_expiry: Annotated[
        tuple[Annotated[StrictInt, Field(ge=1, le=365)], ...], Field(max_length=10)
    ] = Field(
        default=(),
        description="Days before the campaign ends to remind customers holding an unused code.",
    )
    # Either code mode: a unique offer gives the buyer one of its pool's codes, a shared
    # one tells them its code (as asking for it would). One offer per campaign at most.
    issue_after_purchase: StrictBool = Field(
        default=False,
        description=(
            "A purchase recorded in the campaign's window, on a channel the offer takes, "
            "issues the buyer one of this offer's codes (unique codes: one of its own; "
            "shared: the offer's code), once per customer. At most one offer of a campaign."
        ),
    )
