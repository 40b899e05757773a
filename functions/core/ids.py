"""Identifiers: prefixed ULIDs, e.g. ``clm_01JF6Z3Q8W0X9V2KQ4T7M5N8RB``.

A ULID is a 48-bit millisecond timestamp followed by 80 random bits, written as 26
Crockford base32 characters, so ids sort by creation time as plain text (handy for
DynamoDB sort keys and for reading logs). The prefix says what an id names at a glance.
Every id is a valid Step Functions execution name (at most 80 characters of
``[A-Za-z0-9_-]``), which is how a claim's execution is found by the claim id.
"""

from __future__ import annotations

import re
import secrets
import threading
from datetime import UTC, datetime, timedelta
from typing import Final

from functions.core.clock import utc_now

__all__ = ["id_timestamp", "is_valid_id", "new_id"]

_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE: Final = {char: value for value, char in enumerate(_ALPHABET)}
_ULID_LENGTH: Final = 26
_RANDOM_BITS: Final = 80
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)

# Short lower-case prefixes keep ids readable and far inside the 80-character limit.
_PREFIX: Final = re.compile(r"[a-z][a-z0-9]{0,15}", re.ASCII)
# 26 characters encode 130 bits for a 128-bit value, so the first is at most 7.
_ULID: Final = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", re.ASCII)

_lock = threading.Lock()
_last_ms = -1
_last_random = 0


def new_id(prefix: str = "") -> str:
    """A new unique, time-sortable id: ``new_id("clm")`` -> ``"clm_01JF..."``.

    The timestamp is ``utc_now()``, so ids follow the time handlers see (frozen or
    offset clocks included). Ids made in the same millisecond by one process still sort
    in the order they were made.
    """
    if prefix and not _PREFIX.fullmatch(prefix):
        raise ValueError(f"an id prefix is 1-16 lower-case letters or digits, got {prefix!r}")
    body = _encode(*_next_parts())
    return f"{prefix}_{body}" if prefix else body


def _next_parts() -> tuple[int, int]:
    global _last_ms, _last_random
    now = utc_now()
    ms = (now - _EPOCH) // _ONE_MS
    if not 0 <= ms < 1 << 48:
        raise ValueError(f"the clock reads {now.isoformat()}, outside what an id can encode")
    with _lock:
        if ms == _last_ms:
            # Same millisecond: step forward from the previous random part instead of
            # drawing afresh, so order is kept. The step itself is random, so an id still
            # does not give away its neighbours.
            random_part = _last_random + 1 + secrets.randbits(32)
            if random_part >= 1 << _RANDOM_BITS:
                # Astronomically rare; borrowing the next millisecond keeps the order.
                ms, random_part = ms + 1, secrets.randbits(_RANDOM_BITS)
        else:
            random_part = secrets.randbits(_RANDOM_BITS)
        _last_ms, _last_random = ms, random_part
    return ms, random_part


def _encode(ms: int, random_part: int) -> str:
    value = (ms << _RANDOM_BITS) | random_part
    chars = []
    for _ in range(_ULID_LENGTH):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def _body(text: str, prefix: str) -> str | None:
    if not isinstance(text, str):
        return None
    if prefix:
        head, sep, body = text.partition("_")
        if head != prefix or not sep:
            return None
    else:
        body = text
    return body if _ULID.fullmatch(body) else None


def is_valid_id(text: str, prefix: str = "") -> bool:
    """Whether ``text`` is an id ``new_id(prefix)`` could have made (so, case-sensitive)."""
    return _body(text, prefix) is not None


def id_timestamp(text: str, prefix: str = "") -> datetime:
    """The creation instant (to the millisecond) encoded in an id."""
    body = _body(text, prefix)
    if body is None:
        raise ValueError(f"{text!r} is not an id with prefix {prefix!r}")
    ms = 0
    for char in body[:10]:
        ms = ms * 32 + _DECODE[char]
    return _EPOCH + ms * _ONE_MS
