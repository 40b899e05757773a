"""Kinesis data streams."""

from __future__ import annotations

from typing import Any

from infra.local.deploy.core import DeployContext, resource_name
from infra.local.deploy.records import Deployed


def deploy_stream(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    kinesis = context.client("kinesis")
    name = resource_name(context, logical_id, properties.get("Name"), limit=128)
    mode = properties.get("StreamModeDetails") or {"StreamMode": "PROVISIONED"}
    request: dict[str, Any] = {"StreamName": name, "StreamModeDetails": mode}
    if mode["StreamMode"] == "PROVISIONED":
        request["ShardCount"] = int(properties.get("ShardCount", 1))
    # An on-demand stream gets moto's fixed shard count (4); records and event source
    # mappings behave the same.
    kinesis.create_stream(**request)
    retention = int(properties.get("RetentionPeriodHours", 24))
    if retention > 24:
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=retention)
    encryption = properties.get("StreamEncryption")
    if encryption:
        kinesis.start_stream_encryption(StreamName=name, **encryption)
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    return Deployed(name, {"Arn": arn})
