"""DynamoDB stream event source mappings with Lambda's semantics, after the write.

moto invokes a stream's mapped function synchronously inside the write that made the
record, ignoring the mapping's FilterCriteria; the local runtime releases the gate while
a handler runs, so other requests could then run in the middle of a TransactWriteItems,
and a record of a transaction that is about to be cancelled would already have been
delivered. AWS does neither: Lambda reads committed records from the stream, after the
fact. So locally the mapping is detached from moto (`patches.detach_table_stream_source`)
and a `TableStreamPoller` does what Lambda's stream poller does, through the DynamoDB
Streams API like any client:

- reads the shard from the mapping's starting position, `BatchSize` records at a time;
- applies the mapping's FilterCriteria (`stream_filters.matches`): records that match
  no filter are skipped, as Lambda drops them before invoking;
- invokes the function with the exact stream event, in order, one batch at a time;
- on a failed batch (a function error, or ``batchItemFailures`` with
  ReportBatchItemFailures), retries from the first failed record, halving the batch on
  each retry when BisectBatchOnFunctionError is set, up to MaximumRetryAttempts; then
  sends the batch's description to the on-failure destination (an SQS queue) and moves
  past it, as Lambda does. Nothing is dropped silently.

Local difference, on purpose: retries happen at once rather than with Lambda's backoff.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from infra.local.lambdas import FunctionNotFound, Invocation, LambdaRuntime
from infra.local.pollers import PollerThread
from infra.local.stream_filters import matches

__all__ = ["TableStreamMapping", "TableStreamPoller", "stream_event"]

log = logging.getLogger(__name__)

# Pause between reads of a shard with nothing new; short so a test or the demo sees an
# event within a fraction of a second, long enough to cost nothing when idle.
_IDLE_SECONDS: Final = 0.1
_ERROR_BACKOFF_SECONDS: Final = 0.5
# Lambda's default for a stream mapping: -1 means retry until the record expires.
_UNLIMITED_RETRIES_STAND_IN: Final = 10_000


@dataclass(frozen=True)
class TableStreamMapping:
    """One DynamoDB stream event source mapping, as the template declares it."""

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


@dataclass
class _Cursor:
    shard_id: str
    iterator: str | None = None


class TableStreamPoller(PollerThread):
    """Delivers one table stream to one function, on a daemon thread."""

    def __init__(
        self,
        runtime: LambdaRuntime,
        mapping: TableStreamMapping,
        *,
        streams_client: Any,
        sqs_client: Any,
    ) -> None:
        self.runtime = runtime
        self.mapping = mapping
        self._streams = streams_client
        self._sqs = sqs_client
        self._cursors: dict[str, _Cursor] = {}
        self._caught_up = False
        self._caught_up_from = 0.0
        super().__init__()
        self.thread_name = f"stream-poller:{mapping.function_name}"

    def idle(self, since: float = 0.0) -> bool:
        """Nothing being delivered, and a read of every shard that began at `since`
        (`time.monotonic()`) or later found nothing new.

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
                delivered = self.poll_once()
            except Exception:
                if self._stop.is_set():
                    break
                log.exception("stream poller for %s failed", self.mapping.function_name)
                self._stop.wait(_ERROR_BACKOFF_SECONDS)
                continue
            if not delivered:
                self._stop.wait(_IDLE_SECONDS)

    def poll_once(self) -> int:
        """Read each shard once and deliver what matched; returns records read."""
        started = time.monotonic()
        read = 0
        for cursor in self._shards():
            records = self._read(cursor)
            read += len(records)
            wanted = [r for r in records if matches(self.mapping.filter_criteria, r)]
            if wanted:
                self._busy = True
                self.activity += 1
                try:
                    self._deliver(wanted)
                finally:
                    self.activity += 1
                    self._busy = False
        self._caught_up = read == 0
        self._caught_up_from = started
        return read

    def _shards(self) -> list[_Cursor]:
        # A local table stream has one shard for its whole life: describe it once.
        if self._cursors:
            return list(self._cursors.values())
        description = self._streams.describe_stream(StreamArn=self.mapping.stream_arn)
        for shard in description["StreamDescription"].get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id not in self._cursors:
                iterator = self._streams.get_shard_iterator(
                    StreamArn=self.mapping.stream_arn,
                    ShardId=shard_id,
                    ShardIteratorType=self.mapping.starting_position,
                )["ShardIterator"]
                self._cursors[shard_id] = _Cursor(shard_id, iterator)
        return list(self._cursors.values())

    def _read(self, cursor: _Cursor) -> list[dict[str, Any]]:
        response = self._streams.get_records(
            ShardIterator=cursor.iterator, Limit=max(1, self.mapping.batch_size)
        )
        cursor.iterator = response.get("NextShardIterator")
        records: list[dict[str, Any]] = response.get("Records", [])
        return records

    # -- delivery --

    def _deliver(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), max(1, self.mapping.batch_size)):
            self._deliver_batch(records[start : start + self.mapping.batch_size])

    def _deliver_batch(self, batch: list[dict[str, Any]]) -> None:
        """Deliver `batch` in order, with Lambda's retries, bisection and on-failure."""
        allowed = self.mapping.maximum_retry_attempts
        retries_left = _UNLIMITED_RETRIES_STAND_IN if allowed < 0 else allowed
        queue = [batch]
        while queue and not self._stop.is_set():
            current = queue.pop(0)
            failed_from = self._invoke(current)
            if failed_from is None:
                continue
            if retries_left <= 0:
                self._send_to_on_failure(current[failed_from:])
                continue
            retries_left -= 1
            remaining = current[failed_from:]
            if self.mapping.bisect_on_error and len(remaining) > 1:
                middle = len(remaining) // 2
                queue[:0] = [remaining[:middle], remaining[middle:]]
            else:
                queue.insert(0, remaining)

    def _invoke(self, batch: list[dict[str, Any]]) -> int | None:
        """Index of the first record to retry, or None when the batch succeeded."""
        event = stream_event(batch, self.mapping.stream_arn)
        try:
            invocation = self.runtime.invoke(self.mapping.function_name, event)
        except FunctionNotFound:
            log.exception("stream mapping %s: function not found", self.mapping.uuid)
            return 0
        return _first_failure(invocation, batch, self.mapping.report_batch_item_failures)

    def _send_to_on_failure(self, batch: list[dict[str, Any]]) -> None:
        sequence_numbers = [r["dynamodb"]["SequenceNumber"] for r in batch]
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
            "DDBStreamBatchInfo": {
                "shardId": next(iter(self._cursors), ""),
                "startSequenceNumber": sequence_numbers[0],
                "endSequenceNumber": sequence_numbers[-1],
                "batchSize": len(batch),
                "streamArn": self.mapping.stream_arn,
            },
        }
        name = self.mapping.on_failure_queue_arn.split(":")[-1]
        url = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
        self._sqs.send_message(QueueUrl=url, MessageBody=json.dumps(message))


def _first_failure(invocation: Invocation, batch: list[dict[str, Any]], report: bool) -> int | None:
    """Where a stream batch is retried from, by Lambda's rules (None: all succeeded)."""
    if invocation.is_error:
        return 0
    payload = invocation.payload
    if not report or not isinstance(payload, dict) or not payload.get("batchItemFailures"):
        return None
    sequence_numbers = [r["dynamodb"]["SequenceNumber"] for r in batch]
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
