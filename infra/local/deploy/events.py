"""EventBridge buses and rules, and the scheduled rules the local cloud fires on demand."""

from __future__ import annotations

from typing import Any

from infra.local.deploy.core import DeployContext, json_text, of_type, pick, resource_name, tag_list
from infra.local.deploy.records import Deployed, Deployment, ScheduledRule


def deploy_event_bus(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    name = str(properties["Name"])  # required by CloudFormation (the bus is `rebates`)
    request = {
        "Name": name,
        **pick(properties, "Description", "KmsKeyIdentifier", "DeadLetterConfig"),
    }
    if "Tags" in properties:
        request["Tags"] = tag_list(properties)
    arn = context.client("events").create_event_bus(**request)["EventBusArn"]
    return Deployed(name, {"Arn": arn, "Name": name})


def _bus_name(value: Any) -> str:
    """EventBusName is a name (a Ref) or an ARN (a GetAtt); APIs accept the name."""
    text = str(value or "default")
    return text.split("event-bus/", 1)[1] if text.startswith("arn:") else text


def deploy_rule(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    events = context.client("events")
    name = resource_name(context, logical_id, properties.get("Name"), limit=64)
    # put_rule and put_targets each need the bus's name (the property is a Ref, i.e.
    # the name, or an ARN): without it moto puts the rule, or looks for it, on
    # `default`, and the rule never sees the custom bus's events.
    bus = _bus_name(properties.get("EventBusName"))
    request: dict[str, Any] = {
        "Name": name,
        "EventBusName": bus,
        "State": properties.get("State", "ENABLED"),
        **pick(properties, "Description", "ScheduleExpression", "RoleArn"),
    }
    if "EventPattern" in properties:
        request["EventPattern"] = json_text(properties["EventPattern"])
    arn = events.put_rule(**request)["RuleArn"]
    targets = properties.get("Targets", [])
    if targets:
        # CloudFormation's target shape is the API's (Id, Arn, Input, InputPath,
        # InputTransformer, SqsParameters, DeadLetterConfig, RetryPolicy, ...).
        # moto delivers to SQS and CloudWatch Logs targets only (FIELD-NOTES "moto").
        events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
    # Like CloudFormation: Ref is the name on the default bus, `bus|name` elsewhere.
    physical_id = name if bus == "default" else f"{bus}|{name}"
    return Deployed(physical_id, {"Arn": arn})


def schedules(deployment: Deployment) -> list[ScheduledRule]:
    schedules = []
    for logical_id, deployed in of_type(deployment, "AWS::Events::Rule"):
        properties = deployment.properties[logical_id]
        if "ScheduleExpression" not in properties:
            continue
        schedules.append(
            ScheduledRule(
                name=deployed.physical_id.split("|")[-1],
                logical_id=logical_id,
                schedule_expression=str(properties["ScheduleExpression"]),
                bus_name=_bus_name(properties.get("EventBusName")),
                targets=list(properties.get("Targets", [])),
            )
        )
    return schedules
