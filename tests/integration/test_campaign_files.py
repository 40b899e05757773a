"""Campaign files on the local cloud: a marketer's upload reaches the loader through the
bucket notification, and its effects are read back through the AWS APIs.

The spring campaign is uploaded with its code counts scaled down to tens, to keep the
suite quick (the example's 5,000 codes take about 15 s locally; `make demo` publishes
3,000). Everything else is the example file.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.local.campaign_files import upload_campaign_file, wait_for_report
from infra.local.cloud import LocalCloud
from tests.integration.test_wiring import eventually, physical_id

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "campaigns"


@dataclass(frozen=True)
class Marketer:
    cloud: LocalCloud
    bucket: str
    table: str
    s3: Any
    dynamodb: Any

    def upload(self, key: str, content: bytes) -> dict[str, Any]:
        """Upload a file and wait for the report on this upload (the loader writes it
        last; the upload itself returns before the loader runs)."""
        revision = upload_campaign_file(self.s3, self.bucket, key, content)
        report = wait_for_report(self.s3, self.bucket, key, revision, timeout=60)
        assert report.content_type == "application/json"
        return report.document

    def item(self, pk: str, sk: str) -> dict[str, Any] | None:
        found = self.dynamodb.get_item(
            TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        )
        item: dict[str, Any] | None = found.get("Item")
        return item

    def campaign(self, campaign_id: str) -> dict[str, Any]:
        item = self.item(f"CAMPAIGN#{campaign_id}", "META")
        assert item is not None, f"{campaign_id} is not in the Campaigns table"
        return item


@pytest.fixture
def marketer(cloud: LocalCloud) -> Marketer:
    return Marketer(
        cloud=cloud,
        bucket=cloud.outputs["CampaignBucketName"],
        table=physical_id(cloud, "CampaignsTable", "AWS::DynamoDB::Table"),
        s3=cloud.client("s3"),
        dynamodb=cloud.client("dynamodb"),
    )


def subscribe_queue(cloud: LocalCloud, subscribe: Callable[[str], None]) -> Callable[[], list[Any]]:
    """A fresh queue fed by `subscribe(queue_arn)`; returns a reader of its bodies."""
    sqs = cloud.client("sqs")
    url = sqs.create_queue(QueueName=f"it-campaigns-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    subscribe(arn["QueueArn"])

    def read() -> list[Any]:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(message["Body"]) for message in messages]

    return read


def campaign_events(cloud: LocalCloud) -> Callable[[], list[Any]]:
    """Every `rebates.campaigns` event on the bus from now on (envelopes)."""
    events = cloud.client("events")
    bus = cloud.outputs["EventBusName"]
    name = f"it-campaigns-{uuid.uuid4().hex[:12]}"

    def subscribe(queue_arn: str) -> None:
        events.put_rule(
            Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["rebates.campaigns"]})
        )
        events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}])

    return subscribe_queue(cloud, subscribe)


def marketers_inbox(cloud: LocalCloud) -> Callable[[], list[Any]]:
    """Every message to the marketers' topic from now on (SNS envelopes)."""
    topic = physical_id(cloud, "CampaignsMarketersTopic", "AWS::SNS::Topic")
    sns = cloud.client("sns")
    return subscribe_queue(
        cloud, lambda arn: sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    )


def scaled_spring_campaign(campaign_id: str, offer_id: str, **changes: Any) -> bytes:
    """The spring example as JSON, with its own ids and 30 codes instead of 5,000."""
    document = yaml.safe_load((EXAMPLES / "spring-trail-2027.yaml").read_text())
    document["id"] = campaign_id
    (offer,) = document["offers"]
    offer["id"] = offer_id
    offer["codes"]["count"] = offer["usage"]["max_total"] = 30
    document.update(changes)
    return json.dumps(document, default=str).encode()


def test_the_cashback_example_is_published_and_readable(marketer: Marketer) -> None:
    events = campaign_events(marketer.cloud)
    key = "campaigns/summer-cashback-2027.yaml"

    report = marketer.upload(key, (EXAMPLES / "summer-cashback-2027.yaml").read_bytes())

    assert report["status"] == "published", report
    assert report["campaignId"] == "summer-cashback-2027" and report["errors"] == []
    campaign = marketer.campaign("summer-cashback-2027")
    assert campaign["version"]["N"] == str(report["version"])
    assert (campaign["status"]["S"], campaign["currency"]["S"]) == ("active", "USD")
    assert campaign["sourceKey"]["S"] == key
    published = eventually(
        lambda: [e for e in events() if e["detail-type"] == "CampaignPublished"], timeout=15
    )
    assert published[0]["detail"]["campaignId"] == "summer-cashback-2027"


