"""The local API's gateway: route matching, keys, proxy events and responses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from infra.local.api import Gateway, InvocationResult, RouteLike, RouteTable

KEY = "local-key"


@dataclass
class Route:
    method: str
    path: str
    function_name: str
    api_key_required: bool = True
    authorization_type: str = "NONE"


ROUTES: list[RouteLike] = [
    Route("GET", "/v1/health", "health", api_key_required=False),
    Route("GET", "/v1/campaigns/{campaignId}", "campaigns"),
    Route("GET", "/v1/campaigns/{campaignId}/stats", "stats"),
    Route("POST", "/v1/claims/{claimId}/review", "review", False, "AWS_IAM"),
    Route("GET", "/v1/files/{proxy+}", "files"),
    Route("GET", "/v1/campaigns/featured", "featured"),
]


class Recorder:
    def __init__(self, answer: InvocationResult | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answer = answer or InvocationResult(
            {"statusCode": 200, "headers": {"X-Seen": "yes"}, "body": '{"ok": true}'}, False
        )

    def __call__(self, name: str, event: dict[str, Any]) -> InvocationResult:
        self.calls.append((name, event))
        return self.answer


def gateway(recorder: Recorder) -> Gateway:
    return Gateway(ROUTES, recorder, api_key=KEY)


@pytest.mark.parametrize(
    ("method", "path", "function", "parameters"),
    [
        ("GET", "/v1/campaigns/spring-trail", "campaigns", {"campaignId": "spring-trail"}),
        ("GET", "/v1/campaigns/featured", "featured", {}),
        ("GET", "/v1/campaigns/a%20b/stats", "stats", {"campaignId": "a b"}),
        ("GET", "/v1/files/a/b/c.txt", "files", {"proxy": "a/b/c.txt"}),
    ],
)
def test_routes_match_like_api_gateway(
    method: str, path: str, function: str, parameters: dict[str, str]
) -> None:
    found = RouteTable(ROUTES).match(method, path)
    assert found is not None
    route, matched = found
    assert (route.function_name, matched) == (function, parameters)


def test_a_keyed_route_gets_the_proxy_event_and_its_response_is_returned() -> None:
    recorder = Recorder()
    status, headers, body = gateway(recorder).handle(
        "GET", "/v1/campaigns/c1?status=active&tag=a&tag=b", {"x-api-key": KEY}, b""
    )
    assert (status, headers["X-Seen"], json.loads(body)) == (200, "yes", {"ok": True})
    ((name, event),) = recorder.calls
    assert name == "campaigns"
    assert event["resource"] == "/v1/campaigns/{campaignId}"
    assert event["pathParameters"] == {"campaignId": "c1"}
    assert event["queryStringParameters"] == {"status": "active", "tag": "b"}
    assert event["multiValueQueryStringParameters"]["tag"] == ["a", "b"]
    assert event["requestContext"]["identity"]["apiKey"] == KEY
    assert event["requestContext"]["stage"] == "prod"


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}])
def test_a_missing_or_wrong_key_is_forbidden(headers: dict[str, str]) -> None:
    recorder = Recorder()
    status, _, body = gateway(recorder).handle("GET", "/v1/campaigns/c1", headers, b"")
    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})
    assert recorder.calls == []


def test_the_key_header_is_case_insensitive() -> None:
    status, _, _ = gateway(Recorder()).handle("GET", "/v1/campaigns/c1", {"X-Api-Key": KEY}, b"")
    assert status == 200


def test_health_needs_no_key() -> None:
    assert gateway(Recorder()).handle("GET", "/v1/health", {}, b"")[0] == 200


def test_unknown_route_or_method_is_missing_authentication_token() -> None:
    g = gateway(Recorder())
    for method, path in [("GET", "/v1/nowhere"), ("DELETE", "/v1/health")]:
        status, _, body = g.handle(method, path, {"x-api-key": KEY}, b"")
        assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})


def test_an_iam_route_needs_a_sigv4_header() -> None:
    g = gateway(Recorder())
    assert g.handle("POST", "/v1/claims/c1/review", {}, b"{}")[0] == 403
    signed = {"Authorization": "AWS4-HMAC-SHA256 Credential=..."}
    assert g.handle("POST", "/v1/claims/c1/review", signed, b"{}")[0] == 200


def test_a_failing_function_is_a_bad_gateway() -> None:
    recorder = Recorder(InvocationResult({"errorType": "ValueError"}, True))
    status, _, body = gateway(recorder).handle("GET", "/v1/health", {}, b"")
    assert (status, json.loads(body)) == (502, {"message": "Internal server error"})


def test_base64_bodies_are_decoded() -> None:
    answer = InvocationResult({"statusCode": 200, "body": "AAEC", "isBase64Encoded": True}, False)
    assert gateway(Recorder(answer)).handle("GET", "/v1/health", {}, b"")[2] == b"\x00\x01\x02"


def test_control_routes_go_to_the_control_plane() -> None:
    seen: list[tuple[str, str, Any]] = []

    def control(method: str, path: str, body: Any) -> tuple[int, Any]:
        seen.append((method, path, body))
        return 200, {"offsetSeconds": 60}

    g = Gateway(ROUTES, Recorder(), api_key=KEY, control=control)
    status, _, body = g.handle("POST", "/_local/clock", {}, b'{"advanceSeconds": 60}')
    assert (status, json.loads(body)) == (200, {"offsetSeconds": 60})
    assert seen == [("POST", "clock", {"advanceSeconds": 60})]
