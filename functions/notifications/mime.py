"""A rendered email as the raw MIME message SES's SendEmail (Raw content) takes.

Structure: ``multipart/alternative`` of the text part and the HTML part; when the HTML
shows inline images, the HTML part is a ``multipart/related`` holding the HTML and each
PNG by ``Content-ID`` (RFC 2387). Images hang under the HTML alone, so a text-only
client neither shows them nor lists them as attachments.

Headers: ``Subject`` in UTF-8 as RFC 2047 encoded words; ``Message-ID`` built from the
given id, which names the message in our logs (SES may put its own in its place, so no
receiving system is relied on to recognise a resend by it);
``Auto-Submitted: auto-generated`` (RFC 3834: no vacation replies).
Marketing mail adds RFC 8058 one-click unsubscribe, ``List-Unsubscribe: <https://...>``
with ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``. RFC 8058 requires an HTTPS
URI; plain HTTP is let through for loopback hosts only, which is the local cloud.

Bodies are 7-bit safe (quoted-printable or base64, whichever is shorter), with CRLF line
ends, so no relay has to convert them.
"""

from __future__ import annotations

import re
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Final
from urllib.parse import urlsplit

from functions.core.clock import utc_now
from functions.notifications.rendering import RenderedEmail

__all__ = ["build_raw_email"]

# SMTP line ends; every body part 7-bit; headers folded at 78 characters where they can
# be, but never longer lines than RFC 5322 allows.
_POLICY: Final = policy.SMTP.clone(cte_type="7bit")
_ID_PART: Final = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
)
# The header is one unfolded line, and RFC 5322 lines stop at 998 characters.
_MAX_URL: Final = 900
_LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "::1"})


def build_raw_email(
    rendered: RenderedEmail,
    *,
    sender: str,
    to: str,
    message_id: str,
    list_unsubscribe_url: str | None,
    sent_at: datetime | None = None,
) -> bytes:
    """The raw bytes of the email from `sender` to `to`.

    `message_id` is an id unique to this message (a notification id): it becomes
    ``<message_id@sender-domain>``, or is used as it is when already ``<left@right>``.
    `list_unsubscribe_url` (marketing only) adds the one-click unsubscribe headers.
    `sent_at` is the Date header (now when not given).
    """
    message = EmailMessage(policy=_POLICY)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(sent_at or utc_now())
    message["Message-ID"] = _message_id(message_id, sender)
    message["Auto-Submitted"] = "auto-generated"

    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    if rendered.images:
        html_part = next(p for p in message.iter_parts() if p.get_content_type() == "text/html")
        for image in rendered.images:
            html_part.add_related(
                image.png,
                maintype="image",
                subtype="png",
                cid=f"<{image.content_id}>",
                disposition="inline",
                filename=image.filename,
            )
    raw = message.as_bytes()
    if list_unsubscribe_url is None:
        return raw
    # Written as they are rather than through the email package, which would turn a
    # URL longer than a line into RFC 2047 encoded words no mail client reads as a URL.
    one_click = (
        f"List-Unsubscribe: <{_unsubscribe_uri(list_unsubscribe_url)}>\r\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    )
    return one_click.encode("ascii") + raw


def _message_id(message_id: str, sender: str) -> str:
    if message_id.startswith("<") and message_id.endswith(">"):
        left, at, right = message_id[1:-1].partition("@")
    else:
        left, at, right = message_id, "@", _domain(sender)
    if not (at and _ID_PART.fullmatch(left) and _ID_PART.fullmatch(right)):
        raise ValueError(f"{message_id!r} cannot make a Message-ID (RFC 5322 msg-id)")
    return f"<{left}@{right}>"


def _domain(sender: str) -> str:
    from email.headerregistry import Address
    from email.utils import parseaddr

    address = parseaddr(sender)[1]
    domain = Address(addr_spec=address).domain if "@" in address else ""
    if not domain:
        raise ValueError(f"sender {sender!r} has no domain to build a Message-ID with")
    return domain.encode("idna").decode("ascii") if not domain.isascii() else domain


def _unsubscribe_uri(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        if len(url) > _MAX_URL or not url.isascii() or any(c in url for c in "<>\r\n\t "):
            raise ValueError(
                f"the unsubscribe URL must be ASCII, at most {_MAX_URL} characters, "
                "without spaces or angle brackets"
            )
        return url
    raise ValueError(f"List-Unsubscribe needs an https URL (RFC 8058), not {url!r}")
