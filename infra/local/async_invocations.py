"""Lambda's asynchronous invocations, after the request that made them.

S3 hands a notification to Lambda's asynchronous invocation and returns: the upload
does not wait for the function. moto instead runs the function inside PutObject (the
marketer's upload of a campaign with 20,000 codes then takes as long as the loader), and
swallows its error. Locally the notification is queued here instead
(`patches.s3_notifications` -> `LambdaRuntime.invoke_async`), and worker threads do
what Lambda's asynchronous invocation does:

- deliver the event after the request returns, to the function's real handler;
- on an error, retry it up to the function's MaximumRetryAttempts (two unless its
  EventInvokeConfig says otherwise), keeping the invocation's request id; an event older
  than MaximumEventAgeInSeconds is not tried again;
- then send an invocation record with the cause (the error the function returned) to its
  on-failure destination, and the event itself to its dead-letter queue with the cause in
  the message attributes, whichever the template declares (both when it declares both);
  a success goes to the on-success destination, if any. An event with neither is
  discarded, as Lambda does, and logged.

Nothing submitted is dropped for being busy: the queue has no bound, a worker survives
any failure, and `idle()` stays false until every event is settled, so
`LocalCloud.wait_idle` (`/_local/drain`) waits for them. Events with the same ordering
key (the bucket and object key, for S3) are delivered one after another in the order
they were made, retries included: a delete after a put of the same key reaches the
function after the put has succeeded or been parked. Other keys run side by side.

Local difference, on purpose: retries come after `retry_delay_seconds` (default 0)
instead of Lambda's one and two minutes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from infra.local.deploy.records import AsyncInvocationRecord
from infra.local.lambdas import FunctionNotFound, Invocation, LambdaRuntime

__all__ = ["AsyncInvocations", "s3_ordering_key"]

log = logging.getLogger(__name__)

# Lambda runs asynchronous events side by side: a few workers keep other uploads moving
# while one big campaign file loads, without crowding the machine's cores.
DEFAULT_WORKERS: Final = 4
# Lambda puts the first kilobyte of the error message on a dead-letter message.
_ERROR_MESSAGE_LIMIT: Final = 1024
# The HTTP status of Lambda's Invoke call behind a function error (the invoke itself
# succeeded), as Lambda sets ErrorCode on a dead-letter message.
_INVOKE_STATUS: Final = 200


@dataclass(frozen=True)
class _EventQueue:
    """What `Pollers` knows a poller by: here, Lambda's own queue of asynchronous events."""

    uuid: str = "lambda-asynchronous-invocations"


@dataclass
class _Event:
    function: str  # name or ARN, as the caller gave it
    payload: Any
    lane: tuple[str, str]
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    queued_at: float = field(default_factory=time.monotonic)


def s3_ordering_key(event: Any) -> str:
    """`bucket/key` of the object an S3 notification is about (its first record)."""
    try:
        s3 = event["Records"][0]["s3"]
        return f"{s3['bucket']['name']}/{s3['object']['key']}"
    except (KeyError, IndexError, TypeError):
        return ""


def _function_name(function: str) -> str:
    if ":function:" in function:
        return function.split(":function:", 1)[1].split(":", 1)[0]
    return function


def _qualified_arn(function: str, region: str, account: str) -> str:
    """`arn:...:function:<name>:$LATEST`, as an invocation record names the function."""
    arn = (
        function
        if function.startswith("arn:")
        else (f"arn:aws:lambda:{region}:{account}:function:{function}")
    )
    return arn if arn.count(":") > 6 else f"{arn}:$LATEST"


def _invocation_record(
    event: _Event,
    *,
    function_arn: str,
    condition: str,
    attempts: int,
    invocation: Invocation | None,
) -> dict[str, Any]:
    """The invocation record Lambda sends to a destination (on failure or success)."""
    response: dict[str, Any] = {"statusCode": _INVOKE_STATUS, "executedVersion": "$LATEST"}
    payload = None
    if invocation is not None:
        if invocation.error is not None:
            response["functionError"] = "Unhandled"
            payload = invocation.error
        else:
            payload = invocation.payload
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": event.request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event.payload,
        "responseContext": response,
        "responsePayload": payload,
    }


