"""A table stream poller is idle for a wait only once it has looked for what came before.

`wait_idle` (the local cloud's `/_local/drain`) asks every poller whether anything is
left to do for what its caller did. A stream poller whose last read found nothing is
caught up only with the records written before that read began: a record committed
since is there for its next read, so until then it must not answer idle.
"""

from __future__ import annotations

import time
from typing import Any

from infra.local.stream_pollers import TableStreamMapping, TableStreamPoller

STREAM = "arn:aws:dynamodb:ap-northeast-1:123456789012:table/t/stream/2027-01-01T00:00:00.000"


class Shard:
    """A one-shard stream: records appended by the test, read in order."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.read_up_to = 0

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "shard-1"}]}}

    def get_shard_iterator(self, **_: Any) -> dict[str, Any]:
        return {"ShardIterator": "it"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        new = self.records[self.read_up_to : self.read_up_to + Limit]
        self.read_up_to += len(new)
        return {"Records": new, "NextShardIterator": ShardIterator}


class Runtime:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def invoke(self, function_name: str, event: dict[str, Any]) -> Any:
        self.events.append(event)
        return type("Invocation", (), {"is_error": False, "payload": None})()


def record(n: int) -> dict[str, Any]:
    return {
        "eventID": str(n),
        "eventName": "INSERT",
        "dynamodb": {"SequenceNumber": str(n), "Keys": {"pk": {"S": f"k{n}"}}},
    }


def poller(shard: Shard, runtime: Runtime) -> TableStreamPoller:
    mapping = TableStreamMapping(uuid="m-1", function_name="outbox", stream_arn=STREAM)
    return TableStreamPoller(
        runtime,  # type: ignore[arg-type]
        mapping,
        streams_client=shard,
        sqs_client=None,
    )


def test_a_record_written_after_the_last_empty_read_keeps_the_poller_busy() -> None:
    shard, runtime = Shard(), Runtime()
    stream = poller(shard, runtime)
    stream.poll_once()
    assert stream.idle()  # caught up with everything before its read

    shard.records.append(record(1))  # a commit the caller made, then it asks
    asked = time.monotonic()
    assert not stream.idle(asked)  # its last read began before the commit

    stream.poll_once()  # delivers the record; found something, so not caught up yet
    assert not stream.idle(asked)
    stream.poll_once()  # a read begun after the wait began, finding nothing
    assert stream.idle(asked)
    assert [event["Records"][0]["eventID"] for event in runtime.events] == ["1"]


def test_a_poller_that_never_read_is_not_idle() -> None:
    stream = poller(Shard(), Runtime())
    assert not stream.idle()
