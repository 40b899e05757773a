"""Calling an API function's resolver as API Gateway would, with the API key."""

from __future__ import annotations

import json
from typing import Any

from functions.core.api import ResolverPerThread
from functions.core.idempotency import IDEMPOTENCY_KEY_HEADER
from infra.local.proxy_event import lambda_context, proxy_event


def api_call(
    app: ResolverPerThread,
    method: str,
    path: str,
    body: Any = None,
    *,
    query: dict[str, str] | None = None,
    key: str | None = None,
    headers: dict[str, str] | None = None,
    raw: str | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """Status, JSON body and headers (the last value of each) of one request; `key` is its
    Idempotency-Key, `raw` a body sent as is instead of `body` as JSON."""
    sent = dict(headers or {})
    if key:
        sent[IDEMPOTENCY_KEY_HEADER] = key
    event = proxy_event(method, path, body=body, query=query, headers=sent, api_key="test-key")
    if raw is not None:
        event["body"] = raw
    response = app.resolve(event, lambda_context())
    answer = {name: values[-1] for name, values in response["multiValueHeaders"].items()}
    return response["statusCode"], json.loads(response["body"]), answer
