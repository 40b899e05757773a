"""Kinesis event source mappings are delivered as Lambda delivers them: after PutRecords
has returned, every shard read on its own and in order, in batches of BatchSize, with
partial batch responses, bisection, retries and the on-failure destination.

moto runs in-process (`mock_aws`) with the local cloud's patches and a runtime running
the handlers of `tests.unit.local.kinesis_handlers`; each mapping is made in moto and
detached from it, as the local cloud's deployer does, and the tests drive the poller
one pass at a time (`poll_once`) unless they test its thread.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.local import patches
from infra.local.environment import install_overlay, uninstall_overlay
from infra.local.lambdas import LambdaRuntime
from infra.local.pollers import Pollers
from infra.local.server import SerialGate
from infra.local.stream_pollers import KinesisStreamMapping, KinesisStreamPoller
from tests.unit.local import kinesis_handlers

ROOT = Path(__file__).resolve().parents[3]
REGION = "ap-northeast-1"
HANDLERS = "tests.unit.local.kinesis_handlers"
RUNTIME_ENV = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}
# Hash keys inside the first and the second half of a two-shard stream's key space.
FIRST_HALF, SECOND_HALF = "1", str(2**127 + 1)


def _client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "runs in-process")
    return buffer.getvalue()


@dataclass
class Local:
    runtime: LambdaRuntime
    kinesis: Any = field(default_factory=lambda: _client("kinesis"))
    sqs: Any = field(default_factory=lambda: _client("sqs"))
    roles: dict[str, str] = field(default_factory=dict)

    def stream(self, name: str, *, shards: int = 1, on_demand: bool = False) -> str:
        if on_demand:
            self.kinesis.create_stream(
                StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"}
            )
        else:
            self.kinesis.create_stream(StreamName=name, ShardCount=shards)
        summary = self.kinesis.describe_stream_summary(StreamName=name)
        return str(summary["StreamDescriptionSummary"]["StreamARN"])

    def queue(self, name: str) -> tuple[str, str]:
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, str(arn["Attributes"]["QueueArn"])

    def function(self, name: str, handler: str) -> tuple[str, str]:
        """(its ARN, its role's ARN)"""
        role = _client("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")
        self.roles[name] = role["Role"]["Arn"]
        created = _client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role["Role"]["Arn"],
            Handler=f"{HANDLERS}.{handler}",
            Code={"ZipFile": _zip()},
        )
        return str(created["FunctionArn"]), str(role["Role"]["Arn"])

    def poller(
        self, stream_arn: str, *, name: str = "consumer", handler: str = "consume", **settings: Any
    ) -> KinesisStreamPoller:
        """A mapping of `stream_arn` to a new function, detached from moto as the
        deployer detaches it, and its poller."""
        function_arn, role_arn = self.function(name, handler)
        created = _client("lambda").create_event_source_mapping(
            EventSourceArn=stream_arn,
            FunctionName=function_arn,
            StartingPosition=settings.get("starting_position", "TRIM_HORIZON"),
        )
        patches.detach_kinesis_source(stream_arn, function_arn)
        mapping = KinesisStreamMapping(
            uuid=created["UUID"],
            function_name=name,
            stream_arn=stream_arn,
            invoke_identity_arn=role_arn,
            **settings,
        )
        return KinesisStreamPoller(
            self.runtime, mapping, kinesis_client=self.kinesis, sqs_client=self.sqs
        )

    def put(self, stream_arn: str, *data: str, hash_key: str | None = None) -> list[Any]:
        """PutRecords of `data` (partition keys p0, p1...); its answer's records."""
        entries = [
            {
                "Data": value.encode(),
                "PartitionKey": f"p{n}",
                **({"ExplicitHashKey": hash_key} if hash_key else {}),
            }
            for n, value in enumerate(data)
        ]
        response = self.kinesis.put_records(StreamARN=stream_arn, Records=entries)
        assert response["FailedRecordCount"] == 0
        return list(response["Records"])

    def batches(self) -> list[list[dict[str, Any]]]:
        """The Records of every event the functions received, oldest first."""
        return [list(i.event["Records"]) for i in self.runtime.history]


@pytest.fixture
def local() -> Iterator[Local]:
    kinesis_handlers.reset()
    with mock_aws():
        install_overlay()
        runtime = LambdaRuntime(
            SerialGate(), RUNTIME_ENV, project_root=ROOT, echo_logs=False, save_logs=False
        )
        patches.apply(runtime)
        try:
            yield Local(runtime)
        finally:
            kinesis_handlers.PUT_RETURNED.set()
            patches.revert()
            runtime.close()
            uninstall_overlay()
            kinesis_handlers.reset()


def drain(poller: KinesisStreamPoller, passes: int = 200) -> None:
    """Poll until a pass finds nothing to do."""
    for _ in range(passes):
        if not poller.poll_once():
            return
    raise AssertionError(f"still delivering after {passes} passes")


def data_of(records: list[dict[str, Any]]) -> list[str]:
    return [base64.b64decode(r["kinesis"]["data"]).decode() for r in records]


