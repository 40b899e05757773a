"""The REST resolver every API function uses, and the error shape it answers with.

Each domain declares its routes on a `Router`; its handler module builds a resolver
with `make_resolver(router)`. All of them answer errors the same way:
`{"error": {"code", "message", "details"}}` with the status the error class carries,
and a request that fails validation is a 400, never a 5xx.

Request bodies are checked here, once, for every route (DESIGN "HTTP API": never a 5xx
for bad input), before Powertools parses them:

- A route that declares a body takes the media type of its body parameter: JSON
  (``application/json``, any case, optional parameters; a ``charset`` must be UTF-8) unless
  it declares ``Form()`` or ``File()``. A ``Form()`` route takes both of HTML's form
  encodings, ``application/x-www-form-urlencoded`` and ``multipart/form-data`` (RFC 8058
  one-click unsubscribes SHOULD come as the latter, MAY as the former), up to
  `MAX_FORM_BYTES` (else 413 ``payload_too_large``, refused unparsed). Another
  ``Content-Type`` is 415 ``unsupported_media_type``. A JSON route also takes a body
  without ``Content-Type``: API Gateway clients (curl, tills, scripts) often omit it, and
  the body is parsed as JSON either way. An empty body is not checked for its type: it
  is a 400 ``body: Field required``, which says more than a 415 would.
- The body must decode: valid base64 when ``isBase64Encoded`` (as API Gateway sends binary
  bodies), then UTF-8; and JSON must be one strict document (`parse_json_document`: no NaN,
  no duplicate keys, no lone surrogates, bounded numbers and nesting). Otherwise 400
  ``invalid_request``, naming the problem under ``body``.
- A route that declares no body (every GET here) ignores one: HTTP gives a body on GET no
  meaning, API Gateway forwards it anyway, and refusing it would break clients whose HTTP
  library attaches one.

These run in the request validation middleware, first in every route's chain, so a
refused body never reaches a route middleware such as Idempotency-Key: it stores no
record, and the corrected request may reuse the key. Code reading the body itself
(``current_event.decoded_body`` / ``json_body``) gets the same checks as a 400.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Callable, Mapping
from functools import cached_property
from http import HTTPStatus
from typing import Any, Final, TypeVar

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Route, Router
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
    _extract_multipart_boundary,
    _parse_multipart_body,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from functions.core.errors import DomainError, RebatesError
from functions.core.observability import logger, record_refusal
from functions.core.validation import (
    MAX_REPORTED_ERRORS,
    MalformedJson,
    describe_errors,
    explained_errors,
    parse_json_document,
)

JSON = "application/json"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
_UTF_8 = frozenset({"utf-8", "utf8"})
# The media types a route's body may come in, by the type its body parameter declares.
_ENCODINGS: Final = {_FORM: (_FORM, _MULTIPART)}
# Forms carry a few short fields. Parsing is what costs: 10 MB of ``a=1&`` (API Gateway's
# limit) takes seconds and hundreds of megabytes, so a larger form is refused unread.
MAX_FORM_BYTES: Final = 16 * 1024

# Routes that read a body only up to a size of their own, below API Gateway's 10 MB:
# path as the router declares it -> bytes. A larger body is a 413 before it is parsed.
BODY_LIMITS: dict[str, int] = {}


def limit_body(path: str, max_bytes: int) -> None:
    """Refuse (413) bodies over `max_bytes` on the route at `path`, unread."""
    BODY_LIMITS[path] = max_bytes


# Routes served without an API key (method, path); the stack and the OpenAPI document
# both read this, so the two cannot disagree about what is public.
PUBLIC_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/v1/health"),
        # The unsubscribe link of marketing messages: mail clients have no key, and the
        # signed token in the link is the authorisation (functions.notifications.tokens).
        ("GET", "/v1/unsubscribe"),
        ("POST", "/v1/unsubscribe"),
    }
)
# Operators' routes: IAM-authorised (SigV4) in AWS, out of reach of the storefronts' keys.
IAM_ROUTES: frozenset[tuple[str, str]] = frozenset({("POST", "/v1/claims/{claimId}/review")})


def error_response(status: int, code: str, message: str, details: Any = None) -> Response[Any]:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return Response(status_code=status, content_type=JSON, body=body)


def _rebates_error(error: RebatesError) -> Response[Any]:
    return error_response(error.status, error.code, error.message, error.details)


class UnsupportedMediaType(RebatesError):
    """415: the body is not of the media type the route takes."""

    status = 415


class PayloadTooLarge(RebatesError):
    """413: the body is larger than the route reads."""

    status = 413


def _invalid_request(error: RequestValidationError) -> Response[Any]:
    errors = explained_errors(error.errors())
    problems = describe_errors(errors, limit=MAX_REPORTED_ERRORS)
    message = "The request is malformed: " + "; ".join(
        f"{p['path']}: {p['message']}" for p in problems
    )
    details: dict[str, Any] = {"errors": problems}
    if len(errors) > len(problems):
        message += f" (and {len(errors) - len(problems)} more)"
        details["omitted"] = len(errors) - len(problems)
    return error_response(HTTPStatus.BAD_REQUEST, "invalid_request", message, details)


def _unsupported_content_type(_: RequestUnsupportedContentType) -> Response[Any]:
    # Powertools' own check, for a Form() or File() route sent another type; JSON routes
    # never get that far (see _RequestValidation).
    return error_response(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        UNSUPPORTED_MEDIA_TYPE,
        "This route does not take a body of this Content-Type.",
    )


def _route_not_found(_: Exception) -> Response[Any]:
    return error_response(HTTPStatus.NOT_FOUND, "route_not_found", "No such route.")


def _unexpected(error: Exception) -> Response[Any]:
    # The caller learns nothing about internals; the log keeps the stack for operators.
    logger.exception("Unhandled error", extra={"error_type": type(error).__name__})
    return error_response(
        HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "Something went wrong on our side."
    )


def _malformed_body(message: str, kind: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": kind, "loc": ("body",), "msg": message, "input": {}, "ctx": {}}]
    )


class _ProxyEvent(APIGatewayProxyEvent):
    """The REST proxy event, its body read strictly: what cannot be read is a 400.

    Powertools' accessors let through what the standard library raises
    (UnicodeDecodeError, binascii.Error, RecursionError, ValueError for a 5,000-digit
    integer); it turns only JSON decode errors into a validation error, so the rest
    reached the 500 handler.
    """

    @cached_property
    def decoded_body(self) -> str | None:
        body: Any = self.get("body")
        if not body:
            return None if body is None else ""
        if isinstance(body, str) and not self.is_base64_encoded:
            # Text may still hold lone surrogates: a client that decoded bytes with
            # surrogateescape, or an event with "\udcff" in its JSON.
            raw: Any = body
        elif isinstance(body, str):
            try:
                raw = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                raise _malformed_body(
                    "marked base64-encoded but not valid base64", "body_base64"
                ) from None
        else:
            # Only a direct invocation can hand over bytes (or anything else): API
            # Gateway's event is JSON.
            raw = body
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
            if not isinstance(text, str):
                raise TypeError(type(text).__name__)
            text.encode("utf-8")
        except (UnicodeError, TypeError):
            raise _malformed_body("not UTF-8 text", "body_encoding") from None
        return text

    @cached_property
    def json_body(self) -> Any:
        text = self.decoded_body
        if not text:
            return None
        try:
            return parse_json_document(text)
        except MalformedJson as error:
            raise _malformed_body(str(error), "json_invalid") from None


def body_media_type(route: Route) -> str | None:
    """The media type `route` takes its body in (None: it takes no body), as its body
    parameter declares it: what the OpenAPI document lists under ``requestBody``."""
    field = route.body_field
    if field is None:
        return None
    return str(getattr(field.field_info, "media_type", JSON)).lower()


def _check_content_type(header: str | None, accepted: str) -> None:
    """Refuse (415) a ``Content-Type`` other than `accepted`, or a charset other than UTF-8."""
    given = (header or "").strip()
    if not given:
        if accepted == JSON:
            return
        raise _unsupported(given, accepted)
    media_type, *parameters = given.split(";")
    if media_type.strip().lower() not in _ENCODINGS.get(accepted, (accepted,)):
        raise _unsupported(given, accepted)
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in _UTF_8:
            raise _unsupported(given, accepted)


def _unsupported(given: str, accepted: str) -> UnsupportedMediaType:
    types = _ENCODINGS.get(accepted, (accepted,))
    return UnsupportedMediaType(
        UNSUPPORTED_MEDIA_TYPE,
        f"This route takes a body of type {' or '.join(types)}, in UTF-8.",
        # Cut short: the header is the client's, and it is echoed back.
        {"contentType": given[:200] or None, "accepted": list(types)},
    )


def _takes_object(route: Route) -> bool:
    """Whether `route`'s body parameter is a model (a JSON object), not a list of them."""
    field = route.body_field
    annotation = getattr(field, "type_", None) if field is not None else None
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


