"""Lambda layers, functions, event source mappings and event invoke configs, and the
records the local runtime and pollers run them from."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any, Final

from infra.local.deploy.core import (
    DeployContext,
    function_name_of,
    of_type,
    pick,
    resource_name,
    tag_map,
)
from infra.local.deploy.records import (
    AsyncInvocationRecord,
    Deployed,
    Deployment,
    KinesisStreamMappingRecord,
    LocalFunctionRecord,
    QueueMappingRecord,
    TableStreamMappingRecord,
)
from infra.local.template import TemplateError


def deploy_layer(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    name = resource_name(context, logical_id, properties.get("LayerName"), limit=64)
    layer = context.client("lambda").publish_layer_version(
        LayerName=name,
        Content={"ZipFile": _placeholder_zip()},
        **pick(
            properties,
            "Description",
            "CompatibleRuntimes",
            "CompatibleArchitectures",
            "LicenseInfo",
        ),
    )
    arn = layer["LayerVersionArn"]
    return Deployed(arn, {"LayerVersionArn": arn})


def _placeholder_zip(source: str | None = None) -> bytes:
    """The code moto stores for a function or layer.

    The template's code lives in the CDK asset bucket, which does not exist locally;
    the local runtime imports handlers from the project tree instead. Inline code
    (`Code.ZipFile`) is kept as `index.py`, as Lambda would.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        if source is None:
            archive.writestr(
                "README.txt", "Rebates local cloud: this code runs in-process from the project.\n"
            )
        else:
            archive.writestr("index.py", source)
    return buffer.getvalue()


_FUNCTION_FIELDS: Final = (
    "Runtime",
    "Role",
    "Handler",
    "Description",
    "Timeout",
    "MemorySize",
    "Environment",
    "TracingConfig",
    "Architectures",
    "Layers",
    "DeadLetterConfig",
    "EphemeralStorage",
    "KmsKeyArn",
)


# A REST API stage URL, as CDK's `RestApi.url` and the stack's ApiUrl build it.
_STAGE_URL: Final = re.compile(
    r"https://[a-z0-9]+\.execute-api\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/[A-Za-z0-9_-]+"
    r"(?=/|$)"
)


def _local_environment(context: DeployContext, environment: dict[str, Any]) -> dict[str, Any]:
    """`Environment` with stage URLs pointing at the local API, which serves the stage's
    routes at its root (`/v1/...`)."""
    local = context.local_api_url
    variables = environment.get("Variables")
    if local is None or not variables:
        return environment
    rewritten = {
        name: _STAGE_URL.sub(local.rstrip("/"), value, count=1)
        if isinstance(value, str) and _STAGE_URL.match(value)
        else value
        for name, value in variables.items()
    }
    return {**environment, "Variables": rewritten}


