"""Campaigns: the campaign files marketers upload, the loader that publishes them, the
campaigns table, and the topic that tells marketers a file was rejected.

The campaigns table also holds offers, codes, budget counters and redemptions
(everything a redemption transaction touches), so the offers domain is granted
access to it rather than owning a table of its own.

The loader runs on every upload and deletion under ``campaigns/``, whatever the file's
name: S3 matches a suffix filter case-sensitively, while a campaign file's suffix may be
in any case (``.YAML``), and a file that is not a campaign file gets a report saying why
(DESIGN "Campaign file"), so the loader, not the filter, decides. S3 invokes it
asynchronously: two retries, then the event waits in the function's DLQ with its cause.
"""

from __future__ import annotations

from typing import cast

from aws_cdk import CfnElement, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sns as sns
from constructs import Construct

from functions.campaigns.logic import CAMPAIGNS_PREFIX, REPORTS_PREFIX
from functions.core.tables import CAMPAIGNS
from infra.constructs.platform import DomainFunction, Platform
from infra.constructs.resources import acknowledge, ignore_redundant_depends_on, secure_bucket

LOADER_HANDLER = "functions.campaigns.handlers.loader.handler"
# Publishing an offer with 100,000 unique codes is 1,011 TransactWriteItems of 100 items.
# Measured on moto: ~0.3 ms of client CPU per code (35 s per 100,000 on one core, so
# about a minute at 1024 MB, where Lambda gives ~0.6 vCPU) plus one DynamoDB round trip
# per 99 codes (another 1 to 2 minutes). The maximum leaves room for throttling on the
# new pool's index partition and for several large offers in one file; generation
# resumes where it stopped, so even a timeout is finished by Lambda's retry.
LOADER_TIMEOUT = Duration.minutes(15)
LOADER_MEMORY_MB = 1024


class Campaigns(Construct):
    def __init__(self, scope: Construct, id: str, *, platform: Platform) -> None:
        super().__init__(scope, id)
        self.table = platform.add_table(self, CAMPAIGNS)
        # campaigns/<file> uploads and reports/<file>.result.json (DESIGN "Campaign file");
        # versioning keeps every published file, deleting one archives its campaign.
        self.bucket = secure_bucket(self, "Bucket", access_logs=platform.access_logs)
        self.marketers_topic = sns.Topic(
            self,
            "MarketersTopic",
            display_name="Rebates campaign reports",
            master_key=platform.key,
            enforce_ssl=True,
        )

        self.loader = DomainFunction(
            self,
            "Loader",
            platform=platform,
            domain="campaigns",
            handler=LOADER_HANDLER,
            description="validates campaign files, publishes, rejects or archives them",
            memory_size=LOADER_MEMORY_MB,
            timeout=LOADER_TIMEOUT,
            async_invocation=True,
        )
        platform.grant_table(self.loader, CAMPAIGNS)
        platform.grant_put_events(self.loader)
        self.grant_files(self.loader)
        self.grant_tell_marketers(self.loader, platform)
        destination = s3n.LambdaDestination(self.loader.function)
        for event in (s3.EventType.OBJECT_CREATED, s3.EventType.OBJECT_REMOVED):
            self.bucket.add_event_notification(
                event, destination, s3.NotificationKeyFilter(prefix=CAMPAIGNS_PREFIX)
            )
        self._acknowledge_notifications_handler()

    def grant_files(self, fn: DomainFunction) -> None:
        """Read campaign files and reports, write reports; sets CAMPAIGN_BUCKET.

        ListBucket on the bucket (names only) makes a missing object a 404 rather than a
        403: the loader tells "deleted" and "no report yet" from a denial that way.
        """
        campaigns = self.bucket.arn_for_objects(f"{CAMPAIGNS_PREFIX}*")
        reports = self.bucket.arn_for_objects(f"{REPORTS_PREFIX}*")
        policy = [
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[campaigns, reports]),
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[reports]),
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn]),
        ]
        for statement in policy:
            fn.function.add_to_role_policy(statement)
        fn.function.add_environment("CAMPAIGN_BUCKET", self.bucket.bucket_name)
        acknowledge(
            fn.role.node.find_child("DefaultPolicy"),
            f"AwsSolutions-IAM5[Resource::<{self._bucket_logical_id()}.Arn>/{CAMPAIGNS_PREFIX}*]",
            "Marketers name their files freely under campaigns/ (DESIGN 'Campaign file'): "
            "the prefix is the narrowest resource that covers every file the loader reads.",
        )
        acknowledge(
            fn.role.node.find_child("DefaultPolicy"),
            f"AwsSolutions-IAM5[Resource::<{self._bucket_logical_id()}.Arn>/{REPORTS_PREFIX}*]",
            "Each report is named after its campaign file (reports/<key>.result.json), so "
            "the loader writes and reads any key under the reports/ prefix and no other.",
        )

    def grant_tell_marketers(self, fn: DomainFunction, platform: Platform) -> None:
        """Publish to the marketers' topic (and use its key, as SNS encryption needs)."""
        fn.function.add_to_role_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=[self.marketers_topic.topic_arn])
        )
        fn.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[platform.key.key_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": f"sns.{Stack.of(self).region}.amazonaws.com"}
                },
            )
        )
        fn.function.add_environment("MARKETERS_TOPIC_ARN", self.marketers_topic.topic_arn)

    def _bucket_logical_id(self) -> str:
        return Stack.of(self).get_logical_id(cast(CfnElement, self.bucket.node.default_child))

    def _acknowledge_notifications_handler(self) -> None:
        # CDK applies bucket notifications through a singleton custom-resource function
        # (Custom::S3BucketNotifications), created at stack level with its own role; it
        # depends on that role as DomainFunctions do (cfn-lint W3005, see resources.py).
        (handler,) = [
            child
            for child in Stack.of(self).node.children
            if child.node.id.startswith("BucketNotificationsHandler")
        ]
        ignore_redundant_depends_on(handler)
        acknowledge(
            handler.node.find_child("Role"),
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]",
            "CDK's deploy-time handler that puts the campaigns bucket's notification "
            "configuration, invoked by CloudFormation only. The managed policy only lets "
            "it write its logs; a narrower inline one would need the generated function "
            "name (a dependency cycle) or a log-group wildcard (an IAM5 finding instead).",
        )
