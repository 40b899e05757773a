"""Shared platform: event bus, key, code and dependency layer, tables, and the function factory.

Domain constructs never call `lambda_.Function` themselves: they make a `DomainFunction`,
which carries every decision a Rebates function shares (runtime, architecture, layer,
own role, own log group, tracing, Powertools settings, DLQ when invoked asynchronously),
and they grant it access through the typed helpers here, which also set the
environment variable the function's settings model reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct, Node

from functions.core.observability import METRICS_NAMESPACE, SERVICE_DIMENSION, Metric
from functions.core.tables import CAMPAIGNS, IDEMPOTENCY, TableSpec
from infra.constructs.alarms import ERROR_PERIOD, Operators
from infra.constructs.resources import (
    QueueWithDlq,
    acknowledge,
    dead_letter_queue,
    expire_after,
    ignore_redundant_depends_on,
    secure_bucket,
    table_from_spec,
)

EVENT_BUS_NAME = "rebates"  # DESIGN: the public contract names the bus
EVENT_SOURCE_PREFIX = "rebates."  # DESIGN: sources are rebates.<domain>
# The layer's compiled wheels (pydantic_core, wrapt) are built for exactly this pair
# (infra/build.py): change them together.
RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64
LOG_RETENTION = logs.RetentionDays.ONE_MONTH
# API handlers answer in well under a second; 10 s leaves room for a cold start.
DEFAULT_TIMEOUT = Duration.seconds(10)

# What the code calls: items by key, queries, and transaction condition checks. No
# Scan (every access pattern is a key or index query) and no DescribeTable (PynamoDB 6
# builds its table metadata from the model, not from the service).
_DYNAMODB_READ = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
)
_DYNAMODB_WRITE = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
)
# What a stream event source mapping calls on the stream it reads. Not ListStreams: it
# has no resource-level permission (so CDK's `grant_stream_read` puts it on "*"), and a
# mapping is given its stream's ARN, so it never lists streams.
_DYNAMODB_STREAM_READ = (
    "dynamodb:DescribeStream",
    "dynamodb:GetShardIterator",
    "dynamodb:GetRecords",
)


def _flag(value: Any) -> bool:
    """A boolean context value: `cdk -c key=false` passes strings, cdk.json passes JSON."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


@dataclass(frozen=True)
class DeploySettings:
    """What differs between deployments, read from CDK context (cdk.json or `-c`)."""

    version: str
    sender_email: str
    deletion_protection: bool
    # X-Ray subsegments for every AWS call, at ~170 ms per cold start (see
    # functions/core/observability.py); invocation-level tracing is always on.
    detailed_tracing: bool = False
    # How long a purchase's thank-you waits (notifications), so the code issued after
    # the purchase is usually known by then.
    thank_you_delay_seconds: int = 60
    # Where the marketers' alerts (a rejected campaign file) are mailed; None: nobody
    # is subscribed at deploy time (subscribe to the topic later).
    marketers_email: str | None = None

    @classmethod
    def from_context(cls, node: Node, *, version: str) -> DeploySettings:
        protection = node.try_get_context("deletionProtection")
        thank_you_delay = node.try_get_context("thankYouDelaySeconds")
        return cls(
            version=version,
            sender_email=str(node.try_get_context("senderEmail") or "rewards@example.com"),
            # Off only when asked (cdk.json does, for the local cloud and dev stacks):
            # a deployment that forgets the flag keeps its tables.
            deletion_protection=True if protection is None else _flag(protection),
            detailed_tracing=_flag(node.try_get_context("detailedTracing") or False),
            thank_you_delay_seconds=60 if thank_you_delay is None else int(thank_you_delay),
            marketers_email=str(node.try_get_context("marketersEmail") or "") or None,
        )


@dataclass(frozen=True)
class TableOutbox:
    """A domain's outbox: the function publishing its table's committed changes as events,
    the DLQ its stream mapping parks records in, and the alarm on its publish failures."""

    function: DomainFunction
    dlq: sqs.Queue
    failures_alarm: cloudwatch.Alarm


