"""How many SMS segments a text takes, and in which encoding (3GPP TS 23.038 / 23.040).

- GSM-7 when every character is in the GSM 03.38 basic table or its extension table; an
  extension character (``€ [ ] { } ^ ~ | \\`` and form feed) is sent as an escape plus
  the character, so it counts two septets. One segment holds 160 septets; a longer text
  is split into segments of 153 (the user data header takes the rest), and an escape pair
  is never split across two segments.
- UCS-2 otherwise (any Japanese text, emoji, curly quotes), counted in UTF-16 code units:
  70 in one segment, 67 per segment when split; a surrogate pair (an emoji) stays whole.

Carriers bill per segment, and a multipart SMS may arrive out of order or in part on old
handsets, so templates aim for one segment.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["Encoding", "fits_gsm7", "gsm_friendly", "segments"]

Encoding = Literal["GSM-7", "UCS-2"]

# The basic table less the escape (0x1B), which is not a character of its own.
_GSM_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION: Final = frozenset("\f^{}\\[~]|€")

_SINGLE: Final = {"GSM-7": 160, "UCS-2": 70}
_PART: Final = {"GSM-7": 153, "UCS-2": 67}

# Typography that has a plain GSM-7 equivalent: Babel puts a narrow no-break space before
# "PM", and campaign names copied from a word processor bring curly quotes. Replacing
# them keeps an English SMS in GSM-7 (160 characters a segment instead of 70).
_GSM_EQUIVALENTS: Final = str.maketrans(
    {
        "\u00a0": " ",
        "\u2007": " ",
        "\u2009": " ",
        "\u202f": " ",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
    }
)


def fits_gsm7(text: str) -> bool:
    """True when every character of `text` can be sent in GSM-7."""
    return all(char in _GSM_BASIC or char in _GSM_EXTENSION for char in text)


def gsm_friendly(text: str) -> str:
    """`text` with typographic spaces, quotes, dashes and ellipses made plain, when that
    makes it fit GSM-7; otherwise unchanged (UCS-2 carries the real characters)."""
    plain = text.translate(_GSM_EQUIVALENTS)
    return plain if fits_gsm7(plain) else text


def segments(text: str) -> tuple[Encoding, int]:
    """The encoding an SMS of `text` is sent in and how many segments it takes.

    An empty text still counts one segment: it would still be one message.
    """
    if fits_gsm7(text):
        units = [2 if char in _GSM_EXTENSION else 1 for char in text]
        encoding: Encoding = "GSM-7"
    else:
        units = [2 if ord(char) > 0xFFFF else 1 for char in text]
        encoding = "UCS-2"
    if sum(units) <= _SINGLE[encoding]:
        return encoding, 1
    return encoding, _pack(units, _PART[encoding])


def _pack(units: list[int], capacity: int) -> int:
    """Segments needed when each character (of `units` septets or code units) must sit
    whole in one segment of `capacity`."""
    count, used = 1, 0
    for size in units:
        if used + size > capacity:
            count, used = count + 1, 0
        used += size
    return count
