"""The campaign file a marketer writes, as pydantic models: the single source of truth.

The same models validate an upload to the campaigns bucket, run behind
`rebates campaigns validate FILE`, re-read a published campaign's stored ``config``, and
generate ``events/campaign.schema.json``.

Validation has two layers, so that a file with five mistakes gets five errors at once:

- the *shape*: the models themselves (types, ranges, formats, unknown keys). pydantic
  reports every field error it finds in one pass;
- the *rules* that relate fields to each other (``starts_at`` before ``ends_at``, exactly
  one kind of reward, the sections a kind needs, ...). pydantic skips a model's own
  validators as soon as one of its fields fails, which would hide these behind the first
  typo, so the rules read the raw document instead: each reads only the values it needs,
  each validated with the field's own type, and says nothing when one of them is
  missing or invalid (the shape layer already reported it). Every rule reports at the
  precise path of the value to fix.

`parse_campaign` runs both and raises `CampaignFileError` with every error. A
`CampaignConfig.model_validate` on its own enforces the rules too (it raises on the
first layer that fails), so no caller can hold a config that breaks them.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import PurePosixPath
from typing import Annotated, Any, Final, Literal, NamedTuple, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ModelWrapValidatorHandler,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from functions.core.clock import Instant, TimeZoneName, Window, format_instant
from functions.core.event_types import CampaignKind, OfferChannel, SalesChannel
from functions.core.money import MAX_AMOUNT, CurrencyCode, Money
from functions.core.validation import format_location

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_OFFERS",
    "BudgetConfig",
    "CampaignConfig",
    "CampaignFileError",
    "CashbackConfig",
    "ClaimsConfig",
    "CodesConfig",
    "DiscountConfig",
    "EligibilityConfig",
    "LimitsConfig",
    "OfferConfig",
    "RewardConfig",
    "Tier",
    "UsageConfig",
    "campaign_json_schema",
    "load_campaign_file",
    "parse_campaign",
    "read_campaign_document",
]

# A campaign is published with its offers in one DynamoDB transaction of at most 100
# items (the version, the campaign, the offers): the same figure as
# `functions.campaigns.models.MAX_OFFERS_PER_CAMPAIGN`, which a unit test keeps in step.
# Not imported from there: this module must load without PynamoDB and boto3 (the CLI).
MAX_OFFERS: Final = 98
MAX_UNIQUE_CODES: Final = 100_000
# Campaign files are a few kilobytes; the caps keep a hostile or broken upload (a YAML
# alias bomb expands exponentially while staying small) from exhausting the loader.
MAX_FILE_BYTES: Final = 1024 * 1024
_MAX_VALUES: Final = 100_000

# -- field types ----------------------------------------------------------------------


def _text_only(value: object) -> object:
    # YAML reads unquoted 2027, 00123 or 1e3 as numbers; say so instead of pydantic's
    # bare "Input should be a valid string".
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise PydanticCustomError(
            "text_expected",
            "expected text, got the number {value}: put it in quotes",
            {"value": value},
        )
    return value


@dataclass(frozen=True)
class _Format:
    """Marker for a text field of fixed shape, with a message that says what is expected."""

    pattern: str
    expected: str
    upper: bool = False

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        checked = core_schema.no_info_after_validator_function(self._check, handler(source))
        return core_schema.no_info_before_validator_function(_text_only, checked)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = f"^{self.pattern}$"
        return json_schema

    def _check(self, value: str) -> str:
        if re.fullmatch(self.pattern, value, re.ASCII) is None:
            raise PydanticCustomError(
                "invalid_format",
                "'{value}' is not valid: {expected}",
                {"value": value, "expected": self.expected},
            )
        # Codes are case-insensitive on input and stored upper-case (DESIGN).
        return value.upper() if self.upper else value


def _whole_minor_units(value: object) -> object:
    # The most likely mistake is writing major units ("12.5" dollars): name the rule.
    if isinstance(value, float | Decimal):
        raise PydanticCustomError(
            "minor_units",
            "amounts are whole numbers in the minor unit of the campaign currency "
            "(JPY 1500 is 1500, USD 15.00 is 1500), not {value}",
            {"value": str(value)},
        )
    return value


def _percentage_in(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise PydanticCustomError(
            "percentage", "a percentage is a number such as 10 or 12.5, not text"
        )
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PydanticCustomError("percentage", "a percentage must be a finite number")
        # repr is the shortest text that reads back as this float: what the file said.
        return Decimal(repr(value))
    return value


def _percentage_out(value: Decimal) -> int | float:
    # JSON has no decimal type: 10 stays 10 and 12.5 becomes the float 12.5, whose repr
    # (at most two decimals, at most 100) reads back as exactly the same Decimal.
    return int(value) if value == value.to_integral_value() else float(value)


Text = Annotated[StrictStr, BeforeValidator(_text_only), Field(min_length=1, max_length=100)]
CampaignId = Annotated[
    StrictStr, _Format(r"[a-z0-9-]{3,64}", "use 3 to 64 lower-case letters, digits or hyphens")
]
OfferId = Annotated[
    StrictStr, _Format(r"[A-Za-z0-9_-]{1,64}", "use 1 to 64 letters, digits, _ or -")
]
CodePrefix = Annotated[
    StrictStr,
    _Format(
        r"[A-Z0-9]{1,12}",
        "use 1 to 12 upper-case letters or digits (or leave prefix out: the offer id is used)",
    ),
]
SharedCode = Annotated[
    StrictStr,
    _Format(r"[A-Za-z0-9-]{3,32}", "use 3 to 32 letters, digits or hyphens", upper=True),
]
# The constraints come before the float check so that they stay JSON Schema keywords.
PositiveAmount = Annotated[
    StrictInt, Field(gt=0, le=MAX_AMOUNT), BeforeValidator(_whole_minor_units)
]
NonNegativeAmount = Annotated[
    StrictInt, Field(ge=0, le=MAX_AMOUNT), BeforeValidator(_whole_minor_units)
]
Count = Annotated[StrictInt, Field(ge=1, le=MAX_AMOUNT)]
Percentage = Annotated[
    Decimal,
    BeforeValidator(_percentage_in),
    Field(gt=0, le=100, decimal_places=2),
    PlainSerializer(_percentage_out, when_used="json"),
    WithJsonSchema(
        {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 100,
            "description": "percent, at most 2 decimals",
        }
    ),
]
CodeMode = Literal["unique", "shared"]


# -- what each kind of campaign needs ------------------------------------------------


@dataclass(frozen=True)
class _SectionKinds:
    required_for: frozenset[str]
    allowed_for: frozenset[str]
    purpose: str


_ALL_KINDS: Final = frozenset(get_args(CampaignKind))
# Which kinds of campaign need or take each optional section. The rule below and the
# JSON Schema's conditionals are both generated from this table.
_SECTION_KINDS: Final[Mapping[str, _SectionKinds]] = {
    "reward": _SectionKinds(frozenset({"rebate", "cashback"}), _ALL_KINDS, "what a customer earns"),
    "claims": _SectionKinds(
        frozenset({"rebate"}), frozenset({"rebate"}), "how claims are verified"
    ),
    "cashback": _SectionKinds(frozenset({"cashback"}), _ALL_KINDS, "when cashback is spendable"),
    "offers": _SectionKinds(frozenset({"offer"}), _ALL_KINDS, "at least one offer"),
}


def _add_kind_schema(schema: dict[str, Any]) -> None:
    """The sections each kind needs or refuses, as draft-07 conditionals (for editors)."""
    conditions = []
    for kind in sorted(_ALL_KINDS):
        required = sorted(s for s, k in _SECTION_KINDS.items() if kind in k.required_for)
        refused = sorted(s for s, k in _SECTION_KINDS.items() if kind not in k.allowed_for)
        then: dict[str, Any] = {"required": required} if required else {}
        if refused:
            then["not"] = {"anyOf": [{"required": [section]} for section in refused]}
        when = {"required": ["kind"], "properties": {"kind": {"const": kind}}}
        conditions.append({"if": when, "then": then})
    schema["allOf"] = conditions


# -- sections -------------------------------------------------------------------------


class _Section(BaseModel):
    # Docstrings (the class's and each field's) become descriptions in the JSON Schema
    # marketers' editors show, so they are written for marketers; notes for developers
    # go in comments.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def _one_of_required(*names: str) -> dict[str, Any]:
    return {"oneOf": [{"required": [name]} for name in names]}


class BudgetConfig(_Section):
    """Hard caps on everything the campaign gives, never exceeded: amount, max_rewards or both."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["amount"]}, {"required": ["max_rewards"]}]}
    )

    amount: PositiveAmount | None = None
    """Total of all rewards and discounts, in the currency's minor unit."""
    max_rewards: Count | None = None
    """Number of rewards and redemptions in all."""


