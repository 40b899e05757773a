"""The Firehose partitioning patch: S3 deliveries resolved per record and compressed as
the stream says, and everything the local cloud cannot do exactly refused at deploy.

Streams are made with the archive's own configuration (`Prefix`, `ErrorOutputPrefix`,
the JQ query, GZIP) and read back through S3, as the report CLI reads the archive.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.firehose.models import FirehoseBackend

from infra.local import patches
from infra.local.deploy import DeployContext, DeployError, deploy
from infra.local.deploy.firehose import PartitionKey, S3Delivery, partition_keys
from infra.local.patches import firehose_partitioning, registry
from infra.local.template import TemplateError

REGION = "ap-northeast-1"
BUCKET = "rebates-archive-test"
ROLE = "arn:aws:iam::123456789012:role/firehose"
# What infra/constructs/analytics.py gives the EventsArchive delivery stream.
ARCHIVE_PREFIX = "events/dt=!{partitionKeyFromQuery:dt}/"
ERROR_PREFIX = "errors/!{firehose:error-output-type}/"
QUERY = "{dt: .occurred_at[0:10]}"
# <stream>-<version>-<YYYY-MM-DD-HH-MM-SS>-<uuid>, as Firehose names objects.
OBJECT_NAME = re.compile(
    r"(?P<stream>[A-Za-z0-9-]+?)-1-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9a-f-]{36}(?P<ext>.*)"
)


def archive_destination(**overrides: Any) -> dict[str, Any]:
    destination: dict[str, Any] = {
        "BucketARN": f"arn:aws:s3:::{BUCKET}",
        "RoleARN": ROLE,
        "Prefix": ARCHIVE_PREFIX,
        "ErrorOutputPrefix": ERROR_PREFIX,
        "CompressionFormat": "GZIP",
        "BufferingHints": {"IntervalInSeconds": 300, "SizeInMBs": 64},
        "DynamicPartitioningConfiguration": {"Enabled": True},
        "ProcessingConfiguration": {
            "Enabled": True,
            "Processors": [
                {
                    "Type": "MetadataExtraction",
                    "Parameters": [
                        {"ParameterName": "MetadataExtractionQuery", "ParameterValue": QUERY},
                        {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"},
                    ],
                }
            ],
        },
    }
    destination.update(overrides)
    return {k: v for k, v in destination.items() if v is not None}


def line(event_id: str, occurred_at: str) -> bytes:
    """An archive line as the stream consumer writes it: JSON, newline-terminated."""
    return json.dumps({"event_id": event_id, "occurred_at": occurred_at}).encode() + b"\n"


@contextmanager
def firehose_delivery(*, patched: bool) -> Iterator[None]:
    """moto's S3 delivery, or the patched one, for this block only."""
    moto_own = registry.original(FirehoseBackend, "put_s3_records")
    with pytest.MonkeyPatch.context() as monkeypatch:
        # Whatever an earlier test installed for the rest of the process is set aside.
        monkeypatch.setattr(registry, "_lasting", [])
        monkeypatch.setattr(FirehoseBackend, "put_s3_records", moto_own)
        if patched:
            firehose_partitioning.patch_firehose_partitioning()
        yield


@dataclass
class Archive:
    firehose: Any
    s3: Any
    stream: str

    def put(self, *lines: bytes) -> dict[str, Any]:
        answer: dict[str, Any] = self.firehose.put_record_batch(
            DeliveryStreamName=self.stream, Records=[{"Data": data} for data in lines]
        )
        return answer

    def objects(self) -> dict[str, bytes]:
        """Key -> stored bytes, for every object in the bucket."""
        listed = self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        return {
            o["Key"]: self.s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed
        }


@contextmanager
def archive(destination: dict[str, Any], *, patched: bool = True) -> Iterator[Archive]:
    with firehose_delivery(patched=patched), mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        firehose = boto3.client("firehose", region_name=REGION)
        firehose.create_delivery_stream(
            DeliveryStreamName="events-archive",
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration=destination,
        )
        yield Archive(firehose, s3, "events-archive")


