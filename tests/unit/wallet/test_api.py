"""The wallet API on in-process moto: purchases, refunds, the wallet, spends and cancels.

Cashback campaigns are published the way the loader publishes them (`CampaignStore`), then
each test calls the API as API Gateway would. After every change the wallet's own audit
must agree, and every refusal is checked to have written nothing: the Wallet table and
the campaigns' budget counters are compared before and after. Concurrency is proven
through the local cloud (tests/integration/test_wallet.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from functions.campaigns.models import get_campaign
from functions.core.clock import FixedClock, frozen_at
from functions.core.idempotency import REPLAYED_HEADER
from functions.core.models import resolve_table_name
from functions.core.tables import WALLET
from functions.wallet import errors
from functions.wallet.dal import WalletStore
from functions.wallet.handlers import api
from infra.local.proxy_event import lambda_context, proxy_event
from tests.support.api_calls import api_call
from tests.support.aws import aws_env, tables
from tests.support.campaigns import publish_campaign
from tests.unit.core.log_capture import metric_values

__all__ = ["aws_env", "tables"]

OPEN = datetime(2027, 5, 10, 3, 0, tzinfo=UTC)
PLACED = "2027-05-10T12:00:00+09:00"

# 10% back on tents and backpacks of 5,000 yen or more, at most 3,000, spendable at once.
CASHBACK: dict[str, Any] = {
    "id": "camp-cashback-2027",
    "name": "Camping cashback",
    "kind": "cashback",
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "starts_at": "2027-05-01T00:00:00+09:00",
    "ends_at": "2027-06-01T00:00:00+09:00",
    "budget": {"amount": 100_000, "max_rewards": 50},
    "eligibility": {
        "channels": ["online"],
        "categories": ["tents", "backpacks"],
        "min_purchase": 5000,
    },
    "reward": {"percentage": 10, "max_per_reward": 3000},
    "limits": {"per_customer": 5},
    "cashback": {"pending_days": 0, "expires_after_days": 90},
}


def publish(document: dict[str, Any], version: int = 1) -> None:
    publish_campaign(document, OPEN, version=version)


@pytest.fixture
def clock(tables: list[str]) -> Iterator[FixedClock]:
    # The API container's campaign cache would otherwise carry one test's tables over.
    api.store.campaigns.clear()
    publish(CASHBACK)
    with frozen_at(OPEN) as fixed:
        yield fixed
    api.store.campaigns.clear()


def call(
    method: str, path: str, body: Any = None, **options: Any
) -> tuple[int, Any, dict[str, str]]:
    return api_call(api.app, method, path, body, **options)


def line(sku: str, category: str, quantity: int, price: int) -> dict[str, Any]:
    return {"sku": sku, "category": category, "quantity": quantity, "unitPrice": price}


TENT = line("TENT-2", "tents", 1, 20000)
STOVE = line("STOVE-1", "stoves", 2, 3000)


def purchase_body(
    order_id: str = "order-1", customer_id: str = "cust-1", **changes: Any
) -> dict[str, Any]:
    body = {
        "orderId": order_id,
        "customerId": customer_id,
        "channel": "online",
        "placedAt": PLACED,
        "currency": "JPY",
        "items": [TENT, STOVE],
        "total": 26000,
    }
    body.update(changes)
    return body


def purchase(
    order_id: str = "order-1", customer_id: str = "cust-1", **changes: Any
) -> dict[str, Any]:
    status, body, _ = call("POST", "/v1/purchases", purchase_body(order_id, customer_id, **changes))
    assert status == 202, body
    return dict(body)


def refund(order_id: str, body: dict[str, Any], **options: Any) -> tuple[int, Any]:
    status, answer, _ = call("POST", f"/v1/purchases/{order_id}/refunds", body, **options)
    return status, answer


def spend(
    customer_id: str, order_id: str, amount: int, currency: str = "JPY", **options: Any
) -> tuple[int, Any]:
    body = {"orderId": order_id, "amount": amount, "currency": currency}
    status, answer, _ = call("POST", f"/v1/customers/{customer_id}/wallet/spend", body, **options)
    return status, answer


def wallet(customer_id: str = "cust-1", **query: str) -> dict[str, Any]:
    status, body, _ = call("GET", f"/v1/customers/{customer_id}/wallet", query=query or None)
    assert status == 200, body
    return dict(body)


def yen(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "JPY"}


def error_code(answer: dict[str, Any]) -> str:
    return str(answer["error"]["code"])


def audited(*customers: str) -> None:
    for customer in customers:
        report = WalletStore().audit(customer)
        assert report.ok, report.differences


def budget_used() -> tuple[int, int]:
    campaign = get_campaign(CASHBACK["id"])
    assert campaign is not None
    return campaign.budget_used_amount, campaign.budget_used_count


def wallet_items() -> list[dict[str, Any]]:
    client = boto3.client("dynamodb")
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=resolve_table_name(WALLET)):
        items += page["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def state() -> tuple[list[dict[str, Any]], tuple[int, int]]:
    """Everything a refusal must leave as it was: the wallet table and the budget."""
    return wallet_items(), budget_used()


# -- purchases ----------------------------------------------------------------------------


def test_a_purchase_earns_cashback_on_its_eligible_lines(clock: FixedClock) -> None:
    answer = purchase()

    # 10% of the tent (the stoves are not eligible), available at once (pending_days 0).
    assert answer == {
        "orderId": "order-1",
        "customerId": "cust-1",
        "earnings": [
            {
                "campaignId": CASHBACK["id"],
                "outcome": "credited",
                "amount": yen(2000),
                "availableAt": "2027-05-10T03:00:00Z",
            }
        ],
    }
    view = wallet()
    assert (view["available"], view["pending"], view["owed"]) == (yen(2000), yen(0), yen(0))
    assert [entry["kind"] for entry in view["entries"]][-1] == "credit"
    assert budget_used() == (2000, 1)
    audited("cust-1")


def test_a_purchase_that_earns_nothing_says_why(clock: FixedClock) -> None:
    answer = purchase(items=[line("STOVE-1", "stoves", 1, 9000)], total=9000)
    assert answer["earnings"] == [
        {
            "campaignId": CASHBACK["id"],
            "outcome": "not_eligible",
            "amount": None,
            "availableAt": None,
        }
    ]
    small = purchase("order-2", items=[line("TENT-1", "tents", 1, 4000)], total=4000)
    assert [e["outcome"] for e in small["earnings"]] == ["below_min_purchase"]
    in_store = purchase("order-3", channel="in_store")
    assert [e["outcome"] for e in in_store["earnings"]] == ["wrong_channel"]
    assert wallet()["available"] == yen(0)
    assert budget_used() == (0, 0)


def test_the_same_order_twice_is_one_purchase(clock: FixedClock) -> None:
    first = purchase()
    before = state()
    assert purchase() == first
    assert state() == before

    status, answer, _ = call("POST", "/v1/purchases", purchase_body(total=27000))
    assert status == 409 and error_code(answer) == "purchase_conflict"
    assert state() == before
    audited("cust-1")


def test_an_idempotency_key_replays_the_first_answer(clock: FixedClock) -> None:
    body = purchase_body()
    status, first, _ = call("POST", "/v1/purchases", body, key="buy-1")
    assert status == 202
    status, again, headers = call("POST", "/v1/purchases", body, key="buy-1")
    assert (status, again, headers.get(REPLAYED_HEADER)) == (202, first, "true")
    status, reused, _ = call("POST", "/v1/purchases", purchase_body("order-2"), key="buy-1")
    assert status == 409 and error_code(reused) == "idempotency_key_reused"


# -- refunds ------------------------------------------------------------------------------


def test_a_refund_of_half_reverses_half_and_a_replay_nothing_more(clock: FixedClock) -> None:
    purchase()
    status, answer = refund("order-1", {"refundId": "refund-1", "amount": 13000, "currency": "JPY"})
    assert status == 202, answer
    (reversal,) = answer["reversals"]
    assert answer["amount"] == yen(13000) and answer["refundedTotal"] == yen(13000)
    # keep floor(2000 * 13000 / 26000) = 1000: 1000 reversed, none of it spent.
    assert (reversal["campaignId"], reversal["reversed"], reversal["owed"]) == (
        CASHBACK["id"],
        yen(1000),
        yen(0),
    )
    assert wallet()["available"] == yen(1000)
    assert budget_used()[0] == 1000
    before = state()

    status, again = refund("order-1", {"refundId": "refund-1", "amount": 13000, "currency": "JPY"})
    assert (status, again) == (202, answer)
    assert state() == before
    status, other = refund("order-1", {"refundId": "refund-1", "amount": 100, "currency": "JPY"})
    assert status == 409 and error_code(other) == "refund_conflict"
    assert state() == before
    audited("cust-1")


def test_a_refund_of_spent_cashback_becomes_owed(clock: FixedClock) -> None:
    purchase()
    assert spend("cust-1", "checkout-1", 1500)[0] == 201
    status, answer = refund(
        "order-1", {"refundId": "refund-all", "amount": 26000, "currency": "JPY"}
    )
    assert status == 202, answer
    (reversal,) = answer["reversals"]
    assert (reversal["reversed"], reversal["owed"]) == (yen(2000), yen(1500))
    view = wallet()
    assert (view["available"], view["owed"]) == (yen(0), yen(1500))
    assert budget_used() == (0, 0)  # reversed whole: the reward's count comes back too
    audited("cust-1")


def test_a_refund_by_items_is_valued_at_the_order_s_prices(clock: FixedClock) -> None:
    purchase()
    status, answer = refund(
        "order-1", {"refundId": "refund-stoves", "items": [{"sku": "STOVE-1", "quantity": 2}]}
    )
    assert status == 202, answer
    assert answer["amount"] == yen(6000)
    status, too_many = refund(
        "order-1", {"refundId": "refund-more", "items": [{"sku": "STOVE-1", "quantity": 1}]}
    )
    assert status == 422 and error_code(too_many) == "unknown_item"
    status, unknown = refund(
        "order-1", {"refundId": "refund-x", "items": [{"sku": "NOPE", "quantity": 1}]}
    )
    assert status == 422 and error_code(unknown) == "unknown_item"
    audited("cust-1")


def test_refusals_of_a_refund_write_nothing(clock: FixedClock) -> None:
    status, missing = refund("order-404", {"refundId": "r1", "amount": 100, "currency": "JPY"})
    assert status == 404 and error_code(missing) == "order_not_found"
    assert state() == ([], (0, 0))

    purchase()
    before = state()
    refusals = [
        ({"refundId": "r2", "amount": 26001, "currency": "JPY"}, 422, "refund_exceeds_total"),
        ({"refundId": "r3", "amount": 100, "currency": "USD"}, 422, "currency_mismatch"),
    ]
    for body, expected, code in refusals:
        status, answer = refund("order-1", body)
        assert (status, error_code(answer)) == (expected, code), body
        assert state() == before, body
    # Over the total on the cumulative amount: 20,000 then 6,001.
    assert refund("order-1", {"refundId": "r4", "amount": 20000, "currency": "JPY"})[0] == 202
    after_first = state()
    status, over = refund("order-1", {"refundId": "r5", "amount": 6001, "currency": "JPY"})
    assert status == 422 and error_code(over) == "refund_exceeds_total"
    assert state() == after_first


def test_an_order_not_found_is_not_pinned_by_an_idempotency_key(clock: FixedClock) -> None:
    body = {"refundId": "r1", "amount": 13000, "currency": "JPY"}
    status, _ = refund("order-1", body, key="refund-key")
    assert status == 404
    purchase()  # the purchase arrives after its refund
    status, answer = refund("order-1", body, key="refund-key")
    assert status == 202, answer


# -- the wallet ---------------------------------------------------------------------------


def test_an_unknown_customer_has_an_empty_wallet(clock: FixedClock) -> None:
    view = wallet("nobody", currency="JPY")
    assert view["available"] == view["pending"] == view["owed"] == yen(0)
    assert (view["nextRelease"], view["nextExpiry"], view["entries"]) == (None, None, [])
    assert view["nextToken"] is None


def test_the_wallet_shows_the_next_expiry_and_pages_entries(clock: FixedClock) -> None:
    for n in range(4):
        purchase(f"order-{n}")
    view = wallet()
    assert view["available"] == yen(8000)
    assert view["nextExpiry"]["amount"] == yen(8000)
    assert view["nextRelease"] is None
    assert len(view["entries"]) == 4

    status, bad, _ = call("GET", "/v1/customers/cust-1/wallet", query={"nextToken": "not-a-token"})
    assert status == 400 and error_code(bad) == "invalid_request"
    status, lower, _ = call("GET", "/v1/customers/cust-1/wallet", query={"currency": "jpy"})
    assert status == 400 and error_code(lower) == "invalid_request"


def test_a_wallet_in_several_currencies_is_read_one_currency_at_a_time(clock: FixedClock) -> None:
    dollars = {**CASHBACK, "id": "usd-cashback-2027", "currency": "USD", "timezone": "UTC"}
    publish(dollars)
    purchase()
    purchase("order-usd", currency="USD")
    status, answer, _ = call("GET", "/v1/customers/cust-1/wallet")
    assert status == 400 and error_code(answer) == "currency_required"
    assert sorted(answer["error"]["details"]["currencies"]) == ["JPY", "USD"]
    assert wallet(currency="USD")["available"] == {"amount": 2000, "currency": "USD"}
    assert wallet(currency="JPY")["available"] == yen(2000)


# -- spends and cancels ------------------------------------------------------------------


def test_a_spend_draws_lots_and_a_replay_is_the_same_spend(clock: FixedClock) -> None:
    purchase("order-1")
    purchase("order-2")
    status, spent = spend("cust-1", "checkout-1", 3000)
    assert status == 201, spent
    assert spent["orderId"] == "checkout-1" and spent["amount"] == yen(3000)
    assert sum(lot["amount"]["amount"] for lot in spent["lots"]) == 3000
    assert spent["available"] == yen(1000)
    before = state()

    assert spend("cust-1", "checkout-1", 3000) == (201, spent)
    assert state() == before
    status, other = spend("cust-1", "checkout-1", 500)
    assert status == 409 and error_code(other) == "spend_conflict"
    assert state() == before
    audited("cust-1")


def test_spend_refusals_write_nothing(clock: FixedClock) -> None:
    purchase()
    before = state()
    for amount, currency, expected, code in [
        (2001, "JPY", 409, "insufficient_balance"),
        (100, "USD", 422, "currency_not_held"),
    ]:
        status, answer = spend("cust-1", "checkout-1", amount, currency)
        assert (status, error_code(answer)) == (expected, code)
        assert state() == before
    status, answer = spend("nobody", "checkout-1", 1)
    assert status in (409, 422) and error_code(answer) in (
        "insufficient_balance",
        "currency_not_held",
    )


def test_insufficient_balance_is_not_pinned_by_an_idempotency_key(clock: FixedClock) -> None:
    status, answer = spend("cust-1", "checkout-1", 1000, key="pay-1")
    assert status in (409, 422), answer
    purchase()
    status, answer = spend("cust-1", "checkout-1", 1000, key="pay-1")
    assert status == 201, answer


def test_contention_is_a_429_that_a_retry_with_the_key_runs_again(
    clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    purchase()
    real_spend = api.store.spend
    attempts: list[str] = []

    def busy_once(*args: Any, **kwargs: Any) -> Any:
        attempts.append("spend")
        if len(attempts) == 1:
            raise errors.Contended("the wallet is busy")
        return real_spend(*args, **kwargs)

    monkeypatch.setattr(api.store, "spend", busy_once)
    status, answer = spend("cust-1", "checkout-1", 500, key="pay-busy")
    assert status == 429 and error_code(answer) == "contended"
    assert answer["error"]["details"] == {"retryAfterSeconds": 1}
    status, answer = spend("cust-1", "checkout-1", 500, key="pay-busy")
    assert status == 201, answer
    assert attempts == ["spend", "spend"]


def test_a_cancel_returns_the_spend_once(clock: FixedClock) -> None:
    purchase()
    spend("cust-1", "checkout-1", 1500)
    status, cancelled, _ = call("POST", "/v1/customers/cust-1/wallet/spend/checkout-1/cancel")
    assert status == 200, cancelled
    assert cancelled["status"] == "cancelled" and cancelled["alreadyCancelled"] is False
    assert cancelled["amount"] == yen(1500)
    assert wallet()["available"] == yen(2000)
    before = state()

    status, again, _ = call("POST", "/v1/customers/cust-1/wallet/spend/checkout-1/cancel")
    assert status == 200 and again["alreadyCancelled"] is True
    assert state() == before
    status, missing, _ = call("POST", "/v1/customers/cust-1/wallet/spend/checkout-9/cancel")
    assert status == 404 and error_code(missing) == "spend_not_found"
    assert state() == before
    audited("cust-1")


# -- hostile input: a clear 400 in the error shape, and nothing written ---------------------

HOSTILE_PURCHASES = [
    pytest.param({"total": 26000.0}, id="float total"),
    pytest.param({"total": "26000"}, id="string total"),
    pytest.param({"total": 0}, id="zero total"),
    pytest.param({"total": -1}, id="negative total"),
    pytest.param({"total": 2**53}, id="total too large"),
    pytest.param({"currency": "ZZZ"}, id="unknown currency"),
    pytest.param({"currency": "jpy"}, id="lower-case currency"),
    pytest.param({"channel": "phone"}, id="unknown channel"),
    pytest.param({"placedAt": "2027-05-10T12:00:00"}, id="instant without offset"),
    pytest.param({"placedAt": "yesterday"}, id="not an instant"),
    pytest.param({"items": []}, id="no items"),
    pytest.param({"items": [{**TENT, "unitPrice": 200.5}]}, id="float price"),
    pytest.param({"items": [{**TENT, "quantity": 0}]}, id="zero quantity"),
    pytest.param({"items": [{**TENT, "unitPrice": -5}]}, id="negative price"),
    pytest.param({"customerId": ""}, id="empty customer"),
    pytest.param({"customerId": "x" * 129}, id="customer too long"),
    pytest.param({"customerId": "cust\n1"}, id="control character"),
    pytest.param({"orderId": "order 1"}, id="order id with a space"),
    pytest.param({"orderId": "o" * 129}, id="order id too long"),
    pytest.param({"surprise": True}, id="unknown key"),
]


@pytest.mark.parametrize("changes", HOSTILE_PURCHASES)
def test_a_hostile_purchase_is_400_and_writes_nothing(
    clock: FixedClock, changes: dict[str, Any]
) -> None:
    status, answer, _ = call("POST", "/v1/purchases", purchase_body(**changes))
    assert status == 400 and error_code(answer) == "invalid_request", answer
    assert set(answer["error"]) == {"code", "message", "details"}
    assert state() == ([], (0, 0))


@pytest.mark.parametrize(
    "missing", ["orderId", "customerId", "channel", "placedAt", "currency", "items", "total"]
)
def test_a_purchase_missing_a_key_is_400(clock: FixedClock, missing: str) -> None:
    body = purchase_body()
    del body[missing]
    status, answer, _ = call("POST", "/v1/purchases", body)
    assert status == 400 and error_code(answer) == "invalid_request"
    assert missing in answer["error"]["message"]
    assert state() == ([], (0, 0))


HOSTILE_REFUNDS = [
    pytest.param({"refundId": "r1", "amount": 100.0, "currency": "JPY"}, id="float amount"),
    pytest.param({"refundId": "r1", "amount": 0, "currency": "JPY"}, id="zero amount"),
    pytest.param({"refundId": "r1", "amount": -100, "currency": "JPY"}, id="negative amount"),
    pytest.param({"refundId": "r1", "amount": 100, "currency": "XYZ"}, id="unknown currency"),
    pytest.param({"refundId": "r1", "amount": 100}, id="amount without currency"),
    pytest.param({"refundId": "r1"}, id="neither amount nor items"),
    pytest.param({"amount": 100, "currency": "JPY"}, id="no refund id"),
    pytest.param(
        {
            "refundId": "r1",
            "amount": 100,
            "currency": "JPY",
            "items": [{"sku": "TENT-2", "quantity": 1}],
        },
        id="amount and items",
    ),
    pytest.param(
        {"refundId": "r1", "items": [{"sku": "TENT-2", "quantity": 1.0}]}, id="float quantity"
    ),
    pytest.param({"refundId": "r1", "items": []}, id="no items"),
    pytest.param(
        {
            "refundId": "r1",
            "items": [{"sku": "TENT-2", "quantity": 1}, {"sku": "TENT-2", "quantity": 1}],
        },
        id="a sku twice",
    ),
]


@pytest.mark.parametrize("body", HOSTILE_REFUNDS)
def test_a_hostile_refund_is_400_and_writes_nothing(
    clock: FixedClock, body: dict[str, Any]
) -> None:
    purchase()
    before = state()
    status, answer = refund("order-1", body)
    assert status == 400 and error_code(answer) == "invalid_request", answer
    assert state() == before


HOSTILE_SPENDS = [
    pytest.param({"orderId": "c1", "amount": 10.0, "currency": "JPY"}, id="float amount"),
    pytest.param({"orderId": "c1", "amount": 0, "currency": "JPY"}, id="zero amount"),
    pytest.param({"orderId": "c1", "amount": -10, "currency": "JPY"}, id="negative amount"),
    pytest.param({"orderId": "c1", "amount": True, "currency": "JPY"}, id="boolean amount"),
    pytest.param({"orderId": "c1", "amount": 10, "currency": "Yen"}, id="unknown currency"),
    pytest.param({"orderId": "c1", "amount": 10}, id="no currency"),
    pytest.param({"amount": 10, "currency": "JPY"}, id="no order id"),
]


@pytest.mark.parametrize("body", HOSTILE_SPENDS)
def test_a_hostile_spend_is_400_and_writes_nothing(clock: FixedClock, body: dict[str, Any]) -> None:
    purchase()
    before = state()
    status, answer, _ = call("POST", "/v1/customers/cust-1/wallet/spend", body)
    assert status == 400 and error_code(answer) == "invalid_request", answer
    assert state() == before


def test_bodies_that_are_not_json_text_are_refused(clock: FixedClock) -> None:
    status, answer, _ = call(
        "POST", "/v1/purchases", purchase_body(), headers={"Content-Type": "text/plain"}
    )
    assert status == 415 and error_code(answer) == "unsupported_media_type"
    status, answer, _ = call("POST", "/v1/purchases", raw='{"orderId": "o1", "total": 1e999}')
    assert status == 400 and error_code(answer) == "invalid_request"
    event = proxy_event("POST", "/v1/purchases", body=None, api_key="test-key")
    event["body"], event["isBase64Encoded"] = "/w==", True  # the byte 0xFF: not UTF-8
    response = api.app.resolve(event, lambda_context())
    assert response["statusCode"] == 400
    assert state() == ([], (0, 0))


def test_hostile_path_and_query_parameters_are_400(clock: FixedClock) -> None:
    long_customer = "c" * 129
    status, answer, _ = call("GET", f"/v1/customers/{long_customer}/wallet")
    assert status == 400 and error_code(answer) == "invalid_request"
    status, answer, _ = call("GET", "/v1/customers/cust-1/wallet", query={"currency": "EURO"})
    assert status == 400 and error_code(answer) == "invalid_request"


# -- mapping domain errors ----------------------------------------------------------------

REFUSALS: list[tuple[errors.WalletError, int]] = [
    (errors.OrderNotFound("o1"), 404),
    (errors.SpendNotFound("c1", "o1"), 404),
    (errors.PurchaseConflict("o1"), 409),
    (errors.RefundConflict("o1", "r1"), 409),
    (errors.SpendConflict("c1", "o1"), 409),
    (errors.InsufficientBalance("c1", available=1, amount=2, currency="JPY"), 409),
    (errors.RefundExceedsTotal("o1", total=1, refunded=0, amount=2), 422),
    (errors.RefundCurrencyMismatch("o1", expected="JPY", given="USD"), 422),
    (errors.UnknownRefundItem("o1", "SKU-1", refundable=0), 422),
    (errors.CurrencyNotHeld("c1", "USD"), 422),
    (errors.TooManyLots("c1", lots=97, most=96, covered=9600), 422),
    (errors.CurrencyRequired("c1", ("JPY", "USD")), 400),
    (errors.InvalidPageToken(), 400),
    (errors.Contended("busy"), 429),
]


def test_every_wallet_error_has_its_status_code_and_details() -> None:
    named = {name for name in errors.__all__ if name != "WalletError"}
    assert named == {type(error).__name__ for error, _ in REFUSALS}
    for error, status in REFUSALS:
        mapped = api.api_error(error)
        assert (mapped.status, mapped.code, mapped.details) == (status, error.code, error.details)


# -- metrics ------------------------------------------------------------------------------


def handled(method: str, path: str, body: Any = None, *, resource: str | None = None) -> int:
    """One invocation through the Lambda handler, which flushes its metrics at the end;
    `resource` is the route as API Gateway names it (with its ``{parameters}``)."""
    event = proxy_event(method, path, body=body, resource=resource, api_key="test-key")
    response = api.handler(event, lambda_context("rebates-wallet-api"))
    return int(response["statusCode"])


def test_operators_count_credits_spends_reversals_and_refusals(
    clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    assert handled("POST", "/v1/purchases", purchase_body()) == 202
    assert handled("POST", "/v1/purchases", purchase_body()) == 202  # the same order again
    spend_body = {"orderId": "checkout-1", "amount": 500, "currency": "JPY"}
    assert handled("POST", "/v1/customers/cust-1/wallet/spend", spend_body) == 201
    too_much = {"orderId": "checkout-2", "amount": 5000, "currency": "JPY"}
    spend_route = "/v1/customers/{customerId}/wallet/spend"
    assert (
        handled("POST", "/v1/customers/cust-1/wallet/spend", too_much, resource=spend_route) == 409
    )
    half = {"refundId": "refund-1", "amount": 13000, "currency": "JPY"}
    assert handled("POST", "/v1/purchases/order-1/refunds", half) == 202
    out = capsys.readouterr().out
    assert metric_values(out, "CashbackCredits") == [1.0]
    assert metric_values(out, "CashbackCreditedAmount", currency="JPY") == [2000.0]
    assert metric_values(out, "CashbackSpends") == [1.0]
    assert metric_values(out, "CashbackSpentAmount", currency="JPY") == [500.0]
    assert metric_values(out, "CashbackReversals") == [1.0]
    assert metric_values(out, "CashbackReversedAmount", currency="JPY") == [1000.0]
    route = {"route": "POST /v1/customers/{customerId}/wallet/spend"}
    assert metric_values(out, "Refusals", **route, reason="insufficient_balance") == [1.0]


def test_the_lambda_handler_serves_every_route(clock: FixedClock) -> None:
    assert handled("POST", "/v1/purchases", purchase_body()) == 202
    assert handled("GET", "/v1/customers/cust-1/wallet") == 200
    assert (
        handled(
            "POST",
            "/v1/customers/cust-1/wallet/spend",
            {"orderId": "c1", "amount": 1, "currency": "JPY"},
        )
        == 201
    )
    assert handled("POST", "/v1/customers/cust-1/wallet/spend/c1/cancel") == 200
    assert (
        handled(
            "POST",
            "/v1/purchases/order-1/refunds",
            {"refundId": "r1", "amount": 1, "currency": "JPY"},
        )
        == 202
    )


def test_instants_in_answers_are_utc(clock: FixedClock) -> None:
    clock.set(OPEN + timedelta(hours=1))
    earned = purchase(placedAt="2027-05-10T13:00:00+09:00")
    assert earned["earnings"][0]["availableAt"] == "2027-05-10T04:00:00Z"