class EligibilityConfig(_Section):
    """Which purchases count: channels, and either skus or categories (omitted: every line)."""

    channels: Annotated[tuple[SalesChannel, ...], Field(min_length=1, max_length=2)]
    skus: Annotated[tuple[Text, ...], Field(min_length=1, max_length=10_000)] | None = None
    """Only these SKUs count (exact match)."""
    categories: Annotated[tuple[Text, ...], Field(min_length=1, max_length=1_000)] | None = None
    """Only lines of these categories count (exact match)."""
    min_purchase: NonNegativeAmount = 0
    """Minimum total of the eligible lines, in the currency's minor unit (default 0)."""


class Tier(_Section):
    min_purchase: NonNegativeAmount
    """Eligible total from which this tier applies."""
    amount: PositiveAmount


class RewardConfig(_Section):
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


class LimitsConfig(_Section):
    per_customer: Count | None = None
    """Rewards one customer may receive in this campaign; omitted: no limit."""


class ClaimsConfig(_Section):
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


class CashbackConfig(_Section):
    """When credited cashback becomes spendable and when it expires."""

    pending_days: Annotated[StrictInt, Field(ge=0, le=365)]
    """Return window before cashback is spendable; 0 = at once."""
    expires_after_days: Annotated[StrictInt, Field(ge=1, le=3650)] | None = None
    """Days after it becomes available; omitted: never expires."""


