"""The wallet wiring: the API routes, the sweep on its schedule, the claims' credit task,
the outbox on the wallet table's stream, exactly what each may do, and what pages.

The generic checks (DLQs, no wildcard actions, nag, cfn-lint, one role per function, every
route behind a key) are in test_stack.py, test_alarms.py, test_nag.py and test_cfn_lint.py;
these are the wallet's own.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.core.observability import METRICS_NAMESPACE, Metric
from functions.core.tables import ALL_TABLES, CAMPAIGNS, IDEMPOTENCY, WALLET
from functions.wallet.outbox import STREAM_FILTERS
from infra.constructs.wallet import (
    API_HANDLER,
    CREDIT_HANDLER,
    OUTBOX_HANDLER,
    SWEEP_HANDLER,
    SWEEP_SCHEDULE_ID,
)
from tests.infra.conftest import Synth
from tests.infra.template_checks import (
    TABLE_WRITES,
    alarms_of,
    environment_of,
    function_of,
    granted_to,
    keyed_proxy_route,
    of_type,
    ref_id,
    routes_served_by,
    stream_mapping_of,
)

# DESIGN "HTTP API": the wallet's routes.
WALLET_ROUTES = (
    ("POST", "/v1/purchases"),
    ("POST", "/v1/purchases/{orderId}/refunds"),
    ("GET", "/v1/customers/{customerId}/wallet"),
    ("POST", "/v1/customers/{customerId}/wallet/spend"),
    ("POST", "/v1/customers/{customerId}/wallet/spend/{orderId}/cancel"),
)

READS = {
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
}
WRITES = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
}


def _function(synth: Synth, handler: str) -> tuple[str, dict[str, Any]]:
    return function_of(synth.data["Resources"], handler)


def _granted(synth: Synth, handler: str) -> dict[str, list[Any]]:
    """action -> the resources the function's role allows it on."""
    return granted_to(synth.data["Resources"], handler)


def _tables_by_action(synth: Synth, handler: str) -> dict[str, set[str]]:
    """dynamodb action -> the tables (logical ids) it is allowed on, indexes included."""
    by_action: dict[str, set[str]] = {}
    for action, resources in _granted(synth, handler).items():
        if not action.startswith("dynamodb:"):
            continue
        text = json.dumps(resources)
        by_action[action] = {s.logical_id for s in ALL_TABLES if f'"{s.logical_id}"' in text}
    return by_action


def _environment(synth: Synth, handler: str) -> dict[str, Any]:
    return environment_of(synth.data["Resources"], handler)


# -- the table and its stream ---------------------------------------------------------------


def test_wallet_table_streams_new_and_old_images(synth: Synth) -> None:
    table = synth.data["Resources"][WALLET.logical_id]["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


# -- the API function ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"), WALLET_ROUTES, ids=[f"{m} {p}" for m, p in WALLET_ROUTES]
)
def test_each_wallet_route_runs_the_api_function_behind_the_key(
    synth: Synth, method: str, path: str
) -> None:
    assert keyed_proxy_route(synth.data["Resources"], method, path, API_HANDLER)


def test_the_api_function_serves_the_wallet_routes_only(synth: Synth) -> None:
    served = routes_served_by(synth.data["Resources"], API_HANDLER)
    assert served == {f"{method} {path}" for method, path in WALLET_ROUTES}


def test_the_api_function_uses_the_wallet_and_idempotency_tables_and_the_budget(
    synth: Synth,
) -> None:
    env = _environment(synth, API_HANDLER)
    assert env["POWERTOOLS_SERVICE_NAME"] == "wallet"
    for spec in (WALLET, IDEMPOTENCY, CAMPAIGNS):
        assert env[spec.env_var] == {"Ref": spec.logical_id}
    tables = _tables_by_action(synth, API_HANDLER)
    for action in READS:
        assert tables[action] == {WALLET.logical_id, IDEMPOTENCY.logical_id, CAMPAIGNS.logical_id}
    # The campaigns table only as the budget needs: its counters are updates of the
    # campaign item, inside the wallet's transactions; never a put or a delete.
    assert tables["dynamodb:UpdateItem"] == {
        WALLET.logical_id,
        IDEMPOTENCY.logical_id,
        CAMPAIGNS.logical_id,
    }
    for action in ("dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"):
        assert tables[action] == {WALLET.logical_id, IDEMPOTENCY.logical_id}, action
    assert (
        _granted(synth, API_HANDLER)["dynamodb:UpdateItem"].count(
            {"Fn::GetAtt": [CAMPAIGNS.logical_id, "Arn"]}
        )
        == 1
    )


def test_the_api_function_never_publishes_events(synth: Synth) -> None:
    assert not [a for a in _granted(synth, API_HANDLER) if a.startswith("events:")]
    assert "EVENT_BUS_NAME" not in _environment(synth, API_HANDLER)


# -- the sweep ------------------------------------------------------------------------------


def _schedule(synth: Synth) -> dict[str, Any]:
    rule = synth.data["Resources"][SWEEP_SCHEDULE_ID]
    assert rule["Type"] == "AWS::Events::Rule"
    properties: dict[str, Any] = rule["Properties"]
    return properties