class Platform(Construct):
    """Resources every domain shares, plus the registry of tables built from specs."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: DeploySettings,
        code_dir: Path,
        layer_dir: Path,
    ) -> None:
        super().__init__(scope, id)
        self.settings = settings
        self.bus = events.EventBus(self, "Bus", event_bus_name=EVENT_BUS_NAME)
        # Customer-managed key for SNS topics: unlike aws/sns, its policy can later let
        # EventBridge or CloudWatch publish; rotation is yearly.
        self.key = kms.Key(
            self,
            "Key",
            description="Rebates: encrypts SNS topics",
            enable_key_rotation=True,
        )
        # Every alarm of the stack notifies this topic (infra/constructs/alarms.py).
        self.operators = Operators(self, "Operators", key=self.key)
        self.code = lambda_.Code.from_asset(str(code_dir))
        self.layer = lambda_.LayerVersion(
            self,
            "Dependencies",
            code=lambda_.Code.from_asset(str(layer_dir)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="Rebates dependencies (Powertools, PynamoDB, pydantic); boto3: runtime's",
        )
        self.access_logs = secure_bucket(
            self,
            "AccessLogs",
            access_logs=None,
            lifecycle_rules=[expire_after(days=365)],
        )
        self._tables: dict[str, dynamodb.Table] = {}
        self.idempotency_table = self.add_table(self, IDEMPOTENCY)

    # Tables -------------------------------------------------------------------------

    def add_table(self, scope: Construct, spec: TableSpec) -> dynamodb.Table:
        """Create `spec`'s table inside the owning domain's construct and register it."""
        if spec.logical_id in self._tables:
            raise ValueError(f"{spec.logical_id} is already created")
        table = table_from_spec(scope, spec, deletion_protection=self.settings.deletion_protection)
        self._tables[spec.logical_id] = table
        return table

    def table(self, spec: TableSpec) -> dynamodb.Table:
        try:
            return self._tables[spec.logical_id]
        except KeyError:
            raise ValueError(
                f"{spec.logical_id} is not created yet: build its domain first"
            ) from None

    def grant_table(self, fn: DomainFunction, spec: TableSpec, *, read_only: bool = False) -> None:
        """Let `fn` use `spec`'s table and tell it the table's name (`spec.env_var`).

        The statement names the table and each of its indexes by ARN, so no
        `index/*` wildcard is needed.
        """
        table = self.table(spec)
        actions = _DYNAMODB_READ if read_only else (*_DYNAMODB_READ, *_DYNAMODB_WRITE)
        indexes = [f"{table.table_arn}/index/{index.name}" for index in spec.indexes]
        fn.function.add_to_role_policy(
            iam.PolicyStatement(actions=list(actions), resources=[table.table_arn, *indexes])
        )
        fn.function.add_environment(spec.env_var, table.table_name)

    # Events -------------------------------------------------------------------------

    def grant_budget(self, fn: DomainFunction) -> None:
        """Let `fn` update campaign items: the budget counters `functions.campaigns.budget`
        reserves and gives back, inside the spender's own transactions. Never a put or a
        delete; reads come with `grant_table(..., read_only=True)`."""
        fn.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"], resources=[self.table(CAMPAIGNS).table_arn]
            )
        )

    def event_queue(
        self,
        scope: Construct,
        id: str,
        *,
        description: str,
        detail_types: Sequence[str] = (),
        delivery_delay: Duration | None = None,
    ) -> QueueWithDlq:
        """A consumer queue (with DLQ) fed by a rule on the bus (DESIGN "Events").

        The rule matches every `rebates.*` source, narrowed to `detail_types` when given;
        `delivery_delay` holds each event back that long before its consumer sees it.
        """
        consumer = QueueWithDlq(scope, id, operators=self.operators, delivery_delay=delivery_delay)
        events.Rule(
            consumer,
            "Rule",
            description=description,
            event_bus=self.bus,
            event_pattern=events.EventPattern(
                source=events.Match.prefix(EVENT_SOURCE_PREFIX),
                detail_type=list(detail_types) or None,
            ),
            targets=[targets.SqsQueue(consumer.queue)],
        )
        return consumer

    def grant_put_events(self, fn: DomainFunction) -> None:
        """Let `fn` publish to the bus and tell it the bus name (EVENT_BUS_NAME)."""
        self.bus.grant_put_events_to(fn.function)
        fn.function.add_environment("EVENT_BUS_NAME", self.bus.event_bus_name)

    def add_outbox(
        self,
        scope: Construct,
        *,
        domain: str,
        handler: str,
        description: str,
        table: dynamodb.ITable,
        filters: Sequence[Mapping[str, Any]],
        publishes: str,
    ) -> TableOutbox:
        """The function ``Outbox`` in `scope` that reads `table`'s stream, filtered to
        `filters` (the domain's ``STREAM_FILTERS``), and publishes to the bus; it may not
        touch the table's items, and records that keep failing wait in its stream DLQ.

        Besides the alarms every consumer has (its errors, its DLQ), it pages on its own
        `OutboxPublishFailures` metric: a record that fails does not fail the invocation
        (the batch reports it), so Lambda's Errors metric would not show it until every
        record fails. `publishes` names what it failed to publish in that alarm ("a
        change's event").
        """
        outbox = DomainFunction(
            scope,
            "Outbox",
            platform=self,
            domain=domain,
            handler=handler,
            description=description,
        )
        dlq = outbox.consume_table_stream(table, filters=filters)
        self.grant_put_events(outbox)
        failures_alarm = self.operators.alarm_above_zero(
            outbox,
            "PublishFailuresAlarm",
            metric=cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=Metric.OUTBOX_PUBLISH_FAILURES.value,
                dimensions_map={SERVICE_DIMENSION: domain},
                statistic=cloudwatch.Stats.SUM,
                period=ERROR_PERIOD,
            ),
            description=f"The {domain} outbox could not publish {publishes} (EventBridge "
            "refused it, or the item could not be read); Lambda retries the record, then "
            "parks it in the outbox's DLQ. Read the error in the outbox's log.",
        )
        return TableOutbox(outbox, dlq, failures_alarm)


class DomainFunction(Construct):
    """One Rebates Lambda function, made the one way every function is made.

    - Python 3.12 on arm64, the shared code asset and dependency layer;
    - its own role: only the log-writing and tracing statements to start with, then
      exactly what the domain grants through `Platform.grant_*` and the helpers below;
    - its own log group with a retention, so logs neither vanish nor live forever;
    - X-Ray active tracing and the Powertools service name / metrics namespace;
    - `async_invocation=True` (EventBridge rule, S3 or SNS trigger): Lambda retries
      twice, then parks the event in a DLQ instead of dropping it.

    Event sources go through `consume_queue` / `consume_stream` / `consume_table_stream`,
    which set partial batch failures and a DLQ, so a poison message is parked, not lost.

    An event-driven function (asynchronously invoked, or consuming a queue or stream)
    pages the operators when an invocation fails, and each of its DLQs when a message
    arrives there (infra/constructs/alarms.py); an API function's failures show as the
    API's 5xx alarm instead.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        platform: Platform,
        domain: str,
        handler: str,
        description: str,
        memory_size: int = 512,
        timeout: Duration = DEFAULT_TIMEOUT,
        async_invocation: bool = False,
    ) -> None:
        super().__init__(scope, id)
        self.timeout = timeout
        self.domain = domain
        self.description = description
        self._operators = platform.operators
        self.errors_alarm: cloudwatch.Alarm | None = None
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Rebates {domain}: {description}",
        )
        self.log_group = logs.LogGroup(self, "Logs", retention=LOG_RETENTION)
        # Instead of AWSLambdaBasicExecutionRole (logs:* on every log group): write
        # access to this function's own, pre-created, log group only.
        self.log_group.grant_write(self.role)
        self.dead_letter_queue = (
            dead_letter_queue(
                self,
                "Dlq",
                operators=self._operators,
                parks=f"events the {domain} function ({description}) failed on three times",
            )
            if async_invocation
            else None
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"Rebates {domain}: {description}",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=platform.code,
            handler=handler,
            layers=[platform.layer],
            memory_size=memory_size,
            timeout=timeout,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=2 if async_invocation else None,
            environment={
                "POWERTOOLS_SERVICE_NAME": domain,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "REBATES_VERSION": platform.settings.version,
                "REBATES_DETAILED_TRACING": str(platform.settings.detailed_tracing).lower(),
                # No pydantic plugins are installed: without this, building the first
                # model scans every installed distribution's entry points for one, at
                # each cold start.
                "PYDANTIC_DISABLE_PLUGINS": "__all__",
            },
        )
        ignore_redundant_depends_on(self.function)
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "Pinned to python3.12: the dependency layer's compiled wheels (pydantic_core, "
            "wrapt) are built for cp312 aarch64 by infra/build.py; upgrade both together.",
        )
        acknowledge(
            self.role.node.find_child("DefaultPolicy"),
            "AwsSolutions-IAM5[Resource::*]",
            "xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing) do not "
            "support resource-level permissions; data-service statements name their ARNs.",
        )
        if async_invocation:
            self._watch_errors()

    def _watch_errors(self) -> None:
        """Page on any failed invocation; once per function, whatever feeds it."""
        if self.errors_alarm is not None:
            return
        self.errors_alarm = self._operators.alarm_above_zero(
            self,
            "ErrorsAlarm",
            metric=self.function.metric_errors(period=ERROR_PERIOD, statistic=cloudwatch.Stats.SUM),
            description=f"The {self.domain} function ({self.description}) failed an "
            "invocation; Lambda retries it, then parks the event in its DLQ. Read the "
            "error in its log.",
        )

    def consume_queue(
        self,
        source: QueueWithDlq,
        *,
        batch_size: int = 10,
        max_batching_window: Duration | None = None,
    ) -> None:
        """Process `source.queue` with partial batch failures; its DLQ catches poison messages."""
        if source.visibility_timeout.to_seconds() < self.timeout.to_seconds():
            raise ValueError(
                f"{source.node.path}: visibility timeout is shorter than the function's"
            )
        self.function.add_event_source(
            sources.SqsEventSource(
                source.queue,
                batch_size=batch_size,
                max_batching_window=max_batching_window,
                report_batch_item_failures=True,
            )
        )
        self._watch_errors()

    def consume_stream(
        self,
        stream: kinesis.IStream,
        *,
        batch_size: int = 100,
        retry_attempts: int = 5,
    ) -> sqs.Queue:
        """Process a Kinesis stream; records that keep failing go to a DLQ (returned)."""
        dlq = self._on_failure_queue("StreamDlq", "a Kinesis")
        self.function.add_event_source(
            sources.KinesisEventSource(
                stream,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=batch_size,
                bisect_batch_on_error=True,
                report_batch_item_failures=True,
                retry_attempts=retry_attempts,
                max_record_age=Duration.days(1),
                on_failure=sources.SqsDlq(dlq),
            )
        )
        self._watch_errors()
        return dlq

    def _on_failure_queue(self, id: str, source: str) -> sqs.Queue:
        dlq = dead_letter_queue(
            self,
            id,
            operators=self._operators,
            parks=f"records from {source} event source mapping that the {self.domain} "
            f"function ({self.description}) kept failing on",
        )
        acknowledge(
            dlq,
            "AwsSolutions-SQS3",
            f"This queue is itself a DLQ: the on-failure destination of {source} event "
            "source mapping.",
        )
        return dlq

    def consume_table_stream(
        self,
        table: dynamodb.ITable,
        *,
        filters: Sequence[Mapping[str, Any]] = (),
        batch_size: int = 100,
        retry_attempts: int = 5,
    ) -> sqs.Queue:
        """Process `table`'s DynamoDB stream; records that keep failing go to a DLQ (returned).

        `filters` are Lambda event filter patterns (OR'ed): only matching records invoke
        the function, and the others cost nothing. The mapping is made directly rather
        than through `DynamoEventSource`, whose grant adds ``dynamodb:ListStreams`` on
        every resource; the role may read this table's stream and no other.
        """
        stream_arn = table.table_stream_arn
        if stream_arn is None:
            raise ValueError(f"{table.node.path} has no stream (TableSpec.stream)")
        dlq = self._on_failure_queue("TableStreamDlq", "a DynamoDB stream")
        self.function.add_event_source_mapping(
            "TableStream",
            event_source_arn=stream_arn,
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
            batch_size=batch_size,
            bisect_batch_on_error=True,
            report_batch_item_failures=True,
            retry_attempts=retry_attempts,
            max_record_age=Duration.days(1),
            on_failure=sources.SqsDlq(dlq),
            filters=[lambda_.FilterCriteria.filter(dict(pattern)) for pattern in filters],
        )
        table.grant_stream(self.function, *_DYNAMODB_STREAM_READ)
        self._watch_errors()
        return dlq
