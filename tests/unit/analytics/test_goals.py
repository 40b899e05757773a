"""Campaign goals against the actual figures: share reached, days left and pace needed,
in the campaign's own days."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from functions.analytics.goals import (
    GoalProgress,
    days_left,
    goal_progress,
    progress_view,
)
from tests.unit.campaigns.documents import campaign

TOKYO = timezone(timedelta(hours=9))
# The spring campaign: 2027-03-01 to 2027-03-31 in Tokyo (31 days; ends_at is exclusive).
STARTS_AT = datetime(2027, 3, 1, tzinfo=TOKYO)
ENDS_AT = datetime(2027, 4, 1, tzinfo=TOKYO)
ZONE = "Asia/Tokyo"


def progress(
    targets: dict[str, Any], actuals: dict[str, Any], today: date = date(2027, 3, 22)
) -> list[GoalProgress]:
    return goal_progress(
        targets, actuals, starts_at=STARTS_AT, ends_at=ENDS_AT, timezone=ZONE, today=today
    )


def one(target_key: str, target: Any, metric: str, actual: Any, today: date) -> GoalProgress:
    (goal,) = progress({target_key: target}, {metric: actual}, today)
    return goal


# -- days left ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        pytest.param(date(2027, 2, 20), 31, id="before the start: every day of the campaign"),
        pytest.param(date(2027, 3, 1), 31, id="the first day"),
        pytest.param(date(2027, 3, 22), 10, id="the 22nd: 22 to 31 included"),
        pytest.param(date(2027, 3, 31), 1, id="the last day"),
        pytest.param(date(2027, 4, 1), 0, id="the day after: ends_at is exclusive"),
        pytest.param(date(2027, 5, 1), 0, id="long after"),
    ],
)
def test_days_left_are_campaign_days_from_today_to_the_last_one(today: date, expected: int) -> None:
    assert days_left(STARTS_AT, ENDS_AT, ZONE, today) == expected


def test_a_campaign_ending_at_noon_still_has_its_last_morning() -> None:
    noon = datetime(2027, 4, 1, 12, tzinfo=TOKYO)
    assert days_left(STARTS_AT, noon, ZONE, date(2027, 4, 1)) == 1
    assert days_left(STARTS_AT, noon, ZONE, date(2027, 4, 2)) == 0


def test_days_are_counted_in_the_campaign_timezone_not_utc() -> None:
    # New York midnight is 04:00 UTC: in UTC the end falls on 2027-09-01, locally the
    # last day is 2027-08-31.
    new_york = timezone(timedelta(hours=-4))
    starts_at = datetime(2027, 6, 1, tzinfo=new_york)
    ends_at = datetime(2027, 9, 1, tzinfo=new_york)
    zone = "America/New_York"
    assert days_left(starts_at, ends_at, zone, date(2027, 8, 31)) == 1
    assert days_left(starts_at, ends_at, zone, date(2027, 9, 1)) == 0
    assert days_left(starts_at, ends_at, zone, date(2027, 5, 31)) == 92


# -- figures that add up ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "metric", "target", "actual", "today", "share", "left", "needed"),
    [
        pytest.param(
            "conversions", "conversions", 2000, 12, date(2027, 3, 22), 0.006, 10, 198.8,
            id="conversions: the stats example",
        ),
        pytest.param(
            "conversions", "conversions", 2000, 0, date(2027, 2, 20), 0.0, 31, 2000 / 31,
            id="before the start: the whole target over every campaign day",
        ),
        pytest.param(
            "conversions", "conversions", 2000, 2400, date(2027, 3, 22), 1.2, 10, 0,
            id="passed: share above 1, nothing more needed",
        ),
        pytest.param(
            "conversions", "conversions", 2000, 2000, date(2027, 3, 22), 1.0, 10, 0,
            id="reached exactly",
        ),
        pytest.param(
            "conversions", "conversions", 2000, 1500, date(2027, 3, 31), 0.75, 1, 500.0,
            id="the last day: all that is missing",
        ),
        pytest.param(
            "conversions", "conversions", 2000, 1500, date(2027, 4, 1), 0.75, 0, 0,
            id="after the end: missed, no pace left",
        ),
        pytest.param(
            "redemptions", "redemptions", 3000, 1000, date(2027, 3, 22), 1 / 3, 10, 200.0,
            id="redemptions",
        ),
        pytest.param(
            "claims_approved", "claimsApproved", 100, 25, date(2027, 3, 27), 0.25, 5, 15.0,
            id="claims approved",
        ),
        pytest.param(
            "sales", "sales", 30_000_000, 10_000_000, date(2027, 3, 22), 1 / 3, 10, 2_000_000,
            id="sales: a whole amount per day",
        ),
        pytest.param(
            "sales", "sales", 1000, 0, date(2027, 3, 29), 0.0, 3, 334,
            id="sales: rounded up to the minor unit (1000 / 3 days)",
        ),
        pytest.param(
            "sales", "sales", 1000, 1, date(2027, 3, 29), 0.001, 3, 333,
            id="sales: exact when it divides (999 / 3 days)",
        ),
    ],
)  # fmt: skip
def test_a_cumulative_goal_shows_its_share_and_the_pace_still_needed(
    key: str,
    metric: str,
    target: int,
    actual: int,
    today: date,
    share: float,
    left: int,
    needed: float,
) -> None:
    goal = one(key, target, metric, actual, today)
    assert (goal.metric, goal.target, goal.actual, goal.days_left) == (metric, target, actual, left)
    assert goal.share == pytest.approx(share)
    assert goal.needed_per_day == pytest.approx(needed)


def test_the_sales_pace_is_an_integer_of_minor_units_never_a_float() -> None:
    goal = one("sales", 1000, "sales", 0, date(2027, 3, 29))
    assert isinstance(goal.needed_per_day, int)
    assert isinstance(goal.target, int) and isinstance(goal.actual, int)


# -- ratios -------------------------------------------------------------------------------


def test_the_conversion_rate_is_a_share_of_the_target_rate_without_a_daily_pace() -> None:
    goal = one("conversion_rate", Decimal("0.04"), "conversionRate", 0.03, date(2027, 3, 22))
    assert goal.target == 0.04 and isinstance(goal.target, float)
    assert goal.share == pytest.approx(0.75)
    assert (goal.days_left, goal.needed_per_day) == (10, None)


def test_a_conversion_rate_above_target_has_a_share_above_one() -> None:
    goal = one("conversion_rate", Decimal("0.04"), "conversionRate", 0.05, date(2027, 3, 22))
    assert goal.share == pytest.approx(1.25)


@pytest.mark.parametrize(
    ("actual", "share"),
    [
        pytest.param(3000, 0.5, id="twice the target: half way"),
        pytest.param(1500, 1.0, id="at the target"),
        pytest.param(1000, 1.5, id="below the target: lower is better"),
        pytest.param(None, None, id="no new customer yet: no figure"),
        pytest.param(0, None, id="acquisitions that cost nothing: no finite share"),
    ],
)
def test_the_cost_per_acquisition_is_better_lower(actual: int | None, share: float | None) -> None:
    goal = one("cost_per_acquisition", 1500, "costPerAcquisition", actual, date(2027, 3, 22))
    assert (goal.target, goal.actual, goal.needed_per_day) == (1500, actual, None)
    assert goal.share == (None if share is None else pytest.approx(share))


# -- several goals, the view, the campaign file ---------------------------------------------


def test_goals_keep_the_order_of_their_targets() -> None:
    goals = progress(
        {"sales": 30_000_000, "conversions": 2000, "cost_per_acquisition": 1500},
        {"conversions": 12, "sales": 0, "costPerAcquisition": 2000, "redemptions": 4},
    )
    assert [goal.metric for goal in goals] == ["sales", "conversions", "costPerAcquisition"]


def test_the_view_is_the_stats_body_shape() -> None:
    (goal,) = progress({"conversions": 2000}, {"conversions": 12})
    assert goal.to_view() == {
        "metric": "conversions",
        "target": 2000,
        "actual": 12,
        "share": 0.006,
        "daysLeft": 10,
        "neededPerDay": 198.8,
    }


def test_progress_view_reads_the_actuals_from_the_stats_figures() -> None:
    figures = {
        "conversions": 12,
        "conversionRate": 0.02,
        "redemptions": 30,
        "claimsApproved": 5,
        "totalSales": {"amount": 600_000, "currency": "JPY"},
        "costPerAcquisition": None,
    }
    targets = campaign(
        goals={
            "conversions": 2000,
            "sales": 30_000_000,
            "conversion_rate": 0.04,
            "redemptions": 3000,
            "claims_approved": 100,
            "cost_per_acquisition": 1500,
        }
    ).goal_targets()
    view = progress_view(
        targets,
        figures,
        starts_at=STARTS_AT,
        ends_at=ENDS_AT,
        timezone=ZONE,
        today=date(2027, 3, 22),
    )
    assert [(g["metric"], g["target"], g["actual"]) for g in view] == [
        ("conversions", 2000, 12),
        ("sales", 30_000_000, 600_000),
        ("conversionRate", 0.04, 0.02),
        ("redemptions", 3000, 30),
        ("claimsApproved", 100, 5),
        ("costPerAcquisition", 1500, None),
    ]
    assert [g["neededPerDay"] for g in view] == [198.8, 2_940_000, None, 297.0, 9.5, None]
    assert view[2]["share"] == pytest.approx(0.5)
    assert view[5]["share"] is None


def test_a_campaign_without_goals_has_no_progress() -> None:
    targets = campaign().goal_targets()
    assert targets == {}
    view = progress_view(
        targets, {}, starts_at=STARTS_AT, ends_at=ENDS_AT, timezone=ZONE, today=date(2027, 3, 1)
    )
    assert view == []


# -- a caller's mistakes --------------------------------------------------------------------


def test_a_goal_without_its_actual_figure_is_refused() -> None:
    with pytest.raises(KeyError, match="claimsApproved"):
        progress({"claims_approved": 100}, {"conversions": 3})


def test_an_unknown_goal_is_refused() -> None:
    with pytest.raises(KeyError, match="revenue"):
        progress({"revenue": 100}, {"revenue": 3})


@pytest.mark.parametrize("actual", [12.5, Decimal(12), True, None])
def test_money_and_counts_must_be_whole_numbers(actual: Any) -> None:
    with pytest.raises(TypeError, match="whole number"):
        progress({"sales": 1000}, {"sales": actual})


def test_a_target_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="above 0"):
        progress({"conversions": 0}, {"conversions": 3})
