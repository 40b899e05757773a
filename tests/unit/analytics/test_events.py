"""Storefront events checked one by one: each refusal by index, with its reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from functions.analytics.events import validate_batch

NOW = datetime(2027, 3, 10, 1, 0, tzinfo=UTC)


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventId": "evt-1",
        "type": "purchase",
        "occurredAt": "2027-03-10T10:00:00.250+09:00",
        "sessionId": "sess-1",
        "anonymousId": "anon-1",
        "campaignId": "spring-trail-2027",
        "orderId": "o-1",
        "value": {"amount": 12000, "currency": "JPY"},
        "utm": {"source": "google", "medium": "cpc"},
    }
    for key, value in changes.items():
        if value is ...:
            base.pop(key)
        else:
            base[key] = value
    return base


def test_a_good_event_becomes_a_tracked_event() -> None:
    batch = validate_batch([event()], now=NOW)
    assert batch.refused == []
    [(index, tracked)] = batch.accepted
    assert index == 0
    assert tracked.occurred_ms == int(
        datetime(2027, 3, 10, 1, 0, 0, 250_000, tzinfo=UTC).timestamp() * 1000
    )
    assert (tracked.value, tracked.currency, tracked.channel) == (12000, "JPY", "google/cpc")
    assert tracked.partition_key == "sess-1"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"eventId": ...}, "missing_event_id"),
        ({"eventId": ""}, "missing_event_id"),
        ({"eventId": 7}, "invalid_event_id"),
        ({"eventId": "x" * 129}, "invalid_event_id"),
        ({"eventId": "a\nb"}, "invalid_event_id"),
        ({"type": "click"}, "unknown_type"),
        ({"type": ...}, "unknown_type"),
        ({"occurredAt": "2027-03-10T10:00:00"}, "occurred_at_without_offset"),
        ({"occurredAt": "2027-03-10"}, "invalid_occurred_at"),
        ({"occurredAt": "2027-02-30T10:00:00Z"}, "invalid_occurred_at"),
        ({"occurredAt": 1773104400}, "invalid_occurred_at"),
        ({"occurredAt": "2027-03-10T01:05:01Z"}, "occurred_at_in_future"),
        ({"sessionId": ...}, "missing_session_id"),
        ({"anonymousId": ...}, "missing_anonymous_id"),
        ({"customerId": ["c"]}, "invalid_customer_id"),
        ({"value": {"amount": 12.5, "currency": "JPY"}}, "float_money"),
        ({"value": {"amount": 1200.0, "currency": "JPY"}}, "float_money"),
        ({"value": {"amount": "1200", "currency": "JPY"}}, "invalid_value"),
        ({"value": {"amount": True, "currency": "JPY"}}, "invalid_value"),
        ({"value": {"amount": -1, "currency": "JPY"}}, "invalid_value"),
        ({"value": {"amount": 1, "currency": "jpy"}}, "invalid_value"),
        ({"value": 1200}, "invalid_value"),
        ({"utm": {"source": 3}}, "invalid_utm"),
        ({"utm": {"term": "shoes"}}, "invalid_utm"),
        ({"customerID": "c-1"}, "unknown_field"),
    ],
)
def test_each_refusal_has_its_reason(changes: dict[str, Any], reason: str) -> None:
    batch = validate_batch([event(), event(**changes), event(eventId="evt-3")], now=NOW)
    assert [(r.index, r.reason) for r in batch.refused] == [(1, reason)]
    assert [index for index, _ in batch.accepted] == [0, 2]


def test_five_minutes_ahead_is_still_accepted_and_late_events_are() -> None:
    batch = validate_batch(
        [event(occurredAt="2027-03-10T01:05:00Z"), event(occurredAt="2026-01-01T00:00:00Z")],
        now=NOW,
    )
    assert batch.refused == []


def test_what_is_not_an_object_is_refused() -> None:
    batch = validate_batch([None, [], "purchase", 3], now=NOW)
    assert [r.reason for r in batch.refused] == ["invalid_event"] * 4
