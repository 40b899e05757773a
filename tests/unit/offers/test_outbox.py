"""The offers outbox: which Campaigns-table changes are events, and how a batch of stream
records is published, with failures reported per record.

Stream records are built from real model items (their ``serialize()`` is the DynamoDB JSON
the stream carries), and once from the records moto's own stream produced for real writes.
Every published detail is checked against its committed schema by the publisher.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from functions.campaigns.models import Code, CodeGeneration
from functions.core.event_types import (
    OfferCodeIssued,
    OfferExpiring,
    OfferRedeemed,
    RedemptionRolledBack,
)
from functions.core.events import InMemoryPublisher
from functions.core.money import Money
from functions.core.observability import instrumented
from functions.core.outbox import OutboxRecordError, commit_age
from functions.core.tables import CAMPAIGNS
from functions.offers.handlers import outbox as outbox_module
from functions.offers.handlers.outbox import Outbox
from functions.offers.models import (
    REDEEMED,
    ROLLED_BACK,
    CodeIssue,
    CustomerUsage,
    OrderRedemption,
    Redemption,
    Reminder,
)
from functions.offers.outbox import (
    CUSTOMER_PREFIX,
    ISSUE_PREFIX,
    REDEMPTION_PREFIX,
    STREAM_FILTERS,
    event_for,
)
from functions.offers.qr import payload_for
from infra.local.proxy_event import lambda_context
from infra.local.stream_filters import matches
from tests.support.bus import (
    RefusingPublisher,
    publishing_environment,
    tap_the_bus,
    the_one_envelope,
)
from tests.support.streams import batch
from tests.support.streams import stream_record as stream_record_of
from tests.unit.core.log_capture import captured_logs, metric_values
from tests.unit.data.factories import make_campaign, make_offer

ISSUED_AT = datetime(2027, 3, 2, 9, 30, tzinfo=UTC)
REDEEMED_AT = datetime(2027, 3, 5, 12, 0, tzinfo=UTC)
ROLLED_BACK_AT = datetime(2027, 3, 5, 12, 7, tzinfo=UTC)
CAMPAIGN = "spring-trail-2027"
STREAM_ARN = (
    "arn:aws:dynamodb:ap-northeast-1:123456789012:table/rebates-campaigns/stream/2027-03-01T00:00"
)


def code_issue(**changes: Any) -> CodeIssue:
    fields: dict[str, Any] = {
        "customer_id": "cust-1",
        "offer_id": "TRAIL10",
        "campaign_id": CAMPAIGN,
        "code": "TRAIL-7KQ2M9XD",
        "mode": "unique",
        "channel": "online",
        "issued_at": ISSUED_AT,
        "expires_at": ISSUED_AT + timedelta(days=30),
    }
    fields.update(changes)
    return CodeIssue(**fields)


def redemption(**changes: Any) -> Redemption:
    fields: dict[str, Any] = {
        "redemption_id": "rdm_01",
        "code": "TRAIL-7KQ2M9XD",
        "offer_id": "TRAIL10",
        "campaign_id": CAMPAIGN,
        "customer_id": "cust-1",
        "order_id": "order-1001",
        "channel": "online",
        "discount": Money(amount=1200, currency="JPY"),
        "cart_total": Money(amount=12000, currency="JPY"),
        "status": REDEEMED,
        "redeemed_at": REDEEMED_AT,
    }
    fields.update(changes)
    return Redemption(**fields)


def rolled_back(**changes: Any) -> Redemption:
    return redemption(
        status=ROLLED_BACK,
        rolled_back_at=ROLLED_BACK_AT,
        rollback_reason="payment_failed",
        **changes,
    )


# Every record of these tests committed at COMMITTED_AT, on the Campaigns table's stream.
stream_record = functools.partial(stream_record_of, created=1804232400, stream_arn=STREAM_ARN)


# -- the key prefixes are the models' -------------------------------------------------


def test_prefixes_are_those_the_models_build() -> None:
    assert CodeIssue.key("cust-1", "TRAIL10") == (
        f"{CUSTOMER_PREFIX}cust-1",
        f"{ISSUE_PREFIX}TRAIL10",
    )
    assert Redemption.key("rdm_01")[0] == f"{REDEMPTION_PREFIX}rdm_01"


# -- which changes are events ---------------------------------------------------------


def test_an_issued_code_is_announced_with_its_offer_channel_and_mode() -> None:
    event = event_for(stream_record("INSERT", new=code_issue()))

    assert isinstance(event, OfferCodeIssued)
    assert event.model_dump(mode="json", exclude={"eventId"}) == {
        "occurredAt": "2027-03-02T09:30:00Z",
        "correlationId": None,
        "customerId": "cust-1",
        "campaignId": CAMPAIGN,
        "offerId": "TRAIL10",
        "code": "TRAIL-7KQ2M9XD",
        "channel": "online",
        "mode": "unique",
        "expiresAt": "2027-04-01T09:30:00Z",
        "qrPayload": None,
        "orderId": None,
    }


def test_a_code_issued_after_a_purchase_names_the_order() -> None:
    event = event_for(stream_record("INSERT", new=code_issue(order_id="order-1001")))

    assert isinstance(event, OfferCodeIssued)
    assert event.orderId == "order-1001"
    assert event.model_dump(mode="json")["orderId"] == "order-1001"


@pytest.mark.parametrize("channel", ["in_store", "both"])
def test_a_code_shown_at_a_till_carries_its_qr_payload(channel: str) -> None:
    issue = code_issue(channel=channel, mode="shared", code="SPRING10")

    event = event_for(stream_record("INSERT", new=issue))

    assert isinstance(event, OfferCodeIssued)
    assert (event.channel, event.mode) == (channel, "shared")
    assert event.qrPayload == payload_for("SPRING10")


def test_a_redemption_is_announced_with_its_amounts_and_store() -> None:
    item = redemption(channel="in_store", store_id="store-shibuya")

    event = event_for(stream_record("INSERT", new=item))

    assert isinstance(event, OfferRedeemed)
    assert event.model_dump(mode="json", exclude={"eventId"}) == {
        "occurredAt": "2027-03-05T12:00:00Z",
        "correlationId": None,
        "redemptionId": "rdm_01",
        "orderId": "order-1001",
        "code": "TRAIL-7KQ2M9XD",
        "offerId": "TRAIL10",
        "campaignId": CAMPAIGN,
        "customerId": "cust-1",
        "discount": {"amount": 1200, "currency": "JPY"},
        "channel": "in_store",
        "storeId": "store-shibuya",
        "cartTotal": {"amount": 12000, "currency": "JPY"},
    }


def test_an_online_redemption_has_no_store() -> None:
    event = event_for(stream_record("INSERT", new=redemption()))
    assert isinstance(event, OfferRedeemed)
    assert event.storeId is None


def test_a_rollback_is_announced_once_the_status_changes() -> None:
    event = event_for(stream_record("MODIFY", old=redemption(), new=rolled_back()))

    assert isinstance(event, RedemptionRolledBack)
    assert event.occurredAt == ROLLED_BACK_AT
    assert event.reason == "payment_failed"
    assert (event.redemptionId, event.orderId, event.code) == (
        "rdm_01",
        "order-1001",
        "TRAIL-7KQ2M9XD",
    )
    assert event.discount == Money(amount=1200, currency="JPY")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(redemption(), redemption(store_id="store-1"), id="redeemed-to-redeemed"),
        pytest.param(rolled_back(), rolled_back(store_id="store-1"), id="rolled-back-again"),
    ],
)
def test_a_modification_without_the_rollback_transition_is_no_event(
    old: Redemption, new: Redemption
) -> None:
    assert event_for(stream_record("MODIFY", old=old, new=new)) is None


REMINDED_AT = datetime(2027, 3, 28, 15, 5, tzinfo=UTC)
EXPIRES_AT = datetime(2027, 3, 31, 15, 0, tzinfo=UTC)


def reminded(*days: str, days_before: int = 3, **changes: Any) -> CodeIssue:
    """The issue after the sweep marked its reminders of `days` (the last one is current)."""
    reminder = Reminder(
        day=days[-1],
        days_before=days_before,
        expires_at=EXPIRES_AT,
        code=changes.pop("reminder_code", "TRAIL-7KQ2M9XD"),
        at=REMINDED_AT,
    )
    return code_issue(reminded_days=set(days), reminder=reminder, **changes)


def test_a_reminder_marked_on_an_issue_is_announced() -> None:
    event = event_for(stream_record("MODIFY", old=code_issue(), new=reminded("2027-03-29")))

    assert isinstance(event, OfferExpiring)
    assert event.model_dump(mode="json", exclude={"eventId"}) == {
        "occurredAt": "2027-03-28T15:05:00Z",
        "correlationId": None,
        "customerId": "cust-1",
        "campaignId": CAMPAIGN,
        "offerId": "TRAIL10",
        "code": "TRAIL-7KQ2M9XD",
        "expiresAt": "2027-03-31T15:00:00Z",
        "daysBefore": 3,
    }


def test_a_shared_code_is_reminded_as_the_offer_gives_it_now() -> None:
    new = reminded("2027-03-29", mode="shared", code="SPRING10", reminder_code="SPRING11")
    event = event_for(stream_record("MODIFY", old=code_issue(mode="shared"), new=new))
    assert isinstance(event, OfferExpiring)
    assert event.code == "SPRING11"


def test_each_reminder_day_is_its_own_event_and_a_redelivery_is_the_same() -> None:
    first = event_for(stream_record("MODIFY", old=code_issue(), new=reminded("2027-03-29")))
    again = event_for(stream_record("MODIFY", old=code_issue(), new=reminded("2027-03-29")))
    later = event_for(
        stream_record(
            "MODIFY",
            old=reminded("2027-03-29"),
            new=reminded("2027-03-29", "2027-03-31", days_before=1),
        )
    )
    assert isinstance(first, OfferExpiring) and isinstance(again, OfferExpiring)
    assert isinstance(later, OfferExpiring) and later.daysBefore == 1
    assert first.eventId == again.eventId != later.eventId
    other_customer = event_for(
        stream_record(
            "MODIFY",
            old=code_issue(customer_id="cust-2"),
            new=reminded("2027-03-29", customer_id="cust-2"),
        )
    )
    assert isinstance(other_customer, OfferExpiring)
    assert other_customer.eventId != first.eventId


def test_a_change_that_marks_no_new_reminder_is_no_event() -> None:
    same = reminded("2027-03-29")
    assert event_for(stream_record("MODIFY", old=same, new=same)) is None


def _passes_the_filters(record: dict[str, Any]) -> bool:
    filters = {"Filters": [{"Pattern": json.dumps(pattern)} for pattern in STREAM_FILTERS]}
    return matches(filters, record)


def test_the_stream_filters_let_reminders_through_and_not_other_issue_changes() -> None:
    assert _passes_the_filters(
        stream_record("MODIFY", old=code_issue(), new=reminded("2027-03-29"))
    )
    assert _passes_the_filters(stream_record("INSERT", new=code_issue(order_id="order-1")))
    assert not _passes_the_filters(
        stream_record("MODIFY", old=code_issue(), new=code_issue(channel="both"))
    )


SHARED_CODE = Code(
    code="SPRING10",
    offer_id="TRAIL10",
    campaign_id=CAMPAIGN,
    mode="shared",
    created_at=ISSUED_AT,
)
USAGE = CustomerUsage(customer_id="cust-1", offer_id="TRAIL10", uses=1, updated_at=REDEEMED_AT)
GUARD = OrderRedemption(
    order_id="order-1001", code="TRAIL-7KQ2M9XD", redemption_id="rdm_01", created_at=REDEEMED_AT
)
GENERATION = CodeGeneration(offer_id="TRAIL10", campaign_id=CAMPAIGN, generated=100)


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(stream_record("INSERT", new=SHARED_CODE), id="code inserted"),
        pytest.param(stream_record("MODIFY", old=SHARED_CODE, new=SHARED_CODE), id="code used"),
        pytest.param(stream_record("INSERT", new=USAGE), id="usage counted"),
        pytest.param(stream_record("INSERT", new=GUARD), id="order guard"),
        pytest.param(stream_record("REMOVE", old=GUARD), id="order guard released"),
        pytest.param(stream_record("INSERT", new=GENERATION), id="codes generated"),
        pytest.param(stream_record("INSERT", new=make_campaign()), id="campaign published"),
        pytest.param(stream_record("INSERT", new=make_offer()), id="offer published"),
        pytest.param(
            stream_record("MODIFY", old=code_issue(), new=code_issue(channel="both")),
            id="issue modified",
        ),
        pytest.param(stream_record("REMOVE", old=code_issue()), id="issue removed"),
        pytest.param(stream_record("REMOVE", old=redemption()), id="redemption removed"),
    ],
)
def test_every_other_change_is_no_event(record: dict[str, Any]) -> None:
    assert event_for(record) is None


def test_a_record_without_images_cannot_be_read() -> None:
    record = stream_record("INSERT", new=redemption())
    del record["dynamodb"]["NewImage"]
    with pytest.raises(OutboxRecordError, match="NEW_AND_OLD_IMAGES"):
        event_for(record)


def test_a_rollback_without_its_reason_cannot_be_read() -> None:
    new = redemption(status=ROLLED_BACK, rolled_back_at=ROLLED_BACK_AT)
    with pytest.raises(OutboxRecordError, match="rollbackReason"):
        event_for(stream_record("MODIFY", old=redemption(), new=new))


# -- event ids --------------------------------------------------------------------------


def test_a_redelivered_record_has_the_same_event_id() -> None:
    records = [
        stream_record("INSERT", new=code_issue()),
        stream_record("INSERT", new=redemption()),
        stream_record("MODIFY", old=redemption(), new=rolled_back()),
    ]
    first = [event_for(record) for record in records]
    again = [event_for(json.loads(json.dumps(record))) for record in records]

    first_ids = [event.eventId for event in first if event is not None]
    assert first_ids == [event.eventId for event in again if event is not None]
    assert len(set(first_ids)) == 3
    assert all(event_id.startswith("evt_") for event_id in first_ids)


def test_different_facts_have_different_event_ids() -> None:
    ids = {
        event.eventId
        for event in (
            event_for(stream_record("INSERT", new=redemption())),
            event_for(stream_record("INSERT", new=redemption(redemption_id="rdm_02"))),
            event_for(stream_record("INSERT", new=code_issue())),
            event_for(stream_record("INSERT", new=code_issue(customer_id="cust-2"))),
            event_for(stream_record("INSERT", new=code_issue(issued_at=REDEEMED_AT))),
        )
        if event is not None
    }
    assert len(ids) == 5


# -- the handler ------------------------------------------------------------------------


def refusing(refused: set[str]) -> RefusingPublisher:
    """A publisher EventBridge keeps refusing the events of the listed redemptions on."""
    return RefusingPublisher(refused, field="redemptionId")


def test_each_event_of_a_batch_is_published() -> None:
    events = InMemoryPublisher()
    response = Outbox(events).handle(
        batch(
            stream_record("INSERT", new=code_issue(), sequence=1),
            stream_record("INSERT", new=redemption(), sequence=2),
            stream_record("INSERT", new=SHARED_CODE, sequence=3),
            stream_record("MODIFY", old=redemption(), new=rolled_back(), sequence=4),
        )
    )

    assert response == {"batchItemFailures": []}
    assert events.detail_types == ["OfferCodeIssued", "OfferRedeemed", "RedemptionRolledBack"]


def test_a_record_that_cannot_be_published_fails_alone() -> None:
    events = refusing({"rdm_02"})
    response = Outbox(events).handle(
        batch(
            stream_record("INSERT", new=redemption(redemption_id="rdm_01"), sequence=1),
            stream_record("INSERT", new=redemption(redemption_id="rdm_02"), sequence=2),
            stream_record("INSERT", new=redemption(redemption_id="rdm_03"), sequence=3),
        )
    )

    assert response == {"batchItemFailures": [{"itemIdentifier": f"{2:021d}"}]}
    assert [event.redemptionId for event in events.of_type(OfferRedeemed)] == [
        "rdm_01",
        "rdm_03",
    ]


def test_an_unreadable_record_fails_alone() -> None:
    broken = stream_record("INSERT", new=redemption(redemption_id="rdm_02"), sequence=2)
    del broken["dynamodb"]["NewImage"]["discount"]
    events = InMemoryPublisher()

    response = Outbox(events).handle(
        batch(stream_record("INSERT", new=redemption(), sequence=1), broken)
    )

    assert response == {"batchItemFailures": [{"itemIdentifier": f"{2:021d}"}]}
    assert events.detail_types == ["OfferRedeemed"]


def test_a_retried_batch_publishes_the_same_event_ids() -> None:
    records = batch(
        stream_record("INSERT", new=code_issue(), sequence=1),
        stream_record("INSERT", new=redemption(), sequence=2),
        stream_record("MODIFY", old=redemption(), new=rolled_back(), sequence=3),
    )
    first, retry = InMemoryPublisher(), InMemoryPublisher()
    assert Outbox(first).handle(records) == {"batchItemFailures": []}
    assert Outbox(retry).handle(json.loads(json.dumps(records))) == {"batchItemFailures": []}

    first_ids = [e.eventId for e in first.published]
    assert len(first_ids) == 3 and all(first_ids)
    assert first_ids == [e.eventId for e in retry.published]
    assert first.detail_types == retry.detail_types


# -- correlation and metrics -------------------------------------------------------------

# When the records built by `stream_record` were committed (ApproximateCreationDateTime).
COMMITTED_AT = datetime.fromtimestamp(1804232400, tz=UTC)


def test_each_event_carries_its_stream_record_id_and_its_lines_log_it() -> None:
    events = InMemoryPublisher()
    with captured_logs() as logs:
        Outbox(events).handle(
            batch(
                stream_record("INSERT", new=code_issue(), sequence=1),
                stream_record("INSERT", new=redemption(), sequence=2),
            )
        )

    assert [event.correlationId for event in events.published] == ["event-1", "event-2"]
    published = logs.with_message("offer event published")
    assert [(line["eventId"], line["correlation_id"]) for line in published] == [
        (event.eventId, event.correlationId) for event in events.published
    ]


@pytest.fixture
def outbox_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "offers")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Rebates")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)


@pytest.mark.usefixtures("outbox_environment")
def test_the_lag_of_each_published_event_is_its_age_since_the_commit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    outbox = Outbox(InMemoryPublisher(), clock=lambda: COMMITTED_AT + timedelta(seconds=2.5))
    response = instrumented(outbox.handle)(
        batch(
            stream_record("INSERT", new=code_issue(), sequence=1),
            stream_record("INSERT", new=SHARED_CODE, sequence=2),  # no event, no lag
            stream_record("INSERT", new=redemption(), sequence=3),
        ),
        lambda_context("outbox"),
    )

    assert response == {"batchItemFailures": []}
    stdout = capsys.readouterr().out
    assert metric_values(stdout, "OutboxLag", service="offers") == [2500.0, 2500.0]
    assert metric_values(stdout, "OutboxPublishFailures") == []


@pytest.mark.usefixtures("outbox_environment")
def test_each_record_that_cannot_be_published_is_counted_as_a_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    unreadable = stream_record("INSERT", new=redemption(redemption_id="rdm_03"), sequence=3)
    del unreadable["dynamodb"]["NewImage"]
    outbox = Outbox(refusing({"rdm_02"}), clock=lambda: COMMITTED_AT)

    with captured_logs() as logs:
        response = instrumented(outbox.handle)(
            batch(
                stream_record("INSERT", new=redemption(redemption_id="rdm_01"), sequence=1),
                stream_record("INSERT", new=redemption(redemption_id="rdm_02"), sequence=2),
                unreadable,
            ),
            lambda_context("outbox"),
        )

    assert len(response["batchItemFailures"]) == 2
    stdout = capsys.readouterr().out
    assert metric_values(stdout, "OutboxPublishFailures", service="offers") == [1.0, 1.0]
    assert metric_values(stdout, "OutboxLag", service="offers") == [0.0]
    failed = logs.with_message("offer event not published")
    assert [line["correlation_id"] for line in failed] == ["event-2", "event-3"]


def test_a_record_s_commit_age_is_measured_from_its_creation_time() -> None:
    record = stream_record("INSERT", new=redemption())
    assert commit_age(record, COMMITTED_AT + timedelta(milliseconds=1500)) == timedelta(
        milliseconds=1500
    )
    # Clocks differ a little: a record "from the future" is no negative lag.
    assert commit_age(record, COMMITTED_AT - timedelta(seconds=1)) == timedelta(0)
    del record["dynamodb"]["ApproximateCreationDateTime"]
    assert commit_age(record, COMMITTED_AT) is None


# -- on moto: real writes, the real stream, EventBridge ---------------------------------


def _stream_records() -> list[dict[str, Any]]:
    """Everything the Campaigns table's stream holds, shaped as Lambda delivers it."""
    table = boto3.client("dynamodb").describe_table(TableName=CAMPAIGNS.default_name)
    stream_arn = table["Table"]["LatestStreamArn"]
    # moto routes DynamoDB Streams calls only without account-based endpoints.
    streams = boto3.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))
    (shard,) = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records: list[dict[str, Any]] = streams.get_records(ShardIterator=iterator)["Records"]
    return [{**record, "eventSourceARN": stream_arn} for record in records]


