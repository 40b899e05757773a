"""SQS, table stream and Kinesis event source mappings are delivered by the local pollers.

moto delivers an SQS mapping at SendMessage, synchronously, with ApproximateReceiveCount
"1", fixed timestamps, no message attributes, no partial batch responses and a failed
batch made visible again at once: no real retries or redrive. It invokes a table stream
mapping from inside every write, in the middle of a transaction, before it is known to
commit, with the gate released, ignoring FilterCriteria. It invokes a Kinesis mapping
from inside PutRecord(s), once per record, before the producer has its answer, ignoring
BatchSize, failures and the on-failure destination. The deployer detaches all three
(`detach_sqs_event_source`, `detach_table_stream_source`, `detach_kinesis_source`): the
mappings stay listed in moto's Lambda backend, and `pollers.SqsPoller`,
`stream_pollers.TableStreamPoller` and `stream_pollers.KinesisStreamPoller` deliver
instead.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Final

from infra.local.patches.registry import Checks, Patch, active_runtime

_SQS: Final = "moto.sqs.models"
_DYNAMODB_TABLE: Final = "moto.dynamodb.models.table"
_KINESIS: Final = "moto.kinesis.models"
_LAMBDA: Final = "moto.awslambda.models"


def detach_sqs_event_source(queue_arn: str, function_arn: str) -> None:
    """Stop moto delivering `queue_arn` to `function_arn`; the mapping stays listed.

    moto delivers at SendMessage, synchronously, with ApproximateReceiveCount "1",
    fixed timestamps, no message attributes, no partial batch responses and a failed
    batch made visible again at once (Queue.add_message): no real retries or redrive.
    The mapping itself stays in moto's Lambda backend (list-event-source-mappings shows
    it); `pollers.SqsPoller` delivers instead.
    """
    from moto.sqs.models import sqs_backends

    parts = queue_arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {queue_arn!r}")
    region, account, name = parts[3], parts[4], parts[5]
    runtime = active_runtime()
    with runtime.gate.held() if runtime is not None else nullcontext():
        queue = sqs_backends[account][region].queues.get(name)
        if queue is None:
            raise LookupError(f"moto has no queue {queue_arn}")
        mappings: dict[str, Any] = queue.lambda_event_source_mappings
        if mappings.pop(function_arn, None) is None:
            raise LookupError(
                f"moto has no event source mapping from {queue_arn} to {function_arn} "
                f"(mapped functions: {sorted(mappings) or 'none'})"
            )


def detach_table_stream_source(stream_arn: str, function_arn: str) -> None:
    """Stop moto delivering the table stream `stream_arn` to `function_arn`.

    moto invokes the function from inside every write (`StreamShard.add`), for the
    whole shard so far, ignoring FilterCriteria. The mapping stays listed in moto's
    Lambda backend; `stream_pollers.TableStreamPoller` delivers instead.
    """
    from moto.dynamodb.models import dynamodb_backends

    parts = stream_arn.split(":", 5)
    resource = parts[5].split("/") if len(parts) == 6 else []
    if parts[2:3] != ["dynamodb"] or len(resource) != 4 or resource[2] != "stream":
        raise ValueError(f"not a DynamoDB stream ARN: {stream_arn!r}")
    region, account, table_name = parts[3], parts[4], resource[1]
    runtime = active_runtime()
    with runtime.gate.held() if runtime is not None else nullcontext():
        table = dynamodb_backends[account][region].get_table(table_name)
        mappings: dict[str, Any] = table.lambda_event_source_mappings
        if mappings.pop(function_arn, None) is None:
            raise LookupError(
                f"moto has no event source mapping from {stream_arn} to {function_arn} "
                f"(mapped functions: {sorted(mappings) or 'none'})"
            )


def detach_kinesis_source(stream_arn: str, function_arn: str) -> None:
    """Stop moto delivering the Kinesis stream `stream_arn` to `function_arn`.

    moto invokes the function from inside every PutRecord and PutRecords
    (`Stream.put_record`), one record per invocation, before the producer has its
    answer, and drops what fails. The mapping stays listed in moto's Lambda backend;
    `stream_pollers.KinesisStreamPoller` delivers instead.
    """
    from moto.kinesis.models import kinesis_backends

    parts = stream_arn.split(":", 5)
    resource = parts[5].split("/") if len(parts) == 6 else []
    if parts[2:3] != ["kinesis"] or len(resource) != 2 or resource[0] != "stream":
        raise ValueError(f"not a Kinesis stream ARN: {stream_arn!r}")
    region, account = parts[3], parts[4]
    runtime = active_runtime()
    with runtime.gate.held() if runtime is not None else nullcontext():
        stream = next(
            (s for s in kinesis_backends[account][region].streams.values() if s.arn == stream_arn),
            None,
        )
        if stream is None:
            raise LookupError(f"moto has no stream {stream_arn}")
        # moto keys a stream's mappings by the stream's ARN (so a second function's
        # mapping replaces the first's there): find this function's by its value.
        mappings: dict[str, Any] = stream.lambda_event_source_mappings
        keys = [key for key, esm in mappings.items() if esm.function_arn == function_arn]
        if not keys:
            mapped = sorted(esm.function_arn for esm in mappings.values())
            raise LookupError(
                f"moto has no event source mapping from {stream_arn} to {function_arn} "
                f"(mapped functions: {mapped or 'none'})"
            )
        for key in keys:
            del mappings[key]


PATCH: Final = Patch(
    name="event_source_mappings",
    checks=Checks(
        sources=[
            (
                _SQS,
                "Queue",
                "__init__",
                ("self.lambda_event_source_mappings",),
                "detach_sqs_event_source",
            ),
            (
                _SQS,
                "Queue",
                "add_message",
                ("self.lambda_event_source_mappings.items()",),
                "detach_sqs_event_source stops moto's delivery at SendMessage",
            ),
            (
                _SQS,
                "SQSBackend",
                "receive_message",
                (
                    'queue.redrive_policy["maxReceiveCount"]',
                    "dead_letter_queue.add_message(",
                ),
                "the local poller's receives move poison messages to the DLQ",
            ),
            (
                _DYNAMODB_TABLE,
                "Table",
                "__init__",
                ("self.lambda_event_source_mappings",),
                "detach_table_stream_source",
            ),
            (
                _DYNAMODB_TABLE,
                "StreamShard",
                "add",
                ("self.table.lambda_event_source_mappings.items()",),
                "detach_table_stream_source stops moto's delivery inside the write",
            ),
            (
                _KINESIS,
                "Stream",
                "__init__",
                ("self.lambda_event_source_mappings", "self.arn"),
                "detach_kinesis_source",
            ),
            (
                _KINESIS,
                "KinesisBackend",
                "__init__",
                ("self.streams",),
                "detach_kinesis_source looks the stream up among the backend's",
            ),
            (
                _KINESIS,
                "Stream",
                "put_record",
                ("self.lambda_event_source_mappings.items()",),
                "detach_kinesis_source stops moto's delivery inside PutRecord",
            ),
            (
                _KINESIS,
                "KinesisBackend",
                "put_records",
                ("stream.put_record(",),
                "detach_kinesis_source stops moto's delivery inside PutRecords too",
            ),
            (
                _LAMBDA,
                "LambdaBackend",
                "create_event_source_mapping",
                ("stream.lambda_event_source_mappings[",),
                "detach_kinesis_source finds a Kinesis mapping on its stream",
            ),
            (
                _LAMBDA,
                "EventSourceMapping",
                "__init__",
                ("self.function_arn",),
                "detach_kinesis_source tells a stream's mappings apart by function",
            ),
        ],
        attributes=[
            (_SQS, "", "sqs_backends"),
            ("moto.dynamodb.models", "", "dynamodb_backends"),
            (_KINESIS, "", "kinesis_backends"),
        ],
    ),
)


def verify() -> None:
    """Raise `PatchError` naming what moved if moto no longer fits this patch."""
    PATCH.verify()
