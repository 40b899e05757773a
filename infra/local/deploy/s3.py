"""S3 buckets, their settings and notifications, and CDK's `Custom::S3BucketNotifications`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from infra.local.deploy.core import DeployContext, pick, resource_name, tag_list
from infra.local.deploy.records import Deployed


def deploy_bucket(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    s3 = context.client("s3")
    name = resource_name(context, logical_id, properties.get("BucketName"), limit=63, lower=True)
    request: dict[str, Any] = {"Bucket": name}
    if context.region != "us-east-1":  # S3 refuses us-east-1 as a location constraint
        request["CreateBucketConfiguration"] = {"LocationConstraint": context.region}
    if properties.get("ObjectLockEnabled"):
        request["ObjectLockEnabledForBucket"] = True
    s3.create_bucket(**request)
    for key, configure in _BUCKET_SETTINGS.items():
        if properties.get(key):
            configure(s3, name, properties[key])
    if "Tags" in properties:
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_list(properties)})
    return Deployed(
        name,
        {
            "Arn": f"arn:aws:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "DualStackDomainName": f"{name}.s3.dualstack.{context.region}.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{context.region}.amazonaws.com",
            "WebsiteURL": f"http://{name}.s3-website-{context.region}.amazonaws.com",
        },
    )


def _bucket_versioning(s3: Any, name: str, value: Mapping[str, Any]) -> None:
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": value["Status"]})


def _bucket_encryption(s3: Any, name: str, value: Mapping[str, Any]) -> None:
    # CloudFormation's ServerSideEncryptionByDefault is the API's Apply...ByDefault.
    rules = [
        {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
        | pick(rule, "BucketKeyEnabled")
        for rule in value["ServerSideEncryptionConfiguration"]
    ]
    s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})


def _bucket_public_access(s3: Any, name: str, value: Mapping[str, Any]) -> None:
    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=dict(value))


def _bucket_ownership(s3: Any, name: str, value: Mapping[str, Any]) -> None:
    s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=dict(value))


def _bucket_lifecycle(s3: Any, name: str, value: Mapping[str, Any]) -> None:
    rules = [_lifecycle_rule(rule) for rule in value["Rules"]]
    s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})


def _bucket_cors(s3: Any, name: str, value: Mapping[str, Any]) -> None:
    rules = [_renamed(rule, _CORS_RENAMES) for rule in value["CorsRules"]]
    s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": rules})


def _renamed(mapping: Mapping[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
    return {renames.get(key, key): value for key, value in mapping.items()}


# CloudFormation's CORS rule keys that the S3 API spells differently.
_CORS_RENAMES: Final = {"Id": "ID", "ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds"}


def _bucket_notifications(s3: Any, name: str, value: Mapping[str, Any]) -> None:
    _put_notifications(s3, name, _notification_configuration(value))


# Server access logging (LoggingConfiguration) is left out: moto writes no access logs,
# and it refuses a target bucket that grants log delivery neither by ACL (disabled by
# BucketOwnerEnforced) nor by bucket policy (a no-op here).
_BUCKET_SETTINGS: Final[dict[str, Callable[[Any, str, Any], None]]] = {
    "VersioningConfiguration": _bucket_versioning,
    "BucketEncryption": _bucket_encryption,
    "PublicAccessBlockConfiguration": _bucket_public_access,
    "OwnershipControls": _bucket_ownership,
    "LifecycleConfiguration": _bucket_lifecycle,
    "CorsConfiguration": _bucket_cors,
    "NotificationConfiguration": _bucket_notifications,
}


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in PutBucketLifecycleConfiguration's shape."""
    converted: dict[str, Any] = {"ID": rule.get("Id", ""), "Status": rule["Status"]}
    converted["Filter"] = _lifecycle_filter(rule)
    expiration = {
        api: rule[cfn]
        for cfn, api in (
            ("ExpirationInDays", "Days"),
            ("ExpirationDate", "Date"),
            ("ExpiredObjectDeleteMarker", "ExpiredObjectDeleteMarker"),
        )
        if cfn in rule
    }
    if expiration:
        converted["Expiration"] = expiration
    transitions = [
        *rule.get("Transitions", []),
        *([rule["Transition"]] if "Transition" in rule else []),
    ]
    if transitions:
        converted["Transitions"] = [_transition(t, "TransitionInDays", "Days") for t in transitions]
    noncurrent = rule.get("NoncurrentVersionTransitions", [])
    if noncurrent:
        converted["NoncurrentVersionTransitions"] = [
            _transition(t, "TransitionInDays", "NoncurrentDays") for t in noncurrent
        ]
    if "NoncurrentVersionExpiration" in rule:
        converted["NoncurrentVersionExpiration"] = dict(rule["NoncurrentVersionExpiration"])
    elif "NoncurrentVersionExpirationInDays" in rule:
        converted["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": rule["NoncurrentVersionExpirationInDays"]
        }
    if "AbortIncompleteMultipartUpload" in rule:
        converted["AbortIncompleteMultipartUpload"] = dict(rule["AbortIncompleteMultipartUpload"])
    return converted


