"""Deploying templates into in-process moto: the real stack, and small templates for
the types and edge cases the stack does not have yet."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from moto import mock_aws

from infra.local.api import Gateway, InvocationResult
from infra.local.deploy import (
    DEPLOYERS,
    NO_OP_TYPES,
    DeployContext,
    DeployError,
    Deployment,
    KinesisStreamMappingRecord,
    QueueMappingRecord,
    Route,
    ScheduledRule,
    TableStreamMappingRecord,
    UnsupportedResourceError,
    deploy,
)
from infra.local.template import TemplateError
from tests.support.contract import STACK_OUTPUTS

REGION = "ap-northeast-1"

_FAKE_ENVIRONMENT = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@pytest.fixture(scope="session")
def stack_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The real stack, synthesized in-process once per session (assets built first)."""
    from infra.app import STACK_NAME, build_app
    from infra.build import build_all

    build_all()
    assembly = build_app(str(tmp_path_factory.mktemp("cdk.out")), nag=False).synth()
    path = Path(assembly.get_stack_by_name(STACK_NAME).template_full_path)
    template: dict[str, Any] = json.loads(path.read_text())
    return template


@dataclass
class Detached:
    """Calls to the runtime's `detach_sqs_event_source`, `detach_table_stream_source` and
    `detach_kinesis_source`, faked here."""

    calls: list[tuple[str, str]]
    stream_calls: list[tuple[str, str]]
    kinesis_calls: list[tuple[str, str]]


@contextmanager
def fresh_moto(*, fake_patches: bool = True) -> Iterator[Detached]:
    """An empty in-process moto with fake credentials.

    `fake_patches`: a stand-in for the runtime's `infra.local.patches` records the
    detach calls (the deployer imports the module lazily, so it finds the stand-in
    whether or not the real one was imported already); otherwise the real one runs
    when it exists.
    """
    record = Detached([], [], [])
    with pytest.MonkeyPatch.context() as patch:
        for name, value in _FAKE_ENVIRONMENT.items():
            patch.setenv(name, value)
        if fake_patches or importlib.util.find_spec("infra.local.patches") is None:
            module = types.ModuleType("infra.local.patches")
            module.detach_sqs_event_source = lambda queue, function: record.calls.append(  # type: ignore[attr-defined]
                (queue, function)
            )
            module.detach_table_stream_source = (  # type: ignore[attr-defined]
                lambda stream, function: record.stream_calls.append((stream, function))
            )
            module.detach_kinesis_source = (  # type: ignore[attr-defined]
                lambda stream, function: record.kinesis_calls.append((stream, function))
            )
            patch.setitem(sys.modules, "infra.local.patches", module)
        with mock_aws():
            yield record


@pytest.fixture
def aws() -> Iterator[DeployContext]:
    """A context deploying into an empty moto."""
    with fresh_moto():
        yield DeployContext(region=REGION, seed=7)


def _resource(type_: str, properties: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"Type": type_, "Properties": properties or {}, **extra}


def _ref(name: str) -> dict[str, Any]:
    return {"Ref": name}


def _att(name: str, attribute: str = "Arn") -> dict[str, Any]:
    return {"Fn::GetAtt": [name, attribute]}


def _table_names(context: DeployContext) -> list[str]:
    names: list[str] = context.client("dynamodb").list_tables()["TableNames"]
    return names


# The real stack -----------------------------------------------------------------------------


@dataclass
class DeployedStack:
    template: dict[str, Any]
    deployment: Deployment
    context: DeployContext
    seconds: float

    def of_type(self, type_: str) -> dict[str, dict[str, Any]]:
        return {i: r for i, r in self.template["Resources"].items() if r["Type"] == type_}


# Class scope, for the class's tests only: another test's `mock_aws()` would reset the
# backends under a longer-lived deployment.
@pytest.fixture(scope="class")
def stack(stack_template: dict[str, Any]) -> Iterator[DeployedStack]:
    # The real detach when it exists: the stack's SQS consumers are then left alone
    # by moto at SendMessage, as in the local cloud.
    with fresh_moto(fake_patches=False):
        context = DeployContext(region=REGION)
        started = time.perf_counter()
        deployment = deploy(stack_template, context)
        yield DeployedStack(stack_template, deployment, context, time.perf_counter() - started)


