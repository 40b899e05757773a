"""The S3 delete notification patch: versioned deletes notify as S3 does.

Notifications go to an SQS queue (filter: prefix ``campaigns/``), which moto fills
synchronously inside the request, so each delete's events are in the queue after it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.s3.models import S3Backend

from infra.local import patches
from infra.local.patches import registry, s3_delete_notifications

REGION = "ap-northeast-1"
KEY = "campaigns/spring.json"


@contextmanager
def delete_notifications(*, patched: bool) -> Iterator[None]:
    """moto's DeleteObject, or the patched one, for this block only."""
    moto_own = registry.original(S3Backend, "delete_object")
    with pytest.MonkeyPatch.context() as monkeypatch:
        # Whatever an earlier test installed for the rest of the process is set aside.
        monkeypatch.setattr(registry, "_lasting", [])
        monkeypatch.setattr(S3Backend, "delete_object", moto_own)
        if patched:
            patches.patch_s3_delete_notifications()
        yield


@dataclass
class Bucket:
    s3: Any
    sqs: Any
    name: str
    queue_url: str

    def put(self, key: str = KEY, body: bytes = b"{}") -> str:
        version: str = self.s3.put_object(Bucket=self.name, Key=key, Body=body).get(
            "VersionId", "null"
        )
        return version

    def delete(self, key: str = KEY, version_id: str | None = None) -> dict[str, Any]:
        extra = {"VersionId": version_id} if version_id is not None else {}
        response: dict[str, Any] = self.s3.delete_object(Bucket=self.name, Key=key, **extra)
        return response

    def notified(self) -> list[dict[str, Any]]:
        """The S3 records delivered to the queue since the last call."""
        records: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return records
            for message in messages:
                records += json.loads(message["Body"]).get("Records", [])
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def events(self) -> list[str]:
        return [record["eventName"] for record in self.notified()]


@contextmanager
def bucket(*, versioned: bool, patched: bool) -> Iterator[Bucket]:
    with delete_notifications(patched=patched), mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="patches-deletes")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        name = "patches-campaign-files"
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        if versioned:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_notification_configuration(
            Bucket=name,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": queue_arn,
                        "Events": ["s3:ObjectRemoved:*"],
                        "Filter": {
                            "Key": {"FilterRules": [{"Name": "prefix", "Value": "campaigns/"}]}
                        },
                    }
                ]
            },
        )
        created = Bucket(s3, sqs, name, queue_url)
        created.notified()  # moto's s3:TestEvent
        yield created


def test_moto_alone_notifies_a_versioned_delete_only_for_a_keys_last_version() -> None:
    # Why the patch exists; if this fails, moto changed: re-check the patch.
    with bucket(versioned=True, patched=False) as files:
        first = files.put()
        files.put()
        files.delete()  # S3: DeleteMarkerCreated
        assert files.events() == []
        files.delete(version_id=first)  # S3: Delete
        assert files.events() == []

    with bucket(versioned=True, patched=False) as files:
        only = files.put()
        files.delete(version_id=only)
        assert files.events() == ["ObjectRemoved:Delete"]

    with bucket(versioned=False, patched=False) as files:
        files.put()
        files.delete()
        assert files.events() == ["ObjectRemoved:Delete"]


def test_a_plain_delete_on_a_versioned_bucket_notifies_the_delete_marker() -> None:
    with bucket(versioned=True, patched=True) as files:
        files.put()
        response = files.delete()

        (record,) = files.notified()
        assert response["DeleteMarker"] is True
        assert record["eventName"] == "ObjectRemoved:DeleteMarkerCreated"
        assert record["s3"]["bucket"]["name"] == files.name
        assert record["s3"]["object"]["key"] == "campaigns%2Fspring.json"  # moto URL-encodes
        # A marker has no content: moto's event format still has these two fields.
        assert (record["s3"]["object"]["size"], record["s3"]["object"]["eTag"]) == (0, "")

        files.delete()  # a marker over a marker, as S3 makes too
        assert files.events() == ["ObjectRemoved:DeleteMarkerCreated"]


def test_deleting_a_version_notifies_its_removal_each_time() -> None:
    with bucket(versioned=True, patched=True) as files:
        first = files.put(body=b"first")
        second = files.put(body=b"second!")
        marker = files.delete()["VersionId"]
        files.notified()

        files.delete(version_id=first)
        (record,) = files.notified()
        assert record["eventName"] == "ObjectRemoved:Delete"
        assert record["s3"]["object"]["size"] == len(b"first")

        files.delete(version_id=second)
        assert files.events() == ["ObjectRemoved:Delete"]
        files.delete(version_id=marker)  # the key's last version: moto alone fails here
        assert files.events() == ["ObjectRemoved:Delete"]
        assert "Versions" not in files.s3.list_object_versions(Bucket=files.name, Prefix=KEY)

        files.delete(version_id=first)  # gone already: nothing removed, nothing sent
        assert files.events() == []


def test_an_unversioned_delete_notifies_the_removal() -> None:
    with bucket(versioned=False, patched=True) as files:
        files.put()
        files.delete()
        assert files.events() == ["ObjectRemoved:Delete"]


def test_only_keys_the_filter_matches_are_notified() -> None:
    with bucket(versioned=True, patched=True) as files:
        version = files.put("reports/spring.json")
        files.delete("reports/spring.json")
        files.delete("reports/spring.json", version_id=version)
        assert files.events() == []


def test_a_batch_delete_notifies_each_marker() -> None:
    with bucket(versioned=True, patched=True) as files:
        files.put("campaigns/a.json")
        files.put("campaigns/b.json")
        files.s3.delete_objects(
            Bucket=files.name,
            Delete={"Objects": [{"Key": "campaigns/a.json"}, {"Key": "campaigns/b.json"}]},
        )
        records = files.notified()
        assert sorted((r["eventName"], r["s3"]["object"]["key"]) for r in records) == [
            ("ObjectRemoved:DeleteMarkerCreated", "campaigns%2Fa.json"),
            ("ObjectRemoved:DeleteMarkerCreated", "campaigns%2Fb.json"),
        ]


def test_the_patch_is_installed_once_and_kept_for_the_process() -> None:
    before = S3Backend.delete_object
    with delete_notifications(patched=False):
        moto_own = S3Backend.delete_object
        patches.patch_s3_delete_notifications()
        patches.patch_s3_delete_notifications()
        assert S3Backend.delete_object is s3_delete_notifications._delete_object
        assert registry._lasting == [(S3Backend, "delete_object", moto_own)]
        assert patches.verify() == []  # checks moto's own while patched
    assert S3Backend.delete_object is before


def test_verify_names_a_changed_delete(monkeypatch: pytest.MonkeyPatch) -> None:
    def renamed(self: Any, bucket_name: str, key: str) -> tuple[bool, dict[str, Any]]:
        return False, {}

    with delete_notifications(patched=False):
        monkeypatch.setattr(S3Backend, "delete_object", renamed)
        problems = "\n".join(patches.verify())
        assert "S3Backend.delete_object: parameters are now ['self', 'bucket_name', 'key']" in (
            problems
        )
        with pytest.raises(patches.PatchError, match="delete_object"):
            patches.patch_s3_delete_notifications()
