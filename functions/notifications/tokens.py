"""Unsubscribe tokens: who may opt out, signed, so the link is its own authorisation.

A marketing message carries ``UNSUBSCRIBE_URL?token=<token>``; mail clients POST to it
without any key (RFC 8058), so the token alone must say which customer and channel it
opts out, and nobody may forge one for someone else. It is

    v1.<customer id, base64url>.<channel>.<HMAC-SHA256, base64url>

over ``v1``, the channel and the customer id, with the key held in Secrets Manager. Nothing
is stored per token: any token ever sent keeps working for as long as the key does (the
law wants an opt-out honoured long after the message), and a new key version starts a
new prefix. The text is URL-safe as is (no padding, no ``+`` or ``/``), and verification
compares digests in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import Final, get_args

from functions.core.vocabulary import NotificationChannel
from functions.notifications.errors import NotificationsError

__all__ = ["MAX_TOKEN_LENGTH", "VERSION", "BadToken", "sign", "verify"]

VERSION: Final = "v1"
# A 128-character customer id makes a token of about 230 characters; anything much longer
# was not made here, and is refused before any decoding work.
MAX_TOKEN_LENGTH: Final = 512
_CHANNELS: Final[frozenset[str]] = frozenset(get_args(NotificationChannel))
_SEPARATOR: Final = "."
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
_DIGEST_BYTES: Final = hashlib.sha256().digest_size


class BadToken(NotificationsError):
    """The token was not made by us: missing, malformed, tampered with, or signed with
    another key. The message says which, for the logs; the customer sees one page."""

    code = "invalid_token"


def sign(key: bytes, customer_id: str, channel: NotificationChannel) -> str:
    """The token that lets whoever holds it opt `customer_id` out of `channel` marketing."""
    if not key:
        raise ValueError("an unsubscribe key cannot be empty")
    if channel not in _CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    if not customer_id:
        raise ValueError("a token names a customer")
    subject = _encode(customer_id.encode("utf-8"))
    return _SEPARATOR.join((VERSION, subject, channel, _encode(_mac(key, subject, channel))))


def verify(key: bytes, token: str) -> tuple[str, NotificationChannel]:
    """(customer id, channel) of a token `sign` made with `key`; `BadToken` otherwise."""
    if not token:
        raise BadToken("no token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise BadToken("token too long", {"length": len(token)})
    parts = token.split(_SEPARATOR)
    if len(parts) != 4:
        raise BadToken("token is not four dot-separated parts")
    version, subject, channel, signature = parts
    if version != VERSION:
        raise BadToken("unknown token version")
    if channel not in _CHANNELS:
        raise BadToken("unknown channel")
    if not _BASE64URL.fullmatch(subject):
        raise BadToken("malformed customer part")
    given = _decode(signature)
    if given is None or len(given) != _DIGEST_BYTES:
        raise BadToken("malformed signature")
    # The signature first, in constant time: nothing about the rest is decoded, or
    # answered differently, for a token we did not sign.
    if not hmac.compare_digest(given, _mac(key, subject, channel)):
        raise BadToken("signature does not match")
    raw_id = _decode(subject)
    try:
        customer_id = raw_id.decode("utf-8") if raw_id else ""
    except UnicodeDecodeError:
        customer_id = ""
    if not customer_id:
        # Only a holder of the key could have made it; `sign` never does.
        raise BadToken("signed token names no customer")
    return customer_id, channel  # type: ignore[return-value]  # checked against _CHANNELS


def _mac(key: bytes, subject: str, channel: str) -> bytes:
    # The encoded parts, joined by a separator neither can contain: no two distinct
    # (channel, customer) pairs sign the same bytes.
    message = _SEPARATOR.join((VERSION, subject, channel)).encode("ascii")
    return hmac.new(key, message, hashlib.sha256).digest()


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode(text: str) -> bytes | None:
    """base64url without padding; None for anything else (including ``+``, ``/``, ``=``)."""
    if not _BASE64URL.fullmatch(text):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
