"""Reading a campaign's KPIs: its counters of a date range, its budget and its goals.

The budget is the campaign's own counter (`functions.campaigns.budget` owns it), read
from the campaign item: what every path that pays out has spent, whatever the range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from functions.analytics import goals as campaign_goals
from functions.analytics.models import DailyAmounts, DailyBreakdown, DailyCounter
from functions.analytics.stats import Totals, kpis
from functions.campaigns.models import get_campaign
from functions.campaigns.published import PublishedFiles
from functions.core.clock import local_date
from functions.core.errors import DomainError

__all__ = ["AnalyticsError", "CampaignStats", "StatsRange", "UnknownCampaign"]


class AnalyticsError(DomainError):
    """Base of the analytics API's refusals."""


class UnknownCampaign(AnalyticsError):
    code = "campaign_not_found"

    def __init__(self, campaign_id: str) -> None:
        super().__init__(f"no campaign {campaign_id}", {"campaignId": campaign_id})


@dataclass(frozen=True)
class StatsRange:
    first: date | None
    last: date | None


class CampaignStats:
    def __init__(self) -> None:
        self._files = PublishedFiles()

    def stats(self, campaign_id: str, dates: StatsRange, *, now: datetime) -> dict[str, Any]:
        campaign = get_campaign(campaign_id)
        if campaign is None:
            raise UnknownCampaign(campaign_id)
        zone = campaign.timezone
        today = local_date(now, zone)
        # The campaign's window by default: its first local day to its last (the end is
        # exclusive), or to today while it runs.
        first = dates.first or local_date(campaign.starts_at, zone)
        last_day = local_date(campaign.ends_at, zone)
        last = dates.last if dates.last is not None else max(first, min(today, last_day))
        figures = kpis(self._totals(campaign_id, first, last), campaign.currency)
        figures["budgetUsed"] = {
            "amount": campaign.budget_used_amount or 0,
            "currency": campaign.currency,
        }
        figures["budget"] = {
            "limit": None
            if campaign.budget_amount is None
            else {"amount": campaign.budget_amount, "currency": campaign.currency},
            "rewardsUsed": campaign.budget_used_count or 0,
            "rewardsLimit": campaign.budget_max_rewards,
        }
        config = self._files.file(campaign_id, campaign.version)
        targets = config.goal_targets()
        # Goals are the whole campaign's: measured from its first day, whatever the range.
        whole = figures
        campaign_first = local_date(campaign.starts_at, zone)
        if targets and (first, last) != (campaign_first, min(today, last_day)):
            whole = kpis(
                self._totals(
                    campaign_id, campaign_first, max(campaign_first, min(today, last_day))
                ),
                campaign.currency,
            )
        figures["goals"] = campaign_goals.progress_view(
            targets,
            whole,
            starts_at=campaign.starts_at,
            ends_at=campaign.ends_at,
            timezone=zone,
            today=today,
        )
        return {
            "campaignId": campaign_id,
            "from": first.isoformat(),
            "to": last.isoformat(),
            "timezone": zone,
            "currency": campaign.currency,
            **figures,
        }

    @staticmethod
    def _totals(campaign_id: str, first: date, last: date) -> Totals:
        return Totals.of(
            DailyCounter.between(campaign_id, first, last),
            DailyAmounts.between(campaign_id, first, last),
            DailyBreakdown.between(campaign_id, first, last),
        )
