"""The wallet on the local cloud: spends and credits that hold under concurrent storefronts,
retries that change nothing, the scheduled sweep on a moved clock, and the events.

Each test publishes its campaign through the campaigns bucket (the marketer's path), then
plays storefronts against the API over HTTP, many at once, and checks the wallet through
the API, the events through a queue on the bus, and the ledger with `rebates wallet
audit` against the running cloud. The local cloud serialises requests into moto but runs
the handlers concurrently, so only DynamoDB's conditions decide who wins.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import cli.local
import cli.target
from cli.main import main
from functions.core.clock import format_instant, parse_instant
from infra.constructs.wallet import SWEEP_SCHEDULE_ID
from infra.local.cloud import LocalCloud
from tests.integration.test_campaign_files import EXAMPLES, Marketer, marketer, subscribe_queue
from tests.integration.test_wiring import eventually

__all__ = ["marketer"]  # fixture, found by name

TENT = {"sku": "TENT-2", "category": "tents", "quantity": 1, "unitPrice": 20000}


def tent(category: str) -> dict[str, Any]:
    """A 20,000 line only the campaign with `category` (of its own) rewards."""
    return {**TENT, "category": category}


class Shop:
    """A storefront calling the wallet routes over HTTP with the stack's key."""

    def __init__(self, cloud: LocalCloud) -> None:
        self.base = cloud.outputs["ApiUrl"].rstrip("/")
        self.key = cloud.outputs["ApiKey"]

    def call(
        self, method: str, path: str, body: Any = None, idempotency_key: str | None = None
    ) -> tuple[int, Any]:
        headers = {"x-api-key": self.key, "Content-Type": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def purchase(
        self,
        order_id: str,
        customer_id: str,
        *,
        currency: str = "JPY",
        placed_at: datetime | None = None,
        items: list[dict[str, Any]] | None = None,
    ) -> tuple[int, Any]:
        lines = items or [TENT]
        body = {
            "orderId": order_id,
            "customerId": customer_id,
            "channel": "online",
            "placedAt": format_instant(placed_at or datetime.now(UTC)),
            "currency": currency,
            "items": lines,
            "total": sum(line["unitPrice"] * line["quantity"] for line in lines),
        }
        return self.call("POST", "/v1/purchases", body)

    def refund(self, order_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        return self.call("POST", f"/v1/purchases/{order_id}/refunds", body)

    def spend(
        self, customer_id: str, order_id: str, amount: int, currency: str = "JPY"
    ) -> tuple[int, Any]:
        body = {"orderId": order_id, "amount": amount, "currency": currency}
        return self.call("POST", f"/v1/customers/{customer_id}/wallet/spend", body)

    def wallet(self, customer_id: str) -> dict[str, Any]:
        status, body = self.call("GET", f"/v1/customers/{customer_id}/wallet")
        assert status == 200, body
        return dict(body)


@pytest.fixture(scope="module")
def shop(cloud: LocalCloud) -> Shop:
    return Shop(cloud)


@pytest.fixture
def rebates(cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """`rebates ...` against this session's local cloud (its outputs file)."""
    assert cloud.config.outputs_path is not None
    outputs: Path = cloud.config.outputs_path
    monkeypatch.setattr(cli.target, "LOCAL_OUTPUTS", outputs)
    monkeypatch.setattr(cli.local, "OUTPUTS", outputs)

    def run(*argv: str) -> int:
        return main(["--target", "local", *argv])

    return run


@pytest.fixture
def clock(cloud: LocalCloud) -> Iterator[LocalCloud]:
    """The handlers' clock, put back where it was after the test."""
    assert cloud.runtime is not None
    before = cloud.runtime.clock_offset_seconds
    try:
        yield cloud
    finally:
        cloud.set_clock_offset(before)


def wallet_events(cloud: LocalCloud) -> Callable[[], list[Any]]:
    """Every `rebates.wallet` event on the bus from now on (envelopes)."""
    events = cloud.client("events")
    bus = cloud.outputs["EventBusName"]
    rule = f"it-wallet-{uuid.uuid4().hex[:12]}"

    def subscribe(queue_arn: str) -> None:
        pattern = {"source": ["rebates.wallet"]}
        events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}])

    return subscribe_queue(cloud, subscribe)


def events_of(read: Callable[[], list[Any]], customer_id: str, count: int) -> list[Any]:
    """At least `count` events about `customer_id` (waiting for the outbox), by time."""
    seen: list[Any] = []

    def enough() -> list[Any] | None:
        seen.extend(read())
        mine = [e for e in seen if e["detail"].get("customerId") == customer_id]
        return mine if len(mine) >= count else None

    return eventually(enough, timeout=30)


