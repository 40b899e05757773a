"""SQS event source mappings with Lambda's real semantics.

moto delivers a queue to its mapped function synchronously inside SendMessage, with a
fake receive count and no partial batch responses, so failed messages never reach
their dead-letter queue (see `patches.detach_sqs_event_source`). Locally each mapping
gets an `SqsPoller` instead, doing what Lambda's pollers do: receive a batch through
the endpoint (so through the gate, like any client), invoke the function with the
exact SQS event, delete what succeeded, and leave what failed to come back. moto
counts receives and moves a message to the DLQ on the receive after
`maxReceiveCount` (in `receive_message`), as SQS does.

One difference, on purpose: in AWS a failed message comes back when its visibility
timeout expires (often minutes). Here the poller makes it visible again after
`retry_delay_seconds` (default 0), so a poison message reaches its DLQ in moments.
"""

from __future__ import annotations

import base64
import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

from infra.local.lambdas import FunctionNotFound, Invocation, LambdaRuntime

__all__ = ["Poller", "PollerThread", "Pollers", "QueueMapping", "SqsPoller", "sqs_event"]

log = logging.getLogger(__name__)

# Long poll per receive: short, so stop() is prompt; moto's wait releases the gate
# (patches), so an idle poller costs neither CPU nor other requests' latency.
_WAIT_SECONDS: Final = 1
# After an error talking to SQS (a queue deleted under us, the server stopping).
_ERROR_BACKOFF_SECONDS: Final = 0.5
_SQS_BATCH_LIMIT: Final = 10


@dataclass
class QueueMapping:
    """One SQS event source mapping, as the template declares it."""

    uuid: str
    function_name: str
    queue_url: str
    queue_arn: str
    batch_size: int = 10
    report_batch_item_failures: bool = False
    enabled: bool = True
    maximum_batching_window_seconds: int = 0


