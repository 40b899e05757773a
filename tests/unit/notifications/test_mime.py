"""The raw email as a mail client reads it back: structure, headers, one-click unsubscribe."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from functions.notifications.mime import build_raw_email
from functions.notifications.rendering import RenderedEmail, render_email
from tests.unit.notifications.content_samples import UNSUBSCRIBE_URL, message

SENDER = "Rebates <noreply@mail.example.com>"
TO = "taro.yamada@example.jp"
SENT_AT = datetime(2027, 3, 8, 2, 44, 19, tzinfo=UTC)


def build(
    template: str,
    *,
    unsubscribe: bool | None = None,
    url: str = UNSUBSCRIBE_URL,
    message_id: str = "ntf_01MGHGBYXRKEP5VFMFZWK45V3N",
) -> tuple[RenderedEmail, bytes]:
    built = message(template)
    marketing = built.purpose == "marketing" if unsubscribe is None else unsubscribe
    rendered = render_email(built, "ja", unsubscribe_url=url if marketing else None)
    raw = build_raw_email(
        rendered,
        sender=SENDER,
        to=TO,
        message_id=message_id,
        list_unsubscribe_url=url if marketing else None,
        sent_at=SENT_AT,
    )
    return rendered, raw


def read(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def header_lines(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return head.split("\r\n")


def test_a_code_email_is_text_or_html_with_its_qr_by_content_id() -> None:
    rendered, raw = build("code_issued")
    parsed = read(raw)
    assert parsed.get_content_type() == "multipart/alternative"
    text, related = parsed.iter_parts()
    assert text.get_content_type() == "text/plain"
    # Text travels with CRLF line ends, MIME's canonical form.
    assert text.get_content().replace("\r\n", "\n") == rendered.text
    assert related.get_content_type() == "multipart/related"
    html, image = related.iter_parts()
    assert html.get_content_type() == "text/html"
    assert html.get_content().replace("\r\n", "\n") == rendered.html
    assert image.get_content_type() == "image/png"
    assert image["Content-ID"] == f"<{rendered.images[0].content_id}>"
    assert image.get_content_disposition() == "inline"
    assert image.get_filename() == rendered.images[0].filename
    assert image.get_content() == rendered.images[0].png
    assert f'src="cid:{rendered.images[0].content_id}"' in html.get_content()


def test_an_email_without_images_is_a_plain_alternative() -> None:
    _, raw = build("claim_approved")
    parsed = read(raw)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert b"image/png" not in raw


def test_headers_are_7bit_with_the_subject_in_encoded_words() -> None:
    rendered, raw = build("cashback_available")
    assert raw.isascii()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    subject_line = next(line for line in header_lines(raw) if line.startswith("Subject:"))
    assert "=?utf-8?" in subject_line
    parsed = read(raw)
    assert parsed["Subject"] == rendered.subject
    assert parsed["From"] == SENDER and parsed["To"] == TO
    assert parsed["Message-ID"] == "<ntf_01MGHGBYXRKEP5VFMFZWK45V3N@mail.example.com>"
    assert parsed["Date"] == "Mon, 08 Mar 2027 02:44:19 +0000"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["MIME-Version"] == "1.0"


def test_marketing_mail_has_rfc8058_one_click_headers_unfolded() -> None:
    long_url = "https://api.example.com/v1/unsubscribe?token=v1." + "Ab0-_" * 40
    _, raw = build("offer_expiring", url=long_url)
    lines = header_lines(raw)
    assert f"List-Unsubscribe: <{long_url}>" in lines
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines
    parsed = read(raw)
    assert parsed["List-Unsubscribe"] == f"<{long_url}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert len(parsed.get_all("List-Unsubscribe") or []) == 1


def test_transactional_mail_has_no_unsubscribe_headers() -> None:
    _, raw = build("claim_received")
    assert read(raw)["List-Unsubscribe"] is None
    assert b"List-Unsubscribe" not in raw


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com/v1/unsubscribe?token=x",  # RFC 8058 wants https
        "mailto:unsubscribe@example.com",
        "https://api.example.com/v1/unsubscribe?token=x y",
        "https://api.example.com/v1/unsubscribe?token=x>\r\nBcc: victim@example.com",
        "https://例え.jp/unsubscribe",
        "https://api.example.com/" + "x" * 900,
    ],
)
def test_an_unusable_unsubscribe_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"unsubscribe|List-Unsubscribe"):
        build("offer_expiring", url=url)


def test_plain_http_is_allowed_for_the_local_cloud_only() -> None:
    _, raw = build("offer_expiring", url="http://127.0.0.1:3000/v1/unsubscribe?token=x")
    assert "List-Unsubscribe: <http://127.0.0.1:3000/v1/unsubscribe?token=x>" in header_lines(raw)


def test_a_message_id_is_kept_when_already_whole_and_refused_when_unusable() -> None:
    _, raw = build("claim_approved", message_id="<abc.123@notifications.example.com>")
    assert read(raw)["Message-ID"] == "<abc.123@notifications.example.com>"
    for bad in ("has space", "two@@ats", "<no-right-side>", ""):
        with pytest.raises(ValueError, match="Message-ID"):
            build("claim_approved", message_id=bad)


def test_header_injection_through_an_address_is_refused() -> None:
    rendered = render_email(message("claim_approved"), "en", unsubscribe_url=None)
    with pytest.raises(ValueError):
        build_raw_email(
            rendered,
            sender=SENDER,
            to="taro@example.jp\r\nBcc: victim@example.com",
            message_id="ntf_1",
            list_unsubscribe_url=None,
        )


def test_the_same_email_twice_is_the_same_message_id() -> None:
    _, first = build("claim_approved")
    _, second = build("claim_approved")
    assert read(first)["Message-ID"] == read(second)["Message-ID"]
