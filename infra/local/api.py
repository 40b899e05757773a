"""The local API: every API Gateway route of the template, served on 127.0.0.1:3000.

Each request becomes the REST proxy event API Gateway would send (resource, path and
query parameters, headers, body, request context) and goes to the route's function
through the Lambda runtime, so handlers cannot tell the difference. What API Gateway
itself answers is answered here the same way: a missing or wrong `x-api-key` is 403
`Forbidden`, an unknown route is 403 `Missing Authentication Token`, and a function
that fails is 502 `Internal server error`. A method no route declares (TRACE, CONNECT,
PATCH on a GET-only path, any other verb) is 403 `Missing Authentication Token` too, and a
body over API Gateway's 10 MB limit is 413.

IAM-authorised routes need a SigV4 `Authorization` header; the signature is not
checked locally (there is no IAM to check it against), only that one is present.

Paths under `/_local/` are the local cloud's control plane (clock, scheduled rules,
waiting for queues to drain); they exist only here, never in AWS.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
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


def _gateway_error(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"message": message}).encode()
    return status, {"Content-Type": "application/json", "x-amzn-ErrorType": message}, body


class Gateway:
    """What API Gateway does with a request, without the HTTP server around it."""

    def __init__(
        self,
        routes: list[RouteLike],
        invoke: Invoker,
        *,
        api_key: str | None,
        control: ControlHandler | None = None,
    ) -> None:
        self.table = RouteTable(routes)
        self._invoke = invoke
        self._api_key = api_key
        self._control = control

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            url = urlsplit(target)
        except ValueError:  # e.g. an unclosed IPv6 bracket in an absolute-form target
            return _gateway_error(HTTPStatus.BAD_REQUEST, "Bad Request")
        path = url.path
        if path.startswith(CONTROL_PREFIX) and self._control is not None:
            return self._handle_control(method, path.removeprefix(CONTROL_PREFIX), body)
        found = self.table.match(method, path)
        if found is None:
            return _gateway_error(HTTPStatus.FORBIDDEN, "Missing Authentication Token")
        route, path_parameters = found
        lowered = {k.lower(): v for k, v in headers.items()}
        presented_key = lowered.get("x-api-key")
        refusal = self._refusal(route, lowered)
        if refusal is not None:
            return refusal
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
        )
        result = self._invoke(route.function_name, event)
        if result.is_error or not isinstance(result.payload, dict):
            return _gateway_error(HTTPStatus.BAD_GATEWAY, "Internal server error")
        return _proxy_response(result.payload)

    def _refusal(
        self, route: CompiledRoute, lowered_headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes] | None:
        """What API Gateway answers a request the route's authorization refuses."""
        signed = lowered_headers.get("authorization", "").startswith("AWS4-HMAC-SHA256")
        if route.iam and not signed:
            return _gateway_error(HTTPStatus.FORBIDDEN, "Missing Authentication Token")
        presented_key = lowered_headers.get("x-api-key")
        if route.api_key_required and (self._api_key is None or presented_key != self._api_key):
            return _gateway_error(HTTPStatus.FORBIDDEN, "Forbidden")
        return None

    def _handle_control(
        self, method: str, path: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
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

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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
        except _Refused as refusal:
            self._answer(*_gateway_error(refusal.status, refusal.message), closing=True)
            return
        try:
            answer = self.gateway.handle(self.command, self.path, dict(self.headers.items()), body)
        except Exception:
            # A fault of the local cloud itself (a function it cannot find, a bug here):
            # API Gateway answers a failed integration with a 500.
            log.exception("the local API failed on %s %s", self.command, self.path)
            answer = _gateway_error(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error")
        self._answer(*answer)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunks()
        declared = {value.strip() for value in self.headers.get_all("Content-Length", [])}
        if not declared:
            return b""
        if len(declared) > 1 or not _DECIMAL.fullmatch(next(iter(declared))):
            raise _Refused(HTTPStatus.BAD_REQUEST, "Bad Request")
        length = int(next(iter(declared)))
        if length > MAX_BODY_BYTES:
            raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Too Long")
        body = self.rfile.read(length)
        if len(body) < length:  # the client closed before sending all it declared
            raise _Refused(HTTPStatus.BAD_REQUEST, "Bad Request")
        return body

    def _read_chunks(self) -> bytes:
        body = bytearray()
        while True:
            size_text = self.rfile.readline(1024).split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise _Refused(HTTPStatus.BAD_REQUEST, "Bad Request")
            size = int(size_text, 16)
            if size == 0:
                break
            if len(body) + size > MAX_BODY_BYTES:
                raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Too Long")
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(3).strip():
                raise _Refused(HTTPStatus.BAD_REQUEST, "Bad Request")
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


def _proxy_response(payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """A Lambda proxy integration result, as API Gateway turns it into HTTP."""
    status = int(payload.get("statusCode", 200))
    headers = {k: str(v) for k, v in (payload.get("headers") or {}).items()}
    for name, values in (payload.get("multiValueHeaders") or {}).items():
        if values:
            headers[name] = ", ".join(str(v) for v in values)
    raw = payload.get("body") or ""
    body = base64.b64decode(raw) if payload.get("isBase64Encoded") else str(raw).encode()
    return status, headers, body