def test_the_tables_own_stream_yields_the_events_of_real_writes(tables: list[str]) -> None:
    SHARED_CODE.save()
    code_issue().save(condition=CodeIssue.first_time())
    item = redemption()
    item.save(condition=Redemption.first_time())
    item.update(*Redemption.roll_back("order_cancelled", ROLLED_BACK_AT))
    events = InMemoryPublisher()

    response = Outbox(events).handle({"Records": _stream_records()})

    assert response == {"batchItemFailures": []}
    assert events.detail_types == ["OfferCodeIssued", "OfferRedeemed", "RedemptionRolledBack"]
    (rollback,) = events.of_type(RedemptionRolledBack)
    assert rollback.reason == "order_cancelled"


def test_the_handler_publishes_to_the_bus(
    tables: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = tap_the_bus("rebates.offers")
    publishing_environment(monkeypatch, "offers")
    outbox_module._outbox.cache_clear()
    record = stream_record("INSERT", new=redemption())

    response = outbox_module.handler(batch(record), lambda_context("outbox"))

    assert response == {"batchItemFailures": []}
    envelope = the_one_envelope(queue)
    assert envelope["source"] == "rebates.offers"
    assert envelope["detail-type"] == "OfferRedeemed"
    expected = event_for(record)
    assert expected is not None
    assert envelope["detail"]["eventId"] == expected.eventId
    assert envelope["detail"]["correlationId"] == record["eventID"]
    assert envelope["time"] == "2027-03-05T12:00:00Z"
    outbox_module._outbox.cache_clear()


def test_the_handler_fails_loudly_without_its_bus(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EVENT_BUS_NAME", raising=False)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "offers")
    monkeypatch.setenv("REBATES_VERSION", "test")
    with mock_aws(), pytest.raises(Exception, match="EVENT_BUS_NAME"):
        outbox_module.handler(
            batch(stream_record("INSERT", new=redemption())), lambda_context("outbox")
        )
