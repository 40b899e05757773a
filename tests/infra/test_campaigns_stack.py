"""The campaign loader's wiring: which uploads reach it, and exactly what it may do.

The generic checks (DLQ for event-driven functions, no wildcard actions, nag, one role
per function) are in test_stack.py and test_nag.py; these are the loader's own.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.campaigns.logic import CAMPAIGNS_PREFIX
from functions.core.tables import CAMPAIGNS
from infra.constructs.campaigns import LOADER_HANDLER
from tests.infra.conftest import Synth
from tests.infra.template_checks import as_list, ref_id


def _loader(synth: Synth) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (logical_id, function)
        for logical_id, function in synth.resources("AWS::Lambda::Function").items()
        if function["Properties"]["Handler"] == LOADER_HANDLER
    ]
    return found


def _marketers_topic(synth: Synth) -> str:
    (topic,) = [
        logical_id
        for logical_id, topic in synth.resources("AWS::SNS::Topic").items()
        if topic["Properties"]["DisplayName"] == "Rebates campaign reports"
    ]
    return topic


def _bucket(synth: Synth) -> str:
    bucket = ref_id(synth.data["Outputs"]["CampaignBucketName"]["Value"])
    assert bucket is not None
    return bucket


def _statements(synth: Synth) -> list[dict[str, Any]]:
    _, loader = _loader(synth)
    role = ref_id(loader["Properties"]["Role"])
    (policy,) = [
        p
        for p in synth.resources("AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
    ]
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _granted(synth: Synth, service: str) -> dict[str, list[str]]:
    """action -> the resources it is allowed on (as JSON text), for one service."""
    granted: dict[str, list[str]] = {}
    for statement in _statements(synth):
        for action in as_list(statement["Action"]):
            if action.startswith(f"{service}:"):
                granted.setdefault(action, []).extend(
                    json.dumps(resource, sort_keys=True)
                    for resource in as_list(statement["Resource"])
                )
    return granted


def test_loader_is_an_async_function_sized_for_100k_codes(synth: Synth) -> None:
    logical_id, loader = _loader(synth)
    props = loader["Properties"]
    assert props["MemorySize"] == 1024
    assert props["Timeout"] == 900
    assert props["DeadLetterConfig"]["TargetArn"]
    (invoke_config,) = [
        c
        for c in synth.resources("AWS::Lambda::EventInvokeConfig").values()
        if ref_id(c["Properties"]["FunctionName"]) == logical_id
    ]
    assert invoke_config["Properties"]["MaximumRetryAttempts"] == 2


def test_loader_environment_names_its_resources(synth: Synth) -> None:
    _, loader = _loader(synth)
    env = loader["Properties"]["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "campaigns"
    assert env[CAMPAIGNS.env_var] == {"Ref": CAMPAIGNS.logical_id}
    assert env["CAMPAIGN_BUCKET"] == {"Ref": _bucket(synth)}
    topic = _marketers_topic(synth)
    assert env["MARKETERS_TOPIC_ARN"] == {"Ref": topic}
    assert ref_id(env["EVENT_BUS_NAME"]) in synth.resources("AWS::Events::EventBus")


def test_every_object_under_campaigns_is_notified_on_create_and_remove(synth: Synth) -> None:
    # S3 filters match a suffix case-sensitively, and a file under campaigns/ that is not a
    # campaign file gets a report too: the loader decides, so the filter is the prefix alone.
    logical_id, _ = _loader(synth)
    (notifications,) = [
        n
        for n in synth.resources("Custom::S3BucketNotifications").values()
        if ref_id(n["Properties"]["BucketName"]) == _bucket(synth)
    ]
    configurations = notifications["Properties"]["NotificationConfiguration"][
        "LambdaFunctionConfigurations"
    ]
    found = []
    for configuration in configurations:
        assert ref_id(configuration["LambdaFunctionArn"]) == logical_id
        rules = configuration["Filter"]["Key"]["FilterRules"]
        assert rules == [{"Name": "prefix", "Value": CAMPAIGNS_PREFIX}]
        found.extend(configuration["Events"])
    assert sorted(found) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]


def test_s3_may_invoke_the_loader_for_the_campaigns_bucket_only(synth: Synth) -> None:
    logical_id, _ = _loader(synth)
    (permission,) = [
        p["Properties"]
        for p in synth.resources("AWS::Lambda::Permission").values()
        if ref_id(p["Properties"]["FunctionName"]) == logical_id
    ]
    assert permission["Principal"] == "s3.amazonaws.com"
    assert ref_id(permission["SourceArn"]) == _bucket(synth)


def _object_arn(bucket: str, prefix: str) -> str:
    return json.dumps(
        {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, f"/{prefix}*"]]}, sort_keys=True
    )


def test_loader_reads_campaign_files_and_writes_only_reports(synth: Synth) -> None:
    bucket = _bucket(synth)
    campaigns, reports = _object_arn(bucket, "campaigns/"), _object_arn(bucket, "reports/")
    bucket_arn = json.dumps({"Fn::GetAtt": [bucket, "Arn"]})
    assert _granted(synth, "s3") == {
        "s3:GetObject": [campaigns, reports],
        "s3:PutObject": [reports],
        "s3:ListBucket": [bucket_arn],
    }


def test_loader_publishes_to_the_marketers_topic_through_its_key(synth: Synth) -> None:
    topic = _marketers_topic(synth)
    assert _granted(synth, "sns") == {"sns:Publish": [json.dumps({"Ref": topic})]}
    (kms,) = [s for s in _statements(synth) if str(as_list(s["Action"])[0]).startswith("kms:")]
    assert sorted(as_list(kms["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey"]
    key = ref_id(kms["Resource"])
    topic_key = synth.data["Resources"][topic]["Properties"]["KmsMasterKeyId"]
    assert key == ref_id(topic_key)
    via = kms["Condition"]["StringEquals"]["kms:ViaService"]
    assert "sns." in json.dumps(via)


@pytest.mark.parametrize("service", ["events", "dynamodb"])
def test_loader_other_grants_name_their_resources(synth: Synth, service: str) -> None:
    granted = _granted(synth, service)
    assert granted
    for action, resources in granted.items():
        assert '"*"' not in resources, action
