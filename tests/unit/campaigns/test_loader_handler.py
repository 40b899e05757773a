"""The campaign loader end to end on in-process moto: S3 bucket, Campaigns table, SNS.

Each test uploads a file as a marketer would, then hands the loader the S3 notification
AWS would send, and observes the effects: items, report object, events, marketers' topic.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
import yaml

from functions.campaigns.code_pool import StoredCodes
from functions.campaigns.dal import CampaignFiles, CampaignStore, MarketersTopic
from functions.campaigns.handlers import loader as loader_module
from functions.campaigns.handlers.loader import Loader
from functions.campaigns.logic import report_key
from functions.campaigns.models import (
    CampaignVersion,
    Code,
    CodeGeneration,
    get_campaign,
    get_code,
    get_offer,
)
from functions.campaigns.states import ARCHIVED
from functions.core.clock import frozen_at
from functions.core.event_types import CampaignPublished, CampaignRejected, EventDetail
from functions.core.events import InMemoryPublisher
from functions.core.tables import CAMPAIGNS
from infra.local.proxy_event import lambda_context
from tests.support.aws import aws_env, tables
from tests.unit.campaigns.documents import EXAMPLES, offer, rebate
from tests.unit.core.log_capture import captured_logs, metric_values

__all__ = ["aws_env", "tables"]

BUCKET = "rebates-campaigns-test"
KEY = "campaigns/spring trail 2027.json"  # a space: S3 sends it URL-encoded
NOW = datetime(2027, 2, 1, tzinfo=UTC)  # a month before the campaigns start
# The id of the S3 request behind a notification: the loader's correlation id.
S3_REQUEST_ID = "C3D13FE58DE4C810"


@dataclass
class CountedCodes:
    """Stands in for `provision_codes` where an example file asks for thousands of codes:
    in-process moto deep-copies the whole table for every item of a transaction, so 5,000
    real codes take minutes. Real codes are covered with the small files below."""

    calls: list[tuple[str, str, str, int]] = field(default_factory=list)

    def __call__(self, offer_id: str, campaign_id: str, *, prefix: str, count: int) -> StoredCodes:
        self.calls.append((offer_id, campaign_id, prefix, count))
        return StoredCodes(stored=count, regenerated=0, total=count)


@dataclass
class World:
    loader: Loader
    events: InMemoryPublisher
    s3: Any
    marketers_queue: str

    def counting_codes(self) -> CountedCodes:
        """Swap real code generation for a count, for the examples' thousands of codes."""
        counted = CountedCodes()
        self.loader = replace(self.loader, store=CampaignStore(provision=counted))
        return counted

    def upload(self, key: str, body: bytes | dict[str, Any]) -> None:
        content = json.dumps(body).encode() if isinstance(body, dict) else body
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=content)

    def notify(self, event_name: str, key: str) -> dict[str, Any]:
        return self.loader.handle(s3_event(event_name, key))

    def report(self, key: str) -> dict[str, Any]:
        response = self.s3.get_object(Bucket=BUCKET, Key=report_key(key))
        assert response["ContentType"] == "application/json"
        document: dict[str, Any] = json.loads(response["Body"].read())
        return document

    def told(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs")
        messages = sqs.receive_message(QueueUrl=self.marketers_queue, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def s3_event(event_name: str, key: str, request_id: str = S3_REQUEST_ID) -> dict[str, Any]:
    """An S3 notification as AWS sends it to Lambda (the key URL-encoded)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": event_name,
                "responseElements": {"x-amz-request-id": request_id, "x-amz-id-2": "FMyU"},
                "s3": {
                    "bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
                    "object": {"key": quote_plus(key), "sequencer": "0062A1"},
                },
            }
        ]
    }


@pytest.fixture
def world(tables: list[str]) -> Iterator[World]:
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"}
    )
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    topic = boto3.client("sns").create_topic(Name="marketers")["TopicArn"]
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="marketers-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    boto3.client("sns").subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"]
    )
    events = InMemoryPublisher()
    loader = Loader(
        files=CampaignFiles(BUCKET),
        store=CampaignStore(),
        events=events,
        marketers=MarketersTopic(topic),
    )
    with frozen_at(NOW):
        yield World(loader, events, s3, queue)


def small(**changes: Any) -> dict[str, Any]:
    """A valid campaign with 20 unique codes (the example's 5,000 take a second)."""
    document = rebate(
        offers=[offer(codes={"mode": "unique", "prefix": "TRAIL", "count": 20}, usage={})]
    )
    document.update(changes)
    return document


def table_items() -> list[dict[str, Any]]:
    dynamodb = boto3.client("dynamodb")
    items: list[dict[str, Any]] = dynamodb.scan(TableName=CAMPAIGNS.default_name)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def versions(campaign_id: str = "spring-trail-2027") -> list[int]:
    return [v.version for v in CampaignVersion.list_versions(campaign_id)]


def of_type(world: World, model: type[EventDetail]) -> list[Any]:
    return world.events.of_type(model)


# -- publish ----------------------------------------------------------------------------


def test_the_example_file_is_published_with_its_offer_codes_report_and_event(
    world: World,
) -> None:
    key = "campaigns/spring-trail-2027.yaml"
    codes = world.counting_codes()
    world.upload(key, (EXAMPLES / "spring-trail-2027.yaml").read_bytes())

    assert world.notify("ObjectCreated:Put", key) == {
        "results": [{"key": key, "outcome": "published"}]
    }

    campaign = get_campaign("spring-trail-2027")
    assert campaign is not None
    assert (campaign.version, campaign.status, campaign.currency) == (1, "active", "JPY")
    assert (campaign.budget_amount, campaign.budget_max_rewards) == (5_000_000, 10_000)
    assert campaign.source_key == key and campaign.published_at == NOW
    offer_item = get_offer("TRAIL10")
    assert offer_item is not None
    assert (offer_item.campaign_id, offer_item.code_mode, offer_item.code_count) == (
        "spring-trail-2027",
        "unique",
        5000,
    )
    assert offer_item.discount.percentage == 10 and offer_item.discount.max == 2000
    assert codes.calls == [("TRAIL10", "spring-trail-2027", "TRAIL", 5000)]

    assert world.report(key) == {
        "status": "published",
        "campaignId": "spring-trail-2027",
        "version": 1,
        "errors": [],
    }
    (event,) = of_type(world, CampaignPublished)
    assert (event.campaignId, event.version, event.fileKey) == ("spring-trail-2027", 1, key)
    assert world.told() == []


def test_a_shared_code_offer_stores_its_code(world: World) -> None:
    key = "campaigns/store-opening-2027.json"
    codes = world.counting_codes()
    world.upload(key, (EXAMPLES / "store-opening-2027.json").read_bytes())
    assert world.notify("ObjectCreated:Put", key)["results"][0]["outcome"] == "published"
    shared = get_code("shibuya-open")
    assert shared is not None
    assert (shared.offer_id, shared.mode, shared.max_uses) == ("OPENING500", "shared", None)
    assert codes.calls == [("OPENING-WEB15", "store-opening-2027", "OPEN", 3000)]


def test_unique_codes_are_generated_with_the_offer_s_prefix(world: World) -> None:
    world.upload(KEY, small())
    world.notify("ObjectCreated:Put", KEY)
    assert CodeGeneration.for_offer("TRAIL10") == 20
    pooled = list(Code.pool("TRAIL10", limit=100))
    assert len(pooled) == 20 and all(code.code.startswith("TRAIL-") for code in pooled)
    assert {(code.mode, code.max_uses, code.campaign_id) for code in pooled} == {
        ("unique", 1, "spring-trail-2027")
    }


def test_a_new_version_is_published_and_only_the_missing_codes_are_added(world: World) -> None:
    old = offer(id="OLD5", codes={"mode": "unique", "count": 5}, usage={})
    world.upload(KEY, small(offers=[*small()["offers"], old]))
    world.notify("ObjectCreated:Put", KEY)
    raised = offer(codes={"mode": "unique", "prefix": "TRAIL", "count": 30}, usage={})
    world.upload(KEY, small(name="Spring trail shoes, extended", offers=[raised]))

    assert world.notify("ObjectCreated:Put", KEY)["results"][0]["outcome"] == "published"

    assert versions() == [2, 1]
    campaign = get_campaign("spring-trail-2027")
    assert campaign is not None and campaign.name == "Spring trail shoes, extended"
    assert CodeGeneration.for_offer("TRAIL10") == 30
    assert len(list(Code.pool("TRAIL10", limit=100))) == 30
    dropped = get_offer("OLD5")
    assert dropped is not None and dropped.status == ARCHIVED
    assert world.report(KEY)["version"] == 2
    assert [e.version for e in of_type(world, CampaignPublished)] == [1, 2]


# -- rejections -------------------------------------------------------------------------


def test_a_broken_file_is_reported_with_every_path_and_changes_nothing(world: World) -> None:
    world.upload(KEY, small())
    world.notify("ObjectCreated:Put", KEY)
    before = table_items()
    broken_key = "campaigns/broken/spring-trail-broken.yaml"
    world.upload(broken_key, (EXAMPLES / "broken" / "spring-trail-broken.yaml").read_bytes())

    assert world.notify("ObjectCreated:Put", broken_key)["results"][0]["outcome"] == "rejected"

    report = world.report(broken_key)
    assert report["status"] == "rejected"
    assert report["campaignId"] == "spring-trail-2027" and report["version"] is None
    found = {error["path"] for error in report["errors"]}
    assert {"ends_at", "budget.amount", "eligibility.channels[1]"} <= found
    assert "claims.require_reciept" in found
    assert table_items() == before
    (event,) = of_type(world, CampaignRejected)
    assert event.fileKey == broken_key
    assert [e.path for e in event.errors] == [e["path"] for e in report["errors"]]
    (message,) = world.told()
    assert message["Subject"] == f"Rejected: {broken_key}"
    for error in report["errors"]:
        assert f"- {error['path']}: {error['message']}" in message["Message"]


def test_a_rejected_new_version_leaves_the_old_one_serving(world: World) -> None:
    world.upload(KEY, small())
    world.notify("ObjectCreated:Put", KEY)
    before = table_items()
    world.upload(KEY, small(currency="USD"))

    assert world.notify("ObjectCreated:Put", KEY)["results"][0]["outcome"] == "rejected"

    assert world.report(KEY) == {
        "status": "rejected",
        "campaignId": "spring-trail-2027",
        "version": None,
        "errors": [
            {
                "path": "currency",
                "message": "a new version cannot change the currency: version 1 of "
                "spring-trail-2027 is in JPY",
            }
        ],
    }
    assert table_items() == before
    campaign = get_campaign("spring-trail-2027")
    assert campaign is not None and (campaign.version, campaign.currency) == (1, "JPY")
    assert len(world.told()) == 1


def test_an_offer_id_of_another_campaign_is_rejected_not_taken(world: World) -> None:
    world.upload(KEY, small())
    world.notify("ObjectCreated:Put", KEY)
    other = "campaigns/other.json"
    world.upload(other, small(id="autumn-trail-2027"))

    assert world.notify("ObjectCreated:Put", other)["results"][0]["outcome"] == "rejected"

    assert [e["path"] for e in world.report(other)["errors"]] == ["offers[0].id"]
    owner = get_offer("TRAIL10")
    assert owner is not None and owner.campaign_id == "spring-trail-2027"
    assert get_campaign("autumn-trail-2027") is None


# -- at least once ----------------------------------------------------------------------


def test_the_same_record_delivered_again_adds_no_version(world: World) -> None:
    world.upload(KEY, small())
    world.notify("ObjectCreated:Put", KEY)
    before = table_items()

    assert world.notify("ObjectCreated:Put", KEY)["results"][0]["outcome"] == "replayed"

    assert versions() == [1]
    assert table_items() == before
    assert len(of_type(world, CampaignPublished)) == 1


def test_the_same_content_uploaded_again_adds_no_version(world: World) -> None:
    world.upload(KEY, small())
    world.notify("ObjectCreated:Put", KEY)
    world.upload(KEY, small())  # a new S3 version, the same campaign

    assert world.notify("ObjectCreated:Put", KEY)["results"][0]["outcome"] == "unchanged"

    assert versions() == [1]
    first, second = of_type(world, CampaignPublished)
    assert first == second  # the same event id: consumers count it once


class FailingOnce(InMemoryPublisher):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def publish(self, *details: EventDetail) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("EventBridge is unavailable")
        super().publish(*details)


def test_a_retry_after_a_failure_finishes_the_work_without_a_second_version(
    world: World,
) -> None:
    flaky = FailingOnce()
    loader = Loader(world.loader.files, world.loader.store, flaky, world.loader.marketers)
    world.upload(KEY, small())
    with pytest.raises(RuntimeError, match="unavailable"):
        loader.handle(s3_event("ObjectCreated:Put", KEY))
    # Published, but neither event nor report yet: the report is written last.
    assert versions() == [1]
    assert "Contents" not in world.s3.list_objects_v2(Bucket=BUCKET, Prefix="reports/")

    assert loader.handle(s3_event("ObjectCreated:Put", KEY))["results"][0]["outcome"] == (
        "unchanged"
    )

    assert versions() == [1]
    assert CodeGeneration.for_offer("TRAIL10") == 20
    assert [e.version for e in flaky.of_type(CampaignPublished)] == [1]
    assert world.report(KEY)["status"] == "published"


def test_a_notification_for_a_file_already_deleted_does_nothing(world: World) -> None:
    world.upload(KEY, small())
    world.s3.delete_object(Bucket=BUCKET, Key=KEY)
    assert world.notify("ObjectCreated:Put", KEY)["results"][0]["outcome"] == "gone"
    assert table_items() == []


# -- deletion ---------------------------------------------------------------------------


def test_deleting_the_file_archives_the_campaign_and_its_offers(world: World) -> None:
    world.upload(KEY, small())
    world.notify("ObjectCreated:Put", KEY)
    world.s3.delete_object(Bucket=BUCKET, Key=KEY)  # versioned: a delete marker

    result = world.notify("ObjectRemoved:DeleteMarkerCreated", KEY)

    assert result["results"][0]["outcome"] == "archived"
    campaign = get_campaign("spring-trail-2027")
    assert campaign is not None and campaign.status == ARCHIVED
    assert campaign.archived_at == NOW
    offer_item = get_offer("TRAIL10")
    assert offer_item is not None and offer_item.status == ARCHIVED
    assert versions() == [1]
    assert of_type(world, CampaignRejected) == []
    # A second delivery finds nothing left to archive.
    assert world.notify("ObjectRemoved:DeleteMarkerCreated", KEY)["results"][0]["outcome"] == (
        "nothing_to_archive"
    )


def test_a_deletion_overtaken_by_a_new_upload_archives_nothing(world: World) -> None:
    world.upload(KEY, small())
    world.notify("ObjectCreated:Put", KEY)
    world.s3.delete_object(Bucket=BUCKET, Key=KEY)
    world.upload(KEY, small())

    assert world.notify("ObjectRemoved:DeleteMarkerCreated", KEY)["results"][0]["outcome"] == (
        "stale"
    )
    campaign = get_campaign("spring-trail-2027")
    assert campaign is not None and campaign.status == "active"


def test_deleting_a_file_that_no_longer_serves_its_campaign_archives_nothing(
    world: World,
) -> None:
    world.upload(KEY, small())
    world.notify("ObjectCreated:Put", KEY)
    moved = "campaigns/moved.json"
    world.upload(moved, small(name="Moved"))
    world.notify("ObjectCreated:Put", moved)
    world.s3.delete_object(Bucket=BUCKET, Key=KEY)

    assert world.notify("ObjectRemoved:Delete", KEY)["results"][0]["outcome"] == (
        "nothing_to_archive"
    )
    campaign = get_campaign("spring-trail-2027")
    assert campaign is not None and (campaign.status, campaign.source_key) == ("active", moved)


def test_an_upload_after_archiving_publishes_the_campaign_again(world: World) -> None:
    world.upload(KEY, small())
    world.notify("ObjectCreated:Put", KEY)
    world.s3.delete_object(Bucket=BUCKET, Key=KEY)
    world.notify("ObjectRemoved:DeleteMarkerCreated", KEY)
    world.upload(KEY, small())

    assert world.notify("ObjectCreated:Put", KEY)["results"][0]["outcome"] == "published"
    campaign = get_campaign("spring-trail-2027")
    assert campaign is not None and (campaign.version, campaign.status) == (2, "active")
    assert campaign.archived_at is None
    offer_item = get_offer("TRAIL10")
    assert offer_item is not None and offer_item.status == "active"
    assert CodeGeneration.for_offer("TRAIL10") == 20


# -- YAML read by the rules JSON is read by -----------------------------------------------


def yaml_upload(document: dict[str, Any], **verbatim: str) -> bytes:
    """`document` as a YAML file, with each key of `verbatim` written as given
    (``starts_at: 2027-02-30T00:00:00+09:00``, unquoted as a marketer writes it)."""
    rest = {key: value for key, value in document.items() if key not in verbatim}
    text = yaml.safe_dump(rest, sort_keys=False)
    return (text + "".join(f"{key}: {value}\n" for key, value in verbatim.items())).encode()


@pytest.mark.parametrize(
    "instant",
    ["2027-02-30T00:00:00+09:00", "2027-03-01T24:00:00+09:00", "2027-03-01T00:00:60+09:00"],
)
def test_an_impossible_instant_in_yaml_is_rejected_at_its_path(world: World, instant: str) -> None:
    key = "campaigns/spring.yaml"
    world.upload(key, yaml_upload(small(), starts_at=instant))

    assert world.notify("ObjectCreated:Put", key)["results"][0]["outcome"] == "rejected"

    assert world.report(key) == {
        "status": "rejected",
        "campaignId": "spring-trail-2027",
        "version": None,
        "errors": [
            {
                "path": "starts_at",
                "message": f"'{instant}' is not a valid instant: no such date or time",
            }
        ],
    }
    (event,) = of_type(world, CampaignRejected)
    assert (event.fileKey, [e.path for e in event.errors]) == (key, ["starts_at"])
    assert len(world.told()) == 1
    assert table_items() == []


@pytest.mark.parametrize(
    "instant",
    [
        "2027-02-30T00:00:00+09:00",
        "2027-03-01T9:00:00+09:00",
        "2027-03-01T09:00:00+09",
        "2027-3-1T09:00:00+09:00",
        "2027-03-01 09:00:00 +09:00",
        "2027-03-01T09:00:00",
        "2027-03-01",
    ],
)
def test_a_yaml_file_takes_exactly_the_instants_a_json_file_takes(
    world: World, instant: str
) -> None:
    as_yaml, as_json = "campaigns/spring.yaml", "campaigns/spring.json"
    world.upload(as_yaml, yaml_upload(small(), starts_at=instant))
    world.upload(as_json, small(starts_at=instant))

    outcomes = [
        world.notify("ObjectCreated:Put", key)["results"][0]["outcome"]
        for key in (as_yaml, as_json)
    ]

    assert outcomes == ["rejected", "rejected"]
    errors = world.report(as_yaml)["errors"]
    assert [error["path"] for error in errors] == ["starts_at"]
    assert errors == world.report(as_json)["errors"]
    assert table_items() == []


def test_a_yaml_timestamp_tag_does_not_bypass_the_instant_format(world: World) -> None:
    key = "campaigns/spring.yaml"
    world.upload(key, yaml_upload(small(), starts_at="!!timestamp 2027-03-01T9:00:00+09:00"))

    assert world.notify("ObjectCreated:Put", key)["results"][0]["outcome"] == "rejected"

    assert [error["path"] for error in world.report(key)["errors"]] == ["starts_at"]


def test_a_number_too_long_to_read_is_reported_in_either_format(world: World) -> None:
    digits = "7" * 4301
    as_yaml, as_json = "campaigns/spring.yaml", "campaigns/spring.json"
    world.upload(as_yaml, yaml_upload(small(), budget=f"{{amount: {digits}, max_rewards: 10}}"))
    world.upload(as_json, json.dumps(small()).replace("5000000", digits).encode())

    outcomes = [
        world.notify("ObjectCreated:Put", key)["results"][0]["outcome"]
        for key in (as_yaml, as_json)
    ]

    assert outcomes == ["rejected", "rejected"]
    ((yaml_error,), (json_error,)) = (world.report(key)["errors"] for key in (as_yaml, as_json))
    assert yaml_error["path"] == json_error["path"] == "$"
    assert yaml_error["message"].startswith("not valid YAML at line ")
    assert yaml_error["message"].endswith(": a number of more than 4300 digits")
    assert json_error["message"] == "not valid JSON: a number of more than 4300 digits"
    assert len(of_type(world, CampaignRejected)) == 2


@pytest.mark.parametrize(
    ("tagged", "message"),
    [
        ("!!int twelve", "cannot read 'twelve' as !!int"),
        ("!!int ''", "cannot read '' as !!int"),
        ("!!float ''", "cannot read '' as !!float"),
        ("!!bool maybe", "cannot read 'maybe' as !!bool"),
    ],
)
def test_a_value_yaml_cannot_read_as_its_tag_is_reported_at_its_line(
    world: World, tagged: str, message: str
) -> None:
    key = "campaigns/spring.yaml"
    world.upload(key, yaml_upload(small(), name=tagged))

    assert world.notify("ObjectCreated:Put", key)["results"][0]["outcome"] == "rejected"

    (error,) = world.report(key)["errors"]
    assert error["path"] == "$"
    assert error["message"].startswith("not valid YAML at line ")
    assert error["message"].endswith(f": {message}")


# -- file names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["campaigns/Spring.JSON", "campaigns/spring.YAML", "campaigns/teams/spring.Yml"]
)
def test_a_campaign_file_suffix_in_any_case_is_published_and_archived(
    world: World, key: str
) -> None:
    content = small() if key.lower().endswith(".json") else yaml_upload(small())
    world.upload(key, content)

    assert world.notify("ObjectCreated:Put", key)["results"][0]["outcome"] == "published"

    assert world.report(key)["status"] == "published"
    campaign = get_campaign("spring-trail-2027")
    assert campaign is not None and (campaign.status, campaign.source_key) == ("active", key)
    world.s3.delete_object(Bucket=BUCKET, Key=key)
    assert world.notify("ObjectRemoved:DeleteMarkerCreated", key)["results"][0]["outcome"] == (
        "archived"
    )
    archived = get_campaign("spring-trail-2027")
    assert archived is not None and archived.status == ARCHIVED


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("campaigns/spring.txt", "unsupported file type '.txt': use .yaml, .yml or .json"),
        ("campaigns/spring.yaml.bak", "unsupported file type '.bak': use .yaml, .yml or .json"),
        ("campaigns/readme", "the file name 'readme' has no type: use .yaml, .yml or .json"),
        ("campaigns/teams/.yaml", "the file name '.yaml' has no type: use .yaml, .yml or .json"),
    ],
)
def test_another_file_under_campaigns_gets_a_report_saying_why_it_was_not_taken(
    world: World, key: str, message: str
) -> None:
    world.upload(key, small())

    assert world.notify("ObjectCreated:Put", key)["results"][0]["outcome"] == "rejected"

    assert world.report(key) == {
        "status": "rejected",
        "campaignId": None,
        "version": None,
        "errors": [{"path": "$", "message": message}],
    }
    (event,) = of_type(world, CampaignRejected)
    assert event.fileKey == key
    (told,) = world.told()
    assert told["Subject"] == f"Rejected: {key}"
    assert table_items() == []
    # Its deletion has nothing to archive.
    world.s3.delete_object(Bucket=BUCKET, Key=key)
    assert world.notify("ObjectRemoved:DeleteMarkerCreated", key)["results"][0]["outcome"] == (
        "nothing_to_archive"
    )


