"""The states a published campaign or offer is in, defined once for every layer.

Pure constants: the rules (`functions.campaigns.logic`, `functions.offers.logic`) and the
models both read them, and neither needs to import the other to agree on a spelling.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ACTIVE", "ARCHIVED"]

# Serving: codes issue and redeem, claims and purchases earn (within the window).
ACTIVE: Final = "active"
# The file was deleted or the offer dropped from a new version; in-flight work finishes.
ARCHIVED: Final = "archived"
