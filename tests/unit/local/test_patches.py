"""The moto patches: still applicable to the installed moto, and doing what they claim."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler
from moto.s3 import notifications as s3_notifications_module
from moto.s3.models import S3Backend
from moto.sqs.models import Queue

from infra.local import patches
from infra.local.environment import install_overlay, uninstall_overlay
from infra.local.lambdas import LambdaRuntime
from infra.local.patches import (
    dynamodb_transactions,
    registry,
    s3_delete_notifications,
    s3_notifications,
    transaction_tokens,
)
from infra.local.server import SerialGate

ROOT = Path(__file__).resolve().parents[3]
REGION = "ap-northeast-1"
HANDLERS = "tests.integration.local.handlers"
RUNTIME_ENV = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}


def test_every_patch_still_fits_the_installed_moto() -> None:
    problems = patches.verify()
    assert problems == [], (
        "moto changed under infra/local/patches/; the local cloud would not run the "
        "real handlers (or SQS/Step Functions would misbehave). Fix each patch, re-run "
        "the integration tests, then update PINNED_MOTO_VERSION:\n- " + "\n- ".join(problems)
    )


def test_verify_names_what_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto
    from moto.sqs.models import SQSBackend

    def renamed(self: Any, payload: Any) -> Any:
        return None

    def rewritten(self: Any, *args: Any) -> list[Any]:
        return []

    monkeypatch.setattr(moto, "__version__", "9.9.9")
    monkeypatch.setattr(LambdaFunction, "_invoke_lambda", renamed)
    monkeypatch.setattr(SQSBackend, "receive_message", rewritten)

    problems = "\n".join(patches.verify())

    assert "moto 9.9.9 is installed" in problems
    assert "LambdaFunction._invoke_lambda: parameters are now ['self', 'payload']" in problems
    assert "SQSBackend.receive_message no longer contains" in problems
    with pytest.raises(patches.PatchError, match="cannot patch moto"):
        patches.apply(LambdaRuntime(SerialGate(), RUNTIME_ENV, project_root=ROOT))
    assert patches.active_runtime() is None


@pytest.fixture
def runtime() -> Iterator[LambdaRuntime]:
    install_overlay()
    runtime = LambdaRuntime(SerialGate(), RUNTIME_ENV, project_root=ROOT)
    patches.apply(runtime)
    try:
        yield runtime
    finally:
        patches.revert()
        runtime.close()
        uninstall_overlay()


def test_apply_and_revert_restore_moto() -> None:
    original_invoke = LambdaFunction._invoke_lambda
    original_wait = Queue.wait_for_messages
    original_transact = DynamoDBBackend.transact_write_items
    original_handler = DynamoHandler.transact_write_items
    original_delete = S3Backend.delete_object
    original_notify = s3_notifications_module._invoke_awslambda
    install_overlay()
    try:
        first = LambdaRuntime(SerialGate(), RUNTIME_ENV, project_root=ROOT)
        second = LambdaRuntime(SerialGate(), RUNTIME_ENV, project_root=ROOT)
        patches.apply(first)
        assert LambdaFunction._invoke_lambda is not original_invoke
        assert DynamoDBBackend.transact_write_items is dynamodb_transactions._transact_write_items
        assert DynamoHandler.transact_write_items is transaction_tokens._transact_write_items_once
        assert S3Backend.delete_object is s3_delete_notifications._delete_object
        assert s3_notifications_module._invoke_awslambda is s3_notifications._invoke_awslambda
        assert patches.verify() == []  # checks the originals while patched
        patches.apply(second)
        assert patches.active_runtime() is second
        patches.revert()
        assert patches.active_runtime() is first
        patches.revert()
    finally:
        uninstall_overlay()
    assert patches.active_runtime() is None
    assert LambdaFunction._invoke_lambda is original_invoke
    assert Queue.wait_for_messages is original_wait
    assert DynamoHandler.transact_write_items is original_handler
    assert s3_notifications_module._invoke_awslambda is original_notify
    # (Also these, unless a test installed them for good: then they stay installed.)
    assert DynamoDBBackend.transact_write_items is original_transact
    assert S3Backend.delete_object is original_delete


def test_a_patch_installed_for_good_while_applied_outlives_revert(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moto_own = registry.original(DynamoDBBackend, "transact_write_items")
    moto_handler = registry.original(DynamoHandler, "transact_write_items")
    monkeypatch.setattr(registry, "_lasting", [])
    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", moto_own)
    monkeypatch.setattr(DynamoHandler, "transact_write_items", moto_handler)
    install_overlay()
    try:
        patches.apply(LambdaRuntime(SerialGate(), RUNTIME_ENV, project_root=ROOT))
        patches.patch_dynamodb_transactions()
        patches.revert()
    finally:
        uninstall_overlay()
    assert DynamoDBBackend.transact_write_items is dynamodb_transactions._transact_write_items
    assert registry.original(DynamoDBBackend, "transact_write_items") is moto_own
    # Only the cost patch is installed for good; the token patch is the local cloud's.
    assert DynamoHandler.transact_write_items is moto_handler


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("placeholder.py", "")
    return buffer.getvalue()


def _function(handler: str, environment: dict[str, str] | None = None) -> dict[str, Any]:
    iam = boto3.client("iam", region_name=REGION)
    try:
        role = iam.get_role(RoleName="patches-role")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName="patches-role", AssumeRolePolicyDocument="{}")["Role"][
            "Arn"
        ]
    created: dict[str, Any] = boto3.client("lambda", region_name=REGION).create_function(
        FunctionName=f"patches-{uuid.uuid4().hex[:8]}",
        Runtime="python3.12",
        Role=role,
        Handler=f"{HANDLERS}.{handler}",
        Code={"ZipFile": _zip()},
        Environment={"Variables": environment or {}},
    )
    return created


@mock_aws
def test_invoke_runs_the_real_handler_with_its_environment(runtime: LambdaRuntime) -> None:
    fn = _function("read_env", {"GREETING": "konnichiwa"})
    response = boto3.client("lambda", region_name=REGION).invoke(
        FunctionName=fn["FunctionName"],
        Payload=json.dumps({"keys": ["GREETING", "AWS_LAMBDA_FUNCTION_NAME"]}),
    )
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read())["environ"] == {
        "GREETING": "konnichiwa",
        "AWS_LAMBDA_FUNCTION_NAME": fn["FunctionName"],
    }


@mock_aws
def test_an_empty_payload_is_an_empty_event(runtime: LambdaRuntime) -> None:
    fn = _function("echo")
    response = boto3.client("lambda", region_name=REGION).invoke(FunctionName=fn["FunctionName"])
    assert json.loads(response["Payload"].read())["event"] == {}


@mock_aws
def test_a_raising_handler_is_a_function_error_with_its_type(runtime: LambdaRuntime) -> None:
    fn = _function("fail_verification")
    response = boto3.client("lambda", region_name=REGION).invoke(
        FunctionName=fn["FunctionName"], Payload=b'{"claim": "c-9"}', LogType="Tail"
    )
    assert response["FunctionError"]  # moto says "Handled" where Lambda says "Unhandled"
    document = json.loads(response["Payload"].read())
    assert document["errorType"] == "VerificationFailed"
    assert document["errorMessage"] == "VerificationFailed for {'claim': 'c-9'}"
    assert document["requestId"] == runtime.history[-1].request_id
    assert isinstance(document["stackTrace"], list)
    tail = base64.b64decode(response["LogResult"]).decode()
    assert "[ERROR] VerificationFailed" in tail


@mock_aws
def test_invocation_logs_go_to_cloudwatch_logs(runtime: LambdaRuntime) -> None:
    fn = _function("printing")
    boto3.client("lambda", region_name=REGION).invoke(
        FunctionName=fn["FunctionName"], Payload=b'{"say": "logged line"}'
    )
    events = boto3.client("logs", region_name=REGION).filter_log_events(
        logGroupName=f"/aws/lambda/{fn['FunctionName']}"
    )["events"]
    assert [e["message"] for e in events] == ["logged line"]


@mock_aws
def test_sns_and_s3_deliver_parsed_events_through_the_hook(runtime: LambdaRuntime) -> None:
    fn = _function("echo")
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="patches-topic")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=fn["FunctionArn"])
    sns.publish(TopicArn=topic, Message="to lambda")
    sns_event = runtime.wait_for(lambda i: i.function_name == fn["FunctionName"], 2).event
    assert sns_event["Records"][0]["Sns"]["Message"] == "to lambda"

    runtime.clear_history()
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(
        Bucket="patches-bucket", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    s3.put_bucket_notification_configuration(
        Bucket="patches-bucket",
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {"LambdaFunctionArn": fn["FunctionArn"], "Events": ["s3:ObjectCreated:*"]}
            ]
        },
    )
    s3.put_object(Bucket="patches-bucket", Key="in/a.csv", Body=b"x")
    s3_event = runtime.wait_for(lambda i: i.function_name == fn["FunctionName"], 2).event
    assert s3_event["Records"][0]["s3"]["object"]["key"] == "in%2Fa.csv"  # moto URL-encodes


@mock_aws
def test_a_delete_marker_reaches_a_lambda_and_transactions_are_patched(
    runtime: LambdaRuntime,
) -> None:
    fn = _function("echo")
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(
        Bucket="patches-versioned", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    s3.put_bucket_versioning(
        Bucket="patches-versioned", VersioningConfiguration={"Status": "Enabled"}
    )
    s3.put_bucket_notification_configuration(
        Bucket="patches-versioned",
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {"LambdaFunctionArn": fn["FunctionArn"], "Events": ["s3:ObjectRemoved:*"]}
            ]
        },
    )
    s3.put_object(Bucket="patches-versioned", Key="in/a.csv", Body=b"x")
    s3.delete_object(Bucket="patches-versioned", Key="in/a.csv")
    event = runtime.wait_for(lambda i: i.function_name == fn["FunctionName"], 2).event
    assert event["Records"][0]["eventName"] == "ObjectRemoved:DeleteMarkerCreated"
    assert DynamoDBBackend.transact_write_items is dynamodb_transactions._transact_write_items


@mock_aws
def test_a_transaction_repeated_with_its_token_applies_once(runtime: LambdaRuntime) -> None:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName="patches-tokens",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    add_one = {
        "Update": {
            "TableName": "patches-tokens",
            "Key": {"pk": {"S": "counter"}},
            "UpdateExpression": "ADD uses :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }
    # An SDK retry after a lost response: the same request, the same token.
    for _ in range(2):
        dynamodb.transact_write_items(TransactItems=[add_one], ClientRequestToken="pay-1")
    item = dynamodb.get_item(TableName="patches-tokens", Key={"pk": {"S": "counter"}})["Item"]
    assert item["uses"] == {"N": "1"}
    add_one["Update"]["ExpressionAttributeValues"] = {":one": {"N": "2"}}
    with pytest.raises(ClientError, match="IdempotentParameterMismatch"):
        dynamodb.transact_write_items(TransactItems=[add_one], ClientRequestToken="pay-1")
    dynamodb.transact_write_items(TransactItems=[add_one], ClientRequestToken="pay-2")
    item = dynamodb.get_item(TableName="patches-tokens", Key={"pk": {"S": "counter"}})["Item"]
    assert item["uses"] == {"N": "3"}


@mock_aws
def test_a_detached_sqs_mapping_is_listed_but_no_longer_delivered_by_moto(
    runtime: LambdaRuntime,
) -> None:
    fn = _function("echo")
    sqs = boto3.client("sqs", region_name=REGION)
    awslambda = boto3.client("lambda", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="patches-queue")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    mapping = awslambda.create_event_source_mapping(
        EventSourceArn=queue_arn, FunctionName=fn["FunctionArn"]
    )

    sqs.send_message(QueueUrl=queue_url, MessageBody="moto delivers")
    delivered = runtime.wait_for(lambda i: i.function_name == fn["FunctionName"], 2).event
    # What moto delivers on its own: a fixed receive count, timestamps and sender.
    assert delivered["Records"][0]["attributes"]["ApproximateReceiveCount"] == "1"
    assert delivered["Records"][0]["attributes"]["SentTimestamp"] == "1545082649183"

    patches.detach_sqs_event_source(queue_arn, mapping["FunctionArn"])
    runtime.clear_history()
    sqs.send_message(QueueUrl=queue_url, MessageBody="stays in the queue")
    assert runtime.history == []
    # (moto filters FunctionName by the exact string the mapping was created with.)
    listed = awslambda.list_event_source_mappings(EventSourceArn=queue_arn)
    assert [m["UUID"] for m in listed["EventSourceMappings"]] == [mapping["UUID"]]

    with pytest.raises(LookupError, match="no event source mapping"):
        patches.detach_sqs_event_source(queue_arn, mapping["FunctionArn"])
    with pytest.raises(ValueError, match="not an SQS queue ARN"):
        patches.detach_sqs_event_source(fn["FunctionArn"], mapping["FunctionArn"])


@mock_aws
def test_a_detached_kinesis_mapping_is_listed_but_no_longer_delivered_by_moto(
    runtime: LambdaRuntime,
) -> None:
    fn, other = _function("echo"), _function("echo")
    kinesis = boto3.client("kinesis", region_name=REGION)
    awslambda = boto3.client("lambda", region_name=REGION)
    kinesis.create_stream(StreamName="patches-stream", ShardCount=1)
    stream_arn = kinesis.describe_stream_summary(StreamName="patches-stream")[
        "StreamDescriptionSummary"
    ]["StreamARN"]
    mapping = awslambda.create_event_source_mapping(
        EventSourceArn=stream_arn, FunctionName=fn["FunctionArn"], StartingPosition="LATEST"
    )

    kinesis.put_record(StreamARN=stream_arn, Data=b"moto delivers", PartitionKey="k")
    # What moto does on its own: the function runs inside PutRecord, one record each.
    delivered = runtime.wait_for(lambda i: i.function_name == fn["FunctionName"], 2).event
    assert len(delivered["Records"]) == 1

    with pytest.raises(LookupError, match="no event source mapping"):
        patches.detach_kinesis_source(stream_arn, other["FunctionArn"])
    patches.detach_kinesis_source(stream_arn, mapping["FunctionArn"])
    runtime.clear_history()
    kinesis.put_records(
        StreamARN=stream_arn,
        Records=[{"Data": b"stays in the stream", "PartitionKey": "k"}],
    )
    assert runtime.history == []
    listed = awslambda.list_event_source_mappings(EventSourceArn=stream_arn)
    assert [m["UUID"] for m in listed["EventSourceMappings"]] == [mapping["UUID"]]

    with pytest.raises(LookupError, match="no event source mapping"):
        patches.detach_kinesis_source(stream_arn, mapping["FunctionArn"])
    with pytest.raises(LookupError, match="no stream"):
        patches.detach_kinesis_source(stream_arn + "-gone", mapping["FunctionArn"])
    with pytest.raises(ValueError, match="not a Kinesis stream ARN"):
        patches.detach_kinesis_source(f"{stream_arn}/consumer/c:1", mapping["FunctionArn"])


def test_verify_names_a_moved_kinesis_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.kinesis.models import Stream

    def rewritten(self: Any, partition_key: str, explicit_hash_key: str, data: str) -> Any:
        return None

    monkeypatch.setattr(Stream, "put_record", rewritten)

    problems = "\n".join(patches.verify())

    assert "Stream.put_record no longer contains" in problems
    assert "detach_kinesis_source" in problems


def _run_state_machine(definition: dict[str, Any], timeout: float = 5) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name=f"patches-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/patches-sfn",
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name=f"run-{uuid.uuid4()}", input="{}")
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution["executionArn"])
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.02)


@mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
def test_step_functions_retry_and_catch_see_the_handlers_error_type(
    runtime: LambdaRuntime,
) -> None:
    fn = _function("fail_verification")
    patches.set_step_functions_time_scale(0.001)
    started = time.monotonic()
    described = _run_state_machine(
        {
            "StartAt": "Pause",
            "States": {
                "Pause": {"Type": "Wait", "Seconds": 60, "Next": "Verify"},
                "Verify": {
                    "Type": "Task",
                    "Resource": fn["FunctionArn"],
                    "Retry": [
                        {
                            "ErrorEquals": ["VerificationFailed"],
                            "IntervalSeconds": 30,
                            "MaxAttempts": 1,
                        }
                    ],
                    "Catch": [
                        {
                            "ErrorEquals": ["VerificationFailed"],
                            "ResultPath": "$.error",
                            "Next": "Caught",
                        }
                    ],
                    "End": True,
                },
                "Caught": {"Type": "Pass", "End": True},
            },
        }
    )
    assert time.monotonic() - started < 5  # 60 s wait and 30 s retry, scaled
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"])["error"]["Error"] == "VerificationFailed"
    attempts = [i for i in runtime.history if i.function_name == fn["FunctionName"]]
    assert len(attempts) == 2


def test_the_time_scale_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        patches.set_step_functions_time_scale(0)
