"""The analytics API: conversion events in, a campaign's KPIs out.

Routes (DESIGN "HTTP API"):

- ``POST /v1/events`` ``{"events": [...]}``: up to `MAX_EVENTS` events (more: 400
  ``too_many_events``; a body over 1 MB: 413, unread). Each event is checked on its
  own (`functions.analytics.events`); the good ones go onto the events stream in one
  PutRecords call, partition key the session, and the answer is 202
  ``{"accepted": n, "rejected": [{"index", "reason", "message"}]}``. Records Kinesis
  refuses (throttling) are retried with backoff; those it still refuses are reported by
  index with the reason ``not_accepted``: the storefront may send them again, and an
  event sent twice counts once. ``Idempotency-Key`` is honoured like on every POST.
- ``GET /v1/campaigns/{campaignId}/stats?from=&to=``: the KPIs of the campaign-local
  dates ``from`` to ``to`` (both included; default: the campaign's window up to today),
  from the daily counters (`functions.analytics.stats`), with the goals' progress.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from http import HTTPStatus
from typing import Annotated, Any, Final

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from functions.analytics.dal import EventStream
from functions.analytics.events import MAX_BODY_BYTES, MAX_EVENTS, validate_batch
from functions.analytics.reading import (
    AnalyticsError,
    CampaignStats,
    StatsRange,
    UnknownCampaign,
)
from functions.core.api import (
    JSON,
    ResolverPerThread,
    domain_errors,
    limit_body,
    responses,
    status_mapping,
)
from functions.core.clock import utc_now
from functions.core.errors import BadRequest, NotFound, RebatesError
from functions.core.idempotency import idempotent
from functions.core.observability import instrumented, record_events_ingested
from functions.core.settings import CoreSettings, load_settings

router = Router()
stats_reader = CampaignStats()

MAX_RANGE_DAYS: Final = 366

limit_body("/v1/events", MAX_BODY_BYTES)


class ApiSettings(CoreSettings):
    events_stream_name: str = Field(alias="EVENTS_STREAM_NAME", min_length=1)


class EventsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[Any] = Field(
        description=f"Up to {MAX_EVENTS} events; each is checked on its own (see the "
        "rejected list of the answer)."
    )


class RejectedEvent(BaseModel):
    index: int
    reason: str
    message: str


class EventsAccepted(BaseModel):
    accepted: int
    rejected: list[RejectedEvent]


_STATUSES: dict[type[AnalyticsError], type[RebatesError]] = {UnknownCampaign: NotFound}
api_error = status_mapping(_STATUSES)
_READS: list[Callable[..., Any]] = [domain_errors(AnalyticsError, api_error)]


@router.post(
    "/v1/events",
    summary="Track storefront conversion events",
    tags=["events"],
    middlewares=[idempotent()],
    responses=responses(
        HTTPStatus.ACCEPTED,
        EventsAccepted,
        e400="too_many_events (more than 500), or a body that is not {events: [...]}",
        e413="payload_too_large: a body over 1 MB",
    ),
)
def post_events(body: EventsRequest) -> Response[Any]:
    if len(body.events) > MAX_EVENTS:
        raise BadRequest(
            "too_many_events",
            f"A request carries at most {MAX_EVENTS} events; send the rest in another.",
            {"maxEvents": MAX_EVENTS, "given": len(body.events)},
        )
    batch = validate_batch(body.events, now=utc_now())
    rejected = [refusal.to_view() for refusal in batch.refused]
    accepted = len(batch.accepted)
    if batch.accepted:
        settings = load_settings(ApiSettings)
        stream = EventStream(settings.events_stream_name)
        refused = stream.put([event for _, event in batch.accepted])
        for position in refused:
            index = batch.accepted[position][0]
            rejected.append(
                {
                    "index": index,
                    "reason": "not_accepted",
                    "message": "The event stream is busy; send this event again.",
                }
            )
        accepted -= len(refused)
        rejected.sort(key=lambda refusal: refusal["index"])
    record_events_ingested(accepted, [refusal["reason"] for refusal in rejected])
    return Response(
        status_code=HTTPStatus.ACCEPTED,
        content_type=JSON,
        body={"accepted": accepted, "rejected": rejected},
    )


CampaignPath = Annotated[str, Path(min_length=3, max_length=64, pattern=r"^[a-z0-9-]+$")]
DateQuery = Annotated[
    date | None, Query(description="A campaign-local date, YYYY-MM-DD (both ends included).")
]


@router.get(
    "/v1/campaigns/<campaignId>/stats",
    summary="A campaign's KPIs for a range of its local dates",
    tags=["campaigns"],
    middlewares=_READS,
    responses=responses(
        HTTPStatus.OK,
        dict,
        e400="invalid_range: from after to, or more than 366 days",
        e404="campaign_not_found",
    ),
)
def get_stats(
    campaignId: CampaignPath,
    from_: Annotated[date | None, Query(alias="from", description="First local date.")] = None,
    to: DateQuery = None,
) -> dict[str, Any]:
    if from_ is not None and to is not None:
        if from_ > to:
            raise BadRequest(
                "invalid_range", "from is after to", {"from": str(from_), "to": str(to)}
            )
        if to - from_ > timedelta(days=MAX_RANGE_DAYS - 1):
            raise BadRequest(
                "invalid_range",
                f"a range covers at most {MAX_RANGE_DAYS} days",
                {"from": str(from_), "to": str(to)},
            )
    return stats_reader.stats(campaignId, StatsRange(from_, to), now=utc_now())


app = ResolverPerThread(router)


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    load_settings(ApiSettings)
    return app.resolve(event, context)
