"""The synthesized Rebates template: resources, outputs, functions and permissions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.core import api
from functions.core.tables import ALL_TABLES, TableSpec
from infra.app import cdk_context
from infra.build import project_version
from infra.constructs.claims import DEFINITION
from tests.infra.conftest import Synth
from tests.infra.template_checks import (
    as_list,
    dead_letter_queues,
    denies_insecure_transport,
    event_driven_functions_without_dlq,
    identity_statements,
    method_paths,
    ref_id,
)
from tests.support.contract import STACK_OUTPUTS

# DESIGN "Local cloud": the outputs every environment publishes (AwsEndpoint, Region and
# ApiKey are the local cloud's own additions).

# DESIGN: every route needs the API key (or IAM, for operators) except these.
# The one list of keyless routes, shared with the OpenAPI document.
PUBLIC_ROUTES = {f"{method} {path}" for method, path in api.PUBLIC_ROUTES}
# Services whose actions have resource ARNs: a statement on "*" would reach every
# table, bucket, queue... in the account.
DATA_SERVICES = frozenset(
    {"dynamodb", "s3", "sqs", "kinesis", "sns", "events", "kms", "states", "lambda", "firehose"}
)
# action -> why it cannot name a resource. Keep it short, every entry justified.
ALLOWED_ON_ANY_RESOURCE: dict[str, str] = {
    "states:SendTaskSuccess": "names a task token; Step Functions has no resource for it",
    "states:SendTaskHeartbeat": "names a task token; Step Functions has no resource for it",
    "sns:Publish": "an SMS names a phone number, which has no ARN (notifications' messages)",
}
# Functions CDK adds on its own (not DomainFunctions), by logical id prefix -> why.
CDK_PROVIDED_FUNCTIONS = {
    "BucketNotificationsHandler": "CDK's singleton that configures S3 bucket notifications",
}


def _key_schema(partition_key: str, sort_key: str | None) -> list[dict[str, str]]:
    keys = [{"AttributeName": partition_key, "KeyType": "HASH"}]
    if sort_key is not None:
        keys.append({"AttributeName": sort_key, "KeyType": "RANGE"})
    return keys


@pytest.mark.parametrize("spec", ALL_TABLES, ids=lambda spec: spec.logical_id)
def test_each_table_is_created_from_its_spec(synth: Synth, spec: TableSpec) -> None:
    table = synth.data["Resources"][spec.logical_id]
    props = table["Properties"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert props["KeySchema"] == _key_schema(spec.partition_key, spec.sort_key)
    indexes = {index["IndexName"]: index for index in props.get("GlobalSecondaryIndexes", [])}
    assert set(indexes) == {index.name for index in spec.indexes}
    for index in spec.indexes:
        assert indexes[index.name]["KeySchema"] == _key_schema(index.partition_key, index.sort_key)
        assert indexes[index.name]["Projection"] == {"ProjectionType": "ALL"}
    if spec.ttl_attribute:
        assert props["TimeToLiveSpecification"] == {
            "AttributeName": spec.ttl_attribute,
            "Enabled": True,
        }
    else:
        assert "TimeToLiveSpecification" not in props
    assert ("StreamSpecification" in props) == spec.stream
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    protected = bool(cdk_context().get("deletionProtection", True))
    assert props["DeletionProtectionEnabled"] is protected


def test_only_spec_tables_exist(synth: Synth) -> None:
    assert set(synth.resources("AWS::DynamoDB::Table")) == {s.logical_id for s in ALL_TABLES}


def test_buckets_are_private_encrypted_and_tls_only(synth: Synth) -> None:
    buckets = synth.resources("AWS::S3::Bucket")
    assert len(buckets) == 4  # campaigns, receipts, archive, access logs
    policies = {
        ref_id(p["Properties"]["Bucket"]): p["Properties"]["PolicyDocument"]
        for p in synth.resources("AWS::S3::BucketPolicy").values()
    }
    logged = 0
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        assert set(props["PublicAccessBlockConfiguration"].values()) == {True}, logical_id
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"], logical_id
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}, logical_id
        assert denies_insecure_transport(policies[logical_id]), logical_id
        logged += "LoggingConfiguration" in props
    assert logged == len(buckets) - 1  # all but the access-log bucket itself


def test_archive_bucket_has_a_lifecycle(synth: Synth) -> None:
    archive = synth.data["Resources"][ref_id(synth.data["Outputs"]["ArchiveBucketName"]["Value"])]
    rule_ids = {rule["Id"] for rule in archive["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert "tiering" in rule_ids


def test_event_bus_is_named_rebates(synth: Synth) -> None:
    synth.template.has_resource_properties("AWS::Events::EventBus", {"Name": "rebates"})


def test_events_stream_is_encrypted(synth: Synth) -> None:
    (stream,) = synth.resources("AWS::Kinesis::Stream").values()
    assert stream["Properties"]["StreamEncryption"]["EncryptionType"] == "KMS"


def test_every_queue_is_encrypted_tls_only_and_has_or_is_a_dlq(synth: Synth) -> None:
    queues = synth.resources("AWS::SQS::Queue")
    resources = synth.data["Resources"]
    policies: dict[str, dict[str, Any]] = {}
    for policy in synth.resources("AWS::SQS::QueuePolicy").values():
        for queue in policy["Properties"]["Queues"]:
            policies[str(ref_id(queue))] = policy["Properties"]["PolicyDocument"]
    dlqs = dead_letter_queues(resources)
    assert queues
    for logical_id, queue in queues.items():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") or props.get("KmsMasterKeyId"), logical_id
        assert denies_insecure_transport(policies[logical_id]), logical_id
        if "RedrivePolicy" in props:
            assert props["RedrivePolicy"]["maxReceiveCount"] == 5, logical_id
            assert ref_id(props["RedrivePolicy"]["deadLetterTargetArn"]) in resources
        else:
            assert logical_id in dlqs, f"{logical_id} has no DLQ and is no DLQ"


def test_marketers_topic_is_encrypted_and_tls_only(synth: Synth) -> None:
    topics = synth.resources("AWS::SNS::Topic")
    policies = {
        str(ref_id(topic)): p["Properties"]["PolicyDocument"]
        for p in synth.resources("AWS::SNS::TopicPolicy").values()
        for topic in p["Properties"]["Topics"]
    }
    assert topics
    for logical_id, topic in topics.items():
        assert topic["Properties"].get("KmsMasterKeyId"), logical_id
        assert denies_insecure_transport(policies[logical_id]), logical_id


def test_api_has_a_throttled_usage_plan_and_a_key(synth: Synth) -> None:
    (plan,) = synth.resources("AWS::ApiGateway::UsagePlan").values()
    throttle = plan["Properties"]["Throttle"]
    assert throttle["RateLimit"] > 0 and throttle["BurstLimit"] > 0
    assert synth.resources("AWS::ApiGateway::ApiKey")
    assert synth.resources("AWS::ApiGateway::UsagePlanKey")
    synth.template.resource_count_is("AWS::ApiGateway::RequestValidator", 1)


def test_api_stage_logs_access_and_traces(synth: Synth) -> None:
    (stage,) = synth.resources("AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "prod"
    assert props["TracingEnabled"] is True
    assert props["AccessLogSetting"]["DestinationArn"]
    assert props["MethodSettings"][0]["LoggingLevel"] == "ERROR"
    assert props["MethodSettings"][0]["DataTraceEnabled"] is False


def test_every_route_is_under_v1_and_needs_a_key_or_iam_unless_public(synth: Synth) -> None:
    routes = dict(method_paths(synth.data["Resources"]).values())
    assert set(routes) >= PUBLIC_ROUTES
    for route, props in routes.items():
        assert route.split(" ")[1].startswith("/v1/"), route
        assert props.get("RequestValidatorId"), route
        if route in PUBLIC_ROUTES:
            assert props["AuthorizationType"] == "NONE", route
            assert props.get("ApiKeyRequired", False) is False, route
        elif props["AuthorizationType"] != "AWS_IAM":
            assert props.get("ApiKeyRequired") is True, route


def test_health_route_runs_the_health_handler(synth: Synth) -> None:
    routes = dict(method_paths(synth.data["Resources"]).values())
    uri = json.dumps(routes["GET /v1/health"]["Integration"]["Uri"])
    functions = synth.resources("AWS::Lambda::Function")
    (health,) = [k for k in functions if k in uri]
    assert functions[health]["Properties"]["Handler"] == "functions.core.health.handler"


def test_claims_state_machine_is_the_asl_file_with_logging_and_tracing(synth: Synth) -> None:
    (machine,) = synth.resources("AWS::StepFunctions::StateMachine").values()
    props = machine["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    # Inline, not an S3 asset: the local cloud and cfn-lint read it from the template.
    assert json.loads(props["DefinitionString"]) == json.loads(DEFINITION.read_text())
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["Destinations"]
    assert props["TracingConfiguration"] == {"Enabled": True}


def test_outputs_are_exactly_the_contract(synth: Synth) -> None:
    assert set(synth.data["Outputs"]) == STACK_OUTPUTS
    assert synth.data["Outputs"]["SenderEmail"]["Value"] == cdk_context()["senderEmail"]


def test_api_url_is_the_stage_url_without_trailing_slash(synth: Synth) -> None:
    parts = synth.data["Outputs"]["ApiUrl"]["Value"]["Fn::Join"][1]
    assert parts[-1] == "/prod"


def _domain_functions(synth: Synth) -> dict[str, dict[str, Any]]:
    functions = synth.resources("AWS::Lambda::Function")
    domain = {
        k: f for k, f in functions.items() if f["Properties"]["Handler"].startswith("functions.")
    }
    others = [k for k in functions if k not in domain]
    unexplained = [k for k in others if not k.startswith(tuple(CDK_PROVIDED_FUNCTIONS))]
    assert not unexplained, f"functions not made by DomainFunction: {unexplained}"
    assert domain
    return domain


def test_every_function_is_a_domain_function_on_the_shared_runtime(synth: Synth) -> None:
    (layer,) = synth.resources("AWS::Lambda::LayerVersion")
    log_groups = synth.resources("AWS::Logs::LogGroup")
    roles = []
    for logical_id, function in _domain_functions(synth).items():
        props = function["Properties"]
        assert props["Architectures"] == ["arm64"], logical_id
        assert props["Runtime"] == "python3.12", logical_id
        assert {"Ref": layer} in props["Layers"], logical_id
        assert props["TracingConfig"] == {"Mode": "Active"}, logical_id
        log_group = log_groups[str(ref_id(props["LoggingConfig"]["LogGroup"]))]
        assert log_group["Properties"]["RetentionInDays"] > 0, logical_id
        env = props["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"], logical_id
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Rebates", logical_id
        assert env["REBATES_VERSION"] == project_version(), logical_id
        # cdk.json leaves detailed tracing off: the X-Ray SDK costs every cold start.
        assert env["REBATES_DETAILED_TRACING"] == "false", logical_id
        roles.append(ref_id(props["Role"]))
    assert len(roles) == len(set(roles)), "functions must not share a role"


def test_no_identity_policy_grants_a_wildcard_action(synth: Synth) -> None:
    for logical_id, statement in identity_statements(synth.data["Resources"]):
        for action in as_list(statement.get("Action")):
            assert action != "*" and not action.endswith(":*"), (logical_id, action)


def test_no_data_service_action_on_every_resource(synth: Synth) -> None:
    for logical_id, statement in identity_statements(synth.data["Resources"]):
        if "*" not in as_list(statement.get("Resource")):
            continue
        for action in as_list(statement.get("Action")):
            service = action.split(":")[0]
            if service in DATA_SERVICES:
                assert action in ALLOWED_ON_ANY_RESOURCE, (logical_id, action)


def test_every_event_driven_function_has_a_dlq(synth: Synth) -> None:
    assert event_driven_functions_without_dlq(synth.data["Resources"]) == []
