"""The helpers later issues build with, exercised on a small scratch stack.

The Rebates stack has no event-driven function yet, so this is also where the
generic DLQ check proves it bites: it must flag exactly the consumers wired
without a DLQ, and pass the ones wired through the helpers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template

from functions.core.tables import CAMPAIGNS, WALLET
from infra.build import build_all
from infra.constructs.api import Api
from infra.constructs.platform import DeploySettings, DomainFunction, Platform
from tests.infra.template_checks import (
    dead_letter_queues_without_alarm,
    event_driven_functions_without_dlq,
    of_type,
)


@dataclass(frozen=True)
class Scratch:
    resources: dict[str, Any]
    api: Api


@pytest.fixture(scope="module")
def scratch() -> Scratch:
    code_dir, layer_dir = build_all()
    stack = Stack(App(builtin_cloud_formation_validation=False), "Scratch")
    settings = DeploySettings(
        version="test", sender_email="x@example.com", deletion_protection=False
    )
    platform = Platform(
        stack, "Platform", settings=settings, code_dir=code_dir, layer_dir=layer_dir
    )
    platform.add_table(stack, CAMPAIGNS)
    platform.add_table(stack, WALLET)

    def function(id: str, **options: Any) -> DomainFunction:
        return DomainFunction(
            stack,
            id,
            platform=platform,
            domain="test",
            handler="functions.core.health.handler",
            description=id,
            **options,
        )

    reader = function("Reader")
    platform.grant_table(reader, CAMPAIGNS, read_only=True)
    platform.grant_table(reader, WALLET)
    platform.grant_put_events(reader)

    function("GoodQueue").consume_queue(platform.event_queue(stack, "Feed", description="feed"))
    function("GoodStream").consume_stream(kinesis.Stream(stack, "Stream"))
    rule = events.Rule(
        stack, "Rule", event_bus=platform.bus, event_pattern=events.EventPattern(source=["x"])
    )
    rule.add_target(targets.LambdaFunction(function("GoodAsync", async_invocation=True).function))
    rule.add_target(targets.LambdaFunction(function("BadAsync").function))
    bare = sqs.Queue(stack, "Bare")
    function("BadQueue").function.add_event_source(sources.SqsEventSource(bare))
    # A DLQ made without `dead_letter_queue`, so without its alarm.
    unwatched = sqs.DeadLetterQueue(queue=sqs.Queue(stack, "RawDlq"), max_receive_count=3)
    sqs.Queue(stack, "Redriven", dead_letter_queue=unwatched)

    api = Api(stack, "Api", platform=platform)
    return Scratch(Template.from_stack(stack).to_json()["Resources"], api)


def test_dlq_check_flags_exactly_the_consumers_without_a_dlq(scratch: Scratch) -> None:
    problems = event_driven_functions_without_dlq(scratch.resources)
    assert len(problems) == 2, problems
    assert problems[0].startswith("BadAsync") and "events.amazonaws.com" in problems[0]
    assert problems[1].startswith("BadQueue") and "Bare" in problems[1]


def test_alarm_check_flags_exactly_the_dlq_made_without_the_helper(scratch: Scratch) -> None:
    (unwatched,) = dead_letter_queues_without_alarm(scratch.resources)
    assert unwatched.startswith("RawDlq")


def test_grant_table_names_the_table_and_each_index(scratch: Scratch) -> None:
    (reader,) = [
        r
        for k, r in of_type(scratch.resources, "AWS::Lambda::Function").items()
        if k.startswith("Reader")
    ]
    env = reader["Properties"]["Environment"]["Variables"]
    assert env["CAMPAIGNS_TABLE"] == {"Ref": CAMPAIGNS.logical_id}
    assert env["WALLET_TABLE"] == {"Ref": WALLET.logical_id}
    assert "EVENT_BUS_NAME" in env
    (policy,) = [
        p
        for k, p in of_type(scratch.resources, "AWS::IAM::Policy").items()
        if k.startswith("ReaderRole")
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    by_table = {
        s["Resource"][0]["Fn::GetAtt"][0]: s
        for s in statements
        if isinstance(s["Resource"], list) and "dynamodb:GetItem" in s["Action"]
    }
    read_only, read_write = by_table[CAMPAIGNS.logical_id], by_table[WALLET.logical_id]
    assert "dynamodb:PutItem" not in read_only["Action"]
    assert "dynamodb:PutItem" in read_write["Action"]
    # The table and its gsi1 by ARN: no index/* wildcard.
    index_arn = read_only["Resource"][1]["Fn::Join"][1]
    assert index_arn[-1] == "/index/gsi1"


def test_add_route_keeps_routes_under_v1_and_public_ones_explained(scratch: Scratch) -> None:
    # Each call fails before touching the construct tree.
    api = scratch.api
    with pytest.raises(ValueError, match="under /v1/"):
        api.add_route("GET", "/health", api.health)
    with pytest.raises(ValueError, match="public_reason"):
        api.add_route("GET", "/v1/unsubscribe", api.health, api_key_required=False)
    with pytest.raises(ValueError, match="public_reason"):
        api.add_route("GET", "/v1/campaigns", api.health, public_reason="not public")
