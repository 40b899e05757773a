"""Publishing domain events: the `EventPublisher` interface, EventBridge and in-memory.

Logic functions take an `EventPublisher` argument instead of importing a client, so
tests hand them an `InMemoryPublisher` and handlers an `EventBridgePublisher`.

Both check every detail against its committed JSON Schema
(`events/detail/<DetailType>.schema.json`, generated from `functions.core.event_types`)
before anything is sent: a detail that does not match is a producer bug, and it should
fail in the producer's tests, not in some consumer's DLQ. All details of one `publish`
call are checked before the first is sent.

Delivery is at least once. `PutEvents` can accept part of a batch; the failed entries
alone are retried a few times and, if some still fail, `EventPublishError` names them.
A caller that retries the whole `publish` resends the same `eventId`s, which consumers
dedupe on, so nothing is ever dropped silently and a duplicate is harmless.

Correlation: a detail published without a `correlationId` gets the one of what the
publishing function is handling now (`functions.core.observability`: the API request,
or the record inside `correlated`), so the consumers' log lines carry it on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import fastjsonschema
from botocore.config import Config

import functions
from functions.core import aws
from functions.core.event_types import EventDetail
from functions.core.observability import current_correlation_id, logger

# The Lambda asset ships `events/` beside `functions/`, as the repository has it.
EVENTS_DIR: Final = Path(functions.__file__).resolve().parent.parent / "events"
SCHEMA_SUFFIX: Final = ".schema.json"
SAMPLE_SUFFIX: Final = ".sample.json"

# PutEvents quotas: at most 10 entries and 256 KiB per request (an entry's size is its
# Source, DetailType, Detail and Resources in UTF-8 plus 14 bytes for Time).
MAX_ENTRIES_PER_REQUEST: Final = 10
MAX_REQUEST_BYTES: Final = 256 * 1024
_TIME_BYTES: Final = 14
# The `Id` bound of `EventDetail.correlationId` in the committed schemas.
MAX_CORRELATION_ID_CHARS: Final = 256

DetailT = TypeVar("DetailT", bound=EventDetail)


def detail_schemas_dir(events_dir: Path = EVENTS_DIR) -> Path:
    return events_dir / "detail"


def detail_schema_path(detail_type: str, events_dir: Path = EVENTS_DIR) -> Path:
    return detail_schemas_dir(events_dir) / f"{detail_type}{SCHEMA_SUFFIX}"


def detail_sample_path(detail_type: str, events_dir: Path = EVENTS_DIR) -> Path:
    return detail_schemas_dir(events_dir) / f"{detail_type}{SAMPLE_SUFFIX}"


class EventContractError(RuntimeError):
    """A detail does not match its committed schema (or has none): a bug in the producer."""


@dataclass(frozen=True)
class FailedEntry:
    detail_type: str
    event_id: str
    error_code: str
    error_message: str

    def __str__(self) -> str:
        return f"{self.detail_type} {self.event_id} ({self.error_code}: {self.error_message})"


class EventPublishError(RuntimeError):
    """EventBridge still refused some entries after the retries; none was dropped silently."""

    def __init__(self, failures: Sequence[FailedEntry], attempts: int) -> None:
        self.failures = tuple(failures)
        self.attempts = attempts
        super().__init__(
            f"{len(self.failures)} event(s) not published after {attempts} attempt(s): "
            + "; ".join(str(failure) for failure in self.failures)
        )


class DetailSchemas:
    """Validators of the committed detail schemas, compiled on first use of each type."""

    def __init__(self, events_dir: Path = EVENTS_DIR) -> None:
        self._events_dir = events_dir
        self._validators: dict[str, Callable[[Any], Any]] = {}

    def to_json(self, detail: EventDetail) -> str:
        """The detail as published: JSON text, checked against its schema."""
        payload = detail.model_dump(mode="json", by_alias=True)
        try:
            self._validator(detail.detail_type)(payload)
        except fastjsonschema.JsonSchemaValueException as error:
            raise EventContractError(
                f"{detail.detail_type} {detail.eventId} does not match "
                f"{detail_schema_path(detail.detail_type, self._events_dir)}: {error.message}"
            ) from error
        # Compact and UTF-8 as is: Japanese text stays readable and counts once per byte
        # against the entry size quota.
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))

    def _validator(self, detail_type: str) -> Callable[[Any], Any]:
        validator = self._validators.get(detail_type)
        if validator is None:
            path = detail_schema_path(detail_type, self._events_dir)
            try:
                schema = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise EventContractError(
                    f"no schema for {detail_type} at {path}: run `rebates contracts generate`"
                ) from None
            validator = self._validators[detail_type] = fastjsonschema.compile(schema)
        return validator


# One cache per container: every publisher in a warm Lambda shares the compiled schemas.
_default_schemas = DetailSchemas()


def with_correlation(detail: DetailT) -> DetailT:
    """`detail` with the current correlation id, unless it carries one already."""
    correlation_id = current_correlation_id()
    if detail.correlationId is not None or correlation_id is None:
        return detail
    if len(correlation_id) > MAX_CORRELATION_ID_CHARS:
        # An id that breaks the schema would fail the publish: the event matters more.
        logger.warning("correlation id too long to publish", extra={"length": len(correlation_id)})
        return detail
    return detail.model_copy(update={"correlationId": correlation_id})


class EventPublisher(Protocol):
    """Where logic functions send their domain events."""

    def publish(self, *details: EventDetail) -> None: ...


class PutEventsClient(Protocol):
    """The part of the `events` client the publisher uses."""

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class _Entry:
    detail: EventDetail
    request: dict[str, Any]
    size: int


class EventBridgePublisher:
    """Publishes to an EventBridge bus, in as few `PutEvents` requests as the quotas allow."""

    def __init__(
        self,
        bus_name: str,
        client: PutEventsClient | None = None,
        *,
        schemas: DetailSchemas | None = None,
        max_attempts: int = 3,
        retry_delay: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.bus_name = bus_name
        self._client = client
        self._schemas = schemas or _default_schemas
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._sleep = sleep

    @property
    def client(self) -> PutEventsClient:
        # Created on first use, never at import: importing a handler module stays cheap
        # and tests can set up moto (or pass a stub) before any client exists.
        if self._client is None:
            # Standard mode retries throttling and 5xx of the whole request with backoff;
            # entries refused inside a successful response are retried below.
            self._client = aws.client("events", config=Config(retries={"mode": "standard"}))
        return self._client

    def publish(self, *details: EventDetail) -> None:
        # Validate everything first: a bad detail must not leave half a batch published.
        entries = [self._entry(with_correlation(detail)) for detail in details]
        failures: list[FailedEntry] = []
        # Later batches are still sent when one fails: as much as possible arrives now,
        # and the error lists exactly what did not.
        for batch in _batches(entries):
            failures.extend(self._put_with_retries(batch))
        if failures:
            raise EventPublishError(failures, self._max_attempts)

    def _entry(self, detail: EventDetail) -> _Entry:
        detail_json = self._schemas.to_json(detail)
        request = {
            "Source": detail.source,
            "DetailType": detail.detail_type,
            "Detail": detail_json,
            "EventBusName": self.bus_name,
            # The envelope's `time` is when the fact happened, not when a retry sent it.
            "Time": detail.occurredAt,
        }
        size = _TIME_BYTES + sum(
            len(text.encode()) for text in (detail.source, detail.detail_type, detail_json)
        )
        if size > MAX_REQUEST_BYTES:
            raise EventContractError(
                f"{detail.detail_type} {detail.eventId} is {size} bytes, over the "
                f"{MAX_REQUEST_BYTES}-byte EventBridge limit"
            )
        return _Entry(detail, request, size)

    def _put_with_retries(self, batch: list[_Entry]) -> list[FailedEntry]:
        pending = batch
        failures: list[FailedEntry] = []
        for attempt in range(1, self._max_attempts + 1):
            if attempt > 1:
                self._sleep(self._retry_delay * 2 ** (attempt - 2))
            response = self.client.put_events(Entries=[entry.request for entry in pending])
            if not response.get("FailedEntryCount"):
                return []
            # Result entries come back in request order; a failed one has an ErrorCode.
            results: list[dict[str, Any]] = response["Entries"]
            failed = [
                (entry, result)
                for entry, result in zip(pending, results, strict=True)
                if result.get("ErrorCode")
            ]
            if not failed:
                return []
            failures = [
                FailedEntry(
                    detail_type=entry.detail.detail_type,
                    event_id=entry.detail.eventId,
                    error_code=str(result["ErrorCode"]),
                    error_message=str(result.get("ErrorMessage", "")),
                )
                for entry, result in failed
            ]
            logger.warning(
                "PutEvents refused entries",
                extra={"attempt": attempt, "failures": [str(failure) for failure in failures]},
            )
            pending = [entry for entry, _ in failed]
        return failures


class InMemoryPublisher:
    """A publisher for tests: records what was published, checked like the real one."""

    def __init__(self, *, schemas: DetailSchemas | None = None) -> None:
        self._schemas = schemas or _default_schemas
        self.published: list[EventDetail] = []

    def publish(self, *details: EventDetail) -> None:
        stamped = [with_correlation(detail) for detail in details]
        for detail in stamped:
            self._schemas.to_json(detail)
        self.published.extend(stamped)

    def of_type(self, model: type[DetailT]) -> list[DetailT]:
        """The published details of one type, in publishing order."""
        return [detail for detail in self.published if isinstance(detail, model)]

    @property
    def detail_types(self) -> list[str]:
        return [detail.detail_type for detail in self.published]


def _batches(entries: Sequence[_Entry]) -> Iterator[list[_Entry]]:
    batch: list[_Entry] = []
    batch_bytes = 0
    for entry in entries:
        if batch and (
            len(batch) == MAX_ENTRIES_PER_REQUEST or batch_bytes + entry.size > MAX_REQUEST_BYTES
        ):
            yield batch
            batch, batch_bytes = [], 0
        batch.append(entry)
        batch_bytes += entry.size
    if batch:
        yield batch
