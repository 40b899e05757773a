"""Athena workgroups.

Locally the archive's SQL runs on DuckDB, not Athena; the workgroup is created all the
same, so `aws athena get-work-group` shows the stack's settings (enforced
configuration, bytes-scanned cutoff, encrypted result location) as in AWS.
"""

from __future__ import annotations

from typing import Any

from infra.local.deploy.core import DeployContext, pick, tag_list
from infra.local.deploy.records import Deployed
from infra.local.template import TemplateError


def deploy_work_group(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # CloudFormation requires the name; a workgroup has no generated one.
    name = str(properties["Name"])
    if "WorkGroupConfigurationUpdates" in properties:
        raise TemplateError(
            f"{logical_id}: WorkGroupConfigurationUpdates is deprecated in CloudFormation; "
            "the local cloud deploys WorkGroupConfiguration only"
        )
    if properties.get("State", "ENABLED") != "ENABLED":
        raise TemplateError(
            f"{logical_id}: moto cannot disable a workgroup (State {properties['State']!r})"
        )
    athena = context.client("athena")
    # WorkGroupConfiguration has the API's shape and names. RecursiveDeleteOption only
    # says what deleting the stack does: nothing to create.
    request: dict[str, Any] = {
        "Name": name,
        "Configuration": dict(properties.get("WorkGroupConfiguration") or {}),
        **pick(properties, "Description"),
    }
    if "Tags" in properties:
        request["Tags"] = tag_list(properties)
    athena.create_work_group(**request)
    created = athena.get_work_group(WorkGroup=name)["WorkGroup"]
    engine = created.get("Configuration", {}).get("EngineVersion", {})
    return Deployed(
        name,
        {
            "CreationTime": str(created.get("CreationTime", "")),
            "WorkGroupConfiguration.EngineVersion.EffectiveEngineVersion": str(
                engine.get("EffectiveEngineVersion", "")
            ),
        },
    )