class DiscountConfig(_Section):
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


# Which keys each code mode takes (besides `mode`): required, then optional. The rules
# and the JSON Schema are both generated from this table.
_CODE_MODE_KEYS: Final[Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "unique": (("count",), ("prefix",)),
    "shared": (("code",), ()),
}


def _code_modes_schema() -> dict[str, Any]:
    every_key = {
        key for required, optional in _CODE_MODE_KEYS.values() for key in (*required, *optional)
    }
    return {
        "oneOf": [
            {
                "properties": {"mode": {"const": mode}},
                "required": ["mode", *required],
                "not": {
                    "anyOf": [
                        {"required": [key]} for key in sorted(every_key - {*required, *optional})
                    ]
                },
            }
            for mode, (required, optional) in _CODE_MODE_KEYS.items()
        ]
    }


class CodesConfig(_Section):
    """unique: one code per customer, generated at publish; shared: one code for everyone."""

    model_config = ConfigDict(json_schema_extra=_code_modes_schema())

    mode: CodeMode
    prefix: CodePrefix | None = None
    """unique: start of every generated code."""
    count: Annotated[StrictInt, Field(ge=1, le=MAX_UNIQUE_CODES)] | None = None
    """unique: how many codes to generate; each is redeemed once."""
    code: SharedCode | None = None
    """shared: the code itself (case-insensitive, stored upper-case)."""


