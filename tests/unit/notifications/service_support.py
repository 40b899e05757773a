"""The notifications service's tests: one in-process moto per module (tables, a verified
SES identity, the marketers' SNS topic, the unsubscribe key's secret, the event bus with
a queue catching what is published), and builders of the events the consumers receive.

Tests in a module share the cloud, so each uses its own customer and event ids
(`ids`): what one test writes never meets another's.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.botocore_stubber import BotocoreStubber

from functions.core import aws
from functions.core.event_types import EventDetail
from functions.core.models import ALLOW_DEFAULT_TABLES_ENV, reset_connections
from functions.core.tables import ALL_TABLES, CUSTOMERS, IDEMPOTENCY
from infra.local.proxy_event import lambda_context
from tests.support.tables import create_tables

ACCOUNT = "123456789012"
REGION = "ap-northeast-1"
SENDER = "rewards@rebates.example"
UNSUBSCRIBE_URL = "https://api.rebates.example/prod/v1/unsubscribe"
BUS = "rebates-test"
UNSUBSCRIBE_KEY = "a-test-key-of-32-characters-long"

__all__ = ["Cloud", "cloud", "envelope", "ids", "sqs_batch"]


@dataclass
class Cloud:
    """The module's moto and what the handlers need from it."""

    secret_arn: str
    topic_arn: str
    bus_queue_url: str

    def environment(self) -> dict[str, str]:
        return {
            "POWERTOOLS_SERVICE_NAME": "notifications",
            "REBATES_VERSION": "test",
            "UNSUBSCRIBE_KEY_SECRET_ARN": self.secret_arn,
            "SENDER_EMAIL": SENDER,
            "UNSUBSCRIBE_URL": UNSUBSCRIBE_URL,
            "EVENT_BUS_NAME": BUS,
            "MARKETERS_TOPIC_ARN": self.topic_arn,
        }

    # -- what was sent, as moto holds it ------------------------------------------------

    def emails(self, to: str | None = None) -> list[EmailMessage]:
        from moto.ses.models import ses_backends

        sent = ses_backends[ACCOUNT][REGION].sent_messages
        parsed = [
            message_from_bytes(message.raw_data.encode("utf-8"), policy=policy.default)
            for message in sent
            if hasattr(message, "raw_data") and (to is None or to in message.destinations)
        ]
        found = [m for m in parsed if isinstance(m, EmailMessage)]
        return [m for m in found if to is None or m["To"] == to]

    def sms(self, phone: str | None = None) -> list[str]:
        from moto.sns.models import sns_backends

        messages = sns_backends[ACCOUNT][REGION].sms_messages.values()
        return [text for number, text in messages if phone is None or number == phone]

    def topic_messages(self) -> list[dict[str, Any]]:
        """What the marketers' topic received, through a queue subscribed to it."""
        from moto.sns.models import sns_backends

        topic = sns_backends[ACCOUNT][REGION].topics[self.topic_arn]
        return [
            {"subject": subject, "message": message}
            for _, message, subject, *_ in getattr(topic, "sent_notifications", [])
        ]

    def published(self) -> list[dict[str, Any]]:
        """Every event published on the bus so far (drained from the catch-all queue)."""
        sqs = boto3.client("sqs", region_name=REGION)
        events: list[dict[str, Any]] = []
        while True:
            answer = sqs.receive_message(QueueUrl=self.bus_queue_url, MaxNumberOfMessages=10)
            messages = answer.get("Messages", [])
            if not messages:
                return events
            for message in messages:
                events.append(json.loads(message["Body"]))
                sqs.delete_message(
                    QueueUrl=self.bus_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    """In-process moto for a whole module, the environment the handlers read, restored
    (and moto's state dropped) when the module ends."""
    with pytest.MonkeyPatch.context() as patch:
        for spec in ALL_TABLES:
            patch.delenv(spec.env_var, raising=False)
        for variable in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
            patch.delenv(variable, raising=False)
        patch.delenv("AWS_REGION", raising=False)
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            patch.setenv(variable, "testing")
        patch.setenv(ALLOW_DEFAULT_TABLES_ENV, "1")
        reset_connections()
        aws.reset_sessions()
        with mock_aws():
            create_tables((CUSTOMERS, IDEMPOTENCY))
            boto3.client("ses", region_name=REGION).verify_email_identity(EmailAddress=SENDER)
            topic_arn = boto3.client("sns", region_name=REGION).create_topic(
                Name="rebates-marketers"
            )["TopicArn"]
            secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
                Name="rebates-unsubscribe-key", SecretString=UNSUBSCRIBE_KEY
            )["ARN"]
            bus_queue_url = _bus_with_catch_all_queue()
            cloud = Cloud(secret_arn=secret_arn, topic_arn=topic_arn, bus_queue_url=bus_queue_url)
            for name, value in cloud.environment().items():
                patch.setenv(name, value)
            yield cloud
        reset_connections()
        aws.reset_sessions()


def _bus_with_catch_all_queue() -> str:
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    events.create_event_bus(Name=BUS)
    queue_url = sqs.create_queue(QueueName="published")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name="everything", EventBusName=BUS, EventPattern=json.dumps({"source": [{"prefix": ""}]})
    )
    events.put_targets(
        Rule="everything", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": queue_arn}]
    )
    return str(queue_url)


