"""Handlers the asynchronous invocation tests deploy into moto by dotted path.

The local runtime runs them in the test's own process, so they tell the test what
reached them, and wait for it, through this module's state.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

# Set by a test once its PutObject has returned.
UPLOAD_RETURNED = threading.Event()
# Set by a test to let a held delivery finish.
RELEASE = threading.Event()
_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Delivery:
    key: str
    event_name: str
    request_id: str
    started: float
    finished: float
    upload_had_returned: bool


DELIVERIES: list[Delivery] = []
_lock = threading.Lock()


def reset() -> None:
    UPLOAD_RETURNED.clear()
    RELEASE.clear()
    with _lock:
        DELIVERIES.clear()


def deliveries() -> list[Delivery]:
    with _lock:
        return list(DELIVERIES)


def _record(record: dict[str, Any], context: Any) -> tuple[str, str]:
    return unquote_plus(record["s3"]["object"]["key"]), str(record["eventName"])


def record_upload(event: dict[str, Any], context: Any) -> None:
    """Notes each S3 record; a key under `held/` waits for RELEASE on its creation, and
    `wait-for-upload/` waits (a while at most) until the test says its upload returned."""
    for record in event["Records"]:
        started = time.monotonic()
        key, event_name = _record(record, context)
        returned = UPLOAD_RETURNED.is_set()
        if key.startswith("wait-for-upload/"):
            returned = UPLOAD_RETURNED.wait(_WAIT_SECONDS)
        if key.startswith("held/") and event_name.startswith("ObjectCreated"):
            RELEASE.wait(_WAIT_SECONDS)
        with _lock:
            DELIVERIES.append(
                Delivery(
                    key, event_name, context.aws_request_id, started, time.monotonic(), returned
                )
            )


def refuse(event: dict[str, Any], context: Any) -> None:
    key, _ = _record(event["Records"][0], context)
    with _lock:
        DELIVERIES.append(Delivery(key, "refused", context.aws_request_id, 0, 0, True))
    raise ValueError(f"refused {key}")
