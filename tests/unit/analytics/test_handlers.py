"""The analytics functions as Lambda calls them: the events API, the stream consumer
and the domain events consumer."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.analytics import dal
from functions.analytics.dal import Archive, EventStream
from functions.analytics.handlers import api, domain, stream
from functions.analytics.records import TrackedEvent
from functions.core.clock import FixedClock, frozen_at
from functions.core.models import resolve_table_name
from functions.core.tables import IDEMPOTENCY
from infra.local.proxy_event import lambda_context
from tests.support.api_calls import api_call
from tests.support.tables import create_table_request
from tests.unit.analytics.analytics_support import (
    CAMPAIGN,
    T0,
    aws_env,
    counters,
    storefront,
    tables,
)

__all__ = ["aws_env", "tables"]

EVENTS_DIR = Path(__file__).resolve().parents[3] / "events" / "detail"
STREAM = "rebates-events"


@pytest.fixture
def events_api(tables: list[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[FixedClock]:
    request = create_table_request(IDEMPOTENCY, resolve_table_name(IDEMPOTENCY))
    boto3.client("dynamodb").create_table(**request)
    boto3.client("kinesis").create_stream(StreamName=STREAM, ShardCount=1)
    for name, value in {
        "EVENTS_STREAM_NAME": STREAM,
        "POWERTOOLS_SERVICE_NAME": "analytics",
        "REBATES_VERSION": "test",
    }.items():
        monkeypatch.setenv(name, value)
    with frozen_at(T0 + timedelta(minutes=10)) as fixed:
        yield fixed


def good(n: int, **changes: Any) -> dict[str, Any]:
    body = {
        "eventId": f"evt-{n}",
        "type": "page_view",
        "occurredAt": "2027-03-10T10:00:00+09:00",
        "sessionId": "sess-1",
        "anonymousId": "anon-1",
        "campaignId": CAMPAIGN,
    }
    body.update(changes)
    return body


def stream_records() -> list[TrackedEvent]:
    kinesis = boto3.client("kinesis")
    shard = kinesis.list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=STREAM, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator, Limit=1000)["Records"]
    return [TrackedEvent.from_stream(record["Data"]) for record in records]


def test_good_events_go_on_the_stream_and_bad_ones_are_refused_by_index(
    events_api: FixedClock,
) -> None:
    events = [good(1), good(2, value={"amount": 9.99, "currency": "JPY"}), good(3), {"type": "x"}]
    status, body, _ = api_call(api.app, "POST", "/v1/events", {"events": events})
    assert status == 202
    assert body["accepted"] == 2
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [
        (1, "float_money"),
        (3, "missing_event_id"),
    ]
    assert [event.event_id for event in stream_records()] == ["evt-1", "evt-3"]


def test_a_batch_is_one_put_records_call(events_api: FixedClock) -> None:
    calls: list[str] = []
    original = EventStream.client.fget  # type: ignore[attr-defined]

    def counting_client(self: EventStream) -> Any:
        client = original(self)
        client.meta.events.register(
            "before-call.kinesis.PutRecords", lambda **_: calls.append("PutRecords")
        )
        return client

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EventStream, "client", property(counting_client))
        status, body, _ = api_call(
            api.app, "POST", "/v1/events", {"events": [good(n) for n in range(500)]}
        )
    assert (status, body["accepted"]) == (202, 500)
    assert calls == ["PutRecords"]


def test_more_than_500_events_or_a_body_over_1_mb_is_refused_whole(
    events_api: FixedClock,
) -> None:
    status, body, _ = api_call(
        api.app, "POST", "/v1/events", {"events": [good(n) for n in range(501)]}
    )
    assert (status, body["error"]["code"]) == (400, "too_many_events")
    huge = {"events": [good(1, sessionId="s" * 100)] * 6000}
    status, body, _ = api_call(api.app, "POST", "/v1/events", raw=json.dumps(huge))
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    assert stream_records() == []


@pytest.mark.parametrize(
    "raw",
    [
        base64.b64encode(b'{"events": [\xff]}').decode(),
        '{"events": {"eventId": "x"}}',
        '{"events": [' * 40 + "]" * 40 + "}",
        '{"events": [], "extra": 1}',
        "[]",
    ],
)
def test_bodies_that_are_not_an_events_object_are_400(events_api: FixedClock, raw: str) -> None:
    status, body, _ = api_call(api.app, "POST", "/v1/events", raw=raw)
    assert status == 400, body
    assert body["error"]["code"] == "invalid_request"


class _Throttling:
    """PutRecords refusing, in its first `refusals` answers, the records of the events
    `refused` names, as Kinesis refuses a hot shard's records under load."""

    def __init__(self, refused: set[str], refusals: int) -> None:
        self.refused = refused
        self.refusals = refusals
        self.calls: list[int] = []

    def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(len(Records))
        refuse = len(self.calls) <= self.refusals
        results = [
            {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
            if refuse and TrackedEvent.from_stream(record["Data"]).event_id in self.refused
            else {"SequenceNumber": "1", "ShardId": "shardId-0"}
            for record in Records
        ]
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}


