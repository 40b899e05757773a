"""Calling the offers API as API Gateway would, and reading back what it counted.

Shared by the offer tests that publish a campaign of their own and drive the API through
its resolver on in-process moto.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from functions.campaigns.dal import CampaignStore
from functions.campaigns.models import get_campaign, get_offer
from functions.offers.handlers import api
from functions.offers.models import CustomerUsage
from tests.support.api_calls import api_call
from tests.support.campaigns import publish_campaign

# Inside every campaign window the offer tests publish.
OPEN = datetime(2027, 5, 3, 12, 0, tzinfo=UTC)

# A week of offers: a shared code, unique online codes, unique in-store codes.
SHOP: dict[str, Any] = {
    "id": "shop-2027",
    "name": "Shop week",
    "kind": "offer",
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "starts_at": "2027-05-01T10:00:00+09:00",
    "ends_at": "2027-05-16T00:00:00+09:00",
    "budget": {"amount": 100_000, "max_rewards": 50},
    "eligibility": {"channels": ["online", "in_store"], "min_purchase": 3000},
    "offers": [
        {
            "id": "WELCOME",
            "channel": "both",
            "discount": {"amount": 500},
            "codes": {"mode": "shared", "code": "welcome-500"},
            "usage": {"max_total": 4, "per_customer": 2},
        },
        {
            "id": "WEB10",
            "channel": "online",
            "discount": {"percentage": 10, "max": 2000},
            "codes": {"mode": "unique", "prefix": "WEB", "count": 6},
            "usage": {"per_customer": 1},
        },
        {
            "id": "TILL300",
            "channel": "in_store",
            "discount": {"amount": 300},
            "codes": {"mode": "unique", "prefix": "TILL", "count": 2},
        },
    ],
}


def cart(*lines: tuple[str, int, int], currency: str = "JPY") -> dict[str, Any]:
    return {
        "currency": currency,
        "items": [
            {"sku": sku, "category": "shoes", "quantity": qty, "unitPrice": price}
            for sku, qty, price in lines
        ],
    }


BIG_CART = cart(("TRAIL-01", 1, 12000))


def publish(document: dict[str, Any], version: int = 1) -> None:
    """Publish `document` as the loader does once it has decided to (no S3 involved)."""
    store = CampaignStore()
    config = publish_campaign(document, OPEN, version=version, store=store)
    store.store_shared_codes(config, OPEN)
    store.provision_unique_codes(config)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def error_code(self) -> str:
        return str(self.body["error"]["code"])


def call(method: str, path: str, body: Any = None, *, key: str | None = None) -> Answer:
    return Answer(*api_call(api.app, method, path, body, key=key))


def issue(offer_id: str, customer_id: str) -> str:
    """The customer's code for the offer, issued through the API."""
    answer = call("POST", f"/v1/offers/{offer_id}/codes", {"customerId": customer_id})
    assert answer.status == 201, answer.body
    return str(answer.body["code"])


def validate(
    code: str, customer_id: str, *, cart_body: dict[str, Any] = BIG_CART
) -> dict[str, Any]:
    body = {"code": code, "customerId": customer_id, "channel": "online", "cart": cart_body}
    answer = call("POST", "/v1/redemptions/validate", body)
    assert answer.status == 200, answer.body
    return dict(answer.body)


def redeem(
    code: str, customer_id: str, order_id: str, *, cart_body: dict[str, Any] = BIG_CART
) -> Answer:
    body = {
        "code": code,
        "customerId": customer_id,
        "orderId": order_id,
        "channel": "online",
        "cart": cart_body,
    }
    return call("POST", "/v1/redemptions", body)


def roll_back(redemption_id: str, reason: str = "order_cancelled") -> Answer:
    return call("POST", f"/v1/redemptions/{redemption_id}/rollback", {"reason": reason})


def budget_used(campaign_id: str) -> tuple[int, int]:
    """(amount, count) of the campaign's budget used, as stored."""
    campaign = get_campaign(campaign_id)
    assert campaign is not None
    return campaign.budget_used_amount, campaign.budget_used_count


def offer_total(offer_id: str) -> int:
    offer = get_offer(offer_id)
    assert offer is not None
    return offer.redemptions_count


def customer_uses(customer_id: str, offer_id: str) -> int:
    usage = CustomerUsage.get_or_none(*CustomerUsage.key(customer_id, offer_id))
    return 0 if usage is None else usage.uses
