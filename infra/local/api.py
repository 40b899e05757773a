"""The local API: every API Gateway route of the template, served on 127.0.0.1:3000.

Each request becomes the REST proxy event API Gateway would send (resource, path and
query parameters, headers, body, request context) and goes to the route's function
through the Lambda runtime, so handlers cannot tell the difference. What API Gateway
itself answers is answered here the same way: a missing or wrong `x-api-key` is 403
`Forbidden`, an unknown route is 403 `Missing Authentication Token`, and a function
that fails is 502 `Internal server error`.

IAM-authorised routes need a SigV4 `Authorization` header; the signature is not
checked locally (there is no IAM to check it against), only that one is present.

Paths under `/_local/` are the local cloud's control plane (clock, scheduled rules,
waiting for queues to drain); they exist only here, never in AWS.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from infra.local.proxy_event import proxy_event
from infra.local.server import PortInUse

CONTROL_PREFIX = "/_local/"
_PARAMETER = re.compile(r"\{([A-Za-z0-9_]+)(\+?)\}")


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


class RouteTable:
    def __init__(self, routes: list[RouteLike]) -> None:
        self._routes = sorted((CompiledRoute.of(r) for r in routes), key=lambda r: r.specificity)

    def match(self, method: str, path: str) -> tuple[CompiledRoute, dict[str, str]] | None:
        for route in self._routes:
            if route.method not in {method.upper(), "ANY"}:
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
        url = urlsplit(target)
        path = url.path
        if path.startswith(CONTROL_PREFIX) and self._control is not None:
            return self._handle_control(method, path.removeprefix(CONTROL_PREFIX), body)
        found = self.table.match(method, path)
        if found is None:
            return _gateway_error(HTTPStatus.FORBIDDEN, "Missing Authentication Token")
        route, path_parameters = found
        lowered = {k.lower(): v for k, v in headers.items()}
        presented_key = lowered.get("x-api-key")
        if route.iam and not lowered.get("authorization", "").startswith("AWS4-HMAC-SHA256"):
            return _gateway_error(HTTPStatus.FORBIDDEN, "Missing Authentication Token")
        if route.api_key_required and (self._api_key is None or presented_key != self._api_key):
            return _gateway_error(HTTPStatus.FORBIDDEN, "Forbidden")
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


class LocalApi:
    """A threaded HTTP server in front of a `Gateway`."""

    def __init__(self, gateway: Gateway, *, host: str = "127.0.0.1", port: int = 3000) -> None:
        self.gateway = gateway
        try:
            self._server = ThreadingHTTPServer((host, port), self._handler_class())
        except OSError as error:
            raise PortInUse(f"{host}:{port} is already in use: {error.strerror}") from error
        self._server.daemon_threads = True
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

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self.gateway

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = gateway.handle(
                    self.command, self.path, dict(self.headers.items()), body
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

            def log_message(self, format: str, *args: Any) -> None:
                # Access logs would drown the handlers' own structured logs.
                return

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