class UsageConfig(_Section):
    max_total: Count | None = None
    """Redemptions of the offer in all; with unique codes, at most codes.count."""
    per_customer: Count | None = None
    """Redemptions by one customer."""


class OfferConfig(_Section):
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


class CampaignConfig(_Section):
    """A Rebates campaign file (YAML or JSON). Amounts are integers in the minor unit of
    `currency`; instants are RFC 3339 with an offset."""

    model_config = ConfigDict(json_schema_extra=_add_kind_schema)

    id: CampaignId
    name: Annotated[
        StrictStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
    ]
    kind: CampaignKind
    """rebate: claims after purchase; cashback: earned on purchase; offer: codes only."""
    currency: CurrencyCode
    timezone: TimeZoneName
    """Used for display and for counting days (claim window, reminders)."""
    starts_at: Instant
    ends_at: Instant
    """Exclusive: the campaign is over at this instant."""
    budget: BudgetConfig
    eligibility: EligibilityConfig
    reward: RewardConfig | None = None
    """Required for kinds rebate and cashback."""
    limits: LimitsConfig = LimitsConfig()
    claims: ClaimsConfig | None = None
    cashback: CashbackConfig | None = None
    """Required for kind cashback; for a rebate, how its payout is credited."""
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
        problems = _rule_problems(document)
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

    def money(self, amount: int) -> Money:
        """An amount of the file (minor units) as money in the campaign currency."""
        return Money.of(amount, self.currency)

    def to_document(self) -> dict[str, Any]:
        """The config as a JSON-ready file (what the data layer stores in ``config``).

        ``parse_campaign(config.to_document()) == config``: instants become UTC text,
        percentages numbers, shared codes their upper-case form.
        """
        return self.model_dump(mode="json", exclude_none=True)


# -- rules ----------------------------------------------------------------------------

Location = tuple[str | int, ...]


class _Problem(NamedTuple):
    location: Location
    message: str

    @property
    def path(self) -> str:
        return format_location(self.location)


_DEFER_RULES: Final = "defer_campaign_rules"


def _rules_deferred(context: Any) -> bool:
    return isinstance(context, Mapping) and bool(context.get(_DEFER_RULES))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> list[tuple[int, Any]]:
    return list(enumerate(value)) if isinstance(value, list | tuple) else []


def _given(section: Mapping[str, Any], key: str) -> bool:
    # An explicit null (`reward:` with nothing after it) reads as absent, as in the models.
    return section.get(key) is not None


@cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    field = model.model_fields[name]
    # The field's type with its constraints and validators (they live on the FieldInfo).
    field_type: Any = Annotated[field.annotation, field]
    return TypeAdapter(field_type)


@cache
def _item_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    item_type = _tuple_item_type(model.model_fields[name].annotation)
    if item_type is None:
        raise TypeError(f"{model.__name__}.{name} is not a list")
    return TypeAdapter(item_type)


def _tuple_item_type(annotation: Any) -> Any:
    if get_origin(annotation) is tuple:
        return get_args(annotation)[0]
    for argument in get_args(annotation):
        found = _tuple_item_type(argument)
        if found is not None:
            return found
    return None


def _validated(adapter: TypeAdapter[Any], raw: Any) -> Any:
    try:
        return adapter.validate_python(raw)
    except ValidationError:
        return None


def _read(section: Mapping[str, Any], model: type[BaseModel], name: str) -> Any:
    """``section[name]`` as ``model`` would hold it; None when absent or invalid (then the
    shape layer reports it, and a rule built on it has nothing to say)."""
    raw = section.get(name)
    return None if raw is None else _validated(_field_adapter(model, name), raw)


def _read_items(
    section: Mapping[str, Any], model: type[BaseModel], name: str, at: Location
) -> list[tuple[Location, Any]]:
    """Each item of the list ``section[name]``, validated on its own, with its location."""
    adapter = _item_adapter(model, name)
    return [
        ((*at, name, index), _validated(adapter, raw)) for index, raw in _items(section.get(name))
    ]