def publish_cashback(marketer: Marketer, **changes: Any) -> tuple[str, str]:
    """A running JPY cashback campaign of its own: 1,000 yen per purchase, at once; the
    campaign id and the category only it rewards (the session's campaigns stay active, so
    each test's purchases must earn in its own campaign alone)."""
    suffix = uuid.uuid4().hex[:8]
    campaign_id, category = f"it-cashback-{suffix}", f"it-category-{suffix}"
    now = datetime.now(UTC)
    document: dict[str, Any] = {
        "id": campaign_id,
        "name": "Integration cashback",
        "kind": "cashback",
        "currency": "JPY",
        "timezone": "UTC",
        "starts_at": (now - timedelta(days=1)).isoformat(),
        "ends_at": (now + timedelta(days=30)).isoformat(),
        "budget": {"amount": 10_000_000},
        "eligibility": {"channels": ["online"], "categories": [category]},
        "reward": {"fixed": 1000},
        "cashback": {"pending_days": 0},
    }
    document.update(changes)
    report = marketer.upload(f"campaigns/{campaign_id}.json", json.dumps(document).encode())
    assert report["status"] == "published", report
    return campaign_id, category


def earning_in(campaign_id: str, answer: dict[str, Any]) -> dict[str, Any]:
    (earning,) = [e for e in answer["earnings"] if e["campaignId"] == campaign_id]
    return dict(earning)