def test_throttled_records_are_retried_with_backoff_then_reported(
    events_api: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [storefront("page_view") for _ in range(4)]
    throttling = _Throttling({events[1].event_id, events[3].event_id}, refusals=2)
    sleeps: list[float] = []
    stream_put = EventStream(STREAM, client=throttling, sleep=sleeps.append)
    assert stream_put.put(events) == []
    assert (throttling.calls, sleeps) == ([4, 2, 2], [0.05, 0.1])

    always = _Throttling({"evt-1", "evt-3"}, refusals=99)
    monkeypatch.setattr(dal.EventStream, "client", property(lambda self: always))
    status, body, _ = api_call(
        api.app, "POST", "/v1/events", {"events": [good(n) for n in range(4)]}
    )
    assert status == 202
    assert body["accepted"] == 2
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [
        (1, "not_accepted"),
        (3, "not_accepted"),
    ]
    assert always.calls == [4, 2, 2, 2]


# -- the stream consumer ----------------------------------------------------------------


class _Firehose:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def put_record_batch(
        self, *, DeliveryStreamName: str, Records: list[dict[str, bytes]]
    ) -> dict[str, Any]:
        self.lines.extend(record["Data"] for record in Records)
        return {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "r"} for _ in Records]}


def kinesis_event(*payloads: bytes) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:kinesis",
                "eventID": f"shardId-000000000000:{n}",
                "eventSourceARN": "arn:aws:kinesis:ap-northeast-1:123456789012:stream/s",
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": "sess-1",
                    "sequenceNumber": f"{n:056d}",
                    "data": base64.b64encode(payload).decode(),
                    "approximateArrivalTimestamp": 1_800_000_000.0,
                },
            }
            for n, payload in enumerate(payloads, start=1)
        ]
    }


def test_the_consumer_archives_every_record_and_fails_only_the_unreadable(
    tables: list[str],
) -> None:
    firehose = _Firehose()
    purchase = storefront("purchase", customer_id="cus-1", value=5000, currency="JPY")
    event = kinesis_event(
        storefront("page_view").to_stream(), b"not a tracked event", purchase.to_stream()
    )
    answer = stream.consume(event, lambda_context(), counters(), Archive("d", client=firehose))
    assert answer == {"batchItemFailures": [{"itemIdentifier": f"{2:056d}"}]}
    lines = [json.loads(line) for line in firehose.lines]
    assert [line["type"] for line in lines] == ["page_view", "purchase"]
    assert all(line.endswith(b"\n") for line in firehose.lines)
    # Customers are pseudonymised in the archive, never in clear.
    assert lines[1]["customer_key"] == counters().customer_key("cus-1")
    assert b"cus-1" not in b"".join(firehose.lines)
    assert lines[1]["occurred_at"] == "2027-03-10 01:00:00.000000"


# -- the domain events consumer --------------------------------------------------------


class _Stream:
    def __init__(self, refuse: set[int] = set()) -> None:  # noqa: B006 - never mutated
        self.put_events: list[TrackedEvent] = []
        self.refuse = refuse

    def put(self, events: list[TrackedEvent]) -> list[int]:
        self.put_events.extend(events)
        return sorted(self.refuse)


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {"messageId": f"m-{n}", "body": body, "attributes": {}, "eventSource": "aws:sqs"}
            for n, body in enumerate(bodies)
        ]
    }


def sample(detail_type: str) -> str:
    return (EVENTS_DIR / f"{detail_type}.sample.json").read_text()


