"""The offers wiring: the outbox on the campaigns table's stream, the API function's
routes, the purchases consumer on its queue, the daily reminder sweep, and exactly what
each may do.

The generic checks (DLQs, no wildcard actions, nag, one role per function, every route
behind a key) are in test_stack.py and test_nag.py; these are the offers' own.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.core.tables import ALL_TABLES, CAMPAIGNS, IDEMPOTENCY
from functions.offers.outbox import STREAM_FILTERS
from infra.constructs.offers import (
    API_HANDLER,
    OUTBOX_HANDLER,
    PURCHASES_HANDLER,
    REMINDER_SCHEDULE_ID,
    REMINDERS_HANDLER,
)
from tests.infra.conftest import Synth
from tests.infra.template_checks import (
    TABLE_WRITES,
    alarms_of,
    function_of,
    granted_to,
    keyed_proxy_route,
    ref_id,
    routes_served_by,
    stream_mapping_of,
)

# DESIGN "HTTP API": the storefront's offer routes.
OFFER_ROUTES = (
    ("GET", "/v1/campaigns"),
    ("GET", "/v1/campaigns/{campaignId}"),
    ("GET", "/v1/offers"),
    ("POST", "/v1/offers/{offerId}/codes"),
    ("POST", "/v1/redemptions/validate"),
    ("POST", "/v1/redemptions"),
    ("POST", "/v1/redemptions/{redemptionId}/rollback"),
)


def _function(synth: Synth, handler: str) -> tuple[str, dict[str, Any]]:
    return function_of(synth.data["Resources"], handler)


def _granted(synth: Synth, handler: str) -> dict[str, list[Any]]:
    """action -> the resources it is allowed on."""
    return granted_to(synth.data["Resources"], handler)


def _tables_in(resource: Any) -> set[str]:
    """The tables an ARN (or an index ARN built on one) names."""
    text = json.dumps(resource)
    return {spec.logical_id for spec in ALL_TABLES if f'"{spec.logical_id}"' in text}


def _outbox_mapping(synth: Synth) -> dict[str, Any]:
    return stream_mapping_of(synth.data["Resources"], OUTBOX_HANDLER)


def test_campaigns_table_streams_new_and_old_images(synth: Synth) -> None:
    table = synth.data["Resources"][CAMPAIGNS.logical_id]["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_outbox_reads_the_campaigns_stream_from_its_start(synth: Synth) -> None:
    mapping = _outbox_mapping(synth)
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [CAMPAIGNS.logical_id, "StreamArn"]}
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping.get("Enabled", True) is True


def test_outbox_mapping_filters_to_code_issues_and_redemptions(synth: Synth) -> None:
    patterns = [
        json.loads(f["Pattern"]) for f in _outbox_mapping(synth)["FilterCriteria"]["Filters"]
    ]
    assert patterns == list(STREAM_FILTERS)


def test_outbox_failures_are_retried_halved_and_parked(synth: Synth) -> None:
    mapping = _outbox_mapping(synth)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 < mapping["MaximumRetryAttempts"] <= 10
    # Within the stream's 24-hour retention: a stuck record is parked before it expires.
    assert 0 < mapping["MaximumRecordAgeInSeconds"] <= 86400
    dlq = ref_id(mapping["DestinationConfig"]["OnFailure"]["Destination"])
    assert dlq is not None
    assert synth.data["Resources"][dlq]["Type"] == "AWS::SQS::Queue"
    assert _granted(synth, OUTBOX_HANDLER)["sqs:SendMessage"] == [{"Fn::GetAtt": [dlq, "Arn"]}]


def test_outbox_publishes_to_the_bus_and_reads_only_the_stream(synth: Synth) -> None:
    granted = _granted(synth, OUTBOX_HANDLER)
    (bus,) = synth.resources("AWS::Events::EventBus")
    assert granted["events:PutEvents"] == [{"Fn::GetAtt": [bus, "Arn"]}]
    dynamodb = {action: resources for action, resources in granted.items() if "dynamodb:" in action}
    stream = {"Fn::GetAtt": [CAMPAIGNS.logical_id, "StreamArn"]}
    assert dynamodb == {
        "dynamodb:DescribeStream": [stream],
        "dynamodb:GetShardIterator": [stream],
        "dynamodb:GetRecords": [stream],
    }
    assert not TABLE_WRITES & set(granted)


def test_outbox_knows_the_bus_and_no_table(synth: Synth) -> None:
    _, outbox = _function(synth, OUTBOX_HANDLER)
    env = outbox["Properties"]["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "offers"
    assert ref_id(env["EVENT_BUS_NAME"]) in synth.resources("AWS::Events::EventBus")
    assert CAMPAIGNS.env_var not in env


def test_api_function_uses_the_campaigns_and_idempotency_tables(synth: Synth) -> None:
    _, api = _function(synth, API_HANDLER)
    props = api["Properties"]
    assert props["MemorySize"] == 512
    env = props["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "offers"
    assert env[CAMPAIGNS.env_var] == {"Ref": CAMPAIGNS.logical_id}
    assert env[IDEMPOTENCY.env_var] == {"Ref": IDEMPOTENCY.logical_id}
    granted = _granted(synth, API_HANDLER)
    for action in ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"):
        tables = {table for resource in granted[action] for table in _tables_in(resource)}
        assert tables == {CAMPAIGNS.logical_id, IDEMPOTENCY.logical_id}, action


def test_api_function_never_publishes_events(synth: Synth) -> None:
    granted = _granted(synth, API_HANDLER)
    assert not [action for action in granted if action.startswith("events:")]
    _, api = _function(synth, API_HANDLER)
    assert "EVENT_BUS_NAME" not in api["Properties"]["Environment"]["Variables"]


@pytest.mark.parametrize(
    ("method", "path"), OFFER_ROUTES, ids=[f"{m} {p}" for m, p in OFFER_ROUTES]
)
def test_each_offer_route_runs_the_api_function_behind_the_key(
    synth: Synth, method: str, path: str
) -> None:
    assert keyed_proxy_route(synth.data["Resources"], method, path, API_HANDLER)


def test_the_api_function_serves_the_offer_routes_only(synth: Synth) -> None:
    served = routes_served_by(synth.data["Resources"], API_HANDLER)
    assert served == {f"{method} {path}" for method, path in OFFER_ROUTES}


# -- codes issued after a purchase -------------------------------------------------------

READS = {
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
}


def _dynamodb_granted(synth: Synth, handler: str) -> dict[str, list[Any]]:
    return {a: r for a, r in _granted(synth, handler).items() if a.startswith("dynamodb:")}


def _purchases_queue(synth: Synth) -> str:
    """The queue the purchases function reads."""
    mapping = stream_mapping_of(synth.data["Resources"], PURCHASES_HANDLER)
    queue = ref_id(mapping["EventSourceArn"])
    assert queue is not None and synth.data["Resources"][queue]["Type"] == "AWS::SQS::Queue"
    return queue


def test_purchases_reach_the_offers_through_a_queue_of_their_own(synth: Synth) -> None:
    resources = synth.data["Resources"]
    queue = _purchases_queue(synth)
    (rule,) = [
        r["Properties"]
        for r in synth.resources("AWS::Events::Rule").values()
        if any(ref_id(t["Arn"]) == queue for t in r["Properties"].get("Targets", []))
    ]
    (bus,) = synth.resources("AWS::Events::EventBus")
    assert ref_id(rule["EventBusName"]) == bus
    assert rule["EventPattern"] == {
        "source": [{"prefix": "rebates."}],
        "detail-type": ["PurchaseRecorded"],
    }
    mapping = stream_mapping_of(resources, PURCHASES_HANDLER)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    redrive = resources[queue]["Properties"]["RedrivePolicy"]
    dlq = ref_id(redrive["deadLetterTargetArn"])
    assert dlq is not None and resources[dlq]["Type"] == "AWS::SQS::Queue"
    assert dlq in alarms_of(resources, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    logical_id, _ = _function(synth, PURCHASES_HANDLER)
    assert logical_id in alarms_of(resources, "AWS/Lambda", "Errors")


def test_the_purchases_function_issues_codes_and_does_nothing_else(synth: Synth) -> None:
    dynamodb = _dynamodb_granted(synth, PURCHASES_HANDLER)
    # Reads, and the issue's transaction: the issue put, the code's and the offer's update.
    assert set(dynamodb) == READS | {"dynamodb:PutItem", "dynamodb:UpdateItem"}
    for action, resources in dynamodb.items():
        tables = {table for resource in resources for table in _tables_in(resource)}
        assert tables == {CAMPAIGNS.logical_id}, action
    granted = _granted(synth, PURCHASES_HANDLER)
    queue = {"Fn::GetAtt": [_purchases_queue(synth), "Arn"]}
    sqs = {action: resources for action, resources in granted.items() if action.startswith("sqs:")}
    assert sqs and all(resources == [queue] for resources in sqs.values()), sqs
    assert not [action for action in granted if action.startswith("events:")]
    _, function = _function(synth, PURCHASES_HANDLER)
    env = function["Properties"]["Environment"]["Variables"]
    assert env[CAMPAIGNS.env_var] == {"Ref": CAMPAIGNS.logical_id}
    assert env["POWERTOOLS_SERVICE_NAME"] == "offers"
    assert IDEMPOTENCY.env_var not in env and "EVENT_BUS_NAME" not in env


# -- reminders ---------------------------------------------------------------------------


def test_reminders_are_swept_daily_by_a_schedule_with_a_fixed_name(synth: Synth) -> None:
    rule = synth.data["Resources"][REMINDER_SCHEDULE_ID]
    assert rule["Type"] == "AWS::Events::Rule"
    properties = rule["Properties"]
    # 09:00 in Tokyo: a reminder counts local days, whatever hour of the day it runs.
    assert properties["ScheduleExpression"] == "cron(0 0 * * ? *)"
    assert properties["State"] == "ENABLED"
    assert "EventBusName" not in properties  # schedules fire on the default bus only
    (target,) = properties["Targets"]
    logical_id, _ = _function(synth, REMINDERS_HANDLER)
    assert target["Arn"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    (permission,) = [
        p["Properties"]
        for p in synth.resources("AWS::Lambda::Permission").values()
        if ref_id(p["Properties"]["FunctionName"]) == logical_id
    ]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == {"Fn::GetAtt": [REMINDER_SCHEDULE_ID, "Arn"]}


def test_the_reminder_sweep_only_marks_reminders(synth: Synth) -> None:
    dynamodb = _dynamodb_granted(synth, REMINDERS_HANDLER)
    assert set(dynamodb) == READS | {"dynamodb:UpdateItem"}
    for action, resources in dynamodb.items():
        tables = {table for resource in resources for table in _tables_in(resource)}
        assert tables == {CAMPAIGNS.logical_id}, action
    # A mark is an update of an item, never of an index.
    assert dynamodb["dynamodb:UpdateItem"] == [{"Fn::GetAtt": [CAMPAIGNS.logical_id, "Arn"]}]
    granted = _granted(synth, REMINDERS_HANDLER)
    assert not [action for action in granted if action.startswith("events:")]
    _, function = _function(synth, REMINDERS_HANDLER)
    env = function["Properties"]["Environment"]["Variables"]
    assert env[CAMPAIGNS.env_var] == {"Ref": CAMPAIGNS.logical_id}
    assert IDEMPOTENCY.env_var not in env and "EVENT_BUS_NAME" not in env


def test_a_failed_or_unfinished_sweep_is_retried_then_parked_and_pages(synth: Synth) -> None:
    resources = synth.data["Resources"]
    logical_id, sweep = _function(synth, REMINDERS_HANDLER)
    dlq = ref_id(sweep["Properties"]["DeadLetterConfig"]["TargetArn"])
    assert dlq is not None and resources[dlq]["Type"] == "AWS::SQS::Queue"
    (config,) = [
        c["Properties"]
        for c in synth.resources("AWS::Lambda::EventInvokeConfig").values()
        if ref_id(c["Properties"]["FunctionName"]) == logical_id
    ]
    assert config["MaximumRetryAttempts"] == 2
    assert logical_id in alarms_of(resources, "AWS/Lambda", "Errors")
    assert dlq in alarms_of(resources, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert sweep["Properties"]["Timeout"] == 15 * 60
