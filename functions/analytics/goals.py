"""A campaign's goals beside its actual figures: the share reached and the pace still
needed, pure.

A campaign file may set targets for the whole campaign (``goals`` in the file; the
campaigns package reads them out with `CampaignConfig.goal_targets`). For each one,
`goal_progress` gives the actual figure, the share of the target reached and, for the
figures that add up day by day, what each day left must bring to reach it.

Days are the campaign's local days (its timezone), as everywhere in analytics: the
campaign's last day is the local date of the last instant before ``ends_at`` (which is
exclusive), and "today" is a local date too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Literal

from functions.core.clock import local_date

__all__ = [
    "GOAL_METRICS",
    "GoalProgress",
    "Metric",
    "actuals_from_stats",
    "days_left",
    "goal_progress",
    "progress_view",
]

Metric = Literal[
    "conversions", "sales", "conversionRate", "redemptions", "claimsApproved", "costPerAcquisition"
]

# The file's key of each goal -> its metric, named as in the stats body (camelCase).
GOAL_METRICS: Final[Mapping[str, Metric]] = {
    "conversions": "conversions",
    "sales": "sales",
    "conversion_rate": "conversionRate",
    "redemptions": "redemptions",
    "claims_approved": "claimsApproved",
    "cost_per_acquisition": "costPerAcquisition",
}
# A cost: reaching the goal means staying at or below the target.
_LOWER_IS_BETTER: Final[frozenset[Metric]] = frozenset({"costPerAcquisition"})
# Money in minor units: its pace is a whole amount (never a float of yen or cents).
_MONEY: Final[frozenset[Metric]] = frozenset({"sales"})

_LAST_INSTANT: Final = timedelta(microseconds=1)


@dataclass(frozen=True)
class GoalProgress:
    """One goal of a campaign against its actual figure.

    - ``target`` and ``actual``: integers for counts and for money (minor units of the
      campaign currency); the conversion rate is a fraction (0.04 is 4 %). ``actual`` is
      None when there is no figure yet (a cost per acquisition before any new customer).
    - ``share``: ``actual / target``, above 1 once the target is passed. For the cost per
      acquisition, where lower is better, it is ``target / actual`` (a cost at half the
      target is a share of 2.0); None while that has no finite value (no new customer
      yet, or acquisitions that cost nothing).
    - ``days_left``: the campaign's local days from today to its last day, both included;
      every day of the campaign before it starts, 0 once it has ended.
    - ``needed_per_day``: for the figures that add up (conversions, sales, redemptions,
      claims approved), what is still missing divided by the days left, and 0 once the
      target is reached or no day is left; sales as a whole amount in minor units
      (rounded up: a day short of a fraction of a yen still misses the target), counts
      as a number. None for the ratios (conversion rate, cost per acquisition), whose
      pace is not an amount per day.
    """

    metric: Metric
    target: int | float
    actual: int | float | None
    share: float | None
    days_left: int
    needed_per_day: int | float | None

    def to_view(self) -> dict[str, Any]:
        """The goal as the stats body shows it."""
        return {
            "metric": self.metric,
            "target": self.target,
            "actual": self.actual,
            "share": self.share,
            "daysLeft": self.days_left,
            "neededPerDay": self.needed_per_day,
        }


def days_left(starts_at: datetime, ends_at: datetime, timezone: str, today: date) -> int:
    """The campaign's local days from `today` (or its first day, before it starts) to its
    last day, both included; 0 once `today` is past the last day."""
    first_day = local_date(starts_at, timezone)
    last_day = local_date(ends_at - _LAST_INSTANT, timezone)
    counted_from = max(today, first_day)
    return max((last_day - counted_from).days + 1, 0)


def goal_progress(
    targets: Mapping[str, int | Decimal | float],
    actuals: Mapping[str, int | float | None],
    *,
    starts_at: datetime,
    ends_at: datetime,
    timezone: str,
    today: date,
) -> list[GoalProgress]:
    """The progress of each goal in `targets`, in their order.

    `targets` are keyed as in the campaign file (``conversions``, ``sales``,
    ``conversion_rate``, ``redemptions``, ``claims_approved``, ``cost_per_acquisition``),
    `actuals` by metric (`GOAL_METRICS`' values, as in the stats body); each target needs
    its actual figure. `today` is the campaign-local date.
    """
    remaining_days = days_left(starts_at, ends_at, timezone, today)
    progress = []
    for key, target in targets.items():
        metric = GOAL_METRICS.get(key)
        if metric is None:
            raise KeyError(f"no goal {key!r}: expected one of {', '.join(GOAL_METRICS)}")
        if metric not in actuals:
            raise KeyError(f"no actual figure for the goal {key!r} (metric {metric!r})")
        progress.append(_progress(metric, target, actuals[metric], remaining_days))
    return progress


def _progress(
    metric: Metric, target: int | Decimal | float, actual: int | float | None, remaining: int
) -> GoalProgress:
    if metric == "conversionRate":
        rate = float(target)
        _check_positive(metric, rate)
        share = None if actual is None else actual / rate
        return GoalProgress(metric, rate, actual, share, remaining, None)
    goal = _whole(metric, target)
    _check_positive(metric, goal)
    if metric in _LOWER_IS_BETTER:
        cost = None if actual is None else _whole(metric, actual)
        share = goal / cost if cost else None
        return GoalProgress(metric, goal, cost, share, remaining, None)
    count = _whole(metric, actual)
    missing = max(goal - count, 0)
    needed: int | float
    if missing == 0 or remaining == 0:
        needed = 0
    elif metric in _MONEY:
        needed = -(-missing // remaining)  # rounded up, in whole minor units
    else:
        needed = missing / remaining
    return GoalProgress(metric, goal, count, count / goal, remaining, needed)


def _whole(metric: Metric, value: object) -> int:
    # Counts and money are integers (money in minor units, never a float): anything else
    # is a caller's mistake, not a figure to round.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{metric} is a whole number, not {value!r}")
    return value


def _check_positive(metric: Metric, target: float) -> None:
    # The campaign file refuses targets of 0 or less; a share of one would be meaningless.
    if target <= 0:
        raise ValueError(f"the {metric} target must be above 0, not {target}")


def actuals_from_stats(figures: Mapping[str, Any]) -> dict[str, int | float | None]:
    """The actual figure of every goal's metric, read from the stats body's figures
    (money objects as their amount in minor units)."""
    cost = figures["costPerAcquisition"]
    return {
        "conversions": figures["conversions"],
        "sales": figures["totalSales"]["amount"],
        "conversionRate": figures["conversionRate"],
        "redemptions": figures["redemptions"],
        "claimsApproved": figures["claimsApproved"],
        "costPerAcquisition": None if cost is None else cost["amount"],
    }


def progress_view(
    targets: Mapping[str, int | Decimal | float],
    figures: Mapping[str, Any],
    *,
    starts_at: datetime,
    ends_at: datetime,
    timezone: str,
    today: date,
) -> list[dict[str, Any]]:
    """The stats body's ``goals``: each goal of `targets` against `figures` (the stats
    body's KPIs), as `GoalProgress.to_view` shows it; empty without goals."""
    if not targets:
        return []
    progress = goal_progress(
        targets,
        actuals_from_stats(figures),
        starts_at=starts_at,
        ends_at=ends_at,
        timezone=timezone,
        today=today,
    )
    return [goal.to_view() for goal in progress]
