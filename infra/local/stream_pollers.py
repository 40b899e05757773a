"""DynamoDB stream and Kinesis event source mappings with Lambda's semantics, after the write.

moto invokes a stream's mapped function synchronously inside the write that made the
record. For a table stream that is inside the write, ignoring the mapping's
FilterCriteria; the local runtime releases the gate while a handler runs, so other
requests could then run in the middle of a TransactWriteItems, and a record of a
transaction that is about to be cancelled would already have been delivered. For a
Kinesis stream it is inside PutRecord(s), one record per invocation, before the
producer has its answer, with failures dropped. AWS does neither: Lambda reads
committed records from the stream, after the fact. So locally the mapping is detached
from moto (`patches.detach_table_stream_source`, `patches.detach_kinesis_source`) and a
`TableStreamPoller` or `KinesisStreamPoller` does what Lambda's stream poller does,
through the DynamoDB Streams or Kinesis API like any client:

- reads every shard from the mapping's starting position, `BatchSize` records at a
  time; the records of one shard in order, each shard on its own (a batch failing on
  one shard holds up that shard only);
- applies the mapping's FilterCriteria (`stream_filters.matches`): records that match
  no filter are skipped, as Lambda drops them before invoking (for Kinesis the pattern
  sees the record's ``data`` decoded from JSON, and data that is not JSON matches none);
- invokes the function with the exact stream event, one batch at a time;
- on a failed batch (a function error, or ``batchItemFailures`` with
  ReportBatchItemFailures), retries from the first failed record, halving the batch on
  each retry when BisectBatchOnFunctionError is set, up to MaximumRetryAttempts; then
  sends the batch's description to the on-failure destination (an SQS queue) and moves
  past it, as Lambda does. Nothing is dropped silently.

Local differences, on purpose: retries happen at once rather than with Lambda's
backoff, and shards are listed once, when polling starts (moto keeps a resharded
stream's parent shards open, so there is no end of a shard to follow children from).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Generic, TypeVar

from infra.local.lambdas import FunctionNotFound, Invocation, LambdaRuntime
from infra.local.pollers import PollerThread
from infra.local.stream_filters import matches

__all__ = [
    "KinesisStreamMapping",
    "KinesisStreamPoller",
    "StreamMapping",
    "TableStreamMapping",
    "TableStreamPoller",
    "kinesis_event",
    "stream_event",
]

log = logging.getLogger(__name__)

# Pause between reads of a shard with nothing new; short so a test or the demo sees an
# event within a fraction of a second, long enough to cost nothing when idle.
_IDLE_SECONDS: Final = 0.1
_ERROR_BACKOFF_SECONDS: Final = 0.5
# Lambda's default for a stream mapping: -1 means retry until the record expires.
_UNLIMITED_RETRIES_STAND_IN: Final = 10_000
# GetRecords returns at most this many records per call.
_KINESIS_READ_LIMIT: Final = 10_000


@dataclass(frozen=True)
class StreamMapping:
    """What every stream event source mapping declares, DynamoDB or Kinesis."""

    uuid: str
    function_name: str
    stream_arn: str
    batch_size: int = 100
    starting_position: str = "TRIM_HORIZON"
    filter_criteria: dict[str, Any] | None = None
    report_batch_item_failures: bool = False
    bisect_on_error: bool = False
    maximum_retry_attempts: int = -1
    on_failure_queue_arn: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class TableStreamMapping(StreamMapping):
    """One DynamoDB stream event source mapping, as the template declares it."""


@dataclass(frozen=True)
class KinesisStreamMapping(StreamMapping):
    """One Kinesis stream event source mapping, as the template declares it."""

    # StartingPositionTimestamp (epoch seconds), read with StartingPosition AT_TIMESTAMP.
    starting_position_timestamp: float | None = None
    # The function's execution role: Lambda names it in every record it delivers.
    invoke_identity_arn: str = ""


def _epoch_seconds(value: Any) -> Any:
    return value.timestamp() if isinstance(value, datetime) else value


def stream_event(records: list[dict[str, Any]], stream_arn: str) -> dict[str, Any]:
    """The event Lambda sends for a batch of GetRecords records (boto3 shapes in)."""
    shaped = []
    for record in records:
        dynamodb = dict(record["dynamodb"])
        if "ApproximateCreationDateTime" in dynamodb:
            dynamodb["ApproximateCreationDateTime"] = _epoch_seconds(
                dynamodb["ApproximateCreationDateTime"]
            )
        shaped.append({**record, "dynamodb": dynamodb, "eventSourceARN": stream_arn})
    return {"Records": shaped}


def kinesis_event(
    records: list[dict[str, Any]], *, shard_id: str, stream_arn: str, invoke_identity_arn: str
) -> dict[str, Any]:
    """The event Lambda sends for a batch of one shard's Kinesis GetRecords records
    (boto3 shapes in: ``Data`` as bytes, ``ApproximateArrivalTimestamp`` a datetime)."""
    region = stream_arn.split(":")[3]
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": record["PartitionKey"],
                    "sequenceNumber": record["SequenceNumber"],
                    "data": base64.b64encode(record["Data"]).decode("ascii"),
                    # Lambda's are epoch seconds to the millisecond.
                    "approximateArrivalTimestamp": round(
                        _epoch_seconds(record["ApproximateArrivalTimestamp"]), 3
                    ),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{record['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": invoke_identity_arn,
                "awsRegion": region,
                "eventSourceARN": stream_arn,
            }
            for record in records
        ]
    }


@dataclass
class _Shard:
    shard_id: str
    # None once the shard is closed and read to its end.
    iterator: str | None = None
    # Batches read and not yet settled, the next to invoke first (bisected halves too).
    pending: list[list[dict[str, Any]]] = field(default_factory=list)
    # Retries left for the batch `pending` came from (its halves share them).
    retries_left: int = 0


MappingT = TypeVar("MappingT", bound=StreamMapping)


class _StreamPoller(PollerThread, Generic[MappingT]):
    """Delivers one stream to one function, on a daemon thread.

    Subclasses say how the stream's API is read (`_list_shards`, `_read`), how a record
    is filtered and numbered, and what event and on-failure message Lambda sends.
    """

    # The key of the on-failure message that says where the failed records are.
    batch_info_key = ""

    def __init__(self, runtime: LambdaRuntime, mapping: MappingT, *, sqs_client: Any) -> None:
        self.runtime = runtime
        self.mapping = mapping
        self._sqs = sqs_client
        self._shards: dict[str, _Shard] = {}
        self._caught_up = False
        self._caught_up_from = 0.0
        super().__init__()

    def idle(self, since: float = 0.0) -> bool:
        """Nothing being delivered or waiting for a retry, and a read of every shard that
        began at `since` (`time.monotonic()`) or later found nothing new.

        A read finishing empty says nothing of a record written after it began: a
        write the caller made before it asked must be looked for by a later read.
        """
        if not self.mapping.enabled:
            return True
        return not self._busy and self._caught_up and self._caught_up_from >= since

    # -- polling --

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.mapping.enabled:
                self._stop.wait(_IDLE_SECONDS)
                continue
            try:
                done = self.poll_once()
            except Exception:
                if self._stop.is_set():
                    break
                log.exception("%s failed", self.thread_name)
                self._stop.wait(_ERROR_BACKOFF_SECONDS)
                continue
            if not done:
                self._stop.wait(_IDLE_SECONDS)

    def poll_once(self) -> int:
        """One pass over every shard: a shard with a failed batch retries it once, any
        other reads its next records and delivers what matched. Returns the records read
        plus the batches invoked (0: nothing new anywhere)."""
        started = time.monotonic()
        read = invoked = 0
        for shard in self._known_shards():
            if not shard.pending:
                if shard.iterator is None:
                    continue
                records = self._read(shard)
                read += len(records)
                wanted = [r for r in records if self._matches(r)]
                if not wanted:
                    continue
                shard.pending.append(wanted)
                allowed = self.mapping.maximum_retry_attempts
                shard.retries_left = _UNLIMITED_RETRIES_STAND_IN if allowed < 0 else allowed
            self._invoke_next(shard)
            invoked += 1
        self._caught_up = read == 0 and invoked == 0
        self._caught_up_from = started
        return read + invoked

    def _known_shards(self) -> list[_Shard]:
        # Listed once (see the module's docstring); again only while there were none.
        if not self._shards:
            for shard_id in self._list_shards():
                self._shards[shard_id] = _Shard(shard_id, self._first_iterator(shard_id))
        return list(self._shards.values())

    def _list_shards(self) -> list[str]:
        raise NotImplementedError

    def _first_iterator(self, shard_id: str) -> str | None:
        """An iterator at the mapping's starting position in the shard."""
        raise NotImplementedError

    def _read(self, shard: _Shard) -> list[dict[str, Any]]:
        """The shard's next records (at most BatchSize), moving its iterator past them."""
        raise NotImplementedError

    def _matches(self, record: dict[str, Any]) -> bool:
        raise NotImplementedError

    # -- delivery --

    def _invoke_next(self, shard: _Shard) -> None:
        """Invoke the shard's next batch; a failure is retried from its first failed record
        (in halves with BisectBatchOnFunctionError) while retries are left, then goes to
        the on-failure destination, and the shard moves past it."""
        batch = shard.pending.pop(0)
        self._busy = True
        self.activity += 1
        try:
            failed_from = self._invoke(shard.shard_id, batch)
            if failed_from is None:
                return
            remaining = batch[failed_from:]
            if shard.retries_left <= 0:
                self._send_to_on_failure(shard.shard_id, remaining)
                return
            shard.retries_left -= 1
            if self.mapping.bisect_on_error and len(remaining) > 1:
                middle = len(remaining) // 2
                shard.pending[:0] = [remaining[:middle], remaining[middle:]]
            else:
                shard.pending.insert(0, remaining)
        finally:
            self.activity += 1
            self._busy = False

    def _invoke(self, shard_id: str, batch: list[dict[str, Any]]) -> int | None:
        """Index of the first record to retry, or None when the batch succeeded."""
        event = self._event(shard_id, batch)
        try:
            invocation = self.runtime.invoke(self.mapping.function_name, event)
        except FunctionNotFound:
            log.exception("stream mapping %s: function not found", self.mapping.uuid)
            return 0
        return _first_failure(
            invocation,
            [self._sequence_number(r) for r in batch],
            self.mapping.report_batch_item_failures,
        )

    def _event(self, shard_id: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
        raise NotImplementedError

    def _sequence_number(self, record: dict[str, Any]) -> str:
        raise NotImplementedError

    def _arrival_info(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        """What the on-failure message says of when the batch's records arrived."""
        return {}

    def _send_to_on_failure(self, shard_id: str, batch: list[dict[str, Any]]) -> None:
        sequence_numbers = [self._sequence_number(r) for r in batch]
        log.error(
            "stream mapping %s: %d records failed every retry, sent to the on-failure destination",
            self.mapping.uuid,
            len(batch),
        )
        if self.mapping.on_failure_queue_arn is None:
            return
        # What Lambda sends: where the records are in the stream, not the records.
        message = {
            "requestContext": {
                "functionArn": self.mapping.function_name,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": self.mapping.maximum_retry_attempts + 1,
            },
            "timestamp": datetime.now(UTC).isoformat(),
            self.batch_info_key: {
                "shardId": shard_id,
                "startSequenceNumber": sequence_numbers[0],
                "endSequenceNumber": sequence_numbers[-1],
                **self._arrival_info(batch),
                "batchSize": len(batch),
                "streamArn": self.mapping.stream_arn,
            },
        }
        name = self.mapping.on_failure_queue_arn.split(":")[-1]
        url = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
        self._sqs.send_message(QueueUrl=url, MessageBody=json.dumps(message))


class TableStreamPoller(_StreamPoller[TableStreamMapping]):
    """Delivers one table stream to one function, on a daemon thread."""

    batch_info_key = "DDBStreamBatchInfo"

    def __init__(
        self,
        runtime: LambdaRuntime,
        mapping: TableStreamMapping,
        *,
        streams_client: Any,
        sqs_client: Any,
    ) -> None:
        self._streams = streams_client
        super().__init__(runtime, mapping, sqs_client=sqs_client)
        self.thread_name = f"stream-poller:{mapping.function_name}"

    def _list_shards(self) -> list[str]:
        # A local table stream has one shard for its whole life.
        description = self._streams.describe_stream(StreamArn=self.mapping.stream_arn)
        return [shard["ShardId"] for shard in description["StreamDescription"].get("Shards", [])]

    def _first_iterator(self, shard_id: str) -> str | None:
        iterator: str = self._streams.get_shard_iterator(
            StreamArn=self.mapping.stream_arn,
            ShardId=shard_id,
            ShardIteratorType=self.mapping.starting_position,
        )["ShardIterator"]
        return iterator

    def _read(self, shard: _Shard) -> list[dict[str, Any]]:
        response = self._streams.get_records(
            ShardIterator=shard.iterator, Limit=max(1, self.mapping.batch_size)
        )
        shard.iterator = response.get("NextShardIterator")
        records: list[dict[str, Any]] = response.get("Records", [])
        return records

    def _matches(self, record: dict[str, Any]) -> bool:
        return matches(self.mapping.filter_criteria, record)

    def _event(self, shard_id: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
        return stream_event(batch, self.mapping.stream_arn)

    def _sequence_number(self, record: dict[str, Any]) -> str:
        return str(record["dynamodb"]["SequenceNumber"])


_NOT_JSON: Final = object()


class KinesisStreamPoller(_StreamPoller[KinesisStreamMapping]):
    """Delivers one Kinesis stream to one function, every shard, on a daemon thread."""

    batch_info_key = "KinesisBatchInfo"

    def __init__(
        self,
        runtime: LambdaRuntime,
        mapping: KinesisStreamMapping,
        *,
        kinesis_client: Any,
        sqs_client: Any,
    ) -> None:
        self._kinesis = kinesis_client
        super().__init__(runtime, mapping, sqs_client=sqs_client)
        self.thread_name = f"kinesis-poller:{mapping.function_name}"

    def _list_shards(self) -> list[str]:
        shard_ids: list[str] = []
        request: dict[str, Any] = {"StreamARN": self.mapping.stream_arn}
        while True:
            response = self._kinesis.list_shards(**request)
            shard_ids.extend(shard["ShardId"] for shard in response.get("Shards", []))
            token = response.get("NextToken")
            if not token:
                return shard_ids
            # ListShards refuses the stream beside a NextToken.
            request = {"NextToken": token}

    def _first_iterator(self, shard_id: str) -> str | None:
        request: dict[str, Any] = {
            "StreamARN": self.mapping.stream_arn,
            "ShardId": shard_id,
            "ShardIteratorType": self.mapping.starting_position,
        }
        if self.mapping.starting_position == "AT_TIMESTAMP":
            request["Timestamp"] = datetime.fromtimestamp(
                self.mapping.starting_position_timestamp or 0.0, UTC
            )
        iterator: str = self._kinesis.get_shard_iterator(**request)["ShardIterator"]
        return iterator

    def _read(self, shard: _Shard) -> list[dict[str, Any]]:
        # The stream's ARN too: moto's iterators made from an ARN do not name the stream.
        response = self._kinesis.get_records(
            StreamARN=self.mapping.stream_arn,
            ShardIterator=shard.iterator,
            Limit=max(1, min(self.mapping.batch_size, _KINESIS_READ_LIMIT)),
        )
        shard.iterator = response.get("NextShardIterator")
        records: list[dict[str, Any]] = response.get("Records", [])
        return records

    def _matches(self, record: dict[str, Any]) -> bool:
        criteria = self.mapping.filter_criteria
        if not (criteria or {}).get("Filters"):
            return True
        data = _json_or_not(record["Data"])
        # Lambda filters Kinesis records on `data` alone, and drops data it cannot read
        # as JSON when the mapping has filters.
        return data is not _NOT_JSON and matches(criteria, {"data": data})

    def _event(self, shard_id: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
        return kinesis_event(
            batch,
            shard_id=shard_id,
            stream_arn=self.mapping.stream_arn,
            invoke_identity_arn=self.mapping.invoke_identity_arn,
        )

    def _sequence_number(self, record: dict[str, Any]) -> str:
        return str(record["SequenceNumber"])

    def _arrival_info(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "approximateArrivalOfFirstRecord": _iso_millis(batch[0]["ApproximateArrivalTimestamp"]),
            "approximateArrivalOfLastRecord": _iso_millis(batch[-1]["ApproximateArrivalTimestamp"]),
        }


def _json_or_not(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:  # not UTF-8 or not JSON
        return _NOT_JSON


def _iso_millis(value: Any) -> str:
    """An instant as Lambda writes it in on-failure messages: 2027-03-01T09:00:00.123Z."""
    instant = value if isinstance(value, datetime) else datetime.fromtimestamp(float(value), UTC)
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _first_failure(invocation: Invocation, sequence_numbers: list[str], report: bool) -> int | None:
    """Where a stream batch is retried from, by Lambda's rules (None: all succeeded)."""
    if invocation.is_error:
        return 0
    payload = invocation.payload
    if not report or not isinstance(payload, dict) or not payload.get("batchItemFailures"):
        return None
    failures = payload["batchItemFailures"]
    positions = []
    for failure in failures if isinstance(failures, list) else [failures]:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if identifier not in sequence_numbers:
            # Lambda treats a malformed report as a failure of the whole batch.
            log.warning("invalid batchItemFailures entry %r: the whole batch is retried", failure)
            return 0
        positions.append(sequence_numbers.index(identifier))
    # Streams are ordered: Lambda checkpoints before the lowest failed record.
    return min(positions)
