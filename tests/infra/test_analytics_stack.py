"""The analytics wiring: three functions and what each may do, the stream and queue
feeding them, the Firehose archive with its own role, the pseudonym key, the Glue
catalog with partition projection, the Athena workgroup and the consumer-lag alarm.

The generic checks (DLQs and their alarms, no wildcard actions, nag, cfn-lint, one role
per function) are in test_stack.py, test_alarms.py, test_nag.py and test_cfn_lint.py;
these are the analytics' own.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import Validations

from functions.core.tables import ANALYTICS, CAMPAIGNS, IDEMPOTENCY
from infra.constructs.analytics import (
    API_HANDLER,
    ATHENA_WORKGROUP_NAME,
    DOMAIN_HANDLER,
    GLUE_DATABASE_NAME,
    GLUE_TABLE_NAME,
    ROUTES,
    STREAM_HANDLER,
)
from tests.infra.conftest import Synth
from tests.infra.template_checks import (
    Resources,
    as_list,
    environment_of,
    function_of,
    granted_to,
    keyed_proxy_route,
    of_type,
    ref_id,
    routes_served_by,
    stream_mapping_of,
)

HANDLERS = (API_HANDLER, STREAM_HANDLER, DOMAIN_HANDLER)
# Every role starts with these (DomainFunction): its own log group, and X-Ray.
BASE_ACTIONS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
}
READ_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
}
WRITE_ACTIONS = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
}
QUEUE_CONSUMER_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueUrl",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
}
# What a Kinesis event source mapping reads (CDK's KinesisEventSource grant, as AWS's
# AWSLambdaKinesisExecutionRole), and what its on-failure destination takes.
STREAM_READER_ACTIONS = {
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamConsumer",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
    "kinesis:ListStreams",
    "kinesis:SubscribeToShard",
}
ON_FAILURE_ACTIONS = {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
SHARED_ENV = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "REBATES_VERSION",
    "REBATES_DETAILED_TRACING",
    "PYDANTIC_DISABLE_PLUGINS",
}


def _one(resources: Resources, type_: str, prefix: str) -> str:
    (found,) = [k for k in of_type(resources, type_) if k.startswith(prefix)]
    return found


def _arn(name: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [name, "Arn"]}


def _stream(resources: Resources) -> str:
    return _one(resources, "AWS::Kinesis::Stream", "AnalyticsEventsStream")


def _delivery_stream(resources: Resources) -> str:
    return _one(resources, "AWS::KinesisFirehose::DeliveryStream", "AnalyticsEventsArchive")


def _archive(resources: Resources) -> str:
    return _one(resources, "AWS::S3::Bucket", "AnalyticsArchive")


def _secret(resources: Resources) -> str:
    return _one(resources, "AWS::SecretsManager::Secret", "AnalyticsPseudonymKey")


def _domain_queue(resources: Resources) -> str:
    return _one(resources, "AWS::SQS::Queue", "AnalyticsDomainEventsQueue")


def _normal(granted: dict[str, list[Any]]) -> dict[str, list[str]]:
    """action -> its resources in a fixed order, for comparing."""
    return {action: sorted(map(json.dumps, resources)) for action, resources in granted.items()}


def _beyond_base(synth: Synth, handler: str) -> dict[str, list[str]]:
    """What `handler`'s role may do besides the base every role has."""
    granted = granted_to(synth.data["Resources"], handler)
    assert set(granted) >= BASE_ACTIONS
    return _normal({a: r for a, r in granted.items() if a not in BASE_ACTIONS})


def _campaigns_table() -> list[Any]:
    """The campaigns table and its index, as `grant_table` names them."""
    index = {"Fn::Join": ["", [_arn(CAMPAIGNS.logical_id), "/index/gsi1"]]}
    return [_arn(CAMPAIGNS.logical_id), index]


def _own_environment(synth: Synth, handler: str) -> dict[str, Any]:
    env = environment_of(synth.data["Resources"], handler)
    return {k: v for k, v in env.items() if k not in SHARED_ENV}


# -- functions and what each may do -----------------------------------------------------


