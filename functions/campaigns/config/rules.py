"""The rules that relate the fields of the sections to each other (budget caps,
eligibility, rewards and their tiers, goals, claims, offers and their codes).

Each reads the raw document through `document`, so that a typo elsewhere does not hide
it; `campaign` lists them with the rules over the campaign's own fields.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any

from functions.campaigns.config.document import (
    Location,
    Problem,
    as_mapping,
    is_given,
    list_items,
    read_field,
    read_items,
)
from functions.campaigns.config.kinds import CODE_MODE_KEYS
from functions.campaigns.config.sections import (
    BudgetConfig,
    ClaimsConfig,
    CodesConfig,
    EligibilityConfig,
    GoalsConfig,
    OfferConfig,
    Tier,
    UsageConfig,
)
from functions.core.validation import format_location


def _repeats(values: Iterable[tuple[Location, Hashable | None]]) -> Iterator[Problem]:
    first_seen: dict[Hashable, Location] = {}
    for location, value in values:
        if value is None:
            continue
        if value in first_seen:
            yield Problem(
                location,
                f"'{value}' is listed twice (first at {format_location(first_seen[value])})",
            )
        else:
            first_seen[value] = location


def _exactly_one(
    section: Mapping[str, Any], at: Location, names: tuple[str, ...]
) -> Iterator[Problem]:
    given = [name for name in names if is_given(section, name)]
    if len(given) != 1:
        choices = ", ".join(names[:-1]) + f" or {names[-1]}"
        extra = f", not {' and '.join(given)}" if given else ""
        yield Problem(at, f"give exactly one of {choices}{extra}")


def _cap_on_fixed(
    section: Mapping[str, Any], at: Location, cap: str, fixed: str, shares: tuple[str, ...]
) -> Iterator[Problem]:
    # Only when the fixed kind is the one chosen: with no kind at all, or with several,
    # the "exactly one of" error already says what to fix.
    chosen_fixed = is_given(section, fixed) and not any(is_given(section, n) for n in shares)
    if is_given(section, cap) and chosen_fixed:
        kinds = " or ".join(shares)
        yield Problem((*at, cap), f"only caps a {kinds} {at[-1]}, not one given as {fixed}")


def budget_capped(document: Mapping[str, Any]) -> Iterator[Problem]:
    budget = document.get("budget")
    if isinstance(budget, Mapping) and not any(
        is_given(budget, k) for k in ("amount", "max_rewards")
    ):
        yield Problem(("budget",), "give amount, max_rewards or both: a campaign needs a hard cap")


def eligibility_consistent(document: Mapping[str, Any]) -> Iterator[Problem]:
    eligibility = as_mapping(document.get("eligibility"))
    at: Location = ("eligibility",)
    if is_given(eligibility, "skus") and is_given(eligibility, "categories"):
        yield Problem(at, "give skus or categories, not both (omit both: every product counts)")
    for name in ("channels", "skus", "categories"):
        yield from _repeats(read_items(eligibility, EligibilityConfig, name, at))


def reward_consistent(document: Mapping[str, Any]) -> Iterator[Problem]:
    reward = document.get("reward")
    if not isinstance(reward, Mapping):
        return
    at: Location = ("reward",)
    yield from _exactly_one(reward, at, ("fixed", "percentage", "tiered"))
    yield from _cap_on_fixed(reward, at, "max_per_reward", "fixed", ("percentage", "tiered"))
    yield from _tiers_ascend(reward)


def _tiers_ascend(reward: Mapping[str, Any]) -> Iterator[Problem]:
    tiers = [
        (
            ("reward", "tiered", index),
            read_field(tier, Tier, "min_purchase"),
            read_field(tier, Tier, "amount"),
        )
        for index, tier in list_items(reward.get("tiered"))
        if isinstance(tier, Mapping)
    ]
    highest_minimum: int | None = None
    for location, minimum, _ in tiers:
        if minimum is None:
            continue
        if highest_minimum is not None and minimum <= highest_minimum:
            yield Problem(
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
            yield Problem(
                (*location, "amount"),
                f"a bigger purchase must not earn less: {amount} is below {best[1]}, "
                f"the amount of the tier from {best[0]}",
            )
        if best is None or amount >= best[1]:
            best = (minimum, amount)


def goals_consistent(document: Mapping[str, Any]) -> Iterator[Problem]:
    goals = document.get("goals")
    if not isinstance(goals, Mapping):
        return
    at: Location = ("goals",)
    names = tuple(GoalsConfig.model_fields)
    # Any key counts: a misspelt one is an unknown key, which the shape layer reports.
    if not any(is_given(goals, key) for key in goals):
        choices = ", ".join(names[:-1]) + f" or {names[-1]}"
        yield Problem(at, f"give at least one target ({choices}), or leave goals out")
    # `offers: []` offers nothing, as for kind offer; an offers value of the wrong shape
    # is the shape layer's to report.
    if is_given(goals, "redemptions") and document.get("offers") in (None, []):
        yield Problem((*at, "redemptions"), "needs offers: without codes nothing is redeemed")
    # Every redemption and every approved rebate counts against max_rewards, so a larger
    # target is a miscount somewhere: refused rather than shown as never reached.
    max_rewards = read_field(as_mapping(document.get("budget")), BudgetConfig, "max_rewards")
    for name in ("redemptions", "claims_approved"):
        target = read_field(goals, GoalsConfig, name)
        if target is not None and max_rewards is not None and target > max_rewards:
            yield Problem(
                (*at, name),
                f"can never be reached: must not exceed budget.max_rewards ({max_rewards}), "
                "which counts rewards and redemptions together",
            )


def claims_within_budget(document: Mapping[str, Any]) -> Iterator[Problem]:
    auto_approve = read_field(
        as_mapping(document.get("claims")), ClaimsConfig, "auto_approve_up_to"
    )
    budget = read_field(as_mapping(document.get("budget")), BudgetConfig, "amount")
    if auto_approve is not None and budget is not None and auto_approve > budget:
        yield Problem(("claims", "auto_approve_up_to"), f"must not exceed budget.amount ({budget})")


def offers_consistent(document: Mapping[str, Any]) -> Iterator[Problem]:
    offers = [
        (index, raw)
        for index, raw in list_items(document.get("offers"))
        if isinstance(raw, Mapping)
    ]
    # Offer ids are global and codes are matched across offers: a repeat is ambiguous.
    yield from _repeats(
        (("offers", i, "id"), read_field(offer, OfferConfig, "id")) for i, offer in offers
    )
    yield from _repeats(
        (("offers", i, "codes", "code"), _shared_code(offer)) for i, offer in offers
    )
    yield from _one_issued_after_purchase(offers)
    channels = read_field(as_mapping(document.get("eligibility")), EligibilityConfig, "channels")
    for index, offer in offers:
        at: Location = ("offers", index)
        yield from _offer_channel_eligible(offer, at, channels)
        yield from _discount_consistent(offer.get("discount"), (*at, "discount"))
        yield from _codes_match_mode(as_mapping(offer.get("codes")), (*at, "codes"))
        yield from _usage_reachable(offer, at)
        yield from _repeats(read_items(offer, OfferConfig, "reminders_days_before_expiry", at))


def _one_issued_after_purchase(offers: list[tuple[int, Mapping[str, Any]]]) -> Iterator[Problem]:
    # A purchase tells its buyer one new code (the thank-you message carries it): two
    # offers of one campaign both issued after it would leave which one to chance.
    first: int | None = None
    for index, offer in offers:
        if read_field(offer, OfferConfig, "issue_after_purchase") is not True:
            continue
        if first is None:
            first = index
            continue
        yield Problem(
            ("offers", index, "issue_after_purchase"),
            "only one offer of a campaign may be issued after a purchase "
            f"(offers[{first}] already is)",
        )


def _shared_code(offer: Mapping[str, Any]) -> str | None:
    codes = as_mapping(offer.get("codes"))
    code: str | None = read_field(codes, CodesConfig, "code")
    return code if read_field(codes, CodesConfig, "mode") == "shared" else None


def _offer_channel_eligible(
    offer: Mapping[str, Any], at: Location, channels: tuple[str, ...] | None
) -> Iterator[Problem]:
    channel = read_field(offer, OfferConfig, "channel")
    if channel is None or channels is None:
        return
    needed = ("online", "in_store") if channel == "both" else (channel,)
    missing = [name for name in needed if name not in channels]
    if missing:
        yield Problem(
            (*at, "channel"),
            f"eligibility.channels does not include {' and '.join(missing)}",
        )


def _discount_consistent(discount: Any, at: Location) -> Iterator[Problem]:
    if not isinstance(discount, Mapping):
        return
    yield from _exactly_one(discount, at, ("percentage", "amount"))
    yield from _cap_on_fixed(discount, at, "max", "amount", ("percentage",))


def _codes_match_mode(codes: Mapping[str, Any], at: Location) -> Iterator[Problem]:
    mode = read_field(codes, CodesConfig, "mode")
    if mode is None:
        return
    required, optional = CODE_MODE_KEYS[mode]
    for key in required:
        if not is_given(codes, key):
            yield Problem((*at, key), f"required for {mode} codes")
    for key in sorted(CodesConfig.model_fields.keys() - {"mode", *required, *optional}):
        if is_given(codes, key):
            yield Problem((*at, key), f"not used with {mode} codes: remove it")


def _usage_reachable(offer: Mapping[str, Any], at: Location) -> Iterator[Problem]:
    # Each unique code is redeemed once, so more redemptions than codes can never
    # happen: a larger max_total means a miscount somewhere, refused rather than guessed.
    codes = as_mapping(offer.get("codes"))
    if read_field(codes, CodesConfig, "mode") != "unique":
        return
    count = read_field(codes, CodesConfig, "count")
    max_total = read_field(as_mapping(offer.get("usage")), UsageConfig, "max_total")
    if count is not None and max_total is not None and max_total > count:
        yield Problem(
            (*at, "usage", "max_total"),
            f"must not exceed codes.count ({count}): each unique code is redeemed once",
        )