# -- ids and events ---------------------------------------------------------------------

_counter = itertools.count(1)


@pytest.fixture
def ids(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``ids("cust")`` -> an id unique to this test in the module's shared cloud."""
    serial = next(_counter)

    def make(prefix: str) -> str:
        return f"{prefix}-{serial}-{request.node.name[:40]}"

    return make


def envelope(detail: EventDetail) -> dict[str, Any]:
    """The EventBridge event a rule delivers for `detail`."""
    return {
        "version": "0",
        "id": f"env-{detail.eventId}",
        "detail-type": detail.detail_type,
        "source": detail.source,
        "account": ACCOUNT,
        "time": detail.occurredAt.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "region": REGION,
        "resources": [],
        "detail": detail.model_dump(mode="json", by_alias=True),
    }


def sqs_batch(*bodies: dict[str, Any] | str) -> dict[str, Any]:
    """An SQS event of messages with these bodies (an envelope, or raw text)."""
    records = []
    for index, body in enumerate(bodies):
        text = body if isinstance(body, str) else json.dumps(body)
        records.append(
            {
                "messageId": f"msg-{index}-{next(_counter)}",
                "receiptHandle": f"handle-{index}",
                "body": text,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1700000000000",
                    "SenderId": ACCOUNT,
                    "ApproximateFirstReceiveTimestamp": "1700000000000",
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:notifications",
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def count_aws_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every AWS request from now on, as (service, operation), in order."""
    calls: list[tuple[str, str]] = []
    process = BotocoreStubber.process_request

    def counting(self: BotocoreStubber, request: Any) -> Any:
        target = request.headers.get("X-Amz-Target")
        if target:
            service, _, operation = target.decode().partition(".")
            calls.append(("dynamodb" if service.startswith("DynamoDB") else service, operation))
        else:
            calls.append(("rest", str(request.url)))
        return process(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", counting)
    return calls


def failed_ids(answer: Mapping[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in answer["batchItemFailures"]]


CONTEXT = lambda_context("rebates-notifications")

T0 = datetime(2027, 5, 10, 3, 0, tzinfo=UTC)


# -- profiles and events ----------------------------------------------------------------


def save_profile(
    customer_id: str,
    *,
    email: str | None = "hanako@example.com",
    phone: str | None = None,
    locale: str = "ja",
    country: str | None = "JP",
    marketing_opt_in: bool = False,
) -> None:
    from functions.core.clock import utc_now
    from functions.notifications.dal import ProfileInput, ProfileStore

    ProfileStore().put(
        customer_id,
        ProfileInput(email, phone, locale, country, marketing_opt_in),
        now=utc_now(),
        request_id="req-setup",
    )


def jpy(amount: int) -> Any:
    from functions.core.money import Money

    return Money.of(amount, "JPY")


def claim_approved(customer_id: str, campaign_id: str, event_id: str) -> Any:
    from functions.core.event_types import ClaimApproved

    return ClaimApproved(
        eventId=event_id,
        occurredAt=T0,
        customerId=customer_id,
        campaignId=campaign_id,
        claimId=f"clm-{event_id}",
        reward=jpy(1500),
    )


def offer_expiring(customer_id: str, campaign_id: str, event_id: str) -> Any:
    from datetime import timedelta

    from functions.core.event_types import OfferExpiring

    return OfferExpiring(
        eventId=event_id,
        occurredAt=T0,
        customerId=customer_id,
        campaignId=campaign_id,
        offerId="TRAIL10",
        code="TRAIL-7KQ2M9XD",
        expiresAt=T0 + timedelta(days=3),
        daysBefore=3,
    )


def campaign_published(campaign_id: str, name: str, version: int = 1) -> Any:
    from datetime import timedelta

    from functions.core.event_types import CampaignPublished

    return CampaignPublished(
        eventId=f"evt-published-{campaign_id}-{version}",
        occurredAt=T0,
        campaignId=campaign_id,
        version=version,
        kind="offer",
        name=name,
        currency="JPY",
        timezone="Asia/Tokyo",
        startsAt=T0 - timedelta(days=1),
        endsAt=T0 + timedelta(days=60),
        fileKey=f"campaigns/{campaign_id}.yaml",
    )


def purchase_recorded(customer_id: str, order_id: str, event_id: str) -> Any:
    from functions.core.event_types import LineItem, PurchaseRecorded

    return PurchaseRecorded(
        eventId=event_id,
        occurredAt=T0,
        customerId=customer_id,
        orderId=order_id,
        channel="online",
        placedAt=T0,
        total=jpy(12000),
        items=[LineItem(sku="TRAIL-01", category="shoes", quantity=1, unitPrice=jpy(12000))],
    )


def code_issued_after(
    customer_id: str, campaign_id: str, order_id: str, event_id: str, code: str = "THX-4F7Q9M"
) -> Any:
    from datetime import timedelta

    from functions.core.event_types import OfferCodeIssued

    return OfferCodeIssued(
        eventId=event_id,
        occurredAt=T0,
        customerId=customer_id,
        campaignId=campaign_id,
        offerId="THANKS500",
        code=code,
        channel="both",
        mode="unique",
        expiresAt=T0 + timedelta(days=30),
        qrPayload=f"REBATES:{code}",
        orderId=order_id,
    )
