"""A campaign republished while its codes are out: the loader publishes version 2 from the
campaigns bucket (as S3 notifies it), then the storefront calls the offers API.

What a new version changes must hold at once for every code: a replaced shared code
stops working, codes beyond a lowered ``codes.count`` stop going out, and the expiry a
customer is told is the current campaign's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest

from functions.campaigns.dal import CampaignFiles, CampaignStore, MarketersTopic
from functions.campaigns.handlers.loader import Loader
from functions.campaigns.logic import report_key
from functions.campaigns.models import Code
from functions.core.clock import FixedClock, frozen_at
from functions.core.events import InMemoryPublisher
from functions.offers.handlers import api
from infra.local.proxy_event import lambda_context, proxy_event
from tests.support.aws import aws_env, tables
from tests.unit.offers.api_calls import OPEN
from tests.unit.offers.api_calls import SHOP as API_SHOP

__all__ = ["aws_env", "tables"]

BUCKET = "rebates-campaigns-test"
KEY = "campaigns/shop-2027.json"

# The API tests' campaign, with no total on the shared code: republishing it is the test.
SHOP: dict[str, Any] = copy.deepcopy(API_SHOP)
del SHOP["offers"][0]["usage"]["max_total"]

CART = {
    "currency": "JPY",
    "items": [{"sku": "TRAIL-01", "category": "shoes", "quantity": 1, "unitPrice": 12000}],
}


@dataclass
class Shop:
    """The campaigns bucket and its loader, and the storefront's view of the API."""

    loader: Loader
    s3: Any
    clock: FixedClock

    def publish(self, document: dict[str, Any]) -> dict[str, Any]:
        """Upload the file, deliver its notification, and return the loader's report."""
        self.s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(document).encode())
        record = {
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": BUCKET}, "object": {"key": quote_plus(KEY)}},
        }
        (result,) = self.loader.handle({"Records": [record]})["results"]
        assert result["outcome"] == "published", result
        response = self.s3.get_object(Bucket=BUCKET, Key=report_key(KEY))
        report: dict[str, Any] = json.loads(response["Body"].read())
        return report

    def republish(self, change: Any) -> dict[str, Any]:
        """Publish the shop file with `change` applied to a copy; the API then sees it
        (its 30 s campaign cache is a container's, and this is past it)."""
        document = copy.deepcopy(SHOP)
        change(document)
        report = self.publish(document)
        api.store.campaigns.clear()
        return report


@pytest.fixture
def shop(tables: list[str]) -> Iterator[Shop]:
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"}
    )
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    topic = boto3.client("sns").create_topic(Name="marketers")["TopicArn"]
    loader = Loader(
        files=CampaignFiles(BUCKET),
        store=CampaignStore(),
        events=InMemoryPublisher(),
        marketers=MarketersTopic(topic),
    )
    api.store.campaigns.clear()
    with frozen_at(OPEN) as clock:
        world = Shop(loader, s3, clock)
        world.publish(SHOP)
        yield world
    api.store.campaigns.clear()


def call(
    method: str, path: str, body: Any = None, query: dict[str, str] | None = None
) -> tuple[int, Any]:
    event = proxy_event(method, path, body=body, query=query, api_key="test-key")
    response = api.app.resolve(event, lambda_context())
    return response["statusCode"], json.loads(response["body"])


def issue(offer_id: str, customer_id: str) -> tuple[int, Any]:
    return call("POST", f"/v1/offers/{offer_id}/codes", {"customerId": customer_id})


def redeem(code: str, customer_id: str, order_id: str, channel: str = "online") -> tuple[int, Any]:
    body = {
        "code": code,
        "customerId": customer_id,
        "orderId": order_id,
        "channel": channel,
        "cart": CART,
    }
    return call("POST", "/v1/redemptions", body)


def validate(code: str, customer_id: str) -> dict[str, Any]:
    body = {"code": code, "customerId": customer_id, "channel": "online", "cart": CART}
    status, answer = call("POST", "/v1/redemptions/validate", body)
    assert status == 200, answer
    return dict(answer)


def assert_retired(status: int, answer: Any) -> None:
    assert status == 422, answer
    assert set(answer) == {"error"}
    assert answer["error"]["code"] == "code_retired"
    assert answer["error"]["message"]
    assert isinstance(answer["error"]["details"], dict)


def pooled(offer_id: str) -> list[str]:
    return [code.code for code in Code.pool(offer_id, limit=100)]


# -- a shared code replaced ---------------------------------------------------------------


def replace_welcome_code(document: dict[str, Any]) -> None:
    document["offers"][0]["codes"]["code"] = "hello-500"


def test_a_replaced_shared_code_is_retired_and_the_new_one_works(shop: Shop) -> None:
    assert redeem("welcome-500", "cust-1", "order-1")[0] == 201

    report = shop.republish(replace_welcome_code)

    assert report["status"] == "published" and report["version"] == 2
    assert report["errors"] == []
    assert report["codesRetired"] == {"WELCOME": 1}
    assert_retired(*redeem("welcome-500", "cust-2", "order-2"))
    assert_retired(*redeem("WELCOME-500", "cust-1", "order-3"))
    assert validate("welcome-500", "cust-2") == {
        "valid": False,
        "discount": {"amount": 0, "currency": "JPY"},
        "reasons": ["code_retired"],
    }
    status, body = redeem("hello-500", "cust-2", "order-4")
    assert status == 201 and body["code"] == "HELLO-500"
    assert validate("hello-500", "cust-3")["valid"] is True


