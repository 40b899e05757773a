"""``Idempotency-Key`` for the state-changing POST routes, on the IDEMPOTENCY table.

Use it as a route middleware::

    @router.post("/v1/redemptions", middlewares=[idempotent()])
    def redeem(body: RedemptionRequest) -> ...: ...

Semantics (the contract's "HTTP API" section, and the IETF idempotency-key draft):

- No header: the route simply runs (``idempotent(required=True)``: 400
  ``idempotency_key_required``). A key is 1-255 printable ASCII characters without
  surrounding spaces, else 400 ``invalid_idempotency_key``.
- The record is scoped to the caller's API key, the route and the key:
  ``api#<client>#<METHOD> <resource>#<key>``, so two storefronts choosing the same key,
  or one key reused on another route, never meet. ``<client>`` is API Gateway's
  ``apiKeyId`` (or a digest of the key value where only that is known, as locally).
- The record keeps a SHA-256 of the canonical request: method, actual path (so path ids
  count), query and the JSON body with sorted keys (so key order and whitespace do not).
  The same key with the same request replays the first response (status, headers and
  body, byte for byte, plus ``Idempotent-Replayed: true``) without running the route; with
  a different request it is 409 ``idempotency_key_reused``.
- While the first request runs, a duplicate gets 409 ``idempotency_key_in_use`` with
  ``Retry-After: 1`` (the draft's answer; 429 would tell the client it is being throttled,
  which it is not). Two requests cannot both run: the record is claimed by a conditional
  put, which DynamoDB applies to one of them only.
- Outcomes stored: every 2xx-4xx response, including a refusal raised as a
  `RebatesError` (a retried refused redemption gets the same refusal), except 429 (it
  means "try again later") and the route's provisional refusals: the error codes it names
  in ``idempotent(provisional=...)``, refusals the same request may see lifted later (a
  limit a rollback frees, a campaign uploaded again), which a replay would keep refusing
  for the record's day. Not stored: those, a 5xx or an exception. The record is deleted,
  so the client's retry runs the route again (a refusal changed nothing, so running it
  again is harmless). `Idempotency.replayable` is where this is decided.
- Records live 24 hours (TTL ``expiration``; DynamoDB deletes lazily, so an expired
  record is treated as absent). A claim is also only held for the invocation's remaining
  time: if the function dies mid-request (timeout, crash) the key is free again once that
  time has passed, rather than blocked for a day.

Why not Powertools' idempotency utility (``@idempotent_function``): it fits a function
returning JSON data, not these semantics. It deletes its record whenever the function
raises, so a refusal raised as a `RebatesError` (a 409 limit, a 422) would run again on
retry instead of replaying, while it stores whatever is returned, a 503 or 429 included;
it stores a return value, not an HTTP response with status and headers, so every route
would need serialisation glue; scoping by client, route and header would be JMESPath over
the raw event; and its DynamoDB layer imports boto3, which the API functions otherwise do
without at cold start (PynamoDB needs only botocore). This is one conditional put, a get
on a conflict, and one put or delete at the end, through the same PynamoDB binding and
table layout (``id``, ``expiration``) as the rest of the code, adding about 15 ms to an
import of `functions.core.api` and `functions.core.models`. The table's other records
cannot meet these: their ids start otherwise (``notification#...``; Powertools' own,
should a queue consumer use it, ``<function>#<hash>``).

Placement: as a route middleware it runs after request validation (a malformed body is a
400 that never touches the table: nothing is stored, so the corrected request may reuse
the key; likewise a 415 or a body that does not decode, which `functions.core.api` refuses
in the same step) and sees the route's response after response serialisation, or the
`RebatesError` the route raised.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import partial
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import BaseMiddlewareHandler, NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.shared.json_encoder import Encoder
from pynamodb.attributes import TTLAttribute, UnicodeAttribute
from pynamodb.exceptions import PutError

from functions.core.api import error_response
from functions.core.clock import utc_now
from functions.core.errors import RebatesError
from functions.core.models import IntegerAttribute, TableModel, key_part, optional, table_meta
from functions.core.observability import logger
from functions.core.tables import IDEMPOTENCY

if TYPE_CHECKING:
    # Type only: the data_classes package imports every event class (and jmespath).
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

__all__ = [
    "IDEMPOTENCY_KEY_HEADER",
    "RECORD_TTL",
    "REPLAYED_HEADER",
    "Idempotency",
    "IdempotencyRecord",
    "idempotent",
    "request_fingerprint",
]

IDEMPOTENCY_KEY_HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
RECORD_TTL: Final = timedelta(hours=24)
IN_PROGRESS: Final = "in_progress"
COMPLETED: Final = "completed"

# Printable ASCII, 1-255 characters, no space at either end (proxies trim those, so a key
# relying on them could not be matched on retry).
_KEY: Final = re.compile(r"[!-~](?:[ -~]{0,253}[!-~])?", re.ASCII)
# Used when there is no Lambda context to ask for the remaining time (local tools).
_DEFAULT_CLAIM: Final = timedelta(seconds=30)
# The resolver's own default serializer (make_resolver sets no other): the first answer is
# serialised here, so that it and every replay are the same bytes.
_serialize = partial(json.dumps, separators=(",", ":"), cls=Encoder)


class IdempotencyRecord(TableModel):
    """One ``Idempotency-Key`` use: claimed while the route runs, then its response.

    Access patterns:

    - get / claim by id: pk ``id`` = ``api#<client>#<METHOD> <resource>#<key>``; the claim
      is a put conditional on no live record (absent, expired, or an abandoned claim)
    - complete / release: put or delete conditional on the ``token`` of the claim, so a
      request whose claim was taken over cannot overwrite the new owner's record
    """

    Meta = table_meta(IDEMPOTENCY)

    record_id = UnicodeAttribute(hash_key=True, attr_name="id")
    status = UnicodeAttribute()  # in_progress | completed
    fingerprint = UnicodeAttribute()
    token = UnicodeAttribute()
    expiration = TTLAttribute()
    # Epoch milliseconds until which an in-progress claim is held (the invocation's end).
    claimed_until = optional(IntegerAttribute(attr_name="claimedUntil"))
    # The stored response as JSON: {"statusCode", "headers", "body", "base64"}.
    response = optional(UnicodeAttribute())


def idempotent(
    *,
    required: bool = False,
    ttl: timedelta = RECORD_TTL,
    provisional: Iterable[str] = (),
) -> Idempotency:
    """The route middleware; `required` refuses requests without the header;
    `provisional` names the error codes answered but never replayed."""
    return Idempotency(required=required, ttl=ttl, provisional=provisional)


class Idempotency(BaseMiddlewareHandler[APIGatewayRestResolver]):
    """See the module docstring; build it with `idempotent`."""

    def __init__(
        self,
        *,
        required: bool = False,
        ttl: timedelta = RECORD_TTL,
        provisional: Iterable[str] = (),
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError("the record TTL must be positive")
        self.required = required
        self.ttl = ttl
        self.provisional = frozenset(provisional)

    def handler(
        self, app: APIGatewayRestResolver, next_middleware: NextMiddleware
    ) -> Response[Any]:
        event = app.current_event
        key = event.headers.get(IDEMPOTENCY_KEY_HEADER)
        if key is None:
            if self.required:
                return error_response(
                    HTTPStatus.BAD_REQUEST,
                    "idempotency_key_required",
                    f"This request needs an {IDEMPOTENCY_KEY_HEADER} header.",
                    {"header": IDEMPOTENCY_KEY_HEADER},
                )
            return next_middleware(app)
        if not _KEY.fullmatch(key):
            return error_response(
                HTTPStatus.BAD_REQUEST,
                "invalid_idempotency_key",
                f"{IDEMPOTENCY_KEY_HEADER} must be 1-255 printable ASCII characters.",
                {"header": IDEMPOTENCY_KEY_HEADER},
            )

        record = IdempotencyRecord(
            record_id=_record_id(event, key),
            status=IN_PROGRESS,
            fingerprint=request_fingerprint(event),
            token=secrets.token_hex(16),
        )
        answer = self._claim(record, _claim_time(app))
        if answer is not None:
            return answer
        try:
            response = next_middleware(app)
        except RebatesError as error:
            # Rendered here rather than by the resolver's handler, so it can be stored.
            response = error_response(error.status, error.code, error.message, error.details)
        except BaseException:
            _release(record)
            raise
        return self._finish(record, response)

    def _claim(self, record: IdempotencyRecord, hold: timedelta) -> Response[Any] | None:
        """Claim `record`'s key; None when claimed, else the answer for a duplicate."""
        # A record deleted between our failed put and our get is claimable again: retry
        # once more, which is enough unless the key is being hammered.
        for _ in range(3):
            now = utc_now()
            record.expiration = now + self.ttl
            record.claimed_until = _epoch_ms(now + hold)
            claimable = (
                IdempotencyRecord.record_id.does_not_exist()
                | (IdempotencyRecord.expiration < now)
                | (
                    (IdempotencyRecord.status == IN_PROGRESS)
                    & (IdempotencyRecord.claimed_until < _epoch_ms(now))
                )
            )
            try:
                record.save(condition=claimable)
            except PutError as error:
                if error.cause_response_code != "ConditionalCheckFailedException":
                    raise
            else:
                return None
            existing = IdempotencyRecord.get_or_none(record.record_id)
            if existing is not None:
                return _answer_duplicate(existing, record.fingerprint)
        return _in_use()

    def replayable(self, status: int, error_code: str | None) -> bool:
        """Whether an answer is kept for the key's retries, by its status and the error
        code of its body (None for a success or a body without one)."""
        if status >= 500 or status == HTTPStatus.TOO_MANY_REQUESTS:
            return False
        return error_code not in self.provisional

    def _finish(self, record: IdempotencyRecord, response: Response[Any]) -> Response[Any]:
        stored = _storable(response)
        if not self.replayable(response.status_code, _error_code(stored)):
            _release(record)
            return response
        if not stored["base64"]:
            # The first answer goes out with the very body text that replays will carry.
            response.body = stored["body"]
        record.status = COMPLETED
        record.claimed_until = None
        record.response = json.dumps(stored)
        try:
            record.save(condition=IdempotencyRecord.token == record.token)
        except PutError:
            # The route has run; failing the request now would invite a retry that runs
            # it again. The claim lapses at the invocation's end, after which a retry does
            # run again: the routes' own uniqueness guards are the last line.
            logger.exception("Could not store the idempotent response", extra=_log(record))
        return response


