"""Which Rebates a `rebates` command talks to: the local cloud or the stack deployed in AWS.

Both are read through the same stack outputs (DESIGN "Local cloud"): the local cloud
writes them to `.local/outputs.json`, a deployed stack carries them as CloudFormation
outputs. A command asks for `from_args(args)` and gets a `Target` whose `client()`
and `output()` work the same either way; the choice is announced on stderr so that
nobody mistakes the account they are changing.

The choice: `--target local|aws`, else `$REBATES_TARGET`, else the local cloud when
`.local/outputs.json` exists and the cloud answers, else AWS when credentials resolve.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from cli.aws import AwsAccess, AwsUnavailable, resolve

LOCAL_OUTPUTS = Path(__file__).resolve().parent.parent / ".local" / "outputs.json"
TARGET_VARIABLE = "REBATES_TARGET"
TARGETS = ("local", "aws")
# infra/app.py's STACK_NAME, repeated because importing the CDK app starts a Node
# process; tests/infra/test_cdk_cli.py fails when the two differ.
STACK_NAME = "Rebates"
_API_KEY_TYPE = "AWS::ApiGateway::ApiKey"
_PROBE_SECONDS = 1.0

Kind = Literal["local", "aws"]


class TargetUnavailable(RuntimeError):
    """The requested (or any) target cannot be reached; the message says how to fix it."""


@dataclass(frozen=True)
class Target:
    kind: Kind
    outputs: Mapping[str, str]
    region: str
    description: str  # what `announce` prints, e.g. "local cloud at http://127.0.0.1:4566"
    make_client: Callable[[str], Any] = field(repr=False)
    fetch_api_key: Callable[[], str] = field(repr=False)

    def client(self, service: str) -> Any:
        """A boto3 client for `service` in this target (the moto endpoint, or the account)."""
        return self.make_client(service)

    def output(self, key: str) -> str:
        try:
            return self.outputs[key]
        except KeyError:
            known = ", ".join(sorted(self.outputs)) or "none"
            raise TargetUnavailable(
                f"the {self.description} has no output {key!r} (it has: {known})"
            ) from None

    @property
    def api_url(self) -> str:
        """The stage URL without a trailing slash: routes are `{api_url}/v1/...`."""
        return self.output("ApiUrl").rstrip("/")

    def api_key(self) -> str:
        """The storefront key's value (an output locally, read from API Gateway in AWS)."""
        return self.fetch_api_key()


def read_local_outputs(path: Path = LOCAL_OUTPUTS) -> dict[str, str]:
    if not path.is_file():
        raise TargetUnavailable(f"{path} not found: start the local cloud with `make run`")
    try:
        outputs = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise TargetUnavailable(f"{path} is unreadable ({error}): restart `make run`") from error
    if not isinstance(outputs, dict) or "AwsEndpoint" not in outputs or "ApiUrl" not in outputs:
        raise TargetUnavailable(f"{path} lacks ApiUrl or AwsEndpoint: restart `make run`")
    return {str(k): str(v) for k, v in outputs.items()}


def local_cloud_answers(outputs: Mapping[str, str], timeout: float = _PROBE_SECONDS) -> bool:
    """Whether the local API answers `GET /v1/health`: outputs.json outlives its cloud."""
    url = f"{outputs['ApiUrl'].rstrip('/')}/v1/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own URL
            return bool(response.status == 200)
    except (OSError, ValueError, http.client.HTTPException):  # URLError is an OSError
        return False


def local_target(path: Path = LOCAL_OUTPUTS, *, probe: bool = True) -> Target:
    outputs = read_local_outputs(path)
    if probe and not local_cloud_answers(outputs):
        raise TargetUnavailable(
            f"no local cloud answers at {outputs['ApiUrl']} ({path} is left from an earlier "
            "run): start it with `make run`"
        )
    region = outputs.get("Region") or "us-east-1"

    def make_client(service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=outputs["AwsEndpoint"],
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's fixed fake credentials
        )

    def api_key() -> str:
        if not outputs.get("ApiKey"):
            raise TargetUnavailable(f"{path} has no ApiKey: restart `make run`")
        return outputs["ApiKey"]

    return Target(
        kind="local",
        outputs=outputs,
        region=region,
        description=f"local cloud at {outputs['AwsEndpoint']} (API {outputs['ApiUrl']})",
        make_client=make_client,
        fetch_api_key=api_key,
    )