def test_the_sweep_runs_every_fifteen_minutes_on_the_default_bus(synth: Synth) -> None:
    rule = _schedule(synth)
    assert rule["ScheduleExpression"] == "rate(15 minutes)"
    assert rule["State"] == "ENABLED"
    assert "EventBusName" not in rule  # schedules fire on the default bus only
    (target,) = rule["Targets"]
    logical_id, _ = _function(synth, SWEEP_HANDLER)
    assert target["Arn"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    (permission,) = [
        p["Properties"]
        for p in synth.resources("AWS::Lambda::Permission").values()
        if ref_id(p["Properties"]["FunctionName"]) == logical_id
    ]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == {"Fn::GetAtt": [SWEEP_SCHEDULE_ID, "Arn"]}


def test_the_sweep_uses_the_wallet_table_only(synth: Synth) -> None:
    tables = _tables_by_action(synth, SWEEP_HANDLER)
    assert all(found == {WALLET.logical_id} for found in tables.values()), tables
    assert set(tables) >= READS | WRITES
    env = _environment(synth, SWEEP_HANDLER)
    assert env[WALLET.env_var] == {"Ref": WALLET.logical_id}
    assert CAMPAIGNS.env_var not in env and "EVENT_BUS_NAME" not in env
    assert not [a for a in _granted(synth, SWEEP_HANDLER) if a.startswith("events:")]


def test_a_failed_sweep_is_retried_then_parked_and_pages(synth: Synth) -> None:
    logical_id, sweep = _function(synth, SWEEP_HANDLER)
    dlq = ref_id(sweep["Properties"]["DeadLetterConfig"]["TargetArn"])
    assert dlq is not None and synth.data["Resources"][dlq]["Type"] == "AWS::SQS::Queue"
    (config,) = [
        c["Properties"]
        for c in synth.resources("AWS::Lambda::EventInvokeConfig").values()
        if ref_id(c["Properties"]["FunctionName"]) == logical_id
    ]
    assert config["MaximumRetryAttempts"] == 2
    resources = synth.data["Resources"]
    assert logical_id in alarms_of(resources, "AWS/Lambda", "Errors")
    assert dlq in alarms_of(resources, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert sweep["Properties"]["Timeout"] < 15 * 60  # done before the next run is due


# -- the credit task ------------------------------------------------------------------------


def test_the_credit_task_writes_the_wallet_and_reads_campaigns(synth: Synth) -> None:
    tables = _tables_by_action(synth, CREDIT_HANDLER)
    for action in READS:
        assert tables[action] == {WALLET.logical_id, CAMPAIGNS.logical_id}
    for action in WRITES:
        # The claims workflow reserved the budget itself: no campaign update here.
        assert tables[action] == {WALLET.logical_id}, action
    env = _environment(synth, CREDIT_HANDLER)
    assert (env[WALLET.env_var], env[CAMPAIGNS.env_var]) == (
        {"Ref": WALLET.logical_id},
        {"Ref": CAMPAIGNS.logical_id},
    )
    assert IDEMPOTENCY.env_var not in env and "EVENT_BUS_NAME" not in env


# -- the outbox -----------------------------------------------------------------------------


def _outbox_mapping(synth: Synth) -> dict[str, Any]:
    return stream_mapping_of(synth.data["Resources"], OUTBOX_HANDLER)


def test_the_outbox_reads_the_wallet_stream_filtered_from_its_start(synth: Synth) -> None:
    mapping = _outbox_mapping(synth)
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [WALLET.logical_id, "StreamArn"]}
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    patterns = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert patterns == list(STREAM_FILTERS)


def test_outbox_failures_are_retried_halved_and_parked(synth: Synth) -> None:
    mapping = _outbox_mapping(synth)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 < mapping["MaximumRetryAttempts"] <= 10
    assert 0 < mapping["MaximumRecordAgeInSeconds"] <= 86400
    dlq = ref_id(mapping["DestinationConfig"]["OnFailure"]["Destination"])
    assert dlq is not None and synth.data["Resources"][dlq]["Type"] == "AWS::SQS::Queue"
    assert _granted(synth, OUTBOX_HANDLER)["sqs:SendMessage"] == [{"Fn::GetAtt": [dlq, "Arn"]}]
    assert dlq in alarms_of(
        synth.data["Resources"], "AWS/SQS", "ApproximateNumberOfMessagesVisible"
    )


def test_the_outbox_publishes_to_the_bus_and_reads_only_the_stream(synth: Synth) -> None:
    granted = _granted(synth, OUTBOX_HANDLER)
    (bus,) = synth.resources("AWS::Events::EventBus")
    assert granted["events:PutEvents"] == [{"Fn::GetAtt": [bus, "Arn"]}]
    stream = {"Fn::GetAtt": [WALLET.logical_id, "StreamArn"]}
    dynamodb = {
        action: found for action, found in granted.items() if action.startswith("dynamodb:")
    }
    assert dynamodb == {
        "dynamodb:DescribeStream": [stream],
        "dynamodb:GetShardIterator": [stream],
        "dynamodb:GetRecords": [stream],
    }
    assert not TABLE_WRITES & set(granted)
    env = _environment(synth, OUTBOX_HANDLER)
    assert env["POWERTOOLS_SERVICE_NAME"] == "wallet"
    assert WALLET.env_var not in env


def test_the_outbox_pages_on_errors_and_on_its_publish_failures(synth: Synth) -> None:
    resources = synth.data["Resources"]
    logical_id, _ = _function(synth, OUTBOX_HANDLER)
    assert logical_id in alarms_of(resources, "AWS/Lambda", "Errors")
    failures = [
        props
        for props in (
            a["Properties"] for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
        )
        if (props.get("Namespace"), props.get("MetricName"))
        == (METRICS_NAMESPACE, Metric.OUTBOX_PUBLISH_FAILURES.value)
    ]
    wallet = [p for p in failures if p["Dimensions"] == [{"Name": "service", "Value": "wallet"}]]
    (alarm,) = wallet
    assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Sum", 300, 0)
    assert alarm["AlarmActions"] and alarm["OKActions"]