def answer(monkeypatch: pytest.MonkeyPatch, handler: Callable[[dict[str, Any]], Any]) -> None:
    monkeypatch.setattr(kinesis_handlers, "answer", handler)


def failing_on(*poisoned: str) -> Callable[[dict[str, Any]], Any]:
    """A function that fails any batch holding one of the `poisoned` data."""

    def handler(event: dict[str, Any]) -> Any:
        if set(data_of(event["Records"])) & set(poisoned):
            raise kinesis_handlers.PoisonRecord("cannot handle it")
        return None

    return handler


def test_put_records_returns_before_the_function_runs(local: Local) -> None:
    stream = local.stream("events")
    pollers = Pollers([local.poller(stream, handler="after_put")])
    pollers.start()
    try:
        started = time.monotonic()
        local.put(stream, "a", "b")
        took = time.monotonic() - started
        kinesis_handlers.PUT_RETURNED.set()
        assert pollers.wait_idle(10)
    finally:
        pollers.stop()
    # Inside PutRecords (moto's way) the function would have waited for it in vain.
    assert kinesis_handlers.put_had_returned == [True]
    assert took < 2.0
    assert [data_of(batch) for batch in local.batches()] == [["a", "b"]]


def test_the_event_is_the_one_lambda_sends(local: Local) -> None:
    stream = local.stream("events")
    poller = local.poller(stream)
    before = time.time()
    (put,) = local.put(stream, '{"type": "page_view"}')

    drain(poller)

    ((record,),) = local.batches()
    arrival = record["kinesis"].pop("approximateArrivalTimestamp")
    assert isinstance(arrival, float)
    assert before - 1 <= arrival <= time.time() + 1
    assert record == {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "p0",
            "sequenceNumber": put["SequenceNumber"],
            "data": base64.b64encode(b'{"type": "page_view"}').decode(),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{put['ShardId']}:{put['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": local.roles["consumer"],
        "awsRegion": REGION,
        "eventSourceARN": stream,
    }


def test_a_shard_is_delivered_in_order_batch_size_records_at_a_time(local: Local) -> None:
    stream = local.stream("events")
    poller = local.poller(stream, batch_size=3)
    local.put(stream, *[f"r{n}" for n in range(7)])

    drain(poller)

    assert [data_of(batch) for batch in local.batches()] == [
        ["r0", "r1", "r2"],
        ["r3", "r4", "r5"],
        ["r6"],
    ]


def test_a_partial_batch_failure_is_retried_from_the_failed_record(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = local.stream("events")
    poller = local.poller(stream, report_batch_item_failures=True)
    puts = local.put(stream, *[f"r{n}" for n in range(5)])
    reported: list[str] = []

    def report_r2_and_r3_once(event: dict[str, Any]) -> Any:
        failed = [r for r in event["Records"] if data_of([r])[0] in {"r2", "r3"}]
        if reported or not failed:
            return {"batchItemFailures": []}
        reported.extend(r["kinesis"]["sequenceNumber"] for r in failed)
        # Reported out of order: Lambda checkpoints before the lowest.
        return {"batchItemFailures": [{"itemIdentifier": s} for s in reversed(reported)]}

    answer(monkeypatch, report_r2_and_r3_once)
    drain(poller)

    assert reported == [puts[2]["SequenceNumber"], puts[3]["SequenceNumber"]]
    assert [data_of(batch) for batch in local.batches()] == [
        ["r0", "r1", "r2", "r3", "r4"],
        ["r2", "r3", "r4"],
    ]


def test_item_failures_are_ignored_without_report_batch_item_failures(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = local.stream("events")
    poller = local.poller(stream)
    local.put(stream, "r0", "r1")
    answer(monkeypatch, lambda event: {"batchItemFailures": [{"itemIdentifier": "1"}]})

    drain(poller)

    assert [data_of(batch) for batch in local.batches()] == [["r0", "r1"]]


def test_bisect_halves_a_failing_batch_until_the_poisoned_record_is_alone(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = local.stream("events")
    _, dlq_arn = local.queue("consumer-failures")
    poller = local.poller(
        stream, bisect_on_error=True, maximum_retry_attempts=3, on_failure_queue_arn=dlq_arn
    )
    puts = local.put(stream, "r0", "r1", "r2", "r3")
    answer(monkeypatch, failing_on("r1"))

    drain(poller)

    assert [data_of(batch) for batch in local.batches()] == [
        ["r0", "r1", "r2", "r3"],  # fails: halves
        ["r0", "r1"],  # fails: halves
        ["r0"],
        ["r1"],  # fails, alone: retried as it is
        ["r1"],  # no retries left: to the on-failure destination
        ["r2", "r3"],
    ]
    (message,) = _received(local, "consumer-failures")
    info = message["KinesisBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == puts[1]["SequenceNumber"]
    assert info["batchSize"] == 1


def test_a_batch_failing_every_retry_goes_to_the_on_failure_queue(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = local.stream("events")
    _, dlq_arn = local.queue("consumer-failures")
    poller = local.poller(stream, maximum_retry_attempts=2, on_failure_queue_arn=dlq_arn)
    puts = local.put(stream, "r0", "r1")
    answer(monkeypatch, failing_on("r0"))

    drain(poller)
    assert [data_of(batch) for batch in local.batches()] == [["r0", "r1"]] * 3

    (message,) = _received(local, "consumer-failures")
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["requestContext"]["approximateInvokeCount"] == 3
    info = message["KinesisBatchInfo"]
    iso_millis = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    assert iso_millis.match(info.pop("approximateArrivalOfFirstRecord"))
    assert iso_millis.match(info.pop("approximateArrivalOfLastRecord"))
    assert info == {
        "shardId": puts[0]["ShardId"],
        "startSequenceNumber": puts[0]["SequenceNumber"],
        "endSequenceNumber": puts[1]["SequenceNumber"],
        "batchSize": 2,
        "streamArn": stream,
    }

    # The shard has moved past the batch: what comes next is delivered.
    local.put(stream, "r2")
    drain(poller)
    assert data_of(local.batches()[-1]) == ["r2"]
    assert poller.idle()


def test_every_shard_of_an_on_demand_stream_is_delivered_each_in_order(local: Local) -> None:
    stream = local.stream("events", on_demand=True)
    shards = local.kinesis.list_shards(StreamARN=stream)["Shards"]
    assert len(shards) > 1
    poller = local.poller(stream, batch_size=5)
    puts = local.put(stream, *[f"r{n}" for n in range(40)])

    drain(poller)

    delivered: dict[str, list[int]] = {}
    for batch in local.batches():
        (shard_id,) = {r["eventID"].split(":")[0] for r in batch}  # one shard per batch
        delivered.setdefault(shard_id, []).extend(
            int(r["kinesis"]["sequenceNumber"]) for r in batch
        )
    written: dict[str, list[int]] = {}
    for put in puts:
        written.setdefault(put["ShardId"], []).append(int(put["SequenceNumber"]))
    assert len(written) > 1
    assert delivered == written  # every record, each shard in the order written
    assert all(numbers == sorted(numbers) for numbers in delivered.values())


def test_a_failing_shard_does_not_hold_up_the_others(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = local.stream("events", shards=2)
    poller = local.poller(stream, maximum_retry_attempts=5)
    local.put(stream, "poisoned", hash_key=FIRST_HALF)
    local.put(stream, "fine", hash_key=SECOND_HALF)
    answer(monkeypatch, failing_on("poisoned"))

    poller.poll_once()  # one pass: each shard invoked once

    assert [data_of(batch) for batch in local.batches()] == [["poisoned"], ["fine"]]
    assert not poller.idle()  # the poisoned batch waits for its retries
    drain(poller)
    assert [data_of(batch) for batch in local.batches()].count(["poisoned"]) == 6
    assert poller.idle()


def test_idle_only_once_a_read_begun_since_found_nothing(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = local.stream("events", shards=2)
    poller = local.poller(stream)
    assert not poller.idle()  # it never read
    poller.poll_once()
    assert poller.idle()

    local.put(stream, "r0")  # a write the caller made, then it asks
    asked = time.monotonic()
    assert not poller.idle(asked)  # its last read began before the write
    poller.poll_once()  # delivers: found something, so not caught up yet
    assert not poller.idle(asked)
    poller.poll_once()  # a pass begun after the question, finding nothing
    assert poller.idle(asked)

    attempts: list[int] = []

    def fail_once(event: dict[str, Any]) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise kinesis_handlers.PoisonRecord("once")
        return None

    answer(monkeypatch, fail_once)
    local.put(stream, "r1")
    poller.poll_once()  # fails: the retry waits for the next pass
    assert not poller.idle()
    poller.poll_once()  # retried, succeeds; no shard was read in this pass
    assert not poller.idle()
    poller.poll_once()
    assert poller.idle()
    assert [data_of(batch) for batch in local.batches()] == [["r0"], ["r1"], ["r1"]]


def test_latest_delivers_only_what_comes_after_the_first_read(local: Local) -> None:
    stream = local.stream("events")
    local.put(stream, "before")
    poller = local.poller(stream, starting_position="LATEST")
    poller.poll_once()
    local.put(stream, "after")

    drain(poller)

    assert [data_of(batch) for batch in local.batches()] == [["after"]]


def test_filter_criteria_see_the_data_as_json(local: Local) -> None:
    stream = local.stream("events")
    purchases = {"Filters": [{"Pattern": json.dumps({"data": {"type": ["purchase"]}})}]}
    poller = local.poller(stream, filter_criteria=purchases)
    local.put(stream, '{"type": "page_view"}', '{"type": "purchase"}', "not json")

    drain(poller)

    assert [data_of(batch) for batch in local.batches()] == [['{"type": "purchase"}']]


def test_a_disabled_mapping_delivers_nothing_and_is_idle(local: Local) -> None:
    stream = local.stream("events")
    poller = local.poller(stream, enabled=False)
    local.put(stream, "r0")
    pollers = Pollers([poller])
    pollers.start()
    try:
        assert pollers.wait_idle(5)
    finally:
        pollers.stop()
    assert local.batches() == []


def _received(local: Local, queue_name: str) -> list[dict[str, Any]]:
    url = local.sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    messages = local.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]