def test_a_campaign_with_codes_is_published_and_a_bad_new_version_leaves_it_serving(
    marketer: Marketer,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    campaign_id, offer_id = f"it-spring-{suffix}", f"IT{suffix.upper()}"
    key = f"campaigns/it/{campaign_id}.json"
    inbox = marketers_inbox(marketer.cloud)

    first = marketer.upload(key, scaled_spring_campaign(campaign_id, offer_id))

    assert first == {"status": "published", "campaignId": campaign_id, "version": 1, "errors": []}
    offer = marketer.item(f"OFFER#{offer_id}", "META")
    assert offer is not None and offer["campaignId"]["S"] == campaign_id
    codes = marketer.item(f"OFFER#{offer_id}", "CODES")
    assert codes is not None and codes["generated"]["N"] == "30"

    second = marketer.upload(key, scaled_spring_campaign(campaign_id, offer_id, currency="USD"))

    assert second["status"] == "rejected" and second["version"] is None
    assert [error["path"] for error in second["errors"]] == ["currency"]
    campaign = marketer.campaign(campaign_id)
    assert (campaign["version"]["N"], campaign["currency"]["S"]) == ("1", "JPY")
    (told,) = eventually(inbox, timeout=15)
    assert "- currency:" in told["Message"]


def test_the_broken_example_is_rejected_with_every_path(marketer: Marketer) -> None:
    events = campaign_events(marketer.cloud)
    inbox = marketers_inbox(marketer.cloud)
    key = f"campaigns/broken/{uuid.uuid4().hex[:8]}/spring-trail-broken.yaml"

    report = marketer.upload(key, (EXAMPLES / "broken" / "spring-trail-broken.yaml").read_bytes())

    assert report["status"] == "rejected" and report["version"] is None
    assert report["campaignId"] == "spring-trail-2027"
    paths = {error["path"] for error in report["errors"]}
    assert {"ends_at", "budget.amount", "eligibility.channels[1]"} <= paths
    assert "claims.require_reciept" in paths
    rejected = eventually(
        lambda: [e for e in events() if e["detail-type"] == "CampaignRejected"], timeout=15
    )
    assert rejected[0]["detail"]["fileKey"] == key
    (told,) = eventually(inbox, timeout=15)
    assert key in told["Subject"]
    for error in report["errors"]:
        assert f"- {error['path']}: {error['message']}" in told["Message"]


def test_deleting_the_file_archives_the_campaign(marketer: Marketer) -> None:
    suffix = uuid.uuid4().hex[:8]
    campaign_id, offer_id = f"it-gone-{suffix}", f"GONE{suffix.upper()}"
    key = f"campaigns/it/{campaign_id}.json"
    assert marketer.upload(key, scaled_spring_campaign(campaign_id, offer_id))["version"] == 1

    # As a marketer deletes it: the versioned bucket keeps the file behind a delete marker
    # and notifies ObjectRemoved:DeleteMarkerCreated.
    marketer.s3.delete_object(Bucket=marketer.bucket, Key=key)

    eventually(lambda: marketer.campaign(campaign_id)["status"]["S"] == "archived", timeout=30)
    offer = marketer.item(f"OFFER#{offer_id}", "META")
    assert offer is not None and offer["status"]["S"] == "archived"


def test_an_upload_returns_before_the_loader_has_finished(marketer: Marketer) -> None:
    runtime = marketer.cloud.runtime
    assert runtime is not None
    suffix = uuid.uuid4().hex[:8]
    campaign_id, offer_id = f"it-async-{suffix}", f"ASYNC{suffix.upper()}"
    key = f"campaigns/it/{campaign_id}.json"

    revision = upload_campaign_file(
        marketer.s3, marketer.bucket, key, scaled_spring_campaign(campaign_id, offer_id)
    )
    returned_at = time.time()
    report = wait_for_report(marketer.s3, marketer.bucket, key, revision, timeout=60)

    assert report.document["status"] == "published"
    # The report is the handler's last write: its invocation is recorded just after.
    loaded = runtime.wait_for(
        lambda invocation: (
            isinstance(invocation.payload, dict)
            and {"key": key, "outcome": "published"} in invocation.payload.get("results", [])
        ),
        timeout=10,
    )
    # S3 delivered the notification after PutObject had answered the marketer.
    assert loaded.finished_at > returned_at
