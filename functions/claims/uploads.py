"""Receipt uploads: grants (a `Receipt` item and a presigned POST) and the check of what
landed. The only module of the receipts part that touches AWS.

A grant writes the `Receipt` item first and signs the POST second (signing is local), so
every upload S3 accepts under ``receipts/`` has its declared type and size on record. The
POST is signed by the caller's credentials: in AWS the API function's role, which needs
``s3:PutObject`` on ``receipts/*`` for S3 to accept it.

The check reads the key's *current* object, whichever notification asked for it: a
redelivered notification, or one for a revision since replaced (a grant's POST may be
used again until it expires), converges on what the bucket holds now, and one that
finds the item already recording that object writes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import Field

from functions.claims.models import Receipt
from functions.claims.receipts import (
    MAX_RECEIPT_BYTES,
    RECEIPT_ID_PREFIX,
    SNIFF_BYTES,
    UPLOAD_EXPIRY,
    ReceiptVerdict,
    accepted_upload,
    parse_receipt_key,
    post_conditions,
    receipt_key,
    verdict,
)
from functions.core import aws
from functions.core.ids import new_id
from functions.core.settings import CoreSettings

__all__ = [
    "CheckOutcome",
    "ReceiptCheck",
    "ReceiptSettings",
    "ReceiptUploads",
    "UploadGrant",
]

# Read in pieces: a receipt is up to 10 MiB and the checker's memory is small.
_CHUNK_BYTES: Final = 256 * 1024
_NOT_FOUND: Final = frozenset({"NoSuchKey", "404", "NotFound"})
# Presigned POSTs must be SigV4 (regions opened since 2014 accept nothing else).
_S3_CONFIG: Final = Config(signature_version="s3v4")


class ReceiptSettings(CoreSettings):
    """Functions that grant or check receipt uploads."""

    receipts_bucket: str = Field(alias="RECEIPTS_BUCKET", min_length=1)


@dataclass(frozen=True)
class UploadGrant:
    """A granted upload: POST `fields` (then the file, last) as multipart/form-data to
    `url` before `expires_at`."""

    receipt_key: str
    url: str
    fields: dict[str, str]
    expires_at: datetime


class CheckOutcome(StrEnum):
    CHECKED = "checked"  # the Receipt item now records the object's verdict
    ALREADY_CHECKED = "already_checked"  # it already did: nothing written
    NOT_GRANTED = "not_granted"  # a receipt key with no Receipt item: left alone
    NOT_A_RECEIPT = "not_a_receipt"  # not a key `receipt_key` makes: left alone
    GONE = "gone"  # the object was deleted before it was read


@dataclass(frozen=True)
class ReceiptCheck:
    """What a check did; `receipt` is the item as it stands after it (when there is one)."""

    key: str
    outcome: CheckOutcome
    receipt: Receipt | None = None


@dataclass(frozen=True)
class _Landed:
    """What was read of an object: its size, first bytes, digest and stored type."""

    size: int
    head: bytes
    sha256: str | None
    stored_type: str | None


class ReceiptUploads:
    """Receipt grants and checks over the receipts bucket and the `Receipt` items."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("s3", config=_S3_CONFIG)
        return self._client

    # -- grants ---------------------------------------------------------------------------

    def grant(
        self, customer_id: str, content_type: str, size: int, *, now: datetime
    ) -> UploadGrant:
        """Record a new receipt for `customer_id` and presign its upload.

        Raises `ReceiptRefused` (unsupported_receipt_type, receipt_empty,
        receipt_too_large) before anything is written.
        """
        declared_type = accepted_upload(content_type, size)
        key = receipt_key(customer_id, new_id(RECEIPT_ID_PREFIX), declared_type)
        Receipt(
            receipt_key=key,
            customer_id=customer_id,
            content_type=declared_type,
            declared_size=size,
            granted_at=now,
        ).save(condition=Receipt.first_time())
        post = self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": declared_type},
            Conditions=post_conditions(key, declared_type, size),
            ExpiresIn=int(UPLOAD_EXPIRY.total_seconds()),
        )
        return UploadGrant(
            receipt_key=key,
            url=str(post["url"]),
            fields={str(name): str(value) for name, value in post["fields"].items()},
            expires_at=now + UPLOAD_EXPIRY,
        )

    def get(self, receipt_key: str) -> Receipt | None:
        return Receipt.get_or_none(*Receipt.key(receipt_key))

    # -- checks ---------------------------------------------------------------------------

    def check(self, bucket: str, key: str, *, now: datetime) -> ReceiptCheck:
        """Judge the object at `key` against its grant and record the verdict.

        Safe to repeat: the same object gives the same verdict, and a verdict already
        recorded is not written again. Raises on AWS failures, so a retry does the check.
        """
        if parse_receipt_key(key) is None:
            return ReceiptCheck(key, CheckOutcome.NOT_A_RECEIPT)
        receipt = self.get(key)
        if receipt is None:
            return ReceiptCheck(key, CheckOutcome.NOT_GRANTED)
        landed = self._read(bucket, key)
        if landed is None:
            return ReceiptCheck(key, CheckOutcome.GONE, receipt)
        judged = verdict(
            declared_type=receipt.content_type,
            declared_size=receipt.declared_size,
            head=landed.head,
            uploaded_size=landed.size,
            stored_type=landed.stored_type,
        )
        if _records(receipt, judged, landed):
            return ReceiptCheck(key, CheckOutcome.ALREADY_CHECKED, receipt)
        receipt.update(
            actions=[
                Receipt.status.set(judged.status),
                Receipt.uploaded_size.set(landed.size),
                Receipt.checked_at.set(now),
                Receipt.sha256.set(landed.sha256) if landed.sha256 else Receipt.sha256.remove(),
                Receipt.invalid_reason.set(judged.reason)
                if judged.reason
                else Receipt.invalid_reason.remove(),
            ],
            condition=Receipt.pk.exists(),
        )
        return ReceiptCheck(key, CheckOutcome.CHECKED, receipt)

    def _read(self, bucket: str, key: str) -> _Landed | None:
        """Stream the object once: digest, first bytes and size; None if it is gone."""
        try:
            response = self.client.get_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code")) in _NOT_FOUND:
                return None
            raise
        body = response["Body"]
        stored_type = response.get("ContentType")
        try:
            length = int(response["ContentLength"])
            if length > MAX_RECEIPT_BYTES:
                # Never granted at that size, so invalid whatever it holds: not worth
                # reading whole (nor a digest any claim could match).
                return _Landed(length, body.read(SNIFF_BYTES), None, stored_type)
            digest = hashlib.sha256()
            head = b""
            size = 0
            for chunk in body.iter_chunks(_CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
        finally:
            body.close()
        return _Landed(size, head, digest.hexdigest(), stored_type)


def _records(receipt: Receipt, judged: ReceiptVerdict, landed: _Landed) -> bool:
    """Whether `receipt` already records this verdict of this object."""
    return (
        receipt.checked_at is not None
        and receipt.status == judged.status
        and receipt.sha256 == landed.sha256
        and receipt.uploaded_size == landed.size
        and receipt.invalid_reason == judged.reason
    )
