"""The local API's gateway: route matching, keys, proxy events and responses; and its
HTTP handler, fed raw bytes (no sockets): every method, and whatever a client sends."""

from __future__ import annotations

import http.client
import io
import json
from dataclasses import dataclass
from typing import Any

import pytest

from infra.local.api import (
    MAX_BODY_BYTES,
    Gateway,
    InvocationResult,
    RouteLike,
    RouteTable,
    handler_for,
)
from infra.local.deploy import GatewayResponseRecord

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


# -- methods no route declares ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("TRACE", "/v1/health"),
        ("PATCH", "/v1/health"),
        ("HEAD", "/v1/health"),
        ("CONNECT", "example.com:443"),
        ("PROPFIND", "/v1/campaigns/c1"),
        ("BREW", "/v1/health"),
    ],
)
def test_a_method_no_route_declares_is_missing_authentication_token(method: str, path: str) -> None:
    recorder = Recorder()
    status, headers, body = gateway(recorder).handle(method, path, {"x-api-key": KEY}, b"")
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})
    assert headers["Content-Type"] == "application/json"
    assert recorder.calls == []


def test_any_stands_for_the_seven_methods_api_gateway_routes_only() -> None:
    table = RouteTable([Route("ANY", "/v1/carts/{cartId}", "carts")])
    for method in ("GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "DELETE"):
        assert table.match(method, "/v1/carts/c1") is not None, method
    for method in ("TRACE", "CONNECT", "BREW"):
        assert table.match(method, "/v1/carts/c1") is None, method


def test_a_target_that_is_no_url_is_a_bad_request() -> None:
    status, _, body = gateway(Recorder()).handle("GET", "http://[::1/v1/health", {}, b"")
    assert (status, json.loads(body)) == (400, {"message": "Bad Request"})


# -- the HTTP handler ------------------------------------------------------------------


class _Unclosable(io.BytesIO):
    """The answers, read one after another: http.client closes its stream after each
    answer that ends the connection or has no body."""

    def close(self) -> None:
        return


class _Replay:
    def __init__(self, data: bytes) -> None:
        self.stream = _Unclosable(data)

    def makefile(self, mode: str) -> io.BytesIO:
        return self.stream


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _BrokenPipe(io.BytesIO):
    def write(self, data: Any) -> int:
        raise BrokenPipeError("the client went away")


def serve(raw: bytes, gateway: Gateway, *, wfile: io.BytesIO | None = None) -> bytes:
    """What the local API's handler writes back for `raw`, sent on one connection."""
    handler_class = handler_for(gateway)
    handler = handler_class.__new__(handler_class)  # no socket: the streams are set here
    handler.rfile = io.BytesIO(raw)
    handler.wfile = wfile if wfile is not None else io.BytesIO()
    handler.client_address = ("127.0.0.1", 0)
    handler.handle()
    return handler.wfile.getvalue()


def answers(written: bytes, *methods: str) -> list[Answer]:
    """The answers in `written`, one per request method; nothing may follow them."""
    replay = _Replay(written)
    parsed = []
    for method in methods:
        response = http.client.HTTPResponse(replay, method=method)  # type: ignore[arg-type]
        response.begin()
        parsed.append(Answer(response.status, dict(response.getheaders()), response.read()))
    assert replay.stream.read() == b""
    return parsed


def request(method: str, target: str, *headers: str, body: bytes = b"") -> bytes:
    head = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


HEALTH = request("GET", "/v1/health")
ECHO_ROUTES: list[RouteLike] = [*ROUTES, Route("POST", "/v1/echo", "echo", api_key_required=False)]


def echo_gateway(recorder: Recorder) -> Gateway:
    return Gateway(ECHO_ROUTES, recorder, api_key=KEY)


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("TRACE", "/v1/health"),
        ("PATCH", "/v1/health"),
        ("CONNECT", "example.com:443"),
        ("OPTIONS", "*"),
        ("BREW", "/v1/health"),
        ("M-SEARCH", "/v1/health"),
    ],
)
def test_every_method_is_answered_as_api_gateway_does_not_with_501(
    method: str, target: str
) -> None:
    recorder = Recorder()
    written = serve(request(method, target) + HEALTH, gateway(recorder))
    refused, health = answers(written, method, "GET")
    assert (refused.status, refused.json()) == (403, {"message": "Missing Authentication Token"})
    assert refused.headers["Content-Type"] == "application/json"
    # The connection stays usable: the next request on it is served.
    assert health.status == 200
    assert [name for name, _ in recorder.calls] == ["health"]


