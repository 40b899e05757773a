"""The shared route helpers: a domain's refusals answered as API errors, and counted once;
the OpenAPI responses a route declares."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel

from functions.core.api import ResolverPerThread, domain_errors, responses
from functions.core.errors import Conflict, DomainError, RebatesError
from functions.core.observability import instrumented
from infra.local.proxy_event import lambda_context, proxy_event
from tests.unit.core.log_capture import metric_values


class ShelfError(DomainError):
    """A domain's refusal: a code and details, no HTTP status."""

    def __init__(self, code: str, details: dict[str, Any]) -> None:
        super().__init__(f"refused: {code}", details, code=code)


class Shelved(BaseModel):
    shelf: str


def shelf_error(error: ShelfError) -> RebatesError:
    return Conflict(error.code, error.message, error.details)


router = Router()


@router.get(
    "/v1/shelves/<shelfId>",
    middlewares=[domain_errors(ShelfError, shelf_error)],
    responses=responses(HTTPStatus.OK, Shelved, e404="shelf_not_found", e409="shelf_full"),
)
def get_shelf(shelfId: str) -> Shelved:
    if shelfId == "full":
        raise ShelfError("shelf_full", {"shelfId": shelfId})
    if shelfId == "broken":
        raise ValueError("not a refusal")
    return Shelved(shelf=shelfId)


app = ResolverPerThread(router)


@instrumented
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)


def _get(shelf: str) -> dict[str, Any]:
    event = proxy_event("GET", f"/v1/shelves/{shelf}", resource="/v1/shelves/{shelfId}")
    return handler(event, lambda_context("shelves"))


def test_a_refusal_is_answered_by_the_domain_s_mapping_and_counted_by_route_and_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    response = _get("full")

    assert response["statusCode"] == 409
    assert '"code":"shelf_full"' in response["body"].replace(" ", "")
    out = capsys.readouterr().out
    route = "GET /v1/shelves/{shelfId}"
    assert metric_values(out, "Refusals", route=route, reason="shelf_full") == [1.0]


def test_other_errors_pass_through_uncounted(capsys: pytest.CaptureFixture[str]) -> None:
    assert _get("broken")["statusCode"] == 500
    assert _get("top")["statusCode"] == 200
    assert metric_values(capsys.readouterr().out, "Refusals") == []


def test_responses_name_the_success_model_and_each_error_by_status() -> None:
    declared = responses(HTTPStatus.CREATED, Shelved, e404="shelf_not_found", e429="busy")

    assert sorted(declared) == [201, 404, 429]
    assert declared[201]["description"] == "Created"
    assert declared[201]["content"] == {"application/json": {"model": Shelved}}
    assert declared[404] == {"description": "shelf_not_found"}
    assert declared[429] == {"description": "busy"}
