"""The local API: every API Gateway route of the template, served on 127.0.0.1:3000.

Each request becomes the REST proxy event API Gateway would send (resource, path and
query parameters, headers, body, request context) and goes to the route's function
through the Lambda runtime, so handlers cannot tell the difference. What API Gateway
itself answers is answered here the same way, with the same gateway response type and
status: a missing or wrong `x-api-key` is INVALID_API_KEY (403), an unknown route is
MISSING_AUTHENTICATION_TOKEN (403), a body over API Gateway's 10 MB limit is
REQUEST_TOO_LARGE (413), and a function that fails is DEFAULT_5XX (502). A method no
route declares (TRACE, CONNECT, PATCH on a GET-only path, any other verb) is
MISSING_AUTHENTICATION_TOKEN too.

The body of such an answer is the template's `AWS::ApiGateway::GatewayResponse` for the
type (else its DEFAULT_4XX / DEFAULT_5XX), filled in as API Gateway fills it: `$context`
variables substituted, nothing else. A type the template does not declare gets API
Gateway's built-in `{"message": ...}`.

IAM-authorised routes need a SigV4 `Authorization` header; the signature is not
checked locally (there is no IAM to check it against), only that one is present.
Usage-plan throttling is not enforced locally.

Paths under `/_local/` are the local cloud's control plane (clock, scheduled rules,
waiting for queues to drain); they exist only here, never in AWS.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Final, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from infra.local.proxy_event import proxy_event
from infra.local.server import LISTEN_BACKLOG, PortInUse

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_local/"
_PARAMETER = re.compile(r"\{([A-Za-z0-9_]+)(\+?)\}")
# The methods a REST API resource can declare, and those `ANY` stands for: any other verb
# matches no route.
ROUTABLE_METHODS: Final = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"})
# API Gateway's REST API payload limit; a larger request never reaches the function.
MAX_BODY_BYTES: Final = 10 * 1024 * 1024
# How much of a body over the limit is read (and dropped) so the client sees the 413.
MAX_DISCARD_BYTES: Final = 64 * 1024 * 1024
_DISCARD_CHUNK: Final = 64 * 1024


class RouteLike(Protocol):
    # Read-only members, so frozen dataclasses (the deployer's records) satisfy it.
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def function_name(self) -> str: ...
    @property
    def api_key_required(self) -> bool: ...
    @property
    def authorization_type(self) -> str: ...


class GatewayResponseLike(Protocol):
    @property
    def response_type(self) -> str: ...
    @property
    def status_code(self) -> str | None: ...
    @property
    def templates(self) -> Mapping[str, str]: ...
    @property
    def parameters(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class InvocationResult:
    payload: Any
    is_error: bool


# (function name, event) -> what the function returned, or that it failed.
Invoker = Callable[[str, dict[str, Any]], InvocationResult]
# (method, path after /_local/, JSON body) -> (status, JSON body).
ControlHandler = Callable[[str, str, Any], tuple[int, Any]]


@dataclass(frozen=True)
class CompiledRoute:
    method: str
    resource: str
    pattern: re.Pattern[str]
    function_name: str
    api_key_required: bool
    iam: bool
    # API Gateway prefers the most specific resource: fewer parameters, no greedy one.
    specificity: tuple[int, int]

    @classmethod
    def of(cls, route: RouteLike) -> CompiledRoute:
        regex, parameters, greedy = "", 0, 0
        position = 0
        for match in _PARAMETER.finditer(route.path):
            regex += re.escape(route.path[position : match.start()])
            name, plus = match.group(1), match.group(2)
            regex += f"(?P<{name}>.+)" if plus else f"(?P<{name}>[^/]+)"
            parameters += 1
            greedy += 1 if plus else 0
            position = match.end()
        regex += re.escape(route.path[position:])
        return cls(
            method=route.method.upper(),
            resource=route.path,
            pattern=re.compile(f"^{regex}$"),
            function_name=route.function_name,
            api_key_required=route.api_key_required,
            iam=route.authorization_type == "AWS_IAM",
            specificity=(greedy, parameters),
        )

    def accepts(self, method: str) -> bool:
        return self.method == method or (self.method == "ANY" and method in ROUTABLE_METHODS)


class RouteTable:
    def __init__(self, routes: list[RouteLike]) -> None:
        self._routes = sorted((CompiledRoute.of(r) for r in routes), key=lambda r: r.specificity)

    def match(self, method: str, path: str) -> tuple[CompiledRoute, dict[str, str]] | None:
        method = method.upper()
        for route in self._routes:
            if not route.accepts(method):
                continue
            found = route.pattern.match(path)
            if found:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
        return None

    def __len__(self) -> int:
        return len(self._routes)


# The gateway response types the local API answers with.
INVALID_API_KEY: Final = "INVALID_API_KEY"
MISSING_AUTHENTICATION_TOKEN: Final = "MISSING_AUTHENTICATION_TOKEN"  # noqa: S105 - a type name
REQUEST_TOO_LARGE: Final = "REQUEST_TOO_LARGE"
DEFAULT_4XX: Final = "DEFAULT_4XX"
DEFAULT_5XX: Final = "DEFAULT_5XX"

_STAGE: Final = "prod"  # the stage the proxy events name too
_CONTEXT_VARIABLE = re.compile(r"\$context\.[A-Za-z][A-Za-z0-9.]*")
_HEADER_PARAMETER: Final = "gatewayresponse.header."
_REQUEST_HEADER: Final = "method.request.header."

Answer = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class GatewayRefusal:
    """One answer of API Gateway itself: its response type, status and built-in message."""

    response_type: str
    status: int
    message: str


class GatewayResponses:
    """What API Gateway answers itself, from the template's gateway responses."""

    def __init__(self, declared: Mapping[str, GatewayResponseLike] | None = None) -> None:
        self._declared = dict(declared or {})

    def answer(
        self,
        refusal: GatewayRefusal,
        *,
        request_id: str | None = None,
        method: str = "",
        path: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        request_id = request_id or str(uuid.uuid4())
        response = self._declared.get(refusal.response_type) or self._declared.get(
            DEFAULT_5XX if refusal.status >= 500 else DEFAULT_4XX
        )
        answer_headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": refusal.message}
        if response is None:  # API Gateway's built-in answer
            body = json.dumps({"message": refusal.message}).encode()
            return refusal.status, {"Content-Type": "application/json", **answer_headers}, body
        status = int(response.status_code) if response.status_code else refusal.status
        context = {
            "$context.requestId": request_id,
            "$context.extendedRequestId": request_id,
            "$context.error.message": refusal.message,
            "$context.error.messageString": json.dumps(refusal.message),
            "$context.error.responseType": refusal.response_type,
            "$context.httpMethod": method,
            "$context.path": f"/{_STAGE}{path}" if path else "",
            "$context.stage": _STAGE,
            "$context.requestTimeEpoch": str(int(time.time() * 1000)),
        }
        content_type, template = _template_for(response.templates)
        # API Gateway substitutes variables in gateway response templates but runs no VTL;
        # a variable it does not know becomes empty.
        filled = _CONTEXT_VARIABLE.sub(lambda match: context.get(match.group(0), ""), template)
        answer_headers["Content-Type"] = content_type
        answer_headers.update(_response_headers(response.parameters, headers or {}))
        return status, answer_headers, filled.encode()


def _template_for(templates: Mapping[str, str]) -> tuple[str, str]:
    if "application/json" in templates:
        return "application/json", templates["application/json"]
    for content_type, template in templates.items():
        return content_type, template
    return "application/json", ""


def _response_headers(
    parameters: Mapping[str, str], request_headers: Mapping[str, str]
) -> dict[str, str]:
    """The headers a gateway response maps: static 'values' and request headers."""
    lowered = {name.lower(): value for name, value in request_headers.items()}
    headers = {}
    for target, source in parameters.items():
        if not target.startswith(_HEADER_PARAMETER):
            continue
        name = target.removeprefix(_HEADER_PARAMETER)
        if len(source) >= 2 and source.startswith("'") and source.endswith("'"):
            headers[name] = source[1:-1]
        elif source.startswith(_REQUEST_HEADER):
            value = lowered.get(source.removeprefix(_REQUEST_HEADER).lower())
            if value is not None:
                headers[name] = value
    return headers


BAD_REQUEST: Final = GatewayRefusal(DEFAULT_4XX, HTTPStatus.BAD_REQUEST, "Bad Request")
FORBIDDEN: Final = GatewayRefusal(INVALID_API_KEY, HTTPStatus.FORBIDDEN, "Forbidden")
NO_ROUTE: Final = GatewayRefusal(
    MISSING_AUTHENTICATION_TOKEN, HTTPStatus.FORBIDDEN, "Missing Authentication Token"
)
TOO_LARGE: Final = GatewayRefusal(
    REQUEST_TOO_LARGE, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Too Long"
)
FUNCTION_FAILED: Final = GatewayRefusal(
    DEFAULT_5XX, HTTPStatus.BAD_GATEWAY, "Internal server error"
)
LOCAL_FAULT: Final = GatewayRefusal(
    DEFAULT_5XX, HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error"
)


class Gateway:
    """What API Gateway does with a request, without the HTTP server around it."""

    def __init__(
        self,
        routes: list[RouteLike],
        invoke: Invoker,
        *,
        api_key: str | None,
        control: ControlHandler | None = None,
        responses: Mapping[str, GatewayResponseLike] | None = None,
    ) -> None:
        self.table = RouteTable(routes)
        self._invoke = invoke
        self._api_key = api_key
        self._control = control
        self.responses = GatewayResponses(responses)

    def refuse(
        self,
        refusal: GatewayRefusal,
        *,
        method: str = "",
        path: str = "",
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> Answer:
        """What API Gateway answers itself for `refusal` (its gateway response)."""
        return self.responses.answer(
            refusal, request_id=request_id, method=method, path=path, headers=headers
        )

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        request_id = str(uuid.uuid4())
        try:
            url = urlsplit(target)
        except ValueError:  # e.g. an unclosed IPv6 bracket in an absolute-form target
            return self.refuse(BAD_REQUEST, method=method, headers=headers, request_id=request_id)
        path = url.path
        if path.startswith(CONTROL_PREFIX) and self._control is not None:
            return self._handle_control(method, path.removeprefix(CONTROL_PREFIX), body)
        found = self.table.match(method, path)

        def refuse(refusal: GatewayRefusal) -> Answer:
            return self.refuse(
                refusal, method=method.upper(), path=path, headers=headers, request_id=request_id
            )

        if found is None:
            return refuse(NO_ROUTE)
        route, path_parameters = found
        lowered = {k.lower(): v for k, v in headers.items()}
        presented_key = lowered.get("x-api-key")
        refusal = self._refusal(route, lowered)
        if refusal is not None:
            return refuse(refusal)
        query = dict(parse_qs(url.query, keep_blank_values=True))
        event = proxy_event(
            method,
            path,
            resource=route.resource,
            path_parameters=path_parameters or None,
            query=query or None,
            headers=dict(headers),
            body=body or None,
            api_key=presented_key if route.api_key_required else None,
            request_id=request_id,
        )
        result = self._invoke(route.function_name, event)
        if result.is_error or not isinstance(result.payload, dict):
            # The function's logs carry this request id as their correlation id.
            return refuse(FUNCTION_FAILED)
        return _proxy_response(result.payload)

    def _refusal(
        self, route: CompiledRoute, lowered_headers: Mapping[str, str]
    ) -> GatewayRefusal | None:
        """What API Gateway answers a request the route's authorization refuses."""
        signed = lowered_headers.get("authorization", "").startswith("AWS4-HMAC-SHA256")
        if route.iam and not signed:
            return NO_ROUTE
        presented_key = lowered_headers.get("x-api-key")
        if route.api_key_required and (self._api_key is None or presented_key != self._api_key):
            return FORBIDDEN
        return None

    def _handle_control(self, method: str, path: str, body: bytes) -> Answer:
        assert self._control is not None
        try:
            document = json.loads(body) if body else None
        except json.JSONDecodeError:
            return 400, {"Content-Type": "application/json"}, b'{"message": "invalid JSON"}'
        status, answer = self._control(method.upper(), path, document)
        return status, {"Content-Type": "application/json"}, json.dumps(answer).encode()


class _ApiServer(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: fifty storefront clients connecting at
    # once overflow it, and the connections the kernel cannot queue are reset or dropped
    # before a thread accepts them.
    request_queue_size = LISTEN_BACKLOG
    # A thread per connection, never joined: a client holding a keep-alive connection
    # open must not hold up stop().
    daemon_threads = True


class LocalApi:
    """A threaded HTTP server in front of a `Gateway`."""

    def __init__(self, gateway: Gateway, *, host: str = "127.0.0.1", port: int = 3000) -> None:
        self.gateway = gateway
        try:
            self._server = _ApiServer((host, port), handler_for(gateway))
        except OSError as error:
            raise PortInUse(f"{host}:{port} is already in use: {error.strerror}") from error
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-api", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Refused(Exception):
    """A request body that cannot be read as declared: answered, then the connection closed
    (what is left of the body cannot be told from the next request)."""

    def __init__(self, refusal: GatewayRefusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


_DECIMAL = re.compile(r"[0-9]{1,20}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


class GatewayHandler(BaseHTTPRequestHandler):
    """HTTP in front of a `Gateway`: every method, and whatever a client sends, answered."""

    gateway: ClassVar[Gateway]
    protocol_version = "HTTP/1.1"
    # What a request line that cannot be parsed is answered as: the stdlib's default,
    # HTTP/0.9, answers with a bare error page, no status line or headers.
    default_request_version = "HTTP/1.0"
    # A client that stops sending mid-request (a body shorter than its Content-Length) or
    # leaves its keep-alive connection idle frees the thread after this long.
    timeout = 60

    def __getattr__(self, name: str) -> Any:
        # The stdlib answers a method with no do_<METHOD> with its own 501 page; API
        # Gateway takes every method, refusing those no route declares with a 403.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def handle(self) -> None:
        try:
            super().handle()
        except ConnectionError:
            # The client went away mid-request or mid-answer: nobody is left to answer.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        # Access logs would drown the handlers' own structured logs.
        return

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _Refused as refused:
            answer = self.gateway.refuse(
                refused.refusal, method=self.command, headers=dict(self.headers.items())
            )
            self._answer(*answer, closing=True)
            return
        try:
            answer = self.gateway.handle(self.command, self.path, dict(self.headers.items()), body)
        except Exception:
            # A fault of the local cloud itself (a function it cannot find, a bug here):
            # API Gateway answers a failed integration with a 500.
            log.exception("the local API failed on %s %s", self.command, self.path)
            answer = self.gateway.refuse(LOCAL_FAULT, method=self.command)
        self._answer(*answer)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunks()
        declared = {value.strip() for value in self.headers.get_all("Content-Length", [])}
        if not declared:
            return b""
        if len(declared) > 1 or not _DECIMAL.fullmatch(next(iter(declared))):
            raise _Refused(BAD_REQUEST)
        length = int(next(iter(declared)))
        if length > MAX_BODY_BYTES:
            self._discard(length)
            raise _Refused(TOO_LARGE)
        body = self.rfile.read(length)
        if len(body) < length:  # the client closed before sending all it declared
            raise _Refused(BAD_REQUEST)
        return body

    def _discard(self, length: int) -> None:
        """Read and drop what the client is still sending of a body refused for its size.

        The answer goes out only after it: a client still writing a body the server has
        stopped reading gets a broken pipe instead of the 413. Past `MAX_DISCARD_BYTES`
        the connection is closed with the answer instead.
        """
        remaining = min(length, MAX_DISCARD_BYTES)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, _DISCARD_CHUNK))
            if not chunk:
                break
            remaining -= len(chunk)

    def _read_chunks(self) -> bytes:
        body = bytearray()
        while True:
            size_text = self.rfile.readline(1024).split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise _Refused(BAD_REQUEST)
            size = int(size_text, 16)
            if size == 0:
                break
            if len(body) + size > MAX_BODY_BYTES:
                self._discard(size)
                raise _Refused(TOO_LARGE)
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(3).strip():
                raise _Refused(BAD_REQUEST)
            body += chunk
        # Trailer fields are not passed on (API Gateway's proxy event has no place for
        # them); they end at an empty line.
        while self.rfile.readline(65537).strip():
            pass
        return bytes(body)

    def _answer(
        self, status: int, headers: dict[str, str], payload: bytes, *, closing: bool = False
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        if closing:
            self.send_header("Connection", "close")  # also closes it after this answer
        self.end_headers()
        if self.command != "HEAD":  # a HEAD answer has the headers of a GET, no body
            self.wfile.write(payload)


def handler_for(gateway: Gateway) -> type[GatewayHandler]:
    """The HTTP handler class serving `gateway`."""

    class Handler(GatewayHandler):
        pass

    Handler.gateway = gateway
    return Handler


def _proxy_response(payload: dict[str, Any]) -> Answer:
    """A Lambda proxy integration result, as API Gateway turns it into HTTP."""
    status = int(payload.get("statusCode", 200))
    headers = {k: str(v) for k, v in (payload.get("headers") or {}).items()}
    for name, values in (payload.get("multiValueHeaders") or {}).items():
        if values:
            headers[name] = ", ".join(str(v) for v in values)
    raw = payload.get("body") or ""
    body = base64.b64decode(raw) if payload.get("isBase64Encoded") else str(raw).encode()
    return status, headers, body
