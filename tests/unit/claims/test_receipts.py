"""Receipt rules: what is taken, the key a receipt lives under, and the check of its bytes."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.claims.receipts import (
    ACCEPTED_TYPES,
    MAX_RECEIPT_BYTES,
    SNIFF_BYTES,
    UPLOAD_EXPIRY,
    ReceiptKey,
    ReceiptRefusal,
    ReceiptRefused,
    accepted_upload,
    customer_of,
    parse_receipt_key,
    post_conditions,
    receipt_key,
    sniff,
    verdict,
)
from functions.core.fields import MAX_CUSTOMER_ID_LENGTH
from functions.core.ids import new_id

RECEIPT_ID = "rcp_01JF6Z3Q8W0X9V2KQ4T7M5N8RB"

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"


def _segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


NOT_UTF8 = _segment(b"\xff\xfe")
NOT_PRINTABLE = _segment(b"a\nb")
TOO_LONG = _segment(b"x" * (MAX_CUSTOMER_ID_LENGTH + 1))


# -- what is taken -------------------------------------------------------------------------


def test_the_accepted_types_and_their_extensions() -> None:
    assert dict(ACCEPTED_TYPES) == {
        "image/jpeg": ".jpg",
        "image/png": ".png",
        "application/pdf": ".pdf",
    }
    assert MAX_RECEIPT_BYTES == 10 * 1024 * 1024
    assert UPLOAD_EXPIRY.total_seconds() == 15 * 60


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "application/pdf"])
def test_each_accepted_type_is_taken_up_to_the_maximum(content_type: str) -> None:
    assert accepted_upload(content_type, 1) == content_type
    assert accepted_upload(content_type, MAX_RECEIPT_BYTES) == content_type


def test_a_content_type_in_another_case_is_taken_in_lower_case() -> None:
    assert accepted_upload(" Image/PNG ", 10) == "image/png"


@pytest.mark.parametrize(
    "content_type", ["image/gif", "image/jpg", "text/plain", "", "image/png; q=1", "png"]
)
def test_other_content_types_are_unsupported(content_type: str) -> None:
    with pytest.raises(ReceiptRefused) as refused:
        accepted_upload(content_type, 10)

    assert refused.value.reason is ReceiptRefusal.UNSUPPORTED_TYPE
    assert refused.value.code == "unsupported_receipt_type"
    assert refused.value.details == {
        "contentType": content_type,
        "accepted": ["image/jpeg", "image/png", "application/pdf"],
    }


def test_a_file_over_ten_mebibytes_is_too_large() -> None:
    with pytest.raises(ReceiptRefused) as refused:
        accepted_upload("image/png", MAX_RECEIPT_BYTES + 1)

    assert refused.value.code == "receipt_too_large"
    assert refused.value.details == {"size": MAX_RECEIPT_BYTES + 1, "maxSize": MAX_RECEIPT_BYTES}
    assert (
        str(refused.value)
        == "receipt_too_large: A receipt file is at most 10485760 bytes (10 MiB)."
    )


@pytest.mark.parametrize("size", [0, -1])
def test_an_empty_file_is_refused(size: int) -> None:
    with pytest.raises(ReceiptRefused) as refused:
        accepted_upload("application/pdf", size)

    assert refused.value.code == "receipt_empty"


def test_the_type_is_judged_before_the_size() -> None:
    with pytest.raises(ReceiptRefused) as refused:
        accepted_upload("image/gif", 0)

    assert refused.value.reason is ReceiptRefusal.UNSUPPORTED_TYPE


# -- keys --------------------------------------------------------------------------------


def test_a_key_names_the_customer_segment_the_receipt_and_its_extension() -> None:
    key = receipt_key("cust-1", RECEIPT_ID, "image/png")

    assert key == f"receipts/Y3VzdC0x/{RECEIPT_ID}.png"
    assert parse_receipt_key(key) == ReceiptKey("cust-1", RECEIPT_ID, "image/png")
    assert customer_of(key) == "cust-1"


@pytest.mark.parametrize(
    ("content_type", "extension"),
    [("image/jpeg", ".jpg"), ("image/png", ".png"), ("application/pdf", ".pdf")],
)
def test_each_type_has_its_extension(content_type: str, extension: str) -> None:
    key = receipt_key("c", RECEIPT_ID, content_type)

    assert key.endswith(f"/{RECEIPT_ID}{extension}")
    parsed = parse_receipt_key(key)
    assert parsed is not None and parsed.content_type == content_type


@pytest.mark.parametrize(
    "customer_id",
    [
        "a/b/c",
        "../../etc",
        "spaces and + plus",
        "顧客-東京/1",
        "emoji 🧾 receipt",
        "=?padding?=",
        "x" * MAX_CUSTOMER_ID_LENGTH,
        "🧾" * MAX_CUSTOMER_ID_LENGTH,
    ],
)
def test_any_customer_id_is_one_segment_and_reads_back(customer_id: str) -> None:
    key = receipt_key(customer_id, RECEIPT_ID, "application/pdf")

    segment = key.split("/")[1]
    assert key.count("/") == 2
    assert segment.isascii() and "=" not in segment
    assert customer_of(key) == customer_id
    # S3 keys are at most 1024 bytes of UTF-8; the longest customer id fits.
    assert len(key.encode("utf-8")) <= 1024


@given(
    st.text(
        st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029"),
        min_size=1,
        max_size=MAX_CUSTOMER_ID_LENGTH,
    )
)
def test_every_printable_customer_id_round_trips(customer_id: str) -> None:
    assert customer_of(receipt_key(customer_id, RECEIPT_ID, "image/jpeg")) == customer_id


def test_a_key_for_a_new_receipt_id_reads_back() -> None:
    receipt_id = new_id("rcp")

    parsed = parse_receipt_key(receipt_key("c", receipt_id, "image/png"))

    assert parsed is not None and parsed.receipt_id == receipt_id


@pytest.mark.parametrize(
    ("customer_id", "receipt_id", "content_type"),
    [
        ("", RECEIPT_ID, "image/png"),
        ("x" * (MAX_CUSTOMER_ID_LENGTH + 1), RECEIPT_ID, "image/png"),
        ("line\nbreak", RECEIPT_ID, "image/png"),
        ("c", "clm_01JF6Z3Q8W0X9V2KQ4T7M5N8RB", "image/png"),
        ("c", "rcp_nope", "image/png"),
        ("c", RECEIPT_ID, "image/gif"),
        ("c", RECEIPT_ID, "IMAGE/PNG"),
    ],
)
def test_a_key_is_only_made_of_valid_parts(
    customer_id: str, receipt_id: str, content_type: str
) -> None:
    with pytest.raises(ValueError):
        receipt_key(customer_id, receipt_id, content_type)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "receipts/",
        f"Y3VzdC0x/{RECEIPT_ID}.png",
        f"uploads/Y3VzdC0x/{RECEIPT_ID}.png",
        f"/receipts/Y3VzdC0x/{RECEIPT_ID}.png",
        f"receipts//{RECEIPT_ID}.png",
        f"receipts/Y3VzdC0x/extra/{RECEIPT_ID}.png",
        f"receipts/Y3VzdC0x/{RECEIPT_ID}",
        f"receipts/Y3VzdC0x/{RECEIPT_ID}.gif",
        f"receipts/Y3VzdC0x/{RECEIPT_ID}.PNG",
        f"receipts/Y3VzdC0x/{RECEIPT_ID}.jpeg",
        f"receipts/Y3VzdC0x/{RECEIPT_ID}.png.png",
        "receipts/Y3VzdC0x/rcp_.png",
        "receipts/Y3VzdC0x/clm_01JF6Z3Q8W0X9V2KQ4T7M5N8RB.png",
        f"receipts/Y3VzdC0x=/{RECEIPT_ID}.png",  # padded
        f"receipts/Y3VzdC0y+/{RECEIPT_ID}.png",  # not the URL-safe alphabet
        f"receipts/Y3VzdC1/{RECEIPT_ID}.png",  # trailing bits set: not the canonical spelling
        f"receipts/Y/{RECEIPT_ID}.png",  # no whole byte
        f"receipts/{NOT_UTF8}/{RECEIPT_ID}.png",
        f"receipts/{NOT_PRINTABLE}/{RECEIPT_ID}.png",
        f"receipts/{TOO_LONG}/{RECEIPT_ID}.png",
        f"receipts/Y3VzdC0x/{RECEIPT_ID}.png ",
    ],
)
def test_malformed_keys_name_no_customer(key: str) -> None:
    assert parse_receipt_key(key) is None
    assert customer_of(key) is None


# -- the upload's policy -----------------------------------------------------------------


def test_the_policy_holds_the_key_the_content_type_and_the_exact_size() -> None:
    key = receipt_key("c", RECEIPT_ID, "image/png")

    assert post_conditions(key, "image/png", 999) == [
        {"key": key},
        {"Content-Type": "image/png"},
        ["content-length-range", 999, 999],
    ]


# -- the landed object -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "content_type"),
    [(JPEG, "image/jpeg"), (PNG, "image/png"), (PDF, "application/pdf")],
)
def test_each_type_is_told_by_its_first_bytes(head: bytes, content_type: str) -> None:
    assert sniff(head) == content_type
    assert sniff(head[:SNIFF_BYTES]) == content_type


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\xff\xd8",  # a JPEG cut short
        b"\x89PNG\r\n\x1a",  # a PNG signature cut short
        b"%PDF",
        b"GIF89a",
        b"<html>",
        b" %PDF-1.7",
        b"\x89png\r\n\x1a\n",
    ],
)
def test_anything_else_is_no_accepted_type(head: bytes) -> None:
    assert sniff(head) is None


def test_sniffing_needs_eight_bytes() -> None:
    assert SNIFF_BYTES == 8


@pytest.mark.parametrize(
    ("head", "content_type"),
    [(JPEG, "image/jpeg"), (PNG, "image/png"), (PDF, "application/pdf")],
)
def test_bytes_of_the_declared_type_and_size_are_valid(head: bytes, content_type: str) -> None:
    judged = verdict(
        declared_type=content_type,
        declared_size=1234,
        head=head,
        uploaded_size=1234,
        stored_type=content_type,
    )

    assert judged.valid and judged.reason is None
    assert judged.status == "valid"


def test_bytes_of_another_type_are_invalid_with_both_named() -> None:
    judged = verdict(declared_type="application/pdf", declared_size=99, head=PNG, uploaded_size=99)

    assert not judged.valid
    assert judged.status == "invalid"
    assert judged.reason == "PNG bytes, declared application/pdf"


@pytest.mark.parametrize(
    ("head", "declared", "reason"),
    [
        (JPEG, "image/png", "JPEG bytes, declared image/png"),
        (PDF, "image/jpeg", "PDF bytes, declared image/jpeg"),
        (PNG, "image/jpeg", "PNG bytes, declared image/jpeg"),
        (b"GIF89a", "image/png", "unrecognised (not JPEG, PNG or PDF) bytes, declared image/png"),
        (b"", "image/png", "unrecognised (not JPEG, PNG or PDF) bytes, declared image/png"),
    ],
)
def test_every_type_mismatch_is_named(head: bytes, declared: str, reason: str) -> None:
    judged = verdict(declared_type=declared, declared_size=5, head=head, uploaded_size=5)

    assert judged.reason == reason


def test_another_size_is_invalid() -> None:
    judged = verdict(declared_type="image/png", declared_size=999, head=PNG, uploaded_size=1234)

    assert judged.reason == "uploaded 1234 bytes, declared 999"


def test_another_stored_content_type_is_invalid() -> None:
    judged = verdict(
        declared_type="image/png",
        declared_size=9,
        head=PNG,
        uploaded_size=9,
        stored_type="text/html",
    )

    assert judged.reason == "stored as text/html, declared image/png"
    # The content type's case is not a difference.
    assert verdict(
        declared_type="image/png",
        declared_size=9,
        head=PNG,
        uploaded_size=9,
        stored_type="IMAGE/PNG",
    ).valid


def test_every_mismatch_is_named_at_once() -> None:
    judged = verdict(
        declared_type="application/pdf",
        declared_size=999,
        head=PNG,
        uploaded_size=1234,
        stored_type="image/png",
    )

    assert judged.reason == (
        "PNG bytes, declared application/pdf; uploaded 1234 bytes, declared 999; "
        "stored as image/png, declared application/pdf"
    )
