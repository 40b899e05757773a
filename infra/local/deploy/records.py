"""What a deployment returns: each created resource, and what the local runtime needs.

`Deployment` carries what moto does not do itself: the functions with their handlers
and environment, the SQS and table stream mappings the local pollers drive, the API
routes the local API serves and the gateway responses it answers with, the scheduled
rules it fires on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Deployed:
    """One created resource: what `Ref` gives, and the `Fn::GetAtt` attributes."""

    physical_id: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalFunctionRecord:
    """A Lambda function as the local runtime runs it: in-process, from the project tree."""

    logical_id: str
    name: str
    arn: str
    handler: str
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int
    # Inline source (`Code.ZipFile`, e.g. CDK's own custom-resource handlers): not
    # project code, so the runtime cannot import its handler from the project tree.
    inline_code: bool = False


@dataclass(frozen=True)
class AsyncInvocationRecord:
    """How Lambda handles a function's asynchronous invocations (S3 notifications): its
    EventInvokeConfig and DeadLetterConfig, with Lambda's defaults where they say nothing."""

    function_name: str
    maximum_retry_attempts: int = 2
    maximum_event_age_seconds: int = 6 * 60 * 60
    on_success_destination: str | None = None
    on_failure_destination: str | None = None
    dead_letter_target: str | None = None


@dataclass(frozen=True)
class QueueMappingRecord:
    """An SQS event source mapping, detached from moto so the local poller drives it."""

    uuid: str
    function_name: str
    queue_url: str
    queue_arn: str
    batch_size: int
    report_batch_item_failures: bool
    enabled: bool
    maximum_batching_window_seconds: int


@dataclass(frozen=True)
class TableStreamMappingRecord:
    """A DynamoDB stream event source mapping, detached from moto so the local stream
    poller drives it (after the write, with its filters)."""

    uuid: str
    function_name: str
    stream_arn: str
    batch_size: int
    starting_position: str
    filter_criteria: dict[str, Any] | None
    report_batch_item_failures: bool
    bisect_on_error: bool
    maximum_retry_attempts: int
    on_failure_queue_arn: str | None
    enabled: bool


@dataclass(frozen=True)
class KinesisStreamMappingRecord:
    """A Kinesis stream event source mapping, detached from moto so the local Kinesis
    poller drives it (after PutRecords, every shard)."""

    uuid: str
    function_name: str
    stream_arn: str
    batch_size: int
    starting_position: str
    filter_criteria: dict[str, Any] | None
    report_batch_item_failures: bool
    bisect_on_error: bool
    maximum_retry_attempts: int
    on_failure_queue_arn: str | None
    enabled: bool
    starting_position_timestamp: float | None
    # The function's execution role, which Lambda names in every record it delivers.
    invoke_identity_arn: str


@dataclass(frozen=True)
class Route:
    """An API Gateway method with a Lambda proxy integration."""

    method: str
    path: str  # e.g. "/v1/claims/{claimId}", built from the Resource tree's PathParts
    function_name: str
    api_key_required: bool
    authorization_type: str  # NONE | AWS_IAM


@dataclass(frozen=True)
class GatewayResponseRecord:
    """An API Gateway gateway response: what API Gateway itself answers for one type."""

    response_type: str  # e.g. INVALID_API_KEY, DEFAULT_4XX
    status_code: str | None  # None: the type's own status
    templates: dict[str, str]  # content type -> body template ($context variables)
    parameters: dict[str, str]  # gatewayresponse.header.<name> -> mapping expression


@dataclass(frozen=True)
class ScheduledRule:
    """An EventBridge rule with a ScheduleExpression: moto never fires it by itself."""

    name: str
    logical_id: str
    schedule_expression: str
    bus_name: str
    targets: list[dict[str, Any]]


@dataclass
class Deployment:
    """The deployed template, and what the local runtime needs to run it."""

    # Every active resource, no-ops included (they still answer Ref, e.g. log groups).
    resources: dict[str, Deployed] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    functions: dict[str, LocalFunctionRecord] = field(default_factory=dict)
    queue_mappings: list[QueueMappingRecord] = field(default_factory=list)
    table_stream_mappings: list[TableStreamMappingRecord] = field(default_factory=list)
    kinesis_stream_mappings: list[KinesisStreamMappingRecord] = field(default_factory=list)
    # Function name -> its asynchronous invocation settings (every function has some).
    async_invocations: dict[str, AsyncInvocationRecord] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    gateway_responses: dict[str, GatewayResponseRecord] = field(default_factory=dict)
    api_key_value: str | None = None
    schedules: list[ScheduledRule] = field(default_factory=list)
    state_machines: dict[str, str] = field(default_factory=dict)
    # Logical ids of the NO_OP_TYPES resources, and of those whose Condition is false
    # (-> the condition's name): every resource of the template is accounted for.
    no_ops: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    # Each deployed resource's properties with intrinsics resolved, as they were applied.
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
