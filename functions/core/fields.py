"""The storefront's ids as every API takes them (DESIGN "HTTP API").

Plain annotated strings in a module of their own, cheap to import: each API's request
models (`functions.offers.schemas`, `functions.wallet.schemas`) and path parameters name
them, on the cold-start path.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import StringConstraints

__all__ = ["MAX_CUSTOMER_ID_LENGTH", "PRINTABLE", "CustomerId", "ExternalId"]

# Printable: anything but the control characters (C0, DEL, C1) and the line and paragraph
# separators, which would break a log line or a header as a newline does; spaces, every
# script and symbols are printable. (A lone surrogate, which has no UTF-8 form to store,
# pydantic refuses as no string at all.) JSON Schema's and pydantic's regex both read it.
PRINTABLE: Final = r"^[^\u0000-\u001F\u007F-\u009F\u2028\u2029]*$"
MAX_CUSTOMER_ID_LENGTH: Final = 128
# A customer id is the storefront's own opaque string of 1-128 printable characters,
# compared exactly (DESIGN): never trimmed or folded, so "cust 1" and " cust 1" are two
# customers, as they are to the storefront.
CustomerId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_CUSTOMER_ID_LENGTH, pattern=PRINTABLE),
]
# Order, refund and store ids are the storefront's own opaque strings too.
ExternalId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=r"^\S+$")
]
