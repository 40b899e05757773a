"""Field types of a campaign file: text, ids and codes of a fixed shape, amounts in
minor units, percentages and rates; each refuses a wrong value with a message that says
what to write instead."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from functions.campaigns.codes import canonical_code
from functions.core.money import MAX_AMOUNT


def _text_only(value: object) -> object:
    # YAML reads unquoted 2027, 00123 or 1e3 as numbers; say so instead of pydantic's
    # bare "Input should be a valid string".
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise PydanticCustomError(
            "text_expected",
            "expected text, got the number {value}: put it in quotes",
            {"value": value},
        )
    return value


@dataclass(frozen=True)
class _Format:
    """Marker for a text field of fixed shape, with a message that says what is expected."""

    pattern: str
    expected: str
    # A code: read as a typed code is (`canonical_code`: NFKC, dashes, upper-case) and
    # checked and stored in that form, so the file's code is the one customers type.
    code: bool = False

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        checked = core_schema.no_info_after_validator_function(self._check, handler(source))
        return core_schema.no_info_before_validator_function(_text_only, checked)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = f"^{self.pattern}$"
        return json_schema

    def _check(self, value: str) -> str:
        checked = canonical_code(value) if self.code else value
        if re.fullmatch(self.pattern, checked, re.ASCII) is None:
            raise PydanticCustomError(
                "invalid_format",
                "'{value}' is not valid: {expected}",
                {"value": value, "expected": self.expected},
            )
        return checked


def _whole_minor_units(value: object) -> object:
    # The most likely mistake is writing major units ("12.5" dollars): name the rule.
    if isinstance(value, float | Decimal):
        raise PydanticCustomError(
            "minor_units",
            "amounts are whole numbers in the minor unit of the campaign currency "
            "(JPY 1500 is 1500, USD 15.00 is 1500), not {value}",
            {"value": str(value)},
        )
    return value


def _percentage_in(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise PydanticCustomError(
            "percentage", "a percentage is a number such as 10 or 12.5, not text"
        )
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PydanticCustomError("percentage", "a percentage must be a finite number")
        # repr is the shortest text that reads back as this float: what the file said.
        return Decimal(repr(value))
    return value


def _rate_in(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise PydanticCustomError("rate", "a rate is a number such as 0.04 (4 %), not text")
    if not (value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)):
        raise PydanticCustomError("rate", "a rate must be a finite number")
    # The likeliest slip is a percentage where a fraction is meant: name the rule.
    if value > 1:
        raise PydanticCustomError(
            "rate",
            "a rate is a fraction of at most 1 (4 % is 0.04), not {value}",
            {"value": str(value)},
        )
    return Decimal(repr(value)) if isinstance(value, float) else value


def _decimal_out(value: Decimal) -> int | float:
    # JSON has no decimal type: 10 stays 10 and 12.5 becomes the float 12.5, whose repr
    # (a few decimals, a small number: a percentage or a rate) reads back as exactly the
    # same Decimal.
    return int(value) if value == value.to_integral_value() else float(value)


Text = Annotated[StrictStr, BeforeValidator(_text_only), Field(min_length=1, max_length=100)]
CampaignId = Annotated[
    StrictStr, _Format(r"[a-z0-9-]{3,64}", "use 3 to 64 lower-case letters, digits or hyphens")
]
OfferId = Annotated[
    StrictStr, _Format(r"[A-Za-z0-9_-]{1,64}", "use 1 to 64 letters, digits, _ or -")
]
# Codes are normalised on input and stored upper-case (DESIGN): either case may be
# written, and the pattern is checked on the code as normalised.
CodePrefix = Annotated[
    StrictStr,
    _Format(
        r"[A-Za-z0-9]{1,12}",
        "use 1 to 12 letters or digits (or leave prefix out: the offer id is used)",
        code=True,
    ),
]
SharedCode = Annotated[
    StrictStr,
    _Format(r"[A-Za-z0-9-]{3,32}", "use 3 to 32 letters, digits or hyphens", code=True),
]
# The constraints come before the float check so that they stay JSON Schema keywords.
PositiveAmount = Annotated[
    StrictInt, Field(gt=0, le=MAX_AMOUNT), BeforeValidator(_whole_minor_units)
]
NonNegativeAmount = Annotated[
    StrictInt, Field(ge=0, le=MAX_AMOUNT), BeforeValidator(_whole_minor_units)
]
Count = Annotated[StrictInt, Field(ge=1, le=MAX_AMOUNT)]
Percentage = Annotated[
    Decimal,
    BeforeValidator(_percentage_in),
    Field(gt=0, le=100, decimal_places=2),
    PlainSerializer(_decimal_out, when_used="json"),
    WithJsonSchema(
        {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 100,
            "description": "percent, at most 2 decimals",
        }
    ),
]
# A share of a whole, such as a conversion rate: a decimal fraction, never a float, so
# that the file's 0.035 is 0.035 exactly.
Rate = Annotated[
    Decimal,
    BeforeValidator(_rate_in),
    Field(gt=0, le=1, decimal_places=4),
    PlainSerializer(_decimal_out, when_used="json"),
    WithJsonSchema(
        {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "description": "a fraction: 0.04 is 4 %, at most 4 decimals",
        }
    ),
]
CodeMode = Literal["unique", "shared"]