def _repeats(values: Iterable[tuple[Location, Hashable | None]]) -> Iterator[_Problem]:
    first_seen: dict[Hashable, Location] = {}
    for location, value in values:
        if value is None:
            continue
        if value in first_seen:
            yield _Problem(
                location,
                f"'{value}' is listed twice (first at {format_location(first_seen[value])})",
            )
        else:
            first_seen[value] = location


def _exactly_one(
    section: Mapping[str, Any], at: Location, names: tuple[str, ...]
) -> Iterator[_Problem]:
    given = [name for name in names if _given(section, name)]
    if len(given) != 1:
        choices = ", ".join(names[:-1]) + f" or {names[-1]}"
        extra = f", not {' and '.join(given)}" if given else ""
        yield _Problem(at, f"give exactly one of {choices}{extra}")


def _cap_on_fixed(
    section: Mapping[str, Any], at: Location, cap: str, fixed: str, shares: tuple[str, ...]
) -> Iterator[_Problem]:
    # Only when the fixed kind is the one chosen: with no kind at all, or with several,
    # the "exactly one of" error already says what to fix.
    chosen_fixed = _given(section, fixed) and not any(_given(section, n) for n in shares)
    if _given(section, cap) and chosen_fixed:
        kinds = " or ".join(shares)
        yield _Problem((*at, cap), f"only caps a {kinds} {at[-1]}, not one given as {fixed}")


def _window_ordered(document: Mapping[str, Any]) -> Iterator[_Problem]:
    starts_at = _read(document, CampaignConfig, "starts_at")
    ends_at = _read(document, CampaignConfig, "ends_at")
    if isinstance(starts_at, datetime) and isinstance(ends_at, datetime) and ends_at <= starts_at:
        yield _Problem(("ends_at",), f"must be after starts_at ({format_instant(starts_at)})")


def _budget_capped(document: Mapping[str, Any]) -> Iterator[_Problem]:
    budget = document.get("budget")
    if isinstance(budget, Mapping) and not any(
        _given(budget, k) for k in ("amount", "max_rewards")
    ):
        yield _Problem(("budget",), "give amount, max_rewards or both: a campaign needs a hard cap")


def _sections_match_kind(document: Mapping[str, Any]) -> Iterator[_Problem]:
    kind = _read(document, CampaignConfig, "kind")
    if kind is None:
        return
    for section, kinds in _SECTION_KINDS.items():
        # `offers: []` offers nothing: for kind offer it is as good as missing.
        given = _given(document, section) and document[section] != []
        if not given and kind in kinds.required_for:
            yield _Problem((section,), f"required for kind {kind}: {kinds.purpose}")
        elif given and kind not in kinds.allowed_for:
            allowed = " or ".join(sorted(kinds.allowed_for))
            yield _Problem((section,), f"only for kind {allowed}: remove it or change kind")


def _eligibility_consistent(document: Mapping[str, Any]) -> Iterator[_Problem]:
    eligibility = _mapping(document.get("eligibility"))
    at: Location = ("eligibility",)
    if _given(eligibility, "skus") and _given(eligibility, "categories"):
        yield _Problem(at, "give skus or categories, not both (omit both: every product counts)")
    for name in ("channels", "skus", "categories"):
        yield from _repeats(_read_items(eligibility, EligibilityConfig, name, at))


def _reward_consistent(document: Mapping[str, Any]) -> Iterator[_Problem]:
    reward = document.get("reward")
    if not isinstance(reward, Mapping):
        return
    at: Location = ("reward",)
    yield from _exactly_one(reward, at, ("fixed", "percentage", "tiered"))
    yield from _cap_on_fixed(reward, at, "max_per_reward", "fixed", ("percentage", "tiered"))
    yield from _tiers_ascend(reward)


