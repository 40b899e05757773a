"""API Gateway's own answers (gateway responses) are in the contract's error shape.

Each declared response is read from the synthesized template, its template filled in as
API Gateway fills it (the `$context` variables), and checked against the status and code
a storefront relies on.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.core.api import make_resolver
from infra.local.proxy_event import lambda_context, proxy_event
from tests.infra.conftest import Synth

# Response type -> (status API Gateway answers with, the error code). None keeps the
# status of the error a default response stands in for.
EXPECTED: dict[str, tuple[str | None, str]] = {
    "INVALID_API_KEY": ("403", "invalid_api_key"),
    "MISSING_AUTHENTICATION_TOKEN": ("403", "route_not_found"),
    "ACCESS_DENIED": ("403", "forbidden"),
    "INVALID_SIGNATURE": ("403", "invalid_signature"),
    "EXPIRED_TOKEN": ("403", "expired_token"),
    "THROTTLED": ("429", "throttled"),
    "REQUEST_TOO_LARGE": ("413", "payload_too_large"),
    "BAD_REQUEST_BODY": ("400", "invalid_request"),
    "BAD_REQUEST_PARAMETERS": ("400", "invalid_request"),
    "INTEGRATION_TIMEOUT": ("504", "integration_timeout"),
    "INTEGRATION_FAILURE": ("504", "integration_failure"),
    "DEFAULT_4XX": (None, "request_refused"),
    "DEFAULT_5XX": (None, "internal_error"),
}

REQUEST_ID = "c0ffee00-0000-4000-8000-000000000001"
_CONTEXT = re.compile(r"\$context\.[A-Za-z.]+")


def fill(template: str, response_type: str, message: str) -> Any:
    """The body API Gateway sends: `$context` variables substituted, no other processing."""
    values = {
        "$context.requestId": REQUEST_ID,
        "$context.error.messageString": json.dumps(message),
        "$context.error.message": message,
        "$context.error.responseType": response_type,
    }
    filled = _CONTEXT.sub(lambda match: values[match.group(0)], template)
    return json.loads(filled)


def declared(synth: Synth) -> dict[str, dict[str, Any]]:
    responses = synth.resources("AWS::ApiGateway::GatewayResponse").values()
    by_type: dict[str, dict[str, Any]] = {}
    for resource in responses:
        properties = resource["Properties"]
        assert properties["ResponseType"] not in by_type, properties["ResponseType"]
        by_type[properties["ResponseType"]] = properties
    return by_type


def test_every_answer_of_api_gateway_itself_is_declared(synth: Synth) -> None:
    assert set(declared(synth)) == set(EXPECTED)
    (api,) = synth.resources("AWS::ApiGateway::RestApi")
    for properties in declared(synth).values():
        assert properties["RestApiId"] == {"Ref": api}


@pytest.mark.parametrize("response_type", sorted(EXPECTED))
def test_each_gateway_response_keeps_its_status_and_answers_the_error_shape(
    synth: Synth, response_type: str
) -> None:
    status, code = EXPECTED[response_type]
    properties = declared(synth)[response_type]
    assert properties.get("StatusCode") == status
    (content_type,) = properties["ResponseTemplates"]
    assert content_type == "application/json"

    body = fill(properties["ResponseTemplates"][content_type], response_type, "Forbidden")

    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    # The id the functions' log lines carry as their correlation id.
    assert error["details"]["requestId"] == REQUEST_ID


def test_the_default_responses_say_which_type_api_gateway_answered(synth: Synth) -> None:
    responses = declared(synth)
    refused = fill(
        responses["DEFAULT_4XX"]["ResponseTemplates"]["application/json"],
        "WAF_FILTERED",
        'Forbidden "by the firewall"',
    )
    assert refused["error"]["message"] == 'Forbidden "by the firewall"'
    assert refused["error"]["details"] == {"requestId": REQUEST_ID, "responseType": "WAF_FILTERED"}
    failed = fill(
        responses["DEFAULT_5XX"]["ResponseTemplates"]["application/json"],
        "DEFAULT_5XX",
        "Internal server error",
    )
    assert failed["error"]["details"]["responseType"] == "DEFAULT_5XX"


def test_throttling_tells_the_storefront_when_to_retry(synth: Synth) -> None:
    throttled = declared(synth)["THROTTLED"]
    assert throttled["ResponseParameters"] == {"gatewayresponse.header.Retry-After": "'1'"}


def test_the_codes_are_those_the_functions_answer_in_the_same_situations() -> None:
    """An unknown route and a failure have one code whether API Gateway or a function
    answers."""
    router = Router()

    @router.get("/v1/crash")
    def crash() -> None:
        raise RuntimeError("a bug")

    app = make_resolver(router)
    unknown = app.resolve(proxy_event("GET", "/v1/nowhere"), lambda_context())
    crashed = app.resolve(proxy_event("GET", "/v1/crash"), lambda_context())

    assert (unknown["statusCode"], crashed["statusCode"]) == (404, 500)
    assert (
        json.loads(unknown["body"])["error"]["code"] == EXPECTED["MISSING_AUTHENTICATION_TOKEN"][1]
    )
    assert json.loads(crashed["body"])["error"]["code"] == EXPECTED["DEFAULT_5XX"][1]
