"""Idempotency-Key on POST routes: one execution per key, replays, refusals, races."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel

from functions.core.api import JSON, error_response, make_resolver
from functions.core.clock import frozen_at
from functions.core.errors import Conflict, Throttled, Unprocessable
from functions.core.idempotency import (
    COMPLETED,
    IDEMPOTENCY_KEY_HEADER,
    REPLAYED_HEADER,
    IdempotencyRecord,
    idempotent,
)
from functions.core.ids import new_id
from infra.local.proxy_event import lambda_context, proxy_event
from tests.support.aws import aws_env, tables
from tests.support.schema import schema_mismatches

__all__ = ["aws_env", "tables"]  # fixtures, found by name

T0 = datetime(2027, 3, 2, 9, 0, tzinfo=UTC)


class Redeem(BaseModel):
    code: str
    customerId: str  # the contract's field name


class Rollback(BaseModel):
    reason: str


@dataclass
class Service:
    """A tiny API whose routes count their executions; `during` runs inside a route."""

    app: APIGatewayRestResolver = field(init=False)
    runs: list[str] = field(default_factory=list)
    during: Callable[[], None] | None = None


def build() -> Service:
    service = Service()
    router = Router()

    @router.post("/v1/redemptions", middlewares=[idempotent(provisional={"not_started"})])
    def redeem(body: Redeem) -> Response[Any]:
        service.runs.append(body.code)
        if service.during is not None:
            service.during()
        if body.code == "USED":
            raise Conflict("limit_reached", "The code has been used up.", {"limit": 1})
        if body.code == "SOON":
            raise Unprocessable("not_started", "The campaign has not started yet.")
        if body.code == "EARLY":
            return error_response(422, "not_started", "The campaign has not started yet.")
        if body.code == "BUSY":
            raise Throttled("throttled", "Slow down.")
        if body.code == "BOOM":
            raise RuntimeError("a bug")
        if body.code == "DOWN":
            return error_response(503, "unavailable", "Try later.")
        redemption_id = new_id("red")
        return Response(
            201,
            JSON,
            {"redemptionId": redemption_id, "code": body.code},
            headers={"Location": f"/v1/redemptions/{redemption_id}"},
        )

    @router.post("/v1/redemptions/<redemption_id>/rollback", middlewares=[idempotent()])
    def rollback(redemption_id: str, body: Rollback) -> dict[str, Any]:
        service.runs.append(f"rollback {redemption_id}")
        return {"redemptionId": redemption_id, "reason": body.reason, "at": new_id()}

    @router.post("/v1/claims", middlewares=[idempotent(required=True)])
    def submit_claim(body: Rollback) -> tuple[dict[str, Any], int]:
        service.runs.append("claim")
        return {"claimId": new_id("clm")}, 202

    service.app = make_resolver(router)
    return service


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]
    raw_body: str


def call(
    service: Service,
    body: Any = None,
    *,
    key: str | None = "key-1",
    path: str = "/v1/redemptions",
    resource: str | None = None,
    path_parameters: dict[str, str] | None = None,
    api_key: str = "storefront-a",
) -> Answer:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers[IDEMPOTENCY_KEY_HEADER] = key
    event = proxy_event(
        "POST",
        path,
        resource=resource,
        path_parameters=path_parameters,
        headers=headers,
        body={"code": "TRAIL-1", "customerId": "cust-1"} if body is None else body,
        api_key=api_key,
    )
    result = service.app.resolve(event, lambda_context())
    merged = {name: values[-1] for name, values in result.get("multiValueHeaders", {}).items()}
    merged.update(result.get("headers") or {})
    return Answer(result["statusCode"], merged, json.loads(result["body"]), result["body"])


def records() -> list[IdempotencyRecord]:
    return list(IdempotencyRecord.scan())


@pytest.fixture
def service(tables: list[str]) -> Service:
    return build()


def test_the_record_model_matches_its_table() -> None:
    assert schema_mismatches(IdempotencyRecord) == []


def test_importing_it_stays_off_boto3() -> None:
    # It runs in every API function's cold start; PynamoDB needs only botocore.
    code = "import sys, functions.core.idempotency; print('boto3' in sys.modules)"
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "False"


# -- one execution, same answer ------------------------------------------------------------


def test_same_key_and_body_runs_once_and_replays_the_first_response(service: Service) -> None:
    first = call(service)
    again = call(service)

    assert service.runs == ["TRAIL-1"]
    assert first.status == again.status == 201
    assert again.raw_body == first.raw_body  # byte for byte, the same redemptionId
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Content-Type"] == JSON
    assert again.headers[REPLAYED_HEADER] == "true"
    assert REPLAYED_HEADER not in first.headers


def test_the_record_keeps_the_response_for_a_day(service: Service) -> None:
    with frozen_at(T0):
        call(service)
    (record,) = records()
    # Scoped by a digest of the API key (never the key itself), the route and the key.
    assert re.fullmatch(r"api#key-[0-9a-f]{32}#POST /v1/redemptions#key-1", record.record_id)
    assert record.status == COMPLETED
    assert record.claimed_until is None
    assert record.expiration == T0 + timedelta(hours=24)
    assert record.response is not None
    assert json.loads(record.response)["statusCode"] == 201


def test_the_body_is_compared_canonically(service: Service) -> None:
    call(service, '{"code":"TRAIL-1","customerId":"cust-1"}')
    again = call(service, '{ "customerId": "cust-1",\n  "code": "TRAIL-1" }')
    assert again.status == 201 and again.headers[REPLAYED_HEADER] == "true"
    assert service.runs == ["TRAIL-1"]


def test_same_key_with_another_body_is_409_reused(service: Service) -> None:
    call(service)
    other = call(service, {"code": "TRAIL-2", "customerId": "cust-1"})
    assert other.status == 409
    assert other.body["error"]["code"] == "idempotency_key_reused"
    assert set(other.body["error"]) == {"code", "message", "details"}
    assert service.runs == ["TRAIL-1"]


def test_path_ids_are_part_of_the_request(service: Service) -> None:
    def rollback(redemption_id: str) -> Answer:
        return call(
            service,
            {"reason": "payment_failed"},
            path=f"/v1/redemptions/{redemption_id}/rollback",
            resource="/v1/redemptions/{redemption_id}/rollback",
            path_parameters={"redemption_id": redemption_id},
        )

    assert rollback("red_1").status == 200
    assert rollback("red_1").headers[REPLAYED_HEADER] == "true"
    assert rollback("red_2").body["error"]["code"] == "idempotency_key_reused"
    assert service.runs == ["rollback red_1"]


def test_keys_are_scoped_by_route_and_by_client(service: Service) -> None:
    call(service)
    assert call(service, {"reason": "r"}, path="/v1/claims").status == 202
    assert call(service, api_key="storefront-b").status == 201
    assert service.runs == ["TRAIL-1", "claim", "TRAIL-1"]
    assert len(records()) == 3


# -- what is stored and what is not ----------------------------------------------------------


def test_a_refusal_is_stored_and_replayed(service: Service) -> None:
    used = {"code": "USED", "customerId": "cust-1"}
    first = call(service, used)
    again = call(service, used)
    assert first.status == again.status == 409
    assert first.body["error"]["code"] == "limit_reached"
    assert again.raw_body == first.raw_body
    assert service.runs == ["USED"]


@pytest.mark.parametrize("code", ["SOON", "EARLY"])
def test_a_provisional_refusal_is_answered_but_not_stored(service: Service, code: str) -> None:
    # Raised or returned, a refusal the route calls provisional may be lifted later (here
    # the campaign starts): the retry runs the route again instead of a replay.
    body = {"code": code, "customerId": "cust-1"}
    first = call(service, body)
    assert first.status == 422 and first.body["error"]["code"] == "not_started"
    assert records() == []
    again = call(service, body)
    assert again.status == 422 and REPLAYED_HEADER not in again.headers
    assert service.runs == [code, code]
    used = {"code": "USED", "customerId": "cust-1"}
    assert call(service, used, key="key-2").status == 409
    assert call(service, used, key="key-2").headers[REPLAYED_HEADER] == "true"


def test_an_exception_is_not_stored_so_a_retry_runs_again(service: Service) -> None:
    boom = {"code": "BOOM", "customerId": "cust-1"}
    first = call(service, boom)
    assert first.status == 500 and first.body["error"]["code"] == "internal_error"
    assert records() == []
    assert call(service, boom).status == 500
    assert service.runs == ["BOOM", "BOOM"]


@pytest.mark.parametrize(("code", "status"), [("DOWN", 503), ("BUSY", 429)])
def test_5xx_and_429_answers_are_not_stored(service: Service, code: str, status: int) -> None:
    body = {"code": code, "customerId": "cust-1"}
    assert call(service, body).status == status
    assert call(service, body).status == status
    assert service.runs == [code, code]
    assert records() == []


def test_an_invalid_body_never_touches_the_key(service: Service) -> None:
    invalid = call(service, {"code": "TRAIL-1"})
    assert invalid.status == 400 and invalid.body["error"]["code"] == "invalid_request"
    assert records() == []
    assert call(service).status == 201  # not "reused": nothing was recorded


def test_an_expired_record_no_longer_counts(service: Service) -> None:
    with frozen_at(T0) as clock:
        first = call(service)
        clock.advance(timedelta(hours=24, seconds=1))  # TTL deletion is lazy
        later = call(service)
    assert later.status == 201 and REPLAYED_HEADER not in later.headers
    assert later.raw_body != first.raw_body
    assert service.runs == ["TRAIL-1", "TRAIL-1"]


# -- the header -------------------------------------------------------------------------------


def test_without_the_header_the_route_just_runs(service: Service) -> None:
    call(service, key=None)
    call(service, key=None)
    assert service.runs == ["TRAIL-1", "TRAIL-1"]
    assert records() == []


def test_a_route_may_require_the_header(service: Service) -> None:
    answer = call(service, {"reason": "r"}, key=None, path="/v1/claims")
    assert answer.status == 400
    assert answer.body["error"]["code"] == "idempotency_key_required"
    assert service.runs == []


@pytest.mark.parametrize("key", [" padded", "padded ", "x" * 256, "cl\u00e9", "a\tb", "a\x7fb"])
def test_malformed_keys_are_400(service: Service, key: str) -> None:
    answer = call(service, key=key)
    assert answer.status == 400
    assert answer.body["error"]["code"] == "invalid_idempotency_key"
    assert service.runs == []


@pytest.mark.parametrize("key", ["x", "x" * 255, "a b", "#order#42%", "550e8400-e29b-41d4"])
def test_printable_keys_up_to_255_are_accepted(service: Service, key: str) -> None:
    assert call(service, key=key).status == 201
    assert call(service, key=key).headers[REPLAYED_HEADER] == "true"
    assert service.runs == ["TRAIL-1"]


# -- concurrent duplicates ----------------------------------------------------------------------


def test_a_duplicate_while_the_first_runs_is_409_in_use(service: Service) -> None:
    # Another function instance receives the retry while this one is still in the route.
    other = build()
    seen: list[Answer] = []
    service.during = lambda: seen.append(call(other))

    first = call(service)

    (duplicate,) = seen
    assert duplicate.status == 409
    assert duplicate.body["error"]["code"] == "idempotency_key_in_use"
    assert duplicate.headers["Retry-After"] == "1"
    assert (service.runs, other.runs) == (["TRAIL-1"], [])
    assert call(other).raw_body == first.raw_body


def test_two_threads_with_one_key_execute_once(service: Service) -> None:
    # moto is not thread-safe, so the threads never call it at the same time: the second
    # request runs entirely while the first is parked inside its route.
    inside, release = threading.Event(), threading.Event()

    def park() -> None:
        inside.set()
        assert release.wait(10)

    service.during = park
    answers: list[Answer] = []
    worker = threading.Thread(target=lambda: answers.append(call(service)))
    worker.start()
    try:
        assert inside.wait(10)
        other = build()
        duplicate = call(other)
    finally:
        release.set()
        worker.join(10)

    assert duplicate.status == 409
    assert duplicate.body["error"]["code"] == "idempotency_key_in_use"
    (first,) = answers
    assert first.status == 201
    assert call(other).raw_body == first.raw_body
    assert (service.runs, other.runs) == (["TRAIL-1"], [])


def test_an_abandoned_claim_is_taken_over_once_its_invocation_is_over(service: Service) -> None:
    # The first invocation stalls past its own remaining time (30 s in the test context),
    # as if Lambda had killed it: a retry may then claim the key and run.
    other = build()
    seen: list[Answer] = []

    with frozen_at(T0) as clock:

        def stall() -> None:
            clock.advance(timedelta(seconds=45))
            seen.append(call(other))

        service.during = stall
        stalled = call(service)

    (retry,) = seen
    assert retry.status == 201 and REPLAYED_HEADER not in retry.headers
    # The stalled invocation lost its claim, so its late answer does not overwrite the
    # record: the retry's response is the one replayed from now on.
    assert stalled.status == 201
    replay = call(service)
    assert replay.raw_body == retry.raw_body != stalled.raw_body
    assert (service.runs, other.runs) == (["TRAIL-1"], ["TRAIL-1"])
