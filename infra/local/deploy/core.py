"""What every deployer shares: errors, the context (clients, names, ARNs), and the
conversions from CloudFormation's property shapes to the service APIs' shapes."""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import boto3
from botocore.config import Config

from infra.local.deploy.records import Deployed, Deployment
from infra.local.template import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_REGION,
    DEFAULT_STACK_NAME,
    TemplateError,
)


class UnsupportedResourceError(TemplateError):
    """Resource types neither deployable locally nor known to have no local effect."""

    def __init__(self, unsupported: Mapping[str, str]) -> None:
        self.unsupported = dict(unsupported)
        listed = ", ".join(f"{i} ({t})" for i, t in sorted(self.unsupported.items()))
        super().__init__(
            f"the local cloud cannot deploy {listed}: add a deployer to "
            "infra/local/deploy/resource_types.py DEPLOYERS, or a reason to NO_OP_TYPES"
        )


class DeployError(Exception):
    """Deploying one resource failed; nothing after it was deployed."""

    def __init__(self, logical_id: str, resource_type: str, cause: str) -> None:
        self.logical_id = logical_id
        self.resource_type = resource_type
        self.cause = cause
        super().__init__(f"{logical_id} ({resource_type}): {cause}")


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
    # Where the local cloud serves the API (`http://127.0.0.1:3000`): a function told the
    # stage URL (`https://{id}.execute-api...amazonaws.com/{stage}`) is told this instead,
    # so the links it writes (unsubscribe) work locally. None: as the template says.
    local_api_url: str | None = None
    # Queues hold new messages back at most this many seconds (a queue's DelaySeconds is
    # a minute or more in AWS; a demo or a test would wait it out). None: as the template.
    max_queue_delay_seconds: int | None = None
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


def resource_name(
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


def pick(properties: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """The given keys of `properties` that are present (CloudFormation and API share them)."""
    return {key: properties[key] for key in keys if key in properties}


def lower_first(key: str) -> str:
    return key[:1].lower() + key[1:]


def camel(value: Any) -> Any:
    """CloudFormation's PascalCase shape as the camelCase one of REST-JSON APIs.

    Only for shapes whose keys are all field names (never for user maps such as tags
    or stage variables, whose keys must stay as written).
    """
    if isinstance(value, dict):
        return {lower_first(k): camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(item) for item in value]
    return value


def camel_fields(properties: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """`pick` with top-level keys in camelCase; nested values left as they are."""
    return {lower_first(k): v for k, v in pick(properties, *keys).items()}


def tag_map(properties: Mapping[str, Any]) -> dict[str, str]:
    """CloudFormation's `Tags: [{Key, Value}]` as the `{key: value}` many APIs take."""
    tags = properties.get("Tags") or []
    if isinstance(tags, dict):  # a few types (SSM, API Gateway v2) take a map already
        return {str(k): str(v) for k, v in tags.items()}
    return {str(tag["Key"]): str(tag["Value"]) for tag in tags}


def tag_list(properties: Mapping[str, Any], key: str = "Key", value: str = "Value") -> list[Any]:
    return [{key: k, value: v} for k, v in tag_map(properties).items()]


def json_text(value: Any) -> str:
    """A policy or pattern given either as JSON text or as an object."""
    return value if isinstance(value, str) else json.dumps(value)


def attribute_text(value: Any) -> str:
    """SQS/SNS attribute values are strings: booleans as `true`/`false`, objects as JSON."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def fifo_name(
    context: DeployContext, logical_id: str, explicit: Any, fifo: Any, *, limit: int
) -> str:
    """A queue or topic name; a FIFO one must end in `.fifo`, within the same limit."""
    if explicit:
        return str(explicit)
    if fifo:
        return context.physical_name(logical_id, limit=limit - len(".fifo")) + ".fifo"
    return context.physical_name(logical_id, limit=limit)


def of_type(deployment: Deployment, resource_type: str) -> list[tuple[str, Deployed]]:
    return [(i, d) for i, d in deployment.resources.items() if deployment.types[i] == resource_type]


def function_name_of(deployment: Deployment, reference: str) -> str:
    """A function's name from its name, ARN or qualified ARN (`...:function:f:alias`)."""
    for record in deployment.functions.values():
        if reference in {record.name, record.arn}:
            return record.name
    return (
        reference.split(":function:", 1)[1].split(":", 1)[0]
        if ":function:" in reference
        else reference
    )
