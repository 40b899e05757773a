"""Claims: the claims table, the receipts bucket, the claim verification state machine
(Standard) and the functions around it.

The definition lives in `infra/statemachines/claims.asl.json` with readable state
names; it is loaded as is and its `${...}` placeholders are filled with the ARNs of the
step functions, so the local cloud runs the very same file.

It is inlined (`DefinitionString` + `DefinitionSubstitutions`) rather than loaded with
`DefinitionBody.from_file`, which would upload it as an S3 asset
(`DefinitionS3Location`): inline, cfn-lint validates the ASL and the local cloud
needs no asset store to read it.

Each function may do what its code calls and nothing else:

- The API function (uploads, submission, reads, review decisions) reads and writes the
  claims table and its POST routes' idempotency records, reads campaigns, starts the
  state machine's executions, sends review decisions to waiting tasks, and signs
  presigned POSTs of receipts (s3:PutObject under ``receipts/``: the upload is made with
  its role's signature, so the role must hold that permission itself).
- The steps function (every task of the state machine but the credit) reads and writes
  the claims table, reads campaigns and updates campaign items only as the budget needs
  (`functions.campaigns.budget`, inside its approval transaction).
- The receipt checker, notified when a receipt lands, reads objects under ``receipts/``
  and records what it found on the receipt's item.
- The review keeper, on a schedule, reads the claims table, heartbeats waiting reviews
  and starts executions whose start was lost.
- The outbox reads the claims table's stream and publishes to the bus.
- The state machine invokes the steps function and the wallet's credit function, and
  nothing else.

Alarms: a failed execution pages (``ExecutionsFailed``; the claim is in ``error`` with its
cause), and so does the `ClaimErrors` metric the error step records; the receipt checker
and the keeper page on their errors and DLQ, the outbox on its publish failures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, cast

from aws_cdk import CfnElement, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from functions.claims.handlers import api as claims_api
from functions.claims.logic import DEFAULT_HEARTBEAT_SECONDS, DEFAULT_VELOCITY_PER_DAY
from functions.claims.outbox import STREAM_FILTERS
from functions.claims.receipts import KEY_PREFIX
from functions.core.api import IAM_ROUTES, routes_of
from functions.core.observability import METRICS_NAMESPACE, SERVICE_DIMENSION, Metric
from functions.core.tables import CAMPAIGNS, CLAIMS, IDEMPOTENCY
from infra.constructs.alarms import ERROR_PERIOD
from infra.constructs.api import Api
from infra.constructs.platform import LOG_RETENTION, DomainFunction, Platform
from infra.constructs.resources import acknowledge, ignore_redundant_depends_on, secure_bucket

DEFINITION = Path(__file__).resolve().parent.parent / "statemachines" / "claims.asl.json"

API_HANDLER: Final = "functions.claims.handlers.api.handler"
STEPS_HANDLER: Final = "functions.claims.handlers.steps.handler"
RECEIPTS_HANDLER: Final = "functions.claims.handlers.receipts.handler"
KEEPER_HANDLER: Final = "functions.claims.handlers.review_keeper.handler"
OUTBOX_HANDLER: Final = "functions.claims.handlers.outbox.handler"
DOMAIN: Final = "claims"
# Fixed logical ids, so operators' tools (`rebates claims review`, the local cloud's
# `rebates local fire ClaimsReviewKeeperSchedule`) can name them.
RECEIPTS_BUCKET_ID: Final = "ClaimsReceiptsBucket"
KEEPER_SCHEDULE_ID: Final = "ClaimsReviewKeeperSchedule"
# The keeper heartbeats waiting reviews several times per heartbeat interval.
KEEPER_RATE: Final = Duration.hours(1)
# Receipts are the evidence of a paid rebate: kept three years (audits, chargebacks,
# disputes), then deleted; a year in, they are rarely read and move to infrequent access.
RECEIPT_RETENTION_DAYS: Final = 3 * 365
RECEIPT_INFREQUENT_AFTER_DAYS: Final = 90
# Receipt checks stream up to 10 MiB through SHA-256: well under a second.
RECEIPTS_TIMEOUT: Final = Duration.seconds(60)

# The routes the claims API function serves, as its router declares them.
ROUTES: Final = tuple((method, path) for method, path, _ in routes_of(claims_api.router))


class Claims(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        platform: Platform,
        api: Api,
        credit_function: DomainFunction,
    ) -> None:
        super().__init__(scope, id)
        self.platform = platform
        self.table = platform.add_table(self, CLAIMS)
        self.receipts = secure_bucket(
            self,
            "Receipts",
            access_logs=platform.access_logs,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="receipts-retention",
                    prefix=KEY_PREFIX,
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=Duration.days(RECEIPT_INFREQUENT_AFTER_DAYS),
                        )
                    ],
                    expiration=Duration.days(RECEIPT_RETENTION_DAYS),
                )
            ],
        )
        # Receipts are uploaded by browsers straight to S3 with the presigned POST.
        self.receipts.add_cors_rule(
            allowed_methods=[s3.HttpMethods.POST],
            allowed_origins=["*"],
            allowed_headers=["*"],
            max_age=3000,
        )
        cast(s3.CfnBucket, self.receipts.node.default_child).override_logical_id(RECEIPTS_BUCKET_ID)

        self.steps = DomainFunction(
            self,
            "Steps",
            platform=platform,
            domain=DOMAIN,
            handler=STEPS_HANDLER,
            description="the claim verification state machine's tasks",
        )
        platform.grant_table(self.steps, CLAIMS)
        platform.grant_table(self.steps, CAMPAIGNS, read_only=True)
        platform.grant_budget(self.steps)
        for name, value in {
            "CLAIMS_REVIEW_SECONDS_PER_HOUR": "3600",
            "CLAIMS_REVIEW_HEARTBEAT_SECONDS": str(DEFAULT_HEARTBEAT_SECONDS),
            "CLAIMS_VELOCITY_PER_DAY": str(DEFAULT_VELOCITY_PER_DAY),
        }.items():
            self.steps.function.add_environment(name, value)

        self.state_machine = self._state_machine(credit_function)

        self.api_function = DomainFunction(
            self,
            "Api",
            platform=platform,
            domain=DOMAIN,
            handler=API_HANDLER,
            description="receipt uploads, claim submission and reads, review decisions",
        )
        platform.grant_table(self.api_function, CLAIMS)
        platform.grant_table(self.api_function, IDEMPOTENCY)
        platform.grant_table(self.api_function, CAMPAIGNS, read_only=True)
        self.state_machine.grant_start_execution(self.api_function.function)
        self._grant_callbacks(self.api_function, ["states:SendTaskSuccess"])
        self.api_function.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[self.receipts.arn_for_objects(f"{KEY_PREFIX}*")],
            )
        )
        self._acknowledge_receipts(self.api_function, "signs presigned POSTs of")
        self._set_environment(self.api_function)
        for method, path in ROUTES:
            if (method, path) in IAM_ROUTES:
                api.add_route(method, path, self.api_function, api_key_required=False, iam=True)
            else:
                api.add_route(method, path, self.api_function)

        self.receipt_checker = DomainFunction(
            self,
            "ReceiptChecker",
            platform=platform,
            domain=DOMAIN,
            handler=RECEIPTS_HANDLER,
            description="records each uploaded receipt's SHA-256 and checks its type",
            timeout=RECEIPTS_TIMEOUT,
            async_invocation=True,
        )
        self.receipt_checker.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[self.receipts.arn_for_objects(f"{KEY_PREFIX}*")],
            )
        )
        self._acknowledge_receipts(self.receipt_checker, "reads")
        self.receipt_checker.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:UpdateItem"],
                resources=[self.table.table_arn],
            )
        )
        self.receipt_checker.function.add_environment(CLAIMS.env_var, self.table.table_name)
        self.receipt_checker.function.add_environment("RECEIPTS_BUCKET", self.receipts.bucket_name)
        self.receipts.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(self.receipt_checker.function),
            s3.NotificationKeyFilter(prefix=KEY_PREFIX),
        )

        self.review_keeper = DomainFunction(
            self,
            "ReviewKeeper",
            platform=platform,
            domain=DOMAIN,
            handler=KEEPER_HANDLER,
            description="heartbeats waiting reviews, measures the queue (scheduled)",
            async_invocation=True,
        )
        platform.grant_table(self.review_keeper, CLAIMS, read_only=True)
        self.state_machine.grant_start_execution(self.review_keeper.function)
        self._grant_callbacks(self.review_keeper, ["states:SendTaskHeartbeat"])
        self._set_environment(self.review_keeper)
        schedule = events.Rule(
            self,
            "ReviewKeeperSchedule",
            description="Rebates claims: heartbeat waiting reviews, measure the review queue",
            schedule=events.Schedule.rate(KEEPER_RATE),
            targets=[targets.LambdaFunction(self.review_keeper.function)],
        )
        cast(events.CfnRule, schedule.node.default_child).override_logical_id(KEEPER_SCHEDULE_ID)

        outbox = platform.add_outbox(
            self,
            domain=DOMAIN,
            handler=OUTBOX_HANDLER,
            description="publishes claims submitted and their status changes",
            table=self.table,
            filters=STREAM_FILTERS,
            publishes="a claim's event",
        )
        self.outbox, self.outbox_dlq = outbox.function, outbox.dlq
        self._alarms()

    # -- the state machine --------------------------------------------------------------

    def _state_machine(self, credit_function: DomainFunction) -> sfn.StateMachine:
        substitutions = {
            "StepsFunctionArn": self.steps.function.function_arn,
            "CreditFunctionArn": credit_function.function.function_arn,
        }
        state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(DEFINITION.read_text()),
            definition_substitutions=substitutions,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=logs.LogGroup(self, "Logs", retention=LOG_RETENTION),
                level=sfn.LogLevel.ALL,
                # Inputs and outputs stay in the execution history (`rebates claims
                # trace` reads it); the logs carry the flow without customer data.
                include_execution_data=False,
            ),
        )
        ignore_redundant_depends_on(state_machine)
        for fn in (self.steps, credit_function):
            fn.function.grant_invoke(state_machine)
        policy = state_machine.role.node.find_child("DefaultPolicy")
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "CloudWatch Logs vended delivery (logs:CreateLogDelivery and friends) and X-Ray "
            "write actions do not support resource-level permissions.",
        )
        for fn in (self.steps, credit_function):
            logical_id = Stack.of(self).get_logical_id(
                cast(CfnElement, fn.function.node.default_child)
            )
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>:*]",
                "CDK's grant_invoke covers the function's versions and aliases (ARN:*); the "
                "state machine invokes this one function only.",
            )
        return state_machine

    # -- grants -------------------------------------------------------------------------

    def _set_environment(self, fn: DomainFunction) -> None:
        fn.function.add_environment(
            "CLAIMS_STATE_MACHINE_ARN", self.state_machine.state_machine_arn
        )
        fn.function.add_environment("RECEIPTS_BUCKET", self.receipts.bucket_name)

    def _grant_callbacks(self, fn: DomainFunction, actions: list[str]) -> None:
        fn.function.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=["*"]))
        acknowledge(
            fn.role.node.find_child("DefaultPolicy"),
            "AwsSolutions-IAM5[Resource::*]",
            f"{' and '.join(actions)} name a task token, not a resource: Step Functions "
            "supports no resource-level permission for them. X-Ray's write actions "
            "(active tracing) have none either.",
        )

    def _acknowledge_receipts(self, fn: DomainFunction, does: str) -> None:
        bucket_id = RECEIPTS_BUCKET_ID
        acknowledge(
            fn.role.node.find_child("DefaultPolicy"),
            f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{KEY_PREFIX}*]",
            f"The function {does} receipts, each under its own new key "
            f"({KEY_PREFIX}<customer>/<receipt id>): the prefix is the narrowest resource.",
        )

    # -- alarms -------------------------------------------------------------------------

    def _alarms(self) -> None:
        operators = self.platform.operators
        self.executions_failed_alarm = operators.alarm_above_zero(
            self,
            "ExecutionsFailedAlarm",
            metric=self.state_machine.metric_failed(period=ERROR_PERIOD, statistic="Sum"),
            description="A claim verification execution failed: the claim is in status "
            "error with its cause (GET /v1/claims/{claimId}, `rebates claims trace`).",
        )
        self.claim_errors_alarm = operators.alarm_above_zero(
            self,
            "ClaimErrorsAlarm",
            metric=cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=Metric.CLAIM_ERRORS.value,
                dimensions_map={SERVICE_DIMENSION: DOMAIN},
                statistic=cloudwatch.Stats.SUM,
                period=ERROR_PERIOD,
            ),
            description="A claim ended in status error (a failure no retry mended); its "
            "errorCause and the execution's history say why.",
        )
