"""Small Lambda handlers the runtime tests deploy into moto by dotted path.

They stand in for real handlers: each exercises one thing the local runtime must get
right (environment, context, errors, calls back into moto, SQS batch responses).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import boto3

from functions.core.clock import utc_now

Handler = Callable[[Any, Any], Any]

# Tests register callables here and invoke `call_back` with {"name": ...}: a way to run
# test code inside a handler's context (its thread, environment and gate state).
CALLBACKS: dict[str, Callable[[], Any]] = {}


class VerificationFailed(Exception):
    """A domain error whose class name Step Functions Catch matches."""


def echo(event: Any, context: Any) -> dict[str, Any]:
    return {
        "event": event,
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "invoked_function_arn": context.invoked_function_arn,
        "aws_request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }


def read_env(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The values of `event["keys"]` through os.environ and os.getenv."""
    keys: list[str] = event["keys"]
    return {
        "environ": {key: os.environ.get(key) for key in keys},
        "getenv": {key: os.getenv(key) for key in keys},
    }


def write_env(event: dict[str, Any], context: Any) -> dict[str, Any]:
    os.environ[event["key"]] = event["value"]
    return {"value": os.environ[event["key"]]}


def now(event: Any, context: Any) -> dict[str, Any]:
    return {"now": utc_now().timestamp()}


def printing(event: dict[str, Any], context: Any) -> None:
    print(event["say"])


def fail_with(error: type[Exception]) -> Handler:
    def handler(event: Any, context: Any) -> Any:
        raise error(f"{error.__name__} for {event!r}")

    handler.__name__ = f"fail_with_{error.__name__}"
    return handler


fail_value_error = fail_with(ValueError)
fail_verification = fail_with(VerificationFailed)


def exit_early(event: Any, context: Any) -> None:
    raise SystemExit(3)


def unserialisable(event: Any, context: Any) -> Any:
    return {"items": {1, 2}}


def call_back(event: dict[str, Any], context: Any) -> Any:
    return CALLBACKS[event["name"]]()


def dynamodb_round_trip(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Writes and reads an item through the endpoint in the function's environment."""
    # A session of its own: the client reads region, endpoint and credentials from the
    # function's environment, as a handler's module-level client would.
    client = boto3.session.Session().client("dynamodb")
    key = {"pk": {"S": event["pk"]}}
    client.put_item(TableName=event["table"], Item={**key, "by": {"S": context.function_name}})
    item = client.get_item(TableName=event["table"], Key=key, ConsistentRead=True)["Item"]
    return {"by": item["by"]["S"], "endpoint": os.environ.get("AWS_ENDPOINT_URL")}


def partial_failures(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Reports the records whose body starts with "fail" as failed (ReportBatchItemFailures)."""
    return {
        "batchItemFailures": [
            {"itemIdentifier": record["messageId"]}
            for record in event["Records"]
            if record["body"].startswith("fail")
        ]
    }