def test_a_head_answer_has_headers_and_no_body() -> None:
    routes: list[RouteLike] = [Route("HEAD", "/v1/health", "health", api_key_required=False)]
    written = serve(
        request("HEAD", "/v1/health") + HEALTH, Gateway(routes, Recorder(), api_key=None)
    )
    head, missing_get = answers(written, "HEAD", "GET")
    assert (head.status, head.headers["Content-Length"], head.body) == (200, "12", b"")
    assert missing_get.status == 403


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"GARBAGE\r\n", 400),
        (b"GET /v1/health HTTP/9.9\r\n", 505),
        (b"GET /v1/health HTTP/one\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\r\n", 400),  # a TLS hello sent to plain HTTP
    ],
)
def test_a_malformed_request_line_is_answered_and_ends_the_connection(
    line: bytes, status: int
) -> None:
    recorder = Recorder()
    written = serve(line + b"\r\n" + HEALTH, gateway(recorder))
    (refused,) = answers(written, "GET")
    assert (refused.status, refused.headers["Connection"]) == (status, "close")
    assert recorder.calls == []


def test_a_request_line_too_long_is_refused() -> None:
    written = serve(b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", gateway(Recorder()))
    assert answers(written, "GET")[0].status == 414


BAD_REQUEST = (400, "Bad Request")
TOO_LONG = (413, "Request Too Long")
CHUNKED = "Transfer-Encoding: chunked"


@pytest.mark.parametrize(
    ("headers", "body", "refusal"),
    [
        *[((f"Content-Length: {n}",), b"{}", BAD_REQUEST) for n in ["abc", "-1", "1_0", "+5"]],
        (("Content-Length: 0x10",), b"{}", BAD_REQUEST),
        (("Content-Length: \u00b2",), b"{}", BAD_REQUEST),  # a digit, but not a decimal one
        (("Content-Length: 2", "Content-Length: 4"), b"{}{}", BAD_REQUEST),
        ((f"Content-Length: {MAX_BODY_BYTES + 1}",), b"", TOO_LONG),  # refused unread
        (("Content-Length: 10",), b"{}", BAD_REQUEST),  # the client sent less, then closed
        ((CHUNKED,), b"zz\r\n{}\r\n0\r\n\r\n", BAD_REQUEST),
        ((CHUNKED,), b"2\r\n{}XX0\r\n\r\n", BAD_REQUEST),
        ((CHUNKED,), b"10\r\n{}", BAD_REQUEST),
        ((CHUNKED,), f"{MAX_BODY_BYTES + 1:x}\r\n".encode(), TOO_LONG),
    ],
)
def test_a_body_that_cannot_be_read_as_declared_is_refused_and_ends_the_connection(
    headers: tuple[str, ...], body: bytes, refusal: tuple[int, str]
) -> None:
    recorder = Recorder()
    raw = request("POST", "/v1/echo", *headers, body=body)
    (refused,) = answers(serve(raw, echo_gateway(recorder)), "POST")
    status, message = refusal
    assert (refused.status, refused.json()) == (status, {"message": message})
    # What is left of the body cannot be told from a next request.
    assert refused.headers["Connection"] == "close"
    assert recorder.calls == []


def test_bytes_beyond_the_declared_length_are_the_next_request() -> None:
    recorder = Recorder()
    raw = request("POST", "/v1/echo", "Content-Length: 2", body=b"{}TRAILING JUNK")
    served, junk = answers(serve(raw, echo_gateway(recorder)), "POST", "GET")
    assert served.status == 200
    assert recorder.calls[0][1]["body"] == "{}"
    assert (junk.status, junk.headers["Connection"]) == (400, "close")


def test_a_chunked_body_reaches_the_function_whole() -> None:
    recorder = Recorder()
    chunks = b'4\r\n{"a"\r\n5;ext=1\r\n: 1}\n\r\n0\r\nX-Trailer: t\r\n\r\n'
    raw = request("POST", "/v1/echo", "Transfer-Encoding: chunked", body=chunks)
    written = serve(raw + HEALTH, echo_gateway(recorder))
    assert [answer.status for answer in answers(written, "POST", "GET")] == [200, 200]
    assert recorder.calls[0][1]["body"] == '{"a": 1}\n'


def test_a_fault_of_the_local_cloud_is_an_internal_server_error() -> None:
    def broken(name: str, event: dict[str, Any]) -> InvocationResult:
        raise LookupError(f"no function {name}")

    written = serve(HEALTH + HEALTH, Gateway(ROUTES, broken, api_key=KEY))
    for answer in answers(written, "GET", "GET"):
        assert (answer.status, answer.json()) == (500, {"message": "Internal server error"})


def test_a_client_that_went_away_ends_only_its_connection() -> None:
    recorder = Recorder()
    assert serve(HEALTH + HEALTH, gateway(recorder), wfile=_BrokenPipe()) == b""
    assert len(recorder.calls) == 1


# -- gateway responses -----------------------------------------------------------------


def _error_template(code: str, message: str = "$context.error.messageString") -> str:
    quoted = message if message.startswith("$") else json.dumps(message)
    return (
        f'{{"error": {{"code": "{code}", "message": {quoted}, "details": '
        '{"requestId": "$context.requestId", "type": "$context.error.responseType", '
        '"unknown": "$context.notAVariable"}}}'
    )


DECLARED = {
    "INVALID_API_KEY": GatewayResponseRecord(
        "INVALID_API_KEY",
        "403",
        {"application/json": _error_template("invalid_api_key", "Bad key.")},
        {
            "gatewayresponse.header.Retry-After": "'1'",
            "gatewayresponse.header.X-Echo": "method.request.header.x-trace",
        },
    ),
    "REQUEST_TOO_LARGE": GatewayResponseRecord(
        "REQUEST_TOO_LARGE", "413", {"application/json": _error_template("payload_too_large")}, {}
    ),
    "DEFAULT_4XX": GatewayResponseRecord(
        "DEFAULT_4XX", None, {"application/json": _error_template("request_refused")}, {}
    ),
}


def test_a_declared_gateway_response_is_filled_in_as_api_gateway_fills_it() -> None:
    g = Gateway(ROUTES, Recorder(), api_key=KEY, responses=DECLARED)
    status, headers, body = g.handle("GET", "/v1/campaigns/c1", {"X-Trace": "t-1"}, b"")
    assert status == 403
    assert json.loads(body) == {
        "error": {
            "code": "invalid_api_key",
            "message": "Bad key.",
            "details": {
                "requestId": headers["x-amzn-RequestId"],
                "type": "INVALID_API_KEY",
                "unknown": "",
            },
        }
    }
    assert (headers["Retry-After"], headers["X-Echo"]) == ("1", "t-1")
    assert headers["Content-Type"] == "application/json"


def test_an_undeclared_type_falls_back_to_the_default_response_and_keeps_its_status() -> None:
    g = Gateway(ROUTES, Recorder(), api_key=KEY, responses=DECLARED)
    status, _, body = g.handle("GET", "/v1/nowhere", {"x-api-key": KEY}, b"")
    assert status == 403
    error = json.loads(body)["error"]
    assert (error["code"], error["message"]) == ("request_refused", "Missing Authentication Token")
    assert error["details"]["type"] == "MISSING_AUTHENTICATION_TOKEN"


def test_with_no_default_declared_api_gateway_answers_its_built_in_message() -> None:
    recorder = Recorder(InvocationResult({"errorType": "ValueError"}, True))
    g = Gateway(ROUTES, recorder, api_key=KEY, responses=DECLARED)
    status, _, body = g.handle("GET", "/v1/health", {}, b"")
    assert (status, json.loads(body)) == (502, {"message": "Internal server error"})


def test_a_body_over_the_limit_gets_the_declared_too_large_response() -> None:
    raw = request("POST", "/v1/echo", f"Content-Length: {MAX_BODY_BYTES + 1}")
    g = Gateway(ECHO_ROUTES, Recorder(), api_key=KEY, responses=DECLARED)
    (refused,) = answers(serve(raw, g), "POST")
    assert (refused.status, refused.json()["error"]["code"]) == (413, "payload_too_large")
    assert refused.json()["error"]["message"] == "Request Too Long"
    assert refused.headers["Connection"] == "close"


def test_a_body_over_the_limit_is_read_before_the_413_so_the_client_sees_it() -> None:
    # A client still writing a body the server stopped reading gets a broken pipe, not
    # the answer: the rest of the body is read and dropped first.
    body = b"x" * (MAX_BODY_BYTES + 1)
    raw = request("POST", "/v1/echo", f"Content-Length: {len(body)}", body=body)
    handler_class = handler_for(Gateway(ECHO_ROUTES, Recorder(), api_key=KEY, responses=DECLARED))
    handler = handler_class.__new__(handler_class)
    handler.rfile = io.BytesIO(raw)
    handler.wfile = io.BytesIO()
    handler.client_address = ("127.0.0.1", 0)
    handler.handle()
    assert handler.rfile.tell() == len(raw)
    (refused,) = answers(handler.wfile.getvalue(), "POST")
    assert refused.status == 413
