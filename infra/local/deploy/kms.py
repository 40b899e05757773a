"""KMS keys."""

from __future__ import annotations

from typing import Any

from infra.local.deploy.core import DeployContext, json_text, pick, tag_list
from infra.local.deploy.records import Deployed


def deploy_kms_key(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    kms = context.client("kms")
    request = pick(properties, "Description", "KeyUsage", "KeySpec", "MultiRegion", "Origin")
    if "KeyPolicy" in properties:
        request["Policy"] = json_text(properties["KeyPolicy"])
    if "Tags" in properties:
        request["Tags"] = tag_list(properties, "TagKey", "TagValue")
    key = kms.create_key(**request)["KeyMetadata"]
    if properties.get("EnableKeyRotation"):
        kms.enable_key_rotation(KeyId=key["KeyId"])
    if properties.get("Enabled") is False:
        kms.disable_key(KeyId=key["KeyId"])
    return Deployed(key["KeyId"], {"Arn": key["Arn"], "KeyId": key["KeyId"]})
