"""S3 notifications reach Lambda asynchronously, as S3 sends them: after the upload
returns, in order per object key, retried twice, then parked with their cause.

moto runs in-process (`mock_aws`) with the local cloud's patches and a runtime running
the handlers of `tests.unit.local.async_handlers`, as the local cloud wires them.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.local import patches
from infra.local.async_invocations import AsyncInvocations
from infra.local.deploy.records import AsyncInvocationRecord
from infra.local.environment import install_overlay, uninstall_overlay
from infra.local.lambdas import LambdaRuntime
from infra.local.pollers import Pollers
from infra.local.server import SerialGate
from tests.unit.local import async_handlers

ROOT = Path(__file__).resolve().parents[3]
REGION = "ap-northeast-1"
ACCOUNT = "123456789012"
HANDLERS = "tests.unit.local.async_handlers"
RUNTIME_ENV = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}


def _client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "runs in-process")
    return buffer.getvalue()


@dataclass
class Cloud:
    runtime: LambdaRuntime
    invocations: AsyncInvocations
    pollers: Pollers
    s3: Any
    sqs: Any

    def function(self, name: str, handler: str) -> str:
        role = _client("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")
        created = _client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role["Role"]["Arn"],
            Handler=f"{HANDLERS}.{handler}",
            Code={"ZipFile": _zip()},
        )
        return str(created["FunctionArn"])

    def bucket(self, name: str, function_arn: str, *, versioned: bool = False) -> str:
        self.s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        if versioned:
            self.s3.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": "Enabled"}
            )
        self.s3.put_bucket_notification_configuration(
            Bucket=name,
            NotificationConfiguration={
                "LambdaFunctionConfigurations": [
                    {
                        "LambdaFunctionArn": function_arn,
                        "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                    }
                ]
            },
        )
        return name

    def queue(self, name: str) -> tuple[str, str]:
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, str(arn["Attributes"]["QueueArn"])

    def configure(self, config: AsyncInvocationRecord) -> None:
        self.invocations._configs[config.function_name] = config

    def settle(self, timeout: float = 10.0) -> None:
        assert self.pollers.wait_idle(timeout), "asynchronous invocations still pending"


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    async_handlers.reset()
    with mock_aws():
        install_overlay()
        runtime = LambdaRuntime(SerialGate(), RUNTIME_ENV, project_root=ROOT, echo_logs=False)
        patches.apply(runtime)
        invocations = AsyncInvocations(
            runtime, {}, client=_client, region=REGION, account_id=ACCOUNT, workers=2
        )
        runtime.async_queue = invocations
        pollers = Pollers([invocations])
        pollers.start()
        try:
            yield Cloud(runtime, invocations, pollers, _client("s3"), _client("sqs"))
        finally:
            async_handlers.RELEASE.set()
            pollers.stop()
            patches.revert()
            runtime.close()
            uninstall_overlay()


def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"not within {timeout} s"
        time.sleep(0.02)
    return result


def test_put_object_returns_before_the_notified_function_runs(cloud: Cloud) -> None:
    bucket = cloud.bucket("uploads", cloud.function("recorder", "record_upload"))

    started = time.monotonic()
    cloud.s3.put_object(Bucket=bucket, Key="wait-for-upload/campaign.yaml", Body=b"id: x")
    took = time.monotonic() - started
    async_handlers.UPLOAD_RETURNED.set()
    cloud.settle()

    (delivery,) = async_handlers.deliveries()
    # The function was still waiting for the upload to return: it ran after it.
    assert delivery.upload_had_returned
    assert delivery.key == "wait-for-upload/campaign.yaml"
    assert took < 2.0


def test_events_of_one_key_arrive_in_order_and_other_keys_do_not_wait(cloud: Cloud) -> None:
    bucket = cloud.bucket("files", cloud.function("recorder", "record_upload"), versioned=True)

    cloud.s3.put_object(Bucket=bucket, Key="held/spring.yaml", Body=b"1")
    cloud.s3.put_object(Bucket=bucket, Key="free/summer.yaml", Body=b"2")
    cloud.s3.delete_object(Bucket=bucket, Key="held/spring.yaml")
    # The other key is delivered while the first one's put is still being handled...
    eventually(lambda: [d for d in async_handlers.deliveries() if d.key == "free/summer.yaml"])
    time.sleep(0.2)
    # ...and the delete of the held key waits for its put.
    assert [d.key for d in async_handlers.deliveries()] == ["free/summer.yaml"]
    async_handlers.RELEASE.set()
    cloud.settle()

    held = [d for d in async_handlers.deliveries() if d.key == "held/spring.yaml"]
    assert [d.event_name for d in held] == [
        "ObjectCreated:Put",
        "ObjectRemoved:DeleteMarkerCreated",
    ]
    put, delete = held
    assert put.finished <= delete.started


def test_a_busy_queue_delivers_every_event(cloud: Cloud) -> None:
    bucket = cloud.bucket("busy", cloud.function("recorder", "record_upload"))
    keys = [f"many/{n:03}.json" for n in range(60)]
    for key in keys:
        cloud.s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    cloud.settle(30)
    assert sorted(d.key for d in async_handlers.deliveries()) == keys


def test_a_failing_event_is_retried_twice_then_parked_with_its_cause(cloud: Cloud) -> None:
    arn = cloud.function("refuser", "refuse")
    dlq_url, dlq_arn = cloud.queue("refuser-dlq")
    failures_url, failures_arn = cloud.queue("refuser-failures")
    cloud.configure(
        AsyncInvocationRecord(
            "refuser", dead_letter_target=dlq_arn, on_failure_destination=failures_arn
        )
    )
    bucket = cloud.bucket("refused", arn)

    cloud.s3.put_object(Bucket=bucket, Key="campaigns/poison.yaml", Body=b"!")
    cloud.settle()

    attempts = async_handlers.deliveries()
    assert [d.event_name for d in attempts] == ["refused"] * 3  # the first try and two retries
    (request_id,) = {d.request_id for d in attempts}  # retries keep the request id
    (parked,) = cloud.sqs.receive_message(
        QueueUrl=dlq_url, MessageAttributeNames=["All"], MaxNumberOfMessages=10
    )["Messages"]
    event = json.loads(parked["Body"])
    assert event["Records"][0]["s3"]["object"]["key"] == "campaigns%2Fpoison.yaml"
    attributes = {name: value["StringValue"] for name, value in parked["MessageAttributes"].items()}
    assert attributes == {
        "RequestID": request_id,
        "ErrorCode": "200",
        "ErrorMessage": "refused campaigns/poison.yaml",
    }
    (failure,) = cloud.sqs.receive_message(QueueUrl=failures_url, MaxNumberOfMessages=10)[
        "Messages"
    ]
    record = json.loads(failure["Body"])
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": f"{arn}:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert record["requestPayload"] == event
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "ValueError"


def test_retries_follow_the_functions_event_invoke_config(cloud: Cloud) -> None:
    arn = cloud.function("refuser", "refuse")
    dlq_url, dlq_arn = cloud.queue("refuser-dlq")
    cloud.configure(
        AsyncInvocationRecord("refuser", maximum_retry_attempts=0, dead_letter_target=dlq_arn)
    )
    bucket = cloud.bucket("refused", arn)

    cloud.s3.put_object(Bucket=bucket, Key="once.yaml", Body=b"!")
    cloud.settle()

    assert len(async_handlers.deliveries()) == 1
    assert cloud.sqs.receive_message(QueueUrl=dlq_url)["Messages"]


def test_a_waiting_event_keeps_the_cloud_from_being_idle(cloud: Cloud) -> None:
    bucket = cloud.bucket("held", cloud.function("recorder", "record_upload"))
    cloud.s3.put_object(Bucket=bucket, Key="held/a.yaml", Body=b"1")

    assert not cloud.pollers.wait_idle(0.3)
    async_handlers.RELEASE.set()
    assert cloud.pollers.wait_idle(5)
    assert cloud.invocations.pending() == 0