def _lifecycle_filter(rule: Mapping[str, Any]) -> dict[str, Any]:
    tags = [{"Key": t["Key"], "Value": t["Value"]} for t in rule.get("TagFilters", [])]
    sizes = pick(rule, "ObjectSizeGreaterThan", "ObjectSizeLessThan")
    if not tags and not sizes:
        return {"Prefix": rule.get("Prefix", "")}
    conditions: dict[str, Any] = {**sizes, **({"Tags": tags} if tags else {})}
    if "Prefix" in rule:
        conditions["Prefix"] = rule["Prefix"]
    return {"And": conditions}


def _transition(transition: Mapping[str, Any], days_key: str, api_days_key: str) -> dict[str, Any]:
    converted: dict[str, Any] = {"StorageClass": transition["StorageClass"]}
    if days_key in transition:
        converted[api_days_key] = transition[days_key]
    if "TransitionDate" in transition:
        converted["Date"] = transition["TransitionDate"]
    if "NewerNoncurrentVersions" in transition:
        converted["NewerNoncurrentVersions"] = transition["NewerNoncurrentVersions"]
    return converted


def _notification_configuration(value: Mapping[str, Any]) -> dict[str, Any]:
    """An `AWS::S3::Bucket` NotificationConfiguration in the S3 API's shape."""
    kinds = (
        ("LambdaConfigurations", "LambdaFunctionConfigurations", "Function", "LambdaFunctionArn"),
        ("QueueConfigurations", "QueueConfigurations", "Queue", "QueueArn"),
        ("TopicConfigurations", "TopicConfigurations", "Topic", "TopicArn"),
    )
    converted: dict[str, Any] = {}
    for cfn_key, api_key, target_key, api_target_key in kinds:
        if cfn_key not in value:
            continue
        converted[api_key] = [
            {api_target_key: item[target_key], "Events": [item["Event"]]}
            | ({"Filter": _notification_filter(item["Filter"])} if "Filter" in item else {})
            for item in value[cfn_key]
        ]
    if value.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
        converted["EventBridgeConfiguration"] = {}
    return converted


def _notification_filter(value: Mapping[str, Any]) -> dict[str, Any]:
    return {"Key": {"FilterRules": list(value["S3Key"]["Rules"])}}


def _put_notifications(s3: Any, bucket: str, configuration: Mapping[str, Any]) -> None:
    # moto delivers object events to SQS, SNS and EventBridge synchronously (to Lambda
    # only through the runtime's hook); object keys arrive URL-encoded (`in%2Fa.csv`),
    # as in AWS, so consumers must unquote them.
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=dict(configuration)
    )


def deploy_bucket_notifications(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # CDK's Custom::S3BucketNotifications: its Lambda (deployed, never invoked here)
    # would call this very API with the configuration, already in the API's shape.
    bucket = properties["BucketName"]
    configuration = properties.get("NotificationConfiguration") or {}
    _put_notifications(context.client("s3"), bucket, configuration)
    return Deployed(f"{bucket}-notifications")
