"""Idempotency-Key edges: the query string in the request's fingerprint, and expiry at
the 24-hour mark."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from pydantic import BaseModel

from functions.core.api import make_resolver
from functions.core.clock import frozen_at
from functions.core.idempotency import (
    IDEMPOTENCY_KEY_HEADER,
    RECORD_TTL,
    REPLAYED_HEADER,
    idempotent,
    request_fingerprint,
)
from functions.core.ids import new_id
from infra.local.proxy_event import lambda_context, proxy_event
from tests.support.aws import aws_env, tables

__all__ = ["aws_env", "tables"]  # fixtures, found by name

PATH = "/v1/redemptions"
BODY = {"code": "TRAIL-1", "customerId": "cust-1"}


def fingerprint(query: dict[str, str | list[str]] | None, body: Any = BODY) -> str:
    return request_fingerprint(
        APIGatewayProxyEvent(proxy_event("POST", PATH, query=query, body=body))
    )


# -- the query in the fingerprint ------------------------------------------------------


def test_the_order_of_parameters_and_of_their_values_does_not_count() -> None:
    one = fingerprint({"store": "shibuya", "tag": ["a", "b"]})
    assert fingerprint({"tag": ["a", "b"], "store": "shibuya"}) == one
    assert fingerprint({"store": "shibuya", "tag": ["b", "a"]}) == one


QUERY: dict[str, str | list[str]] = {"store": "shibuya", "lang": "ja"}


@pytest.mark.parametrize(
    "other",
    [
        {"store": "shinjuku", "lang": "ja"},  # another value
        {"Store": "shibuya", "lang": "ja"},  # names are case-sensitive
        {**QUERY, "dryRun": "true"},  # one parameter more
        {"store": "shibuya"},  # one fewer
        {"store": ["shibuya", "shibuya"], "lang": "ja"},  # a value twice
        {"store": "shibuya", "lang": ""},  # present but empty
        None,  # no query string at all
    ],
)
def test_any_other_query_is_another_request(other: dict[str, str | list[str]] | None) -> None:
    assert fingerprint(other) != fingerprint(QUERY)


def test_an_empty_parameter_is_not_an_absent_one() -> None:
    assert fingerprint({"dryRun": ""}) != fingerprint(None)


# -- through a route -----------------------------------------------------------------------


class Redeem(BaseModel):
    code: str
    customerId: str  # the contract's field name


@dataclass
class Service:
    app: APIGatewayRestResolver
    runs: list[str]


def build() -> Service:
    """A route that counts its executions behind the middleware."""
    router = Router()
    runs: list[str] = []

    @router.post(PATH, middlewares=[idempotent()])
    def redeem(body: Redeem) -> tuple[dict[str, Any], int]:
        runs.append(body.code)
        return {"redemptionId": new_id("red")}, 201

    return Service(make_resolver(router), runs)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]
    raw_body: str


def call(service: Service, query: dict[str, str | list[str]] | None = None) -> Answer:
    event = proxy_event(
        "POST",
        PATH,
        query=query,
        headers={IDEMPOTENCY_KEY_HEADER: "key-1"},
        body=BODY,
        api_key="storefront-a",
    )
    result = service.app.resolve(event, lambda_context())
    headers = {name: values[-1] for name, values in result["multiValueHeaders"].items()}
    return Answer(result["statusCode"], headers, json.loads(result["body"]), result["body"])


@pytest.fixture
def service(tables: list[str]) -> Service:
    return build()


def test_the_same_key_with_another_query_is_409_reused(service: Service) -> None:
    first = call(service, {"store": "shibuya", "tag": ["a", "b"]})
    assert first.status == 201
    again = call(service, {"tag": ["b", "a"], "store": "shibuya"})
    assert again.headers.get(REPLAYED_HEADER) == "true"
    assert again.raw_body == first.raw_body
    other = call(service, {"store": "shinjuku", "tag": ["a", "b"]})
    assert other.status == 409
    assert other.body["error"]["code"] == "idempotency_key_reused"
    assert service.runs == ["TRAIL-1"]


# -- expiry ------------------------------------------------------------------------------------


def test_records_live_24_hours() -> None:
    assert timedelta(hours=24) == RECORD_TTL


# The record's expiration is a TTL attribute, whole epoch seconds like DynamoDB's TTL: a
# first request at any fraction of a second is replayed through the 24-hour mark, and a
# retry once that second is over runs again.
@pytest.mark.parametrize("microsecond", [0, 500_000, 999_999])
def test_a_retry_at_exactly_24_hours_replays_and_one_second_later_runs_again(
    service: Service, microsecond: int
) -> None:
    first_at = datetime(2027, 3, 2, 9, 0, 0, microsecond, tzinfo=UTC)
    with frozen_at(first_at) as clock:
        first = call(service)
        clock.set(first_at + timedelta(hours=24) - timedelta(microseconds=1))
        before = call(service)
        clock.set(first_at + timedelta(hours=24))
        at_the_mark = call(service)
        clock.set(first_at + timedelta(hours=24, seconds=1))
        after = call(service)

    assert first.status == 201 and REPLAYED_HEADER not in first.headers
    for replay in (before, at_the_mark):
        assert replay.headers.get(REPLAYED_HEADER) == "true"
        assert replay.raw_body == first.raw_body
    assert after.status == 201 and REPLAYED_HEADER not in after.headers
    assert after.raw_body != first.raw_body
    assert service.runs == ["TRAIL-1", "TRAIL-1"]
