"""`rebates claims trace CLAIM_ID`: a claim's execution history as a readable timeline.

The formatting is tested on event histories built here in the shape boto3 returns them
(ids chained by `previousEventId`, aware `timestamp`s, the `...EventDetails` of each
type); the fetching runs against moto's Step Functions engine.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cli.claims import (
    changes,
    execution_arn,
    execution_history,
    format_duration,
    format_trace,
    run_trace,
    summarize,
)
from cli.main import main
from cli.target import STACK_NAME, Target

REGION = "ap-northeast-1"
STATE_MACHINE = f"arn:aws:states:{REGION}:123456789012:stateMachine:ClaimsStateMachine"
ARN = f"arn:aws:states:{REGION}:123456789012:execution:ClaimsStateMachine:clm_1"
START = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
LAMBDA_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:Rebates-ClaimsSteps"


class History:
    """Events as `get_execution_history` lists them: each after the one before it."""

    def __init__(self, start: datetime = START) -> None:
        self.events: list[dict[str, Any]] = []
        self.at = start

    def add(self, type_: str, after_ms: int = 0, **details: Any) -> History:
        self.at += timedelta(milliseconds=after_ms)
        event_id = len(self.events) + 1
        event: dict[str, Any] = {
            "id": event_id,
            "previousEventId": event_id - 1,
            "timestamp": self.at,
            "type": type_,
        }
        event.update(details)
        self.events.append(event)
        return self

    def started(self, claim: dict[str, Any]) -> History:
        return self.add(
            "ExecutionStarted",
            executionStartedEventDetails={"input": json.dumps(claim), "roleArn": "arn:role"},
        )

    def enter(self, kind: str, name: str, data: Any, after_ms: int = 0) -> History:
        details = {"name": name, "input": json.dumps(data)}
        return self.add(f"{kind}StateEntered", after_ms, stateEnteredEventDetails=details)

    def exit(self, kind: str, name: str, data: Any, after_ms: int = 0) -> History:
        details = {"name": name, "output": json.dumps(data)}
        return self.add(f"{kind}StateExited", after_ms, stateExitedEventDetails=details)

    def invoke(self, *, wait_for_token: bool = False, timeout: int | None = None) -> History:
        scheduled: dict[str, Any] = {
            "resourceType": "lambda",
            "resource": "invoke.waitForTaskToken" if wait_for_token else "invoke",
            "region": REGION,
            "parameters": json.dumps({"FunctionName": LAMBDA_ARN}),
        }
        if timeout is not None:
            scheduled["timeoutInSeconds"] = timeout
        self.add("TaskScheduled", 2, taskScheduledEventDetails=scheduled)
        return self.add(
            "TaskStarted",
            3,
            taskStartedEventDetails={"resourceType": "lambda", "resource": "invoke"},
        )

    def task(self, outcome: str, after_ms: int, **details: Any) -> History:
        key = f"task{outcome}EventDetails"
        return self.add(
            f"Task{outcome}",
            after_ms,
            **{key: {"resourceType": "lambda", "resource": "invoke", **details}},
        )


CLAIM = {"claimId": "clm_1", "campaignId": "spring-rebate", "customerId": "cust-1"}


def credited_after_a_retry() -> list[dict[str, Any]]:
    """Verified on the second attempt, approved automatically, budget reserved, credited."""
    history = History().started(CLAIM)
    history.enter("Task", "Verify the claim", CLAIM, after_ms=10)
    history.invoke().task(
        "Failed",
        285,
        error="Lambda.TooManyRequestsException",
        cause="Rate exceeded",
    )
    history.invoke().task("Succeeded", 905, output=json.dumps({"verdict": "approve"}))
    history.exit("Task", "Verify the claim", {"verdict": "approve"}, after_ms=40)
    history.enter("Choice", "Route by verdict", {"verdict": "approve"}, after_ms=1)
    history.exit("Choice", "Route by verdict", {"verdict": "approve"}, after_ms=1)
    history.enter("Task", "Reserve the budget", {"verdict": "approve"}, after_ms=1)
    history.invoke().task("Succeeded", 120, output=json.dumps({"reserved": True}))
    history.exit("Task", "Reserve the budget", {"reserved": True}, after_ms=1)
    history.enter("Succeed", "Claim credited", {"status": "credited"}, after_ms=1)
    history.exit("Succeed", "Claim credited", {"status": "credited"})
    history.add(
        "ExecutionSucceeded",
        1,
        executionSucceededEventDetails={"output": json.dumps({"status": "credited"})},
    )
    return history.events


def waiting_for_review() -> list[dict[str, Any]]:
    history = History().started(CLAIM)
    history.enter("Task", "Verify the claim", CLAIM, after_ms=10)
    history.invoke().task("Succeeded", 200, output=json.dumps({"verdict": "review"}))
    history.exit("Task", "Verify the claim", {"verdict": "review"}, after_ms=5)
    history.enter("Task", "Wait for review", {"verdict": "review"}, after_ms=5)
    history.invoke(wait_for_token=True, timeout=259200)
    history.task("Submitted", 50, output=json.dumps({"StatusCode": 200}))
    return history.events


def test_a_credited_claim_reads_as_one_line_per_state() -> None:
    assert format_trace("clm_1", ARN, credited_after_a_retry()) == [
        f"claim clm_1: execution {ARN}",
        "2027-03-01T09:00:00.000Z  started  input "
        '{"claimId":"clm_1","campaignId":"spring-rebate","customerId":"cust-1"}',
        "",
        "2027-03-01T09:00:00.010Z → 2027-03-01T09:00:01.250Z     1.240 s  Verify the claim",
        "    attempt 1 failed: Lambda.TooManyRequestsException: Rate exceeded (retried)",
        '    output  {"verdict":"approve"} -claimId -campaignId -customerId',
        "2027-03-01T09:00:01.251Z → 2027-03-01T09:00:01.252Z        1 ms  Route by verdict",
        "    output  (unchanged)",
        "2027-03-01T09:00:01.253Z → 2027-03-01T09:00:01.379Z      126 ms  Reserve the budget",
        '    output  {"reserved":true} -verdict',
        "2027-03-01T09:00:01.380Z → 2027-03-01T09:00:01.380Z        0 ms  Claim credited",
        '    input   {"status":"credited"}',
        "    output  (unchanged)",
        "",
        '2027-03-01T09:00:01.381Z  succeeded after 1.381 s  output {"status":"credited"}',
    ]


def test_instants_are_shown_in_utc_whatever_zone_boto3_parsed_them_in() -> None:
    tokyo = timezone(timedelta(hours=9))
    events = credited_after_a_retry()
    for event in events:
        event["timestamp"] = event["timestamp"].astimezone(tokyo)
    lines = format_trace("clm_1", ARN, events)
    assert lines[1].startswith("2027-03-01T09:00:00.000Z  started")
    assert lines[-1].startswith("2027-03-01T09:00:01.381Z  succeeded")


def test_a_claim_waiting_for_its_reviewer_shows_the_token_wait_and_no_end() -> None:
    now = START + timedelta(days=1, hours=2, minutes=3, seconds=4)
    lines = format_trace("clm_1", ARN, waiting_for_review(), now=now)
    wait = lines.index(
        "2027-03-01T09:00:00.225Z → (running)                 1d 02h 03m  Wait for review"
    )
    # Its input is the document the previous state passed on: not repeated.
    assert lines[wait + 1] == (
        "    task token handed out 2027-03-01T09:00:00.280Z: waiting for the decision "
        "(times out after 3d 00h 00m)"
    )
    assert lines[-1] == "still running after 1d 02h 03m (no end event yet)"


def test_without_a_clock_a_running_execution_just_says_so() -> None:
    lines = format_trace("clm_1", ARN, waiting_for_review())
    # The exit column keeps a timestamp's width, the duration column that of "2d 03h 04m".
    running = "2027-03-01T09:00:00.225Z → " + "(running)".ljust(24) + "  " + "…".rjust(10)
    assert f"{running}  Wait for review" in lines
    assert lines[-1] == "still running (no end event yet)"


def test_a_review_whose_token_is_not_handed_out_yet_says_so() -> None:
    events = waiting_for_review()[:-1]  # the review task was scheduled and started
    lines = format_trace("clm_1", ARN, events)
    wait = next(i for i, line in enumerate(lines) if line.endswith("Wait for review"))
    assert lines[wait + 1] == "    task token not handed out yet"


def test_a_decided_review_shows_when_the_token_came_back() -> None:
    history = History()
    history.events = waiting_for_review()
    history.at = history.events[-1]["timestamp"]
    decision = {"decision": "approve", "reviewer": "arn:aws:iam::1:user/ops"}
    history.task("Succeeded", 2 * 86_400_000, output=json.dumps(decision))
    history.exit("Task", "Wait for review", decision, after_ms=3)
    lines = format_trace("clm_1", ARN, history.events)
    wait = next(i for i, line in enumerate(lines) if line.endswith("Wait for review"))
    assert lines[wait].startswith("2027-03-01T09:00:00.225Z → 2027-03-03T09:00:00.283Z  2d 00h 00m")
    assert lines[wait + 1] == (
        "    task token handed out 2027-03-01T09:00:00.280Z, answered "
        "2027-03-03T09:00:00.280Z (2d 00h 00m later)"
    )
    assert lines[wait + 2] == (
        '    output  {"decision":"approve","reviewer":"arn:aws:iam::1:user/ops"} -verdict'
    )


def test_a_review_that_timed_out_is_caught_and_the_claim_rejected() -> None:
    history = History()
    history.events = waiting_for_review()
    history.at = history.events[-1]["timestamp"]
    history.task("TimedOut", 259_200_000, error="States.Timeout", cause="")
    history.exit("Task", "Wait for review", {"Error": "States.Timeout"}, after_ms=1)
    history.enter("Task", "Reject the claim", {"Error": "States.Timeout"}, after_ms=1)
    lines = format_trace("clm_1", ARN, history.events)
    assert "    timed out: States.Timeout (caught)" in lines


def test_a_lambda_failure_ends_in_the_failed_execution_with_its_cause() -> None:
    # A state whose resource is the function's ARN records LambdaFunction* events.
    cause = json.dumps(
        {
            "errorMessage": "campaign spring-rebate has no claims section",
            "errorType": "ConfigurationError",
            "stackTrace": ['  File "/var/task/functions/claims/handlers/steps.py", line 1'],
        }
    )
    history = History().started(CLAIM)
    history.enter("Task", "Verify the claim", CLAIM, after_ms=10)
    history.add(
        "LambdaFunctionScheduled",
        2,
        lambdaFunctionScheduledEventDetails={"resource": LAMBDA_ARN, "input": "{}"},
    )
    history.add("LambdaFunctionStarted", 3)
    history.add(
        "LambdaFunctionFailed",
        80,
        lambdaFunctionFailedEventDetails={"error": "ConfigurationError", "cause": cause},
    )
    history.exit("Task", "Verify the claim", {"Error": "ConfigurationError"}, after_ms=1)
    history.enter("Task", "Record the error", {"Error": "ConfigurationError"}, after_ms=1)
    history.invoke().task("Succeeded", 30, output="null")
    history.exit("Task", "Record the error", {"status": "error"}, after_ms=1)
    history.enter("Fail", "Verification failed", {"status": "error"}, after_ms=1)
    history.add(
        "ExecutionFailed",
        1,
        executionFailedEventDetails={
            "error": "ClaimVerificationFailed",
            "cause": "the claim could not be verified",
        },
    )
    lines = format_trace("clm_1", ARN, history.events)
    assert (
        "    failed: ConfigurationError: campaign spring-rebate has no claims section (caught)"
        in lines
    )
    assert any(line.endswith("Verification failed") for line in lines)
    assert lines[-1] == (
        "2027-03-01T09:00:00.135Z  failed after 135 ms: "
        "ClaimVerificationFailed: the claim could not be verified"
    )


def test_a_failure_retried_until_the_execution_fails_numbers_each_attempt() -> None:
    history = History().started(CLAIM)
    history.enter("Task", "Credit the cashback", CLAIM, after_ms=1)
    for _ in range(3):
        history.invoke().task("Failed", 10, error="Contended", cause="the wallet moved")
    history.add(
        "ExecutionFailed",
        1,
        executionFailedEventDetails={"error": "Contended", "cause": "the wallet moved"},
    )
    lines = format_trace("clm_1", ARN, history.events)
    assert lines[4:7] == [
        "    attempt 1 failed: Contended: the wallet moved (retried)",
        "    attempt 2 failed: Contended: the wallet moved (retried)",
        "    attempt 3 failed: Contended: the wallet moved",
    ]
    assert lines[3].startswith("2027-03-01T09:00:00.001Z → 2027-03-01T09:00:00.047Z")
    assert lines[7] == "    (the execution ended in this state)"


def test_long_inputs_are_cut_to_a_readable_summary() -> None:
    big = {"claimId": "clm_1", "items": [{"sku": f"SKU-{n}", "quantity": 1} for n in range(40)]}
    # A state given other than what the execution started with shows its input.
    history = History().started(CLAIM).enter("Pass", "Verify the claim", big, after_ms=1)
    lines = format_trace("clm_1", ARN, history.events)
    (input_line,) = [line for line in lines if line.startswith("    input ")]
    summary = input_line.removeprefix("    input   ")
    assert len(summary) == 120 and summary.endswith("…")
    assert summary.startswith('{"claimId":"clm_1","items":[{"sku":"SKU-0","quantity":1}')


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(milliseconds=240), "240 ms"),
        (timedelta(seconds=12, milliseconds=345), "12.345 s"),
        (timedelta(minutes=4, seconds=5), "4m 05s"),
        (timedelta(hours=3, minutes=4, seconds=59), "3h 04m"),
        (timedelta(days=2, hours=3, minutes=4), "2d 03h 04m"),
    ],
)
def test_durations_read_at_the_scale_they_have(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text


def test_the_execution_is_the_one_named_after_the_claim() -> None:
    assert execution_arn(STATE_MACHINE, "clm_1") == ARN


# -- against Step Functions (moto runs the definition) ---------------------------------

DEFINITION = {
    "StartAt": "Verify the claim",
    "States": {
        "Verify the claim": {
            "Type": "Pass",
            "Result": {"verdict": "reject"},
            "Next": "Claim rejected",
        },
        "Claim rejected": {"Type": "Fail", "Error": "ClaimRejected", "Cause": "not_eligible"},
    },
}


@pytest.fixture
def stepfunctions(bare_aws_env: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.client("stepfunctions", region_name=REGION)


def deploy_claims_machine(stepfunctions: Any) -> str:
    arn: str = stepfunctions.create_state_machine(
        name="ClaimsStateMachine",
        definition=json.dumps(DEFINITION),
        roleArn="arn:aws:iam::123456789012:role/claims",
    )["stateMachineArn"]
    return arn


def run_to_the_end(stepfunctions: Any, state_machine: str, claim_id: str) -> None:
    execution = stepfunctions.start_execution(
        stateMachineArn=state_machine, name=claim_id, input=json.dumps({"claimId": claim_id})
    )["executionArn"]
    for _ in range(200):
        if stepfunctions.describe_execution(executionArn=execution)["status"] != "RUNNING":
            return
        time.sleep(0.01)
    raise AssertionError("the execution did not finish")


def target_with(state_machine: str) -> Target:
    return Target(
        kind="local",
        outputs={"ClaimsStateMachineArn": state_machine, "ApiUrl": "http://127.0.0.1:3000"},
        region=REGION,
        description="local cloud at http://127.0.0.1:4566",
        make_client=lambda service: boto3.client(service, region_name=REGION),
        fetch_api_key=lambda: "key",
    )


def test_a_real_history_is_fetched_whole_and_told(stepfunctions: Any) -> None:
    state_machine = deploy_claims_machine(stepfunctions)
    run_to_the_end(stepfunctions, state_machine, "clm_7")
    events = execution_history(stepfunctions, execution_arn(state_machine, "clm_7"))
    assert events[0]["type"] == "ExecutionStarted" and events[-1]["type"] == "ExecutionFailed"

    out = io.StringIO()
    assert run_trace("clm_7", target_with(state_machine), out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == f"claim clm_7: execution {execution_arn(state_machine, 'clm_7')}"
    assert any(line.endswith("  Verify the claim") for line in lines)
    assert any(line.startswith('    output  {"verdict":"reject"}') for line in lines)
    assert any(line.endswith("  Claim rejected") for line in lines)
    assert "failed after" in lines[-1] and lines[-1].endswith("ClaimRejected: not_eligible")


def test_an_unknown_claim_exits_1_naming_it(stepfunctions: Any) -> None:
    state_machine = deploy_claims_machine(stepfunctions)
    err = io.StringIO()
    assert run_trace("clm_nope", target_with(state_machine), out=io.StringIO(), err=err) == 1
    assert err.getvalue().startswith("error: no execution for claim 'clm_nope' in ")


def test_trace_through_the_command_line_on_the_deployed_stack(
    stepfunctions: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    state_machine = deploy_claims_machine(stepfunctions)
    run_to_the_end(stepfunctions, state_machine, "clm_8")
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            "ApiUrl": {"Value": "https://abc.execute-api.ap-northeast-1.amazonaws.com/prod"},
            "ClaimsStateMachineArn": {"Value": state_machine},
        },
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=STACK_NAME, TemplateBody=json.dumps(template)
    )
    assert main(["--target", "aws", "claims", "trace", "clm_8"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("claim clm_8: execution ")
    assert "AWS stack Rebates" in captured.err

    assert main(["claims", "trace", "clm_9", "--target", "aws"]) == 1
    assert "no execution for claim 'clm_9'" in capsys.readouterr().err


def test_a_stack_without_the_state_machine_output_is_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = Target(
        kind="local",
        outputs={"ApiUrl": "http://127.0.0.1:3000"},
        region=REGION,
        description="local cloud at http://127.0.0.1:4566",
        make_client=lambda service: None,
        fetch_api_key=lambda: "key",
    )
    err = io.StringIO()
    assert run_trace("clm_1", target, out=io.StringIO(), err=err) == 1
    assert "no output 'ClaimsStateMachineArn'" in err.getvalue()


def test_a_state_s_output_shows_what_it_added_or_changed_not_the_ids_it_carried() -> None:
    given = json.dumps({**CLAIM, "verdict": {"outcome": "approve"}})
    merged = json.dumps({**CLAIM, "verdict": {"outcome": "approve"}, "approval": {"ok": True}})
    assert changes(given, merged) == '{"approval":{"ok":true}}'
    assert changes(given, given) == "(unchanged)"
    assert changes(given, json.dumps({**CLAIM, "verdict": "x"})) == '{"verdict":"x"}'
    assert changes("not json", merged) == summarize(merged)
