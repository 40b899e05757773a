"""Analytics ingestion: CPU per event outside AWS I/O, and AWS calls per batch.

- Validation and serialisation per event: `validate_batch` of 500 storefront events (a
  realistic mix: page views, offer views, carts, purchases with money and utm) and the
  stream record of each accepted one (`TrackedEvent.to_stream`), against the floor of
  what any ingestion must do with an event it receives: parse its JSON and write it out
  again (`json.loads` + `json.dumps` of the same event). Target: at most 20 µs per event
  (50,000 events a second per core); the ratio to the floor says what the checks cost.
- PutRecords calls per 500-event batch through `POST /v1/events` (the API function on
  in-process moto), counted at botocore. Target: 1.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from unittest import mock

import boto3
from botocore.client import BaseClient

from functions.analytics.events import validate_batch
from functions.core.clock import frozen_at
from tests.bench.in_process import in_process_aws
from tests.bench.report import record, table

EVENTS: Final = 500
ROUNDS: Final = 40
TARGET_US: Final = 20.0
NOW: Final = datetime(2027, 3, 10, 1, 0, tzinfo=UTC)
STREAM: Final = "rebates-bench-events"


def storefront_batch(n: int = EVENTS) -> list[dict[str, Any]]:
    kinds = ("page_view", "page_view", "offer_view", "add_to_cart", "checkout", "purchase")
    batch = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        event: dict[str, Any] = {
            "eventId": f"evt-{i:06d}",
            "type": kind,
            "occurredAt": (NOW - timedelta(seconds=i)).isoformat(),
            "sessionId": f"sess-{i // 6:05d}",
            "anonymousId": f"anon-{i // 12:05d}",
            "campaignId": "spring-trail-2027",
        }
        if kind == "page_view" and i % 12 == 0:
            event["utm"] = {"source": "google", "medium": "cpc", "campaign": "spring"}
        if kind == "purchase":
            event.update(
                orderId=f"order-{i}",
                customerId=f"cus-{i // 12}",
                value={"amount": 12_000, "currency": "JPY"},
            )
        batch.append(event)
    return batch


def _validate(batch: list[dict[str, Any]]) -> None:
    for _, event in validate_batch(batch, now=NOW).accepted:
        event.to_stream()


def _floor(batch: list[dict[str, Any]]) -> None:
    texts = [json.dumps(event) for event in batch]
    for text in texts:
        json.dumps(json.loads(text)).encode()


def _per_event_us(action: Any, batch: list[dict[str, Any]]) -> list[float]:
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        action(batch)
        samples.append((time.perf_counter() - started) / len(batch) * 1e6)
    return samples


def cpu_per_event() -> tuple[float, float]:
    batch = storefront_batch()
    _validate(batch)
    _floor(batch)
    ours: list[float] = []
    floor: list[float] = []
    # Alternating, so a slow spell of the machine spreads over both.
    for _ in range(5):
        ours += _per_event_us(_validate, batch)
        floor += _per_event_us(_floor, batch)
    return min(ours), min(floor)


def put_records_per_batch() -> tuple[int, int]:
    from functions.analytics.handlers import api
    from tests.support.api_calls import api_call

    calls: list[str] = []
    original = BaseClient._make_api_call

    def counted(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        calls.append(operation)
        return original(client, operation, params)

    environment = {
        "EVENTS_STREAM_NAME": STREAM,
        "POWERTOOLS_SERVICE_NAME": "analytics",
        "REBATES_VERSION": "bench",
    }
    with in_process_aws(), mock.patch.dict(os.environ, environment):
        boto3.client("kinesis").create_stream(StreamName=STREAM, ShardCount=4)
        with frozen_at(NOW), mock.patch.object(BaseClient, "_make_api_call", counted):
            status, body, _ = api_call(
                api.app, "POST", "/v1/events", {"events": storefront_batch()}
            )
    assert status == 202 and body["accepted"] == EVENTS, (status, body.get("rejected", [])[:3])
    return calls.count("PutRecords"), len(calls)


def run() -> None:
    ours, floor = cpu_per_event()
    put_records, calls = put_records_per_batch()
    verdict = "ok" if ours <= TARGET_US else "over target"
    body = table(
        ("figure", "value", "floor", "ratio", "target", "verdict"),
        [
            (
                f"validation + serialisation per event (batch of {EVENTS})",
                f"{ours:.1f} µs",
                f"{floor:.1f} µs (json.loads + dumps)",
                f"{ours / floor:.2f} x",
                f"≤ {TARGET_US:.0f} µs",
                verdict,
            ),
            (
                f"PutRecords calls per {EVENTS}-event batch",
                str(put_records),
                "1",
                f"{put_records:.2f} x",
                "1",
                "ok" if put_records == 1 else "over target",
            ),
        ],
    )
    body += (
        f"\n\nEvents per second per core at that CPU: {1e6 / ours:,.0f}. The batch made "
        f"{calls} AWS call(s) in all (without an Idempotency-Key: with one, its record's "
        "put and completion come on top)."
    )
    record("analytics", "Analytics: ingestion", body)
