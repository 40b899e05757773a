from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from functions.campaigns.config import CampaignConfig
from functions.campaigns.rewards import (
    Cart,
    LineItem,
    Reason,
    check_window,
    eligible_subtotal,
    offer_accepts_channel,
    offer_discount,
    reward_for,
)
from functions.core.errors import CurrencyMismatch
from functions.core.money import MAX_AMOUNT, Money
from tests.unit.campaigns.documents import campaign, offer

SHOES = {"channels": ["online", "in_store"], "categories": ["shoes"]}
ALL_PRODUCTS = {"channels": ["online", "in_store"]}


def cart(*lines: tuple[str, str | None, int, int], currency: str = "JPY") -> Cart:
    """``(sku, category, quantity, unitPrice)`` lines."""
    return Cart(
        currency=currency,
        items=[
            LineItem(sku=sku, category=category, quantity=quantity, unitPrice=price)
            for sku, category, quantity, price in lines
        ],
    )


def yen(amount: int) -> Money:
    return Money.of(amount, "JPY")


def with_reward(reward: dict[str, Any], **changes: Any) -> CampaignConfig:
    return campaign(reward=reward, **changes)


# -- carts ----------------------------------------------------------------------------


def test_a_cart_parses_the_api_shape() -> None:
    body = {
        "currency": "JPY",
        "items": [{"sku": "TRAIL-01", "category": "shoes", "quantity": 2, "unitPrice": 12000}],
    }
    parsed = Cart.model_validate(body)
    assert parsed.items[0].unitPrice == 12000
    assert parsed.subtotal == yen(24000)
    assert parsed.model_dump(mode="json") == body