def test_a_container_still_holding_the_old_version_refuses_the_replaced_code(
    shop: Shop,
) -> None:
    assert redeem("welcome-500", "cust-1", "order-1")[0] == 201  # version 1 now cached
    document = copy.deepcopy(SHOP)
    replace_welcome_code(document)
    shop.publish(document)  # the API's cache is left as it is

    assert_retired(*redeem("welcome-500", "cust-2", "order-2"))
    assert redeem("hello-500", "cust-2", "order-3")[0] == 201


def test_a_customer_given_the_old_shared_code_is_given_the_new_one(shop: Shop) -> None:
    status, first = issue("WELCOME", "cust-1")
    assert status == 201 and first["code"] == "WELCOME-500"

    shop.republish(replace_welcome_code)

    status, again = issue("WELCOME", "cust-1")
    assert status == 201 and again["code"] == "HELLO-500"
    assert again["qr"]["payload"] == "REBATES1:HELLO-500"
    status, listed = call("GET", "/v1/offers", query={"customerId": "cust-1"})
    assert status == 200
    welcome = next(o for o in listed["offers"] if o["offerId"] == "WELCOME")
    assert welcome["issuedCode"] == "HELLO-500"


def test_a_shared_code_given_back_to_its_offer_works_again(shop: Shop) -> None:
    shop.republish(replace_welcome_code)
    report = shop.publish(SHOP)  # version 3: the leak was a false alarm
    api.store.campaigns.clear()

    assert report["version"] == 3 and report["codesRetired"] == {"WELCOME": 1}
    assert redeem("welcome-500", "cust-1", "order-1")[0] == 201
    assert_retired(*redeem("hello-500", "cust-2", "order-2"))


# -- a lower count of unique codes --------------------------------------------------------


def lower_web10_to(count: int) -> Any:
    def change(document: dict[str, Any]) -> None:
        document["offers"][1]["codes"]["count"] = count

    return change


def test_lowering_the_count_retires_the_unissued_codes_beyond_it(shop: Shop) -> None:
    held = [issue("WEB10", customer)[1]["code"] for customer in ("cust-1", "cust-2")]
    unissued = pooled("WEB10")
    assert len(unissued) == 4

    report = shop.republish(lower_web10_to(3))

    # Six codes went out or could: now three can, and two of them already have.
    assert report["codesRetired"] == {"WEB10": 3}
    assert report["status"] == "published" and report["version"] == 2
    (left,) = pooled("WEB10")
    retired = [code for code in unissued if code != left]
    for code in retired:
        assert validate(code, "cust-9")["reasons"] == ["code_retired"]
        assert_retired(*redeem(code, "cust-9", f"order-{code}"))
    status, third = issue("WEB10", "cust-3")
    assert status == 201 and third["code"] == left
    status, body = issue("WEB10", "cust-4")
    assert status == 409 and body["error"]["code"] == "codes_exhausted"
    # Codes in customers' hands stay valid.
    for number, (customer, code) in enumerate(zip(("cust-1", "cust-2"), held, strict=True)):
        assert redeem(code, customer, f"order-{number}")[0] == 201


def test_lowering_below_what_was_issued_retires_the_whole_pool(shop: Shop) -> None:
    for customer in ("cust-1", "cust-2", "cust-3"):
        assert issue("WEB10", customer)[0] == 201

    report = shop.republish(lower_web10_to(2))

    assert report["codesRetired"] == {"WEB10": 3}
    assert pooled("WEB10") == []
    status, body = issue("WEB10", "cust-4")
    assert status == 409 and body["error"]["code"] == "codes_exhausted"


def test_raising_the_count_again_adds_codes_to_what_is_left(shop: Shop) -> None:
    assert issue("WEB10", "cust-1")[0] == 201
    shop.republish(lower_web10_to(2))
    assert len(pooled("WEB10")) == 1

    report = shop.republish(lower_web10_to(4))

    assert "codesRetired" not in report  # this version retired nothing
    assert len(pooled("WEB10")) == 3  # four codes in all, one of them issued


def test_a_retry_of_the_same_file_retires_nothing_more_and_reports_the_same(
    shop: Shop,
) -> None:
    first = shop.republish(lower_web10_to(3))
    shop.s3.delete_object(Bucket=BUCKET, Key=report_key(KEY))  # as if it was never written
    record = {
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": BUCKET}, "object": {"key": quote_plus(KEY)}},
    }

    assert shop.loader.handle({"Records": [record]})["results"][0]["outcome"] == "unchanged"

    again = json.loads(shop.s3.get_object(Bucket=BUCKET, Key=report_key(KEY))["Body"].read())
    assert again["codesRetired"] == first["codesRetired"] == {"WEB10": 3}
    assert len(pooled("WEB10")) == 3


# -- the expiry of a code issued before ---------------------------------------------------


def extend_to_the_20th(document: dict[str, Any]) -> None:
    document["ends_at"] = "2027-05-20T00:00:00+09:00"


def test_a_code_asked_for_again_tells_the_current_expiry(shop: Shop) -> None:
    status, first = issue("TILL300", "cust-1")
    assert status == 201 and first["expiresAt"] == "2027-05-15T15:00:00Z"

    shop.republish(extend_to_the_20th)

    status, again = issue("TILL300", "cust-1")
    assert status == 201
    assert again["code"] == first["code"]
    assert again["expiresAt"] == "2027-05-19T15:00:00Z"
    assert "2027-05-19T15:00:00Z" in again["qr"]["svg"]
    assert "2027-05-15T15:00:00Z" not in again["qr"]["svg"]
    status, other = issue("TILL300", "cust-2")
    assert status == 201 and other["expiresAt"] == again["expiresAt"]
