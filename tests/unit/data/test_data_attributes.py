"""The custom attributes: Money as an integer map, instants as sortable UTC strings."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, cast

import boto3
import pytest
from pynamodb.attributes import UnicodeAttribute

from functions.core.models import (
    InstantAttribute,
    IntegerAttribute,
    MoneyAttribute,
    TableModel,
    day_key,
    key_part,
    optional,
    table_meta,
)
from functions.core.money import Money
from functions.core.tables import CUSTOMERS
from tests.support.tables import refused_by_condition

JST = timezone(timedelta(hours=9))


class Probe(TableModel):
    """A throwaway model on the Customers table, to round-trip attributes through moto."""

    Meta = table_meta(CUSTOMERS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    price = MoneyAttribute()
    refund = optional(MoneyAttribute())
    at = InstantAttribute()
    later = optional(InstantAttribute())
    n = IntegerAttribute(default=0)


def _raw(pk: str) -> Any:
    item = boto3.client("dynamodb").get_item(
        TableName=CUSTOMERS.default_name, Key={"pk": {"S": pk}, "sk": {"S": "x"}}
    )
    return item["Item"]


def test_money_round_trips_as_an_integer_map(tables: list[str]) -> None:
    Probe("p1", "x", price=Money(amount=1500, currency="JPY"), at=datetime.now(UTC)).save()
    raw = _raw("p1")
    assert raw["price"] == {"M": {"amount": {"N": "1500"}, "currency": {"S": "JPY"}}}
    loaded = Probe.get("p1", "x")
    assert loaded.price == Money(amount=1500, currency="JPY")
    assert isinstance(loaded.price.amount, int)
    assert loaded.refund is None


def test_negative_money_round_trips(tables: list[str]) -> None:
    Probe("p2", "x", price=Money(amount=-250, currency="USD"), at=datetime.now(UTC)).save()
    assert Probe.get("p2", "x").price == Money(amount=-250, currency="USD")


def test_money_attribute_refuses_non_money_and_floats() -> None:
    attribute = MoneyAttribute()
    with pytest.raises(TypeError):
        attribute.serialize(1500)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        attribute.serialize({"amount": 1500, "currency": "JPY"})  # type: ignore[arg-type]
    # A float can only get in by bypassing validation; it still never reaches the table.
    sneaky = Money.model_construct(amount=cast(Any, 15.5), currency="USD")
    with pytest.raises(TypeError, match="int"):
        attribute.serialize(sneaky)
    with pytest.raises(ValueError, match="not an integer"):
        attribute.deserialize({"amount": {"N": "15.5"}, "currency": {"S": "USD"}})
    with pytest.raises(ValueError):
        attribute.deserialize({"amount": {"N": "1"}})


def test_integer_attribute_refuses_fractions_and_bools() -> None:
    attribute = IntegerAttribute()
    assert attribute.serialize(-3) == "-3"
    assert attribute.deserialize("42") == 42
    with pytest.raises(TypeError):
        attribute.serialize(1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        attribute.serialize(True)
    with pytest.raises(ValueError):
        attribute.deserialize("1.5")


def test_instant_is_stored_in_utc_fixed_width_and_read_back_aware(tables: list[str]) -> None:
    local = datetime(2027, 3, 1, 9, 0, tzinfo=JST)
    Probe("p3", "x", price=Money(amount=1, currency="JPY"), at=local).save()
    assert _raw("p3")["at"] == {"S": "2027-03-01T00:00:00.000000Z"}
    loaded = Probe.get("p3", "x").at
    assert loaded == local
    assert loaded.utcoffset() == timedelta(0)
    assert loaded.tzinfo is not None


def test_instant_keeps_microseconds() -> None:
    value = datetime(2027, 3, 1, 0, 0, 0, 123456, tzinfo=UTC)
    attribute = InstantAttribute()
    assert attribute.serialize(value) == "2027-03-01T00:00:00.123456Z"
    assert attribute.deserialize(attribute.serialize(value)) == value


def test_instant_strings_sort_as_the_instants_do() -> None:
    attribute = InstantAttribute()
    base = datetime(2027, 3, 1, tzinfo=UTC)
    instants = [base + timedelta(microseconds=500_000), base, base + timedelta(days=400)]
    instants.append(datetime(2027, 3, 1, 8, 59, tzinfo=JST))  # before `base`
    assert sorted(instants) == sorted(instants, key=attribute.serialize)


def test_instant_refuses_naive_datetimes(tables: list[str]) -> None:
    naive = datetime(2027, 3, 1, 0, 0)
    with pytest.raises(ValueError, match="naive"):
        InstantAttribute().serialize(naive)
    probe = Probe("p4", "x", price=Money(amount=1, currency="JPY"), at=naive)
    with pytest.raises(ValueError, match="naive"):
        probe.save()
    # Refused in conditions too, not silently compared as text.
    with pytest.raises(ValueError, match="naive"):
        Probe.query("p4", filter_condition=Probe.at < naive).next()
    with pytest.raises(TypeError):
        InstantAttribute().serialize(date(2027, 3, 1))  # type: ignore[arg-type]


def test_instant_refuses_a_malformed_stored_value() -> None:
    with pytest.raises(ValueError):
        InstantAttribute().deserialize("2027-03-01T00:00:00Z")


def test_instant_range_condition_on_moto(tables: list[str]) -> None:
    base = datetime(2027, 3, 1, tzinfo=UTC)
    for n in range(3):
        at = base + timedelta(hours=n)
        Probe(f"p5-{n}", "x", price=Money(amount=n, currency="JPY"), at=at).save()
    found = Probe.scan(Probe.at >= base + timedelta(minutes=30))
    assert sorted(p.pk for p in found) == ["p5-1", "p5-2"]


def test_key_helpers() -> None:
    assert key_part("a#b%c") == "a%23b%25c"
    assert key_part("a#b") + "#" + key_part("c") != key_part("a") + "#" + key_part("b#c")
    assert day_key(datetime(2027, 3, 1, 8, tzinfo=JST)) == "2027-02-28"
    assert day_key(date(2027, 3, 1)) == "2027-03-01"


def test_money_in_update_and_condition_expressions(tables: list[str]) -> None:
    Probe("p6", "x", price=Money(amount=100, currency="JPY"), at=datetime.now(UTC)).save()
    probe = Probe("p6", "x")
    probe.update(
        [Probe.price.set(Money(amount=200, currency="JPY"))],
        condition=Probe.price == Money(amount=100, currency="JPY"),
    )
    assert Probe.get("p6", "x").price == Money(amount=200, currency="JPY")
    with refused_by_condition():
        probe.update(
            [Probe.refund.set(Money(amount=1, currency="JPY"))],
            condition=Probe.price != Money(amount=200, currency="JPY"),
        )
