"""The REST API proxy event API Gateway sends to a Lambda, built from an HTTP request.

The local API serves every route through this translation, and tests use it to call
handlers exactly as API Gateway would.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from aws_lambda_powertools.utilities.typing import LambdaContext


@dataclass
class LambdaContextStub:
    """The attributes Powertools reads from a Lambda context."""

    function_name: str = "rebates-local"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:ap-northeast-1:123456789012:function:rebates-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/rebates-local"
    log_stream_name: str = "local"
    # Wall-clock instant (time.time() milliseconds) at which the invocation times out;
    # None keeps the fixed 30 s answer that tests calling handlers directly rely on.
    deadline_ms: float | None = None

    def get_remaining_time_in_millis(self) -> int:
        if self.deadline_ms is None:
            return 30_000
        return max(0, int(self.deadline_ms - time.time() * 1000))


def lambda_context(function_name: str = "rebates-local") -> LambdaContext:
    """A context object handlers accept where Lambda would pass its own."""
    return cast(LambdaContext, LambdaContextStub(function_name=function_name))


def proxy_event(
    method: str,
    path: str,
    *,
    resource: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
    query: Mapping[str, str | list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
    body: Any = None,
    api_key: str | None = None,
    stage: str = "prod",
    source_ip: str = "127.0.0.1",
    request_id: str | None = None,
) -> dict[str, Any]:
    """A v1 (REST) proxy integration event, as API Gateway builds it.

    `body` may be bytes or str (sent as is), or any JSON value (serialised).
    `request_id` is API Gateway's id of the request (a fresh one when not given).
    """
    header_map = {k: v for k, v in (headers or {}).items()}
    raw_body: str | None
    is_base64 = False
    if body is None:
        raw_body = None
    elif isinstance(body, bytes):
        try:
            raw_body = body.decode("utf-8")
        except UnicodeDecodeError:
            raw_body, is_base64 = base64.b64encode(body).decode("ascii"), True
    elif isinstance(body, str):
        raw_body = body
    else:
        raw_body = json.dumps(body)
        header_map.setdefault("Content-Type", "application/json")

    single_query: dict[str, str] | None = None
    multi_query: dict[str, list[str]] | None = None
    if query:
        multi_query = {k: (list(v) if isinstance(v, list) else [v]) for k, v in query.items()}
        single_query = {k: values[-1] for k, values in multi_query.items()}

    request_time = time.time()
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method.upper(),
        "headers": header_map or None,
        "multiValueHeaders": {k: [v] for k, v in header_map.items()} or None,
        "queryStringParameters": single_query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource or path,
            "httpMethod": method.upper(),
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": request_id or str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(request_time)),
            "requestTimeEpoch": int(request_time * 1000),
            "accountId": "123456789012",
            "apiId": "local",
            "protocol": "HTTP/1.1",
            "identity": {"sourceIp": source_ip, "apiKey": api_key, "userAgent": "rebates-local"},
        },
        "body": raw_body,
        "isBase64Encoded": is_base64,
    }