class TestRealStack:
    """The synthesized stack, deployed once into moto for the whole class."""

    def test_every_resource_is_deployed_or_a_no_op(self, stack: DeployedStack) -> None:
        resources = stack.template["Resources"]
        assert set(stack.deployment.resources) == set(resources)
        assert stack.deployment.types == {i: r["Type"] for i, r in resources.items()}
        assert not stack.deployment.skipped
        for logical_id, type_ in stack.deployment.types.items():
            assert (type_ in NO_OP_TYPES) == (logical_id in stack.deployment.no_ops)
            assert type_ in NO_OP_TYPES or type_ in DEPLOYERS

    def test_outputs_are_the_contract_keys_resolved(self, stack: DeployedStack) -> None:
        outputs = stack.deployment.outputs
        assert set(outputs) == STACK_OUTPUTS
        assert all(isinstance(v, str) and v for v in outputs.values())
        assert outputs["EventBusName"] == "rebates"
        assert outputs["SenderEmail"] == "rewards@example.com"
        api_id = stack.deployment.resources[next(iter(stack.of_type("AWS::ApiGateway::RestApi")))]
        assert outputs["ApiUrl"] == (
            f"https://{api_id.physical_id}.execute-api.{REGION}.amazonaws.com/prod"
        )
        s3 = stack.context.client("s3")
        for key in ("CampaignBucketName", "ArchiveBucketName"):
            s3.head_bucket(Bucket=outputs[key])
        kinesis = stack.context.client("kinesis")
        kinesis.describe_stream_summary(StreamName=outputs["EventsStreamName"])
        print(f"\nreal stack deployed into mock_aws in {stack.seconds:.2f} s")

    def test_state_machine_definition_is_json_with_resolved_arns(
        self, stack: DeployedStack
    ) -> None:
        arn = stack.deployment.outputs["ClaimsStateMachineArn"]
        assert arn in stack.deployment.state_machines.values()
        machine = stack.context.client("stepfunctions").describe_state_machine(stateMachineArn=arn)
        definition = json.loads(machine["definition"])
        assert definition["StartAt"] in definition["States"]
        assert "${" not in machine["definition"]
        role = stack.context.client("iam").get_role(RoleName=machine["roleArn"].split("/")[-1])
        assert role["Role"]["Arn"] == machine["roleArn"]

    def test_queue_redrive_policies_point_at_the_dlq_arns(self, stack: DeployedStack) -> None:
        sqs = stack.context.client("sqs")
        with_redrive = {
            i: r
            for i, r in stack.of_type("AWS::SQS::Queue").items()
            if "RedrivePolicy" in r["Properties"]
        }
        assert with_redrive
        for logical_id, resource in with_redrive.items():
            dlq = resource["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            attributes = sqs.get_queue_attributes(
                QueueUrl=stack.deployment.resources[logical_id].physical_id,
                AttributeNames=["RedrivePolicy"],
            )["Attributes"]
            policy = json.loads(attributes["RedrivePolicy"])
            assert (
                policy["deadLetterTargetArn"] == stack.deployment.resources[dlq].attributes["Arn"]
            )
            assert int(policy["maxReceiveCount"]) == 5

    def test_health_route_is_extracted(self, stack: DeployedStack) -> None:
        (health,) = [
            f
            for f in stack.deployment.functions.values()
            if f.handler == "functions.core.health.handler"
        ]
        assert Route("GET", "/v1/health", health.name, False, "NONE") in stack.deployment.routes
        assert health.environment["POWERTOOLS_SERVICE_NAME"] == "core"
        assert (health.timeout_seconds, health.memory_mb) == (10, 256)

    def test_the_local_api_answers_with_the_templates_gateway_responses(
        self, stack: DeployedStack
    ) -> None:
        declared = stack.of_type("AWS::ApiGateway::GatewayResponse")
        assert set(stack.deployment.gateway_responses) == {
            r["Properties"]["ResponseType"] for r in declared.values()
        }
        api_id = stack.deployment.resources[next(iter(stack.of_type("AWS::ApiGateway::RestApi")))]
        stored = stack.context.client("apigateway").get_gateway_responses(
            restApiId=api_id.physical_id
        )["items"]
        assert {r["responseType"] for r in stored} == set(stack.deployment.gateway_responses)
        events: list[dict[str, Any]] = []

        def failing(name: str, event: dict[str, Any]) -> InvocationResult:
            events.append(event)
            return InvocationResult({"errorType": "RuntimeError"}, True)

        gateway = Gateway(
            list(stack.deployment.routes),
            failing,
            api_key="the-key",
            responses=stack.deployment.gateway_responses,
        )
        cases = [
            ("GET", "/v1/campaigns", {}, 403, "invalid_api_key"),
            ("GET", "/v1/campaigns", {"x-api-key": "wrong"}, 403, "invalid_api_key"),
            ("GET", "/v1/nowhere", {"x-api-key": "the-key"}, 403, "route_not_found"),
            ("TRACE", "/v1/health", {}, 403, "route_not_found"),
            ("GET", "/v1/health", {}, 502, "internal_error"),
        ]
        for method, path, headers, status, code in cases:
            answered, answer_headers, body = gateway.handle(method, path, headers, b"")
            error = json.loads(body)["error"]
            assert (answered, error["code"]) == (status, code), (method, path, headers)
            assert answer_headers["Content-Type"] == "application/json"
            assert error["details"]["requestId"] == answer_headers["x-amzn-RequestId"]
        # A failed function's answer names the request its logs were written under.
        (event,) = events
        assert error["details"] == {
            "requestId": event["requestContext"]["requestId"],
            "responseType": "DEFAULT_5XX",
        }

    def test_asynchronous_invocations_follow_each_functions_template(
        self, stack: DeployedStack
    ) -> None:
        functions = stack.of_type("AWS::Lambda::Function")
        assert set(stack.deployment.async_invocations) == {
            stack.deployment.resources[i].physical_id for i in functions
        }
        (loader_id,) = [
            i
            for i, r in functions.items()
            if r["Properties"]["Handler"] == "functions.campaigns.handlers.loader.handler"
        ]
        loader = stack.deployment.async_invocations[
            stack.deployment.resources[loader_id].physical_id
        ]
        dlq = functions[loader_id]["Properties"]["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0]
        assert loader.dead_letter_target == stack.deployment.resources[dlq].attributes["Arn"]
        assert (loader.maximum_retry_attempts, loader.on_failure_destination) == (2, None)

    def test_api_key_value_is_the_one_api_gateway_generated(self, stack: DeployedStack) -> None:
        keys = stack.context.client("apigateway").get_api_keys(includeValues=True)["items"]
        assert stack.deployment.api_key_value
        assert stack.deployment.api_key_value in [k["value"] for k in keys]

    def test_buckets_have_their_settings(self, stack: DeployedStack) -> None:
        s3 = stack.context.client("s3")
        archive = stack.deployment.outputs["ArchiveBucketName"]
        rules = s3.get_bucket_lifecycle_configuration(Bucket=archive)["Rules"]
        assert {r["ID"] for r in rules} == {"housekeeping", "tiering"}
        assert s3.get_bucket_versioning(Bucket=archive)["Status"] == "Enabled"
        block = s3.get_public_access_block(Bucket=archive)["PublicAccessBlockConfiguration"]
        assert all(block.values())

    def test_tables_have_their_indexes_and_ttl(self, stack: DeployedStack) -> None:
        dynamodb = stack.context.client("dynamodb")
        claims = stack.deployment.resources["ClaimsTable"].physical_id
        table = dynamodb.describe_table(TableName=claims)["Table"]
        assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {"gsi1", "gsi2"}
        idempotency = stack.deployment.resources["IdempotencyTable"].physical_id
        ttl = dynamodb.describe_time_to_live(TableName=idempotency)["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiration"}

    def test_a_rule_pattern_routes_put_events_to_its_queue(self, stack: DeployedStack) -> None:
        # A rule narrowed to detail types, with a queue target (the notifications one).
        rule = next(
            r["Properties"]
            for r in stack.of_type("AWS::Events::Rule").values()
            if "detail-type" in r["Properties"].get("EventPattern", {})
        )
        queue_id = rule["Targets"][0]["Arn"]["Fn::GetAtt"][0]
        assert stack.deployment.types[queue_id] == "AWS::SQS::Queue"
        queue_url = stack.deployment.resources[queue_id].physical_id
        matching = rule["EventPattern"]["detail-type"][0]
        events, sqs = stack.context.client("events"), stack.context.client("sqs")
        for detail_type in (matching, "NoRuleWantsThis"):
            events.put_events(
                Entries=[
                    {
                        "EventBusName": "rebates",
                        "Source": "rebates.claims",
                        "DetailType": detail_type,
                        "Detail": json.dumps({"claimId": "c-1"}),
                    }
                ]
            )
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
        assert [json.loads(m["Body"])["detail-type"] for m in messages] == [matching]

    def test_the_unsubscribe_routes_answer_without_the_key(self, stack: DeployedStack) -> None:
        invoked: list[tuple[str, dict[str, Any]]] = []

        def page(name: str, event: dict[str, Any]) -> InvocationResult:
            invoked.append((name, event))
            return InvocationResult({"statusCode": 200, "body": "<html></html>"}, False)

        gateway = Gateway(
            list(stack.deployment.routes),
            page,
            api_key="the-key",
            responses=stack.deployment.gateway_responses,
        )
        for method in ("GET", "POST"):
            status, _, _ = gateway.handle(method, "/v1/unsubscribe?token=t", {}, b"")
            assert status == 200, method
        assert [event["queryStringParameters"] for _, event in invoked] == [{"token": "t"}] * 2
        (unsubscribe,) = {name for name, _ in invoked}
        assert stack.deployment.functions[unsubscribe].handler == (
            "functions.notifications.handlers.api.handler"
        )
        # The same function's profile routes still need the key.
        status, _, body = gateway.handle("GET", "/v1/customers/c-1/profile", {}, b"")
        assert (status, json.loads(body)["error"]["code"]) == (403, "invalid_api_key")

    def test_secrets_are_generated_and_queue_delays_kept(self, stack: DeployedStack) -> None:
        secrets = stack.context.client("secretsmanager")
        generated = stack.of_type("AWS::SecretsManager::Secret")
        assert generated
        for logical_id, resource in generated.items():
            rules = resource["Properties"]["GenerateSecretString"]
            value = secrets.get_secret_value(
                SecretId=stack.deployment.resources[logical_id].physical_id
            )["SecretString"]
            assert len(value) == rules["PasswordLength"] and value.isalnum(), logical_id
        sqs = stack.context.client("sqs")
        delayed = {
            i: r["Properties"]["DelaySeconds"]
            for i, r in stack.of_type("AWS::SQS::Queue").items()
            if "DelaySeconds" in r["Properties"]
        }
        assert delayed
        for logical_id, delay in delayed.items():
            attributes = sqs.get_queue_attributes(
                QueueUrl=stack.deployment.resources[logical_id].physical_id,
                AttributeNames=["DelaySeconds"],
            )["Attributes"]
            assert attributes["DelaySeconds"] == str(delay), logical_id


# Types the stack does not have yet ------------------------------------------------------------


def _role(service: str) -> dict[str, Any]:
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }
    return _resource("AWS::IAM::Role", {"AssumeRolePolicyDocument": document})