def _tiers_ascend(reward: Mapping[str, Any]) -> Iterator[_Problem]:
    tiers = [
        (
            ("reward", "tiered", index),
            _read(tier, Tier, "min_purchase"),
            _read(tier, Tier, "amount"),
        )
        for index, tier in _items(reward.get("tiered"))
        if isinstance(tier, Mapping)
    ]
    highest_minimum: int | None = None
    for location, minimum, _ in tiers:
        if minimum is None:
            continue
        if highest_minimum is not None and minimum <= highest_minimum:
            yield _Problem(
                (*location, "min_purchase"),
                f"tiers must ascend by min_purchase: {minimum} is not above {highest_minimum}, "
                "the min_purchase of an earlier tier",
            )
        highest_minimum = max(minimum, highest_minimum or 0)
    # Amounts are judged in min_purchase order, so a misordered tier is one error, not two.
    ordered = sorted(
        (t for t in tiers if t[1] is not None and t[2] is not None), key=lambda t: t[1]
    )
    best: tuple[int, int] | None = None
    for location, minimum, amount in ordered:
        if best is not None and amount < best[1] and minimum > best[0]:
            yield _Problem(
                (*location, "amount"),
                f"a bigger purchase must not earn less: {amount} is below {best[1]}, "
                f"the amount of the tier from {best[0]}",
            )
        if best is None or amount >= best[1]:
            best = (minimum, amount)


def _claims_within_budget(document: Mapping[str, Any]) -> Iterator[_Problem]:
    auto_approve = _read(_mapping(document.get("claims")), ClaimsConfig, "auto_approve_up_to")
    budget = _read(_mapping(document.get("budget")), BudgetConfig, "amount")
    if auto_approve is not None and budget is not None and auto_approve > budget:
        yield _Problem(
            ("claims", "auto_approve_up_to"), f"must not exceed budget.amount ({budget})"
        )


def _offers_consistent(document: Mapping[str, Any]) -> Iterator[_Problem]:
    offers = [
        (index, raw) for index, raw in _items(document.get("offers")) if isinstance(raw, Mapping)
    ]
    # Offer ids are global and codes are matched across offers: a repeat is ambiguous.
    yield from _repeats(
        (("offers", i, "id"), _read(offer, OfferConfig, "id")) for i, offer in offers
    )
    yield from _repeats(
        (("offers", i, "codes", "code"), _shared_code(offer)) for i, offer in offers
    )
    channels = _read(_mapping(document.get("eligibility")), EligibilityConfig, "channels")
    for index, offer in offers:
        at: Location = ("offers", index)
        yield from _offer_channel_eligible(offer, at, channels)
        yield from _discount_consistent(offer.get("discount"), (*at, "discount"))
        yield from _codes_match_mode(_mapping(offer.get("codes")), (*at, "codes"))
        yield from _usage_reachable(offer, at)
        yield from _repeats(_read_items(offer, OfferConfig, "reminders_days_before_expiry", at))


def _shared_code(offer: Mapping[str, Any]) -> str | None:
    codes = _mapping(offer.get("codes"))
    code: str | None = _read(codes, CodesConfig, "code")
    return code if _read(codes, CodesConfig, "mode") == "shared" else None


def _offer_channel_eligible(
    offer: Mapping[str, Any], at: Location, channels: tuple[str, ...] | None
) -> Iterator[_Problem]:
    channel = _read(offer, OfferConfig, "channel")
    if channel is None or channels is None:
        return
    needed = ("online", "in_store") if channel == "both" else (channel,)
    missing = [name for name in needed if name not in channels]
    if missing:
        yield _Problem(
            (*at, "channel"),
            f"eligibility.channels does not include {' and '.join(missing)}",
        )


def _discount_consistent(discount: Any, at: Location) -> Iterator[_Problem]:
    if not isinstance(discount, Mapping):
        return
    yield from _exactly_one(discount, at, ("percentage", "amount"))
    yield from _cap_on_fixed(discount, at, "max", "amount", ("percentage",))


