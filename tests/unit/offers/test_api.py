"""The offers API on in-process moto: listing, issuing, validating, redeeming, rolling back.

A campaign is published the way the loader publishes it (`CampaignStore`), then each test
calls the API as API Gateway would and reads the table back to check every counter.
Concurrency is proven through the local cloud (tests/integration/offers).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from botocore.client import BaseClient

from functions.campaigns.dal import CampaignStore
from functions.campaigns.models import get_campaign, get_code, get_offer
from functions.core.clock import FixedClock, frozen_at
from functions.core.idempotency import IDEMPOTENCY_KEY_HEADER, REPLAYED_HEADER
from functions.offers.handlers import api
from functions.offers.models import CustomerUsage, get_redemption
from infra.local.proxy_event import lambda_context, proxy_event
from tests.support.api_calls import api_call
from tests.support.aws import aws_env, tables
from tests.unit.core.log_capture import metric_values
from tests.unit.offers.api_calls import BIG_CART, OPEN, SHOP, cart, publish

__all__ = ["aws_env", "tables"]


@pytest.fixture
def clock(tables: list[str]) -> Iterator[FixedClock]:
    api.store.campaigns.clear()
    publish(SHOP)
    with frozen_at(OPEN) as fixed:
        yield fixed
    api.store.campaigns.clear()


def call(
    method: str, path: str, body: Any = None, **options: Any
) -> tuple[int, Any, dict[str, str]]:
    return api_call(api.app, method, path, body, **options)


def issue(offer_id: str, customer_id: str) -> dict[str, Any]:
    status, body, _ = call("POST", f"/v1/offers/{offer_id}/codes", {"customerId": customer_id})
    assert status == 201, body
    return dict(body)


def redeem(code: str, customer_id: str, order_id: str, **extra: Any) -> tuple[int, Any]:
    body = {
        "code": code,
        "customerId": customer_id,
        "orderId": order_id,
        "channel": extra.pop("channel", "online"),
        "cart": extra.pop("cart", BIG_CART),
        **extra,
    }
    status, answer, _ = call("POST", "/v1/redemptions", body)
    return status, answer


def error_code(answer: dict[str, Any]) -> str:
    return str(answer["error"]["code"])


def budget_used() -> tuple[int, int]:
    campaign = get_campaign("shop-2027")
    assert campaign is not None
    return campaign.budget_used_amount, campaign.budget_used_count


# -- campaigns --------------------------------------------------------------------------


def test_campaigns_list_and_one_campaign_show_public_fields_only(clock: FixedClock) -> None:
    status, body, _ = call("GET", "/v1/campaigns", query={"status": "active"})
    assert status == 200
    (campaign,) = body["campaigns"]
    assert campaign["campaignId"] == "shop-2027"
    assert campaign["open"] is True
    assert campaign["offerIds"] == ["WELCOME", "WEB10", "TILL300"]
    assert campaign["eligibility"]["minPurchase"] == {"amount": 3000, "currency": "JPY"}
    assert "budget" not in json.dumps(campaign)

    status, one, _ = call("GET", "/v1/campaigns/shop-2027")
    assert status == 200 and one == campaign
    status, missing, _ = call("GET", "/v1/campaigns/nope")
    assert status == 404 and error_code(missing) == "campaign_not_found"
    status, bad, _ = call("GET", "/v1/campaigns", query={"status": "deleted"})
    assert status == 400 and error_code(bad) == "invalid_request"


# -- offers and codes ------------------------------------------------------------------


def test_offers_filter_by_channel_and_show_the_customers_code(clock: FixedClock) -> None:
    _, online, _ = call("GET", "/v1/offers", query={"channel": "online"})
    assert sorted(o["offerId"] for o in online["offers"]) == ["WEB10", "WELCOME"]
    _, in_store, _ = call("GET", "/v1/offers", query={"channel": "in_store"})
    assert sorted(o["offerId"] for o in in_store["offers"]) == ["TILL300", "WELCOME"]

    code = issue("WEB10", "cust-1")["code"]
    _, mine, _ = call("GET", "/v1/offers", query={"channel": "online", "customerId": "cust-1"})
    web10 = next(o for o in mine["offers"] if o["offerId"] == "WEB10")
    assert web10["issuedCode"] == code and web10["customerUses"] == 0
    assert web10["discount"] == {
        "percentage": 10,
        "max": {"amount": 2000, "currency": "JPY"},
        "amount": None,
    }

    # Used up for this customer (per_customer 1): no longer offered to them.
    assert redeem(code, "cust-1", "order-1")[0] == 201
    _, after, _ = call("GET", "/v1/offers", query={"channel": "online", "customerId": "cust-1"})
    assert [o["offerId"] for o in after["offers"]] == ["WELCOME"]


def test_offers_outside_the_campaign_window_are_not_listed(clock: FixedClock) -> None:
    clock.set(datetime(2027, 5, 16, tzinfo=UTC))
    _, body, _ = call("GET", "/v1/offers")
    assert body["offers"] == []


def test_a_unique_code_is_issued_once_per_customer(clock: FixedClock) -> None:
    first = issue("WEB10", "cust-1")
    again = issue("WEB10", "cust-1")
    other = issue("WEB10", "cust-2")
    assert first == again
    assert first["code"].startswith("WEB-") and other["code"] != first["code"]
    assert first["qr"] is None  # online only
    assert first["expiresAt"] == "2027-05-15T15:00:00Z"
    stored = get_code(first["code"])
    assert stored is not None and stored.issued_to == "cust-1"
    offer = get_offer("WEB10")
    assert offer is not None and offer.codes_issued == 2


def test_in_store_codes_carry_a_qr_code_and_a_pool_runs_out(clock: FixedClock) -> None:
    first = issue("TILL300", "cust-1")
    assert first["qr"]["payload"] == f"REBATES1:{first['code']}"
    assert first["qr"]["svg"].startswith("<svg")
    issue("TILL300", "cust-2")
    status, body, _ = call("POST", "/v1/offers/TILL300/codes", {"customerId": "cust-3"})
    assert status == 409 and error_code(body) == "codes_exhausted"


def test_a_shared_code_is_the_same_for_everyone(clock: FixedClock) -> None:
    one, two = issue("WELCOME", "cust-1"), issue("WELCOME", "cust-2")
    assert one["code"] == two["code"] == "WELCOME-500"
    assert one["qr"]["payload"] == "REBATES1:WELCOME-500"  # channel both


def test_issuing_refuses_unknown_and_ended_offers(clock: FixedClock) -> None:
    status, body, _ = call("POST", "/v1/offers/NOPE/codes", {"customerId": "c"})
    assert status == 404 and error_code(body) == "offer_not_found"
    status, body, _ = call("POST", "/v1/offers/WEB10/codes", {})
    assert status == 400 and error_code(body) == "invalid_request"
    clock.set(datetime(2027, 5, 16, tzinfo=UTC))
    status, body, _ = call("POST", "/v1/offers/WEB10/codes", {"customerId": "c"})
    assert status == 422 and error_code(body) == "expired"


# -- validation -------------------------------------------------------------------------


def validate(code: str, customer_id: str = "cust-1", **extra: Any) -> dict[str, Any]:
    body = {
        "code": code,
        "customerId": customer_id,
        "channel": extra.pop("channel", "online"),
        "cart": extra.pop("cart", BIG_CART),
    }
    status, answer, _ = call("POST", "/v1/redemptions/validate", body)
    assert status == 200, answer
    return dict(answer)


def test_validation_quotes_without_side_effects(clock: FixedClock) -> None:
    code = issue("WEB10", "cust-1")["code"]
    answer = validate(code.lower())  # codes are case-insensitive
    assert answer == {
        "valid": True,
        "discount": {"amount": 1200, "currency": "JPY"},
        "reasons": [],
    }
    stored = get_code(code)
    assert stored is not None and stored.uses == 0
    assert budget_used() == (0, 0)


def test_validation_lists_every_reason(clock: FixedClock) -> None:
    code = issue("WEB10", "cust-1")["code"]
    small = cart(("TRAIL-01", 1, 1000))
    answer = validate(code, "cust-2", channel="in_store", cart=small)
    assert answer["valid"] is False
    assert answer["discount"] == {"amount": 0, "currency": "JPY"}
    assert answer["reasons"] == [
        "code_issued_to_another_customer",
        "wrong_channel",
        "below_min_purchase",
    ]
    assert validate(code, cart=cart(("X", 1, 5000), currency="USD"))["reasons"] == [
        "currency_mismatch"
    ]


def test_validation_reports_counted_limits(clock: FixedClock) -> None:
    code = issue("WEB10", "cust-1")["code"]
    assert redeem(code, "cust-1", "order-1")[0] == 201
    assert validate(code)["reasons"] == ["code_used_up", "customer_limit_reached"]


def test_unknown_and_malformed_codes(clock: FixedClock) -> None:
    status, body, _ = call(
        "POST",
        "/v1/redemptions/validate",
        {"code": "NOPE-123", "customerId": "c", "channel": "online", "cart": BIG_CART},
    )
    assert status == 404 and error_code(body) == "code_not_found"
    status, body = redeem("no spaces!", "c", "o")
    assert status == 400 and error_code(body) == "invalid_code"


# -- redemption -------------------------------------------------------------------------


def test_a_redemption_counts_everywhere_at_once(clock: FixedClock) -> None:
    code = issue("WEB10", "cust-1")["code"]
    status, body = redeem(code, "cust-1", "order-1")
    assert status == 201
    assert body["discount"] == {"amount": 1200, "currency": "JPY"}
    assert body["status"] == "redeemed" and body["offerId"] == "WEB10"
    stored_code = get_code(code)
    assert stored_code is not None and stored_code.uses == 1
    offer = get_offer("WEB10")
    assert offer is not None and offer.redemptions_count == 1
    usage = CustomerUsage.get_or_none(*CustomerUsage.key("cust-1", "WEB10"))
    assert usage is not None and usage.uses == 1
    assert budget_used() == (1200, 1)
    redemption = get_redemption(body["redemptionId"])
    assert redemption is not None and redemption.order_id == "order-1"
    assert redemption.cart_total.amount == 12000


def test_refusals_change_nothing(clock: FixedClock) -> None:
    code = issue("WEB10", "cust-1")["code"]
    assert redeem(code, "cust-1", "order-1")[0] == 201
    cases = [
        ((code, "cust-1", "order-1"), {}, 409, "already_redeemed"),
        ((code, "cust-1", "order-2"), {}, 409, "code_used_up"),
        ((code, "cust-2", "order-3"), {}, 422, "code_issued_to_another_customer"),
        (("WELCOME-500", "cust-1", "order-4"), {"channel": "kiosk"}, 400, "invalid_request"),
        (("TILL-AAAA", "cust-1", "order-5"), {}, 404, "code_not_found"),
    ]
    for args, extra, expected_status, expected_code in cases:
        status, body = redeem(*args, **extra)
        assert (status, error_code(body)) == (expected_status, expected_code), args
    assert budget_used() == (1200, 1)


def test_already_redeemed_names_the_redemption(clock: FixedClock) -> None:
    status, first = redeem("WELCOME-500", "cust-1", "order-1")
    assert status == 201
    status, again = redeem("WELCOME-500", "cust-1", "order-1")
    assert status == 409
    assert again["error"]["details"]["redemptionId"] == first["redemptionId"]


def test_wrong_channel_and_window_are_422(clock: FixedClock) -> None:
    code = issue("WEB10", "cust-1")["code"]
    status, body = redeem(code, "cust-1", "order-1", channel="in_store")
    assert (status, error_code(body)) == (422, "wrong_channel")
    clock.set(datetime(2027, 4, 30, tzinfo=UTC))
    status, body = redeem("WELCOME-500", "cust-1", "order-2")
    assert (status, error_code(body)) == (422, "not_started")
    clock.set(datetime(2027, 5, 16, tzinfo=UTC))
    status, body = redeem("WELCOME-500", "cust-1", "order-3")
    assert (status, error_code(body)) == (422, "expired")
    assert body["error"]["details"]["reasons"] == ["expired"]
    assert budget_used() == (0, 0)


def test_shared_code_limits_per_customer_and_in_total(clock: FixedClock) -> None:
    assert redeem("WELCOME-500", "cust-1", "o1")[0] == 201
    assert redeem("WELCOME-500", "cust-1", "o2")[0] == 201
    status, body = redeem("WELCOME-500", "cust-1", "o3")
    assert (status, error_code(body)) == (409, "customer_limit_reached")
    assert redeem("WELCOME-500", "cust-2", "o4")[0] == 201
    assert redeem("WELCOME-500", "cust-3", "o5")[0] == 201
    status, body = redeem("WELCOME-500", "cust-4", "o6")
    assert (status, error_code(body)) == (409, "offer_limit_reached")
    assert budget_used() == (2000, 4)


def test_the_budget_is_never_exceeded(clock: FixedClock) -> None:
    tight = {**SHOP, "budget": {"amount": 1000}}
    publish(tight, version=2)
    assert redeem("WELCOME-500", "cust-1", "o1")[0] == 201
    assert redeem("WELCOME-500", "cust-2", "o2")[0] == 201
    status, body = redeem("WELCOME-500", "cust-3", "o3")
    assert (status, error_code(body)) == (409, "budget_exhausted")
    assert budget_used() == (1000, 2)


def test_a_republish_is_honoured_even_with_a_cached_campaign(clock: FixedClock) -> None:
    assert redeem("WELCOME-500", "cust-1", "o1")[1]["discount"]["amount"] == 500
    changed = json.loads(json.dumps(SHOP))
    changed["offers"][0]["discount"] = {"amount": 700}
    publish(changed, version=2)
    # The container still holds version 1: the transaction refuses it, and the redemption
    # is decided again on version 2.
    status, body = redeem("WELCOME-500", "cust-2", "o2")
    assert status == 201 and body["discount"]["amount"] == 700
    assert budget_used() == (1200, 2)


def test_an_archived_campaign_redeems_nothing(clock: FixedClock) -> None:
    assert redeem("WELCOME-500", "cust-1", "o1")[0] == 201
    assert CampaignStore().archive("shop-2027", "campaigns/shop-2027.json", OPEN)
    # A warm container still holds the campaign as active: the transaction refuses it.
    status, body = redeem("WELCOME-500", "cust-2", "o2")
    assert (status, error_code(body)) == (422, "campaign_archived")
    assert body["error"]["details"] == {"campaignId": "shop-2027"}
    # A cold one reads the archived campaign before trying.
    api.store.campaigns.clear()
    status, body = redeem("WELCOME-500", "cust-3", "o3")
    assert (status, error_code(body)) == (422, "campaign_archived")
    assert budget_used() == (500, 1)


def test_the_same_idempotency_key_gives_one_redemption(clock: FixedClock) -> None:
    body = {
        "code": "welcome-500",
        "customerId": "cust-1",
        "orderId": "order-1",
        "channel": "online",
        "cart": BIG_CART,
    }
    first = call("POST", "/v1/redemptions", body, key="checkout-1")
    second = call("POST", "/v1/redemptions", body, key="checkout-1")
    assert first[0] == second[0] == 201
    assert first[1] == second[1]
    assert second[2].get(REPLAYED_HEADER) == "true"
    assert budget_used() == (500, 1)
    status, reused, _ = call("POST", "/v1/redemptions", {**body, "orderId": "o2"}, key="checkout-1")
    assert status == 409 and error_code(reused) == "idempotency_key_reused"


# -- rollback ---------------------------------------------------------------------------


def test_a_rollback_releases_every_counter_exactly_once(clock: FixedClock) -> None:
    code = issue("WEB10", "cust-1")["code"]
    _, redeemed = redeem(code, "cust-1", "order-1")
    path = f"/v1/redemptions/{redeemed['redemptionId']}/rollback"

    clock.advance(timedelta(minutes=5))
    status, body, _ = call("POST", path, {"reason": "payment_failed"})
    assert status == 200
    assert body["status"] == "rolled_back" and body["alreadyRolledBack"] is False
    assert body["rolledBackAt"] == "2027-05-03T12:05:00Z"
    stored_code = get_code(code)
    assert stored_code is not None and stored_code.uses == 0
    offer = get_offer("WEB10")
    assert offer is not None and offer.redemptions_count == 0
    usage = CustomerUsage.get_or_none(*CustomerUsage.key("cust-1", "WEB10"))
    assert usage is not None and usage.uses == 0
    assert budget_used() == (0, 0)

    status, again, _ = call("POST", path, {"reason": "payment_failed"})
    assert status == 200 and again["alreadyRolledBack"] is True
    assert again["rolledBackAt"] == body["rolledBackAt"]
    assert budget_used() == (0, 0)

    # The order may redeem the code again (the payment is retried).
    assert redeem(code, "cust-1", "order-1")[0] == 201
    assert budget_used() == (1200, 1)


def test_rollback_of_an_unknown_redemption_is_404(clock: FixedClock) -> None:
    status, body, _ = call("POST", "/v1/redemptions/red_NOPE/rollback", {"reason": "x"})
    assert status == 404 and error_code(body) == "redemption_not_found"
    status, body, _ = call("POST", "/v1/redemptions/red_NOPE/rollback", {"reason": ""})
    assert status == 400


def test_the_lambda_handler_serves_the_routes(clock: FixedClock) -> None:
    event = proxy_event("GET", "/v1/campaigns/shop-2027", api_key="test-key")
    response = api.handler(event, lambda_context("rebates-offers-api"))
    assert response["statusCode"] == 200


# -- metrics ----------------------------------------------------------------------------


def handled(method: str, path: str, body: Any, key: str | None = None) -> int:
    """One invocation through the Lambda handler, which flushes its metrics at the end."""
    headers = {IDEMPOTENCY_KEY_HEADER: key} if key else None
    event = proxy_event(method, path, body=body, headers=headers, api_key="test-key")
    response = api.handler(event, lambda_context("rebates-offers-api"))
    return int(response["statusCode"])


def test_operators_count_codes_redemptions_and_refusals_by_reason(
    clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    codes = "/v1/offers/WEB10/codes"
    assert handled("POST", codes, {"customerId": "cust-1"}) == 201
    assert handled("POST", codes, {"customerId": "cust-1"}) == 201  # the same code again
    checkout = {
        "code": "welcome-500",
        "customerId": "cust-1",
        "orderId": "order-1",
        "channel": "online",
        "cart": BIG_CART,
    }
    assert handled("POST", "/v1/redemptions", checkout, key="k-1") == 201
    assert handled("POST", "/v1/redemptions", checkout, key="k-1") == 201  # a replay
    assert handled("POST", "/v1/redemptions", checkout) == 409  # the same order again
    small = {**checkout, "orderId": "order-2", "cart": cart(("TRAIL-01", 1, 1000))}
    assert handled("POST", "/v1/redemptions", small) == 422
    out = capsys.readouterr().out
    assert metric_values(out, "CodesIssued", mode="unique") == [1.0]
    assert metric_values(out, "Redemptions", channel="online") == [1.0]
    route = {"route": "POST /v1/redemptions"}
    assert metric_values(out, "Refusals", **route, reason="already_redeemed") == [1.0]
    assert metric_values(out, "Refusals", **route, reason="below_min_purchase") == [1.0]
    assert len(metric_values(out, "Refusals")) == 2


# -- a warm container after a new version -------------------------------------------------

SPRING: dict[str, Any] = {
    "id": "SPRING",
    "channel": "both",
    "discount": {"amount": 800},
    "codes": {"mode": "shared", "code": "spring-800"},
}


def served(route: str, offer_id: str, code: str) -> None:
    """`route` answers a new customer with success for the offer `offer_id` (its `code`)."""
    if route == "issue":
        status, body, _ = call("POST", f"/v1/offers/{offer_id}/codes", {"customerId": "cust-9"})
        assert status == 201, body
    elif route == "validate":
        answer = validate(code, "cust-9")
        assert answer["valid"] is True and answer["reasons"] == [], answer
    else:
        status, body = redeem(code, "cust-9", "order-9")
        assert status == 201 and body["offerId"] == offer_id, body


ROUTES = ["issue", "validate", "redeem"]


@pytest.mark.parametrize("route", ROUTES)
def test_a_warm_container_serves_an_offer_published_since_it_cached_the_campaign(
    clock: FixedClock, route: str
) -> None:
    assert redeem("WELCOME-500", "cust-1", "o1")[0] == 201  # version 1 now cached
    added = copy.deepcopy(SHOP)
    added["offers"].append(SPRING)
    publish(added, version=2)

    served(route, "SPRING", "spring-800")


@pytest.mark.parametrize("route", ROUTES)
def test_a_warm_container_serves_a_campaign_uploaded_again_after_its_archiving(
    clock: FixedClock, route: str
) -> None:
    assert CampaignStore().archive("shop-2027", "campaigns/shop-2027.json", OPEN)
    status, body = redeem("WELCOME-500", "cust-1", "o1")
    assert (status, error_code(body)) == (422, "campaign_archived")  # cached: archived
    publish(SHOP, version=2)  # the file uploaded again

    served(route, "WELCOME", "welcome-500")


def aws_calls(action: Callable[[], object]) -> list[str]:
    """The AWS operations `action` makes, in order."""
    made: list[str] = []
    original = BaseClient._make_api_call

    def counted(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        made.append(operation)
        return original(client, operation, params)

    with mock.patch.object(BaseClient, "_make_api_call", counted):
        action()
    return made


def test_a_redemption_on_a_cached_campaign_still_makes_two_calls(clock: FixedClock) -> None:
    assert redeem("WELCOME-500", "cust-1", "o1")[0] == 201  # the campaign is cached
    assert aws_calls(lambda: redeem("WELCOME-500", "cust-2", "o2")) == [
        "GetItem",
        "TransactWriteItems",
    ]
    # A refusal read off the cached campaign reads the campaign item once more before
    # it is answered; a refusal of the request itself (the cart) is no different.
    small = cart(("TRAIL-01", 1, 1000))
    assert aws_calls(lambda: redeem("WELCOME-500", "cust-3", "o3", cart=small)) == [
        "GetItem",
        "GetItem",
    ]


# -- what an Idempotency-Key replays --------------------------------------------------------


def checkout(order_id: str = "order-1", **changes: Any) -> dict[str, Any]:
    body = {
        "code": "welcome-500",
        "customerId": "cust-1",
        "orderId": order_id,
        "channel": "online",
        "cart": BIG_CART,
    }
    return {**body, **changes}


def test_a_refusal_an_upload_lifts_is_not_replayed_for_the_key(clock: FixedClock) -> None:
    assert CampaignStore().archive("shop-2027", "campaigns/shop-2027.json", OPEN)
    status, body, _ = call("POST", "/v1/redemptions", checkout(), key="checkout-1")
    assert (status, error_code(body)) == (422, "campaign_archived")
    publish(SHOP, version=2)
    api.store.campaigns.clear()  # another container, or the same one 30 s later

    status, body, headers = call("POST", "/v1/redemptions", checkout(), key="checkout-1")
    assert status == 201 and REPLAYED_HEADER not in headers
    status, again, headers = call("POST", "/v1/redemptions", checkout(), key="checkout-1")
    assert status == 201 and headers.get(REPLAYED_HEADER) == "true" and again == body
    assert budget_used() == (500, 1)


def test_a_limit_a_rollback_frees_is_not_replayed_for_the_key(clock: FixedClock) -> None:
    _, first = redeem("WELCOME-500", "cust-1", "o1")
    assert redeem("WELCOME-500", "cust-1", "o2")[0] == 201
    status, body, _ = call("POST", "/v1/redemptions", checkout("o3"), key="checkout-3")
    assert (status, error_code(body)) == (409, "customer_limit_reached")
    rollback = f"/v1/redemptions/{first['redemptionId']}/rollback"
    assert call("POST", rollback, {"reason": "order_cancelled"})[0] == 200

    status, body, headers = call("POST", "/v1/redemptions", checkout("o3"), key="checkout-3")
    assert status == 201 and REPLAYED_HEADER not in headers


def test_codes_run_out_until_a_new_version_adds_some(clock: FixedClock) -> None:
    issue("TILL300", "cust-1")
    issue("TILL300", "cust-2")
    path = "/v1/offers/TILL300/codes"
    status, body, _ = call("POST", path, {"customerId": "cust-3"}, key="give-3")
    assert (status, error_code(body)) == (409, "codes_exhausted")
    more = copy.deepcopy(SHOP)
    more["offers"][2]["codes"]["count"] = 3
    publish(more, version=2)

    status, body, headers = call("POST", path, {"customerId": "cust-3"}, key="give-3")
    assert status == 201 and REPLAYED_HEADER not in headers


def test_a_refusal_of_the_request_itself_is_replayed(clock: FixedClock) -> None:
    small = checkout(cart=cart(("TRAIL-01", 1, 1000)))
    status, first, _ = call("POST", "/v1/redemptions", small, key="checkout-1")
    assert (status, error_code(first)) == (422, "below_min_purchase")
    status, again, headers = call("POST", "/v1/redemptions", small, key="checkout-1")
    assert status == 422 and again == first and headers.get(REPLAYED_HEADER) == "true"


# -- codes as people type them ------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "\uff37\uff25\uff2c\uff23\uff2f\uff2d\uff25\uff0d\uff15\uff10\uff10",  # full width
        "\uff57\uff45\uff4c\uff43\uff4f\uff4d\uff45\uff0d\uff15\uff10\uff10",  # and lower
        "Welcome\u2010500",  # hyphen
        "WELCOME\u2011500",  # non-breaking hyphen
        "WELCOME\u2012500",  # figure dash
        "WELCOME\u2013500",  # en dash
        "WELCOME\u2014500",  # em dash
        "WELCOME\u2015500",  # horizontal bar
        "WELCOME\u2212500",  # minus sign
        "WELCOME\ufe58500",  # small em dash
        "WELCOME\ufe63500",  # small hyphen-minus
        "WELCOME\u30fc500",  # prolonged sound mark: the IME's "-" in kana mode
        "\uff37\uff25\uff2c\uff23\uff2f\uff2d\uff25\uff70\uff15\uff10\uff10",  # half-width
    ],
)
def test_a_code_typed_full_width_or_with_another_dash_is_the_same_code(
    clock: FixedClock, typed: str
) -> None:
    assert validate(typed)["valid"] is True
    status, body = redeem(typed, "cust-1", "order-1")
    assert status == 201 and body["code"] == "WELCOME-500"


@pytest.mark.parametrize(
    "typed",
    [
        "WELCOME 500",
        "WELCOME\u301c500",  # wave dash: a tilde, not a hyphen
        "WELCOME\u00ad500",  # soft hyphen: invisible, not typed
        "\u30a6\u30a7\u30eb\u30ab\u30e0\u30fc500",  # katakana: the mark lengthens a vowel
        "WELCOME-500\u30fc",  # nothing after it: not between two characters of a code
        "STRA\u00dfE",  # sharp s: no code has one, and "SS" would be another word
    ],
)
def test_what_is_not_a_code_however_normalised_is_400(clock: FixedClock, typed: str) -> None:
    status, body = redeem(typed, "cust-1", "order-1")
    assert (status, error_code(body)) == (400, "invalid_code")


# -- customer ids are the storefront's own ------------------------------------------------


@pytest.mark.parametrize(
    "customer_id",
    [
        "cust 1",
        " cust-1",
        "cust-1 ",
        "\u5c71\u7530 \u592a\u90ce",
        "\u3000cust-1",  # an ideographic space
        "a#b%c",
        "\U0001f600",
        "x" * 128,
    ],
)
def test_a_customer_id_is_taken_exactly_as_given(clock: FixedClock, customer_id: str) -> None:
    code = issue("WEB10", customer_id)["code"]
    stored = get_code(code)
    assert stored is not None and stored.issued_to == customer_id
    _, listed, _ = call("GET", "/v1/offers", query={"customerId": customer_id})
    web10 = next(o for o in listed["offers"] if o["offerId"] == "WEB10")
    assert web10["issuedCode"] == code
    # Compared exactly: the trimmed id is another customer.
    trimmed = customer_id.strip()
    if trimmed != customer_id:
        status, body = redeem(code, trimmed, "order-0")
        assert (status, error_code(body)) == (422, "code_issued_to_another_customer")
    status, body = redeem(code, customer_id, "order-1")
    assert status == 201, body
    redemption = get_redemption(body["redemptionId"])
    assert redemption is not None and redemption.customer_id == customer_id


@pytest.mark.parametrize(
    "customer_id",
    ["", "x" * 129, "cust\n1", "cust\t1", "cust\x00", "cust\x7f", "cust\x85", "cust\u2028"],
)
def test_a_customer_id_must_be_1_to_128_printable_characters(
    clock: FixedClock, customer_id: str
) -> None:
    status, body, _ = call("POST", "/v1/offers/WEB10/codes", {"customerId": customer_id})
    assert (status, error_code(body)) == (400, "invalid_request")
    status, body = redeem("WELCOME-500", customer_id, "order-1")
    assert (status, error_code(body)) == (400, "invalid_request")
    status, body, _ = call("GET", "/v1/offers", query={"customerId": customer_id})
    assert (status, error_code(body)) == (400, "invalid_request")
