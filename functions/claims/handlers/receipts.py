"""The receipt checker: S3 ObjectCreated notifications on ``receipts/`` check each upload.

Invoked asynchronously by S3 for every object created under ``receipts/`` in the
receipts bucket. Each object's bytes are checked against its grant's declared content
type and size (`ReceiptUploads.check`), and the `Receipt` item records the verdict
(``valid`` or ``invalid``, with the reason in words), the SHA-256 and the uploaded size,
which claim verification reads.

A failure raises: Lambda retries the event twice, then the function's DLQ keeps it. A
check is safe to repeat (S3 may deliver a notification more than once): it reads the
key's current object and writes nothing when the item already records it. An object
nobody was granted, or under a key the grants never make, is logged and left alone.

Each record is handled under the request id of the S3 call behind it (the upload).
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from functions.claims.uploads import CheckOutcome, ReceiptCheck, ReceiptSettings, ReceiptUploads
from functions.core.clock import utc_now
from functions.core.observability import correlated, instrumented, logger
from functions.core.settings import load_settings

__all__ = ["ReceiptCheckSettings", "check_receipts", "handler"]


class ReceiptCheckSettings(ReceiptSettings):
    claims_table: str = Field(alias="CLAIMS_TABLE", min_length=1)


def check_receipts(uploads: ReceiptUploads, event: dict[str, Any]) -> dict[str, Any]:
    """Check each created object of `event` in turn; the first failure raises (a retry
    checks again what was already checked, which writes nothing)."""
    results = []
    for record in event.get("Records", []):
        with correlated(record):
            # S3 URL-encodes keys in notifications, spaces as '+'.
            key = unquote_plus(record["s3"]["object"]["key"])
            results.append({"key": key, **_check_record(uploads, record, key)})
    return {"results": results}


def _check_record(uploads: ReceiptUploads, record: dict[str, Any], key: str) -> dict[str, Any]:
    bucket = record["s3"]["bucket"]["name"]
    event_name = str(record.get("eventName", ""))
    if bucket != uploads.bucket:
        logger.warning("record of another bucket ignored", extra={"bucket": bucket, "key": key})
        return {"outcome": "ignored"}
    if not event_name.startswith("ObjectCreated:"):
        logger.info("event ignored", extra={"key": key, "eventName": event_name})
        return {"outcome": "ignored"}
    check = uploads.check(bucket, key, now=utc_now())
    _log(check)
    status = check.receipt.status if check.receipt is not None else None
    return {"outcome": check.outcome.value, "status": status}


def _log(check: ReceiptCheck) -> None:
    receipt = check.receipt
    if check.outcome in (CheckOutcome.NOT_GRANTED, CheckOutcome.NOT_A_RECEIPT):
        # Only grants make keys the checker accepts: anything else is a client writing
        # where it was not asked to (or a key format changed under the grants).
        logger.warning(
            "object under receipts/ with no grant: left alone",
            extra={"key": check.key, "outcome": check.outcome.value},
        )
        return
    if check.outcome is CheckOutcome.GONE or receipt is None:
        logger.info("receipt object gone before it was checked", extra={"key": check.key})
        return
    logger.info(
        "receipt checked" if check.outcome is CheckOutcome.CHECKED else "receipt already checked",
        extra={
            "key": check.key,
            "status": receipt.status,
            "invalidReason": receipt.invalid_reason,
            "uploadedSize": receipt.uploaded_size,
            "sha256": receipt.sha256,
        },
    )


@functools.cache
def _uploads(settings: ReceiptCheckSettings) -> ReceiptUploads:
    # One per container (and per environment, for the local cloud); the client made lazily.
    return ReceiptUploads(settings.receipts_bucket)


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return check_receipts(_uploads(load_settings(ReceiptCheckSettings)), event)
