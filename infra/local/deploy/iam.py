"""IAM roles: created, because moto's Lambda refuses a role that does not exist."""

from __future__ import annotations

from typing import Any

from infra.local.deploy.core import DeployContext, json_text, pick, resource_name, tag_list
from infra.local.deploy.records import Deployed


def deploy_role(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    # moto's Lambda refuses a role that does not exist (Step Functions checks only the
    # ARN's form), so roles are created, with their trust policy. moto evaluates no IAM,
    # so managed and inline policies (and AWS::IAM::Policy) would change nothing.
    name = resource_name(context, logical_id, properties.get("RoleName"), limit=64)
    request = {
        "RoleName": name,
        "AssumeRolePolicyDocument": json_text(properties["AssumeRolePolicyDocument"]),
        **pick(properties, "Path", "Description", "MaxSessionDuration", "PermissionsBoundary"),
    }
    if "Tags" in properties:
        request["Tags"] = tag_list(properties)
    role = context.client("iam").create_role(**request)["Role"]
    return Deployed(name, {"Arn": role["Arn"], "RoleId": role["RoleId"]})
