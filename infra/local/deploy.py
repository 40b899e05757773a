"""Deploy a synthesized CloudFormation template into moto, resource by resource.

moto's own CloudFormation cannot deploy a CDK template whole (FIELD-NOTES "moto"), so
this module plays CloudFormation's part: it checks every resource type first (one
explicit table of types with no local effect, `NO_OP_TYPES`; anything else it cannot
deploy is an `UnsupportedResourceError` before anything is created), orders the
resources by their references (`infra.local.template.deployment_order`), then creates
each one with the service's own API through boto3, resolving its properties as the
values they reference become known. Each type has one small deployer in `DEPLOYERS`
returning what CloudFormation's `Ref` and `Fn::GetAtt` would give.

The result, `Deployment`, also carries what the local runtime needs and moto does not
do itself: the functions with their handlers and environment, the SQS event source
mappings it polls, the API routes it serves, the scheduled rules it fires on demand.

moto behaviours this relies on or works around are noted where they matter; the
summary is in the module's tests and `../shared/FIELD-NOTES.md`.
"""

from __future__ import annotations

import io
import json
import random
import re
import string
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import boto3
from botocore.config import Config

from infra.local.template import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_REGION,
    DEFAULT_STACK_NAME,
    Resolver,
    TemplateError,
    check_intrinsics,
    deployment_order,
    inactive_resources,
    resources_of,
)

# Errors ----------------------------------------------------------------------------------


class UnsupportedResourceError(TemplateError):
    """Resource types neither deployable locally nor known to have no local effect."""

    def __init__(self, unsupported: Mapping[str, str]) -> None:
        self.unsupported = dict(unsupported)
        listed = ", ".join(f"{i} ({t})" for i, t in sorted(self.unsupported.items()))
        super().__init__(
            f"the local cloud cannot deploy {listed}: add a deployer to "
            "infra/local/deploy.py DEPLOYERS, or a reason to NO_OP_TYPES"
        )


class DeployError(Exception):
    """Deploying one resource failed; nothing after it was deployed."""

    def __init__(self, logical_id: str, resource_type: str, cause: str) -> None:
        self.logical_id = logical_id
        self.resource_type = resource_type
        self.cause = cause
        super().__init__(f"{logical_id} ({resource_type}): {cause}")


# What a deployment returns ----------------------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    """One created resource: what `Ref` gives, and the `Fn::GetAtt` attributes."""

    physical_id: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalFunctionRecord:
    """A Lambda function as the local runtime runs it: in-process, from the project tree."""

    logical_id: str
    name: str
    arn: str
    handler: str
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int
    # Inline source (`Code.ZipFile`, e.g. CDK's own custom-resource handlers): not
    # project code, so the runtime cannot import its handler from the project tree.
    inline_code: bool = False


@dataclass(frozen=True)
class QueueMappingRecord:
    """An SQS event source mapping, detached from moto so the local poller drives it."""

    uuid: str
    function_name: str
    queue_url: str
    queue_arn: str
    batch_size: int
    report_batch_item_failures: bool
    enabled: bool
    maximum_batching_window_seconds: int


@dataclass(frozen=True)
class TableStreamMappingRecord:
    """A DynamoDB stream event source mapping, detached from moto so the local stream
    poller drives it (after the write, with its filters)."""

    uuid: str
    function_name: str
    stream_arn: str
    batch_size: int
    starting_position: str
    filter_criteria: dict[str, Any] | None
    report_batch_item_failures: bool
    bisect_on_error: bool
    maximum_retry_attempts: int
    on_failure_queue_arn: str | None
    enabled: bool


@dataclass(frozen=True)
class Route:
    """An API Gateway method with a Lambda proxy integration."""

    method: str
    path: str  # e.g. "/v1/claims/{claimId}", built from the Resource tree's PathParts
    function_name: str
    api_key_required: bool
    authorization_type: str  # NONE | AWS_IAM


@dataclass(frozen=True)
class ScheduledRule:
    """An EventBridge rule with a ScheduleExpression: moto never fires it by itself."""

    name: str
    logical_id: str
    schedule_expression: str
    bus_name: str
    targets: list[dict[str, Any]]


@dataclass
class Deployment:
    """The deployed template, and what the local runtime needs to run it."""

    # Every active resource, no-ops included (they still answer Ref, e.g. log groups).
    resources: dict[str, Deployed] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    functions: dict[str, LocalFunctionRecord] = field(default_factory=dict)
    queue_mappings: list[QueueMappingRecord] = field(default_factory=list)
    table_stream_mappings: list[TableStreamMappingRecord] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    api_key_value: str | None = None
    schedules: list[ScheduledRule] = field(default_factory=list)
    state_machines: dict[str, str] = field(default_factory=dict)
    # Logical ids of the NO_OP_TYPES resources, and of those whose Condition is false
    # (-> the condition's name): every resource of the template is accounted for.
    no_ops: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    # Each deployed resource's properties with intrinsics resolved, as they were applied.
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)


# Context: clients, names, ARNs --------------------------------------------------------------

# moto's fixed fake credentials: the deployer only ever talks to moto, and explicit
# fake keys mean real credentials in the environment are never sent anywhere.
_FAKE_CREDENTIALS: Final = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_SUFFIX_ALPHABET: Final = string.ascii_uppercase + string.digits


