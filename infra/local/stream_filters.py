"""Lambda event filtering (an event source mapping's FilterCriteria) for the local cloud.

moto 5.2.5 stores a mapping's FilterCriteria but never applies it: a DynamoDB stream mapping
invokes its function on every write of the table. Locally that would run the offers outbox
100,000 times for one bulk code generation, and hand functions records AWS never sends
them, so what passes here must be what passes in AWS. `matches` decides it for one record.

The grammar is the part of EventBridge's pattern language that Lambda filters accept:

- A pattern is a JSON object whose keys name fields of the record; an object value descends
  into a nested field. Every key must match (AND); the filters of a mapping are OR'ed, and a
  mapping without filters lets everything through.
- A leaf is a non-empty list of matchers, any of which may match (OR):
  ``"text"``, a number, ``true``/``false`` or ``null`` (an equal value; numbers by value, and
  a string never equals a number), ``{"prefix": "..."}``, ``{"suffix": "..."}``,
  ``{"equals-ignore-case": "..."}``, ``{"exists": true|false}``, ``{"numeric": [">", 0,
  "<=", 5]}`` and ``{"anything-but": ...}`` (a value, a list of values, or a ``prefix``,
  ``suffix`` or ``equals-ignore-case`` object; it needs the field to be present).
- ``exists`` is about leaves: ``true`` needs a value that is not an object at that path,
  ``false`` matches exactly when there is none.
- When the record holds an array, the pattern matches if any of its elements does.

Anything else (an unknown or misspelt operator, a scalar where a list belongs, ``$or``,
``wildcard``, ``cidr``) raises `FilterPatternError` as soon as the pattern is read, however
the record looks: AWS refuses such a mapping, and a matcher that silently let records
through would hide the mistake locally.

Records are matched as given: for DynamoDB streams that is the record Lambda delivers
(``eventName``, ``dynamodb.Keys``, ``dynamodb.NewImage``... in DynamoDB JSON). Lambda also
decodes an SQS ``body`` or a Kinesis ``data`` before filtering; callers that filter those
decode first.
"""

from __future__ import annotations

import functools
import json
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["FilterPatternError", "matches", "validate_filter_criteria"]

# A matcher is given a field's value, or _MISSING when the record has no such field.
_Matcher = Callable[[Any], bool]
_MISSING: Final = object()