def _codes_match_mode(codes: Mapping[str, Any], at: Location) -> Iterator[_Problem]:
    mode = _read(codes, CodesConfig, "mode")
    if mode is None:
        return
    required, optional = _CODE_MODE_KEYS[mode]
    for key in required:
        if not _given(codes, key):
            yield _Problem((*at, key), f"required for {mode} codes")
    for key in sorted(CodesConfig.model_fields.keys() - {"mode", *required, *optional}):
        if _given(codes, key):
            yield _Problem((*at, key), f"not used with {mode} codes: remove it")


def _usage_reachable(offer: Mapping[str, Any], at: Location) -> Iterator[_Problem]:
    # Each unique code is redeemed once, so more redemptions than codes can never
    # happen: a larger max_total means a miscount somewhere, refused rather than guessed.
    codes = _mapping(offer.get("codes"))
    if _read(codes, CodesConfig, "mode") != "unique":
        return
    count = _read(codes, CodesConfig, "count")
    max_total = _read(_mapping(offer.get("usage")), UsageConfig, "max_total")
    if count is not None and max_total is not None and max_total > count:
        yield _Problem(
            (*at, "usage", "max_total"),
            f"must not exceed codes.count ({count}): each unique code is redeemed once",
        )


_RULES: Final[tuple[Callable[[Mapping[str, Any]], Iterator[_Problem]], ...]] = (
    _window_ordered,
    _budget_capped,
    _sections_match_kind,
    _eligibility_consistent,
    _reward_consistent,
    _claims_within_budget,
    _offers_consistent,
)


def _rule_problems(document: Mapping[str, Any]) -> list[_Problem]:
    return [problem for rule in _RULES for problem in rule(document)]


# -- JSON Schema ----------------------------------------------------------------------


def campaign_json_schema() -> dict[str, Any]:
    """The JSON Schema of a campaign file, generated from the models.

    It describes the shape and the main rules for editors; `parse_campaign` stays the
    authority (tier order, uniqueness, limits across sections are checked there only).
    """
    schema = CampaignConfig.model_json_schema(mode="validation")
    schema["title"] = "Rebates campaign file"
    return schema


# -- errors and parsing ---------------------------------------------------------------


class CampaignFileError(Exception):
    """A campaign file that cannot be published, with every error found.

    ``errors`` is ``[{"path": "reward.tiered[1].amount", "message": "..."}]`` (path ``$``
    for the file as a whole), in the order of the file's sections. ``campaign_id`` is
    the file's ``id`` when it is a valid one, for reports and events about the file.
    """

    def __init__(self, errors: list[dict[str, str]], campaign_id: str | None = None) -> None:
        super().__init__(errors, campaign_id)
        self.errors = errors
        self.campaign_id = campaign_id

    def __str__(self) -> str:
        return "\n".join(f"{error['path']}: {error['message']}" for error in self.errors)


def _file_error(message: str) -> CampaignFileError:
    return CampaignFileError([{"path": "$", "message": message}])


def parse_campaign(document: Any) -> CampaignConfig:
    """Validate a loaded campaign document (a mapping); raise with every error found."""
    if not isinstance(document, Mapping):
        what = "empty" if document is None else f"a {type(document).__name__}"
        raise _file_error(f"a campaign file is a mapping of keys (id, name, kind, ...), not {what}")
    problems = _rule_problems(document)
    try:
        config = CampaignConfig.model_validate(document, context={_DEFER_RULES: True})
    except ValidationError as error:
        problems = [*_shape_problems(error), *problems]
    else:
        if not problems:
            return config
    campaign_id = _read(document, CampaignConfig, "id")
    raise CampaignFileError(_described(problems), campaign_id)


