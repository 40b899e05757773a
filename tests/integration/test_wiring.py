"""Each path of the local cloud carries real code, as the deployed stack would."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import unquote_plus

import pytest

from functions.core.clock import parse_instant
from infra.local.cloud import LocalCloud
from tests.integration.wiring.probe import ECHO_PATH, POISON_DETAIL_TYPE, PROBE_DETAIL_TYPE

T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout: float = 15.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.1)


def physical_id(cloud: LocalCloud, logical_prefix: str, type_: str) -> str:
    assert cloud.deployment is not None
    matches = [
        deployed.physical_id
        for logical_id, deployed in cloud.deployment.resources.items()
        if logical_id.startswith(logical_prefix) and cloud.deployment.types[logical_id] == type_
    ]
    assert len(matches) == 1, (logical_prefix, matches)
    return matches[0]


def recorded(cloud: LocalCloud, kind: str, key: str) -> Callable[[], dict[str, Any] | None]:
    table = physical_id(cloud, "IdempotencyTable", "AWS::DynamoDB::Table")
    dynamodb = cloud.client("dynamodb")

    def check() -> dict[str, Any] | None:
        item = dynamodb.get_item(TableName=table, Key={"id": {"S": f"probe#{kind}#{key}"}})
        found: dict[str, Any] | None = item.get("Item")
        return found

    return check


def put_probe_event(cloud: LocalCloud, detail_type: str, probe_id: str) -> None:
    response = cloud.client("events").put_events(
        Entries=[
            {
                "EventBusName": cloud.outputs["EventBusName"],
                "Source": "rebates.probe",
                "DetailType": detail_type,
                "Detail": json.dumps({"probeId": probe_id}),
            }
        ]
    )
    assert response["FailedEntryCount"] == 0


def test_an_event_on_the_bus_reaches_its_consumer_through_its_queue(cloud: LocalCloud) -> None:
    probe_id = str(uuid.uuid4())
    put_probe_event(cloud, PROBE_DETAIL_TYPE, probe_id)
    item = eventually(recorded(cloud, "event", probe_id))
    envelope = json.loads(item["payload"]["S"])
    assert envelope["detail-type"] == PROBE_DETAIL_TYPE
    assert envelope["detail"] == {"probeId": probe_id}
    # The handler ran with its own function's environment from the template.
    assert item["service"]["S"] == "probe"


def test_a_poison_message_is_parked_in_the_dlq_after_the_configured_receives(
    cloud: LocalCloud,
) -> None:
    dlq_url = physical_id(cloud, "WiringProbePoisonEventsDlq", "AWS::SQS::Queue")
    queue_url = physical_id(cloud, "WiringProbePoisonEventsQueue", "AWS::SQS::Queue")
    sqs = cloud.client("sqs")
    redrive = json.loads(
        sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])[
            "Attributes"
        ]["RedrivePolicy"]
    )
    probe_id = str(uuid.uuid4())
    put_probe_event(cloud, POISON_DETAIL_TYPE, probe_id)

    def parked() -> list[dict[str, Any]] | None:
        messages: list[dict[str, Any]] = sqs.receive_message(
            QueueUrl=dlq_url, AttributeNames=["All"], MaxNumberOfMessages=10
        ).get("Messages", [])
        return [m for m in messages if probe_id in m["Body"]] or None

    (message,) = eventually(parked, timeout=30)
    assert json.loads(message["Body"])["detail"] == {"probeId": probe_id}
    # It was received (and failed) exactly as many times as the redrive policy allows.
    assert int(message["Attributes"]["ApproximateReceiveCount"]) >= redrive["maxReceiveCount"]


def test_a_table_stream_reaches_its_consumer_filtered_and_after_the_commit(
    cloud: LocalCloud,
) -> None:
    table = physical_id(cloud, "WiringProbeStreamTable", "AWS::DynamoDB::Table")
    dynamodb = cloud.client("dynamodb")
    run = uuid.uuid4().hex
    dynamodb.put_item(TableName=table, Item={"pk": {"S": f"skip#{run}"}})
    # A cancelled transaction leaves no record to deliver: its first item is undone.
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"pk": {"S": f"keep#cancelled-{run}"}}}},
                {
                    "Put": {
                        "TableName": table,
                        "Item": {"pk": {"S": f"keep#{run}"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    dynamodb.put_item(TableName=table, Item={"pk": {"S": f"keep#{run}"}})

    item = eventually(recorded(cloud, "stream", f"keep#{run}"))
    assert json.loads(item["payload"]["S"])["eventName"] == "INSERT"
    # Records are delivered in order, so the two before it were seen and not delivered.
    assert recorded(cloud, "stream", f"skip#{run}")() is None
    assert recorded(cloud, "stream", f"keep#cancelled-{run}")() is None


def test_a_failing_stream_batch_is_retried_then_sent_to_the_on_failure_queue(
    cloud: LocalCloud,
) -> None:
    table = physical_id(cloud, "WiringProbeStreamTable", "AWS::DynamoDB::Table")
    dlq_url = physical_id(cloud, "WiringProbeStreamRecorderTableStreamDlq", "AWS::SQS::Queue")
    run = uuid.uuid4().hex
    cloud.client("dynamodb").put_item(TableName=table, Item={"pk": {"S": f"keep#poison-{run}"}})
    cloud.client("dynamodb").put_item(TableName=table, Item={"pk": {"S": f"keep#after-{run}"}})
    sqs = cloud.client("sqs")

    def parked() -> list[dict[str, Any]] | None:
        messages: list[dict[str, Any]] = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10
        ).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages] or None

    (failure,) = eventually(parked, timeout=30)
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 1  # bisected down to the poison
    # The stream moved past it: the record after the poison was delivered.
    assert eventually(recorded(cloud, "stream", f"keep#after-{run}"))


def test_an_uploaded_object_reaches_its_handler(cloud: LocalCloud) -> None:
    bucket = physical_id(cloud, "WiringProbeUploads", "AWS::S3::Bucket")
    key = f"incoming/receipt {uuid.uuid4()}.jpg"
    cloud.client("s3").put_object(Bucket=bucket, Key=key, Body=b"\xff\xd8 receipt")
    item = eventually(recorded(cloud, "upload", key))
    assert json.loads(item["payload"]["S"])["bucket"]["name"] == bucket


def test_an_upload_that_fails_its_handler_is_retried_twice_then_parked_in_its_dlq(
    cloud: LocalCloud,
) -> None:
    assert cloud.runtime is not None
    bucket = physical_id(cloud, "WiringProbeUploads", "AWS::S3::Bucket")
    dlq_url = physical_id(cloud, "WiringProbeOnUploadDlq", "AWS::SQS::Queue")
    function = physical_id(cloud, "WiringProbeOnUploadFunction", "AWS::Lambda::Function")
    key = f"incoming/poison {uuid.uuid4()}.jpg"
    sqs = cloud.client("sqs")

    cloud.client("s3").put_object(Bucket=bucket, Key=key, Body=b"\xff\xd8 receipt")

    def parked() -> list[dict[str, Any]] | None:
        messages: list[dict[str, Any]] = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        return messages or None

    (message,) = eventually(parked, timeout=30)
    (record,) = json.loads(message["Body"])["Records"]
    assert unquote_plus(record["s3"]["object"]["key"]) == key
    assert message["MessageAttributes"]["ErrorMessage"]["StringValue"] == f"refused {key}"
    attempts = [
        i
        for i in cloud.runtime.history
        if i.function_name == function
        and unquote_plus(i.event["Records"][0]["s3"]["object"]["key"]) == key
    ]
    # The first delivery and the template's two retries, all under one request id.
    assert [i.error_type for i in attempts] == ["ProbeError"] * 3
    assert {i.request_id for i in attempts} == {
        message["MessageAttributes"]["RequestID"]["StringValue"]
    }


def test_a_state_machine_task_runs_real_code_and_catch_sees_its_error_type(
    cloud: LocalCloud,
) -> None:
    machine = physical_id(cloud, "WiringProbeStateMachine", "AWS::StepFunctions::StateMachine")
    states = cloud.client("stepfunctions")
    execution = states.start_execution(
        stateMachineArn=machine, name=f"clm_{uuid.uuid4().hex}", input='{"claimId": "c-1"}'
    )["executionArn"]

    def finished() -> dict[str, Any] | None:
        described: dict[str, Any] = states.describe_execution(executionArn=execution)
        return None if described["status"] == "RUNNING" else described

    described = eventually(finished, timeout=30)
    assert described["status"] == "SUCCEEDED", described
    error = json.loads(described["output"])["error"]
    assert error["Error"] == "ProbeError"
    assert "refused c-1" in error["Cause"]


def _post(url: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_route_returns_what_its_handler_returns(cloud: LocalCloud) -> None:
    url = cloud.outputs["ApiUrl"] + ECHO_PATH.replace("{thing}", "trail%20shoe") + "?size=27"
    status, body = _post(url, {"n": 1}, {"x-api-key": cloud.outputs["ApiKey"]})
    assert status == 201
    assert body.pop("path").startswith("/v1/_probe/echo/trail")
    body.pop("now")
    assert body == {
        "resource": ECHO_PATH,
        "pathParameters": {"thing": "trail shoe"},
        "query": {"size": "27"},
        "body": {"n": 1},
        "apiKey": cloud.outputs["ApiKey"],
        "service": "probe",
    }


def test_a_route_refuses_a_missing_or_wrong_key(cloud: LocalCloud) -> None:
    url = cloud.outputs["ApiUrl"] + ECHO_PATH.replace("{thing}", "x")
    assert _post(url, {}, {})[0] == 403
    assert _post(url, {}, {"x-api-key": "not-the-key"})[0] == 403


def test_handlers_see_the_clock_the_local_cloud_sets(cloud: LocalCloud) -> None:
    url = cloud.outputs["ApiUrl"] + ECHO_PATH.replace("{thing}", "clock")
    key = {"x-api-key": cloud.outputs["ApiKey"]}
    assert cloud.runtime is not None
    before = cloud.runtime.clock_offset_seconds
    try:
        now = parse_instant(_post(url, {}, key)[1]["now"])
        cloud.set_clock_offset(before + 10 * 86_400)
        later = parse_instant(_post(url, {}, key)[1]["now"])
    finally:
        cloud.set_clock_offset(before)
    assert timedelta(days=10) <= later - now < timedelta(days=10, minutes=1)
