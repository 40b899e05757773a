"""`CampaignConfig`, a whole campaign file, and the rules its validation runs.

The rules over the campaign's own fields (its window, the sections its kind needs, the
goals its kind can reach) read them with `CampaignConfig`'s field types, so they live
here beside it; the rules over the sections are in `rules`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Final

from pydantic import (
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    StrictStr,
    StringConstraints,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from functions.campaigns.config.document import Problem, as_mapping, is_given, read_field
from functions.campaigns.config.fields import CampaignId
from functions.campaigns.config.kinds import GOAL_KINDS, SECTION_KINDS, add_kind_schema
from functions.campaigns.config.rules import (
    budget_capped,
    claims_within_budget,
    eligibility_consistent,
    goals_consistent,
    offers_consistent,
    reward_consistent,
)
from functions.campaigns.config.sections import (
    BudgetConfig,
    CashbackConfig,
    ClaimsConfig,
    EligibilityConfig,
    GoalsConfig,
    LimitsConfig,
    OfferConfig,
    RewardConfig,
    Section,
)
from functions.core.clock import Instant, TimeZoneName, Window, format_instant
from functions.core.money import CurrencyCode, Money
from functions.core.vocabulary import CampaignKind

# A campaign is published with its offers in one DynamoDB transaction of at most 100
# items (the version, the campaign, the offers): the same figure as
# `functions.campaigns.models.MAX_OFFERS_PER_CAMPAIGN`, which a unit test keeps in step.
# Not imported from there: this package must load without PynamoDB and boto3 (the CLI).
MAX_OFFERS: Final = 98


class CampaignConfig(Section):
    """A Rebates campaign file (YAML or JSON). Amounts are integers in the minor unit of
    `currency`; instants are RFC 3339 with an offset."""

    model_config = ConfigDict(json_schema_extra=add_kind_schema)

    id: CampaignId
    name: Annotated[
        StrictStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
    ]
    kind: CampaignKind = Field(
        description=(
            "rebate: claims after purchase; cashback: earned on purchase; offer: codes only."
        )
    )
    currency: CurrencyCode
    timezone: TimeZoneName = Field(
        description="Used for display and for counting days (claim window, reminders)."
    )
    starts_at: Instant
    ends_at: Instant = Field(description="Exclusive: the campaign is over at this instant.")
    budget: BudgetConfig
    eligibility: EligibilityConfig
    reward: RewardConfig | None = Field(
        default=None, description="Required for kinds rebate and cashback."
    )
    limits: LimitsConfig = LimitsConfig()
    goals: GoalsConfig | None = Field(
        default=None, description="Optional targets; the campaign's stats show progress."
    )
    claims: ClaimsConfig | None = None
    cashback: CashbackConfig | None = Field(
        default=None,
        description="Required for kind cashback; for a rebate, how its payout is credited.",
    )
    offers: Annotated[tuple[OfferConfig, ...], Field(max_length=MAX_OFFERS)] = ()

    @model_validator(mode="wrap")
    @classmethod
    def _check_rules(
        cls, data: Any, handler: ModelWrapValidatorHandler[CampaignConfig], info: ValidationInfo
    ) -> CampaignConfig:
        config = handler(data)
        if _rules_deferred(info.context):
            return config
        document = data if isinstance(data, Mapping) else config.to_document()
        problems = rule_problems(document)
        if problems:
            # A validator can raise one error only: the rules' messages go in it together.
            # parse_campaign defers the rules and reports each at its own path instead.
            raise PydanticCustomError(
                "campaign_rules",
                "{problems}",
                {"problems": "; ".join(f"{p.path}: {p.message}" for p in problems)},
            )
        return config

    # -- helpers for the other domains --------------------------------------------------

    @property
    def window(self) -> Window:
        """When the campaign runs: ``starts_at`` included, ``ends_at`` excluded."""
        return Window(self.starts_at, self.ends_at)

    def offer(self, offer_id: str) -> OfferConfig:
        """The offer with this id; ``KeyError`` if the campaign has none."""
        for offer in self.offers:
            if offer.id == offer_id:
                return offer
        raise KeyError(f"campaign {self.id} has no offer {offer_id!r}")

    def goal_targets(self) -> dict[str, int | Decimal]:
        """The goals' targets by their key in the file (``conversions``, ``sales``,
        ``conversion_rate``, ...); empty when the campaign sets none. Money targets are
        minor units of `currency`, the conversion rate a fraction."""
        return self.goals.targets() if self.goals is not None else {}

    def money(self, amount: int) -> Money:
        """An amount of the file (minor units) as money in the campaign currency."""
        return Money.of(amount, self.currency)

    def to_document(self) -> dict[str, Any]:
        """The config as a JSON-ready file (what the data layer stores in ``config``).

        ``parse_campaign(config.to_document()) == config``: instants become UTC text,
        percentages numbers, shared codes their upper-case form.
        """
        return self.model_dump(mode="json", exclude_none=True)


DEFER_RULES: Final = "defer_campaign_rules"


def _rules_deferred(context: Any) -> bool:
    return isinstance(context, Mapping) and bool(context.get(DEFER_RULES))


def _window_ordered(document: Mapping[str, Any]) -> Iterator[Problem]:
    starts_at = read_field(document, CampaignConfig, "starts_at")
    ends_at = read_field(document, CampaignConfig, "ends_at")
    if isinstance(starts_at, datetime) and isinstance(ends_at, datetime) and ends_at <= starts_at:
        yield Problem(("ends_at",), f"must be after starts_at ({format_instant(starts_at)})")


def _sections_match_kind(document: Mapping[str, Any]) -> Iterator[Problem]:
    kind = read_field(document, CampaignConfig, "kind")
    if kind is None:
        return
    for section, kinds in SECTION_KINDS.items():
        # `offers: []` offers nothing: for kind offer it is as good as missing.
        given = is_given(document, section) and document[section] != []
        if not given and kind in kinds.required_for:
            yield Problem((section,), f"required for kind {kind}: {kinds.purpose}")
        elif given and kind not in kinds.allowed_for:
            allowed = " or ".join(sorted(kinds.allowed_for))
            yield Problem((section,), f"only for kind {allowed}: remove it or change kind")


def _goals_match_kind(document: Mapping[str, Any]) -> Iterator[Problem]:
    kind = read_field(document, CampaignConfig, "kind")
    if kind is None:
        return
    goals = as_mapping(document.get("goals"))
    for goal, (kinds, reason) in GOAL_KINDS.items():
        if is_given(goals, goal) and kind not in kinds:
            allowed = " or ".join(sorted(kinds))
            yield Problem(
                ("goals", goal), f"only for kind {allowed} ({reason}): remove it or change kind"
            )


_RULES: Final[tuple[Callable[[Mapping[str, Any]], Iterator[Problem]], ...]] = (
    _window_ordered,
    budget_capped,
    _sections_match_kind,
    eligibility_consistent,
    reward_consistent,
    goals_consistent,
    _goals_match_kind,
    claims_within_budget,
    offers_consistent,
)


def rule_problems(document: Mapping[str, Any]) -> list[Problem]:
    return [problem for rule in _RULES for problem in rule(document)]
