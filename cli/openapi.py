"""The OpenAPI document, generated from the routes the handlers declare.

Every API router is listed here once; `events/openapi.json` is this function's output,
committed, and a test fails when a route changes without regenerating it.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.models import Server
from pydantic import BaseModel, Field

from functions.core.api import (
    IAM_ROUTES,
    PUBLIC_ROUTES,
    UNSUPPORTED_MEDIA_TYPE,
    make_resolver,
    routes_of,
)
from functions.core.idempotency import IDEMPOTENCY_KEY_HEADER, Idempotency

# Module paths of every module that declares a `router`; later domains add theirs.
API_ROUTER_MODULES: tuple[str, ...] = (
    "functions.core.health",
    "functions.offers.handlers.api",
    "functions.wallet.handlers.api",
    "functions.claims.handlers.api",
    "functions.notifications.handlers.api",
)

TITLE = "Rebates API"
API_VERSION = "1"


class ErrorDetail(BaseModel):
    code: str = Field(pattern="^[a-z][a-z0-9_]*$", examples=["limit_reached"])
    message: str
    details: dict[str, Any]


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer of the API has this shape."""

    error: ErrorDetail


def api_routers() -> list[Router]:
    return [importlib.import_module(name).router for name in API_ROUTER_MODULES]


def idempotent_operations(routers: list[Router]) -> set[tuple[str, str]]:
    """(METHOD, /openapi/{path}) of every route guarded by the Idempotency-Key middleware."""
    return {
        (method, path)
        for router in routers
        for method, path, middlewares in routes_of(router)
        if any(isinstance(middleware, Idempotency) for middleware in middlewares)
    }


def build_openapi() -> str:
    routers = api_routers()
    app = make_resolver(*routers)
    document = app.get_openapi_json_schema(
        title=TITLE,
        version=API_VERSION,
        description=(
            "Storefront API of Rebates. Every route except GET /v1/health requires the "
            "x-api-key header; errors are {error: {code, message, details}}."
        ),
        servers=[Server(url="/")],
    )
    conventions = _our_conventions(json.loads(document), idempotent_operations(routers))
    return json.dumps(conventions, indent=2, sort_keys=True) + "\n"


def _our_conventions(document: dict[str, Any], idempotent: set[tuple[str, str]]) -> dict[str, Any]:
    """State what the generator cannot know: the API key and the 403 without it, 400 for
    invalid requests, 415 for a body of another media type, API Gateway's own 413 and
    429, the error body of every error response, and the Idempotency-Key header where
    honoured.

    Powertools documents request validation failures as FastAPI-style 422 bodies; this
    API answers them as 400 in the common error shape, so the document says that.
    """
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for generated in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(generated, None)
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorBody"] = error_schema
    components["securitySchemes"] = {
        "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
        "sigv4": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "AWS Signature Version 4 (service execute-api): operators' IAM "
            "credentials.",
            "x-amazon-apigateway-authtype": "awsSigv4",
        },
    }
    document["security"] = [{"apiKey": []}]
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if responses.get("422", {}).get("description") == "Validation Error":
                responses.pop("422")
            keyed = (method.upper(), path) in idempotent
            if keyed:
                operation.setdefault("parameters", []).append(_IDEMPOTENCY_HEADER)
                responses["409"] = {
                    "description": " ".join(
                        filter(None, [responses.get("409", {}).get("description"), _KEY_CONFLICTS])
                    )
                }
            if "requestBody" in operation or operation.get("parameters"):
                responses["400"] = {"description": _invalid_request(operation, keyed=keyed)}
            if "requestBody" in operation:
                media_types = sorted(operation["requestBody"].get("content", {}))
                responses["415"] = {
                    "description": f"{UNSUPPORTED_MEDIA_TYPE}: the body is not "
                    + " or ".join(media_types)
                    + " (in UTF-8)"
                }
            if "requestBody" in operation:
                responses["413"] = {"description": _TOO_LARGE}
            _authorisation(operation, (method.upper(), path))
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = error_content
    return document


def _authorisation(operation: dict[str, Any], route: tuple[str, str]) -> None:
    """Who may call `route`: anyone (health), operators signing with IAM, or storefronts
    with their key; the latter two hear API Gateway's 403 and 429 otherwise."""
    responses = operation["responses"]
    if route in PUBLIC_ROUTES:
        operation["security"] = []
        return
    if route in IAM_ROUTES:
        operation["security"] = [{"sigv4": []}]
        responses["403"] = {"description": _NOT_SIGNED}
    else:
        responses["403"] = {"description": _FORBIDDEN}
    responses["429"] = {
        "description": " ".join(
            filter(None, [responses.get("429", {}).get("description"), _THROTTLED])
        )
    }


def _invalid_request(operation: dict[str, Any], *, keyed: bool) -> str:
    causes = []
    if "requestBody" in operation:
        causes.append("the body is not one strict UTF-8 JSON document matching the schema")
    if any(parameter.get("in") != "header" for parameter in operation.get("parameters", [])):
        causes.append("a path or query parameter does not match the schema")
    text = "invalid_request" + (": " + "; or ".join(causes) if causes else "")
    if keyed:
        text += " (or invalid_idempotency_key)"
    return text


# API Gateway's own answers (the stack's gateway responses, infra/constructs/api.py).
_NOT_SIGNED = (
    "route_not_found (no SigV4 signature) or forbidden (credentials not allowed to call "
    "this route): answered by API Gateway"
)
_FORBIDDEN = "invalid_api_key: missing or wrong x-api-key (answered by API Gateway)"
_THROTTLED = (
    "(or throttled: over the API key's usage plan rate or burst, answered by API Gateway "
    "with Retry-After)"
)
_TOO_LARGE = "payload_too_large: the body is over API Gateway's 10 MB (answered by API Gateway)"


_KEY_CONFLICTS = "(or idempotency_key_reused, idempotency_key_in_use)"
_IDEMPOTENCY_HEADER = {
    "name": IDEMPOTENCY_KEY_HEADER,
    "in": "header",
    "required": False,
    "description": (
        "A retry with the same key and body returns the first response (with "
        "Idempotent-Replayed: true) and has no second effect; the same key with another "
        "body is 409 idempotency_key_reused. Kept 24 hours. A refusal that may be lifted "
        "later (a limit a rollback frees, an archived campaign uploaded again, not started "
        "yet) is not kept: the retry is decided again."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


def write_openapi(path: Path) -> Path:
    path.write_text(build_openapi(), encoding="utf-8")
    return path


def check_openapi(path: Path) -> list[str]:
    """Differences between the committed document and what the routes produce."""
    if not path.exists():
        return [f"{path} is missing"]
    if path.read_text(encoding="utf-8") != build_openapi():
        return [f"{path} is out of date with the routes"]
    return []
