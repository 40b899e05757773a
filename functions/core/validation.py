"""Turn pydantic validation errors into the `{path, message}` pairs users read, and read
request bodies as strict JSON.

The same path notation (`reward.tiered[1].amount`) is used for API request errors and
campaign file errors, so storefront engineers and marketers see one style.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_NUMBER_DIGITS",
    "MAX_PATH_PART",
    "MAX_REPORTED_ERRORS",
    "MalformedJson",
    "describe_errors",
    "explained_errors",
    "format_location",
    "parse_json_document",
]

# No request body of this API nests deeper than a handful of levels. The limit stops a
# body from reaching code that recurses over it (pydantic, the encoders, the
# Idempotency-Key fingerprint) at a depth where Python would run out of stack.
MAX_JSON_DEPTH: Final = 32
# Python refuses to turn longer digit strings into an int (CVE-2020-10735); no amount or
# count here comes anywhere near it, so anything longer is malformed rather than large.
MAX_NUMBER_DIGITS: Final = 4300
# An answer repeats the paths it complains about: one per unknown field of a body with
# thousands of them, or a megabyte-long key, would make a response larger than Lambda
# may return (6 MB), and API Gateway would answer a 502 instead of the 400.
MAX_REPORTED_ERRORS: Final = 20
MAX_PATH_PART: Final = 64


class MalformedJson(ValueError):
    """A body that is not one well-formed JSON document; the message says why."""


def format_location(location: Sequence[int | str]) -> str:
    """`("reward", "tiered", 1, "amount")` → `reward.tiered[1].amount`."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "$"


def explained_errors(errors: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """pydantic `errors()` entries without those another entry already explains.

    pydantic counts only the items that validated, so a one-item list whose item is
    wrong is also "too short": the item's own error says what is wrong.
    """
    errors = list(errors)
    failed_inside = {
        tuple(error.get("loc", ()))[:end]
        for error in errors
        for end in range(len(tuple(error.get("loc", ()))))
    }
    return [
        error
        for error in errors
        if not (error.get("type") == "too_short" and tuple(error.get("loc", ())) in failed_inside)
    ]


def describe_errors(
    errors: Iterable[Mapping[str, Any]], *, limit: int | None = None
) -> list[dict[str, str]]:
    """pydantic `errors()` entries → `[{"path", "message"}]`, in input order, the first
    `limit` of them, with over-long keys in paths cut short. Pass `explained_errors`
    first to leave out what another error already explains."""
    described: list[dict[str, str]] = []
    for error in errors:
        if limit is not None and len(described) >= limit:
            break
        location = tuple(_shortened(part) for part in error.get("loc", ()))
        described.append({"path": format_location(location), "message": str(error.get("msg", ""))})
    return described


def _shortened(part: int | str) -> int | str:
    if isinstance(part, str) and len(part) > MAX_PATH_PART:
        return part[: MAX_PATH_PART - 1] + "…"
    return part


def parse_json_document(text: str) -> Any:
    """`text` as JSON, refusing what `json.loads` would let through but no client means.

    Refused (`MalformedJson`): anything `json.loads` refuses; NaN and Infinity literals and
    numbers too large for a float (not JSON, RFC 8259 §6); integers of more than
    `MAX_NUMBER_DIGITS` digits; a key twice in one object (parsers disagree on which one
    wins, so two systems could read two different requests); strings with a lone UTF-16
    surrogate such as ``"\\ud800"`` (no UTF-8 for them: storing, logging or hashing them
    would fail later); nesting deeper than `MAX_JSON_DEPTH`.
    """
    try:
        value = json.loads(
            text,
            parse_constant=_no_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
            object_pairs_hook=_unique_keys,
        )
    except MalformedJson:
        raise
    except json.JSONDecodeError as error:
        raise MalformedJson(
            f"not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    except RecursionError:
        raise MalformedJson(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as error:
        raise MalformedJson(f"not valid JSON: {error}") from None
    _check_tree(value)
    return value


def _no_constant(literal: str) -> Any:
    raise MalformedJson(f"{literal} is not a JSON number")


def _finite_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise MalformedJson("a number is too large")
    return number


def _bounded_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise MalformedJson(f"a number has more than {MAX_NUMBER_DIGITS} digits")
    return int(literal)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise MalformedJson(f"the key {str(_shortened(key))!r} appears twice in an object")
            seen.add(key)
    return document


def _check_tree(value: Any) -> None:
    # Iterative: the point is to stay clear of the recursion limit.
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, str):
            _check_text(node)
        elif isinstance(node, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise MalformedJson(f"nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(node, dict):
                for key in node:
                    _check_text(key)
            children = node.values() if isinstance(node, dict) else node
            pending.extend((child, depth + 1) for child in children)


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedJson("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)") from None
