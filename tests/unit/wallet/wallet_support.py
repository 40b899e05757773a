"""Builders for the wallet domain's tests: cashback campaigns published as the loader
publishes them, purchases, and moto with its requests serialised for threads."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.campaigns.config import CampaignConfig, parse_campaign
from functions.campaigns.models import Campaign, get_campaign, publish_campaign
from functions.core.models import reset_connections, resolve_table_name
from functions.core.tables import CAMPAIGNS, WALLET
from functions.wallet.dal import PurchaseInput, PurchaseLine, WalletStore
from tests.support.aws import aws_env
from tests.support.tables import create_table_request

__all__ = ["aws_env", "serialised_moto", "tables"]

# 10% back on shoes, pending 3 days, expiring 30 days after it became available.
CASHBACK: dict[str, Any] = {
    "id": "trail-cashback",
    "name": "Trail cashback",
    "kind": "cashback",
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "starts_at": "2027-05-01T00:00:00+09:00",
    "ends_at": "2027-07-01T00:00:00+09:00",
    "budget": {"amount": 100_000, "max_rewards": 100},
    "eligibility": {"channels": ["online", "in_store"], "categories": ["shoes"]},
    "reward": {"percentage": 10},
    "limits": {"per_customer": 10},
    "cashback": {"pending_days": 3, "expires_after_days": 30},
}

# 2027-05-10 12:00 in Tokyo.
PLACED = datetime(2027, 5, 10, 3, 0, tzinfo=UTC)


def cashback(**changes: Any) -> dict[str, Any]:
    """The campaign file with top-level keys replaced (None removes one)."""
    document = copy.deepcopy(CASHBACK)
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return document


def publish(document: dict[str, Any], version: int | None = None) -> CampaignConfig:
    """Publish `document` as the loader does (the next version unless given)."""
    config = parse_campaign(document)
    stored = get_campaign(config.id)
    version = version or (stored.version + 1 if stored is not None else 1)
    campaign = Campaign(
        campaign_id=config.id,
        name=config.name,
        kind=config.kind,
        currency=config.currency,
        timezone=config.timezone,
        starts_at=config.starts_at,
        ends_at=config.ends_at,
        version=version,
        budget_amount=config.budget.amount,
        budget_max_rewards=config.budget.max_rewards,
        source_key=f"campaigns/{config.id}.yaml",
        published_at=config.starts_at - timedelta(days=1),
    )
    publish_campaign(campaign, config.to_document())
    return config


def used(campaign_id: str = CASHBACK["id"]) -> tuple[int, int]:
    campaign = get_campaign(campaign_id)
    assert campaign is not None
    return campaign.budget_used_amount, campaign.budget_used_count


def purchase(
    order_id: str = "ord-1",
    customer_id: str = "cust-1",
    *,
    price: int = 10_000,
    quantity: int = 1,
    category: str | None = "shoes",
    sku: str = "TRAIL-01",
    channel: str = "online",
    placed_at: datetime = PLACED,
    currency: str = "JPY",
    total: int | None = None,
    extra: tuple[PurchaseLine, ...] = (),
) -> PurchaseInput:
    lines = (PurchaseLine(sku, category, quantity, price), *extra)
    return PurchaseInput(
        order_id=order_id,
        customer_id=customer_id,
        channel=channel,
        placed_at=placed_at,
        currency=currency,
        items=lines,
        total=total
        if total is not None
        else sum(line.quantity * line.unit_price for line in lines),
    )


def assert_audited(store: WalletStore, *customers: str) -> None:
    for customer in customers:
        report = store.audit(customer)
        assert report.ok, report.differences


@pytest.fixture
def tables(aws_env: None) -> Iterator[list[str]]:
    """The two tables the wallet uses, fresh, on in-process moto, without their streams:
    nothing here reads them, and moto copies every stream record for every item of a
    transaction, which makes a long test quadratic."""
    reset_connections()
    with mock_aws():
        client = boto3.client("dynamodb")
        names = []
        for spec in (CAMPAIGNS, WALLET):
            request = create_table_request(spec, resolve_table_name(spec))
            request.pop("StreamSpecification", None)
            client.create_table(**request)
            names.append(request["TableName"])
        yield names
    reset_connections()


@pytest.fixture
def serialised_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One request at a time into in-process moto, as the local cloud's gate does: moto
    does not lock its backends, while the code under test runs in many threads."""
    from moto.core.botocore_stubber import BotocoreStubber

    gate = threading.Lock()
    process = BotocoreStubber.process_request

    def one_at_a_time(self: BotocoreStubber, request: Any) -> Any:
        with gate:
            return process(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", one_at_a_time)
    yield


def at(days: float = 0, *, hours: float = 0) -> datetime:
    return PLACED + timedelta(days=days, hours=hours)