def _shape_problems(error: ValidationError) -> list[_Problem]:
    problems = []
    for detail in error.errors(include_url=False):
        location = tuple(detail["loc"])
        if detail["type"] == "extra_forbidden":
            message = _unknown_key_message(location)
        elif detail["type"] == "missing":
            message = "required"
        else:
            message = detail["msg"]
        problems.append(_Problem(location, message))
    return problems


def _unknown_key_message(location: Location) -> str:
    known = sorted(_model_fields_at(location[:-1]))
    guesses = difflib.get_close_matches(str(location[-1]), known, n=1)
    if guesses:
        return f"unknown key, did you mean '{guesses[0]}'?"
    return f"unknown key, expected one of: {', '.join(known)}" if known else "unknown key"


def _model_fields_at(location: Location) -> Iterable[str]:
    model: type[BaseModel] | None = CampaignConfig
    for part in location:
        if model is None:
            break
        if isinstance(part, str):  # list indexes keep the list's item model
            field = model.model_fields.get(part)
            model = _model_in(field.annotation) if field else None
    return model.model_fields if model else ()


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _described(problems: list[_Problem]) -> list[dict[str, str]]:
    # In the order of the file's sections (field errors and rules interleaved), each once.
    order = {name: index for index, name in enumerate(CampaignConfig.model_fields)}

    def rank(problem: _Problem) -> int:
        # `$` first; a key the model does not know after every known one.
        return order.get(str(problem.location[0]), len(order)) if problem.location else -1

    ranked = sorted(dict.fromkeys(problems), key=rank)
    return [{"path": problem.path, "message": problem.message} for problem in ranked]


# -- files ----------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader (plain data only) that refuses a key given twice in one mapping.

    Plain YAML keeps the last value silently, so a second `reward:` would quietly replace
    the first. Keys merged in with `<<:` may still be overridden, as YAML intends.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key '{key_node.value}' twice",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str) -> Any:
    try:
        # A SafeLoader subclass: no Python objects are ever constructed from the file.
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = "; ".join(part for part in (error.context, error.problem) if part)
        raise _file_error(f"not valid YAML{where}: {problem}") from None
    except yaml.YAMLError as error:
        raise _file_error(f"not valid YAML: {error}") from None


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"found the key '{key}' twice in one object")
        document[key] = value
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _load_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise _file_error(
            f"not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except ValueError as error:
        raise _file_error(f"not valid JSON: {error}") from None


_LOADERS: Final[Mapping[str, Callable[[str], Any]]] = {
    ".yaml": _load_yaml,
    ".yml": _load_yaml,
    ".json": _load_json,
}


def read_campaign_document(name: str, content: bytes) -> Any:
    """The document in a campaign file, by its name's suffix (.yaml, .yml or .json).

    Not validated yet (that is `parse_campaign`): a loader may read the ``id`` of a file
    it rejects. Unreadable files raise `CampaignFileError` with a ``$`` error.
    """
    suffix = PurePosixPath(name).suffix.lower()
    loader = _LOADERS.get(suffix)
    if loader is None:
        raise _file_error(f"unsupported file type '{suffix or name}': use .yaml, .yml or .json")
    if len(content) > MAX_FILE_BYTES:
        raise _file_error(f"the file is larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _file_error(f"the file is not UTF-8 text (byte {error.start})") from None
    try:
        document = loader(text)
    except RecursionError:
        raise _file_error("the file is nested too deeply") from None
    if _expands_beyond(document, _MAX_VALUES):
        raise _file_error(f"the file holds more than {_MAX_VALUES} values once expanded")
    return document


def _expands_beyond(document: Any, limit: int) -> bool:
    # YAML aliases share one object between many places (or point back at themselves),
    # so the size that matters is the number of values reached, counted with repeats.
    pending, seen = [document], 0
    while pending:
        value = pending.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(value, Mapping):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def load_campaign_file(name: str, content: bytes) -> CampaignConfig:
    """Read and validate a campaign file; raise `CampaignFileError` with every error."""
    return parse_campaign(read_campaign_document(name, content))
