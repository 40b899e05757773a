"""What both queue consumers share: reading an SQS message as an event, and the lease
of the claims an invocation makes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Final

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from functions.core.clock import utc_now
from functions.core.event_types import EVENT_TYPES, EventDetail

__all__ = ["PoisonMessage", "lease_until", "parse"]

# Past the invocation's end: clocks of two Lambda hosts may differ by this much.
_LEASE_MARGIN: Final = timedelta(seconds=30)
# Without a Lambda context (a script): as long as a Lambda may run.
_DEFAULT_LEASE: Final = timedelta(minutes=15)
# An event is a few KB; a body this large is nothing our rules route.
_MAX_BODY_CHARS: Final = 256 * 1024


class PoisonMessage(ValueError):
    """A queue message that is not an event we can read: no retry mends it, so after the
    queue's receive count it waits in the DLQ, where an operator sees it."""


def parse(body: str) -> EventDetail:
    """The typed detail of an SQS message whose body is an EventBridge event."""
    if len(body) > _MAX_BODY_CHARS:
        raise PoisonMessage(f"body of {len(body)} characters is no event")
    try:
        envelope = json.loads(body)
    except ValueError:
        raise PoisonMessage("body is not JSON") from None
    if not isinstance(envelope, dict):
        raise PoisonMessage("body is not an EventBridge event")
    detail_type = envelope.get("detail-type")
    model = EVENT_TYPES.get(detail_type) if isinstance(detail_type, str) else None
    if model is None:
        raise PoisonMessage(f"unknown detail-type {str(detail_type)[:100]!r}")
    try:
        return model.model_validate(envelope.get("detail"))
    except ValidationError as error:
        raise PoisonMessage(
            f"{detail_type} detail does not match its contract: {error.error_count()} error(s)"
        ) from None


def lease_until(context: LambdaContext | None) -> datetime:
    """Until when this invocation's claims are held: past its own end, so a claim is only
    ever taken over from a sender that can no longer be running."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    lease = timedelta(milliseconds=remaining()) if callable(remaining) else _DEFAULT_LEASE
    return utc_now() + lease + _LEASE_MARGIN
