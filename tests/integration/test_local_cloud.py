"""The real stack on the local cloud: outputs, routes, and the AWS APIs users call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from functions.core.tables import ALL_TABLES
from infra.build import project_version
from infra.local.cloud import LocalCloud
from tests.support.contract import LOCAL_OUTPUTS, STACK_OUTPUTS


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_outputs_are_the_contract_plus_the_local_keys(cloud: LocalCloud) -> None:
    assert set(cloud.outputs) == STACK_OUTPUTS | LOCAL_OUTPUTS
    assert all(cloud.outputs.values())
    assert cloud.outputs["ApiUrl"].startswith("http://127.0.0.1:")
    assert cloud.outputs["EventBusName"] == "rebates"
    written = cloud.config.outputs_path
    assert written is not None
    assert json.loads(written.read_text()) == cloud.outputs


def test_health_needs_no_key(cloud: LocalCloud) -> None:
    status, body = get(cloud.outputs["ApiUrl"] + "/v1/health")
    assert (status, body) == (200, {"status": "ok", "version": project_version()})


def test_an_unknown_route_is_refused_like_api_gateway(cloud: LocalCloud) -> None:
    status, body = get(cloud.outputs["ApiUrl"] + "/v1/nowhere")
    assert status == 403
    assert body["error"]["code"] == "route_not_found"


def test_a_missing_key_is_refused_in_the_error_shape(cloud: LocalCloud) -> None:
    status, body = get(cloud.outputs["ApiUrl"] + "/v1/campaigns")
    assert status == 403
    assert set(body) == {"error"}
    assert body["error"]["code"] == "invalid_api_key"
    assert body["error"]["message"]
    assert body["error"]["details"]["requestId"]


@pytest.mark.parametrize(
    ("service", "call", "check"),
    [
        ("stepfunctions", "list_state_machines", "ClaimsStateMachineArn"),
        ("s3", "list_buckets", "CampaignBucketName"),
        ("kinesis", "list_streams", "EventsStreamName"),
        ("events", "list_event_buses", "EventBusName"),
    ],
)
def test_resources_answer_through_the_aws_apis(
    cloud: LocalCloud, service: str, call: str, check: str
) -> None:
    answer = json.dumps(getattr(cloud.client(service), call)(), default=str)
    assert cloud.outputs[check] in answer


def test_every_table_of_the_specs_is_deployed_with_its_keys(cloud: LocalCloud) -> None:
    dynamodb = cloud.client("dynamodb")
    assert cloud.deployment is not None
    for spec in ALL_TABLES:
        name = cloud.deployment.resources[spec.logical_id].physical_id
        table = dynamodb.describe_table(TableName=name)["Table"]
        keys = {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]}
        assert keys["HASH"] == spec.partition_key
        assert keys.get("RANGE") == spec.sort_key
        indexes = {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}
        assert indexes == {index.name for index in spec.indexes}


def test_consumer_queues_redrive_to_deployed_dead_letter_queues(cloud: LocalCloud) -> None:
    assert cloud.deployment is not None
    sqs = cloud.client("sqs")
    stack_queues = [
        deployed.physical_id
        for logical_id, deployed in cloud.deployment.resources.items()
        if cloud.deployment.types[logical_id] == "AWS::SQS::Queue"
    ]
    attributes = [
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get("Attributes", {})
        for url in stack_queues
    ]
    arns = {a["QueueArn"] for a in attributes}
    policies = [json.loads(a["RedrivePolicy"]) for a in attributes if "RedrivePolicy" in a]
    # The notifications and analytics consumers, at least; later issues add more.
    assert len(policies) >= 2
    for policy in policies:
        assert policy["deadLetterTargetArn"] in arns
        assert int(policy["maxReceiveCount"]) == 5


def test_the_clock_handlers_see_can_be_moved(cloud: LocalCloud) -> None:
    assert cloud.runtime is not None
    before = cloud.runtime.clock_offset_seconds
    try:
        status, body = _control(cloud, "POST", "clock", {"advanceSeconds": 86_400})
        assert (status, body) == (200, {"offsetSeconds": before + 86_400})
        assert cloud.runtime.clock_offset_seconds == before + 86_400
    finally:
        cloud.set_clock_offset(before)


def test_firing_an_unknown_schedule_names_the_known_ones(cloud: LocalCloud) -> None:
    status, body = _control(cloud, "POST", "fire/no-such-rule", {})
    assert status == 404
    assert "no-such-rule" in body["message"]


def _control(cloud: LocalCloud, method: str, path: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{cloud.outputs['ApiUrl']}/_local/{path}", data=json.dumps(body).encode(), method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_plain_clients_reach_it_through_aws_endpoint_url(cloud: LocalCloud) -> None:
    """`AWS_ENDPOINT_URL=http://127.0.0.1:4566 aws ...`: any SDK client, no code changes."""
    probe = (
        "import boto3, json\n"
        "print(json.dumps({\n"
        "  's3': [b['Name'] for b in boto3.client('s3').list_buckets()['Buckets']],\n"
        "  'dynamodb': boto3.client('dynamodb').list_tables()['TableNames'],\n"
        "  'stepfunctions': [m['stateMachineArn'] for m in\n"
        "      boto3.client('stepfunctions').list_state_machines()['stateMachines']],\n"
        "  'sqs': boto3.client('sqs').list_queues().get('QueueUrls', []),\n"
        "  'events': [b['Name'] for b in\n"
        "      boto3.client('events').list_event_buses()['EventBuses']],\n"
        "  'kinesis': boto3.client('kinesis').list_streams()['StreamNames'],\n"
        "}))\n"
    )
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_ENDPOINT_URL": cloud.outputs["AwsEndpoint"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": cloud.outputs["Region"],
    }
    result = subprocess.run(
        [sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True
    )
    seen = json.loads(result.stdout)
    assert cloud.outputs["CampaignBucketName"] in seen["s3"]
    assert len(seen["dynamodb"]) >= len(ALL_TABLES)
    assert cloud.outputs["ClaimsStateMachineArn"] in seen["stepfunctions"]
    assert seen["sqs"]
    assert cloud.outputs["EventBusName"] in seen["events"]
    assert cloud.outputs["EventsStreamName"] in seen["kinesis"]
