"""Offers on the local cloud: limits and budgets that hold under concurrent checkouts.

Each test uploads its own campaign (a marketer's file through the bucket notification),
then plays storefronts against the API over HTTP, many at once, and reads the counters
back through DynamoDB. The local cloud serialises requests into moto but runs the API's
handlers concurrently, so every read-then-write race a handler could have is exercised;
only DynamoDB's conditions decide who wins.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from infra.local.cloud import LocalCloud
from tests.integration.test_campaign_files import Marketer, marketer, subscribe_queue
from tests.integration.test_wiring import eventually

__all__ = ["marketer"]  # fixture, found by name

CART = {"currency": "JPY", "items": [{"sku": "TENT-2", "quantity": 1, "unitPrice": 20000}]}


class Storefront:
    def __init__(self, cloud: LocalCloud) -> None:
        self.base = cloud.outputs["ApiUrl"].rstrip("/")
        self.key = cloud.outputs["ApiKey"]

    def post(
        self, path: str, body: dict[str, Any], idempotency_key: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"x-api-key": self.key, "Content-Type": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        request = urllib.request.Request(
            self.base + path, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def redeem(
        self, code: str, customer: str, order: str, idempotency_key: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        body = {
            "code": code,
            "customerId": customer,
            "orderId": order,
            "channel": "online",
            "cart": CART,
        }
        return self.post("/v1/redemptions", body, idempotency_key)

    def roll_back(self, redemption_id: str) -> tuple[int, dict[str, Any]]:
        return self.post(f"/v1/redemptions/{redemption_id}/rollback", {"reason": "order_cancelled"})


@pytest.fixture(scope="module")
def storefront(cloud: LocalCloud) -> Storefront:
    return Storefront(cloud)


def at_once(calls: list[Callable[[], tuple[int, dict[str, Any]]]]) -> list[tuple[int, Any]]:
    """Run every call concurrently (one thread each) and return their answers in order."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def statuses(answers: list[tuple[int, Any]]) -> Counter[tuple[int, str]]:
    return Counter(
        (status, "ok" if status < 300 else body["error"]["code"]) for status, body in answers
    )


def publish_shared_offer(
    marketer: Marketer,
    *,
    discount: int = 500,
    max_total: int | None = None,
    budget: dict[str, int] | None = None,
) -> tuple[str, str, str]:
    """A running offer campaign with one shared code; returns (campaign, offer, code)."""
    suffix = uuid.uuid4().hex[:8]
    campaign_id, offer_id, code = f"it-offers-{suffix}", f"IT-{suffix}", f"SALE-{suffix}".upper()
    now = datetime.now(UTC)
    usage = {"max_total": max_total} if max_total is not None else {}
    document = {
        "id": campaign_id,
        "name": "Integration sale",
        "kind": "offer",
        "currency": "JPY",
        "timezone": "Asia/Tokyo",
        "starts_at": (now - timedelta(days=1)).isoformat(),
        "ends_at": (now + timedelta(days=30)).isoformat(),
        "budget": budget or {"amount": 10_000_000},
        "eligibility": {"channels": ["online"]},
        "offers": [
            {
                "id": offer_id,
                "channel": "online",
                "discount": {"amount": discount},
                "codes": {"mode": "shared", "code": code},
                "usage": usage,
            }
        ],
    }
    report = marketer.upload(f"campaigns/{campaign_id}.json", json.dumps(document).encode())
    assert report["status"] == "published", report
    return campaign_id, offer_id, code


def counter(item: dict[str, Any] | None, name: str) -> int:
    assert item is not None
    return int(item.get(name, {"N": "0"})["N"])


def test_fifty_checkouts_of_a_code_limited_to_ten(
    marketer: Marketer, storefront: Storefront
) -> None:
    campaign_id, offer_id, code = publish_shared_offer(marketer, max_total=10)
    answers = at_once([partial(storefront.redeem, code, f"c{n}", f"o{n}") for n in range(50)])
    assert statuses(answers) == {(201, "ok"): 10, (409, "offer_limit_reached"): 40}
    assert counter(marketer.item(f"OFFER#{offer_id}", "META"), "redemptionsCount") == 10
    campaign = marketer.campaign(campaign_id)
    assert counter(campaign, "budgetUsedCount") == 10
    assert counter(campaign, "budgetUsedAmount") == 5000


def test_concurrent_checkouts_never_overspend_the_budget(
    marketer: Marketer, storefront: Storefront
) -> None:
    # 2,000 yen covers six discounts of 300 (1,800); a seventh would overspend by 100.
    campaign_id, _, code = publish_shared_offer(marketer, discount=300, budget={"amount": 2000})
    answers = at_once([partial(storefront.redeem, code, f"c{n}", f"o{n}") for n in range(30)])
    assert statuses(answers) == {(201, "ok"): 6, (409, "budget_exhausted"): 24}
    campaign = marketer.campaign(campaign_id)
    assert counter(campaign, "budgetUsedAmount") == 1800
    assert counter(campaign, "budgetUsedCount") == 6


