"""Analytics: the conversion event stream, its S3 archive, the counters table, the
queue through which domain events reach the same store, and the SQL catalog over the
archive.

Resources: the events stream (Kinesis, on demand), the counters table, the archive
bucket, the Firehose delivery stream `EventsArchive` writing it, the generated secret
`PseudonymKey` (the HMAC key of the archive's `customer_key`), the Glue database
`rebates_analytics` with its `events` table, and the Athena workgroup
`rebates-analytics`. The database and workgroup have fixed names (GLUE_DATABASE_NAME,
ATHENA_WORKGROUP_NAME; the table is GLUE_TABLE_NAME): the report CLI names them
without reading the stack, and the stack's outputs stay the public contract (DESIGN
"Local cloud"). One stack per account and region, as for the event bus.

Each function may do what its code calls and nothing else:

- The API function (POST /v1/events, GET /v1/campaigns/{campaignId}/stats, behind the
  API key) puts records on the stream (`kinesis:PutRecords` on it, nothing else of the
  stream), keeps the POST's idempotency records, and reads the counters and the
  campaigns tables.
- The stream consumer reads the stream through its event source mapping (batches of
  100, bisected on error, partial failures; what keeps failing waits in its DLQ),
  reads and writes the counters, reads the campaigns table (time zones), archives with
  `firehose:PutRecordBatch` on the delivery stream only, and reads the pseudonym key.
- The domain consumer reads the `domain_events` queue (every domain event) and puts
  records on the stream (`kinesis:PutRecords`), nothing else.

The archive is newline-delimited JSON, one line per event (`functions.analytics.records`),
GZIP-compressed by Firehose: Athena and DuckDB read it as it is, a line needs no schema
registry, and repetitive JSON keys compress several times over, which is what Athena
scans and bills. Parquet would need Firehose's format conversion, whose input is a Glue
schema that must then change in step with every producer. Firehose partitions the
archive by the UTC date of each record's own `occurred_at` (dynamic partitioning, a JQ
query), not by its arrival, so a late event lands in its day: `events/dt=YYYY-MM-DD/`.
The Glue table projects `dt` from that layout (partition projection), so no crawler or
`MSCK REPAIR` ever runs, and a query naming a range of `dt` reads only those prefixes.
Firehose has a role of its own, which may write under `events/` and `errors/` of the
archive and to its own log stream, nothing else. The workgroup enforces its
configuration: results always go to `athena-results/` of the archive, SSE-S3 encrypted,
and a query scanning more than BYTES_SCANNED_CUTOFF is cancelled.

Alarms: both consumers page on their errors and their DLQs (made with them); the
stream consumer also pages on its lag (ConsumerLagAlarm: the mapping's IteratorAge
above CONSUMER_LAG_LIMIT), which grows while it keeps failing or cannot keep up, with
no error to show for the second. Records older than the stream's retention are lost.
"""

from __future__ import annotations

from typing import Final, cast

from aws_cdk import ArnFormat, CfnElement, Duration, RemovalPolicy, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.core.tables import ANALYTICS, CAMPAIGNS, IDEMPOTENCY
from infra.constructs.api import Api
from infra.constructs.platform import LOG_RETENTION, DomainFunction, Platform
from infra.constructs.resources import acknowledge, secure_bucket

API_HANDLER: Final = "functions.analytics.handlers.api.handler"
STREAM_HANDLER: Final = "functions.analytics.handlers.stream.handler"
DOMAIN_HANDLER: Final = "functions.analytics.handlers.domain.handler"
# The functions' POWERTOOLS_SERVICE_NAME: the `service` dimension of their metrics.
DOMAIN: Final = "analytics"

# The routes the analytics API function serves. Declared here rather than read from
# its router (`routes_of`), so synth needs none of the analytics code;
# tests/infra/test_analytics_stack.py checks the two agree.
ROUTES: Final = (
    ("POST", "/v1/events"),
    ("GET", "/v1/campaigns/{campaignId}/stats"),
)

