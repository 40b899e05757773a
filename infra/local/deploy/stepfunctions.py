"""Step Functions state machines."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from infra.local.deploy.core import (
    DeployContext,
    attribute_text,
    camel,
    lower_first,
    resource_name,
    tag_list,
)
from infra.local.deploy.records import Deployed
from infra.local.template import TemplateError


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
        text = text.replace("${" + key + "}", attribute_text(value))
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
    name = resource_name(context, logical_id, properties.get("StateMachineName"), limit=80)
    request: dict[str, Any] = {
        "name": name,
        "definition": state_machine_definition(properties),
        "roleArn": properties["RoleArn"],
        "type": properties.get("StateMachineType", "STANDARD"),
    }
    for key in ("LoggingConfiguration", "TracingConfiguration"):
        if key in properties:
            request[lower_first(key)] = camel(properties[key])
    if "Tags" in properties:
        request["tags"] = tag_list(properties, "key", "value")
    arn = context.client("stepfunctions").create_state_machine(**request)["stateMachineArn"]
    return Deployed(arn, {"Arn": arn, "Name": name})
