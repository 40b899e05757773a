"""Codes issued after a purchase: `PurchaseRecorded` from the bus, through the offers'
queue, issues the buyer the code of each live campaign's post-purchase offer.

The purchases are published to the bus on in-process moto, delivered by a rule to a
queue and received from it, so the handler gets the SQS batch Lambda would hand it. What
the issue wrote is read back from the table and from the table's own stream, through the
offers outbox, as the event a customer is told of.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from functions.campaigns.models import get_offer
from functions.core.clock import FixedClock, frozen_at
from functions.core.event_types import OfferCodeIssued, PurchaseRecorded
from functions.core.events import EventBridgePublisher
from functions.core.money import Money
from functions.offers.handlers import api, purchases
from functions.offers.models import CodeIssue
from infra.local.pollers import sqs_event
from infra.local.proxy_event import lambda_context
from tests.support.bus import BUS, tap_the_bus
from tests.unit.core.log_capture import captured_logs, metric_values
from tests.unit.offers.api_calls import issue, publish
from tests.unit.offers.table_stream import published

# Inside both campaigns' windows.
NOW = datetime(2027, 5, 10, 3, 0, tzinfo=UTC)

THANKS: dict[str, Any] = {
    "id": "thanks-2027",
    "name": "Thank you for shopping",
    "kind": "offer",
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "starts_at": "2027-05-01T00:00:00+09:00",
    "ends_at": "2027-06-01T00:00:00+09:00",
    "budget": {"amount": 100_000},
    "eligibility": {"channels": ["online", "in_store"]},
    "offers": [
        {
            "id": "THANKS500",
            "channel": "both",
            "discount": {"amount": 500},
            "codes": {"mode": "unique", "prefix": "THX", "count": 3},
            "usage": {"per_customer": 1},
            "issue_after_purchase": True,
        },
        {
            "id": "ASKED10",
            "channel": "both",
            "discount": {"percentage": 10},
            "codes": {"mode": "unique", "prefix": "ASK", "count": 3},
        },
    ],
}

# Online purchases only; its shared code is what a buyer is told.
WEB_THANKS: dict[str, Any] = {
    "id": "web-thanks-2027",
    "name": "Web thank you",
    "kind": "offer",
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "starts_at": "2027-05-05T00:00:00+09:00",
    "ends_at": "2027-05-20T00:00:00+09:00",
    "budget": {"amount": 100_000},
    "eligibility": {"channels": ["online"]},
    "offers": [
        {
            "id": "WEBTHANKS",
            "channel": "online",
            "discount": {"amount": 300},
            "codes": {"mode": "shared", "code": "web-thanks"},
            "issue_after_purchase": True,
        }
    ],
}


@pytest.fixture
def clock(tables: list[str]) -> Iterator[FixedClock]:
    purchases.store.campaigns.clear()
    api.store.campaigns.clear()
    publish(THANKS)
    publish(WEB_THANKS)
    with frozen_at(NOW) as fixed:
        yield fixed
    purchases.store.campaigns.clear()
    api.store.campaigns.clear()


@pytest.fixture
def queue(clock: FixedClock) -> str:
    """The queue the bus delivers purchases to, as the offers' rule does."""
    return tap_the_bus("rebates.wallet")


def purchase(
    order_id: str = "order-1",
    *,
    customer_id: str = "cust-1",
    channel: str = "in_store",
    placed_at: datetime = NOW - timedelta(minutes=5),
) -> PurchaseRecorded:
    return PurchaseRecorded(
        eventId=f"evt_purchase_{order_id}",
        occurredAt=placed_at,
        customerId=customer_id,
        orderId=order_id,
        channel=channel,
        placedAt=placed_at,
        total=Money(amount=12_000, currency="JPY"),
        items=[
            {"sku": "TRAIL-01", "quantity": 1, "unitPrice": {"amount": 12_000, "currency": "JPY"}}
        ],
    )


