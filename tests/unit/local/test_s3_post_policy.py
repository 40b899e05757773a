"""The S3 POST policy patch: a browser upload is held to its presigned policy, as S3 holds it.

Uploads are real multipart/form-data POSTs (encoded by requests, as a browser's form or
a storefront's server would send them) of a presigned POST, sent to the WSGI application
the local cloud's moto server runs (`infra.local.server`), without a socket. The bucket
is made and the POST presigned with boto3 on in-process moto, whose backends that
application serves.
"""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3.responses import S3Response
from werkzeug.test import Client

from infra.local import patches
from infra.local.patches import registry, s3_post_policy
from infra.local.server import SerialGate, _GatedApp

REGION = "ap-northeast-1"
ENDPOINT = "http://127.0.0.1:4566"
BUCKET = "receipts-patch"
KEY = "receipts/Y3VzdC0x/rcp_01JF6Z3Q8W0X9V2KQ4T7M5N8RB.png"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 991  # 999 bytes


@dataclass
class Answer:
    status: int
    body: bytes

    def error(self) -> dict[str, str]:
        """The S3 error document's elements, by tag."""
        return {child.tag: child.text or "" for child in ET.fromstring(self.body)}


@dataclass
class Uploads:
    s3: Any
    presigner: Any
    app: Client

    def presign(
        self,
        key: str = KEY,
        content_type: str = "image/png",
        size: int = len(PNG),
        expires_in: int = 900,
    ) -> dict[str, Any]:
        post: dict[str, Any] = self.presigner.generate_presigned_post(
            Bucket=BUCKET,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[
                {"key": key},
                {"Content-Type": content_type},
                ["content-length-range", size, size],
            ],
            ExpiresIn=expires_in,
        )
        return post

    def post(self, url: str, fields: dict[str, str], content: bytes = PNG) -> Answer:
        """POST `fields` and then the file, multipart/form-data, as a browser does."""
        prepared = requests.Request(
            "POST", url, data=fields, files={"file": ("receipt.png", content, "image/png")}
        ).prepare()
        assert isinstance(prepared.body, bytes)
        response = self.app.post(
            url, data=prepared.body, content_type=prepared.headers["Content-Type"]
        )
        return Answer(response.status_code, response.get_data())

    def stored(self, key: str = KEY) -> tuple[bytes, str] | None:
        try:
            found = self.s3.get_object(Bucket=BUCKET, Key=key)
        except ClientError:
            return None
        return found["Body"].read(), found["ContentType"]


@contextmanager
def post_policy(*, patched: bool) -> Iterator[None]:
    """moto's POST upload, or the patched one, for this block only."""
    moto_own = registry.original(S3Response, "_bucket_response_post")
    with pytest.MonkeyPatch.context() as monkeypatch:
        # Whatever an earlier test installed is set aside, and put back after.
        monkeypatch.setattr(registry, "_lasting", [])
        monkeypatch.setattr(S3Response, "_bucket_response_post", moto_own)
        if patched:
            registry.install_for_good(s3_post_policy.PATCH)
            assert S3Response._bucket_response_post is s3_post_policy._bucket_response_post
        yield


@contextmanager
def uploads(*, patched: bool = True) -> Iterator[Uploads]:
    with post_policy(patched=patched), mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        # Presigning is local: the local cloud's endpoint makes the URL it serves.
        presigner = boto3.client(
            "s3",
            region_name=REGION,
            endpoint_url=ENDPOINT,
            config=Config(signature_version="s3v4"),
        )
        app = _GatedApp(DomainDispatcherApplication(create_backend_app), SerialGate())
        yield Uploads(s3, presigner, Client(app))


@pytest.fixture
def bucket(aws_credentials: None) -> Iterator[Uploads]:
    with uploads() as opened:
        yield opened


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # A role's credentials, as the API function signs with: the token is a field too.
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")


def refused_cases(post: dict[str, Any]) -> dict[str, tuple[dict[str, str], bytes]]:
    """Each way an upload breaks its policy: (form fields, file)."""
    fields = post["fields"]
    return {
        "too big": (fields, PNG + b"\x00"),
        "too small": (fields, PNG[:-1]),
        "another content type": ({**fields, "Content-Type": "application/pdf"}, PNG),
        "another key": ({**fields, "key": "receipts/Y3VzdC0y/other.png"}, PNG),
        "a field no condition names": ({**fields, "acl": "public-read"}, PNG),
    }


def test_moto_alone_takes_any_upload_whatever_its_policy(aws_credentials: None) -> None:
    # Why the patch exists; if this fails, moto changed: re-check the patch.
    with uploads(patched=False) as bucket:
        post = bucket.presign()
        for name, (fields, content) in refused_cases(post).items():
            assert bucket.post(post["url"], fields, content).status == 204, name


def test_the_file_its_policy_describes_is_taken(bucket: Uploads) -> None:
    post = bucket.presign()
    assert post["url"] == f"{ENDPOINT}/{BUCKET}"
    assert post["fields"]["x-amz-security-token"] == "testing"

    answer = bucket.post(post["url"], post["fields"])

    assert (answer.status, answer.body) == (204, b"")
    assert bucket.stored() == (PNG, "image/png")


def test_a_file_over_the_size_range_is_entity_too_large(bucket: Uploads) -> None:
    post = bucket.presign()

    answer = bucket.post(post["url"], post["fields"], PNG + b"\x00")

    assert answer.status == 400
    error = answer.error()
    assert error["Code"] == "EntityTooLarge"
    assert error["Message"] == "Your proposed upload exceeds the maximum allowed size"
    assert (error["ProposedSize"], error["MaxSizeAllowed"]) == ("1000", "999")
    assert bucket.stored() is None


