"""DynamoDB tables, with their indexes, stream, TTL and point-in-time recovery."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from infra.local.deploy.core import DeployContext, pick, resource_name, tag_list
from infra.local.deploy.records import Deployed

_INDEX_FIELDS: Final = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")


def deploy_table(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    dynamodb = context.client("dynamodb")
    name = resource_name(context, logical_id, properties.get("TableName"), limit=255)
    request = _table_request(name, properties)
    table = dynamodb.create_table(**request)["TableDescription"]
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    recovery = properties.get("PointInTimeRecoverySpecification")
    if recovery and recovery.get("PointInTimeRecoveryEnabled"):
        dynamodb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    attributes = {"Arn": table["TableArn"]}
    if "LatestStreamArn" in table:
        attributes["StreamArn"] = table["LatestStreamArn"]
    return Deployed(name, attributes)


def _table_request(name: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    # Contributor insights, Kinesis streaming and import specifications have no local
    # effect and no place in CreateTable: they are left out.
    request: dict[str, Any] = {
        "TableName": name,
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
        **pick(
            properties,
            "AttributeDefinitions",
            "KeySchema",
            "ProvisionedThroughput",
            "TableClass",
            "DeletionProtectionEnabled",
        ),
    }
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if kind in properties:
            request[kind] = [pick(index, *_INDEX_FIELDS) for index in properties[kind]]
    stream = properties.get("StreamSpecification")
    if stream:
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }
    sse = properties.get("SSESpecification")
    if sse:
        request["SSESpecification"] = {
            "Enabled": bool(sse.get("SSEEnabled")),
            **pick(sse, "SSEType", "KMSMasterKeyId"),
        }
    if "Tags" in properties:
        request["Tags"] = tag_list(properties)
    return request
