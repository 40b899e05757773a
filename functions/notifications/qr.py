"""The QR code of an in-store offer code as a PNG, for an email's inline image.

The payload is the event's ``qrPayload`` exactly as offers made it (``REBATES1:<CODE>``),
so the till reads the same symbol from the email as from the storefront. A PNG rather
than offers' SVG: mail clients (Gmail, Outlook) do not display SVG. Drawn by segno in
pure Python, without Pillow, at the settings offers uses: level Q, boosted when free,
the 4-module quiet zone, black on white (it still scans on a dark-mode page).
"""

from __future__ import annotations

import io
from typing import Final

__all__ = ["qr_png"]

# Pixels per module: a version-2 symbol (25 modules + quiet zone) is 198 px wide, which
# the email shows at its natural size.
_SCALE: Final = 6
_BORDER: Final = 4


def qr_png(payload: str) -> bytes:
    """The PNG of a QR code carrying `payload`; the same payload gives the same bytes."""
    if not payload:
        raise ValueError("a QR code needs a payload")
    import segno  # only in-store codes need it

    symbol = segno.make(payload, error="q", micro=False, boost_error=True)
    buffer = io.BytesIO()
    symbol.save(buffer, kind="png", scale=_SCALE, border=_BORDER, dark="#000", light="#fff")
    return buffer.getvalue()
