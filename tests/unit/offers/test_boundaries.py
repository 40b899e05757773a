"""Counted limits at their edges, through the offers API on in-process moto.

Each limit is brought to one below its cap by real redemptions; then validation must
quote the last redemption that fits and refuse the next, and redemption must take the
one and refuse the other without counting anything. A limit compared with ``>`` where
``>=`` belongs (or the reverse) lets one redemption too many through, or refuses the
last one that fits: each test fails on either.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from functions.core.clock import frozen_at
from functions.offers.handlers import api
from tests.support.aws import aws_env, tables
from tests.unit.offers.api_calls import (
    OPEN,
    budget_used,
    customer_uses,
    offer_total,
    publish,
    redeem,
    validate,
)

__all__ = ["aws_env", "tables"]

CAMPAIGN_ID = "edges-2027"
_CAMPAIGN: dict[str, Any] = {
    "id": CAMPAIGN_ID,
    "name": "Edges week",
    "kind": "offer",
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "starts_at": "2027-05-01T10:00:00+09:00",
    "ends_at": "2027-05-16T00:00:00+09:00",
    "budget": {"amount": 1_000_000, "max_rewards": 1000},
    "eligibility": {"channels": ["online", "in_store"]},
}


def shared_offer(offer_id: str, code: str, amount: int, **usage: int) -> dict[str, Any]:
    return {
        "id": offer_id,
        "channel": "both",
        "discount": {"amount": amount},
        "codes": {"mode": "shared", "code": code},
        "usage": usage,
    }


def campaign(offers: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(_CAMPAIGN), "offers": offers, **changes}


@pytest.fixture
def open_shop(tables: list[str]) -> Iterator[None]:
    api.store.campaigns.clear()
    with frozen_at(OPEN):
        yield
    api.store.campaigns.clear()


def redeemed(code: str, customer_id: str, order_id: str) -> None:
    answer = redeem(code, customer_id, order_id)
    assert answer.status == 201, answer.body


def quoted(amount: int) -> dict[str, Any]:
    return {"valid": True, "discount": {"amount": amount, "currency": "JPY"}, "reasons": []}


def refused(*reasons: str) -> dict[str, Any]:
    return {"valid": False, "discount": {"amount": 0, "currency": "JPY"}, "reasons": [*reasons]}


# -- the offer's total (usage.max_total) -------------------------------------------------

TOTAL_OF_3 = campaign([shared_offer("TOTAL3", "total-3", 500, max_total=3)])


def test_validation_quotes_the_offers_last_redemption_and_refuses_at_its_total(
    open_shop: None,
) -> None:
    publish(TOTAL_OF_3)
    redeemed("TOTAL-3", "cust-1", "order-1")
    redeemed("TOTAL-3", "cust-2", "order-2")

    assert validate("TOTAL-3", "cust-3") == quoted(500)  # 2 of 3 used
    redeemed("TOTAL-3", "cust-3", "order-3")
    assert validate("TOTAL-3", "cust-4") == refused("offer_limit_reached")  # 3 of 3


def test_redemption_takes_the_offers_last_redemption_and_refuses_at_its_total(
    open_shop: None,
) -> None:
    publish(TOTAL_OF_3)
    redeemed("TOTAL-3", "cust-1", "order-1")
    redeemed("TOTAL-3", "cust-2", "order-2")

    last = redeem("TOTAL-3", "cust-3", "order-3")
    assert last.status == 201, last.body
    assert offer_total("TOTAL3") == 3
    over = redeem("TOTAL-3", "cust-4", "order-4")
    assert (over.status, over.error_code) == (409, "offer_limit_reached")
    assert over.body["error"]["details"] == {"offerId": "TOTAL3", "maxTotal": 3}
    assert offer_total("TOTAL3") == 3
    assert customer_uses("cust-4", "TOTAL3") == 0
    assert budget_used(CAMPAIGN_ID) == (1500, 3)


# -- one customer's uses (usage.per_customer) --------------------------------------------

TWO_EACH = campaign([shared_offer("TWICE", "twice", 500, per_customer=2)])


def test_validation_quotes_a_customers_last_use_and_refuses_at_their_limit(
    open_shop: None,
) -> None:
    publish(TWO_EACH)
    redeemed("TWICE", "cust-1", "order-1")

    assert validate("TWICE", "cust-1") == quoted(500)  # 1 of 2
    redeemed("TWICE", "cust-1", "order-2")
    assert validate("TWICE", "cust-1") == refused("customer_limit_reached")  # 2 of 2
    assert validate("TWICE", "cust-2") == quoted(500)


def test_redemption_takes_a_customers_last_use_and_refuses_at_their_limit(
    open_shop: None,
) -> None:
    publish(TWO_EACH)
    redeemed("TWICE", "cust-1", "order-1")

    last = redeem("TWICE", "cust-1", "order-2")
    assert last.status == 201, last.body
    over = redeem("TWICE", "cust-1", "order-3")
    assert (over.status, over.error_code) == (409, "customer_limit_reached")
    assert customer_uses("cust-1", "TWICE") == 2
    assert offer_total("TWICE") == 2
    assert budget_used(CAMPAIGN_ID) == (1000, 2)


# -- the budget's amount (budget.amount) --------------------------------------------------

# After one redemption of HALF, 500 of the 1,000 remain: HALF fits exactly, OVER (501)
# does not. The count cap is far away, so only the amount decides.
AMOUNT_OF_1000 = campaign(
    [shared_offer("HALF", "half", 500), shared_offer("OVER", "over", 501)],
    budget={"amount": 1000, "max_rewards": 50},
)


def test_validation_quotes_a_discount_that_fills_the_budget_exactly_and_refuses_one_more(
    open_shop: None,
) -> None:
    publish(AMOUNT_OF_1000)
    redeemed("HALF", "cust-1", "order-1")

    assert validate("OVER", "cust-2") == refused("budget_exhausted")  # 501 > 500 left
    assert validate("HALF", "cust-2") == quoted(500)  # 500 = 500 left
    redeemed("HALF", "cust-2", "order-2")
    assert validate("HALF", "cust-3") == refused("budget_exhausted")  # nothing left


def test_redemption_takes_a_discount_that_fills_the_budget_exactly_and_refuses_one_more(
    open_shop: None,
) -> None:
    publish(AMOUNT_OF_1000)
    redeemed("HALF", "cust-1", "order-1")

    over = redeem("OVER", "cust-2", "order-2")
    assert (over.status, over.error_code) == (409, "budget_exhausted")
    assert budget_used(CAMPAIGN_ID) == (500, 1)
    assert offer_total("OVER") == 0 and customer_uses("cust-2", "OVER") == 0
    last = redeem("HALF", "cust-2", "order-3")
    assert last.status == 201, last.body
    assert budget_used(CAMPAIGN_ID) == (1000, 2)
    empty = redeem("HALF", "cust-3", "order-4")
    assert (empty.status, empty.error_code) == (409, "budget_exhausted")
    assert budget_used(CAMPAIGN_ID) == (1000, 2)


# -- the budget's count (budget.max_rewards) ---------------------------------------------

# The amount cap is far away, so only the count decides.
TWO_REWARDS = campaign(
    [shared_offer("PAIR", "pair", 500)], budget={"amount": 1_000_000, "max_rewards": 2}
)


def test_validation_quotes_the_last_reward_of_the_budget_and_refuses_at_its_count(
    open_shop: None,
) -> None:
    publish(TWO_REWARDS)
    redeemed("PAIR", "cust-1", "order-1")

    assert validate("PAIR", "cust-2") == quoted(500)  # 1 of 2 rewards
    redeemed("PAIR", "cust-2", "order-2")
    assert validate("PAIR", "cust-3") == refused("budget_exhausted")  # 2 of 2


def test_redemption_takes_the_last_reward_of_the_budget_and_refuses_at_its_count(
    open_shop: None,
) -> None:
    publish(TWO_REWARDS)
    redeemed("PAIR", "cust-1", "order-1")

    last = redeem("PAIR", "cust-2", "order-2")
    assert last.status == 201, last.body
    assert budget_used(CAMPAIGN_ID) == (1000, 2)
    over = redeem("PAIR", "cust-3", "order-3")
    assert (over.status, over.error_code) == (409, "budget_exhausted")
    assert over.body["error"]["details"]["campaignId"] == CAMPAIGN_ID
    assert budget_used(CAMPAIGN_ID) == (1000, 2)
    assert offer_total("PAIR") == 2