def _message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """ReceiveMessage's MessageAttributes in the shape Lambda puts in the event."""
    shaped: dict[str, Any] = {}
    for name, value in attributes.items():
        entry: dict[str, Any] = {
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value.get("DataType", "String"),
        }
        if "StringValue" in value:
            entry["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            raw = value["BinaryValue"]
            # boto3 hands binary values over decoded; Lambda's event carries base64.
            entry["binaryValue"] = base64.b64encode(
                raw if isinstance(raw, bytes) else str(raw).encode()
            ).decode("ascii")
        shaped[name] = entry
    return shaped


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda sends for a batch of received messages (boto3 shapes in)."""
    region = queue_arn.split(":")[3]
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes", {})),
                "messageAttributes": _message_attributes(message.get("MessageAttributes", {})),
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def _failed_message_ids(invocation: Invocation, batch_ids: list[str], report: bool) -> set[str]:
    """Which messages of the batch go back to the queue, by Lambda's rules."""
    if invocation.is_error:
        return set(batch_ids)
    if not report:
        return set()
    payload = invocation.payload
    if not isinstance(payload, dict):
        # None, "", {} and other non-report results mean the whole batch succeeded.
        return set()
    failures = payload.get("batchItemFailures")
    if not failures:
        return set()
    failed: set[str] = set()
    for failure in failures if isinstance(failures, list) else [failures]:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in batch_ids:
            # Lambda treats a malformed report as a failure of the whole batch.
            log.warning("invalid batchItemFailures entry %r: the whole batch is retried", failure)
            return set(batch_ids)
        failed.add(str(identifier))
    return failed


class PollerThread:
    """The daemon thread an event source poller runs on: start, stop, and whether it
    is handling a batch. Subclasses set `thread_name` and implement `_loop`, which runs
    until `_stop` is set."""

    thread_name = "poller"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # True while a batch is being handled.
        self._busy = False
        # Bumped whenever a batch is received or settled: Pollers.wait_idle uses it to
        # tell "idle twice" from "idle, busy, idle again" between its two looks.
        self.activity = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop after its current read or batch."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def busy(self) -> bool:
        """A batch is being handled (invoked, settled)."""
        return self._busy

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        raise NotImplementedError


class SqsPoller(PollerThread):
    """Delivers one queue to one function, on a daemon thread."""

    def __init__(
        self,
        runtime: LambdaRuntime,
        mapping: QueueMapping,
        *,
        sqs_client: Any,
        retry_delay_seconds: float = 0,
    ) -> None:
        self.runtime = runtime
        self.mapping = mapping
        self._sqs = sqs_client
        # SQS visibility timeouts are whole seconds: a fraction rounds up.
        self.retry_delay_seconds = math.ceil(retry_delay_seconds)
        super().__init__()
        self.thread_name = f"sqs-poller:{mapping.function_name}"

    def idle(self, since: float = 0.0) -> bool:
        """No batch being handled and no message waiting, in flight or delayed (read from
        the queue itself, so true whenever it was sent: `since` is not needed)."""
        del since
        if self._busy:
            return False
        if not self.mapping.enabled:
            return True  # nothing will happen to its messages
        try:
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=self.mapping.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
        except Exception:
            log.exception("cannot read the attributes of %s", self.mapping.queue_url)
            return False
        pending = sum(int(value) for value in attributes.values())
        return pending == 0 and not self._busy

    # -- polling --

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.mapping.enabled:
                self._stop.wait(_WAIT_SECONDS)
                continue
            try:
                self.poll_once()
            except Exception:
                if self._stop.is_set():
                    break
                # A poller must outlive a bad moment (a deleted queue, a stopping
                # server); AWS's pollers keep polling too.
                log.exception("SQS poller for %s failed", self.mapping.function_name)
                self._stop.wait(_ERROR_BACKOFF_SECONDS)

    def poll_once(self, wait_seconds: int = _WAIT_SECONDS) -> int:
        """Receive one batch and deliver it; returns how many messages it held."""
        # Not busy while waiting on an empty queue: until _busy is set, a received
        # batch shows in the queue's in-flight count, which idle() also reads.
        messages = self._receive_batch(wait_seconds)
        if not messages:
            return 0
        self._busy = True
        self.activity += 1
        try:
            self._deliver(messages)
        finally:
            self.activity += 1
            self._busy = False
        return len(messages)

    def _receive(self, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self.mapping.queue_url,
            MaxNumberOfMessages=max(1, min(count, _SQS_BATCH_LIMIT)),
            # Explicit, so a queue's own ReceiveMessageWaitTimeSeconds does not apply.
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def _receive_batch(self, wait_seconds: int) -> list[dict[str, Any]]:
        batch_size = max(1, self.mapping.batch_size)
        batch = self._receive(batch_size, wait_seconds)
        if not batch:
            return batch
        # Like Lambda: fill the batch from what is available now, or wait up to the
        # batching window for more.
        window_ends = time.monotonic() + self.mapping.maximum_batching_window_seconds
        while len(batch) < batch_size and not self._stop.is_set():
            remaining = window_ends - time.monotonic()
            more = self._receive(batch_size - len(batch), 1 if remaining >= 1 else 0)
            batch.extend(more)
            if not more:
                if remaining <= 0:
                    break
                self._stop.wait(min(remaining, 0.05))
        return batch

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        event = sqs_event(messages, self.mapping.queue_arn)
        batch_ids = [message["MessageId"] for message in messages]
        try:
            invocation = self.runtime.invoke(self.mapping.function_name, event)
        except FunctionNotFound:
            log.exception("SQS mapping %s: function not found", self.mapping.uuid)
            failed = set(batch_ids)
        else:
            failed = _failed_message_ids(
                invocation, batch_ids, self.mapping.report_batch_item_failures
            )
        succeeded = [m for m in messages if m["MessageId"] not in failed]
        retried = [m for m in messages if m["MessageId"] in failed]
        for chunk in _chunks(succeeded):
            self._sqs.delete_message_batch(
                QueueUrl=self.mapping.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
        for chunk in _chunks(retried):
            # AWS waits out the visibility timeout; locally the retry delay stands in.
            self._sqs.change_message_visibility_batch(
                QueueUrl=self.mapping.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": self.retry_delay_seconds,
                    }
                    for i, m in enumerate(chunk)
                ],
            )


def _chunks(messages: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(messages), _SQS_BATCH_LIMIT):
        yield messages[start : start + _SQS_BATCH_LIMIT]


class _Mapping(Protocol):
    @property
    def uuid(self) -> str: ...


class Poller(Protocol):
    """What `Pollers` drives: `SqsPoller`, and the table and Kinesis stream pollers of
    `stream_pollers`."""

    @property
    def mapping(self) -> _Mapping: ...

    activity: int

    def start(self) -> None: ...
    def request_stop(self) -> None: ...
    def stop(self, timeout: float = 5.0) -> None: ...
    def idle(self, since: float = 0.0) -> bool:
        """Nothing left to do for what happened before `since` (`time.monotonic()`)."""
        ...


class Pollers:
    """All the event source pollers of a local cloud, started and stopped together."""

    def __init__(self, pollers: Iterable[Poller] = ()) -> None:
        self._pollers: list[Poller] = list(pollers)
        self._started = False

    def add(self, poller: Poller) -> Poller:
        """Another poller; started at once if the others are running."""
        self._pollers.append(poller)
        if self._started:
            poller.start()
        return poller

    def get(self, uuid: str) -> Poller:
        """The poller of the mapping with this UUID."""
        for poller in self._pollers:
            if poller.mapping.uuid == uuid:
                return poller
        raise KeyError(uuid)

    def __iter__(self) -> Iterator[Poller]:
        return iter(list(self._pollers))

    def __len__(self) -> int:
        return len(self._pollers)

    def start(self) -> None:
        self._started = True
        for poller in self:
            poller.start()

    def stop(self) -> None:
        self._started = False
        for poller in self:
            poller.request_stop()  # all at once, then join: one poll's wait, not N
        for poller in self:
            poller.stop()

    def wait_idle(self, timeout: float = 10.0, interval: float = 0.05) -> bool:
        """Wait until every poller is idle; False if that does not happen in time.

        Idle means twice in a row with no batch received or settled in between, so
        a message one handler sends to another queue while we look is not missed.
        """
        since = time.monotonic()
        deadline = since + timeout
        while True:
            before = sum(p.activity for p in self)
            if (
                all(p.idle(since) for p in self)
                and all(p.idle(since) for p in self)
                and sum(p.activity for p in self) == before
            ):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