@pytest.mark.parametrize(
    "item",
    [
        {"sku": "A", "quantity": 1, "unitPrice": 12.5},
        {"sku": "A", "quantity": 1, "unitPrice": "100"},
        {"sku": "A", "quantity": 0, "unitPrice": 100},
        {"sku": "A", "quantity": 1, "unitPrice": -1},
        {"sku": "", "quantity": 1, "unitPrice": 1},
        {"sku": "A", "quantity": 1, "unit_price": 1},
        {"sku": "A", "quantity": 1, "unitPrice": 1, "name": "shoe"},
    ],
)
def test_a_malformed_line_is_refused(item: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Cart.model_validate({"currency": "JPY", "items": [item]})


def test_a_cart_has_lines_and_a_total_in_range() -> None:
    with pytest.raises(ValidationError):
        Cart(currency="JPY", items=[])
    with pytest.raises(ValidationError, match="largest amount"):
        cart(("A", None, 2, MAX_AMOUNT))


# -- eligibility ----------------------------------------------------------------------


def test_only_listed_skus_count() -> None:
    config = with_reward({"fixed": 100})  # skus TRAIL-01, TRAIL-02
    basket = cart(
        ("TRAIL-01", "shoes", 2, 5000), ("SOCKS", "shoes", 1, 900), ("TRAIL-02", None, 1, 7000)
    )
    assert eligible_subtotal(config, basket) == yen(17000)


def test_only_listed_categories_count() -> None:
    config = with_reward({"fixed": 100}, eligibility=SHOES)
    basket = cart(("A", "shoes", 1, 8000), ("B", "socks", 3, 1000), ("C", None, 1, 500))
    assert eligible_subtotal(config, basket) == yen(8000)
    assert eligible_subtotal(config.eligibility, basket) == yen(8000)


def test_every_line_counts_when_nothing_is_listed() -> None:
    config = with_reward({"fixed": 100}, eligibility=ALL_PRODUCTS)
    assert eligible_subtotal(config, cart(("A", None, 1, 10), ("B", "x", 2, 5))) == yen(20)


def test_a_cart_in_another_currency_is_an_error() -> None:
    basket = cart(("TRAIL-01", None, 1, 100), currency="USD")
    config = with_reward({"fixed": 100})
    with pytest.raises(CurrencyMismatch) as raised:
        eligible_subtotal(config, basket)
    assert raised.value.details == {"expected": "JPY", "actual": "USD"}
    for quote in (reward_for, lambda c, b: offer_discount(c.offers[0], c, b)):
        with pytest.raises(CurrencyMismatch):
            quote(config, basket)
    with pytest.raises(CurrencyMismatch):
        reward_for(campaign(kind="offer", reward=None, claims=None), basket)


def test_no_eligible_line_is_not_eligible() -> None:
    quote = reward_for(with_reward({"fixed": 1000}), cart(("OTHER", None, 1, 90000)))
    assert quote.amount == yen(0)
    assert quote.reasons == ["not_eligible"]
    assert not quote.eligible


def test_the_minimum_purchase_counts_eligible_lines_only() -> None:
    config = with_reward(
        {"fixed": 1000},
        eligibility={"channels": ["online"], "skus": ["TRAIL-01"], "min_purchase": 8000},
    )
    below = cart(("TRAIL-01", None, 1, 7999), ("OTHER", None, 1, 50000))
    assert reward_for(config, below).reasons == [Reason.BELOW_MIN_PURCHASE]
    at_minimum = cart(("TRAIL-01", None, 1, 8000))
    assert reward_for(config, at_minimum).amount == yen(1000)


def test_a_channel_outside_the_campaign_is_refused() -> None:
    config = with_reward({"fixed": 1000}, eligibility={"channels": ["online"]})
    basket = cart(("A", None, 1, 5000))
    assert reward_for(config, basket, channel="online").amount == yen(1000)
    refused = reward_for(config, basket, channel="in_store")
    assert (refused.amount, refused.reasons) == (yen(0), ["wrong_channel"])


def test_reasons_add_up() -> None:
    config = with_reward({"fixed": 1000}, eligibility={"channels": ["online"], "skus": ["X"]})
    quote = reward_for(config, cart(("A", None, 1, 5000)), channel="in_store")
    assert quote.reasons == ["wrong_channel", "not_eligible"]


# -- rewards --------------------------------------------------------------------------


def test_a_fixed_reward() -> None:
    quote = reward_for(with_reward({"fixed": 1000}), cart(("TRAIL-01", None, 1, 12000)))
    assert (quote.amount, quote.reasons, quote.eligible) == (yen(1000), [], True)


def test_a_fixed_reward_never_exceeds_what_was_spent() -> None:
    quote = reward_for(with_reward({"fixed": 1000}), cart(("TRAIL-01", None, 1, 600)))
    assert quote.amount == yen(600)


def test_a_percentage_rounds_down() -> None:
    config = with_reward({"percentage": 10}, eligibility=ALL_PRODUCTS)
    assert reward_for(config, cart(("A", None, 1, 12345))).amount == yen(1234)
    fractional = with_reward({"percentage": 12.5}, eligibility=ALL_PRODUCTS, currency="USD")
    assert reward_for(fractional, cart(("A", None, 1, 999), currency="USD")).amount.amount == 124


def test_a_percentage_is_capped() -> None:
    config = with_reward({"percentage": 10, "max_per_reward": 3000}, eligibility=ALL_PRODUCTS)
    assert reward_for(config, cart(("A", None, 1, 100_000))).amount == yen(3000)


TIERED = {
    "tiered": [{"min_purchase": 8000, "amount": 1000}, {"min_purchase": 15000, "amount": 2500}],
    "max_per_reward": 2000,
}


@pytest.mark.parametrize(
    ("spent", "amount", "reasons"),
    [
        (7999, 0, ["below_min_purchase"]),
        (8000, 1000, []),
        (14999, 1000, []),
        (15000, 2000, []),  # tier 2500, capped at 2000
        (90000, 2000, []),
    ],
)
def test_tiers_pay_the_highest_tier_reached(spent: int, amount: int, reasons: list[str]) -> None:
    config = with_reward(TIERED, eligibility=ALL_PRODUCTS)
    quote = reward_for(config, cart(("A", None, 1, spent)))
    assert (quote.amount, quote.reasons) == (yen(amount), reasons)


def test_a_campaign_without_reward_quotes_nothing() -> None:
    config = campaign(kind="offer", reward=None, claims=None)
    quote = reward_for(config, cart(("TRAIL-01", None, 1, 9000)))
    assert (quote.amount, quote.reasons) == (yen(0), ["no_reward"])


# -- offer discounts ------------------------------------------------------------------


def with_offer(discount: dict[str, Any], channel: str = "online", **changes: Any) -> CampaignConfig:
    return campaign(offers=[offer(discount=discount, channel=channel)], **changes)


def test_a_percentage_discount_rounds_down_and_is_capped() -> None:
    config = with_offer({"percentage": 10, "max": 2000})
    discount = config.offers[0]
    assert offer_discount(discount, config, cart(("TRAIL-01", None, 1, 12345))).amount == yen(1234)
    assert offer_discount(discount, config, cart(("TRAIL-01", None, 3, 12000))).amount == yen(2000)


def test_an_amount_discount_never_exceeds_the_eligible_lines() -> None:
    config = with_offer({"amount": 500})
    basket = cart(("TRAIL-01", None, 1, 300), ("OTHER", None, 1, 10000))
    assert offer_discount(config.offers[0], config, basket).amount == yen(300)


def test_an_offer_follows_the_campaign_eligibility() -> None:
    config = with_offer(
        {"amount": 500},
        eligibility={"channels": ["online"], "skus": ["TRAIL-01"], "min_purchase": 3000},
    )
    discount = config.offers[0]
    assert offer_discount(discount, config, cart(("OTHER", None, 1, 9000))).reasons == [
        "not_eligible"
    ]
    assert offer_discount(discount, config, cart(("TRAIL-01", None, 1, 2999))).reasons == [
        "below_min_purchase"
    ]


@pytest.mark.parametrize(
    ("offer_channel", "channel", "accepted"),
    [
        ("online", "online", True),
        ("online", "in_store", False),
        ("in_store", "in_store", True),
        ("both", "online", True),
        ("both", "in_store", True),
    ],
)
def test_an_offer_is_redeemed_on_its_channels(
    offer_channel: str, channel: Any, accepted: bool
) -> None:
    config = with_offer({"amount": 500}, channel=offer_channel)
    discount = config.offers[0]
    assert offer_accepts_channel(discount, channel) is accepted
    quote = offer_discount(discount, config, cart(("TRAIL-01", None, 1, 9000)), channel=channel)
    assert quote.reasons == ([] if accepted else ["wrong_channel"])


# -- the window -----------------------------------------------------------------------


def test_the_window_is_start_inclusive_and_end_exclusive() -> None:
    config = campaign()
    starts_at = datetime(2027, 2, 28, 15, tzinfo=UTC)
    ends_at = datetime(2027, 3, 31, 15, tzinfo=UTC)
    assert check_window(config, starts_at - timedelta(microseconds=1)) == "not_started"
    assert check_window(config, starts_at) is None
    assert check_window(config, ends_at - timedelta(microseconds=1)) is None
    assert check_window(config, ends_at) == "expired"


# -- properties -----------------------------------------------------------------------

SKUS = ["A", "B", "C", "D"]
CATEGORIES = ["shoes", "socks", None]

lines = st.tuples(
    st.sampled_from(SKUS),
    st.sampled_from(CATEGORIES),
    st.integers(1, 5),
    st.integers(0, 50_000),
)
carts = st.lists(lines, min_size=1, max_size=6).map(lambda items: cart(*items))
percentages = st.decimals(min_value=Decimal("0.01"), max_value=100, places=2)
caps = st.none() | st.integers(1, 20_000)


@st.composite
def tier_lists(draw: st.DrawFn) -> list[dict[str, int]]:
    minimums = sorted(draw(st.sets(st.integers(0, 100_000), min_size=1, max_size=4)))
    amounts = sorted(
        draw(st.lists(st.integers(1, 10_000), min_size=len(minimums), max_size=len(minimums)))
    )
    return [{"min_purchase": m, "amount": a} for m, a in zip(minimums, amounts, strict=True)]


@st.composite
def rewards(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["fixed", "percentage", "tiered"]))
    if kind == "fixed":
        return {"fixed": draw(st.integers(1, 20_000))}
    reward: dict[str, Any] = (
        {"percentage": float(draw(percentages))}
        if kind == "percentage"
        else {"tiered": draw(tier_lists())}
    )
    cap = draw(caps)
    return reward if cap is None else {**reward, "max_per_reward": cap}


