"""SQS queues."""

from __future__ import annotations

from typing import Any, Final

from infra.local.deploy.core import DeployContext, attribute_text, fifo_name, pick, tag_map
from infra.local.deploy.records import Deployed

_QUEUE_ATTRIBUTES: Final = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)


def deploy_queue(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    sqs = context.client("sqs")
    name = fifo_name(
        context, logical_id, properties.get("QueueName"), properties.get("FifoQueue"), limit=80
    )
    # RedrivePolicy arrives resolved: its deadLetterTargetArn is the DLQ's ARN.
    attributes = {k: attribute_text(v) for k, v in pick(properties, *_QUEUE_ATTRIBUTES).items()}
    if context.max_queue_delay_seconds is not None and "DelaySeconds" in attributes:
        delay = min(int(attributes["DelaySeconds"]), context.max_queue_delay_seconds)
        attributes["DelaySeconds"] = str(delay)
    request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    if "Tags" in properties:
        request["tags"] = tag_map(properties)
    url = sqs.create_queue(**request)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return Deployed(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})