_NUMERIC_OPERATORS: Final[dict[str, Callable[[float, float], bool]]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_STRING_OPERATORS: Final[dict[str, Callable[[str, str], bool]]] = {
    "prefix": str.startswith,
    "suffix": str.endswith,
    "equals-ignore-case": lambda value, expected: value.casefold() == expected.casefold(),
}


class FilterPatternError(ValueError):
    """A filter pattern Lambda would refuse, or that uses what this module does not know."""


def matches(filter_criteria: Mapping[str, Any] | None, record: Mapping[str, Any]) -> bool:
    """Whether Lambda would deliver `record` through a mapping with `filter_criteria`.

    `filter_criteria` is the mapping's ``{"Filters": [{"Pattern": "<JSON text>"}, ...]}``
    (as CreateEventSourceMapping takes it and moto stores it); None or no filters: True.
    Raises `FilterPatternError` for a pattern outside the grammar, whatever the record.
    """
    patterns = _patterns(filter_criteria)
    return any(pattern(record) for pattern in patterns)


def validate_filter_criteria(filter_criteria: Mapping[str, Any] | None) -> None:
    """Raise `FilterPatternError` unless every pattern is one `matches` understands."""
    _patterns(filter_criteria)


def _patterns(filter_criteria: Mapping[str, Any] | None) -> list[_Matcher]:
    if filter_criteria is None:
        return [lambda _: True]
    filters = filter_criteria.get("Filters")
    if filters is None or filters == []:
        return [lambda _: True]
    if not isinstance(filters, list):
        raise FilterPatternError(f"FilterCriteria.Filters must be a list, got {filters!r}")
    patterns = []
    for position, entry in enumerate(filters):
        text = entry.get("Pattern") if isinstance(entry, Mapping) else None
        if not isinstance(text, str):
            raise FilterPatternError(f"Filters[{position}] has no Pattern string: {entry!r}")
        patterns.append(_compiled(text))
    return patterns


@functools.lru_cache(maxsize=256)
def _compiled(text: str) -> _Matcher:
    """The matcher of one pattern (JSON text); cached, as every write of a table asks."""
    try:
        pattern = json.loads(text)
    except json.JSONDecodeError as error:
        raise FilterPatternError(f"pattern is not JSON ({error}): {text!r}") from None
    if not isinstance(pattern, dict):
        raise FilterPatternError(f"a pattern is a JSON object, got {text!r}")
    return _object(pattern, "$")


def _field(pattern: Any, path: str) -> _Matcher:
    if isinstance(pattern, dict):
        return _object(pattern, path)
    if isinstance(pattern, list):
        return _leaf(pattern, path)
    raise FilterPatternError(
        f"{path}: expected an object or a list of matchers, got {json.dumps(pattern)}"
    )


def _object(pattern: dict[str, Any], path: str) -> _Matcher:
    if not pattern:
        raise FilterPatternError(f"{path}: an empty object matches nothing in particular")
    fields = [(key, _field(value, f"{path}.{key}")) for key, value in pattern.items()]

    def fields_match(obj: Mapping[str, Any]) -> bool:
        return all(field(obj.get(key, _MISSING)) for key, field in fields)

    def match(value: Any) -> bool:
        if isinstance(value, Mapping):
            return fields_match(value)
        if isinstance(value, list):
            objects = [element for element in value if isinstance(element, Mapping)]
            if objects:
                return any(fields_match(obj) for obj in objects)
        # An absent field (or one that is no object) has no sub-fields: only
        # `exists: false` can match under it.
        return fields_match({})

    return match


def _leaf(pattern: list[Any], path: str) -> _Matcher:
    if not pattern:
        raise FilterPatternError(f"{path}: a list of matchers cannot be empty")
    alternatives = [_matcher(item, path) for item in pattern]

    def any_matches(candidate: Any) -> bool:
        return any(alternative(candidate) for alternative in alternatives)

    def match(value: Any) -> bool:
        if isinstance(value, list):
            candidates = [element for element in value if not isinstance(element, Mapping)]
            return any(any_matches(c) for c in candidates) if candidates else any_matches(_MISSING)
        # An object is no leaf: at this path there is no value.
        return any_matches(_MISSING if isinstance(value, Mapping) else value)

    return match


def _matcher(item: Any, path: str) -> _Matcher:
    if not isinstance(item, dict):
        expected = _scalar(item, path)
        return lambda value: value is not _MISSING and _equal(expected, value)
    if len(item) != 1:
        raise FilterPatternError(f"{path}: a matcher has exactly one operator, got {item}")
    ((name, argument),) = item.items()
    if name == "exists":
        if not isinstance(argument, bool):
            raise FilterPatternError(f"{path}: exists takes true or false, got {argument!r}")
        if argument:
            return lambda value: value is not _MISSING
        return lambda value: value is _MISSING
    if name in _STRING_OPERATORS:
        return _string_matcher(name, argument, path)
    if name == "anything-but":
        excluded = _excluded(argument, path)
        return lambda value: value is not _MISSING and not excluded(value)
    if name == "numeric":
        return _numeric(argument, path)
    known = ["exists", "anything-but", "numeric", *_STRING_OPERATORS]
    raise FilterPatternError(
        f"{path}: unknown operator {name!r} (this local filter knows {', '.join(known)})"
    )


def _string_matcher(name: str, argument: Any, path: str) -> _Matcher:
    if not isinstance(argument, str):
        raise FilterPatternError(f"{path}: {name} takes a string, got {argument!r}")
    compare = _STRING_OPERATORS[name]
    return lambda value: isinstance(value, str) and compare(value, argument)


def _excluded(argument: Any, path: str) -> _Matcher:
    """What `anything-but` refuses: values, or one string operator."""
    where = f"{path} anything-but"
    if isinstance(argument, dict):
        if len(argument) != 1 or next(iter(argument)) not in _STRING_OPERATORS:
            raise FilterPatternError(
                f"{where}: takes a value, a list of values or one of "
                f"{sorted(_STRING_OPERATORS)}, got {argument}"
            )
        ((name, text),) = argument.items()
        return _string_matcher(name, text, where)
    values = argument if isinstance(argument, list) else [argument]
    if not values:
        raise FilterPatternError(f"{where}: the list of values cannot be empty")
    refused = [_scalar(value, where) for value in values]
    return lambda value: any(_equal(expected, value) for expected in refused)


def _numeric(argument: Any, path: str) -> _Matcher:
    if not isinstance(argument, list) or len(argument) not in (2, 4):
        raise _numeric_error(argument, path)
    comparisons: list[tuple[Callable[[float, float], bool], float]] = []
    for name, bound in zip(argument[::2], argument[1::2], strict=True):
        if name not in _NUMERIC_OPERATORS or not _is_number(bound):
            raise _numeric_error(argument, path)
        comparisons.append((_NUMERIC_OPERATORS[name], bound))
    return lambda value: (
        _is_number(value) and all(test(value, bound) for test, bound in comparisons)
    )


def _numeric_error(argument: Any, path: str) -> FilterPatternError:
    return FilterPatternError(
        f"{path}: numeric takes one or two (operator, number) pairs with operators "
        f"{sorted(_NUMERIC_OPERATORS)}, got {argument!r}"
    )


def _scalar(value: Any, path: str) -> Any:
    if value is None or isinstance(value, str | bool) or _is_number(value):
        return value
    raise FilterPatternError(f"{path}: expected a string, number, boolean or null, got {value!r}")


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but JSON true is no number; NaN equals nothing.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not math.isnan(value)


def _equal(expected: Any, value: Any) -> bool:
    if expected is None or isinstance(expected, bool):
        return value is expected
    if isinstance(expected, str):
        return isinstance(value, str) and value == expected
    return _is_number(value) and value == expected
