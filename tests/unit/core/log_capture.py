"""Reading what handlers write: Powertools log lines and CloudWatch EMF metric lines.

The Logger keeps the stream it was built with (stdout at import, before pytest swaps
it), so its lines are read by pointing its handler at a buffer for the test; EMF lines
are printed to the current stdout, which `capsys` reads.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from functions.core.observability import logger


@dataclass(frozen=True)
class LogLines:
    stream: io.StringIO

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]

    def with_message(self, message: str) -> list[dict[str, Any]]:
        return [record for record in self.records() if record.get("message") == message]


@contextmanager
def captured_logs() -> Iterator[LogLines]:
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield LogLines(buffer)
    finally:
        handler.setStream(previous)


def emf_blobs(stdout: str) -> list[dict[str, Any]]:
    """Every EMF metric blob among the lines written to stdout."""
    blobs = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blobs.append(json.loads(line))
    return blobs


def metric_values(stdout: str, name: str, **dimensions: str) -> list[float]:
    """The values of metric `name` in blobs whose dimensions include `dimensions`."""
    values: list[float] = []
    for blob in emf_blobs(stdout):
        if name in blob and all(blob.get(k) == v for k, v in dimensions.items()):
            value = blob[name]
            values.extend(value if isinstance(value, list) else [value])
    return values