def request_fingerprint(event: APIGatewayProxyEvent) -> str:
    """SHA-256 of the request's method, path, query and canonical body.

    Never raises for a body: on a route that declares one, the resolver has refused a
    malformed body before this runs; a route without one ignores its body, which may then
    be anything, and is hashed as received.
    """
    query = event.multi_value_query_string_parameters or {}
    request = {
        "method": event.http_method,
        "path": event.path,
        "query": sorted((name, sorted(values)) for name, values in query.items()),
        "body": _canonical_body(event),
    }
    try:
        text = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, RecursionError):
        request["body"] = _received_body(event)
        text = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # surrogatepass: a lone surrogate in a body no route reads has no UTF-8 form; for
    # every other string the bytes (and so the fingerprints already stored) are the same.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _canonical_body(event: APIGatewayProxyEvent) -> Any:
    """The body as JSON (so key order and spacing do not count), else as text, else as
    received (`_received_body`) when it is not even text."""
    if not event.get("body"):
        return event.get("body")
    try:
        body = event.decoded_body
    except (ValueError, RequestValidationError):
        # Powertools' own event raises ValueErrors (bad base64, not UTF-8); the resolver's
        # raises the 400 it would answer.
        return _received_body(event)
    if not isinstance(body, str):
        # Powertools' own event hands a bytes body (a direct invocation's) through.
        return _received_body(event)
    if not body:
        return body
    try:
        return {"json": json.loads(body)}
    except (ValueError, RecursionError):
        return {"text": body}


