"""Static refusals of a code, each alone, through the offers API on in-process moto.

Validation lists the reason and quotes nothing; redemption answers it as a 422 and counts
nothing anywhere.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from functions.campaigns.config import parse_campaign
from functions.campaigns.dal import CampaignStore
from functions.campaigns.models import Code, get_code
from functions.core.clock import frozen_at
from functions.offers.handlers import api
from tests.support.aws import aws_env, tables
from tests.unit.offers.api_calls import (
    OPEN,
    budget_used,
    cart,
    customer_uses,
    issue,
    offer_total,
    publish,
    redeem,
    validate,
)

__all__ = ["aws_env", "tables"]

CAMPAIGN_ID = "refusals-2027"
SHOP: dict[str, Any] = {
    "id": CAMPAIGN_ID,
    "name": "Refusals week",
    "kind": "offer",
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "starts_at": "2027-05-01T10:00:00+09:00",
    "ends_at": "2027-05-16T00:00:00+09:00",
    "budget": {"amount": 100_000, "max_rewards": 50},
    "eligibility": {"channels": ["online", "in_store"]},
    "offers": [
        {
            "id": "WEB10",
            "channel": "online",
            "discount": {"percentage": 10, "max": 2000},
            "codes": {"mode": "unique", "prefix": "WEB", "count": 3},
            "usage": {"per_customer": 1},
        },
        {
            "id": "FLAT500",
            "channel": "both",
            "discount": {"amount": 500},
            "codes": {"mode": "shared", "code": "flat-500"},
        },
    ],
}

# 10% of 9 yen rounds down to nothing: eligible, above the (zero) minimum, worth 0.
TINY_CART = cart(("SOCKS-01", 1, 9))


@pytest.fixture
def shop(tables: list[str]) -> Iterator[None]:
    api.store.campaigns.clear()
    publish(SHOP)
    with frozen_at(OPEN):
        yield
    api.store.campaigns.clear()


def nothing_counted(offer_id: str, customer_id: str) -> bool:
    return (
        offer_total(offer_id) == 0
        and customer_uses(customer_id, offer_id) == 0
        and budget_used(CAMPAIGN_ID) == (0, 0)
    )


def test_a_unique_code_nobody_was_given_is_not_issued(shop: None) -> None:
    unissued = next(iter(Code.pool("WEB10", limit=1))).code

    assert validate(unissued.lower(), "cust-1") == {
        "valid": False,
        "discount": {"amount": 0, "currency": "JPY"},
        "reasons": ["code_not_issued"],
    }
    answer = redeem(unissued, "cust-1", "order-1")
    assert (answer.status, answer.error_code) == (422, "code_not_issued")
    assert answer.body["error"]["details"] == {"reasons": ["code_not_issued"]}
    stored = get_code(unissued)
    assert stored is not None and (stored.uses, stored.issued_to) == (0, None)
    assert nothing_counted("WEB10", "cust-1")


def test_a_discount_worth_nothing_on_this_cart_is_no_discount(shop: None) -> None:
    issued = issue("WEB10", "cust-1")

    assert validate(issued, "cust-1", cart_body=TINY_CART) == {
        "valid": False,
        "discount": {"amount": 0, "currency": "JPY"},
        "reasons": ["no_discount"],
    }
    answer = redeem(issued, "cust-1", "order-1", cart_body=TINY_CART)
    assert (answer.status, answer.error_code) == (422, "no_discount")
    assert answer.body["error"]["details"] == {"reasons": ["no_discount"]}
    stored = get_code(issued)
    assert stored is not None and stored.uses == 0
    assert nothing_counted("WEB10", "cust-1")
    # The same code on a cart worth a discount still redeems: nothing was used up.
    assert redeem(issued, "cust-1", "order-2").status == 201


def test_an_offer_a_new_version_dropped_is_archived_for_a_warm_container(shop: None) -> None:
    assert redeem("FLAT-500", "cust-1", "order-1").status == 201  # the container caches v1
    without_flat = copy.deepcopy(SHOP)
    without_flat["offers"] = [SHOP["offers"][0]]
    publish(without_flat, version=2)
    # The loader retires what a version drops, after the publish (its `_complete`).
    CampaignStore().retire_offers(parse_campaign(without_flat), 2, ["FLAT500"])

    answer = redeem("FLAT-500", "cust-2", "order-2")
    assert (answer.status, answer.error_code) == (422, "offer_archived")
    assert validate("FLAT-500", "cust-2")["reasons"] == ["offer_archived"]
    assert offer_total("FLAT500") == 1 and customer_uses("cust-2", "FLAT500") == 0
    assert budget_used(CAMPAIGN_ID) == (500, 1)
