"""DynamoDB stream records as Lambda hands them to an outbox, built from PynamoDB items."""

from __future__ import annotations

from typing import Any

from pynamodb.models import Model


def stream_record(
    event_name: str,
    *,
    new: Model | None = None,
    old: Model | None = None,
    sequence: int = 1,
    created: int,
    stream_arn: str,
) -> dict[str, Any]:
    """A DynamoDB stream record as Lambda delivers it (NEW_AND_OLD_IMAGES): the change of
    `old` to `new` (either may be missing), committed at `created` (epoch seconds)."""
    item = new if new is not None else old
    assert item is not None
    image = item.serialize()
    change: dict[str, Any] = {
        "ApproximateCreationDateTime": created,
        "Keys": {"pk": image["pk"], "sk": image["sk"]},
        "SequenceNumber": f"{sequence:021d}",
        "SizeBytes": 256,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        change["NewImage"] = new.serialize()
    if old is not None:
        change["OldImage"] = old.serialize()
    return {
        "eventID": f"event-{sequence}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "ap-northeast-1",
        "dynamodb": change,
        "eventSourceARN": stream_arn,
    }


def batch(*records: dict[str, Any]) -> dict[str, Any]:
    """The event an outbox function is invoked with."""
    return {"Records": list(records)}