def _received_body(event: APIGatewayProxyEvent) -> dict[str, Any]:
    body: str | bytes = event.get("body") or ""
    if isinstance(body, bytes | bytearray):
        return {"received": base64.b64encode(body).decode("ascii"), "base64": True}
    return {"received": body, "base64": event.is_base64_encoded}


def _record_id(event: APIGatewayProxyEvent, key: str) -> str:
    identity = event.request_context.identity
    if identity.api_key_id:
        client = key_part(identity.api_key_id)
    elif identity.api_key:
        # Never the key value itself in a table: a digest identifies the client as well.
        client = "key-" + hashlib.sha256(identity.api_key.encode("utf-8")).hexdigest()[:32]
    else:
        client = "-"
    # The key goes last, so the ``#`` it may contain cannot shift the other parts.
    return f"api#{client}#{event.http_method} {event.resource}#{key}"


def _claim_time(app: APIGatewayRestResolver) -> timedelta:
    """How long the claim is held: the invocation cannot outlive its remaining time."""
    context = getattr(app, "lambda_context", None)
    if context is None:
        return _DEFAULT_CLAIM
    return timedelta(milliseconds=context.get_remaining_time_in_millis() + 1_000)


def _answer_duplicate(existing: IdempotencyRecord, fingerprint: str) -> Response[Any]:
    if existing.fingerprint != fingerprint:
        return error_response(
            HTTPStatus.CONFLICT,
            "idempotency_key_reused",
            f"This {IDEMPOTENCY_KEY_HEADER} was already used with a different request.",
            {"header": IDEMPOTENCY_KEY_HEADER},
        )
    if existing.status == COMPLETED and existing.response is not None:
        replay = _response(json.loads(existing.response))
        replay.headers[REPLAYED_HEADER] = "true"
        return replay
    return _in_use()