def _function(handler: str, **properties: Any) -> dict[str, Any]:
    code = {
        "S3Bucket": {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"},
        "S3Key": "0123abcd.zip",
    }
    return _resource(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.12",
            "Handler": handler,
            "Role": _att("Role"),
            "Code": code,
            **properties,
        },
        DependsOn=["Role"],
    )


def _mapping(function: Any, source: Any, **properties: Any) -> dict[str, Any]:
    return _resource(
        "AWS::Lambda::EventSourceMapping",
        {"FunctionName": function, "EventSourceArn": source, **properties},
    )


def _api_method(resource: Any, integration: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return _resource(
        "AWS::ApiGateway::Method",
        {
            "RestApiId": _ref("Api"),
            "ResourceId": resource,
            "HttpMethod": "GET",
            "AuthorizationType": "NONE",
            "Integration": integration,
            **properties,
        },
    )


def _api_resource(parent: Any, part: str) -> dict[str, Any]:
    return _resource(
        "AWS::ApiGateway::Resource",
        {"RestApiId": _ref("Api"), "ParentId": parent, "PathPart": part},
    )


_WORKER_URI = {
    "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/"
    "functions/${Worker.Arn}/invocations"
}


def _workers() -> dict[str, Any]:
    """Functions, their layer and their event sources."""
    return {
        "Role": _role("lambda.amazonaws.com"),
        "Layer": _resource(
            "AWS::Lambda::LayerVersion",
            {
                "Content": {"S3Bucket": "assets", "S3Key": "layer.zip"},
                "CompatibleRuntimes": ["python3.12"],
            },
        ),
        "Dlq": _resource("AWS::SQS::Queue", {"MessageRetentionPeriod": 1209600}),
        "Queue": _resource(
            "AWS::SQS::Queue",
            {
                "VisibilityTimeout": 60,
                "RedrivePolicy": {"deadLetterTargetArn": _att("Dlq"), "maxReceiveCount": 3},
            },
        ),
        "Table": _resource(
            "AWS::DynamoDB::Table",
            {
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "BillingMode": "PAY_PER_REQUEST",
                "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
            },
        ),
        "Stream": _resource("AWS::Kinesis::Stream", {"ShardCount": 1, "RetentionPeriodHours": 48}),
        "Worker": _function(
            "functions.worker.handler",
            Timeout=30,
            MemorySize=1024,
            Architectures=["arm64"],
            TracingConfig={"Mode": "Active"},
            Layers=[_ref("Layer")],
            Environment={"Variables": {"QUEUE_URL": _ref("Queue"), "TABLE": _ref("Table")}},
        ),
        "WorkerInvokeConfig": _resource(
            "AWS::Lambda::EventInvokeConfig",
            {"FunctionName": _ref("Worker"), "Qualifier": "$LATEST", "MaximumRetryAttempts": 2},
        ),
        "QueueMapping": _mapping(
            _ref("Worker"),
            _att("Queue"),
            BatchSize=5,
            MaximumBatchingWindowInSeconds=2,
            FunctionResponseTypes=["ReportBatchItemFailures"],
        ),
        "TableMapping": _mapping(
            _ref("Worker"), _att("Table", "StreamArn"), StartingPosition="LATEST"
        ),
        "StreamMapping": _mapping(
            _att("Worker"),
            _att("Stream"),
            StartingPosition="TRIM_HORIZON",
            BisectBatchOnFunctionError=True,
            MaximumRetryAttempts=5,
            DestinationConfig={"OnFailure": {"Destination": _att("Dlq")}},
        ),
    }


# What an SQS consumer needs, out of _workers().
_SQS_WORKER = {"Role", "Layer", "Dlq", "Queue", "Table", "Worker", "QueueMapping"}


def _messaging() -> dict[str, Any]:
    """A topic with a subscription, bucket notifications, a schedule and an alarm."""
    notification = {
        "Events": ["s3:ObjectCreated:*"],
        "QueueArn": _att("Uploads"),
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}]}},
    }
    return {
        "Topic": _resource("AWS::SNS::Topic", {"DisplayName": "Reports"}),
        "Inbox": _resource("AWS::SQS::Queue"),
        "TopicToInbox": _resource(
            "AWS::SNS::Subscription",
            {
                "TopicArn": _ref("Topic"),
                "Protocol": "sqs",
                "Endpoint": _att("Inbox"),
                "RawMessageDelivery": True,
            },
        ),
        "Uploads": _resource("AWS::SQS::Queue"),
        "Bucket": _resource("AWS::S3::Bucket"),
        # CDK's handler for Custom::S3BucketNotifications: inline code, never run locally.
        "NotificationsHandler": _function(
            "index.handler",
            Runtime="python3.13",
            Timeout=300,
            Code={"ZipFile": "def handler(e, c): pass"},
        ),
        "BucketNotifications": _resource(
            "Custom::S3BucketNotifications",
            {
                "ServiceToken": _att("NotificationsHandler"),
                "BucketName": _ref("Bucket"),
                "NotificationConfiguration": {"QueueConfigurations": [notification]},
                "Managed": True,
            },
        ),
        "Nightly": _resource(
            "AWS::Events::Rule",
            {
                "ScheduleExpression": "cron(0 3 * * ? *)",
                "State": "ENABLED",
                "Targets": [{"Id": "Target0", "Arn": _att("Worker"), "Input": '{"job":"nightly"}'}],
            },
        ),
        "DlqAlarm": _resource(
            "AWS::CloudWatch::Alarm",
            {
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": _att("Dlq", "QueueName")}],
                "Statistic": "Maximum",
                "Period": 60,
                "EvaluationPeriods": 1,
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "AlarmActions": [_ref("Topic")],
            },
        ),
    }