def delivered(queue: str, *details: PurchaseRecorded) -> dict[str, Any]:
    """`details` published to the bus, and the batch Lambda hands the consumer of `queue`."""
    EventBridgePublisher(BUS, client=boto3.client("events")).publish(*details)
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"])[
        "Messages"
    ]
    assert len(messages) == len(details)
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    return sqs_event(messages, arn["QueueArn"])


def handle(event: dict[str, Any]) -> dict[str, Any]:
    return dict(purchases.handler(event, lambda_context("purchases")))


def issued(customer_id: str, offer_id: str) -> CodeIssue | None:
    return CodeIssue.find(customer_id, offer_id)


def codes_issued(offer_id: str) -> int:
    offer = get_offer(offer_id)
    assert offer is not None
    return offer.codes_issued


def announced() -> list[OfferCodeIssued]:
    return published(OfferCodeIssued)


# -- the offers read their post-purchase flag ----------------------------------------


def test_the_offer_item_says_whether_a_purchase_issues_its_code(clock: FixedClock) -> None:
    assert purchases.store.offer("THANKS500").issue_after_purchase is True
    assert purchases.store.offer("ASKED10").issue_after_purchase is False


# -- a purchase issues a code ---------------------------------------------------------


def test_a_purchase_issues_the_buyer_the_post_purchase_offer_s_code(queue: str) -> None:
    response = handle(delivered(queue, purchase(channel="in_store")))

    assert response == {"batchItemFailures": []}
    thanks = issued("cust-1", "THANKS500")
    assert thanks is not None
    assert thanks.order_id == "order-1"
    assert thanks.code.startswith("THX-")
    assert thanks.expires_at == datetime(2027, 5, 31, 15, 0, tzinfo=UTC)
    assert codes_issued("THANKS500") == 1
    # Not an offer that waits to be asked for, nor one for online purchases only.
    assert issued("cust-1", "ASKED10") is None
    assert issued("cust-1", "WEBTHANKS") is None


def test_each_live_campaign_issues_its_own_post_purchase_code(queue: str) -> None:
    handle(delivered(queue, purchase(channel="online")))

    thanks, web = issued("cust-1", "THANKS500"), issued("cust-1", "WEBTHANKS")
    assert thanks is not None and web is not None
    assert (web.code, web.mode, web.order_id) == ("WEB-THANKS", "shared", "order-1")


def test_the_issued_code_is_announced_with_the_order_it_followed(queue: str) -> None:
    handle(delivered(queue, purchase(channel="in_store")))

    (event,) = announced()
    thanks = issued("cust-1", "THANKS500")
    assert thanks is not None
    assert (event.offerId, event.code, event.orderId) == ("THANKS500", thanks.code, "order-1")
    assert event.customerId == "cust-1"
    assert event.qrPayload is not None  # a code for the till, too
    assert event.model_dump(mode="json")["orderId"] == "order-1"


def test_a_code_asked_for_is_announced_without_an_order(clock: FixedClock) -> None:
    issue("ASKED10", "cust-2")

    (event,) = announced()
    assert (event.offerId, event.orderId) == ("ASKED10", None)


def test_a_redelivered_purchase_issues_nothing_new(queue: str) -> None:
    event = delivered(queue, purchase())
    assert handle(event) == {"batchItemFailures": []}
    first = issued("cust-1", "THANKS500")

    assert handle(json.loads(json.dumps(event))) == {"batchItemFailures": []}
    # The same purchase published again (a retried PutEvents) is a new message, too.
    assert handle(delivered(queue, purchase())) == {"batchItemFailures": []}

    again = issued("cust-1", "THANKS500")
    assert first is not None and again is not None
    assert (again.code, again.order_id, again.issued_at) == (
        first.code,
        first.order_id,
        first.issued_at,
    )
    assert codes_issued("THANKS500") == 1
    assert [e.code for e in announced()] == [first.code]