def _in_use() -> Response[Any]:
    response = error_response(
        HTTPStatus.CONFLICT,
        "idempotency_key_in_use",
        f"A request with this {IDEMPOTENCY_KEY_HEADER} is still being processed; retry shortly.",
        {"header": IDEMPOTENCY_KEY_HEADER},
    )
    response.headers["Retry-After"] = "1"
    return response


def _storable(response: Response[Any]) -> dict[str, Any]:
    """The response as JSON-safe data: the body serialised as the resolver would.

    Cookies are not kept (no API route sets any); status, headers and body are.
    """
    body = response.body
    is_base64 = isinstance(body, bytes)
    if isinstance(body, bytes):
        text: str | None = base64.b64encode(body).decode("ascii")
    elif body is None or isinstance(body, str):
        text = body
    else:
        text = _serialize(body)
    return {
        "statusCode": response.status_code,
        "headers": dict(response.headers),
        "body": text,
        "base64": is_base64,
    }


def _error_code(stored: Mapping[str, Any]) -> str | None:
    """The contract's ``error.code`` of a stored 4xx or 5xx answer, if it has one."""
    if stored["statusCode"] < 400 or stored["base64"] or not stored["body"]:
        return None
    try:
        body = json.loads(stored["body"])
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def _response(stored: Mapping[str, Any]) -> Response[Any]:
    body: str | bytes | None = stored["body"]
    if stored["base64"] and isinstance(body, str):
        body = base64.b64decode(body)
    return Response(status_code=stored["statusCode"], body=body, headers=stored["headers"])


def _release(record: IdempotencyRecord) -> None:
    """Delete our claim so the client's retry runs the route again."""
    try:
        record.delete(condition=IdempotencyRecord.token == record.token)
    except Exception:
        # Left in place, the claim lapses at the end of the invocation anyway.
        logger.exception("Could not release an idempotency claim", extra=_log(record))


def _epoch_ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def _log(record: IdempotencyRecord) -> dict[str, str]:
    return {"idempotency_record": record.record_id}
