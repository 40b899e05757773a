"""Deploying the analytics catalog into moto: the Athena workgroup with its enforced
configuration, and the Glue table with its partition projection, as the stack
declares them (shapes copied from the synthesized template)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from infra.local.deploy import DEPLOYERS, DeployContext, DeployError, deploy

REGION = "ap-northeast-1"


def _archive_location(path: str) -> dict[str, Any]:
    return {"Fn::Join": ["", ["s3://", {"Ref": "Archive"}, path]]}


def _work_group(**overrides: Any) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "Name": "rebates-analytics",
        "Description": "funnel and attribution queries",
        "RecursiveDeleteOption": True,
        "State": "ENABLED",
        "WorkGroupConfiguration": {
            "BytesScannedCutoffPerQuery": 10 * 1024**3,
            "EnforceWorkGroupConfiguration": True,
            "EngineVersion": {"SelectedEngineVersion": "AUTO"},
            "PublishCloudWatchMetricsEnabled": True,
            "ResultConfiguration": {
                "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
                "OutputLocation": _archive_location("/athena-results/"),
            },
        },
        "Tags": [{"Key": "owner", "Value": "analytics"}],
    }
    properties.update(overrides)
    return {"Type": "AWS::Athena::WorkGroup", "Properties": properties}


PROJECTION = {
    "projection.enabled": "true",
    "projection.dt.type": "date",
    "projection.dt.format": "yyyy-MM-dd",
    "projection.dt.range": "2026-01-01,NOW",
    "projection.dt.interval": "1",
    "projection.dt.interval.unit": "DAYS",
}


def catalog_template(work_group: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "Resources": {
            "Archive": {"Type": "AWS::S3::Bucket", "Properties": {}},
            "Database": {
                "Type": "AWS::Glue::Database",
                "Properties": {
                    "CatalogId": {"Ref": "AWS::AccountId"},
                    "DatabaseInput": {"Name": "rebates_analytics"},
                },
            },
            "EventsTable": {
                "Type": "AWS::Glue::Table",
                "Properties": {
                    "CatalogId": {"Ref": "AWS::AccountId"},
                    "DatabaseName": {"Ref": "Database"},
                    "TableInput": {
                        "Name": "events",
                        "TableType": "EXTERNAL_TABLE",
                        "PartitionKeys": [{"Name": "dt", "Type": "string"}],
                        "Parameters": {
                            "classification": "json",
                            **PROJECTION,
                            "storage.location.template": _archive_location("/events/dt=${dt}/"),
                        },
                        "StorageDescriptor": {
                            "Columns": [
                                {"Name": "event_id", "Type": "string"},
                                {"Name": "occurred_ms", "Type": "bigint"},
                            ],
                            "Location": _archive_location("/events/"),
                            "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
                            "OutputFormat": (
                                "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
                            ),
                            "SerdeInfo": {
                                "SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"
                            },
                        },
                    },
                },
            },
            "WorkGroup": work_group or _work_group(),
        },
        "Outputs": {"WorkGroupName": {"Value": {"Ref": "WorkGroup"}}},
    }


@pytest.fixture
def context() -> Iterator[DeployContext]:
    with mock_aws():
        yield DeployContext(region=REGION, seed=7)


def test_every_catalog_type_has_a_deployer() -> None:
    assert {"AWS::Athena::WorkGroup", "AWS::Glue::Database", "AWS::Glue::Table"} <= set(DEPLOYERS)


def test_the_workgroup_keeps_its_enforced_encrypted_configuration(
    context: DeployContext,
) -> None:
    deployment = deploy(catalog_template(), context)
    athena = context.client("athena")
    work_group = athena.get_work_group(WorkGroup="rebates-analytics")["WorkGroup"]
    bucket = deployment.resources["Archive"].physical_id
    configuration = work_group["Configuration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["BytesScannedCutoffPerQuery"] == 10 * 1024**3
    assert configuration["PublishCloudWatchMetricsEnabled"] is True
    assert configuration["EngineVersion"]["SelectedEngineVersion"] == "AUTO"
    assert configuration["ResultConfiguration"] == {
        "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
        "OutputLocation": f"s3://{bucket}/athena-results/",
    }
    assert work_group["State"] == "ENABLED"
    assert work_group["Description"] == "funnel and attribution queries"
    # Ref is the name, as in CloudFormation.
    assert deployment.outputs == {"WorkGroupName": "rebates-analytics"}
    names = [w["Name"] for w in athena.list_work_groups()["WorkGroups"]]
    assert "rebates-analytics" in names


def test_the_events_table_keeps_its_projection_over_the_archive(context: DeployContext) -> None:
    deployment = deploy(catalog_template(), context)
    bucket = deployment.resources["Archive"].physical_id
    table = context.client("glue").get_table(DatabaseName="rebates_analytics", Name="events")[
        "Table"
    ]
    parameters = table["Parameters"]
    assert {k: v for k, v in parameters.items() if k.startswith("projection.")} == PROJECTION
    # The template's ${dt} is Athena's, not CloudFormation's: it stays as written.
    assert parameters["storage.location.template"] == f"s3://{bucket}/events/dt=${{dt}}/"
    assert table["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
    storage = table["StorageDescriptor"]
    assert storage["Location"] == f"s3://{bucket}/events/"
    assert storage["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"


def test_a_disabled_workgroup_is_refused_not_created_enabled(context: DeployContext) -> None:
    with pytest.raises(DeployError) as raised:
        deploy(catalog_template(_work_group(State="DISABLED")), context)
    assert raised.value.logical_id == "WorkGroup"
    assert "cannot disable a workgroup" in raised.value.cause


def test_the_deprecated_configuration_updates_are_refused(context: DeployContext) -> None:
    work_group = _work_group(WorkGroupConfigurationUpdates={"EnforceWorkGroupConfiguration": True})
    with pytest.raises(DeployError) as raised:
        deploy(catalog_template(work_group), context)
    assert "WorkGroupConfigurationUpdates" in raised.value.cause
