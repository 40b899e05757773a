"""The publisher: every detail checked against its schema, batched, retried, never dropped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.core import aws as aws_clients
from functions.core.event_types import (
    CampaignRejected,
    ClaimApproved,
    ClaimRejected,
    EventDetail,
    OfferRedeemed,
    ValidationIssue,
)
from functions.core.events import (
    MAX_REQUEST_BYTES,
    DetailSchemas,
    EventBridgePublisher,
    EventContractError,
    EventPublisher,
    EventPublishError,
    InMemoryPublisher,
)
from functions.core.money import Money
from functions.core.observability import correlated, instrumented
from infra.local.proxy_event import lambda_context, proxy_event

REGION = "ap-northeast-1"


def approved(n: int = 0) -> ClaimApproved:
    return ClaimApproved(
        campaignId="spring-trail-2027",
        customerId=f"cus_{48213977 + n}",
        claimId=f"clm_{n:04d}",
        reward=Money(amount=2500, currency="JPY"),
    )


def rejected(n: int = 0) -> ClaimRejected:
    return ClaimRejected(
        campaignId="spring-trail-2027",
        customerId=f"cus_{55190266 + n}",
        claimId=f"clm_r{n:04d}",
        reasons=["duplicate_receipt"],
    )


def float_reward() -> ClaimApproved:
    # model_construct skips validation: the way a producer bug slips past pydantic.
    return ClaimApproved.model_construct(
        campaignId="spring-trail-2027",
        customerId="cus_48213977",
        claimId="clm_0001",
        reward=Money.model_construct(amount=2500.5, currency="JPY"),  # type: ignore[arg-type]
        reviewer=None,
    )


def missing_claim_id() -> ClaimApproved:
    return ClaimApproved.model_construct(  # type: ignore[call-arg]
        campaignId="spring-trail-2027",
        customerId="cus_48213977",
        reward=Money(amount=2500, currency="JPY"),
        reviewer=None,
    )


class StubClient:
    """put_events answering from a script: each response lists the indexes that fail."""

    def __init__(self, *failing: set[int] | None) -> None:
        self.script = list(failing)
        self.calls: list[list[dict[str, Any]]] = []

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        failing = (self.script.pop(0) if self.script else None) or set()
        results: list[dict[str, Any]] = [
            {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}
            if index in failing
            else {"EventId": f"eb-{len(self.calls)}-{index}"}
            for index in range(len(Entries))
        ]
        return {"FailedEntryCount": len(failing), "Entries": results}

    def event_ids(self, call: int) -> list[str]:
        return [json.loads(entry["Detail"])["eventId"] for entry in self.calls[call]]


def publisher(client: StubClient, **options: Any) -> EventBridgePublisher:
    return EventBridgePublisher("rebates", client, **options)


# -- checking against the schema ------------------------------------------------------


# Dumping the float makes pydantic warn; the schema check is what must stop it.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
@pytest.mark.parametrize("make_bad", [float_reward, missing_claim_id])
def test_invalid_detail_is_rejected_before_anything_is_sent(make_bad: Any) -> None:
    client = StubClient()
    bad = make_bad()

    with pytest.raises(EventContractError, match=r"ClaimApproved .* does not match .*schema"):
        publisher(client).publish(approved(1), bad, approved(2))

    assert client.calls == []


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
def test_in_memory_publisher_checks_the_same_way() -> None:
    events = InMemoryPublisher()
    with pytest.raises(EventContractError):
        events.publish(float_reward())
    assert events.published == []


def test_in_memory_publisher_records_in_order() -> None:
    events: EventPublisher = InMemoryPublisher()
    first, second, third = approved(1), rejected(1), approved(2)
    expected: list[EventDetail] = [first, second, third]

    events.publish(first, second)
    events.publish(third)

    assert isinstance(events, InMemoryPublisher)
    assert events.published == expected
    assert events.of_type(ClaimApproved) == [first, third]
    assert events.of_type(OfferRedeemed) == []
    assert events.detail_types == ["ClaimApproved", "ClaimRejected", "ClaimApproved"]


def test_missing_schema_is_a_clear_contract_error(tmp_path: Path) -> None:
    events = InMemoryPublisher(schemas=DetailSchemas(tmp_path))
    with pytest.raises(EventContractError, match=r"no schema for ClaimApproved.*generate"):
        events.publish(approved())


# -- the PutEvents request ------------------------------------------------------------


def test_entry_carries_source_type_bus_time_and_the_dumped_detail() -> None:
    client = StubClient()
    detail = approved()

    publisher(client).publish(detail)

    [[entry]] = client.calls
    assert entry["Source"] == "rebates.claims"
    assert entry["DetailType"] == "ClaimApproved"
    assert entry["EventBusName"] == "rebates"
    assert entry["Time"] == detail.occurredAt
    assert json.loads(entry["Detail"]) == detail.model_dump(mode="json", by_alias=True)


def test_a_detail_published_outside_any_handler_has_a_null_correlation_id() -> None:
    client = StubClient()
    publisher(client).publish(approved())
    [[entry]] = client.calls
    assert json.loads(entry["Detail"])["correlationId"] is None


def test_batches_hold_at_most_ten_entries() -> None:
    client = StubClient()
    details: list[EventDetail] = [approved(n) for n in range(23)]

    publisher(client).publish(*details)

    assert [len(call) for call in client.calls] == [10, 10, 3]
    sent = [json.loads(entry["Detail"])["eventId"] for call in client.calls for entry in call]
    assert sent == [detail.eventId for detail in details]


def test_batches_also_stay_under_the_request_size_limit() -> None:
    client = StubClient()
    # About 100 KB each: two fit in one request, a third would not.
    big = [
        CampaignRejected(
            campaignId=None,
            fileKey=f"campaigns/big-{n}.yaml",
            errors=[
                ValidationIssue(path=f"offers[{i}].id", message="x" * 1000) for i in range(100)
            ],
        )
        for n in range(3)
    ]

    publisher(client).publish(*big)

    assert [len(call) for call in client.calls] == [2, 1]
    assert all(
        sum(len(entry["Detail"].encode()) for entry in call) < MAX_REQUEST_BYTES
        for call in client.calls
    )


def test_no_details_sends_nothing() -> None:
    client = StubClient()
    publisher(client).publish()
    assert client.calls == []


# -- partial failures -----------------------------------------------------------------


def test_only_the_failed_entries_are_retried() -> None:
    client = StubClient({1}, None)
    sleeps: list[float] = []
    details: list[EventDetail] = [approved(0), rejected(0), approved(1)]

    publisher(client, sleep=sleeps.append).publish(*details)

    assert len(client.calls) == 2
    assert client.event_ids(1) == [details[1].eventId]
    assert sleeps == [0.1]


def test_persistent_failure_raises_naming_the_entries() -> None:
    client = StubClient({1}, {0}, {0})
    sleeps: list[float] = []
    details: list[EventDetail] = [approved(0), rejected(0), approved(1)]

    with pytest.raises(EventPublishError) as raised:
        publisher(client, max_attempts=3, sleep=sleeps.append).publish(*details)

    error = raised.value
    assert [call for call in range(3) if client.event_ids(call)] == [0, 1, 2]
    assert client.event_ids(2) == [details[1].eventId]
    assert sleeps == [0.1, 0.2]
    assert error.attempts == 3
    assert [(f.detail_type, f.event_id, f.error_code) for f in error.failures] == [
        ("ClaimRejected", details[1].eventId, "ThrottlingException")
    ]
    assert f"ClaimRejected {details[1].eventId} (ThrottlingException: Rate exceeded)" in str(error)


def test_a_failed_batch_does_not_stop_the_next_one() -> None:
    # The first batch (10 entries) keeps failing its entry 3; the second batch still goes.
    client = StubClient({3}, {0}, None)
    details: list[EventDetail] = [approved(n) for n in range(12)]

    with pytest.raises(EventPublishError) as raised:
        publisher(client, max_attempts=2, sleep=lambda _: None).publish(*details)

    assert [len(call) for call in client.calls] == [10, 1, 2]
    assert [f.event_id for f in raised.value.failures] == [details[3].eventId]


def test_max_attempts_must_allow_one_attempt() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        EventBridgePublisher("rebates", StubClient(), max_attempts=0)


# -- against EventBridge (moto) -------------------------------------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    with mock_aws():
        yield


def subscribe_queue(rule: str, pattern: dict[str, Any]) -> str:
    """A rule on bus `rebates` delivering to a new SQS queue; returns the queue URL."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    queue_url: str = sqs.create_queue(QueueName=f"{rule}-queue")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(Name=rule, EventBusName="rebates", EventPattern=json.dumps(pattern))
    events.put_targets(
        Rule=rule, EventBusName="rebates", Targets=[{"Id": "queue", "Arn": queue_arn}]
    )
    return queue_url