def _analytics() -> dict[str, Any]:
    """Firehose to an archive bucket, and the Glue catalog over it."""
    return {
        "Archive": _resource("AWS::S3::Bucket"),
        "Firehose": _resource(
            "AWS::KinesisFirehose::DeliveryStream",
            {
                "DeliveryStreamType": "DirectPut",
                "ExtendedS3DestinationConfiguration": {
                    "BucketARN": _att("Archive"),
                    "RoleARN": _att("Role"),
                    "Prefix": "events/",
                    "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 5},
                },
            },
        ),
        "Database": _resource(
            "AWS::Glue::Database",
            {"CatalogId": _ref("AWS::AccountId"), "DatabaseInput": {"Name": "rebates_events"}},
        ),
        "EventsTable": _resource(
            "AWS::Glue::Table",
            {
                "CatalogId": _ref("AWS::AccountId"),
                "DatabaseName": _ref("Database"),
                "TableInput": {
                    "Name": "events",
                    "TableType": "EXTERNAL_TABLE",
                    "PartitionKeys": [{"Name": "dt", "Type": "string"}],
                    "StorageDescriptor": {
                        "Columns": [{"Name": "id", "Type": "string"}],
                        "Location": {"Fn::Sub": "s3://${Archive}/events/"},
                    },
                },
            },
        ),
    }


def _orchestration() -> dict[str, Any]:
    """A state machine with substitutions, and an API with a nested IAM route."""
    definition = {
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": "${WorkerArn}", "End": True}},
    }
    return {
        "MachineRole": _role("states.amazonaws.com"),
        "Machine": _resource(
            "AWS::StepFunctions::StateMachine",
            {
                "RoleArn": _att("MachineRole"),
                "Definition": definition,
                "DefinitionSubstitutions": {"WorkerArn": _att("Worker")},
                "TracingConfiguration": {"Enabled": True},
            },
        ),
        "Api": _resource("AWS::ApiGateway::RestApi", {"Name": "api"}),
        "V1": _api_resource(_att("Api", "RootResourceId"), "v1"),
        "Claims": _api_resource(_ref("V1"), "claims"),
        "Claim": _api_resource(_ref("Claims"), "{claimId}"),
        "ClaimGet": _api_method(
            _ref("Claim"),
            {"Type": "AWS_PROXY", "IntegrationHttpMethod": "POST", "Uri": _WORKER_URI},
            ApiKeyRequired=True,
            AuthorizationType="AWS_IAM",
        ),
        # A mock integration is no Lambda route.
        "RootGet": _api_method(_att("Api", "RootResourceId"), {"Type": "MOCK"}),
        "ApiDeployment": _resource(
            "AWS::ApiGateway::Deployment",
            {"RestApiId": _ref("Api")},
            DependsOn=["ClaimGet", "RootGet"],
        ),
        "Stage": _resource(
            "AWS::ApiGateway::Stage",
            {"RestApiId": _ref("Api"), "DeploymentId": _ref("ApiDeployment"), "StageName": "prod"},
        ),
    }


