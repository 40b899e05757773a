"""Checks over a synthesized CloudFormation template (a plain dict), shared by tests.

They read the template the way CloudFormation does, so they keep biting when later
issues add resources: every new consumer, policy or route goes through them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

Resources = dict[str, dict[str, Any]]

# Services that invoke a function asynchronously: a failed event needs somewhere to go.
ASYNC_INVOKERS = frozenset({"events.amazonaws.com", "s3.amazonaws.com", "sns.amazonaws.com"})


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def ref_id(value: Any) -> str | None:
    """The logical id a `Ref` or `Fn::GetAtt` points at, else None."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


def of_type(resources: Resources, type_: str) -> Resources:
    return {k: r for k, r in resources.items() if r["Type"] == type_}


def identity_statements(resources: Resources) -> Iterator[tuple[str, dict[str, Any]]]:
    """(logical id, statement) for every identity-based IAM policy statement."""
    for logical_id, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [props["PolicyDocument"]]
        elif resource["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        else:
            continue
        for document in documents:
            for statement in as_list(document["Statement"]):
                yield logical_id, statement


def denies_insecure_transport(document: dict[str, Any]) -> bool:
    """Whether a resource policy denies every request made without TLS."""
    return any(
        statement["Effect"] == "Deny"
        and statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for statement in as_list(document["Statement"])
    )


def _on_failure(config: dict[str, Any] | None) -> bool:
    if config is None:
        return False
    destination = config["Properties"].get("DestinationConfig", {}).get("OnFailure", {})
    return bool(destination.get("Destination"))


def event_driven_functions_without_dlq(resources: Resources) -> list[str]:
    """Event-driven functions whose failed events would be lost, one line per problem.

    - SQS event source: the source queue must have a redrive policy (a DLQ);
    - stream event source (Kinesis, DynamoDB): the mapping needs an on-failure destination;
    - asynchronous invoker (EventBridge rule, S3, SNS): the function needs a
      DeadLetterConfig or an EventInvokeConfig with an on-failure destination.
    """
    invoke_configs = {
        ref_id(r["Properties"]["FunctionName"]) or r["Properties"]["FunctionName"]: r
        for r in of_type(resources, "AWS::Lambda::EventInvokeConfig").values()
    }
    problems: set[str] = set()
    for logical_id, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::EventSourceMapping":
            function = ref_id(props["FunctionName"])
            source = resources.get(ref_id(props.get("EventSourceArn")) or "", {})
            if source.get("Type") == "AWS::SQS::Queue":
                if "RedrivePolicy" not in source.get("Properties", {}):
                    problems.add(f"{function}: source queue {props['EventSourceArn']} has no DLQ")
            elif not _on_failure(resource):
                problems.add(f"{function}: mapping {logical_id} has no on-failure destination")
        elif resource["Type"] == "AWS::Lambda::Permission" and props["Principal"] in ASYNC_INVOKERS:
            function = ref_id(props["FunctionName"])
            if function is None or function not in resources:
                problems.add(f"{logical_id}: invokes a function outside the template")
                continue
            has_dlq = "DeadLetterConfig" in resources[function]["Properties"]
            if not (has_dlq or _on_failure(invoke_configs.get(function))):
                problems.add(f"{function}: invoked by {props['Principal']} without a DLQ")
    return sorted(problems)


def method_paths(resources: Resources) -> dict[str, tuple[str, dict[str, Any]]]:
    """Method logical id -> ("GET /v1/health", properties)."""

    def path_of(resource_id: Any) -> str:
        logical_id = ref_id(resource_id)
        assert logical_id is not None
        if resources[logical_id]["Type"] == "AWS::ApiGateway::RestApi":
            return ""  # Fn::GetAtt RestApi.RootResourceId
        props = resources[logical_id]["Properties"]
        return f"{path_of(props['ParentId'])}/{props['PathPart']}"

    return {
        logical_id: (
            f"{r['Properties']['HttpMethod']} {path_of(r['Properties']['ResourceId'])}",
            r["Properties"],
        )
        for logical_id, r in of_type(resources, "AWS::ApiGateway::Method").items()
    }


def _failure_destination(config: dict[str, Any]) -> str | None:
    return ref_id(
        config["Properties"].get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    )


def dead_letter_queues(resources: Resources) -> set[str]:
    """Logical ids of the queues failures end up in: a queue's redrive target, a function's
    DeadLetterConfig, an event source mapping's or invoke config's on-failure destination."""
    found: set[str | None] = set()
    for resource in resources.values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in props:
            found.add(ref_id(props["RedrivePolicy"]["deadLetterTargetArn"]))
        elif resource["Type"] == "AWS::Lambda::Function" and "DeadLetterConfig" in props:
            found.add(ref_id(props["DeadLetterConfig"]["TargetArn"]))
        elif resource["Type"] in (
            "AWS::Lambda::EventSourceMapping",
            "AWS::Lambda::EventInvokeConfig",
        ):
            found.add(_failure_destination(resource))
    return {
        logical_id
        for logical_id in found
        if logical_id is not None and resources.get(logical_id, {}).get("Type") == "AWS::SQS::Queue"
    }


def alarms_of(
    resources: Resources, namespace: str, metric_name: str
) -> dict[str, list[dict[str, Any]]]:
    """Alarm properties by the value of their first dimension (a logical id where the
    dimension refers to a resource), for one metric."""
    found: dict[str, list[dict[str, Any]]] = {}
    for alarm in of_type(resources, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if (props.get("Namespace"), props.get("MetricName")) != (namespace, metric_name):
            continue
        dimensions = props.get("Dimensions") or [{"Value": ""}]
        value = dimensions[0]["Value"]
        found.setdefault(ref_id(value) or str(value), []).append(props)
    return found


def dead_letter_queues_without_alarm(resources: Resources) -> list[str]:
    """DLQs that nobody would hear about: no alarm on their visible messages."""
    watched = alarms_of(resources, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    return sorted(dlq for dlq in dead_letter_queues(resources) if dlq not in watched)


# -- one function, found by its handler -------------------------------------------------

# Every data-plane action that would let a stream reader change the table instead of
# reading its stream.
TABLE_WRITES = frozenset(
    {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:PartiQLInsert",
        "dynamodb:PartiQLUpdate",
        "dynamodb:PartiQLDelete",
    }
)


def function_of(resources: Resources, handler: str) -> tuple[str, dict[str, Any]]:
    """(logical id, resource) of the one function running `handler`."""
    (found,) = [
        (logical_id, function)
        for logical_id, function in of_type(resources, "AWS::Lambda::Function").items()
        if function["Properties"]["Handler"] == handler
    ]
    return found


def granted_to(resources: Resources, handler: str) -> dict[str, list[Any]]:
    """action -> the resources the role of `handler`'s function allows it on (every
    statement an Allow)."""
    _, function = function_of(resources, handler)
    role = ref_id(function["Properties"]["Role"])
    granted: dict[str, list[Any]] = {}
    for policy in of_type(resources, "AWS::IAM::Policy").values():
        if {"Ref": role} not in policy["Properties"]["Roles"]:
            continue
        for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"]):
            assert statement["Effect"] == "Allow"
            for action in as_list(statement["Action"]):
                granted.setdefault(action, []).extend(as_list(statement["Resource"]))
    return granted


def environment_of(resources: Resources, handler: str) -> dict[str, Any]:
    _, function = function_of(resources, handler)
    variables: dict[str, Any] = function["Properties"]["Environment"]["Variables"]
    return variables


def stream_mapping_of(resources: Resources, handler: str) -> dict[str, Any]:
    """The properties of the one event source mapping invoking `handler`'s function."""
    logical_id, _ = function_of(resources, handler)
    (mapping,) = [
        m
        for m in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if ref_id(m["Properties"]["FunctionName"]) == logical_id
    ]
    properties: dict[str, Any] = mapping["Properties"]
    return properties


def keyed_proxy_route(resources: Resources, method: str, path: str, handler: str) -> bool:
    """Whether `method path` is served by `handler`'s function through a proxy integration,
    behind the API key and no other authorization."""
    route = dict(method_paths(resources).values())[f"{method} {path}"]
    logical_id, _ = function_of(resources, handler)
    return (
        route["ApiKeyRequired"] is True
        and route["AuthorizationType"] == "NONE"
        and route["Integration"]["Type"] == "AWS_PROXY"
        and logical_id in json.dumps(route["Integration"]["Uri"])
    )


def routes_served_by(resources: Resources, handler: str) -> set[str]:
    """Every "METHOD /path" the API integrates with `handler`'s function."""
    logical_id, _ = function_of(resources, handler)
    return {
        route
        for route, props in method_paths(resources).values()
        if logical_id in json.dumps(props["Integration"]["Uri"])
    }
