"""Logging, metrics and tracing, set up once for every handler in the container.

`instrumented` is the only decorator a handler needs. Per invocation it:

- stamps every log line with the Lambda context, the function's service and a
  correlation id (`correlation_id_for`: API Gateway's request id, the event's id for
  EventBridge, S3, queue and stream records, else the Lambda request id);
- collects the invocation's metrics and flushes them as CloudWatch EMF lines when it
  returns (or fails), through the named `record_*` functions below, so each metric's
  name, unit and dimensions are defined here once (docs/operations.md lists them);
- traces with the X-Ray SDK when detailed tracing is on.

Batch consumers wrap each record in `correlated(record)`, so a record's lines, and the
events published while handling it, carry that record's id.

Why not Powertools' own decorators. In AWS one process serves one invocation at a time,
but the local cloud runs several functions in one process on threads. Powertools'
`Logger.append_keys` (which `inject_lambda_context` and `set_correlation_id` use) writes
to the formatter's shared keys, and `Metrics` keeps one class-level metric set for every
instance: concurrent invocations would log each other's request and correlation ids and
flush each other's metrics, under the wrong service. So the invocation's log keys go
through the formatter's thread-local keys (`thread_safe_append_keys`, a ContextVar), and
its metrics into a set of its own, held in a ContextVar too.

Tracing: Lambda's active tracing (set on every function by the stack) records each
invocation in X-Ray without any SDK. The Powertools Tracer adds subsegments for every
AWS call, but the X-Ray SDK it needs builds an X-Ray client when imported, which costs
about 170 ms of every cold start. So it is opt-in per deployment:
REBATES_DETAILED_TRACING=true makes `instrumented` and `traced` use it, and only then
is the SDK imported.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.lambda_context import build_lambda_context_model
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.constants import MAX_METRICS

import functions

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

    from functions.core.money import Money

logger = Logger()

DETAILED_TRACING_ENV: Final = "REBATES_DETAILED_TRACING"
SERVICE_ENV: Final = "POWERTOOLS_SERVICE_NAME"
NAMESPACE_ENV: Final = "POWERTOOLS_METRICS_NAMESPACE"
# The stack sets POWERTOOLS_METRICS_NAMESPACE to this for every function; tests and tools
# that run a handler without it still emit under the same namespace.
METRICS_NAMESPACE: Final = "Rebates"
CORRELATION_ID_KEY: Final = "correlation_id"
SERVICE_DIMENSION: Final = "service"

HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])


def detailed_tracing_enabled() -> bool:
    return os.environ.get(DETAILED_TRACING_ENV, "false").strip().lower() == "true"


@functools.cache
def get_tracer() -> Tracer:
    """The Powertools Tracer; importing it loads the X-Ray SDK, so only on demand."""
    from aws_lambda_powertools import Tracer

    return Tracer()


# -- correlation ids ----------------------------------------------------------------------


def correlation_id_for(event: Any, context: Any = None) -> str | None:
    """The id that ties this invocation's log lines to what caused it.

    An API Gateway proxy event: its `requestContext.requestId` (API Gateway logs it too).
    An EventBridge event: `record_correlation_id` of it. A batch of one record (S3
    notifications usually are): that record's. Otherwise, and for a batch of several
    records (each gets its own through `correlated`): the Lambda request id.
    """
    if isinstance(event, Mapping):
        request_id = _text(_get(event, "requestContext", "requestId"))
        if request_id:
            return request_id
        if "detail-type" in event:
            return record_correlation_id(event) or _lambda_request_id(context)
        records = event.get("Records")
        if isinstance(records, list) and len(records) == 1:
            return record_correlation_id(records[0]) or _lambda_request_id(context)
    return _lambda_request_id(context)


def record_correlation_id(record: Any) -> str | None:
    """The correlation id one record (or EventBridge event) carries, if any.

    - an EventBridge event, or an SQS message whose body is one (a rule's queue target):
      the detail's `correlationId` when its producer stamped one, so a chain of
      consumers logs under the id of the request that started it; else the detail's
      `eventId`, else the envelope's `id`;
    - another SQS message: its `messageId`; SNS: the message's `MessageId`;
    - S3: the request id of the S3 call that caused it (`x-amz-request-id`, which S3's
      access logs and CloudTrail record too);
    - DynamoDB and Kinesis stream records: `eventID`.

    `record` is the record as Lambda delivers it, or a Powertools data class of it.
    """
    raw = getattr(record, "raw_event", record)
    if not isinstance(raw, Mapping):
        return None
    if "detail-type" in raw:
        return _envelope_correlation_id(raw)
    source = raw.get("eventSource") or raw.get("EventSource")
    read = _RECORD_IDS.get(source) if isinstance(source, str) else None
    return read(raw) if read is not None else None


def current_correlation_id() -> str | None:
    """The correlation id of what this thread is handling now (None outside a handler)."""
    return _text(logger.thread_safe_get_current_keys().get(CORRELATION_ID_KEY))


@contextmanager
def correlated(record: Any) -> Iterator[str | None]:
    """Within the block, log lines and published events carry `record`'s correlation id.

    For batch consumers, around the handling of each record; a record without an id
    keeps the invocation's. The invocation's id is back after the block.
    """
    correlation_id = record_correlation_id(record)
    previous = current_correlation_id()
    if correlation_id:
        logger.thread_safe_append_keys(**{CORRELATION_ID_KEY: correlation_id})
    try:
        yield correlation_id or previous
    finally:
        logger.thread_safe_append_keys(**{CORRELATION_ID_KEY: previous})


def _envelope_correlation_id(envelope: Mapping[str, Any]) -> str | None:
    detail = envelope.get("detail")
    if isinstance(detail, Mapping):
        for key in ("correlationId", "eventId"):
            found = _text(detail.get(key))
            if found:
                return found
    return _text(envelope.get("id"))


def _sqs_correlation_id(message: Mapping[str, Any]) -> str | None:
    envelope = _json_object(message.get("body"))
    if envelope is not None and "detail-type" in envelope:
        return _envelope_correlation_id(envelope)
    return _text(message.get("messageId"))


def _stream_record_id(record: Mapping[str, Any]) -> str | None:
    return _text(record.get("eventID"))


def _lambda_request_id(context: Any) -> str | None:
    return _text(getattr(context, "aws_request_id", None))


def _get(mapping: Mapping[str, Any], *path: str) -> Any:
    value: Any = mapping
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _json_object(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, str) or not text.startswith("{"):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


# Record `eventSource` -> the correlation id of such a record.
_RECORD_IDS: Final[dict[str, Callable[[Mapping[str, Any]], str | None]]] = {
    "aws:sqs": _sqs_correlation_id,
    "aws:sns": lambda record: _text(_get(record, "Sns", "MessageId")),
    "aws:s3": lambda record: _text(_get(record, "responseElements", "x-amz-request-id")),
    "aws:dynamodb": _stream_record_id,
    "aws:kinesis": _stream_record_id,
}


# -- metrics -------------------------------------------------------------------------------


class Metric(StrEnum):
    """Every custom metric, in the `Rebates` namespace (docs/operations.md)."""

    REDEMPTIONS = "Redemptions"
    REFUSALS = "Refusals"
    CODES_ISSUED = "CodesIssued"
    POST_PURCHASE_CODES_SKIPPED = "PostPurchaseCodesSkipped"
    OFFER_REMINDERS = "OfferReminders"
    CAMPAIGN_FILES_PUBLISHED = "CampaignFilesPublished"
    CAMPAIGN_FILES_REJECTED = "CampaignFilesRejected"
    OUTBOX_LAG = "OutboxLag"
    OUTBOX_PUBLISH_FAILURES = "OutboxPublishFailures"
    CASHBACK_CREDITS = "CashbackCredits"
    CASHBACK_CREDITED_AMOUNT = "CashbackCreditedAmount"
    CASHBACK_RELEASES = "CashbackReleases"
    CASHBACK_RELEASED_AMOUNT = "CashbackReleasedAmount"
    CASHBACK_SPENDS = "CashbackSpends"
    CASHBACK_SPENT_AMOUNT = "CashbackSpentAmount"
    CASHBACK_REVERSALS = "CashbackReversals"
    CASHBACK_REVERSED_AMOUNT = "CashbackReversedAmount"
    CASHBACK_EXPIRIES = "CashbackExpiries"
    CASHBACK_EXPIRED_AMOUNT = "CashbackExpiredAmount"
    CASHBACK_REMINDERS = "CashbackReminders"
    CASHBACK_REMINDED_AMOUNT = "CashbackRemindedAmount"
    WALLET_SWEEP_LAG = "WalletSweepLag"
    CLAIMS_SUBMITTED = "ClaimsSubmitted"
    CLAIM_OUTCOMES = "ClaimOutcomes"
    CLAIM_DECISION_SECONDS = "ClaimTimeToDecision"
    REVIEW_QUEUE_DEPTH = "ReviewQueueDepth"
    REVIEW_QUEUE_OLDEST_SECONDS = "ReviewQueueOldestAge"
    CLAIM_ERRORS = "ClaimErrors"
    NOTIFICATIONS_SENT = "NotificationsSent"
    NOTIFICATIONS_FAILED = "NotificationsFailed"
    NOTIFICATIONS_SUPPRESSED = "NotificationsSuppressed"
    SMS_SEGMENTS = "SmsSegments"
    EVENTS_ACCEPTED = "EventsAccepted"
    EVENTS_REJECTED = "EventsRejected"
    EVENTS_COUNTED = "EventsCounted"
    EVENTS_NOT_COUNTED = "EventsNotCounted"
    EVENTS_CONSUMER_LAG = "EventsConsumerLag"
    ARCHIVE_LINES_WRITTEN = "ArchiveLinesWritten"


def record_events_ingested(accepted: int, rejected_reasons: list[str]) -> None:
    """A `POST /v1/events` batch: how many went onto the stream, and each refusal's
    reason (a count per reason)."""
    if accepted:
        _record(Metric.EVENTS_ACCEPTED, MetricUnit.Count, accepted)
    for reason in sorted(set(rejected_reasons)):
        _record(
            Metric.EVENTS_REJECTED, MetricUnit.Count, rejected_reasons.count(reason), reason=reason
        )


def record_event_counted(kind: str, counted: bool, reason: str = "") -> None:
    """The stream consumer counted an event of `kind` (or did not, and why: a replay,
    no campaign, an unknown campaign)."""
    if counted:
        _record(Metric.EVENTS_COUNTED, MetricUnit.Count, 1, type=kind)
    else:
        _record(Metric.EVENTS_NOT_COUNTED, MetricUnit.Count, 1, reason=reason)


def record_consumer_lag(milliseconds: float) -> None:
    """How long after it was accepted the consumer read an event (the batch's oldest)."""
    _record(Metric.EVENTS_CONSUMER_LAG, MetricUnit.Milliseconds, milliseconds)


def record_archive_lines(count: int) -> None:
    """Archive lines handed to Firehose (each becomes part of an object under events/)."""
    _record(Metric.ARCHIVE_LINES_WRITTEN, MetricUnit.Count, count)


def record_redemption(channel: str) -> None:
    """A code was redeemed at checkout (`online` or `in_store`)."""
    _record(Metric.REDEMPTIONS, MetricUnit.Count, 1, channel=channel)


def record_refusal(route: str, reason: str) -> None:
    """A request was refused for `reason` (an error code, e.g. `usage_limit_reached`) on
    `route` (the route as declared, e.g. `POST /v1/redemptions`)."""
    _record(Metric.REFUSALS, MetricUnit.Count, 1, route=route, reason=reason)


def record_code_issued(mode: str) -> None:
    """A code was handed to a customer (`unique` or `shared` mode)."""
    _record(Metric.CODES_ISSUED, MetricUnit.Count, 1, mode=mode)


def record_post_purchase_code_skipped(reason: str) -> None:
    """A purchase would have issued its buyer a code, but the offer could not give one
    (`codes_exhausted`, `offer_archived`, `campaign_archived`, `expired`)."""
    _record(Metric.POST_PURCHASE_CODES_SKIPPED, MetricUnit.Count, 1, reason=reason)


def record_offer_reminders(count: int) -> None:
    """The reminder sweep marked `count` codes' reminders (each becomes `OfferExpiring`)."""
    _record(Metric.OFFER_REMINDERS, MetricUnit.Count, count)


def record_campaign_file_published() -> None:
    """A campaign file's report says `published`."""
    _record(Metric.CAMPAIGN_FILES_PUBLISHED, MetricUnit.Count, 1)


def record_campaign_file_rejected() -> None:
    """A campaign file's report says `rejected`."""
    _record(Metric.CAMPAIGN_FILES_REJECTED, MetricUnit.Count, 1)


def record_outbox_lag(milliseconds: float) -> None:
    """How long after its commit a change's event was published."""
    _record(Metric.OUTBOX_LAG, MetricUnit.Milliseconds, max(0.0, milliseconds))


def record_outbox_failure() -> None:
    """A stream record's event could not be published (this attempt)."""
    _record(Metric.OUTBOX_PUBLISH_FAILURES, MetricUnit.Count, 1)


def _record_movement(count: Metric, total: Metric, amounts: Mapping[str, int], n: int) -> None:
    # The count has no currency, the amount has: minor units of different currencies
    # never add up, and a deployment holds a few ISO codes (a dimension value, not an id).
    _record(count, MetricUnit.Count, n)
    for currency, amount in amounts.items():
        _record(total, MetricUnit.Count, max(0, amount), currency=currency)


def record_cashback_credited(amount: Money) -> None:
    """A lot was credited: a purchase's cashback or an approved claim's rebate."""
    _record_movement(
        Metric.CASHBACK_CREDITS,
        Metric.CASHBACK_CREDITED_AMOUNT,
        {amount.currency: amount.amount},
        1,
    )


def record_cashback_spent(amount: Money) -> None:
    """Available cashback was spent at checkout."""
    _record_movement(
        Metric.CASHBACK_SPENDS, Metric.CASHBACK_SPENT_AMOUNT, {amount.currency: amount.amount}, 1
    )


def record_cashback_reversed(amount: Money) -> None:
    """A refund took `amount` back from one lot (what it still held and what became owed)."""
    _record_movement(
        Metric.CASHBACK_REVERSALS,
        Metric.CASHBACK_REVERSED_AMOUNT,
        {amount.currency: amount.amount},
        1,
    )


def record_cashback_released(count: int, amounts: Mapping[str, int]) -> None:
    """`count` pending lots became available, `amounts` in all by currency (the sweep)."""
    _record_movement(Metric.CASHBACK_RELEASES, Metric.CASHBACK_RELEASED_AMOUNT, amounts, count)


def record_cashback_expired(count: int, amounts: Mapping[str, int]) -> None:
    """The unspent remainders of `count` lots expired, `amounts` by currency (the sweep)."""
    _record_movement(Metric.CASHBACK_EXPIRIES, Metric.CASHBACK_EXPIRED_AMOUNT, amounts, count)


def record_cashback_reminded(count: int, amounts: Mapping[str, int]) -> None:
    """`count` lots' customers were warned their cashback expires soon, `amounts` by
    currency what would expire unspent (the sweep)."""
    _record_movement(Metric.CASHBACK_REMINDERS, Metric.CASHBACK_REMINDED_AMOUNT, amounts, count)


def record_sweep_lag(seconds: float) -> None:
    """How long after its due instant the most overdue lot of a wallet sweep moved."""
    _record(Metric.WALLET_SWEEP_LAG, MetricUnit.Seconds, max(0.0, seconds))


def record_claim_submitted() -> None:
    """A claim was stored and its verification started (not counted again on a replay)."""
    _record(Metric.CLAIMS_SUBMITTED, MetricUnit.Count, 1)


def record_claim_outcome(outcome: str, reason: str) -> None:
    """A claim reached `outcome` (approved, rejected, credited), for `reason` (a rejection
    reason, ``auto`` or ``review`` for approvals, ``lot`` for credits)."""
    _record(Metric.CLAIM_OUTCOMES, MetricUnit.Count, 1, outcome=outcome, reason=reason)


def record_claim_decision_time(seconds: float, path: str) -> None:
    """From submission to approval or rejection; `path` is ``auto`` or ``review``."""
    _record(Metric.CLAIM_DECISION_SECONDS, MetricUnit.Seconds, max(0.0, seconds), path=path)


def record_review_queue(depth: int, oldest_seconds: float) -> None:
    """Claims waiting for review, and how long the oldest has waited (the review keeper)."""
    _record(Metric.REVIEW_QUEUE_DEPTH, MetricUnit.Count, depth)
    _record(Metric.REVIEW_QUEUE_OLDEST_SECONDS, MetricUnit.Seconds, max(0.0, oldest_seconds))


def record_claim_error() -> None:
    """A claim ended in ``error``: a failure no retry mended (pages an operator)."""
    # No dimension for the error: the alarm watches every claim error of the service.
    _record(Metric.CLAIM_ERRORS, MetricUnit.Count, 1)


def record_notification_sent(template: str, channel: str) -> None:
    """A message was handed to its provider (SES, SNS) for the first time."""
    _record(Metric.NOTIFICATIONS_SENT, MetricUnit.Count, 1, template=template, channel=channel)
    # And per service alone: the failure-ratio alarm divides these two series.
    _record(Metric.NOTIFICATIONS_SENT, MetricUnit.Count, 1)


def record_notification_failed(template: str, channel: str, reason: str) -> None:
    """A message was refused for good: `reason` is the provider's error code."""
    _record(Metric.NOTIFICATIONS_FAILED, MetricUnit.Count, 1)
    _record(
        Metric.NOTIFICATIONS_FAILED,
        MetricUnit.Count,
        1,
        template=template,
        channel=channel,
        reason=reason,
    )


def record_notification_suppressed(template: str, channel: str, reason: str) -> None:
    """A message was not sent on purpose: `reason` is why (`no_profile`, `no_email`,
    `no_phone`, `no_marketing_consent`, `promotion_not_allowed`)."""
    _record(
        Metric.NOTIFICATIONS_SUPPRESSED,
        MetricUnit.Count,
        1,
        template=template,
        channel=channel,
        reason=reason,
    )


def record_sms_segments(template: str, segments: int) -> None:
    """How many segments an SMS sent took (carriers bill each)."""
    _record(Metric.SMS_SEGMENTS, MetricUnit.Count, segments, template=template)


Dimensions = tuple[tuple[str, str], ...]


class InvocationMetrics:
    """The metrics of one invocation: one EMF set per combination of dimensions.

    EMF applies a blob's dimensions to every metric in it, so a metric with a
    dimension of its own (a refusal's reason) needs a blob of its own; values of the
    same metric and dimensions are aggregated into one line.
    """

    def __init__(self, namespace: str, service: str | None) -> None:
        self.namespace = namespace
        self.service = service
        self._sets: dict[Dimensions, AmazonCloudWatchEMFProvider] = {}

    def add(self, name: str, unit: MetricUnit, value: float, dimensions: Dimensions) -> None:
        emf = self._sets.get(dimensions)
        if emf is None:
            emf = self._sets[dimensions] = AmazonCloudWatchEMFProvider(
                namespace=self.namespace, service=self.service
            )
            for dimension, dimension_value in dimensions:
                emf.add_dimension(name=dimension, value=dimension_value)
        values = emf.metric_set.get(name, {}).get("Value", ())
        # Powertools prints a full set itself (with print, outside our lock): flush first.
        if len(values) + 1 >= MAX_METRICS:
            _write(emf)
        emf.add_metric(name=name, unit=unit, value=value)

    def flush(self) -> None:
        for emf in self._sets.values():
            _write(emf)
        self._sets.clear()


_current_metrics: ContextVar[InvocationMetrics | None] = ContextVar(
    "rebates_invocation_metrics", default=None
)
# One whole line per write: concurrent invocations (the local cloud) share stdout.
_stdout_lock = threading.Lock()


def _new_metrics() -> InvocationMetrics:
    # Read per invocation: in the local cloud each function has its own environment.
    return InvocationMetrics(
        namespace=os.environ.get(NAMESPACE_ENV) or METRICS_NAMESPACE,
        service=os.environ.get(SERVICE_ENV) or None,
    )


def _record(name: str, unit: MetricUnit, value: float, **dimensions: str) -> None:
    key = tuple(sorted((dimension, str(v)) for dimension, v in dimensions.items()))
    current = _current_metrics.get()
    if current is not None:
        current.add(name, unit, value, key)
        return
    # Outside an invocation (a script, a test of logic): emitted at once, never lost.
    one_off = _new_metrics()
    one_off.add(name, unit, value, key)
    one_off.flush()


def _write(emf: AmazonCloudWatchEMFProvider) -> None:
    if emf.metric_set and not is_metrics_disabled():
        line = json.dumps(emf.serialize_metric_set(), separators=(",", ":"))
        with _stdout_lock:
            sys.stdout.write(line + "\n")
    emf.metric_set.clear()


# -- the decorator --------------------------------------------------------------------------


def instrumented(handler: HandlerT) -> HandlerT:
    """Apply logging context, correlation id, metrics and (when enabled) tracing.

    The chain is assembled on the first invocation, when the environment is known.
    """
    chain: Callable[..., Any] | None = None
    cold_start = True

    @functools.wraps(handler)
    def invoke(event: Any, context: Any) -> Any:
        nonlocal chain, cold_start
        if chain is None:
            functions.end_init()
            chain = (
                get_tracer().capture_lambda_handler(handler)
                if detailed_tracing_enabled()
                else handler
            )
        first, cold_start = cold_start, False
        with _invocation(event, context, cold_start=first):
            return chain(event, context)

    return cast(HandlerT, invoke)


@contextmanager
def _invocation(event: Any, context: Any, *, cold_start: bool) -> Iterator[None]:
    """This thread's log keys and metric set for one invocation, restored afterwards.

    Restored rather than cleared, so that an invocation run inside another on one thread
    (a handler calling another handler in-process) hands the outer one its keys back.
    """
    outer_keys = dict(logger.thread_safe_get_current_keys())
    keys: dict[str, Any] = {
        **build_lambda_context_model(context).__dict__,
        "cold_start": cold_start,
        CORRELATION_ID_KEY: correlation_id_for(event, context),
    }
    service = os.environ.get(SERVICE_ENV)
    if service:
        keys["service"] = service
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(**keys)
    metrics = _new_metrics()
    token = _current_metrics.set(metrics)
    try:
        yield
    except Exception:
        # The runtime reports the error too, but without the correlation id.
        logger.exception("invocation failed")
        raise
    finally:
        _current_metrics.reset(token)
        try:
            metrics.flush()
        except Exception:
            # The work is done (or has failed on its own): a metric must not fail it.
            logger.exception("metrics not flushed")
        logger.thread_safe_clear_keys()
        logger.thread_safe_append_keys(**outer_keys)


def traced(function: HandlerT) -> HandlerT:
    """A subsegment around `function` when detailed tracing is on; otherwise nothing."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        if not detailed_tracing_enabled():
            return function(*args, **kwargs)
        with get_tracer().provider.in_subsegment(f"## {function.__qualname__}"):
            return function(*args, **kwargs)

    return cast(HandlerT, call)
