"""The domain events consumer: the system's own events onto the events stream.

Every domain event reaches the analytics queue through one rule; each SQS record is
read as its typed detail (`functions.analytics.domain.parse`) and, when a figure depends
on it, put on the events stream as a `TrackedEvent` with the domain event's own id, so
the stream consumer counts it once and archives it with the storefront's events. All
records of a batch go in one PutRecords call; those Kinesis still refuses after the
retries, and messages that cannot be read, are reported in ``batchItemFailures``: SQS
delivers them again, and after the queue's receive count parks them in its DLQ.

Environment (`DomainSettings`): ``EVENTS_STREAM_NAME``.
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from functions.analytics.dal import EventStream
from functions.analytics.domain import PoisonMessage, parse, tracked
from functions.analytics.records import TrackedEvent
from functions.core.clock import utc_now
from functions.core.observability import correlated, instrumented, logger
from functions.core.settings import CoreSettings, load_settings

__all__ = ["DomainSettings", "consume", "handler"]


class DomainSettings(CoreSettings):
    events_stream_name: str = Field(alias="EVENTS_STREAM_NAME", min_length=1)


def consume(event: dict[str, Any], stream: EventStream) -> dict[str, list[dict[str, str]]]:
    failures: list[str] = []
    batch: list[tuple[str, TrackedEvent]] = []
    now = utc_now()
    for record in event.get("Records", []):
        message_id = str(record.get("messageId", ""))
        with correlated(record):
            try:
                detail = parse(str(record.get("body", "")))
            except PoisonMessage as poison:
                logger.error(
                    "queue message is not an event",
                    extra={"messageId": message_id, "problem": str(poison)},
                )
                failures.append(message_id)
                continue
            item = tracked(detail, received_at=now)
            if item is not None:
                batch.append((message_id, item))
    if batch:
        refused = stream.put([item for _, item in batch])
        if refused:
            logger.warning("events stream refused records", extra={"count": len(refused)})
        failures.extend(batch[position][0] for position in refused)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}


@functools.cache
def _stream(settings: DomainSettings) -> EventStream:
    return EventStream(settings.events_stream_name)


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    return consume(event, _stream(load_settings(DomainSettings)))