def test_a_file_under_the_size_range_is_entity_too_small(bucket: Uploads) -> None:
    post = bucket.presign()

    answer = bucket.post(post["url"], post["fields"], PNG[:-1])

    assert answer.status == 400
    error = answer.error()
    assert error["Code"] == "EntityTooSmall"
    assert error["Message"] == "Your proposed upload is smaller than the minimum allowed size"
    assert (error["ProposedSize"], error["MinSizeAllowed"]) == ("998", "999")
    assert bucket.stored() is None


def test_another_content_type_is_refused_by_its_condition(bucket: Uploads) -> None:
    post = bucket.presign()

    answer = bucket.post(post["url"], {**post["fields"], "Content-Type": "application/pdf"})

    assert answer.status == 403
    assert answer.error()["Code"] == "AccessDenied"
    assert answer.error()["Message"] == (
        'Invalid according to Policy: Policy Condition failed: ["eq", "$Content-Type", "image/png"]'
    )
    assert bucket.stored() is None


def test_another_key_is_refused_by_its_condition(bucket: Uploads) -> None:
    post = bucket.presign()
    other = "receipts/Y3VzdC0y/rcp_01JF6Z3Q8W0X9V2KQ4T7M5N8RC.png"

    answer = bucket.post(post["url"], {**post["fields"], "key": other})

    assert answer.status == 403
    assert answer.error()["Message"] == (
        f'Invalid according to Policy: Policy Condition failed: ["eq", "$key", "{KEY}"]'
    )
    assert bucket.stored(other) is None
    assert bucket.stored() is None


def test_a_field_the_policy_does_not_name_is_refused(bucket: Uploads) -> None:
    post = bucket.presign()

    answer = bucket.post(post["url"], {**post["fields"], "acl": "public-read"})

    assert answer.status == 403
    assert answer.error()["Message"] == "Invalid according to Policy: Extra input fields: acl"
    # Fields S3 never asks a condition for pass.
    assert bucket.post(post["url"], {**post["fields"], "x-ignore-note": "hi"}).status == 204


def test_field_names_match_in_any_case(bucket: Uploads) -> None:
    # botocore spells it `policy`, AWS's own form examples `Policy`; S3 takes both.
    post = bucket.presign()
    fields = {name: value for name, value in post["fields"].items() if name != "policy"}
    fields["Policy"] = post["fields"]["policy"]
    fields["content-type"] = fields.pop("Content-Type")

    assert bucket.post(post["url"], fields, PNG + b"\x00").error()["Code"] == "EntityTooLarge"
    assert bucket.post(post["url"], fields).status == 204
    assert bucket.stored() == (PNG, "image/png")


def test_an_expired_policy_is_refused(bucket: Uploads, monkeypatch: pytest.MonkeyPatch) -> None:
    post = bucket.presign(expires_in=900)
    monkeypatch.setattr(
        s3_post_policy, "_s3_now", lambda: datetime.now(UTC) + timedelta(seconds=901)
    )

    answer = bucket.post(post["url"], post["fields"])

    assert answer.status == 403
    assert answer.error()["Message"] == "Invalid according to Policy: Policy expired."
    assert bucket.stored() is None


def test_a_policy_for_another_bucket_is_refused(bucket: Uploads) -> None:
    bucket.s3.create_bucket(
        Bucket="elsewhere", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    post = bucket.presign()

    answer = bucket.post(f"{ENDPOINT}/elsewhere", post["fields"])

    assert answer.status == 403
    assert answer.error()["Message"] == (
        f'Invalid according to Policy: Policy Condition failed: ["eq", "$bucket", "{BUCKET}"]'
    )


def test_a_policy_that_is_no_json_document_is_an_invalid_policy(bucket: Uploads) -> None:
    post = bucket.presign()
    garbled = base64.b64encode(b"not json").decode()

    answer = bucket.post(post["url"], {**post["fields"], "policy": garbled})

    assert answer.status == 400
    assert answer.error()["Code"] == "InvalidPolicyDocument"
    assert bucket.stored() is None


def test_a_starts_with_condition_takes_any_value_with_its_prefix(bucket: Uploads) -> None:
    document = {
        "expiration": (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "conditions": [{"bucket": BUCKET}, ["starts-with", "$key", "receipts/"]],
    }
    policy = base64.b64encode(json.dumps(document).encode()).decode()
    url = f"{ENDPOINT}/{BUCKET}"

    assert bucket.post(url, {"key": "receipts/free.png", "policy": policy}).status == 204
    refused = bucket.post(url, {"key": "reports/free.png", "policy": policy})
    assert refused.status == 403
    assert '["starts-with", "$key", "receipts/"]' in refused.error()["Message"]


def test_a_form_without_a_policy_is_left_to_moto(bucket: Uploads) -> None:
    answer = bucket.post(f"{ENDPOINT}/{BUCKET}", {"key": "receipts/plain.png"})

    assert answer.status == 204
    assert bucket.stored("receipts/plain.png") == (PNG, "binary/octet-stream")


def test_verify_passes_on_the_installed_moto() -> None:
    s3_post_policy.verify()
    assert s3_post_policy.PATCH in patches.PATCHES


def test_verify_names_a_changed_post(monkeypatch: pytest.MonkeyPatch) -> None:
    def reshaped(self: Any, request: Any) -> Any:
        return None

    monkeypatch.setattr(S3Response, "_bucket_response_post", reshaped)

    with pytest.raises(patches.PatchError) as raised:
        s3_post_policy.verify()

    message = str(raised.value)
    assert "s3_post_policy patch (infra/local/patches/s3_post_policy.py)" in message
    assert "S3Response._bucket_response_post: parameters are now ['self', 'request']" in message
