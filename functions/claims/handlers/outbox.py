"""The claims outbox function: Claims-table stream records in, claim events out.

The table's event source mapping invokes it with batches of stream records, already
filtered to claims inserted and claims whose status became one that is an event
(`functions.claims.outbox.STREAM_FILTERS`); which record is which event is decided in
`functions.claims.outbox`. Publishing, failures and metrics are every outbox's
(`functions.core.outbox.StreamOutbox`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.claims.outbox import ClaimEvent, event_for
from functions.core.observability import instrumented
from functions.core.outbox import StreamOutbox
from functions.core.settings import EventBusSettings, load_settings


class Outbox(StreamOutbox):
    """Publishes the claim event of each Claims-table stream record."""

    subject = "claim"

    def event_for(self, record: Mapping[str, Any]) -> ClaimEvent | None:
        return event_for(record)


# One per container (and per environment, for the local cloud); the client is lazy.
_outbox = functools.cache(Outbox.on_bus)


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return _outbox(load_settings(EventBusSettings)).handle(event, context)