def folder_and_name(key: str) -> tuple[str, str]:
    folder, _, name = key.rpartition("/")
    return folder + "/", name


# -- why the patch exists ---------------------------------------------------------------


def test_moto_alone_writes_the_prefix_literally_and_uncompressed() -> None:
    # If this fails, moto learned partitioning or compression: re-check the patch.
    with archive(archive_destination(), patched=False) as events:
        events.put(line("e1", "2027-03-01 10:00:00.000000"))
        ((key, body),) = events.objects().items()
    assert key.startswith("events/dt=!{partitionKeyFromQuery:dt}/")
    assert body == line("e1", "2027-03-01 10:00:00.000000")


# -- partitioned, compressed delivery ----------------------------------------------------


def test_records_of_different_days_land_under_their_own_dt_prefix() -> None:
    with archive(archive_destination()) as events:
        answer = events.put(
            line("e1", "2027-03-01 23:59:59.999999"),
            line("e2", "2027-03-02 00:00:00.000000"),
            line("e3", "2027-03-01 08:00:00.000000"),
            # A late event: its own day, not the day it arrived.
            line("e4", "2027-02-27 12:00:00.000000"),
        )
        objects = events.objects()
    assert answer["FailedPutCount"] == 0
    assert len(answer["RequestResponses"]) == 4
    # One object per day of the batch, each holding that day's lines in arrival order.
    by_folder = {folder_and_name(key)[0]: gzip.decompress(body) for key, body in objects.items()}
    assert by_folder == {
        "events/dt=2027-03-01/": line("e1", "2027-03-01 23:59:59.999999")
        + line("e3", "2027-03-01 08:00:00.000000"),
        "events/dt=2027-03-02/": line("e2", "2027-03-02 00:00:00.000000"),
        "events/dt=2027-02-27/": line("e4", "2027-02-27 12:00:00.000000"),
    }


def test_objects_are_named_as_firehose_names_them_with_a_gz_suffix() -> None:
    with archive(archive_destination()) as events:
        events.put(line("e1", "2027-03-01 10:00:00.000000"))
        events.put(line("e2", "2027-03-01 11:00:00.000000"))
        keys = sorted(events.objects())
    # One object per prefix per batch: two batches, two objects in the same folder.
    assert len(keys) == 2
    for key in keys:
        folder, name = folder_and_name(key)
        assert folder == "events/dt=2027-03-01/"  # no time folders under a custom prefix
        match = OBJECT_NAME.fullmatch(name)
        assert match is not None, name
        assert (match["stream"], match["ext"]) == ("events-archive", ".gz")


def test_gzip_round_trips_the_lines_byte_for_byte() -> None:
    lines = [line(f"e{i}", f"2027-03-01 10:00:{i:02d}.000000") for i in range(50)]
    # Non-ASCII survives too (campaign ids, utm values).
    lines.append(
        json.dumps(
            {"event_id": "jp", "occurred_at": "2027-03-01 12:00:00.000000", "utm": "春"}
        ).encode()
        + b"\n"
    )
    with archive(archive_destination()) as events:
        events.put(*lines)
        ((key, body),) = events.objects().items()
    assert body[:2] == b"\x1f\x8b"  # a gzip member, not plain text
    assert gzip.decompress(body) == b"".join(lines)
    assert key.endswith(".gz")


def test_an_uncompressed_stream_writes_plain_objects_without_a_suffix() -> None:
    with archive(archive_destination(CompressionFormat="UNCOMPRESSED")) as events:
        events.put(line("e1", "2027-03-01 10:00:00.000000"))
        ((key, body),) = events.objects().items()
    assert body == line("e1", "2027-03-01 10:00:00.000000")
    folder, name = folder_and_name(key)
    assert folder == "events/dt=2027-03-01/"
    match = OBJECT_NAME.fullmatch(name)
    assert match is not None and match["ext"] == ""