@pytest.mark.parametrize("handler", HANDLERS)
def test_each_function_is_an_analytics_function(synth: Synth, handler: str) -> None:
    env = environment_of(synth.data["Resources"], handler)
    assert env["POWERTOOLS_SERVICE_NAME"] == "analytics"


def test_the_api_function_puts_records_and_reads_counters_and_campaigns(synth: Synth) -> None:
    resources = synth.data["Resources"]
    expected: dict[str, list[Any]] = {
        action: [_arn(ANALYTICS.logical_id), *_campaigns_table(), _arn(IDEMPOTENCY.logical_id)]
        for action in READ_ACTIONS
    }
    expected |= {action: [_arn(IDEMPOTENCY.logical_id)] for action in WRITE_ACTIONS}
    # One PutRecords per batch: not PutRecord, not ListShards, nothing else of the stream.
    expected["kinesis:PutRecords"] = [_arn(_stream(resources))]
    assert _beyond_base(synth, API_HANDLER) == _normal(expected)


def test_the_stream_consumer_counts_archives_and_reads_the_key_only(synth: Synth) -> None:
    resources = synth.data["Resources"]
    mapping = stream_mapping_of(resources, STREAM_HANDLER)
    dlq = ref_id(mapping["DestinationConfig"]["OnFailure"]["Destination"])
    assert dlq is not None
    expected: dict[str, list[Any]] = {
        action: [_arn(ANALYTICS.logical_id), *_campaigns_table()] for action in READ_ACTIONS
    }
    expected |= {action: [_arn(ANALYTICS.logical_id)] for action in WRITE_ACTIONS}
    expected |= {action: [_arn(_stream(resources))] for action in STREAM_READER_ACTIONS}
    expected |= {action: [_arn(dlq)] for action in ON_FAILURE_ACTIONS}
    expected["firehose:PutRecordBatch"] = [_arn(_delivery_stream(resources))]
    expected["secretsmanager:GetSecretValue"] = [{"Ref": _secret(resources)}]
    granted = _beyond_base(synth, STREAM_HANDLER)
    assert granted == _normal(expected)
    # It reads the stream; it never writes to it.
    assert "kinesis:PutRecords" not in granted and "kinesis:PutRecord" not in granted


def test_the_domain_consumer_reads_its_queue_and_puts_records_only(synth: Synth) -> None:
    resources = synth.data["Resources"]
    expected = {action: [_arn(_domain_queue(resources))] for action in QUEUE_CONSUMER_ACTIONS}
    expected["kinesis:PutRecords"] = [_arn(_stream(resources))]
    assert _beyond_base(synth, DOMAIN_HANDLER) == _normal(expected)


def test_the_pseudonym_key_is_read_by_the_stream_consumer_only(synth: Synth) -> None:
    resources = synth.data["Resources"]
    secret = _secret(resources)
    readers = set()
    for policy in of_type(resources, "AWS::IAM::Policy").values():
        for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"]):
            if secret in json.dumps(statement["Resource"]):
                assert as_list(statement["Action"]) == ["secretsmanager:GetSecretValue"]
                readers |= {ref_id(role) for role in policy["Properties"]["Roles"]}
    _, consumer = function_of(resources, STREAM_HANDLER)
    assert readers == {ref_id(consumer["Properties"]["Role"])}


def test_the_pseudonym_key_is_generated_long_and_its_rotation_explained(synth: Synth) -> None:
    resources = synth.data["Resources"]
    props = resources[_secret(resources)]["Properties"]
    assert props["GenerateSecretString"] == {"PasswordLength": 64, "ExcludePunctuation": True}
    assert "SecretString" not in props
    secret = synth.stack.node.find_child("Analytics").node.find_child("PseudonymKey")
    acknowledged = {
        rule: reason
        for entry in secret.node.metadata
        if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for rule, reason in entry.data.items()
    }
    ((rule, reason),) = acknowledged.items()
    assert rule.endswith("AwsSolutions-SMG4")
    assert "customer_key" in reason


