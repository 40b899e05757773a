"""Receipt uploads on in-process moto: grants (the `Receipt` item and its presigned POST),
the check of what landed, and the checker handler fed S3 notifications."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
import requests
from moto import mock_aws

from functions.claims.handlers import receipts as receipts_handler
from functions.claims.models import Receipt
from functions.claims.receipts import (
    MAX_RECEIPT_BYTES,
    SNIFF_BYTES,
    ReceiptRefused,
    customer_of,
    parse_receipt_key,
    receipt_key,
)
from functions.claims.uploads import CheckOutcome, ReceiptSettings, ReceiptUploads
from functions.core.models import reset_connections
from functions.core.settings import SettingsError, parse_settings
from functions.core.tables import CLAIMS
from infra.local.proxy_event import lambda_context
from tests.support.aws import aws_env
from tests.support.tables import create_tables
from tests.unit.core.log_capture import captured_logs

__all__ = ["aws_env"]

BUCKET = "rebates-receipts-test"
NOW = datetime(2027, 3, 10, 9, 30, tzinfo=UTC)
LATER = NOW + timedelta(minutes=3)
CUSTOMER = "cust/東京 1"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # 1032 bytes
PDF = b"%PDF-1.7\n" + b"x" * 100


@dataclass
class World:
    s3: Any
    uploads: ReceiptUploads

    def put(self, key: str, content: bytes, content_type: str) -> None:
        """An object written as the grant's POST would (or by anyone with PutObject)."""
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=content, ContentType=content_type)


@pytest.fixture
def world(aws_env: None) -> Iterator[World]:
    # Only the Claims table: receipts live nowhere else.
    reset_connections()
    with mock_aws():
        create_tables([CLAIMS])
        s3 = boto3.client("s3")
        s3.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"}
        )
        yield World(s3, ReceiptUploads(BUCKET))
    reset_connections()