# Fixed names (see the module's docstring). Glue names are lower case with underscores;
# a workgroup name may have hyphens.
GLUE_DATABASE_NAME: Final = "rebates_analytics"
GLUE_TABLE_NAME: Final = "events"
ATHENA_WORKGROUP_NAME: Final = "rebates-analytics"

# The archive's layout (docs/metrics.md): Firehose writes it, the Glue table reads it.
EVENTS_PREFIX: Final = "events/"
PARTITION_KEY: Final = "dt"
# The UTC date of the event: `occurred_at` is `YYYY-MM-DD HH:MM:SS.ffffff`.
PARTITION_QUERY: Final = "{dt: .occurred_at[0:10]}"
ARCHIVE_PREFIX: Final = (
    f"{EVENTS_PREFIX}{PARTITION_KEY}=!{{partitionKeyFromQuery:{PARTITION_KEY}}}/"
)
# Records Firehose could not partition (no `occurred_at`), by the kind of failure.
ERRORS_PREFIX: Final = "errors/"
ERROR_OUTPUT_PREFIX: Final = f"{ERRORS_PREFIX}!{{firehose:error-output-type}}/"
ATHENA_RESULTS_PREFIX: Final = "athena-results/"
# The first day the archive can hold: partition projection lists days from here to now.
FIRST_ARCHIVE_DAY: Final = "2026-01-01"

# Dynamic partitioning needs a buffer of at least 64 MiB. Five minutes bounds how stale
# the archive is (the counters are live; the archive serves deep SQL) while keeping its
# objects few and large, which is what Athena reads fastest and cheapest.
ARCHIVE_BUFFER_MIB: Final = 64
ARCHIVE_BUFFER_INTERVAL: Final = Duration.minutes(5)

# A query scanning more is cancelled: a year of a busy shop's archive compressed is
# well under it; a query without a `dt` range over many years is not.
BYTES_SCANNED_CUTOFF: Final = 10 * 1024**3

# The one column type per archive key (`functions.analytics.records.ARCHIVE_COLUMNS`, in
# that order; docs/metrics.md). Instants are text Athena and DuckDB CAST alike.
ARCHIVE_COLUMN_TYPES: Final = (
    ("event_id", "string"),
    ("type", "string"),
    ("source", "string"),
    ("occurred_at", "string"),
    ("occurred_ms", "bigint"),
    ("received_at", "string"),
    ("session_id", "string"),
    ("anonymous_id", "string"),
    ("customer_key", "string"),
    ("campaign_id", "string"),
    ("offer_id", "string"),
    ("order_id", "string"),
    ("value_amount", "bigint"),
    ("value_currency", "string"),
    ("utm_source", "string"),
    ("utm_medium", "string"),
    ("utm_campaign", "string"),
)
JSON_SERDE: Final = "org.openx.data.jsonserde.JsonSerDe"

# An HMAC-SHA256 key: 64 letters and digits are ~380 bits, more than the hash's 256.
PSEUDONYM_KEY_LENGTH: Final = 64
# A batch of 100 records, each one DynamoDB transaction after one Firehose call.
STREAM_TIMEOUT: Final = Duration.minutes(1)
# The stream consumer is behind by more than this: it keeps failing, or cannot keep up.
CONSUMER_LAG_LIMIT: Final = Duration.minutes(5)
CONSUMER_LAG_PERIOD: Final = Duration.minutes(1)


