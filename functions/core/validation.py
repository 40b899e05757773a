"""Turn pydantic validation errors into the `{path, message}` pairs users read.

The same path notation (`reward.tiered[1].amount`) is used for API request errors and
campaign file errors, so storefront engineers and marketers see one style.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def format_location(location: Sequence[int | str]) -> str:
    """`("reward", "tiered", 1, "amount")` → `reward.tiered[1].amount`."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "$"


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """pydantic `errors()` entries → `[{"path", "message"}]`, in input order."""
    described = []
    for error in errors:
        location = tuple(error.get("loc", ()))
        described.append({"path": format_location(location), "message": str(error.get("msg", ""))})
    return described
