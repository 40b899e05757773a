"""Builders for the analytics tests: a published campaign, storefront and domain events,
and a `Counters` whose pseudonym key needs no Secrets Manager."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.analytics.dal import CampaignZones, Counters
from functions.analytics.records import STOREFRONT, TrackedEvent
from functions.core.models import reset_connections, resolve_table_name
from functions.core.tables import ANALYTICS, CAMPAIGNS
from tests.support.aws import aws_env
from tests.support.campaigns import publish_campaign
from tests.support.tables import create_table_request

__all__ = ["aws_env", "tables"]

CAMPAIGN = "spring-trail-2027"
CAMPAIGN_FILE: dict[str, Any] = {
    "id": CAMPAIGN,
    "name": "Spring trail shoes",
    "kind": "offer",
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "starts_at": "2027-03-01T00:00:00+09:00",
    "ends_at": "2027-04-01T00:00:00+09:00",
    "budget": {"amount": 5_000_000, "max_rewards": 10_000},
    "eligibility": {"channels": ["online", "in_store"]},
    "goals": {"conversions": 100, "sales": 1_000_000},
    "offers": [
        {
            "id": "TRAIL10",
            "channel": "online",
            "discount": {"amount": 500},
            "codes": {"mode": "shared", "code": "TRAIL10"},
            "usage": {"max_total": 5000, "per_customer": 1},
        }
    ],
}
# 2027-03-10 10:00 in Tokyo (01:00 UTC): local day 2027-03-10.
T0 = datetime(2027, 3, 10, 1, 0, tzinfo=UTC)
KEY = b"test-pseudonym-key"
_ids = count(1)


def ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def storefront(
    kind: str,
    *,
    at: datetime = T0,
    session: str = "sess-1",
    visitor: str = "anon-1",
    campaign: str | None = CAMPAIGN,
    event_id: str | None = None,
    **fields: Any,
) -> TrackedEvent:
    return TrackedEvent(
        event_id=event_id or f"evt-{next(_ids)}",
        type=kind,
        source=STOREFRONT,
        occurred_ms=ms(at),
        received_ms=ms(at) + 500,
        session_id=session,
        anonymous_id=visitor,
        campaign_id=campaign,
        **fields,
    )


def domain(
    kind: str, *, at: datetime = T0, campaign: str | None = CAMPAIGN, **fields: Any
) -> TrackedEvent:
    return TrackedEvent(
        event_id=fields.pop("event_id", None) or f"evt-{next(_ids)}",
        type=kind,
        source="rebates.test",
        occurred_ms=ms(at),
        received_ms=ms(at) + 500,
        campaign_id=campaign,
        **fields,
    )


def counters() -> Counters:
    return Counters(CampaignZones(), lambda: KEY)


@pytest.fixture
def tables(aws_env: None) -> Iterator[list[str]]:
    """The campaigns and analytics tables on in-process moto, with the campaign
    published; no streams (nothing here reads them)."""
    reset_connections()
    with mock_aws():
        client = boto3.client("dynamodb")
        names = []
        for spec in (CAMPAIGNS, ANALYTICS):
            request = create_table_request(spec, resolve_table_name(spec))
            request.pop("StreamSpecification", None)
            client.create_table(**request)
            names.append(request["TableName"])
        publish_campaign(CAMPAIGN_FILE, T0 - timedelta(days=30))
        yield names
    reset_connections()
