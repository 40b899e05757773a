"""The local cloud: the synthesized stack running in-process on moto.

Start-up order matters and is the whole point of this module:
1. moto as a server on 127.0.0.1:4566, every request serialised through one gate;
2. the environment overlay and the Lambda hook, so every invocation (direct, Step
   Functions task, S3 notification, queue poller, API route) runs the real handler
   in this process with its function's own environment;
3. the template deployed resource by resource (infra/local/deploy/), functions told
   the API's stage URL told the local API's instead, and queue delays capped
   (`LocalCloudConfig.max_queue_delay_seconds`);
4. a poller per SQS, table stream and Kinesis event source mapping, Lambda's asynchronous
   invocations (S3 notifications, delivered after the request that made them), and
   the local API on 127.0.0.1:3000;
5. the stack outputs, written to `.local/outputs.json`.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from infra.local import patches
from infra.local.api import Gateway, InvocationResult, LocalApi
from infra.local.async_invocations import AsyncInvocations
from infra.local.deploy import DeployContext, Deployment, deploy
from infra.local.environment import install_overlay, uninstall_overlay
from infra.local.lambdas import LambdaRuntime
from infra.local.mailbox import mailbox
from infra.local.pollers import Pollers, QueueMapping, SqsPoller
from infra.local.schedules import Scheduler, UnknownSchedule
from infra.local.server import MotoServer, PortInUse, process_environment
from infra.local.stream_pollers import (
    KinesisStreamMapping,
    KinesisStreamPoller,
    TableStreamMapping,
    TableStreamPoller,
)

ROOT = Path(__file__).resolve().parents[2]
LOCAL_DIR = ROOT / ".local"
OUTPUTS_PATH = LOCAL_DIR / "outputs.json"
ACCOUNT_ID = "123456789012"


@dataclass
class LocalCloudConfig:
    host: str = "127.0.0.1"
    moto_port: int = 4566
    api_port: int = 3000
    region: str = "ap-northeast-1"
    outputs_path: Path | None = OUTPUTS_PATH
    # AWS keeps a failed message invisible for the queue's visibility timeout, and retries
    # a failed asynchronous invocation after one then two minutes; locally both come back
    # after this many seconds so redrive plays out in a test's time.
    retry_delay_seconds: float = 0.0
    # A queue's DelaySeconds, capped: AWS holds a purchase's thank-you back a minute so
    # the code issued after the purchase is known; locally that code takes well under a
    # second, and a demo or a test would otherwise wait the minute out.
    max_queue_delay_seconds: int = 2


def synthesized_template() -> dict[str, Any]:
    """Synthesize the CDK app in-process (assets built first) and return its template."""
    # Imported here: the CDK (and its Node process) is only needed when synthesizing.
    from infra.app import STACK_NAME, build_app
    from infra.build import build_all

    build_all()
    assembly = build_app(str(ROOT / "cdk.out"), nag=False).synth()
    path = Path(assembly.get_stack_by_name(STACK_NAME).template_full_path)
    template: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return template


def ensure_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the API server binds: connections of a previous run in TIME_WAIT are no
        # reason to refuse the port, only a listener is.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PortInUse(
                f"{host}:{port} is already in use: is another local cloud (`make run`) "
                "running? Stop it, or choose other ports."
            ) from error


@dataclass
class LocalCloud:
    """Start with `start(template)`, stop with `stop()`; also a context manager."""

    config: LocalCloudConfig = field(default_factory=LocalCloudConfig)
    server: MotoServer | None = None
    runtime: LambdaRuntime | None = None
    deployment: Deployment | None = None
    pollers: Pollers | None = None
    async_invocations: AsyncInvocations | None = None
    api: LocalApi | None = None
    scheduler: Scheduler | None = None
    outputs: dict[str, str] = field(default_factory=dict)

    # Lifecycle ---------------------------------------------------------------------

    def start(self, template: dict[str, Any] | None = None) -> dict[str, str]:
        config = self.config
        ensure_port_free(config.host, config.api_port)
        self.server = MotoServer(config.host, config.moto_port)
        self.server.start()
        try:
            return self._start_on(self.server, template)
        except BaseException:
            self.stop()
            raise

    def _start_on(self, server: MotoServer, template: dict[str, Any] | None) -> dict[str, str]:
        config = self.config
        environment = process_environment(server.endpoint, config.region)
        os.environ.update(environment)
        install_overlay()
        self.runtime = LambdaRuntime(server.gate, environment, project_root=ROOT)
        patches.apply(self.runtime)

        self.deployment = deploy(
            template if template is not None else synthesized_template(),
            DeployContext(
                endpoint_url=server.endpoint,
                region=config.region,
                # The API served below: links functions write (unsubscribe) lead there.
                local_api_url=f"http://{config.host}:{config.api_port}",
                max_queue_delay_seconds=config.max_queue_delay_seconds,
            ),
        )
        sqs = self.client("sqs")
        self.pollers = Pollers(
            [
                SqsPoller(
                    self.runtime,
                    QueueMapping(
                        uuid=m.uuid,
                        function_name=m.function_name,
                        queue_url=m.queue_url,
                        queue_arn=m.queue_arn,
                        batch_size=m.batch_size,
                        report_batch_item_failures=m.report_batch_item_failures,
                        enabled=m.enabled,
                        maximum_batching_window_seconds=m.maximum_batching_window_seconds,
                    ),
                    sqs_client=sqs,
                    retry_delay_seconds=config.retry_delay_seconds,
                )
                for m in self.deployment.queue_mappings
            ]
        )
        # botocore 1.44 sends DynamoDB calls to account-based endpoints, which moto's
        # stream routing does not recognise (FIELD-NOTES "moto").
        streams = self.client("dynamodbstreams", Config(account_id_endpoint_mode="disabled"))
        for record in self.deployment.table_stream_mappings:
            self.pollers.add(
                TableStreamPoller(
                    self.runtime,
                    TableStreamMapping(**asdict(record)),
                    streams_client=streams,
                    sqs_client=sqs,
                )
            )
        kinesis = self.client("kinesis")
        for kinesis_record in self.deployment.kinesis_stream_mappings:
            self.pollers.add(
                KinesisStreamPoller(
                    self.runtime,
                    KinesisStreamMapping(**asdict(kinesis_record)),
                    kinesis_client=kinesis,
                    sqs_client=sqs,
                )
            )
        self.async_invocations = AsyncInvocations(
            self.runtime,
            self.deployment.async_invocations,
            client=self.client,
            region=config.region,
            account_id=ACCOUNT_ID,
            retry_delay_seconds=config.retry_delay_seconds,
        )
        self.runtime.async_queue = self.async_invocations
        self.pollers.add(self.async_invocations)
        self.pollers.start()
        self.scheduler = self._scheduler(self.deployment)
        gateway = Gateway(
            list(self.deployment.routes),
            self._invoke_for_api,
            api_key=self.deployment.api_key_value,
            control=self._control,
            responses=self.deployment.gateway_responses,
        )
        self.api = LocalApi(gateway, host=config.host, port=config.api_port)
        self.api.start()
        self.outputs = {
            **self.deployment.outputs,
            # The stage URL of the template is AWS's; locally the routes are served here.
            "ApiUrl": self.api.url,
            "AwsEndpoint": server.endpoint,
            "Region": config.region,
            "ApiKey": self.deployment.api_key_value or "",
        }
        if config.outputs_path is not None:
            config.outputs_path.parent.mkdir(parents=True, exist_ok=True)
            config.outputs_path.write_text(json.dumps(self.outputs, indent=2) + "\n")
        return self.outputs

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self.pollers is not None:
            self.pollers.stop()  # the asynchronous invocations' workers too
            self.pollers = None
            self.async_invocations = None
        if self.runtime is not None:
            patches.revert()
            self.runtime = None
        uninstall_overlay()
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> LocalCloud:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # Helpers for tests, the demo and the control plane --------------------------------

    def client(self, service: str, config: Config | None = None) -> Any:
        assert self.server is not None, "the local cloud is not running"
        return boto3.client(
            service,
            config=config,
            endpoint_url=self.server.endpoint,
            region_name=self.config.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's fixed fake credentials
        )

    def set_clock_offset(self, seconds: int) -> None:
        assert self.runtime is not None
        self.runtime.clock_offset_seconds = int(seconds)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Until every polled queue is empty and every polled stream read to its end, no
        batch is in flight and every asynchronous invocation (S3 notification) is settled."""
        return self.pollers.wait_idle(timeout) if self.pollers is not None else True

    def fire(self, name: str) -> dict[str, Any]:
        assert self.scheduler is not None
        result = self.scheduler.fire(name)
        return {
            "rule": result.rule,
            "time": result.time,
            "targets": [t.__dict__ for t in result.targets],
        }

    def _invoke_for_api(self, function_name: str, event: dict[str, Any]) -> InvocationResult:
        assert self.runtime is not None
        invocation = self.runtime.invoke(function_name, event)
        return InvocationResult(payload=invocation.payload, is_error=invocation.is_error)

    def _scheduler(self, deployment: Deployment) -> Scheduler:
        sqs, states = self.client("sqs"), self.client("stepfunctions")

        def invoke_lambda(arn: str, event: dict[str, Any]) -> bool:
            assert self.runtime is not None
            return not self.runtime.invoke(arn, event).is_error

        def send_to_queue(queue_arn: str, body: str) -> None:
            name = queue_arn.rsplit(":", 1)[-1]
            sqs.send_message(
                QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"], MessageBody=body
            )

        def start_execution(arn: str, payload: str) -> str:
            response = states.start_execution(
                stateMachineArn=arn, name=f"scheduled-{uuid.uuid4()}", input=payload
            )
            return str(response["executionArn"])

        return Scheduler(
            schedules=list(deployment.schedules),
            account=ACCOUNT_ID,
            region=self.config.region,
            clock_offset=lambda: self.runtime.clock_offset_seconds if self.runtime else 0,
            invoke_lambda=invoke_lambda,
            send_to_queue=send_to_queue,
            start_execution=start_execution,
        )

    def _control(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """`/_local/...`: the clock, scheduled rules, draining queues, outputs, and what
        SES and SNS sent (`infra.local.mailbox`)."""
        name, _, argument = path.partition("/")
        route = {
            ("GET", "clock"): self._get_clock,
            ("POST", "clock"): self._move_clock,
            ("PUT", "clock"): self._move_clock,
            ("POST", "fire"): self._fire_rule,
            ("POST", "drain"): self._drain,
            ("GET", "outputs"): lambda *_: (200, self.outputs),
            ("GET", "mailbox"): lambda *_: (200, mailbox(ACCOUNT_ID, self.config.region)),
        }.get((method, name))
        if route is None:
            return 404, {"message": f"no control route {method} /_local/{path}"}
        return route(argument, body or {})

    def _get_clock(self, _: str, __: dict[str, Any]) -> tuple[int, Any]:
        assert self.runtime is not None
        return 200, {"offsetSeconds": self.runtime.clock_offset_seconds}

    def _move_clock(self, _: str, body: dict[str, Any]) -> tuple[int, Any]:
        assert self.runtime is not None
        if "offsetSeconds" in body:
            offset = int(body["offsetSeconds"])
        elif "advanceSeconds" in body:
            offset = self.runtime.clock_offset_seconds + int(body["advanceSeconds"])
        else:
            return 400, {"message": "give offsetSeconds or advanceSeconds"}
        self.set_clock_offset(offset)
        return 200, {"offsetSeconds": offset}

    def _fire_rule(self, name: str, _: dict[str, Any]) -> tuple[int, Any]:
        try:
            return 200, self.fire(name)
        except UnknownSchedule as error:
            return 404, {"message": str(error)}

    def _drain(self, _: str, body: dict[str, Any]) -> tuple[int, Any]:
        drained = self.wait_idle(float(body.get("timeoutSeconds", 10)))
        return (200 if drained else 504), {"drained": drained}
