"""Waiting for the loader's report on one upload: the report the loader writes for that
revision, never the key's report on an earlier one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.campaigns import logic
from functions.campaigns.dal import CampaignFiles
from functions.campaigns.logic import SourceFile
from infra.local.campaign_files import (
    ReportTimeout,
    report_key,
    upload_campaign_file,
    wait_for_report,
)

REGION = "ap-northeast-1"
BUCKET = "campaign-files"
KEY = "campaigns/spring.yaml"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


def report_as_the_loader_writes_it(s3: Any, status: str) -> None:
    """The loader's own report writer, on the key's current revision."""
    head = s3.head_object(Bucket=BUCKET, Key=KEY)
    source = SourceFile(KEY, head["ETag"].strip('"'), head.get("VersionId"))
    CampaignFiles(BUCKET, client=s3).write_report(source, {"status": status})


def test_the_report_key_is_the_loaders() -> None:
    assert report_key(KEY) == logic.report_key(KEY)


def test_the_report_on_the_upload_is_found(s3: Any) -> None:
    revision = upload_campaign_file(s3, BUCKET, KEY, b"id: spring")
    report_as_the_loader_writes_it(s3, "published")

    report = wait_for_report(s3, BUCKET, KEY, revision, timeout=1)

    assert (report.document, report.content_type) == ({"status": "published"}, "application/json")
    assert report.revision == s3.head_object(Bucket=BUCKET, Key=KEY)["VersionId"]


def test_the_report_on_an_earlier_upload_is_not_this_uploads(s3: Any) -> None:
    upload_campaign_file(s3, BUCKET, KEY, b"id: spring")
    report_as_the_loader_writes_it(s3, "published")
    second = upload_campaign_file(s3, BUCKET, KEY, b"id: spring\ncurrency: USD")

    with pytest.raises(ReportTimeout, match=r"spring\.yaml"):
        wait_for_report(s3, BUCKET, KEY, second, timeout=0.5)
    report_as_the_loader_writes_it(s3, "rejected")
    assert wait_for_report(s3, BUCKET, KEY, second, timeout=1).document == {"status": "rejected"}


def test_no_report_yet_is_a_timeout(s3: Any) -> None:
    revision = upload_campaign_file(s3, BUCKET, KEY, b"id: spring")
    with pytest.raises(ReportTimeout):
        wait_for_report(s3, BUCKET, KEY, revision, timeout=0.3)