def deploy_function(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # VpcConfig, LoggingConfig and SnapStart have no local effect (the runtime runs the
    # handler in-process and keeps its own logs) and are left out.
    if properties.get("PackageType") == "Image":
        raise TemplateError("container image functions cannot run in-process")
    lambda_ = context.client("lambda")
    name = resource_name(context, logical_id, properties.get("FunctionName"), limit=64)
    inline = (properties.get("Code") or {}).get("ZipFile")
    request = {
        "FunctionName": name,
        "Code": {"ZipFile": _placeholder_zip(inline)},
        **pick(properties, *_FUNCTION_FIELDS),
    }
    if "Environment" in request:
        request["Environment"] = _local_environment(context, request["Environment"])
    if "Tags" in properties:
        request["Tags"] = tag_map(properties)
    arn = lambda_.create_function(**request)["FunctionArn"]
    if "ReservedConcurrentExecutions" in properties:
        lambda_.put_function_concurrency(
            FunctionName=name,
            ReservedConcurrentExecutions=int(properties["ReservedConcurrentExecutions"]),
        )
    return Deployed(name, {"Arn": arn})


_MAPPING_FIELDS: Final = (
    "EventSourceArn",
    "BatchSize",
    "Enabled",
    "StartingPosition",
    "StartingPositionTimestamp",
    "MaximumBatchingWindowInSeconds",
    "FunctionResponseTypes",
    "BisectBatchOnFunctionError",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
    "ParallelizationFactor",
    "DestinationConfig",
    "FilterCriteria",
    "ScalingConfig",
    "TumblingWindowInSeconds",
)


def deploy_event_source_mapping(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    request = {"FunctionName": properties["FunctionName"], **pick(properties, *_MAPPING_FIELDS)}
    mapping = context.client("lambda").create_event_source_mapping(**request)
    source = str(properties["EventSourceArn"])
    if _is_queue_arn(source):
        # moto would invoke the function from inside SendMessage, one message at a time,
        # with no visibility timeout or redrive; the local poller takes the queue over
        # (Deployment.queue_mappings), so the mapping only stays for `aws lambda` to list.
        # The runtime's package (every patch of moto lives there); imported when needed.
        from infra.local.patches import detach_sqs_event_source

        detach_sqs_event_source(source, mapping["FunctionArn"])
    elif _is_table_stream_arn(source):
        # Likewise: moto would run the function inside the write (mid-transaction, before
        # it commits) and unfiltered; the local stream poller reads the stream instead.
        from infra.local.patches import detach_table_stream_source

        detach_table_stream_source(source, mapping["FunctionArn"])
    elif _is_kinesis_stream_arn(source):
        # Likewise: moto would run the function inside PutRecord(s), a record at a time,
        # before the producer has its answer; the local Kinesis poller reads the stream.
        from infra.local.patches import detach_kinesis_source

        detach_kinesis_source(source, mapping["FunctionArn"])
    uuid = str(mapping["UUID"])
    return Deployed(
        uuid, {"Id": uuid, "EventSourceMappingArn": mapping.get("EventSourceMappingArn", "")}
    )


def _is_queue_arn(arn: str) -> bool:
    return arn.startswith("arn:") and arn.split(":")[2] == "sqs"


def _is_table_stream_arn(arn: str) -> bool:
    parts = arn.split(":", 5)
    return len(parts) == 6 and parts[2] == "dynamodb" and "/stream/" in parts[5]


def _is_kinesis_stream_arn(arn: str) -> bool:
    # A stream consumer's ARN (`stream/<name>/consumer/...`, enhanced fan-out) is not one.
    parts = arn.split(":", 5)
    return len(parts) == 6 and parts[2] == "kinesis" and parts[5].count("/") == 1


def deploy_event_invoke_config(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # Retries and destinations of asynchronous invocations: moto stores them (`aws lambda
    # get-function-event-invoke-config` shows them) and the local cloud's asynchronous
    # invocations follow them (Deployment.async_invocations).
    function = str(properties["FunctionName"])
    qualifier = str(properties.get("Qualifier", "$LATEST"))
    context.client("lambda").put_function_event_invoke_config(
        FunctionName=function,
        Qualifier=qualifier,
        **pick(properties, "MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig"),
    )
    return Deployed(f"{function}|{qualifier}")


def function_records(deployment: Deployment) -> list[LocalFunctionRecord]:
    records = []
    for logical_id, deployed in of_type(deployment, "AWS::Lambda::Function"):
        properties = deployment.properties[logical_id]
        environment = (properties.get("Environment") or {}).get("Variables") or {}
        records.append(
            LocalFunctionRecord(
                logical_id=logical_id,
                name=deployed.physical_id,
                arn=deployed.attributes["Arn"],
                handler=str(properties["Handler"]),
                environment={str(k): str(v) for k, v in environment.items()},
                timeout_seconds=int(properties.get("Timeout", 3)),  # Lambda's defaults
                memory_mb=int(properties.get("MemorySize", 128)),
                inline_code="ZipFile" in (properties.get("Code") or {}),
            )
        )
    return records


def queue_mappings(deployment: Deployment) -> list[QueueMappingRecord]:
    queues = {d.attributes["Arn"]: d.physical_id for _, d in of_type(deployment, "AWS::SQS::Queue")}
    records = []
    for logical_id, deployed in of_type(deployment, "AWS::Lambda::EventSourceMapping"):
        properties = deployment.properties[logical_id]
        source = str(properties["EventSourceArn"])
        if not _is_queue_arn(source):
            continue
        records.append(
            QueueMappingRecord(
                uuid=deployed.physical_id,
                function_name=function_name_of(deployment, str(properties["FunctionName"])),
                queue_url=queues.get(source, ""),
                queue_arn=source,
                batch_size=int(properties.get("BatchSize", 10)),  # SQS's default
                report_batch_item_failures="ReportBatchItemFailures"
                in properties.get("FunctionResponseTypes", []),
                enabled=bool(properties.get("Enabled", True)),
                maximum_batching_window_seconds=int(
                    properties.get("MaximumBatchingWindowInSeconds", 0)
                ),
            )
        )
    return records


def table_stream_mappings(deployment: Deployment) -> list[TableStreamMappingRecord]:
    records = []
    for logical_id, deployed in of_type(deployment, "AWS::Lambda::EventSourceMapping"):
        properties = deployment.properties[logical_id]
        source = str(properties["EventSourceArn"])
        if not _is_table_stream_arn(source):
            continue
        records.append(
            TableStreamMappingRecord(**_stream_mapping_fields(deployment, deployed, properties))
        )
    return records


def kinesis_stream_mappings(deployment: Deployment) -> list[KinesisStreamMappingRecord]:
    records = []
    for logical_id, deployed in of_type(deployment, "AWS::Lambda::EventSourceMapping"):
        properties = deployment.properties[logical_id]
        if not _is_kinesis_stream_arn(str(properties["EventSourceArn"])):
            continue
        fields = _stream_mapping_fields(deployment, deployed, properties)
        timestamp = properties.get("StartingPositionTimestamp")
        records.append(
            KinesisStreamMappingRecord(
                **fields,
                starting_position_timestamp=float(timestamp) if timestamp is not None else None,
                invoke_identity_arn=_role_of(deployment, fields["function_name"]),
            )
        )
    return records


def _stream_mapping_fields(
    deployment: Deployment, deployed: Deployed, properties: dict[str, Any]
) -> dict[str, Any]:
    """What a table stream and a Kinesis mapping declare alike, with Lambda's defaults."""
    on_failure = ((properties.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
        "Destination"
    )
    return {
        "uuid": deployed.physical_id,
        "function_name": function_name_of(deployment, str(properties["FunctionName"])),
        "stream_arn": str(properties["EventSourceArn"]),
        "batch_size": int(properties.get("BatchSize", 100)),  # both streams' default
        "starting_position": str(properties.get("StartingPosition", "TRIM_HORIZON")),
        "filter_criteria": properties.get("FilterCriteria"),
        "report_batch_item_failures": "ReportBatchItemFailures"
        in properties.get("FunctionResponseTypes", []),
        "bisect_on_error": bool(properties.get("BisectBatchOnFunctionError", False)),
        "maximum_retry_attempts": int(properties.get("MaximumRetryAttempts", -1)),
        "on_failure_queue_arn": str(on_failure) if on_failure else None,
        "enabled": bool(properties.get("Enabled", True)),
    }


def _role_of(deployment: Deployment, function_name: str) -> str:
    """The execution role of a deployed function ("" for one the template does not make)."""
    for logical_id, deployed in of_type(deployment, "AWS::Lambda::Function"):
        if deployed.physical_id == function_name:
            return str(deployment.properties[logical_id].get("Role", ""))
    return ""


def async_invocations(deployment: Deployment) -> dict[str, AsyncInvocationRecord]:
    """Every function's asynchronous invocation settings, as its template declares them."""
    configs: dict[str, dict[str, Any]] = {}
    for logical_id, _ in of_type(deployment, "AWS::Lambda::EventInvokeConfig"):
        properties = deployment.properties[logical_id]
        if str(properties.get("Qualifier", "$LATEST")) != "$LATEST":
            continue  # versions and aliases: the local runtime runs $LATEST only
        configs[function_name_of(deployment, str(properties["FunctionName"]))] = properties
    records = {}
    for logical_id, deployed in of_type(deployment, "AWS::Lambda::Function"):
        name = deployed.physical_id
        config = configs.get(name, {})
        destinations = config.get("DestinationConfig") or {}
        dead_letter = (deployment.properties[logical_id].get("DeadLetterConfig") or {}).get(
            "TargetArn"
        )
        records[name] = AsyncInvocationRecord(
            function_name=name,
            maximum_retry_attempts=int(config.get("MaximumRetryAttempts", 2)),
            maximum_event_age_seconds=int(config.get("MaximumEventAgeInSeconds", 6 * 60 * 60)),
            on_success_destination=_destination(destinations, "OnSuccess"),
            on_failure_destination=_destination(destinations, "OnFailure"),
            dead_letter_target=str(dead_letter) if dead_letter else None,
        )
    return records


def _destination(destinations: dict[str, Any], which: str) -> str | None:
    destination = (destinations.get(which) or {}).get("Destination")
    return str(destination) if destination else None
