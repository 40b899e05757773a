"""Money: an integer amount in the currency's minor unit plus an ISO 4217 code.

``{"amount": 1500, "currency": "JPY"}`` is ¥1,500 and ``{"amount": 1500, "currency": "USD"}``
is $15.00. There is no float anywhere on the way in, in the arithmetic or on the way out:
every operation is exact integer arithmetic, and the one place that must round
(percentages) rounds toward zero so a reward never pays out more than it promised.
Mixing currencies raises ``CurrencyMismatch``; there is no implicit conversion.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from types import MappingProxyType
from typing import Annotated, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from functions.core.errors import CurrencyMismatch, InvalidMoney

__all__ = [
    "CURRENCY_EXPONENTS",
    "MAX_AMOUNT",
    "Amount",
    "CurrencyCode",
    "Money",
    "max_of",
    "min_of",
    "sum_of",
]

# ISO 4217 List One as published 2026-01-01: every active code whose minor unit is
# defined. Units without one ("N.A.": XAU, XAG, XPD, XPT, XDR, XSU, XUA, XBA-XBD, XTS,
# XXX) are left out on purpose, since "an amount in the minor unit" means nothing for
# them. Withdrawn codes (HRK, SLL, ZWL, ANG, BGN, ...) are gone too: new money is
# never created in them.
CURRENCY_EXPONENTS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2,
        "AZN": 2, "BAM": 2, "BBD": 2, "BDT": 2, "BHD": 3, "BIF": 0, "BMD": 2, "BND": 2,
        "BOB": 2, "BOV": 2, "BRL": 2, "BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2,
        "CAD": 2, "CDF": 2, "CHE": 2, "CHF": 2, "CHW": 2, "CLF": 4, "CLP": 0, "CNY": 2,
        "COP": 2, "COU": 2, "CRC": 2, "CUP": 2, "CVE": 2, "CZK": 2, "DJF": 0, "DKK": 2,
        "DOP": 2, "DZD": 2, "EGP": 2, "ERN": 2, "ETB": 2, "EUR": 2, "FJD": 2, "FKP": 2,
        "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2, "GNF": 0, "GTQ": 2, "GYD": 2,
        "HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "IQD": 3,
        "IRR": 2, "ISK": 0, "JMD": 2, "JOD": 3, "JPY": 0, "KES": 2, "KGS": 2, "KHR": 2,
        "KMF": 0, "KPW": 2, "KRW": 0, "KWD": 3, "KYD": 2, "KZT": 2, "LAK": 2, "LBP": 2,
        "LKR": 2, "LRD": 2, "LSL": 2, "LYD": 3, "MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2,
        "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2, "MVR": 2, "MWK": 2, "MXN": 2,
        "MXV": 2, "MYR": 2, "MZN": 2, "NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2, "NPR": 2,
        "NZD": 2, "OMR": 3, "PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2,
        "PYG": 0, "QAR": 2, "RON": 2, "RSD": 2, "RUB": 2, "RWF": 0, "SAR": 2, "SBD": 2,
        "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2, "SHP": 2, "SLE": 2, "SOS": 2, "SRD": 2,
        "SSP": 2, "STN": 2, "SVC": 2, "SYP": 2, "SZL": 2, "THB": 2, "TJS": 2, "TMT": 2,
        "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2, "TWD": 2, "TZS": 2, "UAH": 2, "UGX": 0,
        "USD": 2, "USN": 2, "UYI": 0, "UYU": 2, "UYW": 4, "UZS": 2, "VED": 2, "VES": 2,
        "VND": 0, "VUV": 0, "WST": 2, "XAD": 2, "XAF": 0, "XCD": 2, "XCG": 2, "XOF": 0,
        "XPF": 0, "YER": 2, "ZAR": 2, "ZMW": 2, "ZWG": 2,
    }
)  # fmt: skip

# 2**53 - 1: the largest integer a JavaScript (or any IEEE double) JSON client reads
# exactly. Storefronts parse our bodies, so a larger amount would be silently corrupted
# there; it is also far inside DynamoDB's and Athena's integer ranges.
MAX_AMOUNT: Final = 2**53 - 1


def _check_currency(code: str) -> str:
    if code not in CURRENCY_EXPONENTS:
        # Lower-case is refused rather than normalised: the contract says ISO code, and
        # accepting "jpy" here would let it leak into keys and events unnormalised.
        raise PydanticCustomError(
            "currency_code",
            "'{code}' is not an active ISO 4217 currency code (upper case, e.g. JPY, USD)",
            {"code": code},
        )
    return code


# A field type for any model carrying a currency beside plain amounts (carts, requests).
CurrencyCode = Annotated[
    StrictStr,
    AfterValidator(_check_currency),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "description": "ISO 4217 currency code",
            "examples": ["JPY"],
        }
    ),
]

# A field type for a bare minor-unit amount beside a currency (request bodies, campaign
# files). Strict even inside lenient models: 1500.0 or "1500" is refused, never coerced.
Amount = Annotated[StrictInt, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT)]


class Money(BaseModel):
    """An amount of money: an integer in the currency's minor unit and its ISO 4217 code."""

    # The docstring is kept short because it becomes the public JSON Schema description.
    # Immutable, hashable and equal by value. Build one with ``Money(amount=, currency=)``
    # inside model parsing or with ``Money.of(amount, currency)``, which raises
    # InvalidMoney instead of ValidationError. strict: a float is never coerced, not even
    # a "harmless" 1500.0.
    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    amount: Amount
    currency: CurrencyCode

    # -- construction -------------------------------------------------------------------

    @classmethod
    def of(cls, amount: int, currency: str) -> Money:
        """Money from an integer minor-unit amount, raising ``InvalidMoney`` if invalid."""
        try:
            return cls(amount=amount, currency=currency)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidMoney(
                f"{first['loc'][0]}: {first['msg']}",
                {"field": first["loc"][0]},
            ) from None

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls.of(0, currency)

    @classmethod
    def from_decimal(cls, value: Decimal | int, currency: str) -> Money:
        """Money from major units: ``from_decimal(Decimal("15.00"), "USD")`` is 1500 cents.

        Exact or refused: a value with more decimals than the currency has (``"15.001"``
        USD, ``"1.5"`` JPY) raises ``InvalidMoney`` rather than being rounded.
        """
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(f"from_decimal takes a Decimal or int, not {type(value).__name__}")
        exponent = _exponent(currency)
        if isinstance(value, Decimal) and not value.is_finite():
            raise InvalidMoney(f"{value} is not an amount", {"currency": currency})
        # as_integer_ratio is exact whatever the decimal context's precision.
        numerator, denominator = value.as_integer_ratio()
        scaled, remainder = divmod(numerator * 10**exponent, denominator)
        if remainder:
            raise InvalidMoney(
                f"{value} has more decimal places than {currency} allows ({exponent})",
                {"currency": currency, "exponent": exponent},
            )
        return _checked(scaled, currency)

    # -- views --------------------------------------------------------------------------

    @property
    def exponent(self) -> int:
        """Digits after the decimal point in major units: JPY 0, USD 2, BHD 3."""
        return CURRENCY_EXPONENTS[self.currency]

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    @property
    def is_negative(self) -> bool:
        return self.amount < 0

    @property
    def is_positive(self) -> bool:
        return self.amount > 0

    def to_decimal(self) -> Decimal:
        """Major units, exact and with the currency's scale: USD 1500 -> Decimal("15.00")."""
        sign, digits, _ = Decimal(self.amount).as_tuple()
        return Decimal((sign, digits, -self.exponent))

    def __str__(self) -> str:
        # Unambiguous and locale-free, for logs and messages to operators; customer-facing
        # formatting is the notifications' job.
        return f"{self.currency} {self.to_decimal()}"

    # -- arithmetic ---------------------------------------------------------------------

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(self.currency, other.currency)

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other)
        return _checked(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other)
        return _checked(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return _checked(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return _checked(abs(self.amount), self.currency)

    def times(self, quantity: int) -> Money:
        """The amount for ``quantity`` units (a line total); quantity is an exact int."""
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise TypeError(f"quantity must be an int, not {type(quantity).__name__}")
        return _checked(self.amount * quantity, self.currency)

    def percentage(self, percent: Decimal | int) -> Money:
        """``percent`` % of this amount, rounded toward zero to the minor unit.

        10% of JPY 12345 is JPY 1234. Rounding toward zero means a reward (positive) is
        never more than the exact share and a reversal (negative) never takes back more.
        """
        if isinstance(percent, bool) or not isinstance(percent, Decimal | int):
            raise TypeError(f"percent must be a Decimal or int, not {type(percent).__name__}")
        if isinstance(percent, Decimal) and not percent.is_finite():
            raise ValueError(f"percent must be finite, got {percent}")
        if not 0 <= percent <= 100:
            raise ValueError(f"percent must be between 0 and 100, got {percent}")
        numerator, denominator = percent.as_integer_ratio()
        exact_numerator = abs(self.amount) * numerator
        share = exact_numerator // (denominator * 100)
        return _checked(-share if self.amount < 0 else share, self.currency)

    def allocate(self, weights: Sequence[int]) -> list[Money]:
        """Split into parts proportional to ``weights`` that add up exactly to this amount.

        Largest remainder: each part gets the floor of its exact share and the units left
        over go one each to the parts with the largest remainders (earlier parts first on
        a tie). So equal weights give parts at most one unit apart and a zero weight always
        gets zero. Used for pro-rata refunds across lines.
        """
        if not weights:
            raise ValueError("allocate needs at least one weight")
        for weight in weights:
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
                raise ValueError(f"weights must be non-negative ints, got {weight!r}")
        total_weight = sum(weights)
        if total_weight == 0:
            raise ValueError("allocate needs at least one positive weight")
        # Work on the magnitude so a negative amount splits as the mirror of a positive one.
        magnitude = abs(self.amount)
        shares = [divmod(magnitude * weight, total_weight) for weight in weights]
        parts = [quotient for quotient, _ in shares]
        left_over = magnitude - sum(parts)
        by_remainder = sorted(range(len(weights)), key=lambda i: (-shares[i][1], i))
        for index in by_remainder[:left_over]:
            parts[index] += 1
        sign = -1 if self.amount < 0 else 1
        return [_checked(sign * part, self.currency) for part in parts]

    # -- ordering -----------------------------------------------------------------------
    # Equality is pydantic's (same amount and currency). Ordering across currencies has no
    # meaning, so it raises instead of quietly answering False.

    def __lt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other)
        return self.amount >= other.amount


def _exponent(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise InvalidMoney(
            f"{currency!r} is not an active ISO 4217 currency code (upper case, e.g. JPY, USD)",
            {"field": "currency"},
        ) from None


def _checked(amount: int, currency: str) -> Money:
    # Results of arithmetic skip pydantic (the currency is already known good) but not
    # the range check: an overflow here comes from input, so it is the client's error.
    if not -MAX_AMOUNT <= amount <= MAX_AMOUNT:
        raise InvalidMoney(
            f"amount {amount} is out of range (at most {MAX_AMOUNT} in absolute value)",
            {"field": "amount", "currency": currency},
        )
    return Money.model_construct(amount=amount, currency=currency)


def min_of(first: Money, *others: Money) -> Money:
    """The smallest of the amounts, all in one currency: ``min_of(reward, cap)``."""
    # min/max compare with Money's own operators, so a mixed currency raises here too.
    return min((first, *others))


def max_of(first: Money, *others: Money) -> Money:
    """The largest of the amounts, all in one currency."""
    return max((first, *others))


def sum_of(amounts: Iterable[Money], currency: str) -> Money:
    """The total of ``amounts``, each of which must be in ``currency``; zero if empty."""
    total = Money.zero(currency)
    for amount in amounts:
        total = total + amount
    return total