@dataclass
class DeployContext:
    """Where to deploy (moto's endpoint, or None inside `moto.mock_aws`) and as what."""

    endpoint_url: str | None = None
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID
    stack_name: str = DEFAULT_STACK_NAME
    # Fixes the random suffixes of generated names (tests); None: fresh ones.
    seed: int | None = None
    _clients: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # noqa: S311 - names, not secrets

    def client(self, service: str) -> Any:
        """A boto3 client for `service`, made once per context."""
        if service not in self._clients:
            self._clients[service] = boto3.client(
                service,
                region_name=self.region,
                endpoint_url=self.endpoint_url,
                # botocore 1.44 sends DynamoDB calls to account-based endpoints, which
                # moto's stream routing does not recognise (FIELD-NOTES "moto").
                config=Config(account_id_endpoint_mode="disabled"),
                **_FAKE_CREDENTIALS,
            )
        return self._clients[service]

    def physical_name(self, logical_id: str, *, limit: int, lower: bool = False) -> str:
        """A CloudFormation-like generated name: `<Stack>-<LogicalId>-<RANDOM12>`.

        The logical id is cut so the whole fits `limit`; `lower` for services that
        accept only lower case (S3). Logical ids are alphanumeric, so every service's
        charset accepts the result.
        """
        suffix = "".join(self._random.choices(_SUFFIX_ALPHABET, k=12))
        prefix = f"{self.stack_name}-{logical_id}"[: limit - len(suffix) - 1]
        name = f"{prefix}-{suffix}"
        return name.lower() if lower else name

    def arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        region = self.region if regional else ""
        return f"arn:aws:{service}:{region}:{self.account_id}:{resource}"


Deployer = Callable[[DeployContext, str, dict[str, Any]], Deployed]


def _name(
    context: DeployContext,
    logical_id: str,
    explicit: Any,
    *,
    limit: int,
    lower: bool = False,
) -> str:
    """The template's explicit name when it gives one, else a generated one."""
    if explicit:
        return str(explicit)
    return context.physical_name(logical_id, limit=limit, lower=lower)


