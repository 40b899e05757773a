"""The shared resolver: error shape, validation as 400, health, unknown routes."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import pytest
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, Field

from functions.core import health
from functions.core.api import ResolverPerThread, make_resolver
from functions.core.errors import Conflict, NotFound
from infra.local.proxy_event import lambda_context, proxy_event


class Cart(BaseModel):
    currency: str = Field(pattern="^[A-Z]{3}$")
    quantity: int = Field(ge=1)


router = Router()


@router.post("/v1/things")
def create_thing(cart: Cart) -> dict[str, Any]:
    return {"quantity": cart.quantity}


class Line(BaseModel):
    quantity: int = Field(ge=1)


class Basket(BaseModel):
    lines: Annotated[tuple[Line, ...], Field(min_length=1)]


@router.post("/v1/baskets")
def create_basket(basket: Basket) -> dict[str, Any]:
    return {"lines": len(basket.lines)}


@router.get("/v1/things/<thing_id>")
def get_thing(thing_id: str) -> dict[str, Any]:
    if thing_id == "taken":
        raise Conflict("limit_reached", "The code has been used up.", {"limit": 10})
    raise NotFound("thing_not_found", f"No thing {thing_id}.")


@router.get("/v1/boom")
def boom() -> dict[str, Any]:
    raise RuntimeError("secret internals")


app = make_resolver(router)


def call(event: dict[str, Any], resolver: Any = app) -> tuple[int, dict[str, Any]]:
    response = resolver.resolve(event, lambda_context())
    return response["statusCode"], json.loads(response["body"])


def test_valid_body_reaches_the_route() -> None:
    status, body = call(proxy_event("POST", "/v1/things", body={"currency": "JPY", "quantity": 2}))
    assert (status, body) == (200, {"quantity": 2})


def test_invalid_body_is_400_with_paths() -> None:
    status, body = call(proxy_event("POST", "/v1/things", body={"currency": "yen", "quantity": 0}))
    assert status == 400
    assert body["error"]["code"] == "invalid_request"
    paths = {problem["path"] for problem in body["error"]["details"]["errors"]}
    assert paths == {"body.currency", "body.quantity"}


def test_a_wrong_item_of_a_list_is_one_error_at_the_item_not_also_a_list_too_short() -> None:
    status, body = call(proxy_event("POST", "/v1/baskets", body={"lines": [{"quantity": 1.5}]}))
    assert status == 400
    assert [problem["path"] for problem in body["error"]["details"]["errors"]] == [
        "body.lines[0].quantity"
    ]
    assert "omitted" not in body["error"]["details"]
    assert "more)" not in body["error"]["message"]


def test_an_empty_list_is_still_too_short() -> None:
    status, body = call(proxy_event("POST", "/v1/baskets", body={"lines": []}))
    assert status == 400
    assert [problem["path"] for problem in body["error"]["details"]["errors"]] == ["body.lines"]


@pytest.mark.parametrize(
    "body",
    [
        [{"currency": "JPY", "quantity": 2}],
        [{"currency": "JPY", "quantity": 2}, {"junk": True}],
        [],
    ],
    ids=["one valid object", "a valid object and junk", "empty"],
)
def test_an_array_is_no_object_body_even_holding_a_valid_one(body: list[Any]) -> None:
    # Powertools' validation reads a list as its first element for a model parameter.
    status, answer = call(proxy_event("POST", "/v1/things", body=body))
    assert status == 400
    assert answer["error"]["details"]["errors"] == [
        {"path": "body", "message": "expected a JSON object, not an array"}
    ]


def test_malformed_json_is_400() -> None:
    status, body = call(proxy_event("POST", "/v1/things", body="{not json"))
    assert status == 400
    assert body["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("thing_id", "status", "code"),
    [("taken", 409, "limit_reached"), ("nope", 404, "thing_not_found")],
)
def test_domain_errors_keep_their_status_and_code(thing_id: str, status: int, code: str) -> None:
    got_status, body = call(proxy_event("GET", f"/v1/things/{thing_id}"))
    assert got_status == status
    assert body["error"]["code"] == code
    assert set(body["error"]) == {"code", "message", "details"}


def test_unknown_route_is_404_in_the_error_shape() -> None:
    status, body = call(proxy_event("GET", "/v1/nowhere"))
    assert status == 404
    assert body["error"]["code"] == "route_not_found"


def test_unexpected_error_is_500_without_internals() -> None:
    status, body = call(proxy_event("GET", "/v1/boom"))
    assert status == 500
    assert body["error"]["code"] == "internal_error"
    assert "secret" not in json.dumps(body)


def test_health_reports_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "core")
    monkeypatch.setenv("REBATES_VERSION", "1.2.3")
    response = health.handler(proxy_event("GET", "/v1/health"), lambda_context())
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"status": "ok", "version": "1.2.3"}


# -- one resolver per thread ------------------------------------------------------------

echo_router = Router()
_inside = threading.Barrier(8)


class Order(BaseModel):
    orderId: str


@echo_router.post("/v1/orders", status_code=201)
def place_order(body: Order) -> dict[str, Any]:
    # Every request waits here until all eight are inside a route at once, so each one
    # is answered while the others hold their own requests.
    _inside.wait(timeout=10)
    # What middlewares (Idempotency-Key) and routes read of the request, after the wait.
    seen = echo_router.current_event.json_body["orderId"]
    return {"orderId": body.orderId, "seen": seen}


def test_concurrent_requests_each_get_their_own_answer() -> None:
    """The local cloud runs a function's concurrent invocations as threads of one process
    (Lambda would use one container each): a shared resolver would mix their requests."""
    app = ResolverPerThread(echo_router)

    def place(n: int) -> tuple[int, str]:
        event = proxy_event("POST", "/v1/orders", body={"orderId": f"o{n}"})
        response = app.resolve(event, lambda_context())
        answer = json.loads(response["body"])
        return response["statusCode"], f"{answer['orderId']}/{answer['seen']}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(place, range(8)))
    assert answers == [(201, f"o{n}/o{n}") for n in range(8)]
