"""The heartbeat patch: a ``.waitForTaskToken`` task nobody heartbeats fails with
``States.HeartbeatTimeout``, which a Catch on that name or on ``States.Timeout`` takes,
while the task's own timeout stays ``States.Timeout`` (AWS's error names)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.local import patches
from infra.local.environment import install_overlay, uninstall_overlay
from infra.local.lambdas import LambdaRuntime
from infra.local.patches import step_functions_heartbeats
from infra.local.server import SerialGate

ROOT = Path(__file__).resolve().parents[3]
REGION = "ap-northeast-1"
RUNTIME_ENV = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}
# Both catchers, the heartbeat's first (as a definition telling them apart orders them).
BOTH = [
    {"ErrorEquals": ["States.HeartbeatTimeout"], "ResultPath": "$.failure", "Next": "Lapsed"},
    {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.failure", "Next": "TimedOut"},
]
TIMEOUT_ONLY = [BOTH[1]]


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


def _function() -> str:
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName=f"hb-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument="{}")
    created = boto3.client("lambda", region_name=REGION).create_function(
        FunctionName=f"hb-{uuid.uuid4().hex[:8]}",
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="tests.integration.local.handlers.echo",
        Code={"ZipFile": b"not used: the handler runs in-process"},
    )
    return str(created["FunctionArn"])


def _wait_for_a_token(function_arn: str, catch: list[dict[str, Any]], **limits: int) -> str:
    """Run a wait for a token nobody sends (nor heartbeats); the state it ended in."""
    definition = {
        "StartAt": "Wait",
        "States": {
            "Wait": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": function_arn, "Payload": {"t.$": "$$.Task.Token"}},
                **limits,
                "Catch": catch,
                "End": True,
            },
            "Lapsed": {"Type": "Pass", "End": True},
            "TimedOut": {"Type": "Pass", "End": True},
        },
    }
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name=f"hb-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/hb",
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name=str(uuid.uuid4()), input="{}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if described["status"] != "RUNNING":
            break
        time.sleep(0.05)
    assert described["status"] == "SUCCEEDED", described
    history = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e
    ]
    error = json.loads(described["output"])["failure"]["Error"]
    return f"{entered[-1]}: {error}"


@mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
def test_a_missed_heartbeat_is_told_from_the_tasks_timeout(runtime: LambdaRuntime) -> None:
    function_arn = _function()
    runs = {
        "missed heartbeat": (BOTH, {"HeartbeatSeconds": 1, "TimeoutSeconds": 30}),
        "missed heartbeat, timeout caught": (
            TIMEOUT_ONLY,
            {"HeartbeatSeconds": 1, "TimeoutSeconds": 30},
        ),
        "timeout": (BOTH, {"TimeoutSeconds": 1}),
    }

    def run(catch: list[dict[str, Any]], limits: dict[str, int]) -> str:
        return _wait_for_a_token(function_arn, catch, **limits)

    with ThreadPoolExecutor(len(runs)) as pool:
        ended = dict(zip(runs, pool.map(lambda case: run(*case), runs.values()), strict=True))

    assert ended == {
        "missed heartbeat": "Lapsed: States.HeartbeatTimeout",
        # States.Timeout covers a missed heartbeat too.
        "missed heartbeat, timeout caught": "TimedOut: States.HeartbeatTimeout",
        "timeout": "TimedOut: States.Timeout",
    }


def test_the_patch_fits_the_installed_moto() -> None:
    step_functions_heartbeats.verify()
