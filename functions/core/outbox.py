"""What every domain's outbox shares: reading DynamoDB stream records, and the function
that publishes each committed change's event.

A domain's outbox (`functions.offers.outbox`, `functions.wallet.outbox`) decides which
records of its table are events (`event_for`, without I/O) and says the same as Lambda
event filter patterns (`STREAM_FILTERS`); its handler module subclasses `StreamOutbox`
with that `event_for`. The rest is here, once:

- the record parsing: key strings, images, the commit time (`commit_age`, the outbox's
  lag: the metric that shows events falling behind the table), the filter syntax;
- `event_id`: an event's id derived from its fact, so a record the stream delivers again
  (it delivers at least once, and Lambda retries whole stretches of a shard) is published
  with the same ``eventId``, which consumers dedupe on;
- `StreamOutbox`: each record published on its own, so one that cannot be (PutEvents keeps
  refusing it, or its item cannot be read) is reported in ``batchItemFailures`` without
  holding back the others. Lambda then retries the shard from that record, halving the
  batch when the error repeats, and after the mapping's retry attempts parks the record in
  its on-failure DLQ. Such a failure does not fail the invocation, so Lambda's Errors
  metric misses it: `OutboxPublishFailures` counts each one, and `OutboxLag` records how
  long after its commit each event was published. Each record is handled under its own
  correlation id (the stream record's ``eventID``), which its event carries on.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final, Self

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.core.event_types import EventDetail
from functions.core.events import EventBridgePublisher, EventPublisher
from functions.core.observability import (
    correlated,
    logger,
    record_outbox_failure,
    record_outbox_lag,
)
from functions.core.settings import EventBusSettings

__all__ = [
    "INSERT",
    "MODIFY",
    "OutboxRecordError",
    "StreamOutbox",
    "begins_with",
    "commit_age",
    "event_id",
    "stream_image",
    "string_key",
]

INSERT: Final = "INSERT"
MODIFY: Final = "MODIFY"


class OutboxRecordError(ValueError):
    """A stream record that should be an event but cannot be read as one.

    Raised rather than skipped: the batch reports the record as failed, so after its
    retries it waits in the mapping's DLQ instead of its event being lost.
    """


def begins_with(prefix: str) -> dict[str, Any]:
    """A filter pattern (EventBridge syntax) for a string attribute starting with `prefix`."""
    return {"S": [{"prefix": prefix}]}


def string_key(keys: Mapping[str, Any], name: str) -> str:
    """The string attribute `name` of a stream image or key map; "" when it is none."""
    value = keys.get(name)
    text = value.get("S") if isinstance(value, Mapping) else None
    return text if isinstance(text, str) else ""


def stream_image(change: Mapping[str, Any], name: str, *, requirement: str) -> dict[str, Any]:
    """The record's `name` image (``NewImage``, ``OldImage``); a record without it breaks
    `requirement`, the table's stream view the outbox needs."""
    image = change.get(name)
    if not isinstance(image, dict):
        raise OutboxRecordError(
            f"stream record of {change.get('Keys')} has no {name}: {requirement}"
        )
    return image


def event_id(*fact: str) -> str:
    """``evt_`` and 26 base32 characters of a digest of the fact (its detail type, the item's
    key, when it happened if the item changes more than once): the same for every delivery
    of one change, different for any other change."""
    digest = hashlib.sha256("\x1f".join(fact).encode()).digest()
    return "evt_" + base64.b32encode(digest).decode()[:26]


def commit_age(record: Mapping[str, Any], now: datetime) -> timedelta | None:
    """How long before `now` the record's change was committed, if the record says.

    DynamoDB stamps `ApproximateCreationDateTime` in epoch seconds (whole seconds on most
    tables), so the age is exact to about a second; a clock ahead of `now` gives zero.
    """
    change = record.get("dynamodb")
    created = change.get("ApproximateCreationDateTime") if isinstance(change, Mapping) else None
    if not isinstance(created, int | float) or isinstance(created, bool):
        return None
    age = now - datetime.fromtimestamp(created, tz=UTC)
    return max(age, timedelta(0))


def _wall_clock() -> datetime:
    # Not `utc_now`: the local cloud shifts that clock for demos, while DynamoDB stamps
    # its records with the real time.
    return datetime.now(UTC)


@dataclass(frozen=True)
class StreamOutbox:
    """Publishes the event of each stream record to `events` (passed in, for tests).

    A domain subclasses it with its `subject` (``offer``: its log lines say "offer event
    published") and its `event_for`.
    """

    events: EventPublisher
    clock: Callable[[], datetime] = _wall_clock

    subject: ClassVar[str]

    def event_for(self, record: Mapping[str, Any]) -> EventDetail | None:
        """The event a stream record (as Lambda delivers it) stands for, if any."""
        raise NotImplementedError

    @classmethod
    def on_bus(cls, settings: EventBusSettings) -> Self:
        """The outbox publishing to the deployment's bus; its client is made on first use."""
        return cls(events=EventBridgePublisher(settings.event_bus_name))

    def publish(self, record: DynamoDBRecord) -> str | None:
        """Publish `record`'s event; its detail type, or None when it is no event."""
        with correlated(record):
            try:
                return self._publish(record)
            except Exception:
                record_outbox_failure()
                logger.exception(
                    f"{self.subject} event not published", extra={"keys": _keys(record)}
                )
                raise

    def _publish(self, record: DynamoDBRecord) -> str | None:
        event = self.event_for(record.raw_event)
        if event is None:
            logger.debug(f"stream record is no {self.subject} event", extra={"keys": _keys(record)})
            return None
        self.events.publish(event)
        age = commit_age(record.raw_event, self.clock())
        if age is not None:
            record_outbox_lag(age / timedelta(milliseconds=1))
        logger.info(
            f"{self.subject} event published",
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
