"""The offers outbox function: Campaigns-table stream records in, offer events out.

The table's event source mapping invokes it with batches of stream records, already
filtered to code issues and redemptions (`functions.offers.outbox.STREAM_FILTERS`); which
record is which event is decided in `functions.offers.outbox`.

Each record is published on its own, so one that cannot be (PutEvents keeps refusing it, or
its item cannot be read) is reported in ``batchItemFailures`` without holding back the
others. Lambda then retries the shard from that record, halving the batch when the error
repeats, and after the mapping's retry attempts parks the record in its on-failure DLQ.
Records after it that were already published are sent again by such a retry with the same
``eventId``s, which consumers dedupe on: nothing is lost, a duplicate is harmless.

Such a failure does not fail the invocation (the batch reports it), so Lambda's Errors
metric misses it: `OutboxPublishFailures` counts each one, and `OutboxLag` records how
long after its commit each event was published. Each record is handled under its own
correlation id (the stream record's ``eventID``), which its event carries on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.core.events import EventBridgePublisher, EventPublisher
from functions.core.observability import (
    correlated,
    instrumented,
    logger,
    record_outbox_failure,
    record_outbox_lag,
)
from functions.core.settings import EventBusSettings, load_settings
from functions.offers.outbox import commit_age, event_for


def _wall_clock() -> datetime:
    # Not `utc_now`: the local cloud shifts that clock for demos, while DynamoDB stamps
    # its records with the real time.
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outbox:
    """Publishes the event of each stream record to `events` (passed in, for tests)."""

    events: EventPublisher
    clock: Callable[[], datetime] = _wall_clock

    def publish(self, record: DynamoDBRecord) -> str | None:
        """Publish `record`'s event; its detail type, or None when it is no event."""
        with correlated(record):
            try:
                return self._publish(record)
            except Exception:
                record_outbox_failure()
                logger.exception("offer event not published", extra={"keys": _keys(record)})
                raise

    def _publish(self, record: DynamoDBRecord) -> str | None:
        event = event_for(record.raw_event)
        if event is None:
            logger.debug("stream record is no offer event", extra={"keys": _keys(record)})
            return None
        self.events.publish(event)
        age = commit_age(record.raw_event, self.clock())
        if age is not None:
            record_outbox_lag(age / timedelta(milliseconds=1))
        logger.info(
            "offer event published",
            extra={"detailType": event.detail_type, "eventId": event.eventId},
        )
        return event.detail_type

    def handle(
        self, event: dict[str, Any], context: LambdaContext | None = None
    ) -> PartialItemFailureResponse:
        # A processor per batch: it keeps the batch's outcomes as state.
        processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
        return process_partial_response(
            event=event, record_handler=self.publish, processor=processor, context=context
        )


def _keys(record: DynamoDBRecord) -> Any:
    return record.raw_event.get("dynamodb", {}).get("Keys")


@functools.cache
def _outbox(settings: EventBusSettings) -> Outbox:
    # One per container (and per environment, for the local cloud); the client is lazy.
    return Outbox(events=EventBridgePublisher(settings.event_bus_name))


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return _outbox(load_settings(EventBusSettings)).handle(event, context)
