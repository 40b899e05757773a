"""Analytics: the conversion event stream, its S3 archive, the counters table, and
the queue through which domain events reach the same store.

The Glue database and table that let Athena query the archive come with the KPI
issue.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.core.tables import ANALYTICS
from infra.constructs.platform import Platform
from infra.constructs.resources import secure_bucket


class Analytics(Construct):
    def __init__(self, scope: Construct, id: str, *, platform: Platform) -> None:
        super().__init__(scope, id)
        self.table = platform.add_table(self, ANALYTICS)
        # On-demand: storefront traffic is spiky and nobody should resize shards.
        # Encrypted with the AWS-managed aws/kinesis key (cdk-nag KDS3).
        self.stream = kinesis.Stream(
            self,
            "EventsStream",
            stream_mode=kinesis.StreamMode.ON_DEMAND,
            encryption=kinesis.StreamEncryption.MANAGED,
            retention_period=Duration.hours(24),
        )
        # events/dt=YYYY-MM-DD/: recent days are queried most, old ones rarely but
        # still by Athena, so they move to cheaper classes that keep instant reads.
        self.archive = secure_bucket(
            self,
            "Archive",
            access_logs=platform.access_logs,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="tiering",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=Duration.days(30),
                        ),
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                            transition_after=Duration.days(180),
                        ),
                    ],
                )
            ],
        )
        self.domain_events = platform.event_queue(
            self, "DomainEvents", description="Every Rebates domain event, to the analytics queue"
        )