def test_each_function_is_told_exactly_what_it_uses(synth: Synth) -> None:
    resources = synth.data["Resources"]
    stream_name = {"Ref": _stream(resources)}
    assert _own_environment(synth, API_HANDLER) == {
        "EVENTS_STREAM_NAME": stream_name,
        ANALYTICS.env_var: {"Ref": ANALYTICS.logical_id},
        CAMPAIGNS.env_var: {"Ref": CAMPAIGNS.logical_id},
        IDEMPOTENCY.env_var: {"Ref": IDEMPOTENCY.logical_id},
    }
    assert _own_environment(synth, STREAM_HANDLER) == {
        ANALYTICS.env_var: {"Ref": ANALYTICS.logical_id},
        CAMPAIGNS.env_var: {"Ref": CAMPAIGNS.logical_id},
        "ARCHIVE_DELIVERY_STREAM_NAME": {"Ref": _delivery_stream(resources)},
        "PSEUDONYM_KEY_SECRET_ARN": {"Ref": _secret(resources)},
    }
    assert _own_environment(synth, DOMAIN_HANDLER) == {"EVENTS_STREAM_NAME": stream_name}


# -- routes, stream and queue -----------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[m for m, _ in ROUTES])
def test_the_routes_run_the_api_function_behind_the_key(
    synth: Synth, method: str, path: str
) -> None:
    assert keyed_proxy_route(synth.data["Resources"], method, path, API_HANDLER)


def test_the_api_function_serves_its_two_routes_only(synth: Synth) -> None:
    served = routes_served_by(synth.data["Resources"], API_HANDLER)
    assert served == {"POST /v1/events", "GET /v1/campaigns/{campaignId}/stats"}


def test_the_declared_routes_are_the_ones_the_router_serves() -> None:
    # The construct declares them so synth imports no analytics code; the router is
    # the one source of truth (and of the OpenAPI document).
    from functions.analytics.handlers import api as analytics_api
    from functions.core.api import routes_of

    assert {(m, p) for m, p, _ in routes_of(analytics_api.router)} == set(ROUTES)


def test_the_stream_consumer_reads_batches_of_100_bisected_with_partial_failures(
    synth: Synth,
) -> None:
    resources = synth.data["Resources"]
    mapping = stream_mapping_of(resources, STREAM_HANDLER)
    assert ref_id(mapping["EventSourceArn"]) == _stream(resources)
    assert mapping["BatchSize"] == 100
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    dlq = ref_id(mapping["DestinationConfig"]["OnFailure"]["Destination"])
    assert resources[str(dlq)]["Type"] == "AWS::SQS::Queue"


def test_the_domain_consumer_reads_every_domain_event(synth: Synth) -> None:
    resources = synth.data["Resources"]
    queue = _domain_queue(resources)
    function, _ = function_of(resources, DOMAIN_HANDLER)
    (mapping,) = [
        m["Properties"]
        for m in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if ref_id(m["Properties"]["FunctionName"]) == function
    ]
    assert ref_id(mapping["EventSourceArn"]) == queue
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    (pattern,) = [
        rule["Properties"]["EventPattern"]
        for rule in of_type(resources, "AWS::Events::Rule").values()
        for target in rule["Properties"]["Targets"]
        if ref_id(target["Arn"]) == queue
    ]
    # Every rebates.* source, no detail-type filter: every domain event.
    assert pattern == {"source": [{"prefix": "rebates."}]}


# -- the archive ------------------------------------------------------------------------


def _destination(synth: Synth) -> dict[str, Any]:
    resources = synth.data["Resources"]
    props = resources[_delivery_stream(resources)]["Properties"]
    destination: dict[str, Any] = props["ExtendedS3DestinationConfiguration"]
    return destination