def kitchen_sink() -> dict[str, Any]:
    return {
        "Resources": {**_workers(), **_messaging(), **_analytics(), **_orchestration()},
        "Outputs": {"QueueUrl": {"Value": _ref("Queue")}},
    }


@dataclass
class Sink:
    deployment: Deployment
    context: DeployContext
    detached: Detached

    def physical(self, logical_id: str) -> str:
        return self.deployment.resources[logical_id].physical_id

    def arn(self, logical_id: str) -> str:
        return self.deployment.resources[logical_id].attributes["Arn"]


@pytest.fixture(scope="class")
def sink() -> Iterator[Sink]:
    with fresh_moto() as detached:
        context = DeployContext(region=REGION, seed=7)
        yield Sink(deploy(kitchen_sink(), context), context, detached)


class TestKitchenSink:
    """Every other deployable type, deployed once for the whole class."""

    def test_every_type_deploys(self, sink: Sink) -> None:
        template = kitchen_sink()
        assert set(sink.deployment.resources) == set(template["Resources"])
        assert not sink.deployment.no_ops
        assert sink.deployment.outputs == {"QueueUrl": sink.physical("Queue")}

    def test_sqs_mapping_is_detached_and_recorded(self, sink: Sink) -> None:
        worker = sink.deployment.functions[sink.physical("Worker")]
        assert sink.detached.calls == [(sink.arn("Queue"), worker.arn)]
        assert sink.deployment.queue_mappings == [
            QueueMappingRecord(
                uuid=sink.physical("QueueMapping"),
                function_name=worker.name,
                queue_url=sink.physical("Queue"),
                queue_arn=sink.arn("Queue"),
                batch_size=5,
                report_batch_item_failures=True,
                enabled=True,
                maximum_batching_window_seconds=2,
            )
        ]

    def test_table_stream_mapping_is_detached_and_recorded(self, sink: Sink) -> None:
        worker = sink.deployment.functions[sink.physical("Worker")]
        table_stream = sink.deployment.resources["Table"].attributes["StreamArn"]
        assert sink.detached.stream_calls == [(table_stream, worker.arn)]
        assert sink.deployment.table_stream_mappings == [
            TableStreamMappingRecord(
                uuid=sink.physical("TableMapping"),
                function_name=worker.name,
                stream_arn=table_stream,
                batch_size=100,
                starting_position="LATEST",
                filter_criteria=None,
                report_batch_item_failures=False,
                bisect_on_error=False,
                maximum_retry_attempts=-1,
                on_failure_queue_arn=None,
                enabled=True,
            )
        ]

    def test_kinesis_mapping_is_detached_and_recorded(self, sink: Sink) -> None:
        worker = sink.deployment.functions[sink.physical("Worker")]
        assert sink.detached.kinesis_calls == [(sink.arn("Stream"), worker.arn)]
        assert sink.deployment.kinesis_stream_mappings == [
            KinesisStreamMappingRecord(
                uuid=sink.physical("StreamMapping"),
                function_name=worker.name,
                stream_arn=sink.arn("Stream"),
                batch_size=100,
                starting_position="TRIM_HORIZON",
                filter_criteria=None,
                report_batch_item_failures=False,
                bisect_on_error=True,
                maximum_retry_attempts=5,
                on_failure_queue_arn=sink.arn("Dlq"),
                enabled=True,
                starting_position_timestamp=None,
                invoke_identity_arn=sink.arn("Role"),
            )
        ]
        # The Kinesis mapping is no table stream's, nor a queue's.
        assert [m.uuid for m in sink.deployment.table_stream_mappings] == [
            sink.physical("TableMapping")
        ]

    def test_detached_mappings_stay_listed(self, sink: Sink) -> None:
        lambda_ = sink.context.client("lambda")
        # moto filters listings by the FunctionName exactly as given (name or ARN): list all.
        mappings = lambda_.list_event_source_mappings()
        sources = {m["EventSourceArn"] for m in mappings["EventSourceMappings"]}
        table_stream = sink.deployment.resources["Table"].attributes["StreamArn"]
        # Every mapping stays listed, the detached ones included (as `aws lambda` shows).
        assert {sink.arn("Stream"), table_stream} <= sources

    def test_function_records_carry_what_the_runtime_needs(self, sink: Sink) -> None:
        worker = sink.deployment.functions[sink.physical("Worker")]
        assert worker.logical_id == "Worker"
        assert worker.handler == "functions.worker.handler"
        assert worker.environment == {
            "QUEUE_URL": sink.physical("Queue"),
            "TABLE": sink.physical("Table"),
        }
        assert (worker.timeout_seconds, worker.memory_mb, worker.inline_code) == (30, 1024, False)
        handler = sink.deployment.functions[sink.physical("NotificationsHandler")]
        assert handler.inline_code
        configuration = sink.context.client("lambda").get_function_configuration(
            FunctionName=worker.name
        )
        assert configuration["Layers"][0]["Arn"] == sink.physical("Layer")
        assert configuration["Architectures"] == ["arm64"]

    def test_bucket_notifications_deliver_to_the_queue(self, sink: Sink) -> None:
        s3, sqs = sink.context.client("s3"), sink.context.client("sqs")
        s3.put_object(Bucket=sink.physical("Bucket"), Key="other/ignored.csv", Body=b"x")
        s3.put_object(Bucket=sink.physical("Bucket"), Key="in/campaign 1.csv", Body=b"x")
        messages = sqs.receive_message(QueueUrl=sink.physical("Uploads"), MaxNumberOfMessages=10)
        records = [
            r for m in messages["Messages"] for r in json.loads(m["Body"]).get("Records", [])
        ]
        assert [r["eventName"].split(":")[0] for r in records] == ["ObjectCreated"]
        # S3 sends keys URL-encoded, in AWS as in moto.
        assert unquote_plus(records[0]["s3"]["object"]["key"]) == "in/campaign 1.csv"

    def test_topic_subscription_delivers_to_the_queue(self, sink: Sink) -> None:
        sink.context.client("sns").publish(TopicArn=sink.physical("Topic"), Message="report ready")
        messages = sink.context.client("sqs").receive_message(QueueUrl=sink.physical("Inbox"))
        assert [m["Body"] for m in messages["Messages"]] == ["report ready"]

    def test_schedules_are_recorded(self, sink: Sink) -> None:
        assert sink.deployment.schedules == [
            ScheduledRule(
                name=sink.physical("Nightly"),
                logical_id="Nightly",
                schedule_expression="cron(0 3 * * ? *)",
                bus_name="default",
                targets=[
                    {"Id": "Target0", "Arn": sink.arn("Worker"), "Input": '{"job":"nightly"}'}
                ],
            )
        ]

    def test_routes_follow_the_resource_tree(self, sink: Sink) -> None:
        worker = sink.physical("Worker")
        assert sink.deployment.routes == [
            Route("GET", "/v1/claims/{claimId}", worker, True, "AWS_IAM")
        ]

    def test_state_machine_definition_is_substituted(self, sink: Sink) -> None:
        arn = sink.deployment.state_machines["Machine"]
        machine = sink.context.client("stepfunctions").describe_state_machine(stateMachineArn=arn)
        assert json.loads(machine["definition"])["States"]["Work"]["Resource"] == sink.arn("Worker")

    def test_the_other_types_are_visible_through_their_apis(self, sink: Sink) -> None:
        client = sink.context.client
        config = client("lambda").get_function_event_invoke_config(
            FunctionName=sink.physical("Worker"), Qualifier="$LATEST"
        )
        assert config["MaximumRetryAttempts"] == 2
        alarm = client("cloudwatch").describe_alarms(AlarmNames=[sink.physical("DlqAlarm")])
        assert alarm["MetricAlarms"][0]["AlarmActions"] == [sink.physical("Topic")]
        table = client("glue").get_table(DatabaseName="rebates_events", Name="events")["Table"]
        assert table["StorageDescriptor"]["Location"] == f"s3://{sink.physical('Archive')}/events/"
        stream = client("firehose").describe_delivery_stream(
            DeliveryStreamName=sink.physical("Firehose")
        )
        assert stream["DeliveryStreamDescription"]["DeliveryStreamARN"] == sink.arn("Firehose")
        summary = client("kinesis").describe_stream_summary(StreamName=sink.physical("Stream"))
        assert summary["StreamDescriptionSummary"]["RetentionPeriodHours"] == 48


