"""Bodies that are not plain JSON are a 4xx on every route, never a 5xx (DESIGN "HTTP API").

Every route the stack declares is called through its real handler module, found from the
router modules `cli.openapi` lists, so a new domain's routes are covered without editing
this file. Routes that take a body answer each hostile shape with 400 ``invalid_request``
or 415 ``unsupported_media_type``, and store no Idempotency-Key record for it; routes that
take none (every GET) ignore the body and answer as they would without it.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import boto3
import pytest
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Form
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from pydantic import BaseModel, ConfigDict

from cli.openapi import API_ROUTER_MODULES, build_openapi
from functions.core.api import make_resolver, routes_of
from functions.core.idempotency import IDEMPOTENCY_KEY_HEADER, IdempotencyRecord, idempotent
from functions.core.idempotency import request_fingerprint as fingerprint
from functions.core.validation import (
    MAX_JSON_DEPTH,
    MAX_REPORTED_ERRORS,
    MalformedJson,
    parse_json_document,
)
from infra.local.proxy_event import lambda_context, proxy_event
from tests.support.aws import aws_env, tables

__all__ = ["aws_env", "tables"]  # fixtures, found by name

# Well under what Lambda may return (6 MB): an answer never echoes a huge body back.
MAX_ANSWER_BYTES = 20_000


@dataclass(frozen=True)
class Hostile:
    """A request body as API Gateway may hand it over, and what a JSON route answers."""

    name: str
    body: str | bytes | None
    content_type: str | None = "application/json"
    base64: bool = False
    status: int = 400
    # The answer depends on the route's schema: 400 only where the body is a required
    # object (every route today); elsewhere merely not a 5xx.
    schema_dependent: bool = False

    @property
    def code(self) -> str:
        return "unsupported_media_type" if self.status == 415 else "invalid_request"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


HOSTILE: tuple[Hostile, ...] = (
    # -- not UTF-8, not base64 ---------------------------------------------------------
    Hostile("binary, base64 as API Gateway sends it", b64(b"\xff\xfe\x00{\x80"), base64=True),
    Hostile("latin-1 JSON, base64", b64(b'{"customerId": "caf\xe9"}'), base64=True),
    Hostile("truncated UTF-8 sequence, base64", b64(b'{"customerId": "\xe3\x81"}'), base64=True),
    Hostile(
        "raw invalid bytes (surrogate-escaped text)",
        b'{"customerId": "\xff\xfe"}'.decode("utf-8", "surrogateescape"),
    ),
    Hostile("raw invalid bytes (a bytes body, direct invoke)", b'{"customerId": "\xff"}'),
    Hostile("invalid base64", "!!! not base64 ***", base64=True),
    Hostile("base64 with bad padding", "eyJh", base64=True),
    Hostile("non-ASCII text flagged base64", "éé==", base64=True),
    # -- not JSON -----------------------------------------------------------------------
    Hostile("text/plain", '{"customerId": "c1"}', content_type="text/plain", status=415),
    Hostile(
        "form-encoded",
        "customerId=c1",
        content_type="application/x-www-form-urlencoded",
        status=415,
    ),
    Hostile(
        "multipart",
        '--b\r\nContent-Disposition: form-data; name="customerId"\r\n\r\nc1\r\n--b--\r\n',
        content_type="multipart/form-data; boundary=b",
        status=415,
    ),
    Hostile(
        "a JSON-ish type", '{"customerId": "c1"}', content_type="application/jsonx", status=415
    ),
    Hostile(
        "JSON in latin-1",
        '{"customerId": "c1"}',
        content_type="application/json; charset=iso-8859-1",
        status=415,
    ),
    Hostile("malformed JSON", "{not json"),
    Hostile("a byte-order mark", '\ufeff{"customerId": "c1"}'),
    Hostile("JSON then more", '{"customerId": "c1"} {"customerId": "c2"}'),
    # -- JSON Python's parser takes but no client means -------------------------------------
    Hostile("an integer of 5,000 digits", '{"customerId": ' + "9" * 5000 + "}"),
    Hostile("a negative integer of 5,000 digits", "[-" + "9" * 5000 + "]"),
    Hostile("arrays nested 100,000 deep", "[" * 100_000 + "]" * 100_000),
    Hostile("objects nested 20,000 deep", '{"a":' * 20_000 + "1" + "}" * 20_000),
    Hostile(
        "nested just past the limit",
        '{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1),
    ),
    Hostile("NaN", '{"customerId": NaN}'),
    Hostile("Infinity", '{"customerId": Infinity}'),
    Hostile("-Infinity", '{"customerId": -Infinity}'),
    Hostile("a float that overflows", '{"customerId": 1e999}'),
    Hostile("a lone surrogate", '{"customerId": "\\ud800"}'),
    Hostile("a lone surrogate in a key", '{"\\udfff": 1}'),
    Hostile("a duplicate key", '{"customerId": "c1", "customerId": "c2"}'),
    # -- empty, and not an object ---------------------------------------------------------
    Hostile("an empty body", "", schema_dependent=True),
    Hostile("an empty body, text/plain", "", content_type="text/plain", schema_dependent=True),
    Hostile("only whitespace", " \r\n\t "),
    Hostile("only whitespace, base64", b64(b"   "), base64=True),
    Hostile("null", "null", schema_dependent=True),
    Hostile("an array", "[]", schema_dependent=True),
    Hostile("a string", '"customerId"', schema_dependent=True),
    Hostile("a number", "42", schema_dependent=True),
    Hostile("true", "true", schema_dependent=True),
    # -- big --------------------------------------------------------------------------------
    Hostile("a 2 MB string", json.dumps({"customerId": "x" * 2_000_000})),
    Hostile("a 2 MB key", json.dumps({"k" * 2_000_000: 1})),
    Hostile("20,000 unknown fields", json.dumps({f"field{n}": n for n in range(20_000)})),
    # -- accepted type spellings still get their body checked ------------------------------
    Hostile("NaN as Application/JSON; Charset=UTF-8", "[NaN]", "Application/JSON; Charset=UTF-8"),
    Hostile("a lone surrogate without Content-Type", '["\\ud800"]', content_type=None),
)


# -- the stack's routes -------------------------------------------------------------------


@dataclass(frozen=True)
class StackRoute:
    method: str
    resource: str
    handler: Callable[[dict[str, Any], Any], dict[str, Any]]
    operation: dict[str, Any]

    @property
    def takes_body(self) -> bool:
        return "requestBody" in self.operation

    @property
    def takes_json_object(self) -> bool:
        """A required JSON body whose schema is a model (an object)."""
        body = self.operation.get("requestBody", {})
        schema = body.get("content", {}).get("application/json", {}).get("schema", {})
        return bool(body.get("required")) and "$ref" in schema

    @property
    def answers_pages(self) -> bool:
        """A route for people's browsers (the unsubscribe pages): its refusals of what
        it reads itself (a bad token) are HTML pages, not the JSON error body."""
        return any(
            "text/html" in response.get("content", {})
            for response in self.operation["responses"].values()
        )

    @property
    def path(self) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: f"hostile-{m.group(1)}", self.resource)

    def __str__(self) -> str:
        return f"{self.method} {self.resource}"


def stack_routes() -> list[StackRoute]:
    paths = json.loads(build_openapi())["paths"]
    routes = []
    for name in API_ROUTER_MODULES:
        module = importlib.import_module(name)
        for method, resource, _ in routes_of(module.router):
            operation = paths[resource][method.lower()]
            routes.append(StackRoute(method, resource, module.handler, operation))
    return routes


STACK_ROUTES = stack_routes()


@pytest.fixture
def stack(tables: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "hostile")
    monkeypatch.setenv("REBATES_VERSION", "0.0.0-test")
    # The unsubscribe routes verify tokens with the key the stack keeps in a secret.
    secret = boto3.client("secretsmanager").create_secret(
        Name="hostile-unsubscribe-key", SecretString="k" * 64
    )
    monkeypatch.setenv("UNSUBSCRIBE_KEY_SECRET_ARN", secret["ARN"])


def event_for(route: StackRoute, hostile: Hostile | None, key: str) -> dict[str, Any]:
    headers = {IDEMPOTENCY_KEY_HEADER: key}
    if hostile is not None and hostile.content_type is not None:
        headers["Content-Type"] = hostile.content_type
    names = re.findall(r"\{(\w+)\}", route.resource)
    event = proxy_event(
        route.method,
        route.path,
        resource=route.resource,
        path_parameters={name: f"hostile-{name}" for name in names} or None,
        headers=headers,
        api_key="test-key",
    )
    if hostile is not None:
        # Set as is, past proxy_event: it would re-encode bytes and str.
        event["body"] = hostile.body
        event["isBase64Encoded"] = hostile.base64
    return event


def answer(route: StackRoute, event: dict[str, Any]) -> tuple[int, str]:
    status, raw, _ = answer_with_type(route, event)
    return status, raw


def answer_with_type(route: StackRoute, event: dict[str, Any]) -> tuple[int, str, str]:
    response = route.handler(event, lambda_context())
    headers = {name.lower(): value for name, value in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers.setdefault(name.lower(), ", ".join(values))
    content_type = str(headers.get("content-type", ""))
    return response["statusCode"], response["body"], content_type


def shape_problems(status: int, raw: str, *, page: bool = False) -> list[str]:
    problems = []
    if len(raw.encode("utf-8")) > MAX_ANSWER_BYTES:
        problems.append(f"answer of {len(raw)} characters")
    if page:
        if "<html" not in raw:
            problems.append(f"not a page: {raw[:200]}")
    elif status >= 400:
        try:
            body = json.loads(raw)
        except ValueError:
            return [*problems, "answer is not JSON"]
        if set(body) != {"error"} or set(body["error"]) != {"code", "message", "details"}:
            problems.append(f"not the error shape: {raw[:200]}")
    return problems


def test_the_stack_declares_routes_with_and_without_a_body() -> None:
    # Guards the test itself: an empty or body-less list would prove nothing.
    assert any(route.takes_body for route in STACK_ROUTES)
    assert any(route.method == "GET" for route in STACK_ROUTES)
    assert {"POST /v1/offers/{offerId}/codes", "POST /v1/redemptions"} <= {
        str(route) for route in STACK_ROUTES
    }


@pytest.mark.parametrize("route", STACK_ROUTES, ids=str)
def test_every_hostile_body_is_a_4xx_in_the_error_shape(stack: None, route: StackRoute) -> None:
    baseline, _ = answer(route, event_for(route, None, "baseline"))
    records_before = len(list(IdempotencyRecord.scan()))
    failures = []
    for n, hostile in enumerate(HOSTILE):
        status, raw, content_type = answer_with_type(
            route, event_for(route, hostile, f"hostile-{n}")
        )
        page = route.answers_pages and content_type.startswith("text/html")
        problems = shape_problems(status, raw, page=page)
        if status >= 500:
            problems.append(f"status {status}")
        elif not route.takes_body:
            # Ignored: answered exactly as without a body.
            if status != baseline:
                problems.append(f"status {status}, without a body {baseline}")
        elif hostile.schema_dependent and not route.takes_json_object:
            pass
        elif route.operation["requestBody"]["content"].keys() != {"application/json"}:
            if not 400 <= status < 500:
                problems.append(f"status {status}")
        else:
            code = json.loads(raw).get("error", {}).get("code") if status >= 400 else None
            if (status, code) != (hostile.status, hostile.code):
                problems.append(f"{status} {code}, expected {hostile.status} {hostile.code}")
        if problems:
            failures.append(f"{hostile.name}: {'; '.join(problems)}")
    assert failures == []
    if route.takes_body:
        # Refused before the Idempotency-Key middleware: no record pins a refused body.
        assert len(list(IdempotencyRecord.scan())) == records_before


def test_the_document_declares_the_answers_to_hostile_requests() -> None:
    for route in STACK_ROUTES:
        responses = route.operation["responses"]
        if route.takes_body:
            assert {"400", "415"} <= responses.keys(), route
            assert responses["415"]["description"].startswith("unsupported_media_type")
        public = route.operation.get("security") == []
        assert ("403" in responses) is not public, route
        for status, response in responses.items():
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}


# -- content types on a route of our own ----------------------------------------------------


class Thing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


router = Router()


@router.post("/v1/things")
def create_thing(body: Thing) -> dict[str, Any]:
    return {"name": body.name}


@router.post("/v1/forms")
def submit_form(name: Annotated[str, Form()]) -> dict[str, Any]:
    return {"name": name}


@router.post("/v1/csv")
def upload_csv(body: Annotated[str, Body(media_type="text/csv")]) -> dict[str, Any]:
    return {"csv": body}


@router.get("/v1/raw")
def read_raw() -> dict[str, Any]:
    # A route reading the body itself, past validation.
    return {"body": router.current_event.json_body}


@router.post("/v1/cancellations/<orderId>", middlewares=[idempotent()])
def cancel(orderId: str) -> tuple[dict[str, Any], int]:
    return {"orderId": orderId, "cancelled": True}, 200


app = make_resolver(router)


def call(
    path: str,
    body: str | bytes | None,
    content_type: str | None = None,
    *,
    method: str = "POST",
    base64_encoded: bool = False,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    all_headers = dict(headers or {})
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    event = proxy_event(method, path, headers=all_headers)
    event["body"], event["isBase64Encoded"] = body, base64_encoded
    response = app.resolve(event, lambda_context())
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        'application/json;charset="UTF-8"',
        "application/json; charset=utf8",
        "application/json; profile=thing",
        " application/json ",
    ],
)
def test_json_routes_take_json_in_any_spelling_or_without_a_content_type(
    content_type: str | None,
) -> None:
    assert call("/v1/things", '{"name": "n"}', content_type) == (200, {"name": "n"})


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/json",
        "application/jsonx",
        "application/json-patch+json",
        "application/json; charset=latin-1",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "*/*",
        ";",
    ],
)
def test_json_routes_refuse_other_content_types_with_415(content_type: str) -> None:
    status, body = call("/v1/things", '{"name": "n"}', content_type)
    assert status == 415
    assert body["error"]["code"] == "unsupported_media_type"
    assert body["error"]["details"] == {
        "contentType": content_type,
        "accepted": ["application/json"],
    }


def test_a_form_route_takes_its_own_type_only() -> None:
    form = "application/x-www-form-urlencoded"
    assert call("/v1/forms", "name=n", form) == (200, {"name": "n"})
    assert call("/v1/forms", "name=n", form.upper() + "; charset=UTF-8")[0] == 200
    for content_type in ("application/json", None, "text/plain"):
        status, body = call("/v1/forms", '{"name": "n"}', content_type)
        assert (status, body["error"]["code"]) == (415, "unsupported_media_type")
    status, body = call("/v1/forms", b64(b"name=\xff"), form, base64_encoded=True)
    assert (status, body["error"]["code"]) == (400, "invalid_request")


def test_a_type_powertools_cannot_parse_is_415_in_the_error_shape() -> None:
    status, body = call("/v1/csv", "a,b\n1,2\n", "text/csv")
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")
    assert set(body["error"]) == {"code", "message", "details"}


def test_code_reading_the_body_itself_gets_the_same_checks() -> None:
    assert call("/v1/raw", '{"a": 1}', method="GET") == (200, {"body": {"a": 1}})
    for body in ("[NaN]", '{"a": 1, "a": 2}', "[" * 5000 + "]" * 5000):
        status, answer = call("/v1/raw", body, method="GET")
        assert (status, answer["error"]["code"]) == (400, "invalid_request")


def test_a_long_list_of_problems_is_cut_short() -> None:
    status, body = call("/v1/things", json.dumps({f"f{n}": n for n in range(1000)}))
    assert status == 400
    details = body["error"]["details"]
    assert len(details["errors"]) == MAX_REPORTED_ERRORS
    # Every unknown field, plus the missing name.
    assert details["omitted"] == 1001 - MAX_REPORTED_ERRORS
    assert body["error"]["message"].endswith(f"(and {1001 - MAX_REPORTED_ERRORS} more)")


def test_a_huge_key_is_not_echoed_back() -> None:
    status, body = call("/v1/things", json.dumps({"name": "n", "k" * 100_000: 1}))
    assert status == 400
    (problem,) = body["error"]["details"]["errors"]
    assert problem["path"] == "body." + "k" * 63 + "…"


# -- Idempotency-Key and bodies no route reads -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "base64_encoded"),
    [
        (b64(b"\xff\xfe"), True),
        ("!!!", True),
        ('{"a": "\udcff"}', False),
        (b"\xff", False),
        ('["\\ud800"]', False),
        ("[NaN]", False),
        ("[" * 100_000 + "]" * 100_000, False),
        ("[" + "9" * 5000 + "]", False),
        ("not json at all", False),
    ],
)
def test_a_body_the_route_ignores_is_hashed_as_received(
    tables: list[str], body: str | bytes, base64_encoded: bool
) -> None:
    """Such a body is part of the request like any other: the same one replays, another
    one with the same key is 409 idempotency_key_reused."""
    headers = {IDEMPOTENCY_KEY_HEADER: "k-1"}
    first = call("/v1/cancellations/o1", body, base64_encoded=base64_encoded, headers=headers)
    again = call("/v1/cancellations/o1", body, base64_encoded=base64_encoded, headers=headers)
    other = call("/v1/cancellations/o1", '{"other": 1}', headers=headers)
    assert first == again == (200, {"orderId": "o1", "cancelled": True})
    assert other[0] == 409
    assert other[1]["error"]["code"] == "idempotency_key_reused"


def test_a_refused_body_leaves_the_key_free_for_the_corrected_request(tables: list[str]) -> None:
    event_router = Router()

    @event_router.post("/v1/things", middlewares=[idempotent()])
    def create(body: Thing) -> tuple[dict[str, Any], int]:
        return {"name": body.name}, 201

    keyed = make_resolver(event_router)

    def post(body: str, content_type: str = "application/json") -> int:
        event = proxy_event(
            "POST",
            "/v1/things",
            headers={IDEMPOTENCY_KEY_HEADER: "k-1", "Content-Type": content_type},
        )
        event["body"] = body
        status: int = keyed.resolve(event, lambda_context())["statusCode"]
        return status

    assert post('{"name": NaN}') == 400
    assert post('{"name": "n"}', "text/plain") == 415
    assert list(IdempotencyRecord.scan()) == []
    assert post('{"name": "n"}') == 201


def test_the_fingerprint_of_a_json_body_is_unchanged() -> None:
    """Records stored before hostile bodies were handled must still match their retries."""
    body = {"code": "TRAIL-1", "customerId": "cüst-1", "cart": {"items": [1, 2]}}
    event = APIGatewayProxyEvent(
        proxy_event("POST", "/v1/redemptions", body=body, query={"a": ["2", "1"]})
    )
    request = {
        "method": "POST",
        "path": "/v1/redemptions",
        "query": [("a", ["1", "2"])],
        "body": {"json": body},
    }
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert fingerprint(event) == hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda hostile: hostile.name)
def test_the_fingerprint_never_raises_on_powertools_own_event(hostile: Hostile) -> None:
    # Powertools' event decodes as the standard library does, raising where ours refuses.
    event = proxy_event("POST", "/v1/redemptions")
    event["body"], event["isBase64Encoded"] = hostile.body, hostile.base64
    assert re.fullmatch("[0-9a-f]{64}", fingerprint(APIGatewayProxyEvent(event)))


# -- the strict JSON reader ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[NaN]", "NaN is not a JSON number"),
        ("[1e400]", "too large"),
        ("[" + "1" * 4301 + "]", "more than 4300 digits"),
        ('{"a": 1, "b": 2, "a": 3}', "'a' appears twice"),
        ('["\\udc00"]', "lone UTF-16 surrogate"),
        ("[" * 33 + "]" * 33, f"deeper than {MAX_JSON_DEPTH}"),
        ("[" * 10_000 + "]" * 10_000, f"deeper than {MAX_JSON_DEPTH}"),
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
    ],
)
def test_strict_json_refuses(text: str, message: str) -> None:
    with pytest.raises(MalformedJson, match=re.escape(message)):
        parse_json_document(text)


def test_strict_json_takes_ordinary_documents() -> None:
    text = '{"a": [1, -2.5, "ü", "\\ud83d\\ude00", null, true], "b": {"c": ' + "9" * 4300 + "}}"
    assert parse_json_document(text) == json.loads(text)
    assert parse_json_document("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
