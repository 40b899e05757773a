"""Kinesis Firehose delivery streams, and how the local cloud delivers them to S3.

moto writes one S3 object per DirectPut call (no buffering) and a Kinesis-sourced
stream delivers nothing (FIELD-NOTES "moto"). It also ignores dynamic partitioning and
compression: every batch lands under the literal prefix, `!{partitionKeyFromQuery:dt}`
and all, uncompressed. `S3Delivery` is what the local cloud does instead (the
`firehose_partitioning` patch applies it to each batch): the prefix resolved per record
from the stream's MetadataExtraction query, one object per prefix per batch, GZIP when
the stream says GZIP, so the archive's objects look alike locally and in AWS.

Only what can be done exactly is accepted, and the rest refused at deploy, never
skipped: a JQ query of the `{key: .field}` / `{key: .field[a:b]}` form, prefixes with
`!{partitionKeyFromQuery:key}` (and `!{firehose:error-output-type}` in the error
prefix), no other processors, GZIP or no compression.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from infra.local.deploy.core import DeployContext, pick, resource_name, tag_list
from infra.local.deploy.records import Deployed
from infra.local.template import TemplateError

_FIREHOSE_FIELDS: Final = (
    "DeliveryStreamType",
    "DirectPutSourceConfiguration",
    "KinesisStreamSourceConfiguration",
    "DeliveryStreamEncryptionConfigurationInput",
    "S3DestinationConfiguration",
    "ExtendedS3DestinationConfiguration",
    "RedshiftDestinationConfiguration",
    "ElasticsearchDestinationConfiguration",
    "AmazonopensearchserviceDestinationConfiguration",
    "SplunkDestinationConfiguration",
    "HttpEndpointDestinationConfiguration",
)

# What the error prefix's `!{firehose:error-output-type}` is for a record whose
# partition key could not be extracted, and the error code written with it.
PROCESSING_FAILED: Final = "processing-failed"
EXTRACTION_FAILED: Final = "DynamicPartitioning.MetadataExtractionFailed"

_NAME: Final = r"[A-Za-z_][A-Za-z0-9_]*"
_PAIR: Final = re.compile(
    rf"\s*(?P<key>{_NAME})\s*:\s*\.(?P<field>{_NAME})"
    r"(?:\[\s*(?P<start>-?\d*)\s*:\s*(?P<end>-?\d*)\s*\])?\s*"
)
_EXPRESSION: Final = re.compile(r"!\{(?P<namespace>[^:}]*):(?P<value>[^}]*)\}")
_JQ_ENGINE: Final = "JQ-1.6"


class PartitioningFailed(Exception):
    """A record's partition key cannot be extracted: Firehose sends it to the error
    prefix, as AWS does."""


@dataclass(frozen=True)
class PartitionKey:
    """`key: .field` or `key: .field[start:end]` of a MetadataExtraction query."""

    name: str
    field: str
    start: int | None = None
    end: int | None = None
    sliced: bool = False

    def value_of(self, record: Mapping[str, Any]) -> str:
        value = record.get(self.field)
        if self.sliced:
            # jq slices strings by code point, as Python does; null slices to null.
            if not isinstance(value, str):
                raise PartitioningFailed(f".{self.field} is not a string to slice")
            value = value[self.start : self.end]
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise PartitioningFailed(f".{self.field} gives no text for key {self.name!r}")
        text = str(value)
        if not text:
            raise PartitioningFailed(f"key {self.name!r} is empty")
        return text


def partition_keys(query: str) -> tuple[PartitionKey, ...]:
    """The keys of a JQ query `{a: .x, b: .y[0:10]}`; anything else is refused."""
    body = query.strip()
    if not (body.startswith("{") and body.endswith("}")) or not body[1:-1].strip():
        raise TemplateError(f"MetadataExtractionQuery {query!r}: expected {{key: .field, ...}}")
    keys = []
    for pair in body[1:-1].split(","):
        match = _PAIR.fullmatch(pair)
        if match is None:
            raise TemplateError(
                f"MetadataExtractionQuery {query!r}: the local cloud extracts only "
                f"`key: .field` and `key: .field[a:b]`, not {pair.strip()!r}"
            )
        sliced = match["start"] is not None
        keys.append(
            PartitionKey(
                name=match["key"],
                field=match["field"],
                start=int(match["start"]) if sliced and match["start"] else None,
                end=int(match["end"]) if sliced and match["end"] else None,
                sliced=sliced,
            )
        )
    names = [key.name for key in keys]
    if len(set(names)) != len(names):
        raise TemplateError(f"MetadataExtractionQuery {query!r}: a key is named twice")
    return tuple(keys)


def _extraction_query(destination: Mapping[str, Any]) -> str:
    processing = destination.get("ProcessingConfiguration") or {}
    processors = (processing.get("Processors") or []) if processing.get("Enabled") else []
    query = None
    for processor in processors:
        if processor.get("Type") != "MetadataExtraction":
            raise TemplateError(
                f"processor {processor.get('Type')!r}: the local cloud runs MetadataExtraction "
                "only (no Lambda transformation, delimiter or de-aggregation)"
            )
        parameters = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
        engine = parameters.get("JsonParsingEngine", _JQ_ENGINE)
        if engine != _JQ_ENGINE:
            raise TemplateError(f"JsonParsingEngine {engine!r}: expected {_JQ_ENGINE}")
        query = parameters.get("MetadataExtractionQuery")
    if query is None:
        raise TemplateError(
            "dynamic partitioning needs a MetadataExtraction processor with a "
            "MetadataExtractionQuery (partitionKeyFromLambda is not run locally)"
        )
    return str(query)


def _check_expressions(prefix: str, allowed: Mapping[str, frozenset[str]], field: str) -> None:
    for match in _EXPRESSION.finditer(prefix):
        namespace, value = match["namespace"], match["value"]
        if value not in allowed.get(namespace, frozenset()):
            raise TemplateError(
                f"{field} {prefix!r}: the local cloud resolves "
                + (
                    ", ".join(
                        f"!{{{n}:{v}}}" for n, values in allowed.items() for v in sorted(values)
                    )
                    or "no expressions"
                )
                + f" here, not {match.group(0)}"
            )


@dataclass(frozen=True)
class S3Delivery:
    """How the local cloud writes one S3 destination's batches (see the module's docstring)."""

    prefix: str
    error_prefix: str
    keys: tuple[PartitionKey, ...]
    gzip: bool
    file_extension: str

    @classmethod
    def of(cls, destination: Mapping[str, Any]) -> S3Delivery:
        """The delivery an (Extended)S3 destination configuration asks for, or a
        `TemplateError` saying what the local cloud cannot do exactly."""
        compression = destination.get("CompressionFormat", "UNCOMPRESSED")
        if compression not in ("UNCOMPRESSED", "GZIP"):
            raise TemplateError(
                f"CompressionFormat {compression!r}: the local cloud writes GZIP or uncompressed"
            )
        if destination.get("DataFormatConversionConfiguration", {}).get("Enabled"):
            raise TemplateError("the local cloud does not convert record formats (Parquet, ORC)")
        prefix = str(destination.get("Prefix", ""))
        error_prefix = str(destination.get("ErrorOutputPrefix", ""))
        partitioning = destination.get("DynamicPartitioningConfiguration") or {}
        keys = partition_keys(_extraction_query(destination)) if partitioning.get("Enabled") else ()
        names = frozenset(key.name for key in keys)
        _check_expressions(prefix, {"partitionKeyFromQuery": names} if names else {}, "Prefix")
        _check_expressions(
            error_prefix, {"firehose": frozenset({"error-output-type"})}, "ErrorOutputPrefix"
        )
        used = {m["value"] for m in _EXPRESSION.finditer(prefix)}
        if keys and names - used:
            raise TemplateError(
                f"Prefix {prefix!r} does not use the partition keys {sorted(names - used)}"
            )
        if keys and not error_prefix:
            raise TemplateError("dynamic partitioning needs an ErrorOutputPrefix")
        return cls(
            prefix=prefix,
            error_prefix=error_prefix,
            keys=keys,
            gzip=compression == "GZIP",
            file_extension=str(destination.get("FileExtension", "")),
        )

    @property
    def changes_moto(self) -> bool:
        """Whether moto's own delivery would write anything different."""
        return bool(self.keys or self.gzip or self.file_extension)

    @property
    def suffix(self) -> str:
        """What Firehose appends to an object's name: the extension asked for, else
        `.gz` for GZIP."""
        return self.file_extension or (".gz" if self.gzip else "")

    def prefix_for(self, data: bytes) -> str:
        """The resolved prefix of one record, or `PartitioningFailed`."""
        try:
            record = json.loads(data)
        except ValueError as error:
            raise PartitioningFailed(f"not JSON: {error}") from None
        if not isinstance(record, dict):
            raise PartitioningFailed("not a JSON object")
        values = {key.name: key.value_of(record) for key in self.keys}
        return _EXPRESSION.sub(lambda match: values[match["value"]], self.prefix)

    def error_prefix_for(self, error_output_type: str) -> str:
        return _EXPRESSION.sub(lambda _: error_output_type, self.error_prefix)

    def body(self, data: bytes) -> bytes:
        # mtime 0: the same records make the same bytes.
        return gzip.compress(data, mtime=0) if self.gzip else data


def destination_of(properties: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The stream's S3 destination configuration, if it has one."""
    found = properties.get("ExtendedS3DestinationConfiguration") or properties.get(
        "S3DestinationConfiguration"
    )
    return found if isinstance(found, Mapping) else None


def deploy_delivery_stream(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    destination = destination_of(properties)
    if destination is not None:
        S3Delivery.of(destination)  # refused here, not at the first PutRecordBatch
    firehose = context.client("firehose")
    name = resource_name(context, logical_id, properties.get("DeliveryStreamName"), limit=64)
    request = {"DeliveryStreamName": name, **pick(properties, *_FIREHOSE_FIELDS)}
    if "Tags" in properties:
        request["Tags"] = tag_list(properties)
    arn = firehose.create_delivery_stream(**request)["DeliveryStreamARN"]
    return Deployed(name, {"Arn": arn})