# Edge cases -----------------------------------------------------------------------------------


def _table(**properties: Any) -> dict[str, Any]:
    return _resource(
        "AWS::DynamoDB::Table",
        {
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
            **properties,
        },
    )


def test_unknown_types_are_all_refused_before_anything_is_created(aws: DeployContext) -> None:
    template = {
        "Resources": {
            "Table": _table(),
            "Odd": _resource("AWS::Foo::Bar"),
            "Thing": _resource("Custom::Thing", {"ServiceToken": "arn:aws:lambda:x"}),
        }
    }
    with pytest.raises(UnsupportedResourceError) as raised:
        deploy(template, aws)
    assert raised.value.unsupported == {"Odd": "AWS::Foo::Bar", "Thing": "Custom::Thing"}
    assert "Odd (AWS::Foo::Bar), Thing (Custom::Thing)" in str(raised.value)
    assert _table_names(aws) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {
                "Bad": _resource(
                    "AWS::SQS::Queue", {"QueueName": {"Fn::Cidr": ["10.0.0.0/16", 1, 8]}}
                )
            },
            "Fn::Cidr",
        ),
        (
            {
                "A": _resource("AWS::SQS::Queue", {"Tags": [_ref("B")]}),
                "B": _resource("AWS::SQS::Queue", DependsOn="A"),
            },
            "cycle",
        ),
    ],
)
def test_unresolvable_templates_change_nothing(
    aws: DeployContext, extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(TemplateError, match=message):
        deploy({"Resources": {"Table": _table(), **extra}}, aws)
    assert _table_names(aws) == []


def test_a_failing_resource_is_named_with_its_cause(aws: DeployContext) -> None:
    template = {"Resources": {"Table": _table(), "Bus": _resource("AWS::Events::EventBus")}}
    with pytest.raises(
        DeployError, match=r"Bus \(AWS::Events::EventBus\): missing required property 'Name'"
    ) as raised:
        deploy(template, aws)
    assert (raised.value.logical_id, raised.value.resource_type) == ("Bus", "AWS::Events::EventBus")


def test_conditions_skip_resources_and_outputs_and_no_value_drops_properties(
    aws: DeployContext,
) -> None:
    template = {
        "Conditions": {"Never": {"Fn::Equals": [_ref("AWS::Region"), "us-east-1"]}},
        "Resources": {
            "Skipped": {**_table(), "Condition": "Never"},
            "Queue": _resource(
                "AWS::SQS::Queue",
                {
                    "QueueName": "jobs",
                    "DelaySeconds": {"Fn::If": ["Never", 5, _ref("AWS::NoValue")]},
                },
            ),
        },
        "Outputs": {
            "Table": {"Condition": "Never", "Value": _ref("Skipped")},
            "Queue": {"Value": {"Fn::GetAtt": "Queue.QueueName"}},
        },
    }
    deployment = deploy(template, aws)
    assert deployment.skipped == {"Skipped": "Never"}
    assert deployment.outputs == {"Queue": "jobs"}
    assert deployment.properties["Queue"] == {"QueueName": "jobs"}
    assert _table_names(aws) == []


def test_explicit_names_are_kept_and_generated_ones_fit_each_service() -> None:
    context = DeployContext(seed=1)
    long_id = "A" * 200
    bucket = context.physical_name(long_id, limit=63, lower=True)
    assert len(bucket) == 63 and bucket == bucket.lower()
    assert re.fullmatch(r"rebates-a+-[a-z0-9]{12}", bucket)
    assert len(context.physical_name(long_id, limit=64)) == 64
    assert re.fullmatch(r"Rebates-Queue-[A-Z0-9]{12}", context.physical_name("Queue", limit=80))


def test_fifo_queues_get_a_generated_name_ending_in_fifo(aws: DeployContext) -> None:
    long_id = "Orders" + "X" * 90
    template = {"Resources": {long_id: _resource("AWS::SQS::Queue", {"FifoQueue": True})}}
    name = deploy(template, aws).resources[long_id].attributes["QueueName"]
    assert name.endswith(".fifo") and len(name) == 80


def test_bucket_settings_are_converted_to_the_s3_api(aws: DeployContext) -> None:
    rule = {
        "Id": "tiering",
        "Status": "Enabled",
        "Prefix": "events/",
        "TagFilters": [{"Key": "tier", "Value": "cold"}],
        "ExpirationInDays": 400,
        "Transitions": [{"StorageClass": "GLACIER_IR", "TransitionInDays": 180}],
        "NoncurrentVersionTransitions": [{"StorageClass": "STANDARD_IA", "TransitionInDays": 30}],
    }
    bucket = {
        "BucketName": "archive",
        "LifecycleConfiguration": {"Rules": [rule]},
        "CorsConfiguration": {
            "CorsRules": [
                {"Id": "uploads", "AllowedMethods": ["PUT"], "AllowedOrigins": ["*"], "MaxAge": 60}
            ]
        },
        "NotificationConfiguration": {
            "EventBridgeConfiguration": {"EventBridgeEnabled": True},
            "QueueConfigurations": [
                {
                    "Event": "s3:ObjectCreated:*",
                    "Queue": _att("Uploads"),
                    "Filter": {"S3Key": {"Rules": [{"Name": "suffix", "Value": ".csv"}]}},
                }
            ],
        },
        "Tags": [{"Key": "owner", "Value": "analytics"}],
    }
    template = {
        "Resources": {
            "Uploads": _resource("AWS::SQS::Queue"),
            "Archive": _resource("AWS::S3::Bucket", bucket),
            "S3Events": _resource("AWS::SQS::Queue"),
            "S3Rule": _resource(
                "AWS::Events::Rule",
                {
                    "EventPattern": {"source": ["aws.s3"], "detail-type": ["Object Created"]},
                    "Targets": [{"Id": "Target0", "Arn": _att("S3Events")}],
                },
            ),
        }
    }
    deployment = deploy(template, aws)
    s3 = aws.client("s3")
    (converted,) = s3.get_bucket_lifecycle_configuration(Bucket="archive")["Rules"]
    assert converted["ID"] == "tiering"
    assert converted["Filter"]["And"] == {
        "Prefix": "events/",
        "Tags": [{"Key": "tier", "Value": "cold"}],
    }
    assert converted["Expiration"] == {"Days": 400}
    assert converted["Transitions"] == [{"Days": 180, "StorageClass": "GLACIER_IR"}]
    assert converted["NoncurrentVersionTransitions"][0]["NoncurrentDays"] == 30
    (cors,) = s3.get_bucket_cors(Bucket="archive")["CORSRules"]
    assert (cors["ID"], cors["MaxAgeSeconds"]) == ("uploads", 60)
    notifications = s3.get_bucket_notification_configuration(Bucket="archive")
    uploads = deployment.resources["Uploads"].attributes["Arn"]
    assert notifications["QueueConfigurations"][0]["QueueArn"] == uploads
    # EventBridge notifications reach the default bus (moto does not echo the setting).
    s3.put_object(Bucket="archive", Key="events/a.json", Body=b"{}")
    sqs = aws.client("sqs")
    received = sqs.receive_message(QueueUrl=deployment.resources["S3Events"].physical_id)
    event = json.loads(received["Messages"][0]["Body"])
    assert event["detail"]["object"]["key"] == "events/a.json"
    assert s3.get_bucket_tagging(Bucket="archive")["TagSet"] == [
        {"Key": "owner", "Value": "analytics"}
    ]


def test_the_runtime_detaches_sqs_mappings_from_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the runtime's real patch: moto no longer consumes the queue at SendMessage."""
    pytest.importorskip("infra.local.patches")
    template = {"Resources": {k: v for k, v in _workers().items() if k in _SQS_WORKER}}
    for name, value in _FAKE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        context = DeployContext(region=REGION)
        deployment = deploy(template, context)
        queue_url = deployment.resources["Queue"].physical_id
        sqs = context.client("sqs")
        sqs.send_message(QueueUrl=queue_url, MessageBody="left for the poller")
        received = sqs.receive_message(QueueUrl=queue_url, AttributeNames=["All"])["Messages"]
        assert [m["Body"] for m in received] == ["left for the poller"]
        # Still attached, moto would have tried the function at SendMessage already.
        assert received[0]["Attributes"]["ApproximateReceiveCount"] == "1"
        assert [m.queue_url for m in deployment.queue_mappings] == [queue_url]


# Secrets, delayed queues, and functions told the API's URL ------------------------------


def test_secrets_get_their_value_or_one_generated_by_the_templates_rules(
    aws: DeployContext,
) -> None:
    generated = {"PasswordLength": 64, "ExcludePunctuation": True}
    templated = {
        "SecretStringTemplate": json.dumps({"user": "app"}),
        "GenerateStringKey": "password",
        "PasswordLength": 20,
        "ExcludeCharacters": "abc",
    }
    template = {
        "Resources": {
            "Key": _resource(
                "AWS::SecretsManager::Secret",
                {"Description": "an HMAC key", "GenerateSecretString": generated},
            ),
            "Login": _resource("AWS::SecretsManager::Secret", {"GenerateSecretString": templated}),
            "Given": _resource(
                "AWS::SecretsManager::Secret", {"Name": "given", "SecretString": "s3cret"}
            ),
        },
        "Outputs": {"KeyArn": {"Value": _ref("Key")}, "KeyId": {"Value": _att("Key", "Id")}},
    }
    deployment = deploy(template, aws)
    secrets = aws.client("secretsmanager")
    key_arn = deployment.outputs["KeyArn"]
    # Ref and Id are the secret's ARN, as in CloudFormation.
    assert deployment.outputs["KeyId"] == key_arn
    key = secrets.get_secret_value(SecretId=key_arn)["SecretString"]
    assert re.fullmatch(r"[A-Za-z0-9]{64}", key)
    assert secrets.describe_secret(SecretId=key_arn)["Description"] == "an HMAC key"
    login = json.loads(
        secrets.get_secret_value(SecretId=deployment.resources["Login"].physical_id)["SecretString"]
    )
    assert login["user"] == "app"
    assert len(login["password"]) == 20 and not set("abc") & set(login["password"])
    assert secrets.get_secret_value(SecretId="given")["SecretString"] == "s3cret"


def test_a_secret_without_a_value_or_a_generator_is_refused(aws: DeployContext) -> None:
    template = {"Resources": {"Empty": _resource("AWS::SecretsManager::Secret")}}
    with pytest.raises(DeployError, match=r"Empty .*SecretString or GenerateSecretString"):
        deploy(template, aws)


def _delays(context: DeployContext) -> dict[str, str]:
    template = {
        "Resources": {
            "Delayed": _resource("AWS::SQS::Queue", {"DelaySeconds": 60}),
            "Brief": _resource("AWS::SQS::Queue", {"DelaySeconds": 1}),
            "Prompt": _resource("AWS::SQS::Queue"),
        }
    }
    deployment = deploy(template, context)
    sqs = context.client("sqs")
    return {
        logical_id: sqs.get_queue_attributes(
            QueueUrl=deployment.resources[logical_id].physical_id,
            AttributeNames=["DelaySeconds"],
        )["Attributes"]["DelaySeconds"]
        for logical_id in template["Resources"]
    }


def test_queue_delays_reach_sqs_and_can_be_capped_locally() -> None:
    with fresh_moto():
        assert _delays(DeployContext(region=REGION)) == {
            "Delayed": "60",
            "Brief": "1",
            "Prompt": "0",
        }
    with fresh_moto():
        capped = DeployContext(region=REGION, max_queue_delay_seconds=2)
        assert _delays(capped) == {"Delayed": "2", "Brief": "1", "Prompt": "0"}


def test_a_delayed_queue_holds_messages_back() -> None:
    with fresh_moto():
        context = DeployContext(region=REGION, max_queue_delay_seconds=1)
        template = {"Resources": {"Delayed": _resource("AWS::SQS::Queue", {"DelaySeconds": 60})}}
        queue_url = deploy(template, context).resources["Delayed"].physical_id
        sqs = context.client("sqs")
        sqs.send_message(QueueUrl=queue_url, MessageBody="later")
        assert "Messages" not in sqs.receive_message(QueueUrl=queue_url)
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]
        assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
        time.sleep(1.1)
        received = sqs.receive_message(QueueUrl=queue_url)["Messages"]
        assert [m["Body"] for m in received] == ["later"]


