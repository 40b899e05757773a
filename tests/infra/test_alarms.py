"""What pages an operator: every DLQ, the API's 5xx, event-driven functions' errors and
the outbox's failures, each alarm on the first bad datapoint to the operators' topic."""

from __future__ import annotations

from typing import Any, cast

from aws_cdk import CfnElement, Stack
from constructs import IConstruct

from functions.core.observability import METRICS_NAMESPACE, SERVICE_DIMENSION, Metric
from infra.stack import RebatesStack
from tests.infra.conftest import Synth
from tests.infra.template_checks import (
    ASYNC_INVOKERS,
    alarms_of,
    as_list,
    dead_letter_queues,
    dead_letter_queues_without_alarm,
    denies_insecure_transport,
    of_type,
    ref_id,
)


def logical_id(construct: IConstruct) -> str:
    element = construct.node.default_child or construct
    return Stack.of(construct).get_logical_id(cast(CfnElement, element))


def rebates(synth: Synth) -> RebatesStack:
    assert isinstance(synth.stack, RebatesStack)
    return synth.stack


def operators_topic(synth: Synth) -> str:
    return logical_id(rebates(synth).platform.operators.topic)


def alarm_on_first_datapoint(props: dict[str, Any]) -> bool:
    return bool(
        props["Threshold"] == 0
        and props["ComparisonOperator"] == "GreaterThanThreshold"
        and props["EvaluationPeriods"] == 1
        and props["TreatMissingData"] == "notBreaching"
    )


def test_every_dead_letter_queue_pages_the_operators(synth: Synth) -> None:
    resources = synth.data["Resources"]
    dlqs = dead_letter_queues(resources)
    stack = rebates(synth)
    # The loader's, the outbox's and each consumer queue's: no DLQ escapes the check.
    assert {
        logical_id(stack.campaigns.loader.dead_letter_queue),  # type: ignore[arg-type]
        logical_id(stack.offers.outbox_dlq),
        logical_id(stack.notifications.events.dlq),
        logical_id(stack.analytics.domain_events.dlq),
    } <= dlqs
    assert dead_letter_queues_without_alarm(resources) == []
    depth = alarms_of(resources, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    for dlq in dlqs:
        (alarm,) = depth[dlq]
        assert alarm["Dimensions"] == [
            {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}
        ]
        assert (alarm["Statistic"], alarm["Period"]) == ("Maximum", 60)
        assert alarm_on_first_datapoint(alarm), dlq


def test_the_api_pages_on_any_5xx_over_five_minutes(synth: Synth) -> None:
    resources = synth.data["Resources"]
    (rest_api,) = of_type(resources, "AWS::ApiGateway::RestApi").values()
    (stage_id,) = of_type(resources, "AWS::ApiGateway::Stage")
    (alarm,) = alarms_of(resources, "AWS/ApiGateway", "5XXError")[rest_api["Properties"]["Name"]]
    assert alarm["Dimensions"] == [
        {"Name": "ApiName", "Value": rest_api["Properties"]["Name"]},
        {"Name": "Stage", "Value": {"Ref": stage_id}},
    ]
    assert (alarm["Statistic"], alarm["Period"]) == ("Sum", 300)
    assert alarm_on_first_datapoint(alarm)


def event_driven_functions(resources: dict[str, dict[str, Any]]) -> set[str]:
    """Functions fed by an event source mapping or invoked asynchronously by a service."""
    found: set[str | None] = {
        ref_id(mapping["Properties"]["FunctionName"])
        for mapping in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    }
    found |= {
        ref_id(permission["Properties"]["FunctionName"])
        for permission in of_type(resources, "AWS::Lambda::Permission").values()
        if permission["Properties"]["Principal"] in ASYNC_INVOKERS
    }
    return {function for function in found if function is not None}


def test_every_event_driven_function_pages_on_its_errors(synth: Synth) -> None:
    resources = synth.data["Resources"]
    functions = event_driven_functions(resources)
    stack = rebates(synth)
    assert {
        logical_id(stack.campaigns.loader.function),
        logical_id(stack.offers.outbox.function),
    } <= functions
    errors = alarms_of(resources, "AWS/Lambda", "Errors")
    for function in functions:
        (alarm,) = errors[function]
        assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
        assert (alarm["Statistic"], alarm["Period"]) == ("Sum", 300)
        assert alarm_on_first_datapoint(alarm), function
    # API functions answer 5xx instead, which the API's alarm watches.
    assert logical_id(stack.offers.api_function.function) not in errors


def test_outbox_failures_page_the_operators_three_ways(synth: Synth) -> None:
    resources = synth.data["Resources"]
    offers = rebates(synth).offers
    outbox_function = logical_id(offers.outbox.function)
    service = resources[outbox_function]["Properties"]["Environment"]["Variables"][
        "POWERTOOLS_SERVICE_NAME"
    ]
    failures = alarms_of(resources, METRICS_NAMESPACE, Metric.OUTBOX_PUBLISH_FAILURES.value)
    (alarm,) = failures[service]
    assert alarm["Dimensions"] == [{"Name": SERVICE_DIMENSION, "Value": service}]
    assert (alarm["Statistic"], alarm["Period"]) == ("Sum", 300)
    assert alarm_on_first_datapoint(alarm)
    # ...besides its on-failure queue's depth and its errors, as every consumer.
    assert logical_id(offers.outbox_dlq) in alarms_of(
        resources, "AWS/SQS", "ApproximateNumberOfMessagesVisible"
    )
    assert outbox_function in alarms_of(resources, "AWS/Lambda", "Errors")


def test_every_alarm_notifies_the_operators_and_points_to_the_runbook(synth: Synth) -> None:
    alarms = synth.resources("AWS::CloudWatch::Alarm")
    topic = {"Ref": operators_topic(synth)}
    assert len(alarms) >= 8
    for alarm_id, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [topic], alarm_id
        assert props["OKActions"] == [topic], alarm_id
        assert "docs/operations.md" in props["AlarmDescription"], alarm_id


def test_the_operators_topic_is_encrypted_tls_only_and_open_to_this_account_s_alarms(
    synth: Synth,
) -> None:
    resources = synth.data["Resources"]
    topic_id = operators_topic(synth)
    key_id = logical_id(rebates(synth).platform.key)
    assert resources[topic_id]["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    (policy,) = [
        p["Properties"]["PolicyDocument"]
        for p in synth.resources("AWS::SNS::TopicPolicy").values()
        if {"Ref": topic_id} in p["Properties"]["Topics"]
    ]
    assert denies_insecure_transport(policy)
    (publish,) = [s for s in as_list(policy["Statement"]) if s["Effect"] == "Allow"]
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert publish["Action"] == "sns:Publish"
    assert publish["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    key_statements = as_list(resources[key_id]["Properties"]["KeyPolicy"]["Statement"])
    assert {
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Resource": "*",
    } in key_statements