def drain(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    received: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        received.extend(json.loads(message["Body"]) for message in messages)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
    return received


@pytest.mark.usefixtures("aws")
def test_published_events_reach_a_rule_target_with_type_and_source() -> None:
    boto3.client("events").create_event_bus(Name="rebates")
    claims_queue = subscribe_queue("claims-to-queue", {"source": ["rebates.claims"]})
    approved_queue = subscribe_queue("approved-to-queue", {"detail-type": ["ClaimApproved"]})
    details: list[EventDetail] = [approved(n) for n in range(8)] + [rejected(n) for n in range(7)]

    # No client passed: created lazily, inside the moto mock.
    EventBridgePublisher("rebates").publish(*details)

    on_claims = drain(claims_queue)
    assert len(on_claims) == 15
    by_event_id = {event["detail"]["eventId"]: event for event in on_claims}
    for detail in details:
        event = by_event_id[detail.eventId]
        assert event["source"] == "rebates.claims"
        assert event["detail-type"] == detail.detail_type
        assert event["detail"] == detail.model_dump(mode="json", by_alias=True)
    on_approved = drain(approved_queue)
    assert sorted(event["detail"]["claimId"] for event in on_approved) == [
        f"clm_{n:04d}" for n in range(8)
    ]


@pytest.mark.usefixtures("aws")
def test_the_client_is_created_on_first_publish_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    boto3.client("events").create_event_bus(Name="rebates")
    made: list[str] = []
    real_client = aws_clients.client

    def counting_client(service: str, *args: Any, **kwargs: Any) -> Any:
        made.append(service)
        return real_client(service, *args, **kwargs)

    monkeypatch.setattr(aws_clients, "client", counting_client)
    events = EventBridgePublisher("rebates")
    assert made == []

    events.publish(approved(1))
    events.publish(approved(2))

    assert made == ["events"]


# -- correlation ----------------------------------------------------------------------


def test_a_detail_published_for_a_request_carries_its_request_id() -> None:
    client, memory = StubClient(), InMemoryPublisher()
    request = proxy_event("POST", "/v1/redemptions", body={})
    request["requestContext"]["requestId"] = "req-42"

    @instrumented
    def handler(event: dict[str, Any], context: Any) -> None:
        publisher(client).publish(approved())
        memory.publish(approved())

    handler(request, lambda_context())

    [[entry]] = client.calls
    assert json.loads(entry["Detail"])["correlationId"] == "req-42"
    assert [detail.correlationId for detail in memory.published] == ["req-42"]


def test_a_detail_published_for_a_record_carries_the_record_id() -> None:
    memory = InMemoryPublisher()
    record = {"eventSource": "aws:dynamodb", "eventID": "c81e728d9d4c2f63"}
    with correlated(record):
        memory.publish(approved())
    memory.publish(approved(1))

    assert [detail.correlationId for detail in memory.published] == ["c81e728d9d4c2f63", None]


def test_a_detail_keeps_the_correlation_id_it_was_given() -> None:
    memory = InMemoryPublisher()
    with correlated({"eventSource": "aws:dynamodb", "eventID": "record-id"}):
        memory.publish(approved().model_copy(update={"correlationId": "req-7"}))
    assert memory.published[0].correlationId == "req-7"


def test_an_id_too_long_for_the_schema_is_left_out_rather_than_failing_the_publish() -> None:
    memory = InMemoryPublisher()
    with correlated({"eventSource": "aws:kinesis", "eventID": "x" * 257}):
        memory.publish(approved())
    assert memory.published[0].correlationId is None