def at_once(calls: list[Callable[[], tuple[int, Any]]]) -> list[tuple[int, Any]]:
    """Run every call concurrently (one thread each) and return their answers in order."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def statuses(answers: list[tuple[int, Any]]) -> Counter[tuple[int, str]]:
    return Counter(
        (status, "ok" if status < 300 else body["error"]["code"]) for status, body in answers
    )


def yen(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "JPY"}


# -- spends -------------------------------------------------------------------------------


def test_twenty_concurrent_spends_against_a_balance_covering_five(
    marketer: Marketer, shop: Shop, rebates: Callable[..., int]
) -> None:
    campaign_id, category = publish_cashback(marketer)
    customer = f"it-spender-{uuid.uuid4().hex[:8]}"
    status, earned = shop.purchase(f"{customer}-order", customer, items=[tent(category)])
    assert status == 202 and earning_in(campaign_id, earned)["outcome"] == "credited", earned
    assert shop.wallet(customer)["available"] == yen(1000)

    answers = at_once(
        [partial(shop.spend, customer, f"{customer}-checkout-{n}", 200) for n in range(20)]
    )

    assert statuses(answers) == {(201, "ok"): 5, (409, "insufficient_balance"): 15}
    drawn = [body for status, body in answers if status == 201]
    assert sorted(body["available"]["amount"] for body in drawn) == [0, 200, 400, 600, 800]
    view = shop.wallet(customer)
    assert (view["available"], view["pending"], view["owed"]) == (yen(0), yen(0), yen(0))
    assert rebates("wallet", "audit", customer) == 0


# -- a purchase and a refund, each sent twice ------------------------------------------------


def test_a_purchase_and_a_refund_each_replayed_are_one_of_each(
    cloud: LocalCloud,
    marketer: Marketer,
    shop: Shop,
    clock: LocalCloud,
    rebates: Callable[..., int],
) -> None:
    # The example campaign runs in the summer of 2027: the storefront's clock is moved there.
    report = marketer.upload(
        "campaigns/summer-cashback-2027.yaml",
        (EXAMPLES / "summer-cashback-2027.yaml").read_bytes(),
    )
    assert report["status"] == "published", report
    placed = datetime(2027, 7, 4, 16, 0, tzinfo=UTC)
    clock.set_clock_offset(int((placed - datetime.now(UTC)).total_seconds()) + 60)
    read = wallet_events(cloud)
    customer = f"it-camper-{uuid.uuid4().hex[:8]}"
    order = f"{customer}-order"

    first = shop.purchase(order, customer, currency="USD", placed_at=placed)
    again = shop.purchase(order, customer, currency="USD", placed_at=placed)

    assert first[0] == 202, first
    assert again == first
    earning = earning_in("summer-cashback-2027", first[1])
    # 5% of the $200.00 tent, pending for the 30-day return window.
    assert (earning["outcome"], earning["amount"]) == (
        "credited",
        {"amount": 1000, "currency": "USD"},
    )
    assert parse_instant(earning["availableAt"]) > placed + timedelta(days=29)

    half = {"refundId": f"{order}-refund", "amount": 10000, "currency": "USD"}
    refunded = shop.refund(order, half)
    refunded_again = shop.refund(order, half)

    assert refunded[0] == 202, refunded
    assert refunded_again == refunded
    (reversal,) = refunded[1]["reversals"]
    assert (reversal["reversed"], reversal["owed"]) == (
        {"amount": 500, "currency": "USD"},
        {"amount": 0, "currency": "USD"},
    )
    view = shop.wallet(customer)
    assert view["pending"] == {"amount": 500, "currency": "USD"}
    assert view["nextRelease"]["amount"] == {"amount": 500, "currency": "USD"}

    mine = events_of(read, customer, 4)
    assert sorted(e["detail-type"] for e in mine) == [
        "CashbackCredited",
        "CashbackReversed",
        "PurchaseRecorded",
        "PurchaseRefunded",
    ]
    assert len({e["detail"]["eventId"] for e in mine}) == 4
    assert rebates("wallet", "audit", customer) == 0


# -- the sweep on a moved clock ---------------------------------------------------------------


def test_the_sweep_fired_on_a_moved_clock_releases_then_expires_once(
    cloud: LocalCloud,
    marketer: Marketer,
    shop: Shop,
    clock: LocalCloud,
    rebates: Callable[..., int],
) -> None:
    campaign_id, category = publish_cashback(
        marketer, cashback={"pending_days": 1, "expires_after_days": 1}
    )
    read = wallet_events(cloud)
    customer = f"it-sweeper-{uuid.uuid4().hex[:8]}"
    status, earned = shop.purchase(f"{customer}-order", customer, items=[tent(category)])
    assert status == 202, earned
    available_at = parse_instant(earning_in(campaign_id, earned)["availableAt"])
    assert shop.wallet(customer)["pending"] == yen(1000)

    # Fired before it is due: nothing moves.
    assert rebates("local", "fire", SWEEP_SCHEDULE_ID) == 0
    assert shop.wallet(customer)["pending"] == yen(1000)

    def move_to(instant: datetime) -> None:
        offset = int((instant - datetime.now(UTC)).total_seconds())
        assert rebates("local", "clock", "--offset", f"{offset}s") == 0

    move_to(available_at + timedelta(minutes=30))
    assert rebates("local", "fire", SWEEP_SCHEDULE_ID) == 0
    released = shop.wallet(customer)
    assert (released["available"], released["pending"]) == (yen(1000), yen(0))
    assert released["nextExpiry"]["amount"] == yen(1000)
    expires_at = parse_instant(released["nextExpiry"]["at"])

    # Fired again the same day: it released once.
    assert rebates("local", "fire", SWEEP_SCHEDULE_ID) == 0
    assert shop.wallet(customer)["entries"] == released["entries"]

    move_to(expires_at + timedelta(minutes=30))
    assert rebates("local", "fire", SWEEP_SCHEDULE_ID) == 0
    assert rebates("local", "fire", SWEEP_SCHEDULE_ID) == 0
    expired = shop.wallet(customer)
    assert (expired["available"], expired["pending"]) == (yen(0), yen(0))
    assert [e["kind"] for e in expired["entries"]] == ["expire", "release", "credit"]

    mine = events_of(read, customer, 4)
    assert [e["detail-type"] for e in mine].count("CashbackAvailable") == 1
    assert [e["detail-type"] for e in mine].count("CashbackExpired") == 1
    assert rebates("wallet", "audit", customer) == 0


# -- the budget under concurrent purchases --------------------------------------------------------


def test_thirty_concurrent_purchases_against_a_budget_covering_ten_credit_ten(
    marketer: Marketer, shop: Shop, rebates: Callable[..., int]
) -> None:
    campaign_id, category = publish_cashback(
        marketer, reward={"fixed": 500}, budget={"amount": 5000}
    )
    run = uuid.uuid4().hex[:8]
    answers = at_once(
        [
            partial(
                shop.purchase,
                f"it-budget-{run}-order-{n}",
                f"it-budget-{run}-{n}",
                items=[tent(category)],
            )
            for n in range(30)
        ]
    )

    assert {status for status, _ in answers} == {202}
    outcomes = Counter(earning_in(campaign_id, body)["outcome"] for _, body in answers)
    assert outcomes == {"credited": 10, "budget_exhausted": 20}
    campaign = marketer.campaign(campaign_id)
    assert (campaign["budgetUsedAmount"]["N"], campaign["budgetUsedCount"]["N"]) == ("5000", "10")
    credited = [
        body["customerId"]
        for _, body in answers
        if earning_in(campaign_id, body)["outcome"] == "credited"
    ]
    assert sum(shop.wallet(customer)["available"]["amount"] for customer in credited) == 5000
    assert rebates("wallet", "audit", credited[0]) == 0
