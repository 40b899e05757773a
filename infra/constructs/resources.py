"""Hardened building blocks: buckets, queues and tables made one way, everywhere.

Every domain construct builds its storage through these helpers so the security
baseline (encryption, TLS-only access, blocked public access, dead-letter queues,
point-in-time recovery) is decided once and cannot be forgotten in a copy. The same goes
for watching it: a dead-letter queue cannot be made without its alarm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from aws_cdk import Acknowledgment, CfnResource, Duration, RemovalPolicy, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from functions.core.tables import TableSpec
from infra.constructs.alarms import Operators

# SQS keeps a message at most 14 days: give poison messages the whole time to be looked at.
DLQ_RETENTION = Duration.days(14)
# DESIGN: a poison message is parked after a few attempts, not retried forever.
MAX_RECEIVE_COUNT = 5
# AWS's advice for Lambda consumers: at least six times the function timeout (30 s here).
DEFAULT_VISIBILITY_TIMEOUT = Duration.minutes(3)


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on `scope` (and only there), with its reason."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def ignore_redundant_depends_on(resource: IConstruct) -> None:
    """Tell cfn-lint that `resource`'s DependsOn on its role is deliberate (W3005).

    CDK makes a function or state machine depend on its whole role construct, so the
    resource waits for the role's policy as well as the role; the role itself is then
    both a DependsOn and a GetAtt, which cfn-lint reports as redundant. The ignore is
    scoped to this resource's Metadata, not to the template.
    """
    cfn = resource.node.default_child
    assert isinstance(cfn, CfnResource)
    cfn.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})


# Housekeeping shared by every bucket: versioning keeps deleted or overwritten objects,
# so old versions and abandoned multipart uploads must expire or they are paid forever.
_HOUSEKEEPING = (
    s3.LifecycleRule(
        id="housekeeping",
        abort_incomplete_multipart_upload_after=Duration.days(7),
        noncurrent_version_expiration=Duration.days(90),
    ),
)


def expire_after(*, days: int) -> s3.LifecycleRule:
    """A lifecycle rule deleting objects `days` after they were written (logs, archives)."""
    return s3.LifecycleRule(id=f"expire-after-{days}-days", expiration=Duration.days(days))


def secure_bucket(
    scope: Construct,
    id: str,
    *,
    access_logs: s3.IBucket | None,
    lifecycle_rules: Sequence[s3.LifecycleRule] = (),
) -> s3.Bucket:
    """A private, versioned, encrypted, TLS-only bucket that logs access to `access_logs`.

    `access_logs=None` is only for the access-log bucket itself (it cannot log to itself).
    Buckets keep the CDK default removal policy (RETAIN): their objects are business data.
    """
    return s3.Bucket(
        scope,
        id,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        # SSE-S3: Athena, S3 access logging and presigned uploads need no key grants.
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        server_access_logs_bucket=access_logs,
        # e.g. Campaigns/Bucket/: one prefix per bucket, named after its owner.
        server_access_logs_prefix=f"{scope.node.id}/{id}/" if access_logs is not None else None,
        lifecycle_rules=[*_HOUSEKEEPING, *lifecycle_rules],
    )


def dead_letter_queue(scope: Construct, id: str, *, operators: Operators, parks: str) -> sqs.Queue:
    """An encrypted, TLS-only queue that parks failed messages for two weeks, and pages
    the operators as soon as one arrives (`parks` says what, for the alarm)."""
    queue = sqs.Queue(
        scope,
        id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=DLQ_RETENTION,
    )
    operators.watch_dead_letter_queue(queue, parks=parks)
    return queue


class QueueWithDlq(Construct):
    """A consumer queue and its DLQ: after MAX_RECEIVE_COUNT failed receives a message
    is parked, not lost (DESIGN "Events").

    SQS-managed encryption rather than a KMS key: EventBridge and S3 can deliver to
    it with no key-policy grants, and it costs nothing.

    `delivery_delay` (SQS DelaySeconds, at most 15 minutes) holds every new message
    back that long before a consumer can receive it.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        operators: Operators,
        visibility_timeout: Duration = DEFAULT_VISIBILITY_TIMEOUT,
        delivery_delay: Duration | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.visibility_timeout = visibility_timeout
        self.dlq = dead_letter_queue(
            self,
            "Dlq",
            operators=operators,
            parks=f"messages of the {scope.node.id} {id} queue that failed "
            f"{MAX_RECEIVE_COUNT} receives",
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=visibility_timeout,
            delivery_delay=delivery_delay,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dlq, max_receive_count=MAX_RECEIVE_COUNT
            ),
        )


def _string_key(name: str | None) -> dynamodb.Attribute | None:
    # Specs name generic key attributes (pk, sk, gsi1pk...); every one holds a string.
    return (
        None if name is None else dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)
    )


def table_from_spec(
    scope: Construct, spec: TableSpec, *, deletion_protection: bool
) -> dynamodb.Table:
    """Create the DynamoDB table `spec` describes: keys, GSIs, TTL and stream come from it.

    The CloudFormation logical id is the spec's `logical_id`, so tools (the local cloud,
    operators reading the template) find a spec's table without guessing CDK's hashes.
    With deletion protection off (local, throwaway stacks) the table is also removed
    with the stack; with it on, it is retained.
    """
    partition_key = _string_key(spec.partition_key)
    assert partition_key is not None  # a TableSpec always names its partition key
    table = dynamodb.Table(
        scope,
        spec.logical_id,
        partition_key=partition_key,
        sort_key=_string_key(spec.sort_key),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        deletion_protection=deletion_protection,
        removal_policy=RemovalPolicy.RETAIN if deletion_protection else RemovalPolicy.DESTROY,
        time_to_live_attribute=spec.ttl_attribute,
        stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES if spec.stream else None,
    )
    for index in spec.indexes:
        index_partition_key = _string_key(index.partition_key)
        assert index_partition_key is not None
        table.add_global_secondary_index(
            index_name=index.name,
            partition_key=index_partition_key,
            sort_key=_string_key(index.sort_key),
            projection_type=dynamodb.ProjectionType.ALL,
        )
    cast(dynamodb.CfnTable, table.node.default_child).override_logical_id(spec.logical_id)
    return table