class AsyncInvocations:
    """Lambda's asynchronous invocation queue for the local cloud, on worker threads.

    `client(service)` gives a boto3 client of the local cloud (SQS, SNS, EventBridge)
    for the destinations and dead-letter queues.
    """

    def __init__(
        self,
        runtime: LambdaRuntime,
        configs: Mapping[str, AsyncInvocationRecord],
        *,
        client: Callable[[str], Any],
        region: str,
        account_id: str,
        retry_delay_seconds: float = 0.0,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self.runtime = runtime
        self.mapping = _EventQueue()
        self.retry_delay_seconds = max(0.0, retry_delay_seconds)
        self.activity = 0
        self._configs = dict(configs)
        self._client_factory = client
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._region = region
        self._account_id = account_id
        self._worker_count = max(1, workers)
        self._lanes: dict[tuple[str, str], deque[_Event]] = {}
        self._ready: deque[tuple[str, str]] = deque()
        self._active: set[tuple[str, str]] = set()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- the queue --

    def submit(self, function_name_or_arn: str, event: Any, *, ordering_key: str) -> None:
        """Queue one asynchronous invocation; returns at once."""
        lane = (_function_name(function_name_or_arn), ordering_key)
        queued = _Event(function_name_or_arn, event, lane)
        with self._changed:
            if self._stop.is_set():
                log.warning(
                    "asynchronous invocation of %s after the local cloud stopped: not delivered",
                    function_name_or_arn,
                )
                return
            waiting = self._lanes.setdefault(lane, deque())
            waiting.append(queued)
            if len(waiting) == 1 and lane not in self._active:
                self._ready.append(lane)
            self.activity += 1
            self._changed.notify()

    def idle(self, since: float = 0.0) -> bool:
        """Every submitted event delivered, retried and settled (whenever submitted)."""
        del since
        with self._changed:
            return not self._lanes and not self._active

    def pending(self) -> int:
        """Events not settled yet (waiting, or being delivered: the head of its lane)."""
        with self._changed:
            return sum(len(events) for events in self._lanes.values())

    # -- lifecycle (the `pollers.Poller` protocol) --

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        for number in range(self._worker_count):
            thread = threading.Thread(target=self._work, name=f"lambda-async-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def request_stop(self) -> None:
        with self._changed:
            self._stop.set()
            self._changed.notify_all()

    def stop(self, timeout: float = 5.0) -> None:
        self.request_stop()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []
        left = self.pending()
        if left:
            log.warning(
                "the local cloud stopped with %d asynchronous invocations undelivered", left
            )

    # -- the workers --

    def _work(self) -> None:
        while True:
            with self._changed:
                while not self._ready and not self._stop.is_set():
                    self._changed.wait()
                if self._stop.is_set():
                    return
                lane = self._ready.popleft()
                event = self._lanes[lane][0]
                self._active.add(lane)
            try:
                self._deliver(event)
            except Exception:
                # A fault of the local cloud itself (a destination it cannot reach): the
                # next events of the lane must still be delivered.
                log.exception("asynchronous invocation of %s failed to settle", event.function)
            finally:
                self._settled(lane)

    def _settled(self, lane: tuple[str, str]) -> None:
        with self._changed:
            waiting = self._lanes[lane]
            waiting.popleft()
            self._active.discard(lane)
            if waiting:
                self._ready.append(lane)
            else:
                del self._lanes[lane]
            self.activity += 1
            self._changed.notify_all()

    def _deliver(self, event: _Event) -> None:
        name = _function_name(event.function)
        config = self._configs.get(name) or AsyncInvocationRecord(name)
        attempts = 0
        invocation: Invocation | None = None
        while True:
            if time.monotonic() - event.queued_at > config.maximum_event_age_seconds:
                self._failed(event, config, "EventAgeExceeded", attempts, invocation)
                return
            attempts += 1
            try:
                invocation = self.runtime.invoke(
                    event.function, event.payload, request_id=event.request_id
                )
            except FunctionNotFound:
                # S3 cannot invoke a function that is gone: the event is lost, as in AWS.
                log.exception("asynchronous invocation of a missing function: event dropped")
                return
            if not invocation.is_error:
                if config.on_success_destination:
                    record = self._record(event, "Success", attempts, invocation)
                    self._send_record(config.on_success_destination, record, success=True)
                return
            if attempts > config.maximum_retry_attempts:
                break
            log.warning(
                "asynchronous invocation of %s failed (%s), retry %d of %d",
                name,
                invocation.error_type,
                attempts,
                config.maximum_retry_attempts,
            )
            if self._stop.wait(self.retry_delay_seconds):
                log.warning("the local cloud stopped before retrying %s", name)
                return
        self._failed(event, config, "RetriesExhausted", attempts, invocation)

    # -- failures and destinations --

    def _failed(
        self,
        event: _Event,
        config: AsyncInvocationRecord,
        condition: str,
        attempts: int,
        invocation: Invocation | None,
    ) -> None:
        parked = [t for t in (config.on_failure_destination, config.dead_letter_target) if t]
        log.error(
            "asynchronous invocation of %s failed %d times (%s): %s",
            config.function_name,
            attempts,
            condition,
            f"sent to {', '.join(parked)}" if parked else "discarded (no destination or DLQ)",
        )
        if config.on_failure_destination:
            record = self._record(event, condition, attempts, invocation)
            self._send_record(config.on_failure_destination, record, success=False)
        if config.dead_letter_target:
            self._send_to_dead_letter_queue(config.dead_letter_target, event, invocation)

    def _record(
        self, event: _Event, condition: str, attempts: int, invocation: Invocation | None
    ) -> dict[str, Any]:
        arn = _qualified_arn(event.function, self._region, self._account_id)
        return _invocation_record(
            event, function_arn=arn, condition=condition, attempts=attempts, invocation=invocation
        )

    def _send_record(self, target: str, record: dict[str, Any], *, success: bool) -> None:
        body = json.dumps(record)
        service = target.split(":")[2] if target.startswith("arn:") else ""
        if service == "sqs":
            self._send_to_queue(target, body, None)
        elif service == "sns":
            self._client("sns").publish(TopicArn=target, Message=body)
        elif service == "lambda":
            self.submit(target, record, ordering_key=target)
        elif service == "events":
            outcome = "Success" if success else "Failure"
            self._client("events").put_events(
                Entries=[
                    {
                        "Source": "lambda",
                        "DetailType": f"Lambda Function Invocation Result - {outcome}",
                        "Detail": body,
                        "EventBusName": target,
                    }
                ]
            )
        else:
            log.error("destination %s is not one the local cloud can deliver to", target)

    def _send_to_dead_letter_queue(
        self, target: str, event: _Event, invocation: Invocation | None
    ) -> None:
        """The event as it was, the cause in the attributes (as Lambda sends it)."""
        error = (invocation.error or {}) if invocation is not None else {}
        message = str(error.get("errorMessage") or error.get("errorType") or "EventAgeExceeded")
        attributes = {
            "RequestID": {"DataType": "String", "StringValue": event.request_id},
            "ErrorCode": {"DataType": "Number", "StringValue": str(_INVOKE_STATUS)},
            "ErrorMessage": {"DataType": "String", "StringValue": message[:_ERROR_MESSAGE_LIMIT]},
        }
        body = json.dumps(event.payload)
        if target.split(":")[2:3] == ["sns"]:
            self._client("sns").publish(TopicArn=target, Message=body, MessageAttributes=attributes)
        else:
            self._send_to_queue(target, body, attributes)

    def _send_to_queue(self, queue_arn: str, body: str, attributes: dict[str, Any] | None) -> None:
        sqs = self._client("sqs")
        _, _, _, _, account, name = queue_arn.split(":", 5)
        url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        request: dict[str, Any] = {"QueueUrl": url, "MessageBody": body}
        if attributes:
            request["MessageAttributes"] = attributes
        sqs.send_message(**request)

    def _client(self, service: str) -> Any:
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = self._client_factory(service)
            return self._clients[service]
