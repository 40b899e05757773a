"""Money: exact integer minor units, one currency at a time, never a float."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from functions.core.errors import CurrencyMismatch, InvalidMoney
from functions.core.money import (
    CURRENCY_EXPONENTS,
    MAX_AMOUNT,
    Amount,
    CurrencyCode,
    Money,
    max_of,
    min_of,
    sum_of,
)

currencies = st.sampled_from(sorted(CURRENCY_EXPONENTS))
# Far inside MAX_AMOUNT so sums of a few never overflow.
amounts = st.integers(min_value=-(10**12), max_value=10**12)
non_negative = st.integers(min_value=0, max_value=10**12)
percents = st.one_of(
    st.integers(min_value=0, max_value=100),
    st.decimals(min_value=0, max_value=100, allow_nan=False, allow_infinity=False, places=4),
)


@st.composite
def same_currency(draw: st.DrawFn, n: int) -> list[Money]:
    currency = draw(currencies)
    return [Money(amount=draw(amounts), currency=currency) for _ in range(n)]


def jpy(amount: int) -> Money:
    return Money(amount=amount, currency="JPY")


# -- the table -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "exponent"),
    [
        ("JPY", 0), ("KRW", 0), ("VND", 0), ("ISK", 0), ("XAF", 0), ("XOF", 0), ("CLP", 0),
        ("USD", 2), ("EUR", 2), ("GBP", 2),
        ("BHD", 3), ("KWD", 3), ("JOD", 3), ("TND", 3), ("OMR", 3), ("IQD", 3), ("LYD", 3),
        ("CLF", 4), ("UYW", 4),
    ],
)  # fmt: skip
def test_known_exponents(code: str, exponent: int) -> None:
    assert CURRENCY_EXPONENTS[code] == exponent
    assert Money.zero(code).exponent == exponent


def test_the_table_is_iso_shaped_and_read_only() -> None:
    assert len(CURRENCY_EXPONENTS) > 150
    for code, exponent in CURRENCY_EXPONENTS.items():
        assert len(code) == 3
        assert code.isascii()
        assert code.isupper()
        assert exponent in {0, 2, 3, 4}
    with pytest.raises(TypeError):
        CURRENCY_EXPONENTS["ABC"] = 2  # type: ignore[index]


@pytest.mark.parametrize("code", ["XAU", "XXX", "XTS", "HRK", "SLL", "ZWL"])
def test_units_without_minor_units_and_withdrawn_codes_are_not_money(code: str) -> None:
    assert code not in CURRENCY_EXPONENTS


# -- validation and serialisation ------------------------------------------------------


def test_serialises_to_the_contract_shape() -> None:
    money = Money(amount=1500, currency="JPY")
    assert money.model_dump() == {"amount": 1500, "currency": "JPY"}
    assert json.loads(money.model_dump_json()) == {"amount": 1500, "currency": "JPY"}


@given(currencies, st.integers(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT))
def test_json_round_trip(currency: str, amount: int) -> None:
    money = Money(amount=amount, currency=currency)
    assert Money.model_validate_json(money.model_dump_json()) == money


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_float_amounts_are_always_rejected(amount: float) -> None:
    with pytest.raises(ValidationError):
        Money(amount=amount, currency="JPY")  # type: ignore[arg-type]


@pytest.mark.parametrize("amount", [True, False, "1500", Decimal(1500), 1500.0, None])
def test_non_int_amounts_are_rejected(amount: Any) -> None:
    with pytest.raises(ValidationError):
        Money(amount=amount, currency="JPY")


@pytest.mark.parametrize(
    "body", ['{"amount": 1500.0, "currency": "JPY"}', '{"amount": "1500", "currency": "JPY"}']
)
def test_json_floats_and_strings_are_rejected(body: str) -> None:
    with pytest.raises(ValidationError):
        Money.model_validate_json(body)


@pytest.mark.parametrize("currency", ["jpy", "Jpy", "JP", "JPYY", "XYZ", "XAU", "", " JPY", 392])
def test_currency_must_be_a_known_upper_case_code(currency: Any) -> None:
    with pytest.raises(ValidationError):
        Money(amount=1, currency=currency)
    with pytest.raises(InvalidMoney) as raised:
        Money.of(1, currency)
    assert raised.value.details["field"] == "currency"


def test_extra_fields_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Money.model_validate({"amount": 1, "currency": "JPY", "note": "x"})


def test_amounts_beyond_json_safe_integers_are_rejected() -> None:
    Money(amount=MAX_AMOUNT, currency="JPY")
    Money(amount=-MAX_AMOUNT, currency="JPY")
    with pytest.raises(ValidationError):
        Money(amount=MAX_AMOUNT + 1, currency="JPY")
    with pytest.raises(InvalidMoney):
        Money.of(-MAX_AMOUNT - 1, "JPY")


def test_money_is_immutable_and_hashable() -> None:
    money = jpy(1500)
    with pytest.raises(ValidationError):
        money.amount = 1  # type: ignore[misc]
    assert {money, jpy(1500), jpy(1)} == {jpy(1500), jpy(1)}


def test_field_types_are_reusable_and_strict_in_lenient_request_models() -> None:
    class Spend(BaseModel):  # a default, non-strict model
        amount: Amount
        currency: CurrencyCode

    spend = Spend(amount=1500, currency="USD")
    assert Money.of(spend.amount, spend.currency) == Money(amount=1500, currency="USD")
    with pytest.raises(ValidationError, match="ISO 4217"):
        Spend(amount=1500, currency="usd")
    for amount in (1500.0, "1500", True, MAX_AMOUNT + 1):
        with pytest.raises(ValidationError):
            Spend(amount=amount, currency="USD")
    schema = Spend.model_json_schema()["properties"]
    assert schema["currency"]["pattern"] == "^[A-Z]{3}$"
    assert schema["amount"]["type"] == "integer"


# -- arithmetic ------------------------------------------------------------------------


@given(same_currency(2))
def test_addition_commutes(pair: list[Money]) -> None:
    a, b = pair
    assert a + b == b + a


@given(same_currency(3))
def test_addition_associates(triple: list[Money]) -> None:
    a, b, c = triple
    assert (a + b) + c == a + (b + c)


@given(same_currency(2))
def test_subtraction_undoes_addition(pair: list[Money]) -> None:
    a, b = pair
    assert a + b - b == a
    assert a - a == Money.zero(a.currency)
    negated = -a
    assert -negated == a
    assert a + -b == a - b


@given(currencies, currencies, amounts, amounts)
def test_mixed_currencies_always_raise(c1: str, c2: str, x: int, y: int) -> None:
    assume(c1 != c2)
    a, b = Money(amount=x, currency=c1), Money(amount=y, currency=c2)
    for operation in (
        lambda: a + b,
        lambda: a - b,
        lambda: a < b,
        lambda: a <= b,
        lambda: a > b,
        lambda: a >= b,
        lambda: min_of(a, b),
        lambda: max_of(a, b),
        lambda: sum_of([a, b], c1),
    ):
        with pytest.raises(CurrencyMismatch):
            operation()
    assert a != b


@given(same_currency(2))
def test_ordering_follows_amounts(pair: list[Money]) -> None:
    a, b = pair
    assert (a < b) == (a.amount < b.amount)
    assert (a <= b) == (a.amount <= b.amount)
    assert (a > b) == (a.amount > b.amount)
    assert (a >= b) == (a.amount >= b.amount)
    assert (a == b) == (a.amount == b.amount)


def test_arithmetic_with_plain_numbers_is_not_supported() -> None:
    with pytest.raises(TypeError):
        jpy(1) + 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        jpy(1) < 2  # type: ignore[operator]  # noqa: B015


def test_predicates() -> None:
    assert jpy(0).is_zero
    assert not jpy(0).is_negative
    assert not jpy(0).is_positive
    assert jpy(-1).is_negative
    assert jpy(1).is_positive
    assert abs(jpy(-5)) == jpy(5)


@given(same_currency(1), st.integers(min_value=-1000, max_value=1000))
def test_times_is_repeated_addition(money: list[Money], quantity: int) -> None:
    (m,) = money
    assert m.times(quantity).amount == m.amount * quantity
    assert m.times(quantity).currency == m.currency


@pytest.mark.parametrize("quantity", [1.0, True, Decimal(2), "2"])
def test_times_takes_only_ints(quantity: Any) -> None:
    with pytest.raises(TypeError):
        jpy(100).times(quantity)


def test_overflow_is_an_invalid_money_error() -> None:
    with pytest.raises(InvalidMoney):
        jpy(MAX_AMOUNT) + jpy(1)
    with pytest.raises(InvalidMoney):
        jpy(MAX_AMOUNT).times(2)


# -- percentages -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "percent", "expected"),
    [
        (12345, "JPY", 10, 1234),
        (12345, "JPY", Decimal("10"), 1234),
        (1001, "JPY", Decimal("12.5"), 125),  # 125.125
        (999, "USD", 100, 999),
        (999, "USD", 0, 0),
        (1, "USD", Decimal("99.9999"), 0),
        (-12345, "JPY", 10, -1234),  # toward zero, not -1235
    ],
)
def test_percentage_examples(amount: int, currency: str, percent: Any, expected: int) -> None:
    assert Money(amount=amount, currency=currency).percentage(percent) == Money(
        amount=expected, currency=currency
    )


@given(currencies, non_negative, percents)
def test_percentage_rounds_down_and_never_overpays(
    currency: str, amount: int, percent: int | Decimal
) -> None:
    base = Money(amount=amount, currency=currency)
    reward = base.percentage(percent)
    exact = Fraction(amount) * Fraction(percent) / 100
    assert reward.amount == int(exact)  # floor, as the exact share is non-negative
    assert 0 <= reward.amount <= amount
    assert reward.currency == currency


@given(currencies, amounts, percents)
def test_percentage_of_a_negative_is_the_mirror(currency: str, amount: int, percent: Any) -> None:
    money = Money(amount=amount, currency=currency)
    assert money.percentage(percent) == -((-money).percentage(percent))


@given(st.floats(min_value=0, max_value=100))
def test_percentage_rejects_floats(percent: float) -> None:
    with pytest.raises(TypeError):
        jpy(100).percentage(percent)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "percent", [-1, 101, Decimal("100.01"), Decimal("-0.1"), Decimal("NaN"), Decimal("Infinity")]
)
def test_percentage_must_be_between_0_and_100(percent: Any) -> None:
    with pytest.raises(ValueError):
        jpy(100).percentage(percent)


def test_percentage_rejects_bools_and_strings() -> None:
    with pytest.raises(TypeError):
        jpy(100).percentage(True)
    with pytest.raises(TypeError):
        jpy(100).percentage("10")  # type: ignore[arg-type]


def test_percentage_is_exact_beyond_the_decimal_context() -> None:
    # 40 significant digits: a Decimal multiplication in the default 28-digit context
    # would round; the integer arithmetic must not.
    percent = Decimal("33.33333333333333333333333333333333333333")
    money = Money(amount=MAX_AMOUNT, currency="JPY")
    exact = Fraction(MAX_AMOUNT) * Fraction(percent) / 100
    assert money.percentage(percent).amount == int(exact)


# -- decimals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "amount"),
    [
        ("15.00", "USD", 1500),
        ("15", "USD", 1500),
        ("15.5", "USD", 1550),
        ("0.01", "USD", 1),
        ("1500", "JPY", 1500),
        ("1500.000", "JPY", 1500),
        ("1.234", "BHD", 1234),
        ("-2.50", "EUR", -250),
        ("1.0001", "CLF", 10001),
    ],
)
def test_from_decimal_examples(text: str, currency: str, amount: int) -> None:
    assert Money.from_decimal(Decimal(text), currency) == Money(amount=amount, currency=currency)


@pytest.mark.parametrize(
    ("text", "currency"),
    [("15.001", "USD"), ("1.5", "JPY"), ("0.0001", "BHD"), ("NaN", "USD"), ("Infinity", "USD")],
)
def test_from_decimal_refuses_to_round(text: str, currency: str) -> None:
    with pytest.raises(InvalidMoney):
        Money.from_decimal(Decimal(text), currency)


def test_from_decimal_refuses_floats_and_unknown_currencies() -> None:
    with pytest.raises(TypeError):
        Money.from_decimal(15.0, "USD")  # type: ignore[arg-type]
    with pytest.raises(InvalidMoney):
        Money.from_decimal(Decimal(15), "usd")
    assert Money.from_decimal(15, "USD") == Money(amount=1500, currency="USD")


@given(currencies, st.integers(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT))
def test_decimal_round_trip(currency: str, amount: int) -> None:
    money = Money(amount=amount, currency=currency)
    as_decimal = money.to_decimal()
    assert as_decimal.as_tuple().exponent == -money.exponent
    assert Money.from_decimal(as_decimal, currency) == money


def test_str_is_code_and_major_units() -> None:
    assert str(Money(amount=1500, currency="JPY")) == "JPY 1500"
    assert str(Money(amount=1500, currency="USD")) == "USD 15.00"
    assert str(Money(amount=-5, currency="KWD")) == "KWD -0.005"


# -- allocation ------------------------------------------------------------------------


@given(
    same_currency(1),
    st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=20).filter(any),
)
def test_allocate_sums_exactly(money: list[Money], weights: list[int]) -> None:
    (m,) = money
    parts = m.allocate(weights)
    assert len(parts) == len(weights)
    assert sum_of(parts, m.currency) == m
    for part, weight in zip(parts, weights, strict=True):
        if weight == 0:
            assert part.is_zero
        # Each part is within one unit of its exact share.
        exact = Fraction(m.amount * weight, sum(weights))
        assert abs(part.amount - exact) < 1


@given(same_currency(1), st.integers(min_value=1, max_value=50))
def test_equal_weights_give_parts_at_most_one_apart(money: list[Money], n: int) -> None:
    (m,) = money
    amounts_ = [part.amount for part in m.allocate([1] * n)]
    assert max(amounts_) - min(amounts_) <= 1


def test_allocate_example() -> None:
    assert jpy(100).allocate([1, 1, 1]) == [jpy(34), jpy(33), jpy(33)]
    assert jpy(1000).allocate([3000, 1000, 0]) == [jpy(750), jpy(250), jpy(0)]
    assert jpy(-100).allocate([1, 1, 1]) == [jpy(-34), jpy(-33), jpy(-33)]


@pytest.mark.parametrize("weights", [[], [0, 0], [1, -1], [1.5], [True]])
def test_allocate_rejects_bad_weights(weights: Any) -> None:
    with pytest.raises(ValueError):
        jpy(100).allocate(weights)


# -- helpers ---------------------------------------------------------------------------


def test_sum_of_empty_is_zero_in_the_given_currency() -> None:
    assert sum_of([], "USD") == Money(amount=0, currency="USD")
    assert sum_of((jpy(n) for n in range(5)), "JPY") == jpy(10)


def test_sum_of_checks_the_currency_even_for_one_item() -> None:
    with pytest.raises(CurrencyMismatch):
        sum_of([jpy(1)], "USD")


@given(same_currency(4))
def test_min_and_max(items: list[Money]) -> None:
    assert min_of(*items).amount == min(m.amount for m in items)
    assert max_of(*items).amount == max(m.amount for m in items)
    assert min_of(items[0]) == items[0]
