"""SNS topics and subscriptions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from infra.local.deploy.core import DeployContext, attribute_text, fifo_name, pick, tag_list
from infra.local.deploy.records import Deployed

_TOPIC_ATTRIBUTES: Final = (
    "ContentBasedDeduplication",
    "DisplayName",
    "FifoTopic",
    "KmsMasterKeyId",
    "SignatureVersion",
    "TracingConfig",
    "ArchivePolicy",
)


def deploy_topic(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    sns = context.client("sns")
    name = fifo_name(
        context, logical_id, properties.get("TopicName"), properties.get("FifoTopic"), limit=256
    )
    attributes = {k: attribute_text(v) for k, v in pick(properties, *_TOPIC_ATTRIBUTES).items()}
    request: dict[str, Any] = {"Name": name, "Attributes": attributes}
    if "Tags" in properties:
        request["Tags"] = tag_list(properties)
    arn = sns.create_topic(**request)["TopicArn"]
    for subscription in properties.get("Subscription", []):
        _subscribe(sns, arn, subscription)
    return Deployed(arn, {"TopicArn": arn, "TopicName": name})


_SUBSCRIPTION_ATTRIBUTES: Final = (
    "DeliveryPolicy",
    "FilterPolicy",
    "FilterPolicyScope",
    "RawMessageDelivery",
    "RedrivePolicy",
    "ReplayPolicy",
    "SubscriptionRoleArn",
)


def _subscribe(sns: Any, topic_arn: str, properties: Mapping[str, Any]) -> str:
    # SNS to SQS subscriptions need no confirmation in moto; SMS needs nothing at all
    # (moto records sent SMS in sns_backends[...].sms_messages).
    attributes = {
        k: attribute_text(v) for k, v in pick(properties, *_SUBSCRIPTION_ATTRIBUTES).items()
    }
    response = sns.subscribe(
        TopicArn=topic_arn,
        Protocol=properties["Protocol"],
        Endpoint=properties["Endpoint"],
        Attributes=attributes,
        ReturnSubscriptionArn=True,
    )
    return str(response["SubscriptionArn"])


def deploy_subscription(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    arn = _subscribe(context.client("sns"), properties["TopicArn"], properties)
    return Deployed(arn, {"Arn": arn})