class Analytics(Construct):
    def __init__(self, scope: Construct, id: str, *, platform: Platform, api: Api) -> None:
        super().__init__(scope, id)
        self.platform = platform
        settings = platform.settings
        self.table = platform.add_table(self, ANALYTICS)
        # On-demand: storefront traffic is spiky and nobody should resize shards.
        # Encrypted with the AWS-managed aws/kinesis key (cdk-nag KDS3), which needs no
        # key grants for producers or consumers.
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
        self.pseudonym_key = secretsmanager.Secret(
            self,
            "PseudonymKey",
            description="Rebates analytics: HMAC key of the archive's customer keys",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=PSEUDONYM_KEY_LENGTH, exclude_punctuation=True
            ),
            # A new key gives every customer a new customer_key: the archive written
            # before could no longer be joined with what comes after.
            removal_policy=RemovalPolicy.RETAIN
            if settings.deletion_protection
            else RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.pseudonym_key,
            "AwsSolutions-SMG4",
            "The pseudonym key is what makes one customer the same customer_key across the "
            "whole archive: rotating it would split every customer in two for attribution "
            "and new-customer counts. It never leaves the stream consumer's role.",
        )

        self.delivery_stream = self._delivery_stream()
        self.database, self.events_table = self._catalog()
        self.workgroup = self._workgroup()

        self.api_function = self._api_function(api)
        self.stream_consumer, self.stream_dlq = self._stream_consumer()
        self.domain_consumer = self._domain_consumer()
        self.consumer_lag_alarm = self._consumer_lag_alarm()

    # -- archive --------------------------------------------------------------------

    def _delivery_stream(self) -> firehose.CfnDeliveryStream:
        """DirectPut from the stream consumer to `events/dt=.../`, with its own role."""
        stack = Stack.of(self)
        log_group = logs.LogGroup(self, "ArchiveDeliveryLogs", retention=LOG_RETENTION)
        # The stream name Firehose's console gives an S3 destination's errors.
        log_stream = logs.LogStream(
            self,
            "ArchiveDeliveryLogStream",
            log_group=log_group,
            log_stream_name="DestinationDelivery",
        )
        role = iam.Role(
            self,
            "ArchiveDeliveryRole",
            description="Rebates analytics: Firehose writes the event archive",
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com",
                # Only this account's delivery streams (the confused deputy).
                conditions={"StringEquals": {"sts:ExternalId": stack.account}},
            ),
        )
        # What Firehose calls on an S3 destination, the objects limited to the archive's
        # and the errors' prefixes: nothing else of the bucket can be read or written.
        objects = [
            self.archive.arn_for_objects(f"{EVENTS_PREFIX}*"),
            self.archive.arn_for_objects(f"{ERRORS_PREFIX}*"),
        ]
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
                resources=objects,
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                resources=[self.archive.bucket_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:PutLogEvents"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name=f"{log_group.log_group_name}:log-stream:"
                        f"{log_stream.log_stream_name}",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        archive_id = _logical_id(self.archive)
        for prefix in (EVENTS_PREFIX, ERRORS_PREFIX):
            acknowledge(
                role.node.find_child("DefaultPolicy"),
                f"AwsSolutions-IAM5[Resource::<{archive_id}.Arn>/{prefix}*]",
                f"Firehose names each object it delivers under {prefix} itself (date, "
                "stream version, random suffix), so the prefix is the narrowest resource "
                "covering them; the rest of the archive bucket stays out of reach.",
            )

        props = firehose.CfnDeliveryStream  # its property types, for short
        stream = firehose.CfnDeliveryStream(
            self,
            "EventsArchive",
            delivery_stream_type="DirectPut",
            # AWS-owned key: the stream consumer's PutRecordBatch needs no key grant.
            delivery_stream_encryption_configuration_input=(
                props.DeliveryStreamEncryptionConfigurationInputProperty(key_type="AWS_OWNED_CMK")
            ),
            extended_s3_destination_configuration=props.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=self.archive.bucket_arn,
                role_arn=role.role_arn,
                prefix=ARCHIVE_PREFIX,
                error_output_prefix=ERROR_OUTPUT_PREFIX,
                compression_format="GZIP",
                buffering_hints=props.BufferingHintsProperty(
                    interval_in_seconds=int(ARCHIVE_BUFFER_INTERVAL.to_seconds()),
                    size_in_m_bs=ARCHIVE_BUFFER_MIB,
                ),
                dynamic_partitioning_configuration=props.DynamicPartitioningConfigurationProperty(
                    enabled=True
                ),
                # Lines arrive newline-terminated from the producer
                # (`TrackedEvent.to_archive_line`): no delimiter processor.
                processing_configuration=props.ProcessingConfigurationProperty(
                    enabled=True,
                    processors=[
                        props.ProcessorProperty(
                            type="MetadataExtraction",
                            parameters=[
                                props.ProcessorParameterProperty(
                                    parameter_name="MetadataExtractionQuery",
                                    parameter_value=PARTITION_QUERY,
                                ),
                                props.ProcessorParameterProperty(
                                    parameter_name="JsonParsingEngine",
                                    parameter_value="JQ-1.6",
                                ),
                            ],
                        )
                    ],
                ),
                cloud_watch_logging_options=props.CloudWatchLoggingOptionsProperty(
                    enabled=True,
                    log_group_name=log_group.log_group_name,
                    log_stream_name=log_stream.log_stream_name,
                ),
            ),
        )
        # Firehose checks its role's access when the stream is created: the policy must
        # exist by then (the role itself is already a dependency, through RoleARN).
        stream.node.add_dependency(role.node.find_child("DefaultPolicy"))
        return stream

    def _catalog(self) -> tuple[glue.CfnDatabase, glue.CfnTable]:
        """The Glue database and the `events` table over the archive, `dt` projected."""
        account = Stack.of(self).account
        database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=GLUE_DATABASE_NAME,
                description="Rebates analytics: the event archive, for Athena",
            ),
        )
        location = f"s3://{self.archive.bucket_name}/{EVENTS_PREFIX}"
        table = glue.CfnTable(
            self,
            "EventsTable",
            catalog_id=account,
            database_name=database.ref,
            table_input=glue.CfnTable.TableInputProperty(
                name=GLUE_TABLE_NAME,
                description="Every tracked event, one JSON line each (docs/metrics.md)",
                table_type="EXTERNAL_TABLE",
                partition_keys=[glue.CfnTable.ColumnProperty(name=PARTITION_KEY, type="string")],
                parameters={
                    "classification": "json",
                    "compressionType": "gzip",
                    # Days are computed from the query's `dt` range, never listed from
                    # S3 or the catalog; a day without events reads nothing.
                    "projection.enabled": "true",
                    f"projection.{PARTITION_KEY}.type": "date",
                    f"projection.{PARTITION_KEY}.format": "yyyy-MM-dd",
                    f"projection.{PARTITION_KEY}.range": f"{FIRST_ARCHIVE_DAY},NOW",
                    f"projection.{PARTITION_KEY}.interval": "1",
                    f"projection.{PARTITION_KEY}.interval.unit": "DAYS",
                    "storage.location.template": f"{location}{PARTITION_KEY}=${{{PARTITION_KEY}}}/",
                },
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=location,
                    columns=[
                        glue.CfnTable.ColumnProperty(name=name, type=type_)
                        for name, type_ in ARCHIVE_COLUMN_TYPES
                    ],
                    input_format="org.apache.hadoop.mapred.TextInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                    compressed=True,
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library=JSON_SERDE,
                        # A line that is not JSON fails the query rather than reading
                        # as nulls: a wrong count is worse than an error.
                        parameters={"ignore.malformed.json": "false"},
                    ),
                ),
            ),
        )
        return database, table

    def _workgroup(self) -> athena.CfnWorkGroup:
        """Where the archive's SQL runs in AWS: results encrypted, scans capped."""
        return athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=ATHENA_WORKGROUP_NAME,
            description="Rebates analytics: funnel and attribution queries over the archive",
            state="ENABLED",
            # Its query history goes with it when a throwaway stack is deleted.
            recursive_delete_option=not self.platform.settings.deletion_protection,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                # A client's own output location or encryption is overridden, so results
                # never land unencrypted or outside the archive bucket.
                enforce_work_group_configuration=True,
                bytes_scanned_cutoff_per_query=BYTES_SCANNED_CUTOFF,
                publish_cloud_watch_metrics_enabled=True,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="AUTO"
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{self.archive.bucket_name}/{ATHENA_RESULTS_PREFIX}",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                ),
            ),
        )

    # -- functions ------------------------------------------------------------------

    def _api_function(self, api: Api) -> DomainFunction:
        fn = DomainFunction(
            self,
            "Api",
            platform=self.platform,
            domain=DOMAIN,
            handler=API_HANDLER,
            description="tracks storefront events, answers campaign stats",
        )
        self._grant_put_records(fn)
        self.platform.grant_table(fn, ANALYTICS, read_only=True)
        self.platform.grant_table(fn, CAMPAIGNS, read_only=True)
        # POST /v1/events honours Idempotency-Key (functions.core.idempotency).
        self.platform.grant_table(fn, IDEMPOTENCY)
        for method, path in ROUTES:
            api.add_route(method, path, fn)
        return fn

    def _stream_consumer(self) -> tuple[DomainFunction, sqs.Queue]:
        fn = DomainFunction(
            self,
            "StreamConsumer",
            platform=self.platform,
            domain=DOMAIN,
            handler=STREAM_HANDLER,
            description="archives and counts the events stream",
            timeout=STREAM_TIMEOUT,
        )
        dlq = fn.consume_stream(self.stream, batch_size=100)
        self.platform.grant_table(fn, ANALYTICS)
        self.platform.grant_table(fn, CAMPAIGNS, read_only=True)
        fn.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["firehose:PutRecordBatch"],
                resources=[self.delivery_stream.attr_arn],
            )
        )
        fn.function.add_environment("ARCHIVE_DELIVERY_STREAM_NAME", self.delivery_stream.ref)
        # The key's value and nothing else of the secret; the AWS-managed key encrypts
        # it, so no KMS grant is needed.
        fn.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"],
                resources=[self.pseudonym_key.secret_arn],
            )
        )
        fn.function.add_environment("PSEUDONYM_KEY_SECRET_ARN", self.pseudonym_key.secret_arn)
        return fn, dlq

    def _domain_consumer(self) -> DomainFunction:
        fn = DomainFunction(
            self,
            "DomainConsumer",
            platform=self.platform,
            domain=DOMAIN,
            handler=DOMAIN_HANDLER,
            description="puts the system's own domain events on the events stream",
        )
        fn.consume_queue(self.domain_events)
        self._grant_put_records(fn)
        return fn

    def _grant_put_records(self, fn: DomainFunction) -> None:
        """PutRecords on the events stream, and its name (EVENTS_STREAM_NAME). Not
        `grant_write`, which adds PutRecord, ListShards and DescribeStreamSummary; the
        code makes one PutRecords call per batch and nothing else. The aws/kinesis key
        needs no grant."""
        fn.function.add_to_role_policy(
            iam.PolicyStatement(actions=["kinesis:PutRecords"], resources=[self.stream.stream_arn])
        )
        fn.function.add_environment("EVENTS_STREAM_NAME", self.stream.stream_name)

    # -- alarms -----------------------------------------------------------------------

    def _consumer_lag_alarm(self) -> cloudwatch.Alarm:
        # Lambda's IteratorAge of the mapping: how old the last record it handed the
        # function was. 1 when above the limit, else 0, so the operators' one way of
        # alarming (above zero) applies.
        limit_ms = int(CONSUMER_LAG_LIMIT.to_milliseconds())
        lag = cloudwatch.MathExpression(
            expression=f"IF(age > {limit_ms}, 1, 0)",
            using_metrics={
                "age": self.stream_consumer.function.metric(
                    "IteratorAge",
                    statistic=cloudwatch.Stats.MAXIMUM,
                    period=CONSUMER_LAG_PERIOD,
                )
            },
            period=CONSUMER_LAG_PERIOD,
            label="events stream consumer behind by more than the limit",
        )
        minutes = int(CONSUMER_LAG_LIMIT.to_minutes())
        return self.platform.operators.alarm_above_zero(
            self,
            "ConsumerLagAlarm",
            metric=lag,
            description=f"The analytics stream consumer is over {minutes} minutes behind "
            "the events stream: it keeps failing on a batch (its Errors alarm and log say "
            "why) or cannot keep up. Counters and the archive lag as long; records older "
            "than the stream's 24 h retention are lost.",
        )


def _logical_id(construct: Construct) -> str:
    return Stack.of(construct).get_logical_id(cast(CfnElement, construct.node.default_child))