def test_the_delivery_stream_is_direct_put_and_encrypted(synth: Synth) -> None:
    resources = synth.data["Resources"]
    props = resources[_delivery_stream(resources)]["Properties"]
    assert props["DeliveryStreamType"] == "DirectPut"
    assert props["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}
    assert _destination(synth)["BucketARN"] == _arn(_archive(resources))


def test_the_delivery_stream_partitions_by_the_events_own_date(synth: Synth) -> None:
    destination = _destination(synth)
    assert destination["DynamicPartitioningConfiguration"] == {"Enabled": True}
    assert destination["Prefix"] == "events/dt=!{partitionKeyFromQuery:dt}/"
    assert destination["ErrorOutputPrefix"] == "errors/!{firehose:error-output-type}/"
    processing = destination["ProcessingConfiguration"]
    assert processing["Enabled"] is True
    # Lines come newline-terminated: no AppendDelimiterToRecord, no Lambda.
    (processor,) = processing["Processors"]
    assert processor["Type"] == "MetadataExtraction"
    parameters = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
    assert parameters == {
        "MetadataExtractionQuery": "{dt: .occurred_at[0:10]}",
        "JsonParsingEngine": "JQ-1.6",
    }


def test_the_delivery_stream_compresses_buffers_and_logs(synth: Synth) -> None:
    resources = synth.data["Resources"]
    destination = _destination(synth)
    assert destination["CompressionFormat"] == "GZIP"
    hints = destination["BufferingHints"]
    # Dynamic partitioning refuses a buffer under 64 MiB.
    assert hints["SizeInMBs"] >= 64
    assert 60 <= hints["IntervalInSeconds"] <= 900
    logging = destination["CloudWatchLoggingOptions"]
    assert logging["Enabled"] is True
    group = str(ref_id(logging["LogGroupName"]))
    assert resources[group]["Type"] == "AWS::Logs::LogGroup"
    assert resources[group]["Properties"]["RetentionInDays"] > 0
    stream = str(ref_id(logging["LogStreamName"]))
    assert resources[stream]["Properties"]["LogGroupName"] == {"Ref": group}


def test_the_delivery_role_is_firehose_s_own_and_reaches_the_archive_prefixes_only(
    synth: Synth,
) -> None:
    resources = synth.data["Resources"]
    destination = _destination(synth)
    role = str(ref_id(destination["RoleARN"]))
    trust = resources[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": {"Ref": "AWS::AccountId"}}},
            "Effect": "Allow",
            "Principal": {"Service": "firehose.amazonaws.com"},
        }
    ]
    archive = _arn(_archive(resources))

    def objects(prefix: str) -> dict[str, Any]:
        return {"Fn::Join": ["", [archive, f"/{prefix}*"]]}

    granted: dict[str, list[Any]] = {}
    for policy in of_type(resources, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"]):
                assert statement["Effect"] == "Allow" and "Condition" not in statement
                for action in as_list(statement["Action"]):
                    granted.setdefault(action, []).extend(as_list(statement["Resource"]))
    (log_stream,) = granted.pop("logs:PutLogEvents")
    assert {"Ref": str(ref_id(destination["CloudWatchLoggingOptions"]["LogStreamName"]))} in (
        log_stream["Fn::Join"][1]
    )
    expected = {
        action: [objects("events/"), objects("errors/")]
        for action in ("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload")
    }
    expected |= {
        action: [archive]
        for action in ("s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads")
    }
    assert _normal(granted) == _normal(expected)
    # The delivery stream waits for that policy (Firehose checks its access at creation).
    assert resources[_delivery_stream(resources)]["DependsOn"] == [
        _one(resources, "AWS::IAM::Policy", "AnalyticsArchiveDeliveryRoleDefaultPolicy")
    ]


# -- the SQL catalog ----------------------------------------------------------------------


def _location(synth: Synth, path: str) -> dict[str, Any]:
    archive = _archive(synth.data["Resources"])
    return {"Fn::Join": ["", ["s3://", {"Ref": archive}, path]]}


def test_the_glue_database_and_table_have_their_fixed_names(synth: Synth) -> None:
    resources = synth.data["Resources"]
    database = _one(resources, "AWS::Glue::Database", "AnalyticsDatabase")
    props = resources[database]["Properties"]
    assert props["DatabaseInput"]["Name"] == GLUE_DATABASE_NAME == "rebates_analytics"
    assert props["CatalogId"] == {"Ref": "AWS::AccountId"}
    table = resources[_one(resources, "AWS::Glue::Table", "AnalyticsEventsTable")]["Properties"]
    assert table["DatabaseName"] == {"Ref": database}
    assert table["TableInput"]["Name"] == GLUE_TABLE_NAME == "events"


def test_the_events_table_has_the_archive_columns_in_json(synth: Synth) -> None:
    from functions.analytics.records import ARCHIVE_COLUMNS

    resources = synth.data["Resources"]
    table = resources[_one(resources, "AWS::Glue::Table", "AnalyticsEventsTable")]
    storage = table["Properties"]["TableInput"]["StorageDescriptor"]
    columns = {c["Name"]: c["Type"] for c in storage["Columns"]}
    # Exactly the keys every archive line has, in the same order.
    assert list(columns) == list(ARCHIVE_COLUMNS)
    assert {name for name, type_ in columns.items() if type_ == "bigint"} == {
        "occurred_ms",
        "value_amount",
    }
    assert set(columns.values()) == {"string", "bigint"}
    assert storage["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert storage["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"
    assert storage["Location"] == _location(synth, "/events/")
    assert table["Properties"]["TableInput"]["TableType"] == "EXTERNAL_TABLE"


def test_the_events_table_projects_dt_from_the_archive_layout(synth: Synth) -> None:
    resources = synth.data["Resources"]
    table = resources[_one(resources, "AWS::Glue::Table", "AnalyticsEventsTable")]
    table_input = table["Properties"]["TableInput"]
    assert table_input["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
    parameters = table_input["Parameters"]
    assert {k: v for k, v in parameters.items() if k.startswith("projection.")} == {
        "projection.enabled": "true",
        "projection.dt.type": "date",
        "projection.dt.format": "yyyy-MM-dd",
        "projection.dt.range": "2026-01-01,NOW",
        "projection.dt.interval": "1",
        "projection.dt.interval.unit": "DAYS",
    }
    # The same layout Firehose writes: events/dt=YYYY-MM-DD/.
    assert parameters["storage.location.template"] == _location(synth, "/events/dt=${dt}/")


def test_the_workgroup_enforces_encrypted_results_and_a_scan_cutoff(synth: Synth) -> None:
    resources = synth.data["Resources"]
    workgroup = resources[_one(resources, "AWS::Athena::WorkGroup", "AnalyticsWorkGroup")]
    props = workgroup["Properties"]
    assert props["Name"] == ATHENA_WORKGROUP_NAME == "rebates-analytics"
    assert props["State"] == "ENABLED"
    configuration = props["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["BytesScannedCutoffPerQuery"] == 10 * 1024**3
    assert configuration["EngineVersion"] == {"SelectedEngineVersion": "AUTO"}
    assert configuration["PublishCloudWatchMetricsEnabled"] is True
    assert configuration["ResultConfiguration"] == {
        "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
        "OutputLocation": _location(synth, "/athena-results/"),
    }


# -- alarms ---------------------------------------------------------------------------------


def test_the_consumer_lag_pages_past_five_minutes(synth: Synth) -> None:
    resources = synth.data["Resources"]
    alarm = resources[_one(resources, "AWS::CloudWatch::Alarm", "AnalyticsConsumerLagAlarm")]
    props = alarm["Properties"]
    (expression,) = [m for m in props["Metrics"] if m.get("ReturnData", True)]
    assert expression["Expression"] == "IF(age > 300000, 1, 0)"
    (age,) = [m["MetricStat"] for m in props["Metrics"] if m["Id"] == "age"]
    function, _ = function_of(resources, STREAM_HANDLER)
    assert age["Metric"] == {
        "Namespace": "AWS/Lambda",
        "MetricName": "IteratorAge",
        "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function}}],
    }
    assert (age["Stat"], age["Period"]) == ("Maximum", 60)
    assert (props["Threshold"], props["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert props["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize("handler", (STREAM_HANDLER, DOMAIN_HANDLER))
def test_each_consumer_pages_on_its_errors(synth: Synth, handler: str) -> None:
    resources = synth.data["Resources"]
    function, _ = function_of(resources, handler)
    assert [
        a
        for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "Errors"
        and a["Properties"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    ]


def test_both_dead_letter_queues_page(synth: Synth) -> None:
    resources = synth.data["Resources"]
    stream_dlq = ref_id(
        stream_mapping_of(resources, STREAM_HANDLER)["DestinationConfig"]["OnFailure"][
            "Destination"
        ]
    )
    queue_dlq = ref_id(
        resources[_domain_queue(resources)]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
    )
    watched = {
        ref_id(a["Properties"]["Dimensions"][0]["Value"])
        for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    }
    assert {stream_dlq, queue_dlq} <= watched