def _pick(properties: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """The given keys of `properties` that are present (CloudFormation and API share them)."""
    return {key: properties[key] for key in keys if key in properties}


def _lower_first(key: str) -> str:
    return key[:1].lower() + key[1:]


def _camel(value: Any) -> Any:
    """CloudFormation's PascalCase shape as the camelCase one of REST-JSON APIs.

    Only for shapes whose keys are all field names (never for user maps such as tags
    or stage variables, whose keys must stay as written).
    """
    if isinstance(value, dict):
        return {_lower_first(k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(item) for item in value]
    return value


def _renamed(mapping: Mapping[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
    return {renames.get(key, key): value for key, value in mapping.items()}


def _camel_fields(properties: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """`_pick` with top-level keys in camelCase; nested values left as they are."""
    return {_lower_first(k): v for k, v in _pick(properties, *keys).items()}


def _tag_map(properties: Mapping[str, Any]) -> dict[str, str]:
    """CloudFormation's `Tags: [{Key, Value}]` as the `{key: value}` many APIs take."""
    tags = properties.get("Tags") or []
    if isinstance(tags, dict):  # a few types (SSM, API Gateway v2) take a map already
        return {str(k): str(v) for k, v in tags.items()}
    return {str(tag["Key"]): str(tag["Value"]) for tag in tags}


def _tag_list(properties: Mapping[str, Any], key: str = "Key", value: str = "Value") -> list[Any]:
    return [{key: k, value: v} for k, v in _tag_map(properties).items()]


def _json_text(value: Any) -> str:
    """A policy or pattern given either as JSON text or as an object."""
    return value if isinstance(value, str) else json.dumps(value)


def _attribute_text(value: Any) -> str:
    """SQS/SNS attribute values are strings: booleans as `true`/`false`, objects as JSON."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _placeholder_zip(source: str | None = None) -> bytes:
    """The code moto stores for a function or layer.

    The template's code lives in the CDK asset bucket, which does not exist locally;
    the local runtime imports handlers from the project tree instead. Inline code
    (`Code.ZipFile`) is kept as `index.py`, as Lambda would.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        if source is None:
            archive.writestr(
                "README.txt", "Rebates local cloud: this code runs in-process from the project.\n"
            )
        else:
            archive.writestr("index.py", source)
    return buffer.getvalue()


# IAM, KMS --------------------------------------------------------------------------------


def deploy_role(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    # moto's Lambda refuses a role that does not exist (Step Functions checks only the
    # ARN's form), so roles are created, with their trust policy. moto evaluates no IAM,
    # so managed and inline policies (and AWS::IAM::Policy) would change nothing.
    name = _name(context, logical_id, properties.get("RoleName"), limit=64)
    request = {
        "RoleName": name,
        "AssumeRolePolicyDocument": _json_text(properties["AssumeRolePolicyDocument"]),
        **_pick(properties, "Path", "Description", "MaxSessionDuration", "PermissionsBoundary"),
    }
    if "Tags" in properties:
        request["Tags"] = _tag_list(properties)
    role = context.client("iam").create_role(**request)["Role"]
    return Deployed(name, {"Arn": role["Arn"], "RoleId": role["RoleId"]})


def deploy_kms_key(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    kms = context.client("kms")
    request = _pick(properties, "Description", "KeyUsage", "KeySpec", "MultiRegion", "Origin")
    if "KeyPolicy" in properties:
        request["Policy"] = _json_text(properties["KeyPolicy"])
    if "Tags" in properties:
        request["Tags"] = _tag_list(properties, "TagKey", "TagValue")
    key = kms.create_key(**request)["KeyMetadata"]
    if properties.get("EnableKeyRotation"):
        kms.enable_key_rotation(KeyId=key["KeyId"])
    if properties.get("Enabled") is False:
        kms.disable_key(KeyId=key["KeyId"])
    return Deployed(key["KeyId"], {"Arn": key["Arn"], "KeyId": key["KeyId"]})


# DynamoDB ------------------------------------------------------------------------------------

_INDEX_FIELDS: Final = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")


def deploy_table(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    dynamodb = context.client("dynamodb")
    name = _name(context, logical_id, properties.get("TableName"), limit=255)
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
        **_pick(
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
            request[kind] = [_pick(index, *_INDEX_FIELDS) for index in properties[kind]]
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
            **_pick(sse, "SSEType", "KMSMasterKeyId"),
        }
    if "Tags" in properties:
        request["Tags"] = _tag_list(properties)
    return request


# S3 -----------------------------------------------------------------------------------------


def deploy_bucket(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    s3 = context.client("s3")
    name = _name(context, logical_id, properties.get("BucketName"), limit=63, lower=True)
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
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tag_list(properties)})
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
        | _pick(rule, "BucketKeyEnabled")
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
    sizes = _pick(rule, "ObjectSizeGreaterThan", "ObjectSizeLessThan")
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


# SQS, SNS ------------------------------------------------------------------------------------

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


def _fifo_name(
    context: DeployContext, logical_id: str, explicit: Any, fifo: Any, *, limit: int
) -> str:
    """A queue or topic name; a FIFO one must end in `.fifo`, within the same limit."""
    if explicit:
        return str(explicit)
    if fifo:
        return context.physical_name(logical_id, limit=limit - len(".fifo")) + ".fifo"
    return context.physical_name(logical_id, limit=limit)


def deploy_queue(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    sqs = context.client("sqs")
    name = _fifo_name(
        context, logical_id, properties.get("QueueName"), properties.get("FifoQueue"), limit=80
    )
    # RedrivePolicy arrives resolved: its deadLetterTargetArn is the DLQ's ARN.
    attributes = {k: _attribute_text(v) for k, v in _pick(properties, *_QUEUE_ATTRIBUTES).items()}
    request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    if "Tags" in properties:
        request["tags"] = _tag_map(properties)
    url = sqs.create_queue(**request)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return Deployed(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})


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
    name = _fifo_name(
        context, logical_id, properties.get("TopicName"), properties.get("FifoTopic"), limit=256
    )
    attributes = {k: _attribute_text(v) for k, v in _pick(properties, *_TOPIC_ATTRIBUTES).items()}
    request: dict[str, Any] = {"Name": name, "Attributes": attributes}
    if "Tags" in properties:
        request["Tags"] = _tag_list(properties)
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
        k: _attribute_text(v) for k, v in _pick(properties, *_SUBSCRIPTION_ATTRIBUTES).items()
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


# Kinesis, Firehose ---------------------------------------------------------------------------


def deploy_stream(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    kinesis = context.client("kinesis")
    name = _name(context, logical_id, properties.get("Name"), limit=128)
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
    name = _name(context, logical_id, properties.get("DeliveryStreamName"), limit=64)
    request = {"DeliveryStreamName": name, **_pick(properties, *_FIREHOSE_FIELDS)}
    if "Tags" in properties:
        request["Tags"] = _tag_list(properties)
    arn = firehose.create_delivery_stream(**request)["DeliveryStreamARN"]
    return Deployed(name, {"Arn": arn})


# EventBridge ---------------------------------------------------------------------------------


def deploy_event_bus(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    name = str(properties["Name"])  # required by CloudFormation (the bus is `rebates`)
    request = {
        "Name": name,
        **_pick(properties, "Description", "KmsKeyIdentifier", "DeadLetterConfig"),
    }
    if "Tags" in properties:
        request["Tags"] = _tag_list(properties)
    arn = context.client("events").create_event_bus(**request)["EventBusArn"]
    return Deployed(name, {"Arn": arn, "Name": name})


def _bus_name(value: Any) -> str:
    """EventBusName is a name (a Ref) or an ARN (a GetAtt); APIs accept the name."""
    text = str(value or "default")
    return text.split("event-bus/", 1)[1] if text.startswith("arn:") else text


def deploy_rule(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    events = context.client("events")
    name = _name(context, logical_id, properties.get("Name"), limit=64)
    # put_rule and put_targets each need the bus's name (the property is a Ref, i.e.
    # the name, or an ARN): without it moto puts the rule, or looks for it, on
    # `default`, and the rule never sees the custom bus's events.
    bus = _bus_name(properties.get("EventBusName"))
    request: dict[str, Any] = {
        "Name": name,
        "EventBusName": bus,
        "State": properties.get("State", "ENABLED"),
        **_pick(properties, "Description", "ScheduleExpression", "RoleArn"),
    }
    if "EventPattern" in properties:
        request["EventPattern"] = _json_text(properties["EventPattern"])
    arn = events.put_rule(**request)["RuleArn"]
    targets = properties.get("Targets", [])
    if targets:
        # CloudFormation's target shape is the API's (Id, Arn, Input, InputPath,
        # InputTransformer, SqsParameters, DeadLetterConfig, RetryPolicy, ...).
        # moto delivers to SQS and CloudWatch Logs targets only (FIELD-NOTES "moto").
        events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
    # Like CloudFormation: Ref is the name on the default bus, `bus|name` elsewhere.
    physical_id = name if bus == "default" else f"{bus}|{name}"
    return Deployed(physical_id, {"Arn": arn})


# Lambda --------------------------------------------------------------------------------------


def deploy_layer(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    name = _name(context, logical_id, properties.get("LayerName"), limit=64)
    layer = context.client("lambda").publish_layer_version(
        LayerName=name,
        Content={"ZipFile": _placeholder_zip()},
        **_pick(
            properties,
            "Description",
            "CompatibleRuntimes",
            "CompatibleArchitectures",
            "LicenseInfo",
        ),
    )
    arn = layer["LayerVersionArn"]
    return Deployed(arn, {"LayerVersionArn": arn})


_FUNCTION_FIELDS: Final = (
    "Runtime",
    "Role",
    "Handler",
    "Description",
    "Timeout",
    "MemorySize",
    "Environment",
    "TracingConfig",
    "Architectures",
    "Layers",
    "DeadLetterConfig",
    "EphemeralStorage",
    "KmsKeyArn",
)


def deploy_function(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # VpcConfig, LoggingConfig and SnapStart have no local effect (the runtime runs the
    # handler in-process and keeps its own logs) and are left out.
    if properties.get("PackageType") == "Image":
        raise TemplateError("container image functions cannot run in-process")
    lambda_ = context.client("lambda")
    name = _name(context, logical_id, properties.get("FunctionName"), limit=64)
    inline = (properties.get("Code") or {}).get("ZipFile")
    request = {
        "FunctionName": name,
        "Code": {"ZipFile": _placeholder_zip(inline)},
        **_pick(properties, *_FUNCTION_FIELDS),
    }
    if "Tags" in properties:
        request["Tags"] = _tag_map(properties)
    arn = lambda_.create_function(**request)["FunctionArn"]
    if "ReservedConcurrentExecutions" in properties:
        lambda_.put_function_concurrency(
            FunctionName=name,
            ReservedConcurrentExecutions=int(properties["ReservedConcurrentExecutions"]),
        )
    return Deployed(name, {"Arn": arn})


_MAPPING_FIELDS: Final = (
    "EventSourceArn",
    "BatchSize",
    "Enabled",
    "StartingPosition",
    "StartingPositionTimestamp",
    "MaximumBatchingWindowInSeconds",
    "FunctionResponseTypes",
    "BisectBatchOnFunctionError",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
    "ParallelizationFactor",
    "DestinationConfig",
    "FilterCriteria",
    "ScalingConfig",
    "TumblingWindowInSeconds",
)


def deploy_event_source_mapping(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    request = {"FunctionName": properties["FunctionName"], **_pick(properties, *_MAPPING_FIELDS)}
    mapping = context.client("lambda").create_event_source_mapping(**request)
    source = str(properties["EventSourceArn"])
    if _is_queue_arn(source):
        # moto would invoke the function from inside SendMessage, one message at a time,
        # with no visibility timeout or redrive; the local poller takes the queue over
        # (Deployment.queue_mappings), so the mapping only stays for `aws lambda` to list.
        # The runtime's module (every patch of moto lives there); imported when needed.
        from infra.local.patches import detach_sqs_event_source

        detach_sqs_event_source(source, mapping["FunctionArn"])
    elif _is_table_stream_arn(source):
        # Likewise: moto would run the function inside the write (mid-transaction, before
        # it commits) and unfiltered; the local stream poller reads the stream instead.
        from infra.local.patches import detach_table_stream_source

        detach_table_stream_source(source, mapping["FunctionArn"])
    # Kinesis mappings are left to moto, which drives them.
    uuid = str(mapping["UUID"])
    return Deployed(
        uuid, {"Id": uuid, "EventSourceMappingArn": mapping.get("EventSourceMappingArn", "")}
    )


def _is_queue_arn(arn: str) -> bool:
    return arn.startswith("arn:") and arn.split(":")[2] == "sqs"


def _is_table_stream_arn(arn: str) -> bool:
    parts = arn.split(":", 5)
    return len(parts) == 6 and parts[2] == "dynamodb" and "/stream/" in parts[5]


def deploy_event_invoke_config(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # Retries and destinations of asynchronous invocations: moto stores them, and
    # `aws lambda get-function-event-invoke-config` shows them.
    function = str(properties["FunctionName"])
    qualifier = str(properties.get("Qualifier", "$LATEST"))
    context.client("lambda").put_function_event_invoke_config(
        FunctionName=function,
        Qualifier=qualifier,
        **_pick(
            properties, "MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig"
        ),
    )
    return Deployed(f"{function}|{qualifier}")


# Step Functions ------------------------------------------------------------------------------


def state_machine_definition(properties: Mapping[str, Any]) -> str:
    """The final ASL: DefinitionString or Definition, with DefinitionSubstitutions applied."""
    if "DefinitionS3Location" in properties:
        raise TemplateError(
            "DefinitionS3Location needs the CDK asset bucket: inline the definition"
        )
    if "DefinitionString" in properties:
        text = str(properties["DefinitionString"])
    elif "Definition" in properties:
        text = json.dumps(properties["Definition"])
    else:
        raise TemplateError("a state machine needs DefinitionString or Definition")
    for key, value in (properties.get("DefinitionSubstitutions") or {}).items():
        text = text.replace("${" + key + "}", _attribute_text(value))
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        raise TemplateError(f"the resolved definition is not JSON: {error}") from error
    return text


def deploy_state_machine(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # moto runs the definition only with `execute_state_machine` configured (the local
    # cloud's job); its service tasks call back into moto on MOTO_PORT.
    name = _name(context, logical_id, properties.get("StateMachineName"), limit=80)
    request: dict[str, Any] = {
        "name": name,
        "definition": state_machine_definition(properties),
        "roleArn": properties["RoleArn"],
        "type": properties.get("StateMachineType", "STANDARD"),
    }
    for key in ("LoggingConfiguration", "TracingConfiguration"):
        if key in properties:
            request[_lower_first(key)] = _camel(properties[key])
    if "Tags" in properties:
        request["tags"] = _tag_list(properties, "key", "value")
    arn = context.client("stepfunctions").create_state_machine(**request)["stateMachineArn"]
    return Deployed(arn, {"Arn": arn, "Name": name})


# SES ----------------------------------------------------------------------------------------


def deploy_email_identity(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # moto sends only from a verified identity, and verifies at once. SES v1 and v2
    # share one backend in moto, so v1's verify call serves v1 and v2 sends alike.
    identity = str(properties["EmailIdentity"])
    ses = context.client("ses")
    if "@" in identity:
        ses.verify_email_identity(EmailAddress=identity)
    else:
        ses.verify_domain_identity(Domain=identity)
    return Deployed(identity)


# API Gateway ----------------------------------------------------------------------------------


def deploy_rest_api(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    if any(key in properties for key in ("Body", "BodyS3Location", "CloneFrom")):
        raise TemplateError("OpenAPI-defined REST APIs are not supported locally")
    apigateway = context.client("apigateway")
    request: dict[str, Any] = {
        "name": _name(context, logical_id, properties.get("Name"), limit=128),
        **_camel_fields(
            properties,
            "Description",
            "ApiKeySourceType",
            "BinaryMediaTypes",
            "MinimumCompressionSize",
            "DisableExecuteApiEndpoint",
        ),
    }
    if "ApiKeySourceType" in properties:  # the API names it apiKeySource
        request["apiKeySource"] = request.pop("apiKeySourceType")
    if "EndpointConfiguration" in properties:
        request["endpointConfiguration"] = _camel(properties["EndpointConfiguration"])
    if "Policy" in properties:
        request["policy"] = _json_text(properties["Policy"])
    if "Tags" in properties:
        request["tags"] = _tag_map(properties)
    api = apigateway.create_rest_api(**request)
    return Deployed(api["id"], {"RestApiId": api["id"], "RootResourceId": api["rootResourceId"]})


def deploy_api_resource(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    resource = context.client("apigateway").create_resource(
        restApiId=properties["RestApiId"],
        parentId=properties["ParentId"],
        pathPart=properties["PathPart"],
    )
    return Deployed(resource["id"], {"ResourceId": resource["id"]})


_INTEGRATION_FIELDS: Final = (
    "Type",
    "IntegrationHttpMethod",
    "Uri",
    "Credentials",
    "RequestParameters",
    "RequestTemplates",
    "PassthroughBehavior",
    "ContentHandling",
    "TimeoutInMillis",
    "CacheNamespace",
    "CacheKeyParameters",
    "ConnectionType",
    "ConnectionId",
)


def deploy_api_method(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # moto implements no proxy integrations (FIELD-NOTES "moto"): the method and its
    # integration are created so `aws apigateway` shows them, and the local API serves
    # the route from Deployment.routes.
    apigateway = context.client("apigateway")
    where = {
        "restApiId": properties["RestApiId"],
        "resourceId": properties["ResourceId"],
        "httpMethod": properties["HttpMethod"],
    }
    apigateway.put_method(
        **where,
        authorizationType=properties.get("AuthorizationType", "NONE"),
        **_camel_fields(
            properties,
            "ApiKeyRequired",
            "AuthorizerId",
            "AuthorizationScopes",
            "OperationName",
            "RequestParameters",
            "RequestModels",
            "RequestValidatorId",
        ),
    )
    integration = properties.get("Integration")
    if integration:
        integration_request = _camel_fields(integration, *_INTEGRATION_FIELDS)
        apigateway.put_integration(**where, **integration_request)
    physical_id = "|".join(where.values())
    return Deployed(physical_id)


def deploy_request_validator(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    validator = context.client("apigateway").create_request_validator(
        restApiId=properties["RestApiId"],
        name=_name(context, logical_id, properties.get("Name"), limit=128),
        **_camel_fields(properties, "ValidateRequestBody", "ValidateRequestParameters"),
    )
    return Deployed(validator["id"], {"RequestValidatorId": validator["id"]})


def deploy_api_deployment(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # moto refuses a deployment of an API with no method or integration, like AWS;
    # CDK makes the Deployment depend on every Method, so they exist by now.
    deployment = context.client("apigateway").create_deployment(
        restApiId=properties["RestApiId"],
        **_camel_fields(properties, "Description", "StageName"),
    )
    return Deployed(deployment["id"], {"DeploymentId": deployment["id"]})


def deploy_api_stage(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # MethodSettings (throttling, logging) and AccessLogSetting have no local effect.
    request: dict[str, Any] = {
        "restApiId": properties["RestApiId"],
        "stageName": properties.get("StageName") or context.physical_name(logical_id, limit=128),
        "deploymentId": properties["DeploymentId"],
        **_camel_fields(
            properties,
            "Description",
            "Variables",
            "TracingEnabled",
            "CacheClusterEnabled",
            "CacheClusterSize",
        ),
    }
    if "Tags" in properties:
        request["tags"] = _tag_map(properties)
    context.client("apigateway").create_stage(**request)
    return Deployed(request["stageName"])


def deploy_api_key(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    # moto generates the key's value (as API Gateway does) unless the template gives one;
    # Deployment.api_key_value reads it back with includeValue=True.
    request: dict[str, Any] = {
        "name": _name(context, logical_id, properties.get("Name"), limit=128),
        **_camel_fields(
            properties, "Description", "Enabled", "GenerateDistinctId", "Value", "CustomerId"
        ),
    }
    if "StageKeys" in properties:
        request["stageKeys"] = _camel(properties["StageKeys"])
    if "Tags" in properties:
        request["tags"] = _tag_map(properties)
    key = context.client("apigateway").create_api_key(**request)
    return Deployed(key["id"], {"APIKeyId": key["id"]})


def deploy_usage_plan(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # Throttling and quotas are stored, not enforced, by moto and the local API.
    request: dict[str, Any] = {
        "name": _name(context, logical_id, properties.get("UsagePlanName"), limit=128),
        **_camel(_pick(properties, "Description", "ApiStages", "Throttle", "Quota")),
    }
    if "Tags" in properties:
        request["tags"] = _tag_map(properties)
    plan = context.client("apigateway").create_usage_plan(**request)
    return Deployed(plan["id"], {"Id": plan["id"]})


def deploy_usage_plan_key(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    key = context.client("apigateway").create_usage_plan_key(
        usagePlanId=properties["UsagePlanId"],
        keyId=properties["KeyId"],
        keyType=properties["KeyType"],
    )
    return Deployed(key["id"], {"Id": key["id"]})


# CloudWatch, Glue -----------------------------------------------------------------------------

_ALARM_FIELDS: Final = (
    "ActionsEnabled",
    "AlarmActions",
    "AlarmDescription",
    "ComparisonOperator",
    "DatapointsToAlarm",
    "Dimensions",
    "EvaluateLowSampleCountPercentile",
    "EvaluationPeriods",
    "ExtendedStatistic",
    "InsufficientDataActions",
    "MetricName",
    "Metrics",
    "Namespace",
    "OKActions",
    "Period",
    "Statistic",
    "Threshold",
    "ThresholdMetricId",
    "TreatMissingData",
    "Unit",
)


def deploy_alarm(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    name = _name(context, logical_id, properties.get("AlarmName"), limit=255)
    request = {"AlarmName": name, **_pick(properties, *_ALARM_FIELDS)}
    if "Tags" in properties:
        request["Tags"] = _tag_list(properties)
    context.client("cloudwatch").put_metric_alarm(**request)
    return Deployed(name, {"Arn": context.arn("cloudwatch", f"alarm:{name}")})


def _glue_name(context: DeployContext, logical_id: str, explicit: Any) -> str:
    # Athena reads Glue names in lower case with underscores only.
    generated = context.physical_name(logical_id, limit=255, lower=True).replace("-", "_")
    return str(explicit) if explicit else generated


def deploy_glue_database(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    database = dict(properties["DatabaseInput"])
    database["Name"] = _glue_name(context, logical_id, database.get("Name"))
    context.client("glue").create_database(DatabaseInput=database, **_pick(properties, "CatalogId"))
    return Deployed(database["Name"])


def deploy_glue_table(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    table = dict(properties["TableInput"])
    table["Name"] = _glue_name(context, logical_id, table.get("Name"))
    context.client("glue").create_table(
        DatabaseName=properties["DatabaseName"],
        TableInput=table,
        **_pick(properties, "CatalogId"),
    )
    return Deployed(table["Name"])


# The tables ---------------------------------------------------------------------------------

DEPLOYERS: Final[dict[str, Deployer]] = {
    "AWS::ApiGateway::ApiKey": deploy_api_key,
    "AWS::ApiGateway::Deployment": deploy_api_deployment,
    "AWS::ApiGateway::Method": deploy_api_method,
    "AWS::ApiGateway::RequestValidator": deploy_request_validator,
    "AWS::ApiGateway::Resource": deploy_api_resource,
    "AWS::ApiGateway::RestApi": deploy_rest_api,
    "AWS::ApiGateway::Stage": deploy_api_stage,
    "AWS::ApiGateway::UsagePlan": deploy_usage_plan,
    "AWS::ApiGateway::UsagePlanKey": deploy_usage_plan_key,
    "AWS::CloudWatch::Alarm": deploy_alarm,
    "AWS::DynamoDB::Table": deploy_table,
    "AWS::Events::EventBus": deploy_event_bus,
    "AWS::Events::Rule": deploy_rule,
    "AWS::Glue::Database": deploy_glue_database,
    "AWS::Glue::Table": deploy_glue_table,
    "AWS::IAM::Role": deploy_role,
    "AWS::KMS::Key": deploy_kms_key,
    "AWS::Kinesis::Stream": deploy_stream,
    "AWS::KinesisFirehose::DeliveryStream": deploy_delivery_stream,
    "AWS::Lambda::EventInvokeConfig": deploy_event_invoke_config,
    "AWS::Lambda::EventSourceMapping": deploy_event_source_mapping,
    "AWS::Lambda::Function": deploy_function,
    "AWS::Lambda::LayerVersion": deploy_layer,
    "AWS::S3::Bucket": deploy_bucket,
    "AWS::SES::EmailIdentity": deploy_email_identity,
    "AWS::SNS::Subscription": deploy_subscription,
    "AWS::SNS::Topic": deploy_topic,
    "AWS::SQS::Queue": deploy_queue,
    "AWS::StepFunctions::StateMachine": deploy_state_machine,
    "Custom::S3BucketNotifications": deploy_bucket_notifications,
}

# Types with no local effect, each with the reason. They are still "deployed" as a name
# (and an ARN where something reads one), so references to them resolve.
NO_OP_TYPES: Final[dict[str, str]] = {
    "AWS::ApiGateway::Account": "account-wide CloudWatch role for API Gateway execution logs; "
    "the local API keeps no API Gateway logs",
    "AWS::CDK::Metadata": "CDK's usage metadata for CloudFormation; nothing to create",
    "AWS::CloudWatch::Dashboard": "a console view; no local effect",
    "AWS::IAM::ManagedPolicy": "moto does not evaluate IAM policies",
    "AWS::IAM::Policy": "moto does not evaluate IAM policies (roles are created: Lambda and "
    "Step Functions need their ARNs to exist)",
    "AWS::Lambda::Permission": "resource policy letting a service invoke a function; the local "
    "cloud invokes functions directly and moto enforces no permissions",
    "AWS::Logs::LogGroup": "the local runtime logs to the console; nothing reads CloudWatch "
    "Logs locally (Ref gives the name, Arn a log-group ARN)",
    "AWS::Logs::LogStream": "a stream in a no-op log group (e.g. Firehose error logging)",
    "AWS::Logs::MetricFilter": "metric filters over CloudWatch Logs, which are not kept locally",
    "AWS::S3::BucketPolicy": "moto does not enforce bucket policies (TLS-only, log delivery)",
    "AWS::SNS::TopicPolicy": "moto does not enforce topic policies",
    "AWS::SQS::QueuePolicy": "moto does not enforce queue policies; EventBridge and S3 deliver "
    "to queues without them",
}

# Ref/GetAtt of the no-ops that something reads: anything else is just a name.
_NO_OP_NAMES: Final = {
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
}


def _deploy_no_op(
    context: DeployContext, logical_id: str, resource_type: str, properties: Mapping[str, Any]
) -> Deployed:
    explicit = properties.get(_NO_OP_NAMES.get(resource_type, ""))
    name = _name(context, logical_id, explicit, limit=64)
    if resource_type == "AWS::Logs::LogGroup":
        return Deployed(name, {"Arn": context.arn("logs", f"log-group:{name}:*")})
    if resource_type == "AWS::IAM::ManagedPolicy":
        arn = context.arn("iam", f"policy/{name}", regional=False)
        return Deployed(arn, {"PolicyArn": arn})
    return Deployed(name)


# Deploying ----------------------------------------------------------------------------------


def unsupported_resources(
    template: Mapping[str, Any], skipped: Iterable[str] = ()
) -> dict[str, str]:
    """Logical id -> type for every active resource that is neither deployable nor a no-op."""
    ignored = set(skipped)
    return {
        logical_id: definition.get("Type", "<no Type>")
        for logical_id, definition in resources_of(template).items()
        if logical_id not in ignored
        and definition.get("Type") not in DEPLOYERS
        and definition.get("Type") not in NO_OP_TYPES
    }


def deploy(template: dict[str, Any], context: DeployContext) -> Deployment:
    """Deploy every active resource of `template` into moto, in dependency order.

    Everything that can be checked is checked before the first resource is created
    (types, references, cycles, intrinsics), so such a template changes nothing.
    A resource that fails stops the deployment with a `DeployError` naming it.
    """
    if "Transform" in template:
        raise TemplateError("template transforms (e.g. SAM) are not supported locally")
    resolver = Resolver(
        template,
        region=context.region,
        account_id=context.account_id,
        stack_name=context.stack_name,
    )
    deployment = Deployment(skipped=inactive_resources(template, resolver))
    unsupported = unsupported_resources(template, deployment.skipped)
    if unsupported:
        raise UnsupportedResourceError(unsupported)
    order = deployment_order(template, resolver)
    check_intrinsics(template)
    resources = resources_of(template)
    for logical_id in order:
        _deploy_one(context, resolver, deployment, logical_id, resources[logical_id])
    deployment.outputs = _outputs(template, resolver)
    _summarise(context, deployment)
    return deployment


def _deploy_one(
    context: DeployContext,
    resolver: Resolver,
    deployment: Deployment,
    logical_id: str,
    definition: Mapping[str, Any],
) -> None:
    resource_type = str(definition["Type"])
    try:
        properties = resolver.resolve(definition.get("Properties") or {}, resource=logical_id)
        if resource_type in NO_OP_TYPES:
            deployed = _deploy_no_op(context, logical_id, resource_type, properties)
            deployment.no_ops.append(logical_id)
        else:
            deployed = DEPLOYERS[resource_type](context, logical_id, properties)
    except Exception as error:
        # boto3's ClientError and ParamValidationError, TemplateError, a missing
        # required property (KeyError): each is reported against its resource.
        raise DeployError(logical_id, resource_type, _describe(error)) from error
    resolver.record(logical_id, deployed.physical_id, deployed.attributes)
    deployment.resources[logical_id] = deployed
    deployment.types[logical_id] = resource_type
    deployment.properties[logical_id] = properties


def _describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing required property {error}"
    return f"{type(error).__name__}: {error}"


def _outputs(template: Mapping[str, Any], resolver: Resolver) -> dict[str, str]:
    outputs: dict[str, str] = {}
    for key, output in template.get("Outputs", {}).items():
        if "Condition" in output and not resolver.condition(output["Condition"]):
            continue
        value = resolver.resolve(output["Value"], resource=f"output {key}")
        outputs[key] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return outputs


# What the local runtime needs ----------------------------------------------------------------


def _summarise(context: DeployContext, deployment: Deployment) -> None:
    deployment.functions = {f.name: f for f in _functions(deployment)}
    deployment.queue_mappings = _queue_mappings(deployment)
    deployment.table_stream_mappings = _table_stream_mappings(deployment)
    deployment.routes = _routes(deployment)
    deployment.schedules = _schedules(deployment)
    deployment.state_machines = {
        i: d.physical_id for i, d in _of_type(deployment, "AWS::StepFunctions::StateMachine")
    }
    deployment.api_key_value = _api_key_value(context, deployment)


def _of_type(deployment: Deployment, resource_type: str) -> list[tuple[str, Deployed]]:
    return [(i, d) for i, d in deployment.resources.items() if deployment.types[i] == resource_type]


def _functions(deployment: Deployment) -> list[LocalFunctionRecord]:
    records = []
    for logical_id, deployed in _of_type(deployment, "AWS::Lambda::Function"):
        properties = deployment.properties[logical_id]
        environment = (properties.get("Environment") or {}).get("Variables") or {}
        records.append(
            LocalFunctionRecord(
                logical_id=logical_id,
                name=deployed.physical_id,
                arn=deployed.attributes["Arn"],
                handler=str(properties["Handler"]),
                environment={str(k): str(v) for k, v in environment.items()},
                timeout_seconds=int(properties.get("Timeout", 3)),  # Lambda's defaults
                memory_mb=int(properties.get("MemorySize", 128)),
                inline_code="ZipFile" in (properties.get("Code") or {}),
            )
        )
    return records


def _function_name(deployment: Deployment, reference: str) -> str:
    """A function's name from its name, ARN or qualified ARN (`...:function:f:alias`)."""
    for record in deployment.functions.values():
        if reference in {record.name, record.arn}:
            return record.name
    return (
        reference.split(":function:", 1)[1].split(":", 1)[0]
        if ":function:" in reference
        else reference
    )


def _queue_mappings(deployment: Deployment) -> list[QueueMappingRecord]:
    queues = {
        d.attributes["Arn"]: d.physical_id for _, d in _of_type(deployment, "AWS::SQS::Queue")
    }
    records = []
    for logical_id, deployed in _of_type(deployment, "AWS::Lambda::EventSourceMapping"):
        properties = deployment.properties[logical_id]
        source = str(properties["EventSourceArn"])
        if not _is_queue_arn(source):
            continue
        records.append(
            QueueMappingRecord(
                uuid=deployed.physical_id,
                function_name=_function_name(deployment, str(properties["FunctionName"])),
                queue_url=queues.get(source, ""),
                queue_arn=source,
                batch_size=int(properties.get("BatchSize", 10)),  # SQS's default
                report_batch_item_failures="ReportBatchItemFailures"
                in properties.get("FunctionResponseTypes", []),
                enabled=bool(properties.get("Enabled", True)),
                maximum_batching_window_seconds=int(
                    properties.get("MaximumBatchingWindowInSeconds", 0)
                ),
            )
        )
    return records


def _table_stream_mappings(deployment: Deployment) -> list[TableStreamMappingRecord]:
    records = []
    for logical_id, deployed in _of_type(deployment, "AWS::Lambda::EventSourceMapping"):
        properties = deployment.properties[logical_id]
        source = str(properties["EventSourceArn"])
        if not _is_table_stream_arn(source):
            continue
        on_failure = ((properties.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
            "Destination"
        )
        records.append(
            TableStreamMappingRecord(
                uuid=deployed.physical_id,
                function_name=_function_name(deployment, str(properties["FunctionName"])),
                stream_arn=source,
                batch_size=int(properties.get("BatchSize", 100)),  # DynamoDB's default
                starting_position=str(properties.get("StartingPosition", "TRIM_HORIZON")),
                filter_criteria=properties.get("FilterCriteria"),
                report_batch_item_failures="ReportBatchItemFailures"
                in properties.get("FunctionResponseTypes", []),
                bisect_on_error=bool(properties.get("BisectBatchOnFunctionError", False)),
                maximum_retry_attempts=int(properties.get("MaximumRetryAttempts", -1)),
                on_failure_queue_arn=str(on_failure) if on_failure else None,
                enabled=bool(properties.get("Enabled", True)),
            )
        )
    return records


_LAMBDA_INTEGRATION_URI: Final = re.compile(
    r":lambda:path/[^/]+/functions/(?P<arn>.+)/invocations$"
)


def _routes(deployment: Deployment) -> list[Route]:
    paths = _resource_paths(deployment)
    routes = []
    for logical_id, _ in _of_type(deployment, "AWS::ApiGateway::Method"):
        properties = deployment.properties[logical_id]
        integration = properties.get("Integration") or {}
        match = _LAMBDA_INTEGRATION_URI.search(str(integration.get("Uri", "")))
        if integration.get("Type") != "AWS_PROXY" or match is None:
            continue
        routes.append(
            Route(
                method=str(properties["HttpMethod"]).upper(),
                path=paths[str(properties["ResourceId"])],
                function_name=_function_name(deployment, match.group("arn")),
                api_key_required=bool(properties.get("ApiKeyRequired", False)),
                authorization_type=str(properties.get("AuthorizationType", "NONE")),
            )
        )
    return routes


def _resource_paths(deployment: Deployment) -> dict[str, str]:
    """API Gateway resource id -> its path (`/v1/claims/{claimId}`), roots being `/`."""
    parents: dict[str, tuple[str, str]] = {}
    for logical_id, deployed in _of_type(deployment, "AWS::ApiGateway::Resource"):
        properties = deployment.properties[logical_id]
        parents[deployed.physical_id] = (str(properties["ParentId"]), str(properties["PathPart"]))

    def path(resource_id: str) -> str:
        if resource_id not in parents:  # a RestApi's root resource
            return ""
        parent, part = parents[resource_id]
        return f"{path(parent)}/{part}"

    roots = {
        d.attributes["RootResourceId"] for _, d in _of_type(deployment, "AWS::ApiGateway::RestApi")
    }
    return {resource_id: path(resource_id) or "/" for resource_id in [*parents, *roots]}


def _schedules(deployment: Deployment) -> list[ScheduledRule]:
    schedules = []
    for logical_id, deployed in _of_type(deployment, "AWS::Events::Rule"):
        properties = deployment.properties[logical_id]
        if "ScheduleExpression" not in properties:
            continue
        schedules.append(
            ScheduledRule(
                name=deployed.physical_id.split("|")[-1],
                logical_id=logical_id,
                schedule_expression=str(properties["ScheduleExpression"]),
                bus_name=_bus_name(properties.get("EventBusName")),
                targets=list(properties.get("Targets", [])),
            )
        )
    return schedules


def _api_key_value(context: DeployContext, deployment: Deployment) -> str | None:
    keys = _of_type(deployment, "AWS::ApiGateway::ApiKey")
    if not keys:
        return None
    key = context.client("apigateway").get_api_key(apiKey=keys[0][1].physical_id, includeValue=True)
    return str(key["value"])
