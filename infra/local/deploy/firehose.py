"""Kinesis Firehose delivery streams."""

from __future__ import annotations

from typing import Any, Final

from infra.local.deploy.core import DeployContext, pick, resource_name, tag_list
from infra.local.deploy.records import Deployed

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


def deploy_delivery_stream(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # moto writes one S3 object per DirectPut call (no buffering); a Kinesis-sourced
    # stream delivers nothing (FIELD-NOTES "moto").
    firehose = context.client("firehose")
    name = resource_name(context, logical_id, properties.get("DeliveryStreamName"), limit=64)
    request = {"DeliveryStreamName": name, **pick(properties, *_FIREHOSE_FIELDS)}
    if "Tags" in properties:
        request["Tags"] = tag_list(properties)
    arn = firehose.create_delivery_stream(**request)["DeliveryStreamARN"]
    return Deployed(name, {"Arn": arn})
