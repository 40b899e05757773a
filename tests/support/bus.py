"""The event bus on moto, tapped: what a function publishes, read back from a queue; and
a publisher in memory that EventBridge keeps refusing some events of."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from functions.core.event_types import EventDetail
from functions.core.events import EventPublishError, FailedEntry, InMemoryPublisher

BUS: str = "rebates"


def tap_the_bus(source: str) -> str:
    """Create the bus, and a queue its rule feeds every event from `source`; the queue's URL."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name=BUS)
    queue = sqs.create_queue(QueueName="tap")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    events.put_rule(Name="tap", EventBusName=BUS, EventPattern=json.dumps({"source": [source]}))
    events.put_targets(
        Rule="tap",
        EventBusName=BUS,
        Targets=[{"Id": "q", "Arn": queue_arn["Attributes"]["QueueArn"]}],
    )
    return str(queue)


def the_one_envelope(queue: str) -> dict[str, Any]:
    """The one EventBridge envelope the tapped queue received."""
    (message,) = boto3.client("sqs").receive_message(QueueUrl=queue)["Messages"]
    envelope: dict[str, Any] = json.loads(message["Body"])
    return envelope


def publishing_environment(monkeypatch: pytest.MonkeyPatch, service: str) -> None:
    """The environment a `service` function publishing to the bus is deployed with."""
    for name, value in {
        "POWERTOOLS_SERVICE_NAME": service,
        "REBATES_VERSION": "test",
        "EVENT_BUS_NAME": BUS,
    }.items():
        monkeypatch.setenv(name, value)


class RefusingPublisher(InMemoryPublisher):
    """Publishes like the real one, except the events whose `field` (``redemptionId``,
    ``entryId``) is one of `refused`, which EventBridge keeps refusing."""

    def __init__(self, refused: set[str], *, field: str) -> None:
        super().__init__()
        self.refused = refused
        self.field = field

    def publish(self, *details: EventDetail) -> None:
        for detail in details:
            if getattr(detail, self.field, None) in self.refused:
                failure = FailedEntry(detail.detail_type, detail.eventId, "InternalFailure", "")
                raise EventPublishError([failure], attempts=3)
        super().publish(*details)
