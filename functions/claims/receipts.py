"""Receipt files: which are taken, where they are kept, and whether an upload is what it
claimed to be. Pure rules: no AWS client, no table.

A receipt is uploaded by the customer's browser straight to the receipts bucket with a
presigned POST (DESIGN "POST /v1/claims/uploads"). The POST policy (`post_conditions`)
lets S3 itself refuse a file of another size, another content type or under another key;
once the object lands, its bytes are checked (`verdict`) against what was declared,
since a policy can hold the declared content type but never what the bytes are.

Keys: ``receipts/<customer segment>/<receiptId><ext>``. The customer segment is the
URL-safe base64 (no padding) of the customer id's UTF-8 bytes, so any customer id (with
``/``, spaces or any script) is one path segment of ``[A-Za-z0-9_-]``, and the owner of a
key is read back from the key alone (`customer_of`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from functions.core.errors import DomainError
from functions.core.fields import MAX_CUSTOMER_ID_LENGTH, PRINTABLE
from functions.core.ids import is_valid_id

__all__ = [
    "ACCEPTED_TYPES",
    "KEY_PREFIX",
    "MAX_RECEIPT_BYTES",
    "RECEIPT_ID_PREFIX",
    "SNIFF_BYTES",
    "UPLOAD_EXPIRY",
    "ReceiptKey",
    "ReceiptRefusal",
    "ReceiptRefused",
    "ReceiptVerdict",
    "accepted_upload",
    "customer_of",
    "parse_receipt_key",
    "post_conditions",
    "receipt_key",
    "sniff",
    "verdict",
]

# Content type -> the key's extension.
ACCEPTED_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {"image/jpeg": ".jpg", "image/png": ".png", "application/pdf": ".pdf"}
)
# How a file of each type is named in a reason a reviewer reads.
_KIND_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {"image/jpeg": "JPEG", "image/png": "PNG", "application/pdf": "PDF"}
)
_TYPE_OF_EXTENSION: Final = {extension: kind for kind, extension in ACCEPTED_TYPES.items()}

MAX_RECEIPT_BYTES: Final = 10 * 1024 * 1024
# How long a granted upload may be used: S3 refuses the POST after it.
UPLOAD_EXPIRY: Final = timedelta(minutes=15)
KEY_PREFIX: Final = "receipts/"
RECEIPT_ID_PREFIX: Final = "rcp"

# The signature each accepted type starts with.
_MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"%PDF-", "application/pdf"),
)
# Enough leading bytes to tell every accepted type apart.
SNIFF_BYTES: Final = max(len(magic) for magic, _ in _MAGIC)

_SEGMENT: Final = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
_PRINTABLE: Final = re.compile(PRINTABLE)


# -- what is refused -----------------------------------------------------------------------


class ReceiptRefusal(StrEnum):
    """Why an upload is not granted: a property of the request, never of the state."""

    UNSUPPORTED_TYPE = "unsupported_receipt_type"
    TOO_LARGE = "receipt_too_large"
    EMPTY = "receipt_empty"


class ReceiptRefused(DomainError):
    """An upload the rules do not grant: a stable snake_case `code` (`ReceiptRefusal`),
    a message for people and the values it concerns. No HTTP: the API decides the status."""

    def __init__(
        self, reason: ReceiptRefusal, message: str, details: Mapping[str, object] | None = None
    ) -> None:
        super().__init__(message, details, code=reason.value)
        self.reason = reason


def accepted_upload(content_type: str, size: int) -> str:
    """The content type as the grant records it (lower case), or raise `ReceiptRefused`.

    Media types are case-insensitive, so ``IMAGE/PNG`` is taken as ``image/png``; the
    upload must then send the recorded spelling, which the grant's fields carry.
    """
    normalised = content_type.strip().lower()
    if normalised not in ACCEPTED_TYPES:
        raise ReceiptRefused(
            ReceiptRefusal.UNSUPPORTED_TYPE,
            "A receipt is a JPEG, PNG or PDF file.",
            {"contentType": content_type, "accepted": list(ACCEPTED_TYPES)},
        )
    if size < 1:
        raise ReceiptRefused(
            ReceiptRefusal.EMPTY, "A receipt file cannot be empty.", {"size": size}
        )
    if size > MAX_RECEIPT_BYTES:
        raise ReceiptRefused(
            ReceiptRefusal.TOO_LARGE,
            f"A receipt file is at most {MAX_RECEIPT_BYTES} bytes (10 MiB).",
            {"size": size, "maxSize": MAX_RECEIPT_BYTES},
        )
    return normalised


# -- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptKey:
    """What a receipt key says: whose it is, which receipt, which content type."""

    customer_id: str
    receipt_id: str
    content_type: str


def _segment_of(customer_id: str) -> str:
    return base64.urlsafe_b64encode(customer_id.encode("utf-8")).decode("ascii").rstrip("=")


def _customer_from(segment: str) -> str | None:
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        customer_id = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    # Unused trailing bits make several segments decode to the same id: only the one
    # `receipt_key` writes is a key, so one receipt has exactly one spelling.
    if _segment_of(customer_id) != segment or not _is_customer_id(customer_id):
        return None
    return customer_id


def _is_customer_id(customer_id: str) -> bool:
    return 1 <= len(customer_id) <= MAX_CUSTOMER_ID_LENGTH and bool(
        _PRINTABLE.fullmatch(customer_id)
    )


def receipt_key(customer_id: str, receipt_id: str, content_type: str) -> str:
    """``receipts/<customer segment>/<receiptId><ext>`` for an accepted content type."""
    if not _is_customer_id(customer_id):
        raise ValueError(f"not a customer id: {customer_id!r}")
    if not is_valid_id(receipt_id, RECEIPT_ID_PREFIX):
        raise ValueError(f"not a receipt id: {receipt_id!r}")
    extension = ACCEPTED_TYPES.get(content_type)
    if extension is None:
        raise ValueError(f"not an accepted receipt content type: {content_type!r}")
    return f"{KEY_PREFIX}{_segment_of(customer_id)}/{receipt_id}{extension}"


def parse_receipt_key(key: str) -> ReceiptKey | None:
    """The parts of a key `receipt_key` could have made; None for any other text."""
    if not isinstance(key, str) or not key.startswith(KEY_PREFIX):
        return None
    parts = key[len(KEY_PREFIX) :].split("/")
    if len(parts) != 2:
        return None
    segment, name = parts
    stem, dot, extension = name.rpartition(".")
    content_type = _TYPE_OF_EXTENSION.get(dot + extension)
    if not dot or content_type is None or not is_valid_id(stem, RECEIPT_ID_PREFIX):
        return None
    customer_id = _customer_from(segment)
    if customer_id is None:
        return None
    return ReceiptKey(customer_id=customer_id, receipt_id=stem, content_type=content_type)


def customer_of(key: str) -> str | None:
    """The customer a receipt key belongs to; None when `key` is not a receipt key."""
    parsed = parse_receipt_key(key)
    return parsed.customer_id if parsed else None


# -- the upload's policy ---------------------------------------------------------------------


def post_conditions(key: str, content_type: str, size: int) -> list[Any]:
    """The presigned POST policy's conditions: this key, the declared content type, and
    exactly the declared size (S3 checks them; the bucket condition is the signer's)."""
    return [
        {"key": key},
        {"Content-Type": content_type},
        ["content-length-range", size, size],
    ]


# -- the landed object -----------------------------------------------------------------------


def sniff(head: bytes) -> str | None:
    """The accepted content type whose signature `head` (the first bytes) starts with."""
    for magic, content_type in _MAGIC:
        if head.startswith(magic):
            return content_type
    return None


@dataclass(frozen=True)
class ReceiptVerdict:
    """Whether an uploaded object is the file its grant declared; if not, why, in words."""

    valid: bool
    reason: str | None = None

    @property
    def status(self) -> str:
        """The receipt status it gives (`functions.claims.models.RECEIPT_STATUSES`)."""
        return "valid" if self.valid else "invalid"


def _kind_of(sniffed: str | None) -> str:
    return _KIND_NAMES[sniffed] if sniffed else "unrecognised (not JPEG, PNG or PDF)"


def verdict(
    *,
    declared_type: str,
    declared_size: int,
    head: bytes,
    uploaded_size: int,
    stored_type: str | None = None,
) -> ReceiptVerdict:
    """Judge an uploaded object: its first bytes (`head`, at least `SNIFF_BYTES` unless
    the object is shorter), its size and the content type S3 stored it with.

    Every mismatch is named, e.g. "PNG bytes, declared application/pdf; uploaded 1234
    bytes, declared 999".
    """
    reasons = []
    sniffed = sniff(head)
    if sniffed != declared_type:
        reasons.append(f"{_kind_of(sniffed)} bytes, declared {declared_type}")
    if uploaded_size != declared_size:
        reasons.append(f"uploaded {uploaded_size} bytes, declared {declared_size}")
    if stored_type is not None and stored_type.strip().lower() != declared_type:
        # The POST policy holds the content type; an object written some other way would
        # later be served under a type nobody checked.
        reasons.append(f"stored as {stored_type}, declared {declared_type}")
    if reasons:
        return ReceiptVerdict(valid=False, reason="; ".join(reasons))
    return ReceiptVerdict(valid=True)
