"""Firehose's S3 delivery partitions and compresses as the stream says.

`FirehoseBackend.put_s3_records(self, delivery_stream_name, version_id, s3_destination,
records)` writes each PutRecord(Batch) call as one object under the destination's
literal prefix plus `YYYY/MM/DD/HH/`, uncompressed, whatever the stream's dynamic
partitioning and CompressionFormat. The replacement delivers as
`infra.local.deploy.firehose.S3Delivery` describes, when that differs from moto's:

- dynamic partitioning: each record's prefix resolved from the MetadataExtraction query
  (`events/dt=!{partitionKeyFromQuery:dt}/` -> `events/dt=2027-03-01/`), one object per
  prefix per call, named as Firehose names objects
  (`<prefix><stream>-<version>-<YYYY-MM-DD-HH-MM-SS>-<uuid>`), with no time folders
  (a custom prefix replaces them);
- a record whose key cannot be extracted (not JSON, no such field): to the error prefix
  (`!{firehose:error-output-type}` = `processing-failed`) as a JSON line in AWS's
  error-record shape, the record itself base64 in `rawData`;
- GZIP: each object compressed, its name ending `.gz` (or the stream's FileExtension).

Destinations with neither are left to moto. Unsupported configurations are refused when
the stream is deployed (`deploy/firehose.py`); one created some other way raises here.

Also for plain `mock_aws` tests, without a local cloud: `patch_firehose_partitioning()`
installs it for the rest of the process.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any, Final

from infra.local.deploy.firehose import (
    EXTRACTION_FAILED,
    PROCESSING_FAILED,
    PartitioningFailed,
    S3Delivery,
)
from infra.local.patches.registry import Checks, Patch, install_for_good, original

_FIREHOSE: Final = "moto.firehose.models"


def _error_line(data: bytes, message: str, arrived_ms: int) -> bytes:
    """One failed record as Firehose writes it under the error prefix."""
    envelope = {
        "attemptsMade": 1,
        "arrivalTimestamp": arrived_ms,
        "errorCode": EXTRACTION_FAILED,
        "errorMessage": message,
        "attemptEndingTimestamp": arrived_ms,
        "rawData": base64.b64encode(data).decode("ascii"),
    }
    return json.dumps(envelope, separators=(",", ":")).encode() + b"\n"


def _partitioned(
    delivery: S3Delivery, records: list[dict[str, bytes]], *, arrived_ms: int
) -> dict[str, list[bytes]]:
    """Resolved prefix -> the lines written under it, in arrival order."""
    objects: dict[str, list[bytes]] = {}
    for record in records:
        data = record["Data"]
        try:
            prefix = delivery.prefix_for(data)
        except PartitioningFailed as failure:
            error_prefix = delivery.error_prefix_for(PROCESSING_FAILED)
            objects.setdefault(error_prefix, []).append(_error_line(data, str(failure), arrived_ms))
            continue
        objects.setdefault(prefix, []).append(data)
    return objects


def _put_s3_records(
    self: Any,
    delivery_stream_name: str,
    version_id: str,
    s3_destination: dict[str, Any],
    records: list[dict[str, bytes]],
) -> list[dict[str, str]]:
    from moto.firehose.models import FirehoseBackend
    from moto.moto_api._internal import mock_random
    from moto.s3.models import s3_backends

    delivery = S3Delivery.of(s3_destination)
    if not delivery.changes_moto:
        moto_own = original(FirehoseBackend, "put_s3_records")
        delivered: list[dict[str, str]] = moto_own(
            self, delivery_stream_name, version_id, s3_destination, records
        )
        return delivered

    now = datetime.now(UTC)
    if delivery.keys:
        objects = _partitioned(delivery, records, arrived_ms=int(time.time() * 1000))
    else:
        # Compressed only: under moto's own folders (the prefix, then the hour's).
        path = FirehoseBackend._format_s3_object_path(
            delivery_stream_name, version_id, delivery.prefix
        )
        objects = {path.rsplit("/", 1)[0] + "/": [record["Data"] for record in records]}

    bucket_name = s3_destination["BucketARN"].split(":")[-1]
    s3 = s3_backends[self.account_id][self.partition]
    for prefix, lines in objects.items():
        key = (
            f"{prefix}{delivery_stream_name}-{version_id}-"
            f"{now:%Y-%m-%d-%H-%M-%S}-{mock_random.uuid4()}{delivery.suffix}"
        )
        try:
            s3.put_object(bucket_name, key, delivery.body(b"".join(lines)))
        except Exception as error:
            raise RuntimeError(f"Firehose delivery to s3://{bucket_name}/{key} failed") from error
    return [{"RecordId": str(mock_random.uuid4())} for _ in records]


PATCH: Final = Patch(
    name="firehose_partitioning",
    checks=Checks(
        signatures=[
            (
                _FIREHOSE,
                "FirehoseBackend",
                "put_s3_records",
                ["self", "delivery_stream_name", "version_id", "s3_destination", "records"],
            ),
            (
                _FIREHOSE,
                "FirehoseBackend",
                "_format_s3_object_path",
                ["delivery_stream_name", "version_id", "prefix"],
            ),
        ],
        sources=[
            (
                _FIREHOSE,
                "FirehoseBackend",
                "put_record_batch",
                ('destination["ExtendedS3"]', "self.put_s3_records("),
                "every S3 delivery goes through put_s3_records with the destination as created",
            ),
            (
                _FIREHOSE,
                "FirehoseBackend",
                "put_s3_records",
                (
                    's3_destination["BucketARN"].split(":")[-1]',
                    "s3_backends[self.account_id][self.partition].put_object(",
                ),
                "the replacement writes to the destination bucket the way moto does",
            ),
        ],
        attributes=[
            ("moto.s3.models", "", "s3_backends"),
            ("moto.moto_api._internal", "", "mock_random"),
        ],
    ),
    targets=[(_FIREHOSE, "FirehoseBackend", "put_s3_records", _put_s3_records)],
)


def patch_firehose_partitioning() -> None:
    """Make moto's Firehose deliver to S3 partitioned and compressed as configured.

    For tests under plain `mock_aws`: installs it for the rest of the process; calling
    again does nothing. `apply()` installs it too (until `revert()`).
    """
    install_for_good(PATCH)


def verify() -> None:
    """Raise `PatchError` naming what moved if moto no longer fits this patch."""
    PATCH.verify()
