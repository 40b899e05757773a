"""The REST resolver every API function uses, and the error shape it answers with.

Each domain declares its routes on a `Router`; its handler module builds a resolver
with `make_resolver(router)`. All of them answer errors the same way:
`{"error": {"code", "message", "details"}}` with the status the error class carries,
and a request that fails validation is a 400, never a 5xx.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

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


def make_resolver(*routers: Router) -> APIGatewayRestResolver:
    """A REST (API Gateway v1 proxy) resolver with validation and the shared error mapping."""
    app = APIGatewayRestResolver(enable_validation=True)
    app.exception_handler(RebatesError)(_rebates_error)
    app.exception_handler(RequestValidationError)(_invalid_request)
    app.not_found(_route_not_found)
    # Handlers are looked up along the exception's MRO, so this only catches what
    # nothing more specific claims.
    app.exception_handler(Exception)(_unexpected)
    for router in routers:
        app.include_router(router)
    return app