class _RequestValidation(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, with the body checks of the module docstring.

    Powertools calls `_get_body` only for a route with a body parameter. Its own check
    compares the header with ``startswith``: ``Application/JSON`` was refused (a
    RequestUnsupportedContentType, a NotImplementedError, hence a 500), while
    ``application/jsonfoo`` and form bodies on JSON routes were taken.
    """

    def _get_body(self, app: Any) -> Any:
        event = app.current_event
        accepted = body_media_type(app.context["_route"]) or JSON
        header = event.headers.get("content-type")
        if event.get("body"):
            _check_content_type(header, accepted)
        # Parsed by type here: Powertools' `_get_body` would compare the header again,
        # case-sensitively.
        _check_size(app.context["_route"], event)
        if accepted == JSON:
            body = event.json_body
            if isinstance(body, list) and _takes_object(app.context["_route"]):
                # Powertools validates a list against a model as its first element, so
                # `[valid, junk]` would pass as `valid`.
                raise _malformed_body("expected a JSON object, not an array", "model_type")
            return body
        if accepted == _FORM:
            return self._form(app, header)
        if accepted == _MULTIPART:
            return self._parse_multipart_data(app, header or "")
        return super()._get_body(app)

    def _form(self, app: Any, header: str | None) -> Any:
        # Read as text first: base64 and UTF-8 are checked as for every body.
        text: str = app.current_event.decoded_body or ""
        if len(text.encode("utf-8")) > MAX_FORM_BYTES:
            raise PayloadTooLarge(
                "payload_too_large",
                f"This route takes a form of at most {MAX_FORM_BYTES} bytes.",
                {"maxBytes": MAX_FORM_BYTES},
            )
        media_type = (header or "").split(";")[0].strip().lower()
        if media_type != _MULTIPART:
            return self._parse_form_data(app)
        # Powertools' own multipart reading re-encodes a text body as Latin-1 and lets a
        # ValueError (no boundary, undecodable part) through as a 500.
        boundary = _extract_multipart_boundary(header or "")
        if not boundary:
            raise _malformed_body("multipart/form-data without a boundary", "multipart_invalid")
        try:
            return _parse_multipart_body(text.encode("utf-8"), boundary)
        except ValueError:
            raise _malformed_body(
                "not a readable multipart/form-data body", "multipart_invalid"
            ) from None


def _check_size(route: Route, event: Any) -> None:
    limit = BODY_LIMITS.get(route.path)
    if limit is None or not event.get("body"):
        return
    text: str = event.decoded_body or ""
    # Characters never outnumber UTF-8 bytes: only a body near the limit is encoded.
    if len(text) > limit or (len(text) * 4 > limit and len(text.encode("utf-8")) > limit):
        raise PayloadTooLarge(
            "payload_too_large",
            f"This route takes a body of at most {limit} bytes.",
            {"maxBytes": limit},
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

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self._enable_validation:
            # The first middleware of every route (Route._build_middleware_stack).
            # Powertools' middleware __init__ is unannotated.
            self._request_validation_middleware = _RequestValidation()  # type: ignore[no-untyped-call]

    def _to_proxy_event(self, event: dict[str, Any]) -> BaseProxyEvent:
        return _ProxyEvent(event, self._json_body_deserializer)

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


RefusalT = TypeVar("RefusalT", bound=DomainError)
Middleware = Callable[[APIGatewayRestResolver, NextMiddleware], Response[Any]]


def domain_errors(
    base: type[RefusalT], api_error: Callable[[RefusalT], RebatesError]
) -> Middleware:
    """Every route's innermost middleware: a `base` refusal of the domain becomes the API
    error `api_error` maps it to (the API's one mapping, its statuses its own), inside the
    idempotency middleware, so a refusal is answered (and replayed) as one, and counted
    once by its reason (a replay runs no route)."""

    def middleware(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
        try:
            return next_middleware(app)
        except base as error:
            event = app.current_event
            record_refusal(f"{event.http_method} {event.resource}", error.code)
            raise api_error(error) from error

    middleware.__name__ = middleware.__qualname__ = "domain_errors"
    return middleware


def status_mapping(
    statuses: Mapping[type[RefusalT], type[RebatesError]],
) -> Callable[[RefusalT], RebatesError]:
    """A domain's one mapping of refusals to API errors: each refusal gets the status of
    the nearest of its classes in `statuses`. A refusal nobody gave a status is a bug in
    the mapping, not the client's: a TypeError, which the resolver answers with a 500."""

    def api_error(error: RefusalT) -> RebatesError:
        for kind in type(error).__mro__:
            status = statuses.get(kind)
            if status is not None:
                return status(error.code, error.message, dict(error.details))
        raise TypeError(f"no HTTP status for {type(error).__name__}") from error

    return api_error


def responses(success: HTTPStatus, model: type[Any], **errors: str) -> dict[int, OpenAPIResponse]:
    """The OpenAPI responses of a route: its success with `model`, and the errors it
    answers with, ``e404="code_not_found"`` (`cli.openapi` adds the error body)."""
    declared = {
        int(success): OpenAPIResponse(
            description=success.phrase, content={"application/json": {"model": model}}
        )
    }
    for name, text in errors.items():
        declared[int(name[1:])] = OpenAPIResponse(description=text)
    return declared


def make_resolver(*routers: Router) -> APIGatewayRestResolver:
    """A REST (API Gateway v1 proxy) resolver with validation and the shared error mapping."""
    app = _RestResolver(enable_validation=True)
    app.exception_handler(RebatesError)(_rebates_error)
    app.exception_handler(RequestValidationError)(_invalid_request)
    app.exception_handler(RequestUnsupportedContentType)(_unsupported_content_type)
    app.not_found(_route_not_found)
    # Handlers are looked up along the exception's MRO, so this only catches what
    # nothing more specific claims.
    app.exception_handler(Exception)(_unexpected)
    for router in routers:
        app.include_router(router)
    return app
