"""The wiring probe: test-only constructs added to the real stack before synthesis.

They are built with the same constructs the domains use (DomainFunction, event queues,
secure buckets, API routes, a state machine with a Lambda task), so each integration
test proves that a path of the local cloud carries real code, as AWS would.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from functions.core.tables import IDEMPOTENCY, TableSpec
from infra.constructs.api import Api
from infra.constructs.platform import DomainFunction, Platform
from infra.constructs.resources import secure_bucket

HANDLERS = "tests.integration.wiring.handlers"
PROBE_DETAIL_TYPE = "WiringProbe"
POISON_DETAIL_TYPE = "WiringPoison"
ECHO_PATH = "/v1/_probe/echo/{thing}"
# A table whose stream feeds a recorder: only keys starting "keep#" pass its filter, and
# keys starting "keep#poison" make it fail.
STREAM_TABLE = TableSpec(
    logical_id="WiringProbeStreamTable",
    env_var="PROBE_STREAM_TABLE",
    partition_key="pk",
    sort_key=None,
    stream=True,
    default_name="rebates-probe-stream",
)
STREAM_FILTER = {"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "keep#"}]}}}}


class WiringProbe(Construct):
    def __init__(self, scope: Construct, id: str, *, platform: Platform, api: Api) -> None:
        super().__init__(scope, id)
        self.consumer = self._function(platform, "Consumer", "record_events")
        self.consumer.consume_queue(
            platform.event_queue(
                self, "Events", description="probe", detail_types=(PROBE_DETAIL_TYPE,)
            )
        )
        self.poison = self._function(platform, "Poison", "always_fail")
        self.poison_queue = platform.event_queue(
            self, "PoisonEvents", description="probe", detail_types=(POISON_DETAIL_TYPE,)
        )
        self.poison.consume_queue(self.poison_queue)

        self.uploads = secure_bucket(self, "Uploads", access_logs=None)
        self.on_upload = self._function(
            platform, "OnUpload", "record_upload", async_invocation=True
        )
        self.uploads.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(self.on_upload.function),
            s3.NotificationKeyFilter(prefix="incoming/"),
        )

        self.refuser = self._function(platform, "Refuser", "raise_probe_error")
        refuse = tasks.LambdaInvoke(
            self,
            "Refuse the claim",
            lambda_function=self.refuser.function,
            retry_on_service_exceptions=False,
            payload_response_only=True,
        )
        caught = sfn.Pass(self, "Caught the refusal")
        refuse.add_catch(caught, errors=["ProbeError"], result_path="$.error")
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(
                refuse.next(sfn.Succeed(self, "Done"))
            ),
            timeout=Duration.minutes(5),
        )

        stream_table = platform.add_table(self, STREAM_TABLE)
        self.stream_recorder = self._function(platform, "StreamRecorder", "record_stream")
        self.stream_dlq = self.stream_recorder.consume_table_stream(
            stream_table, filters=[STREAM_FILTER], batch_size=10, retry_attempts=2
        )

        self.echo = self._function(platform, "Echo", "echo")
        api.add_route("POST", ECHO_PATH, self.echo)

    def _function(
        self, platform: Platform, id: str, handler: str, *, async_invocation: bool = False
    ) -> DomainFunction:
        fn = DomainFunction(
            self,
            id,
            platform=platform,
            domain="probe",
            handler=f"{HANDLERS}.{handler}",
            description=f"wiring probe: {handler}",
            async_invocation=async_invocation,
        )
        platform.grant_table(fn, IDEMPOTENCY)
        return fn
