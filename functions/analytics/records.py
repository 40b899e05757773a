"""The one shape every tracked event takes on the stream and in the archive.

A storefront event (`functions.analytics.events`) and a domain event
(`functions.analytics.domain`) both become a `TrackedEvent`: one flat record, so the
stream consumer counts both with the same rules and the archive holds both in one table.

On the Kinesis stream a record is `to_stream` JSON, customer id in clear: the stream is
encrypted, kept a day, and read only by the consumer, which needs the id to recognise a
returning customer. In the archive (`to_archive_line`) the id is replaced by
`customer_key`, a keyed hash (`pseudonym`), so the SQL sees who is the same customer and
never who the customer is. The archive's columns are documented in `docs/metrics.md`;
their names are snake_case because Athena (Glue) folds column names to lower case.

Instants in the archive are UTC text ``YYYY-MM-DD HH:MM:SS.ffffff``: without ``T`` or a
zone it is what both DuckDB and Trino CAST to TIMESTAMP, and ``occurred_ms`` carries the
same instant as an integer for window arithmetic both engines do alike.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "ARCHIVE_COLUMNS",
    "DOMAIN_TYPES",
    "STOREFRONT",
    "STOREFRONT_TYPES",
    "BadStreamRecord",
    "TrackedEvent",
    "archive_instant",
    "pseudonym",
]

STOREFRONT: Final = "storefront"
# DESIGN "Conversion tracking and KPIs": what a storefront may send.
STOREFRONT_TYPES: Final = frozenset(
    {
        "page_view",
        "offer_view",
        "code_issued",
        "add_to_cart",
        "checkout",
        "purchase",
        "redemption",
        "claim_submitted",
        "signup",
    }
)
# What only the system itself records, from its domain events.
DOMAIN_TYPES: Final = frozenset(
    {
        "code_issued",
        "redemption",
        "redemption_rolled_back",
        "purchase_recorded",
        "claim_submitted",
        "claim_approved",
        "claim_rejected",
        "cashback_credited",
        "cashback_reversed",
    }
)

ARCHIVE_COLUMNS: Final = (
    "event_id",
    "type",
    "source",
    "occurred_at",
    "occurred_ms",
    "received_at",
    "session_id",
    "anonymous_id",
    "customer_key",
    "campaign_id",
    "offer_id",
    "order_id",
    "value_amount",
    "value_currency",
    "utm_source",
    "utm_medium",
    "utm_campaign",
)


class BadStreamRecord(ValueError):
    """A stream record that is no `TrackedEvent`: no retry mends it."""


@dataclass(slots=True)
class TrackedEvent:
    """One event, storefront or domain. ``occurred_ms`` and ``received_ms`` are UTC
    epoch milliseconds; ``value`` is minor units of ``currency`` (both or neither).

    Not frozen, though nothing changes one once made: a frozen dataclass sets each of
    its 19 fields through ``object.__setattr__``, a third of the time `events` may
    spend on an event. Treat it as a value.
    """

    event_id: str
    type: str
    source: str
    occurred_ms: int
    received_ms: int
    session_id: str | None = None
    anonymous_id: str | None = None
    customer_id: str | None = None
    campaign_id: str | None = None
    offer_id: str | None = None
    order_id: str | None = None
    value: int | None = None
    currency: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    # Domain facts the counters need and the archive does not keep: the order total a
    # redemption was made on, and the credit a reversal takes back from.
    order_total: int | None = None
    credit_id: str | None = None

    @property
    def from_storefront(self) -> bool:
        return self.source == STOREFRONT

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromtimestamp(self.occurred_ms / 1000, UTC)

    @property
    def channel(self) -> str | None:
        """The marketing channel this event is a touch of (None: no utm, no touch)."""
        if self.utm_source is None:
            return None
        return f"{self.utm_source}/{self.utm_medium or '(none)'}"

    @property
    def partition_key(self) -> str:
        """Kinesis partition key: the session, so one session's events are read in order
        by one consumer; domain events have none and spread by what they concern."""
        return (
            self.session_id
            or self.order_id
            or self.customer_id
            or self.campaign_id
            or self.event_id
        )

    def to_stream(self) -> bytes:
        fields = {}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if value is not None:
                fields[name] = value
        return _ENCODER.encode(fields).encode()

    @classmethod
    def from_stream(cls, data: bytes) -> TrackedEvent:
        try:
            fields = json.loads(data)
            if not isinstance(fields, dict):
                raise TypeError("not an object")
            event = cls(**fields)
        except (ValueError, TypeError) as error:
            raise BadStreamRecord(f"not a tracked event: {error}") from None
        if not isinstance(event.event_id, str) or not isinstance(event.occurred_ms, int):
            raise BadStreamRecord("a tracked event needs event_id and occurred_ms")
        return event

    def without_customer(self) -> TrackedEvent:
        return replace(self, customer_id=None)

    def to_archive_line(self, customer_key: str | None) -> bytes:
        """One newline-terminated JSON line with exactly `ARCHIVE_COLUMNS`."""
        row: dict[str, Any] = {
            "event_id": self.event_id,
            "type": self.type,
            "source": self.source,
            "occurred_at": archive_instant(self.occurred_ms),
            "occurred_ms": self.occurred_ms,
            "received_at": archive_instant(self.received_ms),
            "session_id": self.session_id,
            "anonymous_id": self.anonymous_id,
            "customer_key": customer_key,
            "campaign_id": self.campaign_id,
            "offer_id": self.offer_id,
            "order_id": self.order_id,
            "value_amount": self.value,
            "value_currency": self.currency,
            "utm_source": self.utm_source,
            "utm_medium": self.utm_medium,
            "utm_campaign": self.utm_campaign,
        }
        return _ENCODER.encode(row).encode() + b"\n"


_FIELD_NAMES: Final = tuple(field.name for field in fields(TrackedEvent))
# Compact, and UTF-8 as is rather than \u escapes: a Japanese utm value stays readable
# in the archive and a third the size.
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def archive_instant(epoch_ms: int) -> str:
    """``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC (see the module docstring)."""
    instant = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return instant.strftime("%Y-%m-%d %H:%M:%S.%f")


def pseudonym(customer_id: str, key: bytes) -> str:
    """The archive's stand-in for a customer id: HMAC-SHA256 under the archive's key,
    hex. Stable (the same customer is one key in every query) and, without the key,
    neither reversible nor guessable from a list of candidate ids."""
    return hmac.new(key, customer_id.encode(), hashlib.sha256).hexdigest()
