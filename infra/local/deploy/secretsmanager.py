"""Secrets Manager secrets."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from infra.local.deploy.core import DeployContext, pick, resource_name, tag_list
from infra.local.deploy.records import Deployed
from infra.local.template import TemplateError

# GenerateSecretString's rules, named as GetRandomPassword names them.
_PASSWORD_RULES: Final = (
    "ExcludeCharacters",
    "ExcludeLowercase",
    "ExcludeNumbers",
    "ExcludePunctuation",
    "ExcludeUppercase",
    "IncludeSpace",
    "PasswordLength",
    "RequireEachIncludedType",
)


def _secret_string(secrets: Any, properties: Mapping[str, Any]) -> str:
    if "SecretString" in properties:
        return str(properties["SecretString"])
    generator = properties.get("GenerateSecretString")
    if generator is None:
        raise TemplateError("a secret needs its SecretString or GenerateSecretString")
    # CloudFormation generates the value with Secrets Manager's own generator, as here.
    password = str(
        secrets.get_random_password(**pick(generator, *_PASSWORD_RULES))["RandomPassword"]
    )
    if "SecretStringTemplate" not in generator:
        return password
    # The generated value goes under GenerateStringKey of the template's JSON object.
    document = json.loads(generator["SecretStringTemplate"])
    document[generator["GenerateStringKey"]] = password
    return json.dumps(document)


def deploy_secret(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    secrets = context.client("secretsmanager")
    request: dict[str, Any] = {
        "Name": resource_name(context, logical_id, properties.get("Name"), limit=512),
        "SecretString": _secret_string(secrets, properties),
        **pick(properties, "Description", "KmsKeyId"),
    }
    if "Tags" in properties:
        request["Tags"] = tag_list(properties)
    arn = str(secrets.create_secret(**request)["ARN"])
    # Ref and Fn::GetAtt Id are both the ARN.
    return Deployed(arn, {"Id": arn})
