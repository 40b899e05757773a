"""Builders of valid model instances for the data-access tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.campaigns.models import Campaign, Discount, Offer, publish_campaign

T0 = datetime(2027, 3, 1, tzinfo=UTC)


def make_campaign(
    campaign_id: str = "spring-trail-2027", version: int = 1, **extra: Any
) -> Campaign:
    fields: dict[str, Any] = {
        "campaign_id": campaign_id,
        "name": "Spring trail shoes",
        "kind": "rebate",
        "currency": "JPY",
        "timezone": "Asia/Tokyo",
        "starts_at": T0,
        "ends_at": T0 + timedelta(days=31),
        "version": version,
        "budget_amount": 5000,
        "budget_max_rewards": 3,
        "source_key": f"campaigns/{campaign_id}.yaml",
        "published_at": T0 - timedelta(days=1),
    }
    fields.update(extra)
    return Campaign(**fields)


def publish(campaign: Campaign, offers: Sequence[Offer] = ()) -> None:
    """`publish_campaign` with a small stand-in for the file, marked with its version."""
    document = {"id": campaign.campaign_id, "reward": {"fixed": 1000}, "v": campaign.version}
    publish_campaign(campaign, document, offers)


def make_offer(
    offer_id: str = "TRAIL10", campaign_id: str = "spring-trail-2027", **extra: Any
) -> Offer:
    fields: dict[str, Any] = {
        "offer_id": offer_id,
        "campaign_id": campaign_id,
        "campaign_version": 1,
        "channel": "online",
        "currency": "JPY",
        "discount": Discount(percentage=10, max=2000),
        "code_mode": "unique",
        "code_prefix": "TRAIL",
        "code_count": 5000,
        "max_total": 2,
        "per_customer": 1,
        "starts_at": T0,
        "ends_at": T0 + timedelta(days=31),
        "reminders_days_before_expiry": [3, 1],
    }
    fields.update(extra)
    return Offer(**fields)
