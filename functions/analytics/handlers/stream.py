"""The events stream consumer: archive every event, then count each exactly once.

A batch of Kinesis records is first archived whole (`Archive`: Firehose, which writes
``events/dt=YYYY-MM-DD/`` by each line's ``occurred_at``); if Firehose keeps refusing,
the invocation fails and Lambda retries the batch, so no event reaches the counters
without reaching the archive. Then each record is counted (`Counters.count`) under its
event's correlation id; one that fails is reported in ``batchItemFailures``: Lambda
retries from it (bisecting the batch on errors), the records before it stay done, and
those after it are counted again as replays, which count nothing. A record that is no
tracked event at all fails every retry and ends in the mapping's DLQ with its position.

The archive may hold an event twice (a retried batch): every query de-duplicates by
``event_id`` first (`functions/analytics/sql/`).

Environment (`StreamSettings`): ``ANALYTICS_TABLE``, ``CAMPAIGNS_TABLE``,
``ARCHIVE_DELIVERY_STREAM_NAME``, ``PSEUDONYM_KEY_SECRET_ARN``.
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import (
    KinesisStreamRecord,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from functions.analytics.dal import Archive, CampaignZones, Counters
from functions.analytics.records import BadStreamRecord, TrackedEvent
from functions.core.clock import utc_now
from functions.core.observability import (
    correlated,
    instrumented,
    logger,
    record_archive_lines,
    record_consumer_lag,
    record_event_counted,
)
from functions.core.secrets import SecretKey
from functions.core.settings import CoreSettings, load_settings

__all__ = ["StreamSettings", "consume", "handler"]


class StreamSettings(CoreSettings):
    archive_delivery_stream_name: str = Field(alias="ARCHIVE_DELIVERY_STREAM_NAME", min_length=1)
    pseudonym_key_secret_arn: str = Field(alias="PSEUDONYM_KEY_SECRET_ARN", min_length=1)


def _events(event: dict[str, Any]) -> list[TrackedEvent | None]:
    tracked: list[TrackedEvent | None] = []
    for raw in event.get("Records", []):
        try:
            tracked.append(
                TrackedEvent.from_stream(KinesisStreamRecord(raw).kinesis.data_as_bytes())
            )
        except (BadStreamRecord, ValueError, KeyError, TypeError):
            tracked.append(None)
    return tracked


def consume(
    event: dict[str, Any], context: LambdaContext | None, counters: Counters, archive: Archive
) -> PartialItemFailureResponse:
    tracked = _events(event)
    counters.forget_sessions()
    readable = [item for item in tracked if item is not None]
    archive.write(
        [item.to_archive_line(counters.customer_key(item.customer_id)) for item in readable]
    )
    record_archive_lines(len(readable))
    now = utc_now()
    if readable:
        oldest = min(item.received_ms for item in readable)
        record_consumer_lag(max(0, now.timestamp() * 1000 - oldest))
    by_sequence = {
        raw["kinesis"]["sequenceNumber"]: item
        for raw, item in zip(event.get("Records", []), tracked, strict=True)
        if isinstance(raw, dict) and isinstance(raw.get("kinesis"), dict)
    }

    def handle(record: KinesisStreamRecord) -> None:
        with correlated(record.raw_event):
            item = by_sequence.get(record.kinesis.sequence_number)
            if item is None:
                logger.error(
                    "stream record is not a tracked event",
                    extra={"sequenceNumber": record.kinesis.sequence_number},
                )
                raise BadStreamRecord(record.kinesis.sequence_number)
            try:
                outcome = counters.count(item, now=utc_now())
            except Exception:
                logger.exception(
                    "event not counted", extra={"eventId": item.event_id, "type": item.type}
                )
                raise
            record_event_counted(item.type, outcome.counted, outcome.reason)

    processor = BatchProcessor(
        event_type=EventType.KinesisDataStreams, raise_on_entire_batch_failure=False
    )
    return process_partial_response(
        event=event, record_handler=handle, processor=processor, context=context
    )


@functools.cache
def _parts(settings: StreamSettings) -> tuple[Counters, Archive]:
    keys = SecretKey()
    counters = Counters(CampaignZones(), lambda: keys.get(settings.pseudonym_key_secret_arn))
    return counters, Archive(settings.archive_delivery_stream_name)


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    counters, archive = _parts(load_settings(StreamSettings))
    return consume(event, context, counters, archive)