def policy_of(fields: dict[str, str]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(base64.b64decode(fields["policy"]))
    return document


def stored_receipts() -> list[Receipt]:
    return list(Receipt.scan())


# -- grants ------------------------------------------------------------------------------


def test_a_grant_records_the_receipt_and_presigns_its_upload(world: World) -> None:
    grant = world.uploads.grant(CUSTOMER, "image/png", len(PNG), now=NOW)

    parsed = parse_receipt_key(grant.receipt_key)
    assert parsed is not None
    assert (parsed.customer_id, parsed.content_type) == (CUSTOMER, "image/png")
    assert parsed.receipt_id.startswith("rcp_")
    assert grant.expires_at == NOW + timedelta(minutes=15)
    assert grant.url == f"https://{BUCKET}.s3.amazonaws.com/"

    receipt = world.uploads.get(grant.receipt_key)
    assert receipt is not None
    assert (receipt.receipt_key, receipt.customer_id) == (grant.receipt_key, CUSTOMER)
    assert (receipt.content_type, receipt.declared_size) == ("image/png", len(PNG))
    assert (receipt.status, receipt.granted_at, receipt.checked_at) == (
        "awaiting_upload",
        NOW,
        None,
    )
    assert (receipt.pk, receipt.sk) == (f"RECEIPT#{grant.receipt_key}", "META")


def test_the_presigned_post_holds_the_key_type_and_exact_size_for_fifteen_minutes(
    world: World,
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    grant = world.uploads.grant(CUSTOMER, "application/pdf", 4321, now=NOW)

    fields = grant.fields
    assert fields["key"] == grant.receipt_key
    assert fields["Content-Type"] == "application/pdf"
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"  # SigV4
    assert {"x-amz-credential", "x-amz-date", "x-amz-signature"} <= set(fields)
    document = policy_of(fields)
    conditions = document["conditions"]
    assert {"key": grant.receipt_key} in conditions
    assert {"Content-Type": "application/pdf"} in conditions
    assert ["content-length-range", 4321, 4321] in conditions
    assert {"bucket": BUCKET} in conditions
    # S3 compares the policy's expiration with its own clock, as botocore wrote it.
    expiration = datetime.fromisoformat(document["expiration"])
    assert before + timedelta(minutes=15) <= expiration <= datetime.now(UTC) + timedelta(minutes=15)


def test_a_content_type_in_another_case_is_granted_as_the_lower_case_one(world: World) -> None:
    grant = world.uploads.grant(CUSTOMER, "IMAGE/JPEG", 10, now=NOW)

    assert grant.receipt_key.endswith(".jpg")
    assert grant.fields["Content-Type"] == "image/jpeg"
    receipt = world.uploads.get(grant.receipt_key)
    assert receipt is not None and receipt.content_type == "image/jpeg"


def test_every_grant_is_a_receipt_of_its_own(world: World) -> None:
    first = world.uploads.grant(CUSTOMER, "image/png", 10, now=NOW)
    second = world.uploads.grant(CUSTOMER, "image/png", 10, now=NOW)

    assert first.receipt_key != second.receipt_key
    assert customer_of(first.receipt_key) == customer_of(second.receipt_key) == CUSTOMER
    assert len(stored_receipts()) == 2


@pytest.mark.parametrize(
    ("content_type", "size", "code"),
    [
        ("image/gif", 10, "unsupported_receipt_type"),
        ("text/html", 10, "unsupported_receipt_type"),
        ("image/png", MAX_RECEIPT_BYTES + 1, "receipt_too_large"),
        ("image/png", 0, "receipt_empty"),
    ],
)
def test_a_refused_grant_writes_nothing(
    world: World, content_type: str, size: int, code: str
) -> None:
    with pytest.raises(ReceiptRefused) as refused:
        world.uploads.grant(CUSTOMER, content_type, size, now=NOW)

    assert refused.value.code == code
    assert stored_receipts() == []


def test_a_grant_at_the_maximum_size_is_taken(world: World) -> None:
    grant = world.uploads.grant(CUSTOMER, "application/pdf", MAX_RECEIPT_BYTES, now=NOW)

    assert ["content-length-range", MAX_RECEIPT_BYTES, MAX_RECEIPT_BYTES] in policy_of(
        grant.fields
    )["conditions"]


def test_the_receipts_bucket_comes_from_the_environment() -> None:
    environment = {"POWERTOOLS_SERVICE_NAME": "claims", "REBATES_VERSION": "test"}

    settings = parse_settings(ReceiptSettings, {**environment, "RECEIPTS_BUCKET": BUCKET})

    assert settings.receipts_bucket == BUCKET
    with pytest.raises(SettingsError, match="RECEIPTS_BUCKET"):
        parse_settings(ReceiptSettings, environment)


# -- checks ------------------------------------------------------------------------------


def test_an_upload_through_the_presigned_post_is_checked_valid(world: World) -> None:
    grant = world.uploads.grant(CUSTOMER, "image/png", len(PNG), now=NOW)
    # The customer's browser: the grant's fields, then the file, as multipart/form-data.
    answer = requests.post(
        grant.url, data=grant.fields, files={"file": ("receipt.png", PNG)}, timeout=5
    )
    assert answer.status_code == 204

    check = world.uploads.check(BUCKET, grant.receipt_key, now=LATER)

    assert check.outcome is CheckOutcome.CHECKED
    receipt = world.uploads.get(grant.receipt_key)
    assert receipt is not None
    assert receipt.status == "valid"
    assert receipt.sha256 == hashlib.sha256(PNG).hexdigest()
    assert (receipt.uploaded_size, receipt.invalid_reason, receipt.checked_at) == (
        len(PNG),
        None,
        LATER,
    )
    assert check.receipt is not None and check.receipt.status == "valid"


def test_bytes_of_another_type_make_the_receipt_invalid(world: World) -> None:
    grant = world.uploads.grant(CUSTOMER, "application/pdf", len(PNG), now=NOW)
    # The policy held the declared content type; the bytes are what the customer sent.
    world.put(grant.receipt_key, PNG, "application/pdf")

    world.uploads.check(BUCKET, grant.receipt_key, now=LATER)

    receipt = world.uploads.get(grant.receipt_key)
    assert receipt is not None
    assert receipt.status == "invalid"
    assert receipt.invalid_reason == "PNG bytes, declared application/pdf"
    assert receipt.sha256 == hashlib.sha256(PNG).hexdigest()
    assert receipt.uploaded_size == len(PNG)


def test_an_object_of_another_size_makes_the_receipt_invalid(world: World) -> None:
    grant = world.uploads.grant(CUSTOMER, "application/pdf", 999, now=NOW)
    world.put(grant.receipt_key, PDF, "application/pdf")

    world.uploads.check(BUCKET, grant.receipt_key, now=LATER)

    receipt = world.uploads.get(grant.receipt_key)
    assert receipt is not None
    assert (receipt.status, receipt.invalid_reason) == (
        "invalid",
        f"uploaded {len(PDF)} bytes, declared 999",
    )


def test_a_redelivered_notification_writes_nothing_again(world: World) -> None:
    grant = world.uploads.grant(CUSTOMER, "image/png", len(PNG), now=NOW)
    world.put(grant.receipt_key, PNG, "image/png")
    first = world.uploads.check(BUCKET, grant.receipt_key, now=LATER)

    again = world.uploads.check(BUCKET, grant.receipt_key, now=LATER + timedelta(hours=1))

    assert (first.outcome, again.outcome) == (CheckOutcome.CHECKED, CheckOutcome.ALREADY_CHECKED)
    receipt = world.uploads.get(grant.receipt_key)
    assert receipt is not None
    assert (receipt.status, receipt.checked_at) == ("valid", LATER)


def test_an_object_replaced_under_its_grant_is_judged_again(world: World) -> None:
    grant = world.uploads.grant(CUSTOMER, "image/png", len(PNG), now=NOW)
    world.put(grant.receipt_key, b"GIF89a" + PNG[6:], "image/png")
    world.uploads.check(BUCKET, grant.receipt_key, now=LATER)
    world.put(grant.receipt_key, PNG, "image/png")  # the same POST, used again in time

    check = world.uploads.check(BUCKET, grant.receipt_key, now=LATER + timedelta(minutes=1))

    assert check.outcome is CheckOutcome.CHECKED
    receipt = world.uploads.get(grant.receipt_key)
    assert receipt is not None
    assert (receipt.status, receipt.invalid_reason) == ("valid", None)
    assert receipt.sha256 == hashlib.sha256(PNG).hexdigest()


def test_an_object_nobody_was_granted_is_left_alone(world: World) -> None:
    key = receipt_key(CUSTOMER, "rcp_01JF6Z3Q8W0X9V2KQ4T7M5N8RB", "image/png")
    world.put(key, PNG, "image/png")

    check = world.uploads.check(BUCKET, key, now=LATER)

    assert (check.outcome, check.receipt) == (CheckOutcome.NOT_GRANTED, None)
    assert stored_receipts() == []
    assert world.s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == len(PNG)


@pytest.mark.parametrize("key", ["receipts/readme.txt", "receipts/Y3VzdC0x/any.png", "other"])
def test_a_key_no_grant_makes_is_not_a_receipt(world: World, key: str) -> None:
    world.put(key, PNG, "image/png")

    check = world.uploads.check(BUCKET, key, now=LATER)

    assert check.outcome is CheckOutcome.NOT_A_RECEIPT
    assert stored_receipts() == []


def test_an_object_deleted_before_its_check_leaves_the_receipt_awaiting(world: World) -> None:
    grant = world.uploads.grant(CUSTOMER, "image/png", len(PNG), now=NOW)

    check = world.uploads.check(BUCKET, grant.receipt_key, now=LATER)

    assert check.outcome is CheckOutcome.GONE
    receipt = world.uploads.get(grant.receipt_key)
    assert receipt is not None and receipt.status == "awaiting_upload"


def test_an_unknown_receipt_is_none(world: World) -> None:
    assert world.uploads.get("receipts/Y3VzdC0x/rcp_01JF6Z3Q8W0X9V2KQ4T7M5N8RB.png") is None


# -- streaming ---------------------------------------------------------------------------


class RecordingBody:
    """A GetObject body that records how it was read."""

    def __init__(self, content: bytes) -> None:
        self.content = content
        self.reads: list[int | None] = []
        self.closed = False

    def iter_chunks(self, chunk_size: int) -> Iterator[bytes]:
        for start in range(0, len(self.content), chunk_size):
            # Pieces can arrive shorter than asked: the first bytes are gathered anyway.
            piece = self.content[start : start + chunk_size]
            for half in (piece[:3], piece[3:]):
                self.reads.append(len(half))
                yield half

    def read(self, amount: int | None = None) -> bytes:
        self.reads.append(amount)
        return self.content[: amount or None]

    def close(self) -> None:
        self.closed = True


class StubS3:
    def __init__(self, body: RecordingBody, length: int, content_type: str) -> None:
        self.body, self.length, self.content_type = body, length, content_type

    def get_object(self, **_: Any) -> dict[str, Any]:
        return {"Body": self.body, "ContentLength": self.length, "ContentType": self.content_type}


def test_an_object_is_read_in_pieces_never_whole(world: World) -> None:
    content = PNG * 2000  # about 2 MB
    grant = world.uploads.grant(CUSTOMER, "image/png", len(content), now=NOW)
    body = RecordingBody(content)
    uploads = ReceiptUploads(BUCKET, client=StubS3(body, len(content), "image/png"))

    uploads.check(BUCKET, grant.receipt_key, now=LATER)

    assert None not in body.reads and max(r or 0 for r in body.reads) <= 256 * 1024
    assert body.closed
    receipt = uploads.get(grant.receipt_key)
    assert receipt is not None
    assert (receipt.status, receipt.sha256) == ("valid", hashlib.sha256(content).hexdigest())


def test_an_object_over_the_maximum_is_invalid_without_being_read(world: World) -> None:
    grant = world.uploads.grant(CUSTOMER, "image/png", len(PNG), now=NOW)
    body = RecordingBody(PNG)
    uploads = ReceiptUploads(BUCKET, client=StubS3(body, MAX_RECEIPT_BYTES + 1, "image/png"))

    uploads.check(BUCKET, grant.receipt_key, now=LATER)

    assert body.reads == [SNIFF_BYTES] and body.closed
    receipt = uploads.get(grant.receipt_key)
    assert receipt is not None
    assert (receipt.status, receipt.sha256) == ("invalid", None)
    assert receipt.invalid_reason == f"uploaded {MAX_RECEIPT_BYTES + 1} bytes, declared {len(PNG)}"


# -- the checker handler -------------------------------------------------------------------


def s3_event(*records: tuple[str, str], bucket: str = BUCKET) -> dict[str, Any]:
    """S3 notifications as AWS sends them to Lambda (keys URL-encoded, spaces as '+')."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": event_name,
                "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810"},
                "s3": {
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key), "sequencer": "0062A1"},
                },
            }
            for event_name, key in records
        ]
    }


@pytest.fixture
def checker(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for name, value in {
        "POWERTOOLS_SERVICE_NAME": "claims",
        "REBATES_VERSION": "test",
        "RECEIPTS_BUCKET": BUCKET,
        "CLAIMS_TABLE": CLAIMS.default_name,
    }.items():
        monkeypatch.setenv(name, value)
    receipts_handler._uploads.cache_clear()
    yield world
    receipts_handler._uploads.cache_clear()


def test_the_handler_checks_each_created_receipt(checker: World) -> None:
    valid = checker.uploads.grant(CUSTOMER, "image/png", len(PNG), now=NOW)
    invalid = checker.uploads.grant(CUSTOMER, "application/pdf", len(PNG), now=NOW)
    checker.put(valid.receipt_key, PNG, "image/png")
    checker.put(invalid.receipt_key, PNG, "application/pdf")
    event = s3_event(
        ("ObjectCreated:Post", valid.receipt_key), ("ObjectCreated:Post", invalid.receipt_key)
    )

    with captured_logs() as logs:
        result = receipts_handler.handler(event, lambda_context("rebates-claims-receipts"))

    assert result == {
        "results": [
            {"key": valid.receipt_key, "outcome": "checked", "status": "valid"},
            {"key": invalid.receipt_key, "outcome": "checked", "status": "invalid"},
        ]
    }
    (line, _) = logs.with_message("receipt checked")
    assert line["correlation_id"] == "C3D13FE58DE4C810"
    assert line["status"] == "valid"


def test_a_redelivered_event_is_answered_by_what_was_recorded(checker: World) -> None:
    grant = checker.uploads.grant(CUSTOMER, "image/png", len(PNG), now=NOW)
    checker.put(grant.receipt_key, PNG, "image/png")
    event = s3_event(("ObjectCreated:Post", grant.receipt_key))
    receipts_handler.handler(event, lambda_context())

    again = receipts_handler.handler(event, lambda_context())

    assert again["results"] == [
        {"key": grant.receipt_key, "outcome": "already_checked", "status": "valid"}
    ]


def test_the_handler_logs_and_leaves_an_object_nobody_was_granted(checker: World) -> None:
    key = receipt_key("cust 1", "rcp_01JF6Z3Q8W0X9V2KQ4T7M5N8RB", "image/png")
    checker.put(key, PNG, "image/png")

    with captured_logs() as logs:
        result = receipts_handler.handler(
            s3_event(("ObjectCreated:Put", key), ("ObjectCreated:Put", "receipts/a b+c.png")),
            lambda_context(),
        )

    assert result["results"] == [
        {"key": key, "outcome": "not_granted", "status": None},
        {"key": "receipts/a b+c.png", "outcome": "not_a_receipt", "status": None},
    ]
    warnings = logs.with_message("object under receipts/ with no grant: left alone")
    assert [line["key"] for line in warnings] == [key, "receipts/a b+c.png"]
    assert stored_receipts() == []


def test_the_handler_ignores_other_buckets_and_other_events(checker: World) -> None:
    grant = checker.uploads.grant(CUSTOMER, "image/png", len(PNG), now=NOW)
    event = {
        "Records": [
            *s3_event(("ObjectCreated:Put", grant.receipt_key), bucket="elsewhere")["Records"],
            *s3_event(("ObjectRemoved:Delete", grant.receipt_key))["Records"],
        ]
    }

    result = receipts_handler.handler(event, lambda_context())

    assert [r["outcome"] for r in result["results"]] == ["ignored", "ignored"]
    receipt = checker.uploads.get(grant.receipt_key)
    assert receipt is not None and receipt.status == "awaiting_upload"


def test_a_failed_check_raises_for_the_retries_and_the_dlq(
    checker: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    grant = checker.uploads.grant(CUSTOMER, "image/png", len(PNG), now=NOW)
    checker.put(grant.receipt_key, PNG, "image/png")

    def failing(*_: Any, **__: Any) -> Any:
        raise ConnectionError("S3 is unreachable")

    monkeypatch.setattr(ReceiptUploads, "_read", failing)

    with pytest.raises(ConnectionError):
        receipts_handler.handler(
            s3_event(("ObjectCreated:Post", grant.receipt_key)), lambda_context()
        )
    receipt = checker.uploads.get(grant.receipt_key)
    assert receipt is not None and receipt.status == "awaiting_upload"


def test_the_handler_fails_loudly_without_its_settings(
    checker: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECEIPTS_BUCKET")

    with pytest.raises(SettingsError, match="RECEIPTS_BUCKET"):
        receipts_handler.handler(s3_event(), lambda_context())
