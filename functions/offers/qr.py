"""QR codes for in-store offer codes: a scanner-friendly payload and an inline SVG.

Payload: ``REBATES1:<CODE>``, e.g. ``REBATES1:TRAIL-9XK4...``.

- Not a URL. A till's barcode scanner types what it reads into the POS like a keyboard;
  it needs the code, not a web address. A URL would also make a customer's phone camera
  open a browser on the code (handing a bearer token to whatever page that is), tie every
  printed code to one domain forever, and, being lower-case, force byte mode.
- Upper-case letters, digits, ``-`` and ``:`` are all in QR's alphanumeric mode (5.5 bits
  a character instead of 8), so a 30-character payload fits a 25x25 symbol (version 2)
  at level Q, small enough to scan from a phone held at arm's length.
- ``REBATES1`` tells the POS the scan is ours (not a product barcode) and which payload
  version it is: a later ``REBATES2`` (say, signed for offline checks) can coexist.
- Nothing else: the offer, the expiry and the limits are looked up from the code at
  redemption, so the symbol carries no data a customer could alter or that could go stale.

Error correction: Q (25% of the symbol recoverable) rather than M (15%). Codes are shown
on phone screens (glare, cracks, low brightness) and on creased printouts; at this payload
size Q costs no extra symbol size over M for typical codes, and segno may raise it to H
when H still fits the same version.

SVG: inline (no XML declaration, so it can sit inside HTML), with the SVG namespace (so
it is also a valid standalone image), a ``viewBox`` and no width/height (the page sizes
it; it scales without blurring), the 4-module quiet zone scanners need, and an explicit
white background so it still scans on a dark-mode page. ``<title>`` and ``<desc>`` name
the code, the offer and its expiry for screen readers. Output is deterministic: the same
arguments give the same bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from functions.campaigns.codes import parse_typed_code
from functions.core.clock import instant_key

__all__ = ["PAYLOAD_PREFIX", "QrCode", "qr_for_code"]

PAYLOAD_PREFIX: Final = "REBATES1:"
ERROR_CORRECTION: Final = "q"
# The quiet zone the QR specification requires around the symbol, in modules.
_BORDER: Final = 4


@dataclass(frozen=True)
class QrCode:
    payload: str
    svg: str


def payload_for(code: str) -> str:
    """``REBATES1:<CODE>``, the code upper-cased (and validated) as stored."""
    return PAYLOAD_PREFIX + parse_typed_code(code)


def qr_for_code(code: str, *, offer_id: str, expires_at: datetime | None) -> QrCode:
    """The QR payload and inline SVG for `code`, described with its offer and expiry."""
    payload = payload_for(code)
    if expires_at is not None and expires_at.utcoffset() is None:
        raise ValueError("expires_at must carry a UTC offset")
    # Imported on the first QR drawn: only in-store offers need one.
    import segno

    symbol = segno.make(payload, error=ERROR_CORRECTION, micro=False, boost_error=True)
    description = f"Offer {offer_id}"
    if expires_at is not None:
        description += f", valid until {instant_key(expires_at)[:19]}Z"
    buffer = io.BytesIO()
    symbol.save(
        buffer,
        kind="svg",
        xmldecl=False,
        svgns=True,
        omitsize=True,
        border=_BORDER,
        dark="#000",
        light="#fff",
        title=f"Offer code {payload[len(PAYLOAD_PREFIX) :]}",
        desc=description,
        svgclass="rebates-qr",
        lineclass=None,
        encoding="utf-8",
    )
    return QrCode(payload=payload, svg=buffer.getvalue().decode("utf-8"))
