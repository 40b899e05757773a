"""The runtime layer over HTTP: moto as a server, the gate, real handlers, Step Functions
and SQS pollers, on the session's local cloud (free ports, never 4566).
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from infra.local import patches
from infra.local.cloud import LocalCloud
from infra.local.lambdas import LambdaRuntime
from infra.local.pollers import Pollers, QueueMapping, SqsPoller
from infra.local.server import MotoServer, PortInUse

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
REGION = "ap-northeast-1"
HANDLERS = "tests.integration.local.handlers"


@dataclass
class Cloud:
    server: MotoServer
    runtime: LambdaRuntime
    client: Callable[[str], Any]
    role_arn: str

    def function(self, handler: str, environment: dict[str, str] | None = None) -> dict[str, Any]:
        created: dict[str, Any] = self.client("lambda").create_function(
            FunctionName=f"rt-{handler.replace('_', '-')}-{uuid.uuid4().hex[:8]}",
            Runtime="python3.12",
            Role=self.role_arn,
            Handler=f"{HANDLERS}.{handler}",
            Code={"ZipFile": _zip()},
            Timeout=10,
            Environment={"Variables": environment or {}},
        )
        return created

    def queue(self, name: str, **attributes: str) -> tuple[str, str]:
        sqs = self.client("sqs")
        url: str = sqs.create_queue(
            QueueName=f"{name}-{uuid.uuid4().hex[:8]}", Attributes=attributes
        )["QueueUrl"]
        arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        return url, arn

    def poller(
        self, fn: dict[str, Any], queue_url: str, queue_arn: str, **options: Any
    ) -> SqsPoller:
        """A moto mapping (as the deployer creates it), detached, and a poller for it."""
        mapping = self.client("lambda").create_event_source_mapping(
            EventSourceArn=queue_arn, FunctionName=fn["FunctionArn"], BatchSize=10
        )
        patches.detach_sqs_event_source(queue_arn, mapping["FunctionArn"])
        retry_delay_seconds = options.pop("retry_delay_seconds", 0)
        return SqsPoller(
            self.runtime,
            QueueMapping(
                uuid=mapping["UUID"],
                function_name=fn["FunctionName"],
                queue_url=queue_url,
                queue_arn=queue_arn,
                **options,
            ),
            sqs_client=self.client("sqs"),
            retry_delay_seconds=retry_delay_seconds,
        )


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("placeholder.py", "")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def cloud(cloud: LocalCloud) -> Cloud:
    """The session's local cloud, seen through the runtime layer it is built on.

    One local cloud per process: moto's backends and the Lambda hook are process-wide.
    """
    assert cloud.server is not None
    assert cloud.runtime is not None
    endpoint = cloud.server.endpoint
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    # A deadlock must fail the test, not hang it; no retries hide a failed call.
    config = Config(read_timeout=15, retries={"total_max_attempts": 1})

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint, config=config)

    role = client("iam").create_role(
        RoleName=f"rt-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument="{}"
    )
    return Cloud(cloud.server, cloud.runtime, client, role["Role"]["Arn"])


def test_a_busy_port_is_a_clear_error(cloud: Cloud) -> None:
    with pytest.raises(PortInUse, match=rf"127.0.0.1:{cloud.server.port} is already in use"):
        MotoServer(port=cloud.server.port).start()


def test_the_server_enables_step_functions_and_sets_moto_port(cloud: Cloud) -> None:
    from moto.core.config import default_user_config

    assert default_user_config["stepfunctions"] == {"execute_state_machine": True}
    assert os.environ["MOTO_PORT"] == str(cloud.server.port)
    # A second server (another test's cloud) hands both back when it stops.
    with MotoServer(port=0) as other:
        assert os.environ["MOTO_PORT"] == str(other.port)
        assert other.endpoint == f"http://127.0.0.1:{other.port}"
    assert os.environ["MOTO_PORT"] == str(cloud.server.port)
    assert default_user_config["stepfunctions"] == {"execute_state_machine": True}


def test_invoke_runs_a_handler_that_calls_back_into_moto(cloud: Cloud) -> None:
    dynamodb = cloud.client("dynamodb")
    table = f"rt-items-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    fn = cloud.function("dynamodb_round_trip")

    # The Invoke request holds the gate while the handler runs; the handler's own
    # DynamoDB calls get through only because the runtime releases it.
    response = cloud.client("lambda").invoke(
        FunctionName=fn["FunctionName"], Payload=json.dumps({"table": table, "pk": "item-1"})
    )

    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {
        "by": fn["FunctionName"],
        "endpoint": cloud.server.endpoint,
    }


@pytest.mark.parametrize("style", ["function-arn", "lambda:invoke"])
def test_a_state_machine_catches_the_handlers_error_type(cloud: Cloud, style: str) -> None:
    fn = cloud.function("fail_verification")
    task: dict[str, Any] = (
        {"Resource": fn["FunctionArn"]}
        if style == "function-arn"
        # The shape CDK's LambdaInvoke synthesizes.
        else {
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": fn["FunctionArn"], "Payload.$": "$"},
        }
    )
    definition = {
        "StartAt": "Verify purchase",
        "States": {
            "Verify purchase": {
                "Type": "Task",
                **task,
                "Catch": [
                    {
                        "ErrorEquals": ["VerificationFailed"],
                        "ResultPath": "$.error",
                        "Next": "Rejected",
                    },
                    {"ErrorEquals": ["States.ALL"], "Next": "Broken"},
                ],
                "End": True,
            },
            "Rejected": {"Type": "Pass", "End": True},
            "Broken": {"Type": "Fail"},
        },
    }
    sfn = cloud.client("stepfunctions")
    machine = sfn.create_state_machine(
        name=f"rt-claims-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/rt-states",
    )["stateMachineArn"]
    execution = sfn.start_execution(
        stateMachineArn=machine, name=f"claim-{uuid.uuid4()}", input=json.dumps({"claim": "c-1"})
    )["executionArn"]

    deadline = time.monotonic() + 10
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not finish"
        time.sleep(0.05)

    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["claim"] == "c-1"
    assert output["error"]["Error"] == "VerificationFailed"
    assert json.loads(output["error"]["Cause"])["errorMessage"].startswith("VerificationFailed for")


def test_a_poison_message_lands_in_the_dlq_after_max_receives(cloud: Cloud) -> None:
    dlq_url, dlq_arn = cloud.queue("rt-dlq")
    queue_url, queue_arn = cloud.queue(
        "rt-work",
        VisibilityTimeout="30",
        RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
    )
    fn = cloud.function("fail_value_error")
    pollers = Pollers([cloud.poller(fn, queue_url, queue_arn)])
    pollers.start()
    try:
        sqs = cloud.client("sqs")
        sqs.send_message(QueueUrl=queue_url, MessageBody="poison")

        deadline = time.monotonic() + 10
        dead: list[dict[str, Any]] = []
        while not dead:
            assert time.monotonic() < deadline, "the message never reached the DLQ"
            dead = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1).get("Messages", [])
        assert dead[0]["Body"] == "poison"
        assert pollers.wait_idle(5)
    finally:
        pollers.stop()

    attempts = [i for i in cloud.runtime.history if i.function_name == fn["FunctionName"]]
    assert [a.error_type for a in attempts] == ["ValueError", "ValueError"]
    counts = [a.event["Records"][0]["attributes"]["ApproximateReceiveCount"] for a in attempts]
    assert counts == ["1", "2"]


def test_a_partial_batch_failure_deletes_only_the_successes(cloud: Cloud) -> None:
    queue_url, queue_arn = cloud.queue("rt-batch", VisibilityTimeout="30")
    fn = cloud.function("partial_failures")
    sqs = cloud.client("sqs")
    # Queued before the poller starts, so they arrive as one batch.
    sqs.send_message_batch(
        QueueUrl=queue_url,
        Entries=[
            {
                "Id": "ok1",
                "MessageBody": "ok one",
                "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "order"}},
            },
            {"Id": "bad", "MessageBody": "fail me"},
            {"Id": "ok2", "MessageBody": "ok two"},
        ],
    )
    # A long retry delay keeps the failed message out of sight for the assertions.
    poller = cloud.poller(
        fn, queue_url, queue_arn, report_batch_item_failures=True, retry_delay_seconds=60
    )
    poller.start()
    try:
        invocation = cloud.runtime.wait_for(lambda i: i.function_name == fn["FunctionName"], 5)
        deadline = time.monotonic() + 5
        while poller.busy:  # until the batch is settled (deleted / put back)
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        poller.stop()

    records = invocation.event["Records"]
    assert [r["body"] for r in records] == ["ok one", "fail me", "ok two"]
    first = records[0]
    assert first["eventSource"] == "aws:sqs"
    assert first["eventSourceARN"] == queue_arn
    assert first["awsRegion"] == REGION
    assert first["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(
        first["attributes"]
    )
    assert first["messageAttributes"] == {
        "kind": {
            "stringValue": "order",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        }
    }
    assert len(first["md5OfBody"]) == 32

    counts = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    # The two successes are deleted; the failure waits out its retry delay.
    assert counts == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "1",
    }


def test_concurrent_conditional_writes_are_atomic(cloud: Cloud) -> None:
    table = f"rt-counter-{uuid.uuid4().hex[:8]}"
    setup = cloud.client("dynamodb")
    setup.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    clients = [cloud.client("dynamodb") for _ in range(20)]

    def issue(client: Any, start: threading.Barrier, outcomes: list[str]) -> None:
        start.wait()
        try:
            client.update_item(
                TableName=table,
                Key={"pk": {"S": "codes"}},
                UpdateExpression="ADD issued :one",
                ConditionExpression="issued < :limit",
                ExpressionAttributeValues={":one": {"N": "1"}, ":limit": {"N": "10"}},
            )
            outcomes.append("issued")
        except client.exceptions.ConditionalCheckFailedException:
            outcomes.append("refused")

    # Without the gate moto's check-then-write interleaves only now and then; switching
    # threads far more often than the default 5 ms makes a lost race show up.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for _ in range(3):
            setup.put_item(TableName=table, Item={"pk": {"S": "codes"}, "issued": {"N": "0"}})
            start = threading.Barrier(len(clients))
            outcomes: list[str] = []
            threads = [threading.Thread(target=issue, args=(c, start, outcomes)) for c in clients]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=15)

            assert outcomes.count("issued") == 10
            assert outcomes.count("refused") == 10
            key = {"pk": {"S": "codes"}}
            item = setup.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
            assert item["issued"] == {"N": "10"}
    finally:
        sys.setswitchinterval(interval)


def test_a_long_poll_does_not_hold_up_other_requests(cloud: Cloud) -> None:
    queue_url, _ = cloud.queue("rt-longpoll")
    waiting = threading.Thread(
        target=lambda: cloud.client("sqs").receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)
    )
    waiting.start()
    time.sleep(0.2)  # the receive is now waiting inside moto
    try:
        started = time.monotonic()
        cloud.client("sqs").list_queues()
        assert time.monotonic() - started < 0.5
    finally:
        waiting.join()


def test_a_task_token_wait_resumes_on_send_task_success(cloud: Cloud) -> None:
    """The review step's shape: a task waits until an operator's decision returns its token."""
    queue_url, _ = cloud.queue("rt-review")
    definition = {
        "StartAt": "Wait for review",
        "States": {
            "Wait for review": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": queue_url,
                    "MessageBody": {"claim.$": "$.claim", "token.$": "$$.Task.Token"},
                },
                "TimeoutSeconds": 60,
                "End": True,
            }
        },
    }
    sfn = cloud.client("stepfunctions")
    machine = sfn.create_state_machine(
        name=f"rt-review-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/rt-states",
    )["stateMachineArn"]
    execution = sfn.start_execution(
        stateMachineArn=machine, name=f"claim-{uuid.uuid4()}", input='{"claim": "c-9"}'
    )["executionArn"]

    sqs = cloud.client("sqs")
    deadline = time.monotonic() + 10
    messages: list[dict[str, Any]] = []
    while not messages:
        assert time.monotonic() < deadline, "the task never sent its token"
        messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
    request = json.loads(messages[0]["Body"])
    assert request["claim"] == "c-9"
    assert sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"

    sfn.send_task_success(taskToken=request["token"], output='{"decision": "approve"}')
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not resume"
        time.sleep(0.05)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == {"decision": "approve"}