def _function_environment(context: DeployContext, variables: dict[str, str]) -> dict[str, str]:
    template = {
        "Resources": {
            "Role": _role("lambda.amazonaws.com"),
            "Fn": _function("functions.core.health.handler", Environment={"Variables": variables}),
        }
    }
    name = deploy(template, context).resources["Fn"].physical_id
    configuration = context.client("lambda").get_function_configuration(FunctionName=name)
    environment: dict[str, str] = configuration["Environment"]["Variables"]
    return environment


def test_functions_told_a_stage_url_are_told_the_local_api_instead() -> None:
    variables = {
        "UNSUBSCRIBE_URL": f"https://a1b2c3d4e5.execute-api.{REGION}.amazonaws.com/prod/v1/unsubscribe",
        "STAGE_URL": f"https://a1b2c3d4e5.execute-api.{REGION}.amazonaws.com/prod",
        "ELSEWHERE": "https://example.com/prod/v1/unsubscribe",
        "TABLE": "rebates-customers",
    }
    with fresh_moto():
        # As the template says, where no local API is given.
        assert _function_environment(DeployContext(region=REGION), variables) == variables
    with fresh_moto():
        local = DeployContext(region=REGION, local_api_url="http://127.0.0.1:3999")
        assert _function_environment(local, variables) == {
            **variables,
            "UNSUBSCRIBE_URL": "http://127.0.0.1:3999/v1/unsubscribe",
            "STAGE_URL": "http://127.0.0.1:3999",
        }


def test_an_email_subscription_is_made_in_moto(aws: DeployContext) -> None:
    template = {
        "Resources": {
            "Marketers": _resource("AWS::SNS::Topic", {"DisplayName": "marketers"}),
            "Mail": _resource(
                "AWS::SNS::Subscription",
                {
                    "TopicArn": _ref("Marketers"),
                    "Protocol": "email",
                    "Endpoint": "marketing@example.com",
                },
            ),
        }
    }
    deployment = deploy(template, aws)
    sns = aws.client("sns")
    topic = deployment.resources["Marketers"].physical_id
    (subscription,) = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == (
        "email",
        "marketing@example.com",
    )
    # Publishing to the topic works whether or not the address confirmed.
    assert sns.publish(TopicArn=topic, Message="a campaign file was rejected")["MessageId"]