def _account_of(stack_id: str) -> str:
    # arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/ID: no STS call needed.
    parts = stack_id.split(":")
    return parts[4] if len(parts) > 5 else "unknown"


def read_stack_outputs(
    cloudformation: Any, stack_name: str = STACK_NAME
) -> tuple[dict[str, str], str]:
    """The stack's outputs by key, and its stack id; `TargetUnavailable` when not deployed."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", str(error))
        if "does not exist" in message:
            raise TargetUnavailable(
                f"no stack {stack_name} here: deploy it with `make deploy` ({message})"
            ) from error
        raise TargetUnavailable(f"cannot read stack {stack_name}: {message}") from error
    except BotoCoreError as error:
        raise TargetUnavailable(f"cannot read stack {stack_name}: {error}") from error
    stack = stacks[0]
    status = str(stack.get("StackStatus", ""))
    if status.startswith("DELETE_") or status == "ROLLBACK_COMPLETE":
        raise TargetUnavailable(f"stack {stack_name} is {status}: deploy it with `make deploy`")
    outputs = {str(o["OutputKey"]): str(o["OutputValue"]) for o in stack.get("Outputs", [])}
    return outputs, str(stack["StackId"])


def read_api_key(access: Any, stack_name: str = STACK_NAME) -> str:
    """The value of the API key the stack created (found among its resources, not by name).

    `access` is anything with `client(service)`: an `AwsAccess`, or a test's stand-in.
    """
    cloudformation = access.client("cloudformation")
    keys: list[str] = []
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        keys += [
            r["PhysicalResourceId"]
            for r in page["StackResourceSummaries"]
            if r["ResourceType"] == _API_KEY_TYPE and r.get("PhysicalResourceId")
        ]
    if len(keys) != 1:
        raise TargetUnavailable(f"stack {stack_name} has {len(keys)} API keys, expected one")
    response = access.client("apigateway").get_api_key(apiKey=keys[0], includeValue=True)
    return str(response["value"])


def aws_target(access: AwsAccess | None = None, stack_name: str = STACK_NAME) -> Target:
    try:
        access = access or resolve()
    except AwsUnavailable as error:
        raise TargetUnavailable(str(error)) from error
    outputs, stack_id = read_stack_outputs(access.client("cloudformation"), stack_name)
    via = f", profile {access.profile}" if access.profile else ""
    return Target(
        kind="aws",
        outputs=outputs,
        region=access.region,
        description=(
            f"AWS stack {stack_name} in {access.region}, account {_account_of(stack_id)}{via}"
        ),
        make_client=access.client,
        fetch_api_key=lambda: read_api_key(access, stack_name),
    )


def requested_target(flag: str | None, environ: Mapping[str, str] = os.environ) -> Kind | None:
    """`--target`, else `$REBATES_TARGET`, else None (choose automatically)."""
    value = (flag or environ.get(TARGET_VARIABLE) or "").strip().lower()
    if not value:
        return None
    if value == "local":
        return "local"
    if value == "aws":
        return "aws"
    raise TargetUnavailable(f"{TARGET_VARIABLE}={value!r}: expected one of {', '.join(TARGETS)}")


def resolve_target(
    requested: Kind | None,
    *,
    outputs_path: Path = LOCAL_OUTPUTS,
    aws: Callable[[], Target] | None = None,
) -> tuple[Target, str | None]:
    """The target, and why it was chosen when nobody asked for one (None when asked)."""
    aws = aws or aws_target
    if requested == "local":
        return local_target(outputs_path), None
    if requested == "aws":
        return aws(), None
    try:
        return local_target(outputs_path), None
    except TargetUnavailable as local_problem:
        try:
            target = aws()
        except TargetUnavailable as aws_problem:
            raise TargetUnavailable(
                f"nothing to talk to.\nLocal: {local_problem}\nAWS: {aws_problem}"
            ) from aws_problem
        return target, f"{local_problem}; `--target local` to insist"


def announce(target: Target, reason: str | None = None, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    print(f"rebates: talking to the {target.description}", file=stream)
    if reason:
        print(f"rebates: (not the local cloud: {reason})", file=stream)


def from_args(args: Any, *, outputs_path: Path | None = None) -> Target:
    """Resolve `args.target` (argparse) as described above and announce the choice."""
    requested = requested_target(getattr(args, "target", None))
    target, reason = resolve_target(requested, outputs_path=outputs_path or LOCAL_OUTPUTS)
    announce(target, reason)
    return target
