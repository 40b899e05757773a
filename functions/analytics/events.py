"""Storefront conversion events: each validated on its own, bad ones refused by index.

``POST /v1/events`` takes up to `MAX_EVENTS` events; one bad event must not cost the
good ones, so this is not a pydantic model of the whole body (whose first error refuses
all): `validate_batch` checks each event and returns the accepted `TrackedEvent` and,
for each refused one, its index and a reason code a storefront can act on:

==========================  ==========================================================
reason                      the event
==========================  ==========================================================
``invalid_event``           is not a JSON object
``missing_event_id``        has no ``eventId``, or an empty one
``invalid_event_id``        has an ``eventId`` that is no 1-128 printable characters
``unknown_type``            has a ``type`` not among `STOREFRONT_TYPES`
``invalid_occurred_at``     has an ``occurredAt`` that is no RFC 3339 date-time
``occurred_at_without_offset``  has an ``occurredAt`` without ``Z`` or ``+hh:mm``
``occurred_at_in_future``   is more than `MAX_CLOCK_SKEW` ahead of the server's clock
``missing_session_id``      ... and likewise ``missing_anonymous_id``
``invalid_<field>``         ``sessionId``, ``anonymousId``, ``customerId``,
                            ``campaignId``, ``offerId``, ``orderId``, ``utm``: wrong
                            type or length
``float_money``             has a ``value.amount`` that is a float (money is integer
                            minor units: ``{"amount": 1500, "currency": "JPY"}``)
``invalid_value``           has a ``value`` that is no money object
``unknown_field``           has a key this API does not define (a misspelt
                            ``customerID`` would otherwise be silently lost)
==========================  ==========================================================

Hand-written rather than a pydantic model per event: the bench target is 20 µs of
validation and serialisation per event (50,000 events a second per core), and the checks
are a dozen dictionary reads.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from functions.analytics.records import STOREFRONT, STOREFRONT_TYPES, TrackedEvent
from functions.core.money import CURRENCY_EXPONENTS, MAX_AMOUNT

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_CLOCK_SKEW",
    "MAX_EVENTS",
    "Batch",
    "Refusal",
    "validate_batch",
    "validate_event",
]

MAX_EVENTS: Final = 500  # Kinesis PutRecords takes 500 records: one call per batch
MAX_BODY_BYTES: Final = 1024 * 1024
MAX_CLOCK_SKEW: Final = timedelta(minutes=5)
MAX_ID_LENGTH: Final = 128
MAX_UTM_LENGTH: Final = 256

_FIELDS: Final = frozenset(
    {
        "eventId",
        "type",
        "occurredAt",
        "sessionId",
        "anonymousId",
        "customerId",
        "campaignId",
        "offerId",
        "orderId",
        "value",
        "utm",
    }
)
_UTM_KEYS: Final = frozenset({"source", "medium", "campaign"})
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)
# Control characters and line separators: they would break a log line, a header or an
# NDJSON archive line as a newline does (the same rule as functions.core.fields).
_ID: Final = re.compile(rf"[^\u0000-\u001F\u007F-\u009F\u2028\u2029]{{1,{MAX_ID_LENGTH}}}")
_UTM: Final = re.compile(rf"[^\u0000-\u001F\u007F-\u009F\u2028\u2029]{{1,{MAX_UTM_LENGTH}}}")
_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))?",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class Refusal:
    index: int
    reason: str
    message: str

    def to_view(self) -> dict[str, Any]:
        return {"index": self.index, "reason": self.reason, "message": self.message}


@dataclass(frozen=True, slots=True)
class Batch:
    accepted: list[tuple[int, TrackedEvent]]
    refused: list[Refusal]


class _Refused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def validate_batch(events: Sequence[Any], *, now: datetime) -> Batch:
    """Each of `events` checked on its own; accepted ones keep their index."""
    received_ms = _epoch_ms(now)
    latest_ms = received_ms + int(MAX_CLOCK_SKEW.total_seconds() * 1000)
    accepted: list[tuple[int, TrackedEvent]] = []
    refused: list[Refusal] = []
    for index, raw in enumerate(events):
        try:
            accepted.append((index, _event(raw, received_ms, latest_ms)))
        except _Refused as refusal:
            refused.append(Refusal(index, refusal.reason, refusal.message))
    return Batch(accepted, refused)


def validate_event(raw: Any, *, now: datetime) -> TrackedEvent:
    """One event, or `ValueError` with the reason code as its first argument."""
    batch = validate_batch([raw], now=now)
    if batch.refused:
        raise ValueError(batch.refused[0].reason, batch.refused[0].message)
    return batch.accepted[0][1]


def _event(raw: Any, received_ms: int, latest_ms: int) -> TrackedEvent:
    if type(raw) is not dict:
        raise _Refused("invalid_event", "an event is a JSON object")
    unknown = raw.keys() - _FIELDS
    if unknown:
        name = sorted(unknown)[0][:MAX_ID_LENGTH]
        raise _Refused("unknown_field", f"{name!r} is not a field of an event")
    event_id = raw.get("eventId")
    if event_id is None or event_id == "":
        raise _Refused("missing_event_id", "eventId is required")
    _check_id("event_id", "eventId", event_id)
    kind = raw.get("type")
    if kind not in STOREFRONT_TYPES:
        raise _Refused("unknown_type", f"type must be one of {', '.join(sorted(STOREFRONT_TYPES))}")
    occurred_ms = _occurred_ms(raw.get("occurredAt"))
    if occurred_ms > latest_ms:
        raise _Refused(
            "occurred_at_in_future",
            "occurredAt is more than 5 minutes ahead of the server's clock",
        )
    session_id = raw.get("sessionId")
    if session_id is None:
        raise _Refused("missing_session_id", "sessionId is required")
    _check_id("session_id", "sessionId", session_id)
    anonymous_id = raw.get("anonymousId")
    if anonymous_id is None:
        raise _Refused("missing_anonymous_id", "anonymousId is required")
    _check_id("anonymous_id", "anonymousId", anonymous_id)
    optional = {}
    for field, name in (
        ("customer_id", "customerId"),
        ("campaign_id", "campaignId"),
        ("offer_id", "offerId"),
        ("order_id", "orderId"),
    ):
        value = raw.get(name)
        if value is not None:
            _check_id(field, name, value)
        optional[field] = value
    amount, currency = _money(raw.get("value"))
    utm_source, utm_medium, utm_campaign = _utm(raw.get("utm"))
    return TrackedEvent(
        event_id=event_id,
        type=kind,
        source=STOREFRONT,
        occurred_ms=occurred_ms,
        received_ms=received_ms,
        session_id=session_id,
        anonymous_id=anonymous_id,
        value=amount,
        currency=currency,
        utm_source=utm_source,
        utm_medium=utm_medium,
        utm_campaign=utm_campaign,
        **optional,
    )


def _check_id(field: str, name: str, value: Any) -> None:
    # One C-level match for type, length and printability. Lone surrogates never get
    # here: the API's JSON reading (functions.core.validation) refuses the whole body.
    if type(value) is not str or _ID.fullmatch(value) is None:
        raise _Refused(f"invalid_{field}", f"{name} must be 1-{MAX_ID_LENGTH} printable characters")


def _occurred_ms(value: Any) -> int:
    match = _RFC3339.fullmatch(value) if type(value) is str else None
    if match is None:
        raise _Refused(
            "invalid_occurred_at",
            "occurredAt must be an RFC 3339 date-time, e.g. 2027-03-01T10:00:00+09:00",
        )
    year, month, day, hour, minute, second, fraction, utc, sign, off_h, off_m = match.groups()
    if utc:
        offset_minutes = 0
    elif sign:
        offset_minutes = int(off_h) * 60 + int(off_m)
        if int(off_m) >= 60 or offset_minutes >= 24 * 60:
            raise _Refused("invalid_occurred_at", "occurredAt has an offset out of range")
        if sign == "-":
            offset_minutes = -offset_minutes
    else:
        raise _Refused(
            "occurred_at_without_offset",
            "occurredAt needs an offset (Z or +hh:mm): a local time is no instant",
        )
    try:
        # As if UTC; the offset is taken off below, with no tzinfo object per event.
        wall = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
    except (ValueError, OverflowError):
        raise _Refused("invalid_occurred_at", "occurredAt is no such date or time") from None
    milliseconds = int(fraction[:3].ljust(3, "0")) if fraction else 0
    return (wall - _EPOCH) // _MILLISECOND + milliseconds - offset_minutes * 60_000


def _money(value: Any) -> tuple[int | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict) or value.keys() != {"amount", "currency"}:
        raise _Refused("invalid_value", 'value is {"amount": integer minor units, "currency"}')
    amount, currency = value["amount"], value["currency"]
    if isinstance(amount, float):
        raise _Refused(
            "float_money",
            "value.amount must be an integer in the currency's minor unit, not a float",
        )
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= MAX_AMOUNT:
        raise _Refused("invalid_value", "value.amount must be a non-negative integer")
    if currency not in CURRENCY_EXPONENTS:
        raise _Refused("invalid_value", "value.currency must be an ISO 4217 code, e.g. JPY")
    return amount, currency


def _utm(value: Any) -> tuple[str | None, str | None, str | None]:
    if value is None:
        return None, None, None
    if type(value) is not dict or not value.keys() <= _UTM_KEYS:
        raise _Refused("invalid_utm", "utm is an object of source, medium and campaign")
    source, medium, campaign = value.get("source"), value.get("medium"), value.get("campaign")
    for name, part in (("source", source), ("medium", medium), ("campaign", campaign)):
        if part is not None and (type(part) is not str or _UTM.fullmatch(part) is None):
            raise _Refused("invalid_utm", f"utm.{name} must be 1-{MAX_UTM_LENGTH} characters")
    return source, medium, campaign


def _epoch_ms(instant: datetime) -> int:
    # Integer arithmetic: a float timestamp can round 999 ms up into the next second.
    return (instant - _EPOCH) // _MILLISECOND