eligibilities = st.sampled_from(
    [
        ALL_PRODUCTS,
        {"channels": ["online"], "skus": ["A", "B"]},
        {"channels": ["online"], "categories": ["shoes"], "min_purchase": 5000},
    ]
)


@settings(max_examples=150, deadline=None)
@given(reward=rewards(), eligibility=eligibilities, basket=carts)
def test_a_reward_is_never_negative_nor_above_its_caps(
    reward: dict[str, Any], eligibility: dict[str, Any], basket: Cart
) -> None:
    config = with_reward(reward, eligibility=eligibility)
    quote = reward_for(config, basket)
    assert 0 <= quote.amount.amount <= eligible_subtotal(config, basket).amount
    if "max_per_reward" in reward:
        assert quote.amount.amount <= reward["max_per_reward"]
    assert quote.eligible or quote.amount.is_zero


@settings(max_examples=150, deadline=None)
@given(reward=rewards(), eligibility=eligibilities, basket=carts, extra=lines)
def test_spending_more_on_eligible_goods_never_earns_less(
    reward: dict[str, Any], eligibility: dict[str, Any], basket: Cart, extra: Any
) -> None:
    config = with_reward(reward, eligibility=eligibility)
    bigger = Cart(currency=basket.currency, items=[*basket.items, cart(extra).items[0]])
    assert reward_for(config, bigger).amount >= reward_for(config, basket).amount


@settings(max_examples=150, deadline=None)
@given(percentage=percentages, cap=caps, basket=carts)
def test_a_percentage_reward_is_the_floor_of_the_exact_share(
    percentage: Decimal, cap: int | None, basket: Cart
) -> None:
    reward: dict[str, Any] = {"percentage": float(percentage)}
    if cap is not None:
        reward["max_per_reward"] = cap
    config = with_reward(reward, eligibility=ALL_PRODUCTS)
    subtotal = basket.subtotal.amount
    exact_floor = int(subtotal * percentage // 100)
    expected = exact_floor if cap is None else min(exact_floor, cap)
    assert reward_for(config, basket).amount.amount == expected


@settings(max_examples=100, deadline=None)
@given(
    discount=st.one_of(
        st.builds(
            lambda p, m: {"percentage": float(p), **({"max": m} if m else {})}, percentages, caps
        ),
        st.builds(lambda a: {"amount": a}, st.integers(1, 30_000)),
    ),
    basket=carts,
)
def test_a_discount_is_never_negative_nor_above_its_cap_or_the_cart(
    discount: dict[str, Any], basket: Cart
) -> None:
    config = with_offer(discount, eligibility=ALL_PRODUCTS)
    quote = offer_discount(config.offers[0], config, basket)
    assert 0 <= quote.amount.amount <= basket.subtotal.amount
    assert quote.amount.amount <= discount.get("max", discount.get("amount", MAX_AMOUNT))
