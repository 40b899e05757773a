"""The attribute types of the Rebates models, stricter than PynamoDB's own.

`MoneyAttribute` (a map ``{amount: N, currency: S}`` read back as `Money`),
`InstantAttribute` (UTC, a fixed-width RFC 3339 string ending in ``Z``, so that string
order is time order), `IntegerAttribute` (counters and minor units, never fractional),
`TypedMap` (typed map attributes) and `optional` (a nullable attribute typed ``T | None``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from pynamodb.attributes import Attribute, MapAttribute
from pynamodb.constants import MAP, NUMBER, STRING

from functions.core.clock import instant_key
from functions.core.money import Money

T = TypeVar("T")


def optional(attribute: Attribute[T]) -> Attribute[T | None]:
    """Make `attribute` nullable and say so to the type checker.

    PynamoDB types ``UnicodeAttribute(null=True)`` as ``str``; wrapping it types the value
    as ``str | None``, so code reading an optional field has to handle its absence.
    """
    attribute.null = True
    return cast(Attribute[T | None], attribute)


class InstantAttribute(Attribute[datetime]):
    """An instant, stored in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.

    Always six fractional digits: a variable width would sort ``...:00.5Z`` before
    ``...:00Z`` and break range conditions and sort keys. Naive datetimes are refused
    rather than guessed to be UTC (the contract: instants carry an offset).
    """

    attr_type = STRING

    def serialize(self, value: datetime) -> str:
        return instant_key(value)

    def deserialize(self, value: str) -> datetime:
        return _parse_stored_instant(value)


_STORED_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def _parse_stored_instant(value: str) -> datetime:
    if not _STORED_INSTANT.fullmatch(value):
        raise ValueError(f"stored instant {value!r} is not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    return datetime.fromisoformat(value)


class IntegerAttribute(Attribute[int]):
    """A whole number (counters, minor-unit amounts, versions), read back as `int`.

    PynamoDB's NumberAttribute is typed ``float`` and reads ``"1.5"`` back as a float;
    counters and money must never be fractional, so both ways are checked here.
    """

    attr_type = NUMBER

    def serialize(self, value: int) -> str:
        if type(value) is not int:
            raise TypeError(f"expected an int, got {type(value).__name__} {value!r}")
        return str(value)

    def deserialize(self, value: str) -> int:
        if not _INTEGER.fullmatch(value):
            raise ValueError(f"stored number {value!r} is not an integer")
        return int(value)


_INTEGER: Final = re.compile(r"-?\d+")


class TypedMap(MapAttribute[str, Any]):
    """Base of the typed map attributes (a subclass declares its fields as attributes).

    PynamoDB leaves ``MapAttribute.__init__`` unannotated, which strict mypy refuses to
    call; this only declares its signature for the type checker.
    """

    if TYPE_CHECKING:

        def __init__(self, **attributes: Any) -> None: ...


class MoneyAttribute(Attribute[Money]):
    """`Money` stored as the map ``{"amount": N, "currency": S}``; the amount is an integer."""

    attr_type = MAP

    def serialize(self, value: Money) -> dict[str, dict[str, str]]:
        if not isinstance(value, Money):
            raise TypeError(f"expected Money, got {type(value).__name__}")
        amount = value.amount
        # bool is an int subclass and a float may slip past a lax model: neither is money.
        if type(amount) is not int:
            raise TypeError(f"money amount must be an int, got {type(amount).__name__}")
        return {"amount": {NUMBER: str(amount)}, "currency": {STRING: value.currency}}

    # PynamoDB serialises a MAP attribute's update and condition values only when they
    # are dicts (pynamodb.expressions.operand.Value); a Money is handed over pre-serialised
    # so that ``Claim.reward.set(money)`` and ``Claim.reward == money`` work.
    def set(self, value: Any) -> Any:
        return super().set(self._operand(value))

    def __eq__(self, other: Any) -> Any:
        return super().__eq__(self._operand(other))

    def __ne__(self, other: Any) -> Any:
        return super().__ne__(self._operand(other))

    # Unhashable, like every PynamoDB attribute (their __eq__ builds a condition).
    __hash__ = None  # type: ignore[assignment]

    def _operand(self, value: Any) -> Any:
        return {MAP: self.serialize(value)} if isinstance(value, Money) else value

    def deserialize(self, value: dict[str, dict[str, str]]) -> Money:
        try:
            raw_amount = value["amount"][NUMBER]
            currency = value["currency"][STRING]
        except (KeyError, TypeError) as error:
            raise ValueError(f"stored money {value!r} is not {{amount: N, currency: S}}") from error
        if not _INTEGER.fullmatch(raw_amount):
            raise ValueError(f"stored money amount {raw_amount!r} is not an integer")
        return Money(amount=int(raw_amount), currency=currency)
