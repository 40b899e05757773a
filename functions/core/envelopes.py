"""Reading an SQS message whose body is an EventBridge event, as every bus consumer does.

A rule delivers the whole event (the envelope) as the message body; `parse` answers its
``detail`` as the typed model of its ``detail-type`` (`functions.core.event_types`), or
raises `PoisonMessage`: a message no retry mends, which after the queue's receive count
waits in the DLQ, where an operator sees it.
"""

from __future__ import annotations

import json
from typing import Final

from pydantic import ValidationError

from functions.core.event_types import EVENT_TYPES, EventDetail

__all__ = ["MAX_BODY_CHARS", "PoisonMessage", "parse"]

# An event is a few KB; a body this large is nothing our rules route.
MAX_BODY_CHARS: Final = 256 * 1024


class PoisonMessage(ValueError):
    """A queue message that is not an event we can read."""


def parse(body: str) -> EventDetail:
    """The typed detail of an SQS message whose body is an EventBridge event."""
    if len(body) > MAX_BODY_CHARS:
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
