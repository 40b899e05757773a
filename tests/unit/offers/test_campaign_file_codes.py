"""A campaign file's codes as a marketer writes them, lower-case or full-width, published by
the loader (as S3 notifies it) and then given out and redeemed through the offers API:
they are stored as the codes customers type, upper-case.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest

from functions.campaigns.dal import CampaignFiles, CampaignStore, MarketersTopic
from functions.campaigns.handlers.loader import Loader
from functions.campaigns.logic import report_key
from functions.campaigns.models import Code, get_code, get_offer
from functions.core.clock import frozen_at
from functions.core.events import InMemoryPublisher
from functions.offers.handlers import api
from infra.local.proxy_event import lambda_context, proxy_event
from tests.support.aws import aws_env, tables

__all__ = ["aws_env", "tables"]

BUCKET = "rebates-campaigns-test"
KEY = "campaigns/app-week.json"
OPEN = datetime(2027, 5, 3, 12, 0, tzinfo=UTC)

APP_WEEK: dict[str, Any] = {
    "id": "app-week",
    "name": "App week",
    "kind": "offer",
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "starts_at": "2027-05-01T10:00:00+09:00",
    "ends_at": "2027-05-16T00:00:00+09:00",
    "budget": {"amount": 100_000},
    "eligibility": {"channels": ["online", "in_store"]},
    "offers": [
        {
            "id": "APP5",
            "channel": "online",
            "discount": {"amount": 500},
            "codes": {"mode": "unique", "prefix": "app", "count": 3},
        },
        {
            "id": "HELLO",
            "channel": "both",
            "discount": {"amount": 300},
            # Typed with a Japanese IME in full-width mode.
            "codes": {
                "mode": "shared",
                "code": "\uff48\uff45\uff4c\uff4c\uff4f\uff0d\uff13\uff10\uff10",
            },
        },
    ],
}

CART = {
    "currency": "JPY",
    "items": [{"sku": "TRAIL-01", "category": "shoes", "quantity": 1, "unitPrice": 12000}],
}


@pytest.fixture
def published(tables: list[str]) -> Iterator[dict[str, Any]]:
    """The loader's report on APP_WEEK, uploaded to the campaigns bucket."""
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"}
    )
    topic = boto3.client("sns").create_topic(Name="marketers")["TopicArn"]
    loader = Loader(
        files=CampaignFiles(BUCKET),
        store=CampaignStore(),
        events=InMemoryPublisher(),
        marketers=MarketersTopic(topic),
    )
    api.store.campaigns.clear()
    with frozen_at(OPEN):
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(APP_WEEK).encode())
        record = {
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": BUCKET}, "object": {"key": quote_plus(KEY)}},
        }
        loader.handle({"Records": [record]})
        response = s3.get_object(Bucket=BUCKET, Key=report_key(KEY))
        yield json.loads(response["Body"].read())
    api.store.campaigns.clear()


def call(path: str, body: dict[str, Any]) -> tuple[int, Any]:
    event = proxy_event("POST", path, body=body, api_key="test-key")
    response = api.app.resolve(event, lambda_context())
    return response["statusCode"], json.loads(response["body"])


def test_a_lower_case_prefix_is_published_and_its_codes_are_upper_case(
    published: dict[str, Any],
) -> None:
    assert (published["status"], published["errors"]) == ("published", [])
    offer = get_offer("APP5")
    assert offer is not None and offer.code_prefix == "APP"
    pooled = [code.code for code in Code.pool("APP5", limit=10)]
    assert len(pooled) == 3 and all(code.startswith("APP-") for code in pooled)

    status, issued = call("/v1/offers/APP5/codes", {"customerId": "cust-1"})
    assert status == 201 and issued["code"].startswith("APP-")
    redemption = {"customerId": "cust-1", "orderId": "o1", "channel": "online", "cart": CART}
    status, body = call("/v1/redemptions", {**redemption, "code": issued["code"].lower()})
    assert status == 201 and body["code"] == issued["code"]


def test_a_full_width_shared_code_is_the_code_customers_type(
    published: dict[str, Any],
) -> None:
    assert published["status"] == "published"
    stored = get_code("HELLO-300")
    assert stored is not None and stored.offer_id == "HELLO"
    offer = get_offer("HELLO")
    assert offer is not None and offer.shared_code == "HELLO-300"

    status, issued = call("/v1/offers/HELLO/codes", {"customerId": "cust-1"})
    assert status == 201 and issued["code"] == "HELLO-300"
    redemption = {"customerId": "cust-1", "orderId": "o1", "channel": "online", "cart": CART}
    status, body = call("/v1/redemptions", {**redemption, "code": "hello\u2010300"})
    assert status == 201 and body["code"] == "HELLO-300"
