"""The REST resolver every API function uses, and the error shape it answers with.

Each domain declares its routes on a `Router`; its handler module builds a resolver
with `make_resolver(router)`. All of them answer errors the same way:
`{"error": {"code", "message", "details"}}` with the status the error class carries,
and a request that fails validation is a 400, never a 5xx.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.core.errors import RebatesError
from functions.core.observability import logger
from functions.core.validation import describe_errors

JSON = "application/json"

# Routes served without an API key (method, path); the stack and the OpenAPI document
# both read this, so the two cannot disagree about what is public.
PUBLIC_ROUTES: frozenset[tuple[str, str]] = frozenset({("GET", "/v1/health")})


def error_response(status: int, code: str, message: str, details: Any = None) -> Response[Any]:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return Response(status_code=status, content_type=JSON, body=body)


def _rebates_error(error: RebatesError) -> Response[Any]:
    return error_response(error.status, error.code, error.message, error.details)


def _invalid_request(error: RequestValidationError) -> Response[Any]:
    problems = describe_errors(error.errors())
    return error_response(
        HTTPStatus.BAD_REQUEST,
        "invalid_request",
        "The request is malformed: " + "; ".join(f"{p['path']}: {p['message']}" for p in problems),
        {"errors": problems},
    )


def _route_not_found(_: Exception) -> Response[Any]:
    return error_response(HTTPStatus.NOT_FOUND, "route_not_found", "No such route.")


def _unexpected(error: Exception) -> Response[Any]:
    # The caller learns nothing about internals; the log keeps the stack for operators.
    logger.exception("Unhandled error", extra={"error_type": type(error).__name__})
    return error_response(
        HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "Something went wrong on our side."
    )


class _Requests(threading.local):
    event: BaseProxyEvent | None = None
    context: LambdaContext | None = None


class _RestResolver(APIGatewayRestResolver):
    """Powertools' REST resolver with the request it answers kept per thread.

    Powertools stores the current event and Lambda context as class attributes of
    ``BaseRouter`` (``BaseRouter.current_event = ...`` in ``resolve``), and each
    resolver keeps the matched route's arguments in its ``context``. That is right for
    Lambda, one invocation at a time per container. The local cloud runs concurrent
    invocations of one function as threads of one process, where every request would
    read the latest one's event (its body, its Idempotency-Key). Here the event and
    context live in thread-local storage, and `ResolverPerThread` gives each thread its
    own resolver (its own ``context``). In Lambda both are one thread's, as before.
    """

    _requests = _Requests()

    @property  # type: ignore[override]
    def current_event(self) -> BaseProxyEvent:
        event = self._requests.event
        if event is None:
            raise AttributeError("no request is being resolved on this thread")
        return event

    @current_event.setter
    def current_event(self, value: BaseProxyEvent) -> None:
        self._requests.event = value

    @property
    def lambda_context(self) -> LambdaContext:
        context = self._requests.context
        if context is None:
            raise AttributeError("no request is being resolved on this thread")
        return context

    @lambda_context.setter
    def lambda_context(self, value: LambdaContext) -> None:
        self._requests.context = value

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        # Restored afterwards: a route may itself resolve another request (a test does).
        outer = (self._requests.event, self._requests.context)
        self._requests.event = self._to_proxy_event(dict(event))
        self._requests.context = context
        try:
            return super().resolve(event, context)
        finally:
            self._requests.event, self._requests.context = outer


class ResolverPerThread:
    """`make_resolver(*routers)`, one per thread: what a handler calls ``resolve`` on.

    See `_RestResolver`: in Lambda this is one resolver, built on the first request; in
    the local cloud each thread answering requests has its own.
    """

    def __init__(self, *routers: Router) -> None:
        self._routers = routers
        self._local = threading.local()

    @property
    def app(self) -> APIGatewayRestResolver:
        """This thread's resolver."""
        app: APIGatewayRestResolver | None = getattr(self._local, "app", None)
        if app is None:
            app = make_resolver(*self._routers)
            # include_router copies the router's context, which Powertools reads from the
            # resolver that included it last: another thread's, holding the arguments of
            # the request it is answering. Our routers keep no context of their own.
            app.clear_context()
            self._local.app = app
        return app

    def resolve(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return self.app.resolve(event, context)


def routes_of(router: Router) -> list[tuple[str, str, list[Any]]]:
    """(METHOD, /path/{param}, middlewares) of every route declared on `router`, in
    declaration order: the stack and the OpenAPI document read the routes from here.

    Powertools keeps them only in ``_routes_with_middleware``, keyed by rule and methods
    first; path parameters are written ``<name>`` there and ``{name}`` in API Gateway.
    """
    routes = []
    for key, middlewares in router._routes_with_middleware.items():
        rule, methods = key[0], key[1]
        path = re.sub(r"<(\w+)>", r"{\1}", rule)
        routes += [(method.upper(), path, list(middlewares)) for method in methods]
    return routes


def make_resolver(*routers: Router) -> APIGatewayRestResolver:
    """A REST (API Gateway v1 proxy) resolver with validation and the shared error mapping."""
    app = _RestResolver(enable_validation=True)
    app.exception_handler(RebatesError)(_rebates_error)
    app.exception_handler(RequestValidationError)(_invalid_request)
    app.not_found(_route_not_found)
    # Handlers are looked up along the exception's MRO, so this only catches what
    # nothing more specific claims.
    app.exception_handler(Exception)(_unexpected)
    for router in routers:
        app.include_router(router)
    return app