def test_a_file_extension_replaces_the_gz_suffix() -> None:
    with archive(archive_destination(FileExtension=".json.gz")) as events:
        events.put(line("e1", "2027-03-01 10:00:00.000000"))
        (key,) = events.objects()
    assert key.endswith(".json.gz") and not key.endswith(".json.gz.gz")


def test_records_without_a_partition_key_go_to_the_error_prefix_with_their_data() -> None:
    bad = [
        b"not json\n",
        json.dumps({"event_id": "no-date"}).encode() + b"\n",
        json.dumps({"event_id": "n", "occurred_at": 20270301}).encode() + b"\n",
        b"[1, 2]\n",
    ]
    good = line("e1", "2027-03-01 10:00:00.000000")
    with archive(archive_destination()) as events:
        answer = events.put(bad[0], good, *bad[1:])
        objects = events.objects()
    # Firehose accepted every record: a partitioning failure is a delivery matter.
    assert answer["FailedPutCount"] == 0
    by_folder = {folder_and_name(key)[0]: gzip.decompress(body) for key, body in objects.items()}
    assert by_folder["events/dt=2027-03-01/"] == good
    failed = [json.loads(text) for text in by_folder["errors/processing-failed/"].splitlines()]
    assert [base64.b64decode(record["rawData"]) for record in failed] == bad
    for record in failed:
        assert record["errorCode"] == "DynamicPartitioning.MetadataExtractionFailed"
        assert record["errorMessage"]
        assert record["attemptsMade"] == 1
        assert isinstance(record["arrivalTimestamp"], int)
    assert set(by_folder) == {"events/dt=2027-03-01/", "errors/processing-failed/"}


def test_compression_alone_keeps_moto_s_folders() -> None:
    destination = archive_destination(
        Prefix="raw/",
        DynamicPartitioningConfiguration=None,
        ProcessingConfiguration=None,
        ErrorOutputPrefix=None,
    )
    with archive(destination) as events:
        events.put(b"a\n", b"b\n")
        ((key, body),) = events.objects().items()
    # raw/YYYY/MM/DD/HH/<name>.gz: the hour folders Firehose adds without expressions.
    assert re.fullmatch(r"raw/\d{4}/\d{2}/\d{2}/\d{2}/events-archive-1-.+\.gz", key), key
    assert gzip.decompress(body) == b"a\nb\n"


def test_a_plain_stream_is_left_to_moto() -> None:
    destination = archive_destination(
        Prefix="raw/",
        CompressionFormat=None,
        DynamicPartitioningConfiguration=None,
        ProcessingConfiguration=None,
        ErrorOutputPrefix=None,
    )
    with archive(destination) as events:
        events.put(b"a\n", b"b\n")
        ((key, body),) = events.objects().items()
    assert body == b"a\nb\n"
    assert not key.endswith(".gz")


def test_verify_names_the_patch_when_moto_reshapes_the_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def reshaped(self: Any, stream: str, destination: dict[str, Any]) -> None:
        return None

    monkeypatch.setattr(FirehoseBackend, "put_s3_records", reshaped)
    with pytest.raises(patches.PatchError) as raised:
        firehose_partitioning.verify()
    message = str(raised.value)
    assert "firehose_partitioning patch (infra/local/patches/firehose_partitioning.py)" in message
    assert "moto.firehose.models.FirehoseBackend.put_s3_records: parameters are now" in message


# -- what the local cloud accepts --------------------------------------------------------


def test_the_archive_query_is_one_sliced_key() -> None:
    assert partition_keys(QUERY) == (
        PartitionKey(name="dt", field="occurred_at", start=0, end=10, sliced=True),
    )
    assert partition_keys("{ campaign: .campaign_id, day: .occurred_at[:10] }") == (
        PartitionKey(name="campaign", field="campaign_id"),
        PartitionKey(name="day", field="occurred_at", start=None, end=10, sliced=True),
    )


