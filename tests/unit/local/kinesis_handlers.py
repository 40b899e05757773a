"""Handlers the Kinesis poller tests deploy into moto by dotted path.

The local runtime runs them in the test's own process: a test decides what `consume`
answers by replacing `answer` (with pytest's monkeypatch), and reads what reached the
function from the runtime's history.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

# Set by a test once its PutRecords has returned.
PUT_RETURNED = threading.Event()
_WAIT_SECONDS = 5.0


class PoisonRecord(Exception):
    """A record the function cannot handle: the invocation fails."""


def _succeed(event: dict[str, Any]) -> Any:
    return None


# What `consume` returns for an event (None, a partial batch response), or raises.
answer: Callable[[dict[str, Any]], Any] = _succeed
# For each event `after_put` received: whether the producer's PutRecords had returned.
put_had_returned: list[bool] = []


def consume(event: dict[str, Any], context: Any) -> Any:
    return answer(event)


def after_put(event: dict[str, Any], context: Any) -> None:
    """Waits for the test's PutRecords to return (in vain when run inside it)."""
    put_had_returned.append(PUT_RETURNED.wait(_WAIT_SECONDS))


def reset() -> None:
    # `answer` is set through pytest's monkeypatch, which puts it back itself.
    put_had_returned.clear()
    PUT_RETURNED.clear()
