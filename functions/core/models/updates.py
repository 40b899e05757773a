"""Update actions for items others count on: `bounded_add` and `bounded_subtract` keep a
counter within its limit and never below zero, `upsert_actions` rewrites an item without
resetting its counters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pynamodb.attributes import Attribute
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from functions.core.models.binding import TableModel


def bounded_add(
    counter: Attribute[Any], amount: int, limit: int | None
) -> tuple[list[Action], Condition | None]:
    """``ADD amount`` to `counter`, on condition that the result stays ``<= limit``.

    DynamoDB has no ``a + b <= c`` condition, so the check is ``counter <= limit - amount``;
    a counter that does not exist yet counts as 0, as ``ADD`` itself treats it. With
    ``limit=None`` the counter is unbounded and no condition is returned.
    """
    _check_amount(amount)
    actions: list[Action] = [counter.add(amount)]
    if limit is None:
        return actions, None
    headroom = limit - amount
    if headroom < 0:
        # Not even an empty counter can take it; "missing counts as 0" must not let it in.
        return actions, counter <= headroom
    return actions, counter.does_not_exist() | (counter <= headroom)


def bounded_subtract(counter: Attribute[Any], amount: int) -> tuple[list[Action], Condition]:
    """``ADD -amount`` to `counter`, on condition that it does not go below zero."""
    _check_amount(amount)
    return [counter.add(-amount)], counter >= amount


def _check_amount(amount: int) -> None:
    if type(amount) is not int or amount < 0:
        raise ValueError(f"counter amounts are non-negative ints, got {amount!r}")


def upsert_actions(item: Model, *, counters: Iterable[str] = ()) -> list[Action]:
    """An update writing every field of `item` but its key, as a put would, except that
    each of `counters` keeps its stored value (starting at `item`'s value when absent).

    For items that are republished while something else counts on them (a campaign's
    budget counters, an offer's redemption count): a put would zero the counters.
    """
    if isinstance(item, TableModel):
        item.derive_keys()
    keep = set(counters)
    actions: list[Action] = []
    for name, attribute in type(item).get_attributes().items():
        if attribute.is_hash_key or attribute.is_range_key:
            continue
        value = getattr(item, name)
        if name in keep:
            actions.append(attribute.set(attribute | value))
        elif value is None:
            actions.append(attribute.remove())
        else:
            actions.append(attribute.set(value))
    return actions