def test_domain_events_become_tracked_events_with_their_own_ids() -> None:
    sink = _Stream()
    bodies = [sample(name) for name in ("OfferRedeemed", "PurchaseRecorded", "NotificationSent")]
    answer = domain.consume(sqs_event(*bodies, "{not json"), sink)  # type: ignore[arg-type]
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-3"}]}
    redeemed, purchased = sink.put_events  # a notification moves no figure
    detail = json.loads(bodies[0])["detail"]
    assert (redeemed.type, redeemed.event_id, redeemed.value) == (
        "redemption",
        detail["eventId"],
        detail["discount"]["amount"],
    )
    assert redeemed.order_total == detail["cartTotal"]["amount"]
    placed = json.loads(bodies[1])["detail"]["placedAt"]
    assert purchased.type == "purchase_recorded"
    assert purchased.campaign_id is None
    assert purchased.occurred_at == datetime.fromisoformat(placed).astimezone(UTC)


def test_records_the_stream_refuses_are_retried_by_sqs() -> None:
    sink = _Stream(refuse={1})
    bodies = [sample("ClaimSubmitted"), sample("ClaimApproved")]
    answer = domain.consume(sqs_event(*bodies), sink)  # type: ignore[arg-type]
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}


# -- the stats route --------------------------------------------------------------------


def test_stats_of_a_range_from_the_counters(events_api: FixedClock) -> None:
    counting = counters()
    for event in (
        storefront("page_view"),
        storefront("purchase", order_id="o-1", value=12_000, currency="JPY"),
        storefront("page_view", session="sess-2", visitor="anon-2"),
    ):
        counting.count(event, now=T0)
    status, body, _ = api_call(
        api.app,
        "GET",
        f"/v1/campaigns/{CAMPAIGN}/stats",
        query={"from": "2027-03-10", "to": "2027-03-10"},
    )
    assert status == 200, body
    assert (body["from"], body["to"], body["timezone"]) == (
        "2027-03-10",
        "2027-03-10",
        "Asia/Tokyo",
    )
    assert (body["sessions"], body["conversions"], body["conversionRate"]) == (2, 1, 0.5)
    assert body["totalSales"] == {"amount": 12_000, "currency": "JPY"}
    assert body["budgetUsed"] == {"amount": 0, "currency": "JPY"}
    design_keys = {
        "sessions", "conversions", "conversionRate", "codesIssued", "redemptions",
        "redemptionRate", "claimsSubmitted", "claimsApproved", "claimsRejected",
        "approvalRate", "rewardsPaid", "budgetUsed", "totalSales", "averageOrderValue",
        "newCustomers", "costPerAcquisition", "bounceRate", "pagesPerSession",
        "averageSessionSeconds", "funnel", "attribution",
    }  # fmt: skip
    assert design_keys <= set(body)
    assert [day["date"] for day in body["days"]] == ["2027-03-10"]
    # Goals are the whole campaign's (to the day the clock is on), beside the range.
    goals = {goal["metric"]: goal for goal in body["goals"]}
    assert (goals["conversions"]["actual"], goals["conversions"]["share"]) == (1, 0.01)
    assert goals["conversions"]["daysLeft"] == 22  # 2027-03-10 to 2027-03-31
    assert goals["conversions"]["neededPerDay"] == pytest.approx(99 / 22)
    assert goals["sales"]["actual"] == 12_000


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({"from": "2027-03-11", "to": "2027-03-10"}, 400, "invalid_range"),
        ({"from": "2027-01-01", "to": "2028-03-10"}, 400, "invalid_range"),
        ({"from": "10/03/2027"}, 400, "invalid_request"),
    ],
)
def test_a_bad_range_is_400(
    events_api: FixedClock, query: dict[str, str], status: int, code: str
) -> None:
    answer, body, _ = api_call(api.app, "GET", f"/v1/campaigns/{CAMPAIGN}/stats", query=query)
    assert (answer, body["error"]["code"]) == (status, code)


def test_stats_of_an_unknown_campaign_are_404(events_api: FixedClock) -> None:
    status, body, _ = api_call(api.app, "GET", "/v1/campaigns/no-such-2027/stats")
    assert (status, body["error"]["code"]) == (404, "campaign_not_found")