def test_the_reward_count_budget_holds_too(marketer: Marketer, storefront: Storefront) -> None:
    campaign_id, _, code = publish_shared_offer(marketer, budget={"max_rewards": 7})
    answers = at_once([partial(storefront.redeem, code, f"c{n}", f"o{n}") for n in range(25)])
    assert statuses(answers) == {(201, "ok"): 7, (409, "budget_exhausted"): 18}
    assert counter(marketer.campaign(campaign_id), "budgetUsedCount") == 7


def test_rollbacks_racing_redemptions_leave_exact_counts(
    marketer: Marketer, storefront: Storefront
) -> None:
    campaign_id, offer_id, code = publish_shared_offer(marketer, max_total=10)
    first = [storefront.redeem(code, f"c{n}", f"o{n}") for n in range(10)]
    assert all(status == 201 for status, _ in first)
    rolled = [body["redemptionId"] for _, body in first[:5]]

    rollbacks = [lambda r=r: storefront.roll_back(r) for r in rolled]
    redemptions = [lambda n=n: storefront.redeem(code, f"late{n}", f"late{n}") for n in range(15)]
    answers = at_once([*rollbacks, *redemptions])
    assert all(status == 200 for status, _ in answers[:5])
    late = statuses(answers[5:])
    # Each rollback frees one place; late redemptions take at most those five.
    assert late[(201, "ok")] <= 5
    assert late[(201, "ok")] + late[(409, "offer_limit_reached")] == 15
    expected = 10 - 5 + late[(201, "ok")]
    assert counter(marketer.item(f"OFFER#{offer_id}", "META"), "redemptionsCount") == expected
    campaign = marketer.campaign(campaign_id)
    assert counter(campaign, "budgetUsedCount") == expected
    assert counter(campaign, "budgetUsedAmount") == expected * 500


def test_a_rollback_sent_ten_times_at_once_releases_once(
    marketer: Marketer, storefront: Storefront
) -> None:
    campaign_id, offer_id, code = publish_shared_offer(marketer, max_total=10)
    _, redeemed = storefront.redeem(code, "c1", "o1")
    storefront.redeem(code, "c2", "o2")
    answers = at_once([lambda: storefront.roll_back(redeemed["redemptionId"])] * 10)
    assert [status for status, _ in answers] == [200] * 10
    assert sorted(body["alreadyRolledBack"] for _, body in answers) == [False] + [True] * 9
    assert counter(marketer.item(f"OFFER#{offer_id}", "META"), "redemptionsCount") == 1
    assert counter(marketer.campaign(campaign_id), "budgetUsedAmount") == 500


def test_one_idempotency_key_sent_at_once_redeems_once(
    marketer: Marketer, storefront: Storefront
) -> None:
    _, offer_id, code = publish_shared_offer(marketer)
    answers = at_once([lambda: storefront.redeem(code, "c1", "o1", idempotency_key="pay-1")] * 8)
    created = {body["redemptionId"] for status, body in answers if status == 201}
    assert len(created) == 1
    # A duplicate that arrives while the first still runs is told so; none runs twice.
    assert {status for status, _ in answers} <= {201, 409}
    assert all(
        body["error"]["code"] == "idempotency_key_in_use"
        for status, body in answers
        if status == 409
    )
    replay = storefront.redeem(code, "c1", "o1", idempotency_key="pay-1")
    assert replay[0] == 201 and replay[1]["redemptionId"] in created
    assert counter(marketer.item(f"OFFER#{offer_id}", "META"), "redemptionsCount") == 1


def test_redemptions_and_rollbacks_reach_the_bus(
    cloud: LocalCloud, marketer: Marketer, storefront: Storefront
) -> None:
    events = cloud.client("events")
    bus = cloud.outputs["EventBusName"]
    rule = f"it-offers-{uuid.uuid4().hex[:12]}"

    def subscribe(queue_arn: str) -> None:
        pattern = {"source": ["rebates.offers"]}
        events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}])

    read = subscribe_queue(cloud, subscribe)
    _, offer_id, code = publish_shared_offer(marketer)
    status, issued = storefront.post(f"/v1/offers/{offer_id}/codes", {"customerId": "c1"})
    assert status == 201 and issued["code"] == code
    _, redeemed = storefront.redeem(code, "c1", "o1")
    assert storefront.roll_back(redeemed["redemptionId"])[0] == 200

    seen: list[dict[str, Any]] = []

    def all_three() -> list[dict[str, Any]] | None:
        seen.extend(read())
        mine = [e for e in seen if e["detail"].get("offerId") == offer_id]
        return mine if len(mine) >= 3 else None

    mine = eventually(all_three, timeout=30)
    assert sorted(e["detail-type"] for e in mine) == [
        "OfferCodeIssued",
        "OfferRedeemed",
        "RedemptionRolledBack",
    ]
    redeemed_event = next(e for e in mine if e["detail-type"] == "OfferRedeemed")
    assert redeemed_event["detail"]["redemptionId"] == redeemed["redemptionId"]
    assert redeemed_event["detail"]["discount"] == {"amount": 500, "currency": "JPY"}
