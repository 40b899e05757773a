"""Handlers of the wiring probe: each proves one path of the local cloud runs real code.

They record what reached them in the idempotency table (its name comes from the
function's own environment, as in AWS), so tests observe the effect through the same
AWS APIs a user would, not through the process they happen to share.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import unquote_plus

import boto3

from functions.core.clock import format_instant, utc_now


class ProbeError(Exception):
    """Raised on purpose: the state machine's Catch must see this exact error type."""


def _record(kind: str, key: str, payload: Any) -> None:
    table = os.environ["IDEMPOTENCY_TABLE"]
    boto3.client("dynamodb").put_item(
        TableName=table,
        Item={
            "id": {"S": f"probe#{kind}#{key}"},
            "payload": {"S": json.dumps(payload, sort_keys=True)},
            "service": {"S": os.environ.get("POWERTOOLS_SERVICE_NAME", "")},
        },
    )


def record_events(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS consumer: records each EventBridge event it receives."""
    for record in event["Records"]:
        envelope = json.loads(record["body"])
        _record("event", envelope["detail"]["probeId"], envelope)
    return {"batchItemFailures": []}


def record_stream(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """DynamoDB stream consumer: records each key; fails a batch holding a poison key."""
    keys = [record["dynamodb"]["Keys"]["pk"]["S"] for record in event["Records"]]
    if any(key.startswith("keep#poison") for key in keys):
        raise ProbeError(f"poison in {keys}")
    for record, key in zip(event["Records"], keys, strict=True):
        _record("stream", key, {"eventName": record["eventName"], "arn": record["eventSourceARN"]})
    return {"batchItemFailures": []}


def always_fail(event: dict[str, Any], context: Any) -> None:
    raise ProbeError("this consumer rejects every message")


def record_upload(event: dict[str, Any], context: Any) -> None:
    """S3 notification: records the uploaded key; fails on keys under `incoming/poison`."""
    for record in event["Records"]:
        # S3 event keys are URL-encoded; every S3-triggered handler must decode them.
        key = unquote_plus(record["s3"]["object"]["key"])
        if key.startswith("incoming/poison"):
            raise ProbeError(f"refused {key}")
        _record("upload", key, record["s3"])


def raise_probe_error(event: dict[str, Any], context: Any) -> None:
    raise ProbeError(f"refused {event.get('claimId', '?')}")


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API route: answers with what API Gateway's proxy event carried."""
    body = {
        "resource": event["resource"],
        "path": event["path"],
        "pathParameters": event["pathParameters"],
        "query": event["queryStringParameters"],
        "body": json.loads(event["body"]) if event["body"] else None,
        "apiKey": event["requestContext"]["identity"]["apiKey"],
        "service": os.environ.get("POWERTOOLS_SERVICE_NAME"),
        "now": format_instant(utc_now()),
    }
    return {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
    }
