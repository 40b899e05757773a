"""The claims wiring: the verification state machine and its definition, the routes, the
receipts bucket and its checker, the review keeper, the outbox, exactly what each may do,
and what pages.

The generic checks (DLQs, no wildcard actions, nag, cfn-lint, one role per function) are in
test_stack.py, test_alarms.py, test_nag.py and test_cfn_lint.py; these are the claims' own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, get_args

import pytest

from functions.claims.handlers import steps
from functions.claims.outbox import STREAM_FILTERS
from functions.claims.receipts import KEY_PREFIX
from functions.core.tables import ALL_TABLES, CAMPAIGNS, CLAIMS, IDEMPOTENCY, WALLET
from infra.constructs.claims import (
    API_HANDLER,
    DEFINITION,
    KEEPER_HANDLER,
    KEEPER_SCHEDULE_ID,
    OUTBOX_HANDLER,
    RECEIPTS_BUCKET_ID,
    RECEIPTS_HANDLER,
    STEPS_HANDLER,
)
from infra.constructs.wallet import CREDIT_HANDLER
from tests.infra.conftest import Synth
from tests.infra.template_checks import (
    alarms_of,
    as_list,
    environment_of,
    function_of,
    granted_to,
    keyed_proxy_route,
    method_paths,
    of_type,
    ref_id,
    routes_served_by,
    stream_mapping_of,
)

STOREFRONT_ROUTES = (
    ("POST", "/v1/claims/uploads"),
    ("POST", "/v1/claims"),
    ("GET", "/v1/claims/{claimId}"),
    ("GET", "/v1/customers/{customerId}/claims"),
)
REVIEW_ROUTE = ("POST", "/v1/claims/{claimId}/review")

# The errors a task may retry: its own transient errors, a timeout, Lambda's service-side
# errors. Anything else is a bug or a broken dependency, and ends the claim in error.
TRANSIENT = {
    "TransientError",
    "ReceiptPending",
    "Contended",
    "States.Timeout",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
ERROR_STATE = "Record the error"


def _definition() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DEFINITION.read_text())
    return document


def _states() -> dict[str, dict[str, Any]]:
    states: dict[str, dict[str, Any]] = _definition()["States"]
    return states


def _tasks() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in _states().items():
        if state["Type"] == "Task":
            yield name, state


def _state_machine(synth: Synth) -> dict[str, Any]:
    (machine,) = synth.resources("AWS::StepFunctions::StateMachine").values()
    properties: dict[str, Any] = machine["Properties"]
    return properties


# -- the definition -------------------------------------------------------------------------


def test_every_callback_state_has_a_timeout_and_a_heartbeat() -> None:
    callbacks = [
        (name, state) for name, state in _tasks() if state["Resource"].endswith(".waitForTaskToken")
    ]
    assert [name for name, _ in callbacks] == ["Wait for review"]
    for name, state in callbacks:
        assert "TimeoutSeconds" in state or "TimeoutSecondsPath" in state, name
        assert "HeartbeatSeconds" in state or "HeartbeatSecondsPath" in state, name
        catches = [error for catch in state["Catch"] for error in catch["ErrorEquals"]]
        # Handled before the catch-all; a missed heartbeat first, as States.Timeout
        # matches it too.
        assert catches[:2] == ["States.HeartbeatTimeout", "States.Timeout"], name


def test_every_other_task_has_a_timeout() -> None:
    for name, state in _tasks():
        if not state["Resource"].endswith(".waitForTaskToken"):
            assert 0 < state["TimeoutSeconds"] <= 60, name


def test_tasks_retry_only_transient_errors_with_backoff_and_jitter() -> None:
    for name, state in _tasks():
        for retry in state.get("Retry", []):
            if name == ERROR_STATE:
                continue  # recording the error is itself retried on anything
            assert set(retry["ErrorEquals"]) <= TRANSIENT, name
            assert retry["BackoffRate"] >= 2 and retry["JitterStrategy"] == "FULL", name
            assert retry["MaxAttempts"] <= 6, name


def test_every_task_but_the_error_record_catches_everything_into_the_error_record() -> None:
    for name, state in _tasks():
        if name == ERROR_STATE:
            assert state["Next"] == "Verification failed"
            continue
        catch_all = [c for c in state["Catch"] if c["ErrorEquals"] == ["States.ALL"]]
        assert catch_all and catch_all[-1]["Next"] == ERROR_STATE, name
        assert state["Catch"][-1] is catch_all[-1], name  # the catch-all comes last


def test_every_choice_has_a_default_that_records_an_error() -> None:
    for name, state in _states().items():
        if state["Type"] == "Choice":
            assert state["Default"] == "Unexpected answer", name
    assert _states()["Unexpected answer"]["Next"] == ERROR_STATE


def test_state_names_are_readable_and_every_state_is_reachable() -> None:
    states = _states()
    for name in states:
        assert name[0].isupper() and "_" not in name, name
    reachable, todo = set(), [_definition()["StartAt"]]
    while todo:
        name = todo.pop()
        if name in reachable:
            continue
        reachable.add(name)
        state = states[name]
        nexts = [state.get("Next"), state.get("Default")]
        nexts += [choice["Next"] for choice in state.get("Choices", [])]
        nexts += [catch["Next"] for catch in state.get("Catch", [])]
        todo += [n for n in nexts if n]
    assert reachable == set(states)


def test_the_steps_the_definition_names_are_the_steps_function_runs() -> None:
    named = {
        state["Parameters"]["Payload"]["step"]
        for _, state in _tasks()
        if "step" in state["Parameters"]["Payload"]
    }
    runnable = {get_args(model.model_fields["step"].annotation)[0] for model in steps._STEPS}
    assert named == runnable


def test_the_auto_approved_path_is_six_states() -> None:
    # Verify, Route, Reserve, Budget reserved?, Credit, Mark credited: state transitions
    # are what Standard workflows bill (docs/benchmarks.md has the measured figure).
    states, path, name = _states(), [], _definition()["StartAt"]
    choices = {
        "Route by verdict": "Reserve the budget",
        "Budget reserved?": "Credit the cashback",
    }
    while name:
        path.append(name)
        state = states[name]
        name = choices.get(name) or state.get("Next")
        if state.get("End"):
            break
    assert len(path) == 6, path


# -- the state machine in the stack -----------------------------------------------------------


def test_the_state_machine_is_standard_with_its_lambdas_substituted(synth: Synth) -> None:
    machine = _state_machine(synth)
    assert machine["StateMachineType"] == "STANDARD"
    substitutions = machine["DefinitionSubstitutions"]
    resources = synth.data["Resources"]
    steps_id, _ = function_of(resources, STEPS_HANDLER)
    credit_id, _ = function_of(resources, CREDIT_HANDLER)
    assert substitutions == {
        "StepsFunctionArn": {"Fn::GetAtt": [steps_id, "Arn"]},
        "CreditFunctionArn": {"Fn::GetAtt": [credit_id, "Arn"]},
    }
    text = json.dumps(machine["DefinitionString"])
    for placeholder in substitutions:
        assert "${" + placeholder + "}" in text
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    assert machine["LoggingConfiguration"]["IncludeExecutionData"] is False


def test_the_state_machine_may_invoke_its_two_functions_only(synth: Synth) -> None:
    resources = synth.data["Resources"]
    role = ref_id(_state_machine(synth)["RoleArn"])
    invoked: set[str] = set()
    for policy in of_type(resources, "AWS::IAM::Policy").values():
        if {"Ref": role} not in policy["Properties"]["Roles"]:
            continue
        for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"]):
            actions = as_list(statement["Action"])
            if "lambda:InvokeFunction" in actions:
                assert actions == ["lambda:InvokeFunction"]
                text = json.dumps(statement["Resource"])
                invoked |= {
                    logical_id
                    for logical_id in of_type(resources, "AWS::Lambda::Function")
                    if f'"{logical_id}"' in text
                }
            else:
                assert not [a for a in actions if a.split(":")[0] in {"dynamodb", "s3"}]
    steps_id, _ = function_of(resources, STEPS_HANDLER)
    credit_id, _ = function_of(resources, CREDIT_HANDLER)
    assert invoked == {steps_id, credit_id}


def test_failed_executions_and_claim_errors_page(synth: Synth) -> None:
    resources = synth.data["Resources"]
    (machine_id,) = synth.resources("AWS::StepFunctions::StateMachine")
    assert machine_id in json.dumps(alarms_of(resources, "AWS/States", "ExecutionsFailed"))
    claim_errors = [
        alarm["Properties"]
        for alarm in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == "ClaimErrors"
    ]
    assert len(claim_errors) == 1
    assert claim_errors[0]["Dimensions"] == [{"Name": "service", "Value": "claims"}]


# -- the functions ----------------------------------------------------------------------------


def _tables_by_action(synth: Synth, handler: str) -> dict[str, set[str]]:
    by_action: dict[str, set[str]] = {}
    for action, resources in granted_to(synth.data["Resources"], handler).items():
        if action.startswith("dynamodb:"):
            text = json.dumps(resources)
            by_action[action] = {s.logical_id for s in ALL_TABLES if f'"{s.logical_id}"' in text}
    return by_action


@pytest.mark.parametrize(
    ("method", "path"), STOREFRONT_ROUTES, ids=[f"{m} {p}" for m, p in STOREFRONT_ROUTES]
)
def test_each_storefront_route_runs_the_api_function_behind_the_key(
    synth: Synth, method: str, path: str
) -> None:
    assert keyed_proxy_route(synth.data["Resources"], method, path, API_HANDLER)


def test_the_review_route_is_iam_authorised_and_takes_no_key(synth: Synth) -> None:
    route = dict(method_paths(synth.data["Resources"]).values())[" ".join(REVIEW_ROUTE)]
    assert route["AuthorizationType"] == "AWS_IAM"
    assert route["ApiKeyRequired"] is False
    served = routes_served_by(synth.data["Resources"], API_HANDLER)
    assert served == {f"{m} {p}" for m, p in (*STOREFRONT_ROUTES, REVIEW_ROUTE)}


def test_the_api_function_starts_executions_and_signs_receipt_uploads(synth: Synth) -> None:
    granted = granted_to(synth.data["Resources"], API_HANDLER)
    (machine_id,) = synth.resources("AWS::StepFunctions::StateMachine")
    assert granted["states:StartExecution"] == [{"Ref": machine_id}]
    assert granted["states:SendTaskSuccess"] == ["*"]
    assert "states:SendTaskFailure" not in granted
    (upload_resource,) = granted["s3:PutObject"]
    assert RECEIPTS_BUCKET_ID in json.dumps(upload_resource)
    assert f"/{KEY_PREFIX}*" in json.dumps(upload_resource)
    assert "s3:GetObject" not in granted
    tables = _tables_by_action(synth, API_HANDLER)
    assert tables["dynamodb:PutItem"] == {CLAIMS.logical_id, IDEMPOTENCY.logical_id}
    assert tables["dynamodb:Query"] == {
        CLAIMS.logical_id,
        IDEMPOTENCY.logical_id,
        CAMPAIGNS.logical_id,
    }
    env = environment_of(synth.data["Resources"], API_HANDLER)
    assert env["CLAIMS_STATE_MACHINE_ARN"] == {"Ref": machine_id}
    assert env["RECEIPTS_BUCKET"] == {"Ref": RECEIPTS_BUCKET_ID}


def test_the_steps_function_writes_claims_and_only_the_budget_of_campaigns(
    synth: Synth,
) -> None:
    tables = _tables_by_action(synth, STEPS_HANDLER)
    assert tables["dynamodb:UpdateItem"] == {CLAIMS.logical_id, CAMPAIGNS.logical_id}
    for action in ("dynamodb:PutItem", "dynamodb:DeleteItem"):
        assert tables[action] == {CLAIMS.logical_id}, action
    assert WALLET.logical_id not in set().union(*tables.values())
    granted = granted_to(synth.data["Resources"], STEPS_HANDLER)
    assert not [a for a in granted if a.split(":")[0] in {"states", "s3", "events"}]
    env = environment_of(synth.data["Resources"], STEPS_HANDLER)
    assert env["CLAIMS_REVIEW_SECONDS_PER_HOUR"] == "3600"


def test_the_receipt_checker_reads_receipts_and_updates_their_items(synth: Synth) -> None:
    resources = synth.data["Resources"]
    granted = granted_to(resources, RECEIPTS_HANDLER)
    assert {a for a in granted if a.startswith(("s3:", "dynamodb:"))} == {
        "s3:GetObject",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
    }
    assert f"/{KEY_PREFIX}*" in json.dumps(granted["s3:GetObject"])
    logical_id, checker = function_of(resources, RECEIPTS_HANDLER)
    assert "DeadLetterConfig" in checker["Properties"]
    assert logical_id in alarms_of(resources, "AWS/Lambda", "Errors")
    (notifications,) = [
        n["Properties"]
        for n in of_type(resources, "Custom::S3BucketNotifications").values()
        if ref_id(n["Properties"]["BucketName"]) == RECEIPTS_BUCKET_ID
    ]
    (configuration,) = notifications["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    assert logical_id in json.dumps(configuration["LambdaFunctionArn"])
    assert configuration["Events"] == ["s3:ObjectCreated:*"]
    assert configuration["Filter"]["Key"]["FilterRules"] == [
        {"Name": "prefix", "Value": KEY_PREFIX}
    ]


def test_the_receipts_bucket_is_private_and_expires_receipts(synth: Synth) -> None:
    bucket = synth.data["Resources"][RECEIPTS_BUCKET_ID]["Properties"]
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["receipts-retention"]["ExpirationInDays"] == 3 * 365
    assert rules["receipts-retention"]["Prefix"] == KEY_PREFIX
    (cors,) = bucket["CorsConfiguration"]["CorsRules"]
    assert cors["AllowedMethods"] == ["POST"]


def test_the_review_keeper_runs_hourly_and_may_heartbeat_and_start(synth: Synth) -> None:
    resources = synth.data["Resources"]
    rule = resources[KEEPER_SCHEDULE_ID]["Properties"]
    assert rule["ScheduleExpression"] == "rate(1 hour)"
    granted = granted_to(resources, KEEPER_HANDLER)
    assert granted["states:SendTaskHeartbeat"] == ["*"]
    assert "states:SendTaskSuccess" not in granted
    tables = _tables_by_action(synth, KEEPER_HANDLER)
    assert "dynamodb:PutItem" not in tables and "dynamodb:UpdateItem" not in tables
    assert tables["dynamodb:Query"] == {CLAIMS.logical_id}


def test_the_outbox_reads_the_claims_stream_filtered(synth: Synth) -> None:
    table = synth.data["Resources"][CLAIMS.logical_id]["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    mapping = stream_mapping_of(synth.data["Resources"], OUTBOX_HANDLER)
    patterns = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert patterns == [json.loads(json.dumps(f)) for f in STREAM_FILTERS]
    granted = granted_to(synth.data["Resources"], OUTBOX_HANDLER)
    assert "events:PutEvents" in granted
    assert not [a for a in granted if a in {"dynamodb:PutItem", "dynamodb:UpdateItem"}]