def test_a_customer_s_next_purchase_keeps_the_code_they_hold(queue: str) -> None:
    handle(delivered(queue, purchase("order-1")))
    first = issued("cust-1", "THANKS500")

    handle(delivered(queue, purchase("order-2")))

    again = issued("cust-1", "THANKS500")
    assert first is not None and again is not None
    assert (again.code, again.order_id) == (first.code, "order-1")
    assert codes_issued("THANKS500") == 1
    assert [e.orderId for e in announced()] == ["order-1"]


def test_a_customer_who_asked_for_the_code_keeps_it_after_a_purchase(queue: str) -> None:
    code = issue("THANKS500", "cust-1")

    handle(delivered(queue, purchase()))

    held = issued("cust-1", "THANKS500")
    assert held is not None
    assert (held.code, held.order_id) == (code, None)
    assert codes_issued("THANKS500") == 1
    assert [e.orderId for e in announced()] == [None]


@pytest.mark.parametrize(
    "placed_at",
    [
        pytest.param(datetime(2027, 4, 30, 14, 59, 59, tzinfo=UTC), id="before-the-start"),
        pytest.param(datetime(2027, 5, 31, 15, 0, tzinfo=UTC), id="at-the-end"),
    ],
)
def test_a_purchase_outside_the_window_issues_nothing(queue: str, placed_at: datetime) -> None:
    response = handle(delivered(queue, purchase(placed_at=placed_at)))

    assert response == {"batchItemFailures": []}
    assert issued("cust-1", "THANKS500") is None
    assert issued("cust-1", "WEBTHANKS") is None


def test_a_purchase_on_a_channel_the_offer_does_not_take_issues_nothing(queue: str) -> None:
    handle(delivered(queue, purchase(channel="in_store")))
    assert issued("cust-1", "WEBTHANKS") is None


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "offers")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Rebates")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)


@pytest.mark.usefixtures("service")
def test_codes_run_out_without_a_failure_loop(
    queue: str, capsys: pytest.CaptureFixture[str]
) -> None:
    buyers = [purchase(f"order-{n}", customer_id=f"cust-{n}") for n in range(1, 5)]

    with captured_logs() as logs:
        response = handle(delivered(queue, *buyers))

    # Three codes, four buyers: the fourth message is done, counted and logged.
    assert response == {"batchItemFailures": []}
    holders = [n for n in range(1, 5) if issued(f"cust-{n}", "THANKS500") is not None]
    assert len(holders) == 3
    assert codes_issued("THANKS500") == 3
    stdout = capsys.readouterr().out
    assert metric_values(
        stdout, "PostPurchaseCodesSkipped", service="offers", reason="codes_exhausted"
    ) == [1.0]
    assert sum(metric_values(stdout, "CodesIssued", service="offers", mode="unique")) == 3
    (skipped,) = logs.with_message("post-purchase code not issued")
    assert (skipped["offerId"], skipped["reason"]) == ("THANKS500", "codes_exhausted")


@pytest.mark.usefixtures("service")
def test_an_archived_offer_issues_nothing_and_is_counted(
    queue: str, capsys: pytest.CaptureFixture[str]
) -> None:
    offer = get_offer("THANKS500")
    assert offer is not None
    offer.update(actions=offer.status_actions("archived"))

    response = handle(delivered(queue, purchase()))

    assert response == {"batchItemFailures": []}
    assert issued("cust-1", "THANKS500") is None
    assert metric_values(
        capsys.readouterr().out, "PostPurchaseCodesSkipped", reason="offer_archived"
    ) == [1.0]


def test_a_message_that_is_no_purchase_fails_alone(queue: str) -> None:
    event = delivered(queue, purchase("order-1", customer_id="cust-1"))
    broken = copy.deepcopy(event["Records"][0])
    broken["messageId"] = "not-a-purchase"
    broken["body"] = json.dumps({"detail-type": "PurchaseRecorded", "detail": {"orderId": 1}})
    event["Records"].insert(0, broken)

    response = handle(event)

    assert response == {"batchItemFailures": [{"itemIdentifier": "not-a-purchase"}]}
    assert issued("cust-1", "THANKS500") is not None