# -- records the loader leaves alone -----------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "reports/campaigns/x.json.result.json",
        "other/x.yaml",
        "Campaigns/x.yaml",
        "campaigns/",
        "campaigns/teams/",
    ],
)
def test_keys_outside_campaign_files_are_ignored(world: World, key: str) -> None:
    world.upload(key, b"{}")
    assert world.notify("ObjectCreated:Put", key)["results"][0]["outcome"] == "ignored"
    assert world.events.published == []
    reports = world.s3.list_objects_v2(Bucket=BUCKET, Prefix=report_key(key))
    assert "Contents" not in reports


def test_a_record_of_another_bucket_is_ignored(world: World) -> None:
    event = s3_event("ObjectCreated:Put", KEY)
    event["Records"][0]["s3"]["bucket"]["name"] = "somebody-else"
    assert world.loader.handle(event)["results"][0]["outcome"] == "ignored"


# -- metrics and correlation ------------------------------------------------------------


def test_published_and_rejected_files_are_counted_once_each(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    broken_key = "campaigns/broken/spring-trail-broken.yaml"
    world.upload(KEY, small())
    world.upload(broken_key, (EXAMPLES / "broken" / "spring-trail-broken.yaml").read_bytes())

    world.notify("ObjectCreated:Put", KEY)
    world.notify("ObjectCreated:Put", broken_key)
    # Delivered again: the reports already answer them.
    world.notify("ObjectCreated:Put", KEY)
    world.notify("ObjectCreated:Put", broken_key)

    stdout = capsys.readouterr().out
    assert metric_values(stdout, "CampaignFilesPublished") == [1.0]
    assert metric_values(stdout, "CampaignFilesRejected") == [1.0]


def test_a_file_s_lines_and_events_carry_the_request_id_of_its_upload(world: World) -> None:
    broken_key = "campaigns/broken/spring-trail-broken.yaml"
    world.upload(KEY, small())
    world.upload(broken_key, (EXAMPLES / "broken" / "spring-trail-broken.yaml").read_bytes())

    with captured_logs() as logs:
        world.loader.handle(s3_event("ObjectCreated:Put", KEY, request_id="UPLOAD-1"))
        world.loader.handle(s3_event("ObjectCreated:Put", broken_key, request_id="UPLOAD-2"))

    (published,) = logs.with_message("campaign file published")
    (rejected,) = logs.with_message("campaign file rejected")
    assert (published["correlation_id"], rejected["correlation_id"]) == ("UPLOAD-1", "UPLOAD-2")
    assert [event.correlationId for event in world.events.published] == ["UPLOAD-1", "UPLOAD-2"]


# -- the Lambda entry point ---------------------------------------------------------------


def test_the_handler_reads_its_settings_and_publishes_on_the_bus(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    events = boto3.client("events")
    events.create_event_bus(Name="rebates")
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="bus-tap")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    events.put_rule(
        Name="tap", EventBusName="rebates", EventPattern='{"source": ["rebates.campaigns"]}'
    )
    events.put_targets(
        Rule="tap",
        EventBusName="rebates",
        Targets=[{"Id": "q", "Arn": queue_arn["Attributes"]["QueueArn"]}],
    )
    topic = boto3.client("sns").create_topic(Name="marketers")["TopicArn"]
    for name, value in {
        "POWERTOOLS_SERVICE_NAME": "campaigns",
        "REBATES_VERSION": "test",
        "EVENT_BUS_NAME": "rebates",
        "CAMPAIGNS_TABLE": CAMPAIGNS.default_name,
        "CAMPAIGN_BUCKET": BUCKET,
        "MARKETERS_TOPIC_ARN": topic,
    }.items():
        monkeypatch.setenv(name, value)
    loader_module._loader.cache_clear()
    world.upload(KEY, small())

    result = loader_module.handler(s3_event("ObjectCreated:Put", KEY), lambda_context("loader"))

    assert result == {"results": [{"key": KEY, "outcome": "published"}]}
    (message,) = sqs.receive_message(QueueUrl=queue)["Messages"]
    envelope = json.loads(message["Body"])
    assert envelope["detail-type"] == "CampaignPublished"
    assert envelope["detail"]["campaignId"] == "spring-trail-2027"
    assert envelope["detail"]["correlationId"] == S3_REQUEST_ID
    stdout = capsys.readouterr().out
    assert metric_values(stdout, "CampaignFilesPublished", service="campaigns") == [1.0]
    loader_module._loader.cache_clear()


def test_the_handler_fails_loudly_without_its_settings(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CAMPAIGN_BUCKET", raising=False)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "campaigns")
    with pytest.raises(Exception, match="CAMPAIGN_BUCKET"):
        loader_module.handler(s3_event("ObjectCreated:Put", KEY), lambda_context("loader"))
