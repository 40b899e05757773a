"""The ``goals`` of a campaign file: targets parsed as the file says, every mistake at its
path, the kinds and sections each goal needs, the committed schema in step, and the goals
read back from a published campaign."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import fastjsonschema
import pytest
import yaml
from pydantic import ValidationError

from cli.main import EVENTS_DIR
from functions.campaigns.config import (
    CampaignConfig,
    CampaignFileError,
    GoalsConfig,
    load_campaign_file,
    parse_campaign,
)
from functions.campaigns.dal import CampaignStore
from functions.campaigns.logic import Publish, SourceFile
from functions.campaigns.models import get_campaign
from functions.campaigns.published import PublishedFiles
from tests.support.aws import aws_env, tables
from tests.unit.campaigns.documents import EXAMPLES, campaign, offer, rebate

__all__ = ["aws_env", "tables"]

EVERY_GOAL: dict[str, Any] = {
    "conversions": 2000,
    "sales": 30_000_000,
    "conversion_rate": 0.04,
    "redemptions": 3000,
    "claims_approved": 100,
    "cost_per_acquisition": 1500,
}


def errors_of(document: Any) -> dict[str, str]:
    """path -> message of every error in ``document`` (which must be invalid)."""
    with pytest.raises(CampaignFileError) as raised:
        parse_campaign(document)
    return {error["path"]: error["message"] for error in raised.value.errors}


def cashback(**changes: Any) -> dict[str, Any]:
    return rebate(kind="cashback", claims=None, cashback={"pending_days": 0}, **changes)


def offer_only(**changes: Any) -> dict[str, Any]:
    return rebate(kind="offer", reward=None, claims=None, **changes)


# -- good goals ---------------------------------------------------------------------------


def test_every_goal_reads_as_written() -> None:
    config = campaign(goals=EVERY_GOAL)
    assert config.goals == GoalsConfig(
        conversions=2000,
        sales=30_000_000,
        conversion_rate=Decimal("0.04"),
        redemptions=3000,
        claims_approved=100,
        cost_per_acquisition=1500,
    )


def test_the_targets_are_the_goals_given_in_the_sections_order() -> None:
    config = campaign(goals={"cost_per_acquisition": 1500, "conversions": 2000, "sales": None})
    assert config.goal_targets() == {"conversions": 2000, "cost_per_acquisition": 1500}


@pytest.mark.parametrize(
    ("written", "read"),
    [
        pytest.param(0.04, Decimal("0.04"), id="a float, read as the decimal it spells"),
        pytest.param(0.0125, Decimal("0.0125"), id="four decimals"),
        pytest.param(Decimal("0.035"), Decimal("0.035"), id="a decimal"),
        pytest.param(1, Decimal(1), id="every visit converts"),
        pytest.param(1.0, Decimal(1), id="1.0"),
    ],
)
def test_a_conversion_rate_is_a_decimal_fraction(written: Any, read: Decimal) -> None:
    config = campaign(goals={"conversion_rate": written})
    assert config.goals is not None
    assert config.goals.conversion_rate == read
    assert isinstance(config.goals.conversion_rate, Decimal)


@pytest.mark.parametrize(
    "goals",
    [
        pytest.param(EVERY_GOAL, id="every goal"),
        pytest.param({"conversion_rate": 0.0125}, id="a rate of four decimals"),
        pytest.param({"conversion_rate": 1}, id="a rate of 1"),
    ],
)
def test_goals_survive_storage_as_json(goals: dict[str, Any]) -> None:
    config = campaign(goals=goals)
    stored = json.loads(json.dumps(config.to_document()))
    assert parse_campaign(stored) == config
    assert stored["goals"]["conversion_rate"] == goals["conversion_rate"]


def test_no_goals_is_none_and_no_targets() -> None:
    assert campaign().goals is None
    assert campaign(goals=None).goal_targets() == {}
    assert "goals" not in campaign().to_document()


def test_a_yaml_file_with_goals_reads_as_written() -> None:
    text = yaml.safe_dump(rebate(), sort_keys=False)
    text += "goals:\n  conversions: 1200\n  conversion_rate: 0.035\n  sales: 12000000\n"
    config = load_campaign_file("spring.yaml", text.encode())
    assert config.goal_targets() == {
        "conversions": 1200,
        "sales": 12_000_000,
        "conversion_rate": Decimal("0.035"),
    }


def test_an_example_file_sets_goals() -> None:
    targets = [
        load_campaign_file(path.name, path.read_bytes()).goal_targets()
        for path in sorted(EXAMPLES.glob("*.*"))
    ]
    assert any(targets)


# -- bad goals, each at its path --------------------------------------------------------------


BAD_GOALS: list[tuple[str, Any, str, str]] = [
    ("a float count", {"conversions": 2000.0}, "goals.conversions", "valid integer"),
    ("a fractional count", {"redemptions": 10.5}, "goals.redemptions", "valid integer"),
    ("a count as text", {"claims_approved": "100"}, "goals.claims_approved", "valid integer"),
    ("no conversions", {"conversions": 0}, "goals.conversions", "greater than or equal to 1"),
    ("a negative count", {"conversions": -5}, "goals.conversions", "greater than or equal to 1"),
    ("a boolean count", {"conversions": True}, "goals.conversions", "valid integer"),
    ("sales in major units", {"sales": 300000.5}, "goals.sales", "minor unit"),
    ("sales as a float", {"sales": 12.0}, "goals.sales", "minor unit"),
    ("no sales", {"sales": 0}, "goals.sales", "greater than 0"),
    (
        "a cost in major units",
        {"cost_per_acquisition": 15.5},
        "goals.cost_per_acquisition",
        "minor unit",
    ),
    ("a cost of 0", {"cost_per_acquisition": 0}, "goals.cost_per_acquisition", "greater than 0"),
    ("a percentage for a rate", {"conversion_rate": 4}, "goals.conversion_rate", "4 % is 0.04"),
    ("a rate above 1", {"conversion_rate": 1.5}, "goals.conversion_rate", "at most 1"),
    ("a rate of 0", {"conversion_rate": 0}, "goals.conversion_rate", "greater than 0"),
    ("a negative rate", {"conversion_rate": -0.1}, "goals.conversion_rate", "greater than 0"),
    ("a rate as text", {"conversion_rate": "4%"}, "goals.conversion_rate", "not text"),
    ("a boolean rate", {"conversion_rate": True}, "goals.conversion_rate", "not text"),
    ("five decimals", {"conversion_rate": 0.12345}, "goals.conversion_rate", "4 decimal places"),
    ("not a number", {"conversion_rate": float("nan")}, "goals.conversion_rate", "finite"),
    ("infinite", {"conversion_rate": float("inf")}, "goals.conversion_rate", "finite"),
    ("a misspelt goal", {"conversion": 2000}, "goals.conversion", "did you mean 'conversions'"),
    ("an unknown goal", {"conversions": 5, "revenue": 9}, "goals.revenue", "unknown key"),
    ("empty", {}, "goals", "give at least one target"),
    ("only nulls", {"conversions": None}, "goals", "give at least one target"),
    ("a list", [2000], "goals", "valid dictionary"),
    ("a number", 2000, "goals", "valid dictionary"),
]


@pytest.mark.parametrize(
    ("goals", "path", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_GOALS],
)
def test_a_bad_goal_is_reported_at_its_path(goals: Any, path: str, message: str) -> None:
    errors = errors_of(rebate(goals=goals))
    assert list(errors) == [path]
    assert message in errors[path]


def test_an_empty_goals_section_names_every_goal_it_takes() -> None:
    message = errors_of(rebate(goals={}))["goals"]
    for name in EVERY_GOAL:
        assert name in message


def test_an_unknown_key_lists_the_goals_when_nothing_is_close() -> None:
    message = errors_of(rebate(goals={"xyz": 1}))["goals.xyz"]
    assert message.startswith("unknown key, expected one of: claims_approved, conversion_rate")


def test_mistakes_in_goals_come_with_the_others_in_the_order_of_the_file() -> None:
    document = rebate(
        name="",
        goals={"conversions": 1.5, "conversion_rate": 5, "claims_approved": 20_000},
        claims={"window_days": 0},
    )
    assert list(errors_of(document)) == [
        "name",
        "goals.conversions",
        "goals.conversion_rate",
        "goals.claims_approved",
        "claims.window_days",
    ]


# -- what each goal needs -------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(cashback(goals={"claims_approved": 5}), id="cashback"),
        pytest.param(offer_only(goals={"claims_approved": 5}), id="offer"),
    ],
)
def test_claims_approved_is_a_goal_of_rebates_only(document: dict[str, Any]) -> None:
    errors = errors_of(document)
    assert list(errors) == ["goals.claims_approved"]
    assert errors["goals.claims_approved"].startswith("only for kind rebate")


def test_every_other_goal_suits_every_kind() -> None:
    others = {key: value for key, value in EVERY_GOAL.items() if key != "claims_approved"}
    assert parse_campaign(cashback(goals=others)).goal_targets().keys() == others.keys()
    assert parse_campaign(offer_only(goals=others)).goal_targets().keys() == others.keys()
    assert campaign(goals=EVERY_GOAL).goal_targets().keys() == EVERY_GOAL.keys()


@pytest.mark.parametrize(
    "changes",
    [pytest.param({"offers": None}, id="no offers"), pytest.param({"offers": []}, id="offers: []")],
)
def test_a_redemptions_goal_needs_offers(changes: dict[str, Any]) -> None:
    errors = errors_of(rebate(goals={"redemptions": 100}, **changes))
    assert list(errors) == ["goals.redemptions"]
    assert "needs offers" in errors["goals.redemptions"]


def test_offers_of_the_wrong_shape_are_reported_once_not_again_by_the_goal() -> None:
    errors = errors_of(rebate(goals={"redemptions": 100}, offers="TRAIL10"))
    assert list(errors) == ["offers"]


@pytest.mark.parametrize("goal", ["redemptions", "claims_approved"])
def test_a_goal_beyond_the_budgets_max_rewards_can_never_be_reached(goal: str) -> None:
    budget = {"amount": 5_000_000, "max_rewards": 500}
    assert campaign(budget=budget, goals={goal: 500}).goal_targets() == {goal: 500}
    errors = errors_of(rebate(budget=budget, goals={goal: 501}))
    assert list(errors) == [f"goals.{goal}"]
    assert "budget.max_rewards (500)" in errors[f"goals.{goal}"]


def test_without_max_rewards_a_count_goal_has_no_bound() -> None:
    config = campaign(budget={"amount": 5_000_000}, goals={"redemptions": 1_000_000})
    assert config.goal_targets() == {"redemptions": 1_000_000}


def test_a_sales_goal_is_not_bounded_by_the_budget() -> None:
    # The budget caps what the campaign gives, not what customers buy.
    config = campaign(budget={"amount": 1000}, goals={"sales": 30_000_000})
    assert config.goal_targets() == {"sales": 30_000_000}


def test_the_rules_hold_for_a_config_built_directly() -> None:
    with pytest.raises(ValidationError, match=r"goals\.claims_approved: only for kind rebate"):
        CampaignConfig.model_validate(cashback(goals={"claims_approved": 5}))


# -- the committed JSON Schema ---------------------------------------------------------------


@pytest.fixture(scope="module")
def committed_schema() -> Any:
    schema = json.loads((EVENTS_DIR / "campaign.schema.json").read_text(encoding="utf-8"))
    return fastjsonschema.compile(schema)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(rebate(goals=EVERY_GOAL), id="a rebate with every goal"),
        pytest.param(cashback(goals={"sales": 100, "conversion_rate": 0.04}), id="cashback"),
        pytest.param(rebate(goals={"conversion_rate": 1}), id="a rate of 1"),
    ],
)
def test_the_schema_takes_good_goals(committed_schema: Any, document: dict[str, Any]) -> None:
    committed_schema(document)


@pytest.mark.parametrize(
    "goals",
    [
        pytest.param({}, id="empty"),
        pytest.param({"conversion": 5}, id="an unknown key"),
        pytest.param({"conversions": 2000.5}, id="a fractional count"),
        pytest.param({"sales": 0}, id="no sales"),
        pytest.param({"conversion_rate": 4}, id="a rate above 1"),
        pytest.param({"conversion_rate": 0}, id="a rate of 0"),
    ],
)
def test_the_schema_refuses_bad_goals(committed_schema: Any, goals: Any) -> None:
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        committed_schema(rebate(goals=goals))


def test_the_schema_refuses_claims_approved_outside_rebates(committed_schema: Any) -> None:
    committed_schema(rebate(goals={"claims_approved": 5}))
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        committed_schema(cashback(goals={"claims_approved": 5}))
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        committed_schema(offer_only(goals={"claims_approved": 5}))


# -- read back from a published campaign ---------------------------------------------------


def test_a_published_campaigns_goals_and_window_are_read_back(tables: list[str]) -> None:
    config = campaign(goals=EVERY_GOAL, offers=[offer()])
    now = datetime(2027, 2, 20, tzinfo=UTC)
    source = SourceFile("campaigns/spring-trail-2027.yaml", '"etag-1"')
    CampaignStore().publish(Publish(config=config, version=1, source=source), now)

    item = get_campaign("spring-trail-2027")
    assert item is not None
    published = PublishedFiles().file(item.campaign_id, item.version)
    assert published.goal_targets() == {**EVERY_GOAL, "conversion_rate": Decimal("0.04")}
    assert (published.timezone, published.currency) == ("Asia/Tokyo", "JPY")
    assert published.starts_at == datetime(2027, 2, 28, 15, tzinfo=UTC)
    assert published.ends_at == datetime(2027, 3, 31, 15, tzinfo=UTC)
    assert (item.timezone, item.currency, item.starts_at, item.ends_at) == (
        published.timezone,
        published.currency,
        published.starts_at,
        published.ends_at,
    )