def test_a_key_resolves_as_jq_would() -> None:
    (dt,) = partition_keys(QUERY)
    assert dt.value_of({"occurred_at": "2027-03-01 10:00:00.000000"}) == "2027-03-01"
    (campaign,) = partition_keys("{c: .campaign_id}")
    assert campaign.value_of({"campaign_id": "spring"}) == "spring"
    assert campaign.value_of({"campaign_id": 7}) == "7"


@pytest.mark.parametrize(
    "query",
    [
        '{dt: .occurred_at | split(" ")[0]}',
        "{dt: .meta.occurred_at[0:10]}",
        "{dt: .occurred_at[0:10], dt: .received_at[0:10]}",
        ".occurred_at[0:10]",
        "{}",
    ],
)
def test_other_jq_queries_are_refused(query: str) -> None:
    with pytest.raises(TemplateError, match="MetadataExtractionQuery"):
        partition_keys(query)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"CompressionFormat": "Snappy"}, "CompressionFormat 'Snappy'"),
        ({"Prefix": "events/!{timestamp:yyyy-MM-dd}/"}, r"not !\{timestamp:yyyy-MM-dd\}"),
        ({"Prefix": "events/dt=!{partitionKeyFromQuery:day}/"}, "partitionKeyFromQuery:day"),
        ({"Prefix": "events/"}, "does not use the partition keys"),
        ({"ErrorOutputPrefix": None}, "needs an ErrorOutputPrefix"),
        ({"ErrorOutputPrefix": "errors/!{firehose:random-string}/"}, "random-string"),
        (
            {
                "ProcessingConfiguration": {
                    "Enabled": True,
                    "Processors": [{"Type": "Lambda", "Parameters": []}],
                }
            },
            "runs MetadataExtraction only",
        ),
        ({"ProcessingConfiguration": None}, "needs a MetadataExtraction processor"),
        (
            {"DataFormatConversionConfiguration": {"Enabled": True}},
            "does not convert record formats",
        ),
    ],
)
def test_what_cannot_be_delivered_exactly_is_refused(
    overrides: dict[str, Any], problem: str
) -> None:
    with pytest.raises(TemplateError, match=problem):
        S3Delivery.of(archive_destination(**overrides))


def test_a_partitioning_prefix_on_an_unpartitioned_stream_is_refused() -> None:
    destination = archive_destination(DynamicPartitioningConfiguration={"Enabled": False})
    with pytest.raises(TemplateError, match="resolves no expressions"):
        S3Delivery.of(destination)


def test_deploying_an_undeliverable_stream_fails_naming_it() -> None:
    template = {
        "Resources": {
            "Archive": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": BUCKET}},
            "EventsArchive": {
                "Type": "AWS::KinesisFirehose::DeliveryStream",
                "Properties": {
                    "DeliveryStreamType": "DirectPut",
                    "ExtendedS3DestinationConfiguration": archive_destination(
                        ProcessingConfiguration={
                            "Enabled": True,
                            "Processors": [
                                {
                                    "Type": "MetadataExtraction",
                                    "Parameters": [
                                        {
                                            "ParameterName": "MetadataExtractionQuery",
                                            "ParameterValue": "{dt: .occurred_at | .[0:10]}",
                                        }
                                    ],
                                }
                            ],
                        }
                    ),
                },
            },
        }
    }
    with mock_aws():
        context = DeployContext(region=REGION, seed=7)
        with pytest.raises(DeployError) as raised:
            deploy(template, context)
        assert raised.value.logical_id == "EventsArchive"
        assert "MetadataExtractionQuery" in raised.value.cause
        streams = context.client("firehose").list_delivery_streams()["DeliveryStreamNames"]
        assert streams == []
