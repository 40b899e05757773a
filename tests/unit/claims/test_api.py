"""The claims API through its resolver, as API Gateway calls it, on in-process moto:
receipt upload grants, submission and its refusals, a claim and a customer's claims, and
the operators' review decision.

The store behind the routes is given the recording state machine; every refusal is
checked to have stored nothing and started nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Final

import boto3
import pytest

from functions.claims.dal import ClaimStore
from functions.claims.handlers import api
from functions.claims.receipts import MAX_RECEIPT_BYTES
from functions.core.clock import FixedClock, format_instant, frozen_at
from functions.core.idempotency import REPLAYED_HEADER
from functions.core.tables import IDEMPOTENCY
from tests.support.api_calls import api_call
from tests.unit.claims.conftest import (
    CAMPAIGN,
    REBATE,
    SUBMITTED,
    RecordingStateMachine,
    archive,
    aws_env,
    claims_items,
    publish,
    rebate,
    uploaded,
)

__all__ = ["aws_env"]

BUCKET: Final = "rebates-receipts-test"
PURCHASED_AT: Final = "2027-03-10T12:00:00+09:00"


@pytest.fixture
def routes(
    store: ClaimStore, machine: RecordingStateMachine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FixedClock]:
    """The API's routes over this test's store, at the submission instant."""
    monkeypatch.setattr(api, "store", store)
    monkeypatch.setenv("RECEIPTS_BUCKET", BUCKET)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "claims-api")
    monkeypatch.setenv("REBATES_VERSION", "test")
    with frozen_at(SUBMITTED) as clock:
        yield clock


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> RecordingStateMachine:
    """The routes over a store with no tables at all (and no network): a request that
    reached the store would answer 5xx, so a 4xx proves it was refused before."""
    machine = RecordingStateMachine()
    monkeypatch.setattr(api, "store", ClaimStore(state_machine=machine))
    return machine


def call(
    method: str, path: str, body: Any = None, **options: Any
) -> tuple[int, Any, dict[str, str]]:
    return api_call(api.app, method, path, body, **options)


def item(sku: str = "TRAIL-01", price: int = 12_000, quantity: int = 1) -> dict[str, Any]:
    return {"sku": sku, "category": "shoes", "quantity": quantity, "unitPrice": price}


def purchase(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "retailer": "ABC Mart",
        "receiptNumber": "R-0012",
        "purchasedAt": PURCHASED_AT,
        "currency": "JPY",
        "items": [item()],
        "total": 12_000,
    }
    body.update(changes)
    return body


def claim_body(customer: str = "cust-1", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "campaignId": CAMPAIGN,
        "customerId": customer,
        "purchase": purchase(),
    }
    body.update(changes)
    return body


def submit(body: dict[str, Any] | None = None, **options: Any) -> str:
    status, answer, _ = call("POST", "/v1/claims", body or claim_body(), **options)
    assert status == 202, answer
    return str(answer["claimId"])


def error_code(answer: dict[str, Any]) -> str:
    assert set(answer) == {"error"}, answer
    assert set(answer["error"]) >= {"code", "message"}, answer
    return str(answer["error"]["code"])


def yen(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "JPY"}


# -- submission ------------------------------------------------------------------------------


def test_a_claim_is_accepted_and_its_verification_started(
    routes: FixedClock, machine: RecordingStateMachine
) -> None:
    key = uploaded()
    status, answer, _ = call("POST", "/v1/claims", claim_body(receiptKey=key))
    assert status == 202
    assert set(answer) == {"claimId", "status"}
    assert answer["status"] == "submitted"
    assert machine.started == [answer["claimId"]]

    status, view, _ = call("GET", f"/v1/claims/{answer['claimId']}")
    assert status == 200
    assert view == {
        "claimId": answer["claimId"],
        "campaignId": CAMPAIGN,
        "customerId": "cust-1",
        "status": "submitted",
        "reward": None,
        "reasons": [],
        "reviewReasons": [],
        "evidence": [],
        "purchaseTotal": yen(12_000),
        "submittedAt": format_instant(SUBMITTED),
        "updatedAt": format_instant(SUBMITTED),
        "reviewDueAt": None,
        "timeline": [{"at": format_instant(SUBMITTED), "status": "submitted", "note": None}],
    }


def test_a_retry_with_the_idempotency_key_is_the_same_claim(
    routes: FixedClock, machine: RecordingStateMachine
) -> None:
    status, first, _ = call("POST", "/v1/claims", claim_body(), key="claim-ord-7")
    assert status == 202
    status, again, headers = call("POST", "/v1/claims", claim_body(), key="claim-ord-7")
    assert (status, again, headers.get(REPLAYED_HEADER)) == (202, first, "true")
    assert machine.started == [first["claimId"]]

    other = claim_body(purchase=purchase(receiptNumber="R-9"))
    status, refused, _ = call("POST", "/v1/claims", other, key="claim-ord-7")
    assert (status, error_code(refused)) == (409, "idempotency_key_reused")


def test_a_key_reused_after_its_record_expired_is_still_refused_for_another_claim(
    routes: FixedClock, machine: RecordingStateMachine
) -> None:
    first = submit(key="claim-ord-7")
    forget_idempotency_records()  # a day later: the API's record is gone, the claim's is not

    status, again, _ = call("POST", "/v1/claims", claim_body(), key="claim-ord-7")
    assert (status, again["claimId"]) == (202, first)
    forget_idempotency_records()
    other = claim_body(purchase=purchase(receiptNumber="R-9"))
    status, refused, _ = call("POST", "/v1/claims", other, key="claim-ord-7")
    assert (status, error_code(refused)) == (409, "idempotency_key_reused")
    assert refused["error"]["details"] == {"claimId": first}
    assert len([i for i in claims_items() if i["pk"]["S"].startswith("CLAIM#")]) == 1


def forget_idempotency_records() -> None:
    client = boto3.client("dynamodb", region_name="ap-northeast-1")
    for record in client.scan(TableName=IDEMPOTENCY.default_name)["Items"]:
        client.delete_item(TableName=IDEMPOTENCY.default_name, Key={"id": record["id"]})


NOT_UTF8: Final = b'{"campaignId": "\xff\xfe"}'


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(claim_body(purchase=purchase(total=12_000.0)), id="float total"),
        pytest.param(claim_body(purchase=purchase(total="12000")), id="string total"),
        pytest.param(
            claim_body(purchase=purchase(items=[{**item(), "unitPrice": 12_000.0}])),
            id="float price",
        ),
        pytest.param(
            claim_body(purchase=purchase(items=[{**item(), "quantity": 1.5}])), id="float quantity"
        ),
        pytest.param(
            claim_body(purchase=purchase(purchasedAt="2027-03-10T12:00:00")), id="no offset"
        ),
        pytest.param(claim_body(purchase=purchase(purchasedAt="2027-03-10")), id="a date"),
        pytest.param(
            claim_body(purchase=purchase(items=[item(price=7000), item("TRAIL-02", 6000)])),
            id="items above the total",
        ),
        pytest.param(claim_body(purchase=purchase(items=[])), id="no items"),
        pytest.param(claim_body(purchase=purchase(total=0)), id="zero total"),
        pytest.param(claim_body(purchase=purchase(currency="jpy")), id="currency code"),
        pytest.param({"campaignId": CAMPAIGN, "customerId": "cust-1"}, id="no purchase"),
        pytest.param(
            claim_body(purchase={k: v for k, v in purchase().items() if k != "retailer"}),
            id="no retailer",
        ),
        pytest.param(claim_body(extra=True), id="unknown field"),
        pytest.param(claim_body(purchase=purchase(channel="online")), id="unknown purchase field"),
        pytest.param(claim_body(receiptKey="../../etc/passwd"), id="not a receipt key"),
        pytest.param(claim_body(customerId=""), id="empty customer"),
        pytest.param("[]", id="an empty list"),
        pytest.param(NOT_UTF8, id="not UTF-8"),
        pytest.param("{not json", id="not JSON"),
    ],
)
def test_a_hostile_submission_is_400_and_stores_nothing(
    offline: RecordingStateMachine, body: Any
) -> None:
    status, answer, _ = call("POST", "/v1/claims", body)
    assert (status, error_code(answer)) == (400, "invalid_request"), answer
    assert offline.started == []


def test_an_array_holding_a_claim_is_no_claim(
    routes: FixedClock, machine: RecordingStateMachine
) -> None:
    status, answer, _ = call("POST", "/v1/claims", [claim_body(), {"junk": True}])
    assert (status, error_code(answer)) == (400, "invalid_request")
    assert machine.started == []


def test_a_body_not_utf8_is_refused_as_such(offline: RecordingStateMachine) -> None:
    status, answer, _ = call("POST", "/v1/claims", NOT_UTF8)
    assert (status, error_code(answer)) == (400, "invalid_request")
    assert answer["error"]["details"]["errors"] == [{"path": "body", "message": "not UTF-8 text"}]


def test_a_malformed_body_is_told_where(offline: RecordingStateMachine) -> None:
    body = claim_body(purchase=purchase(total=12_000.5, purchasedAt="2027-03-10T12:00:00"))
    status, answer, _ = call("POST", "/v1/claims", body)
    assert (status, error_code(answer)) == (400, "invalid_request")
    paths = {problem["path"] for problem in answer["error"]["details"]["errors"]}
    assert paths == {"body.purchase.total", "body.purchase.purchasedAt"}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"campaignId": "never-published"}, "campaign_not_found"),
        ({"campaignId": "trail-archived"}, "campaign_archived"),
        ({"campaignId": "trail-cashback"}, "not_a_rebate_campaign"),
        ({"purchase": purchase(currency="USD")}, "currency_mismatch"),
        ({"purchase": purchase(purchasedAt="2027-03-11T12:06:00+09:00")}, "purchase_in_future"),
        (
            {"receiptKey": "receipts/Y3VzdC0y/rcp_01JF6Z3Q8W0X9V2KQ4T7M5N8RB.png"},
            "receipt_not_found",
        ),
    ],
)
def test_a_claim_its_campaign_cannot_take_is_422_and_stores_nothing(
    routes: FixedClock, machine: RecordingStateMachine, change: dict[str, Any], code: str
) -> None:
    publish(
        rebate(
            id="trail-cashback",
            kind="cashback",
            claims=None,
            cashback={"pending_days": 0, "expires_after_days": 30},
        )
    )
    publish(rebate(id="trail-archived"))
    archive("trail-archived")
    before = claims_items()
    status, answer, _ = call("POST", "/v1/claims", claim_body(**change), key="k-1")
    assert (status, error_code(answer)) == (422, code)
    assert claims_items() == before
    assert machine.started == []


def test_a_campaign_published_after_a_refusal_takes_the_retried_claim(
    routes: FixedClock,
) -> None:
    body = claim_body(campaignId="late-rebate")
    status, answer, _ = call("POST", "/v1/claims", body, key="k-late")
    assert (status, error_code(answer)) == (422, "campaign_not_found")
    publish(rebate(id="late-rebate"))
    status, answer, _ = call("POST", "/v1/claims", body, key="k-late")
    assert status == 202, answer


def test_a_campaign_published_again_after_its_withdrawal_takes_the_retried_claim(
    routes: FixedClock,
) -> None:
    archive(CAMPAIGN)
    status, answer, _ = call("POST", "/v1/claims", claim_body(), key="k-again")
    assert (status, error_code(answer)) == (422, "campaign_archived")
    publish(REBATE)
    status, answer, _ = call("POST", "/v1/claims", claim_body(), key="k-again")
    assert status == 202, answer


# -- reading -----------------------------------------------------------------------------------


def test_an_unknown_claim_is_404(routes: FixedClock) -> None:
    status, answer, _ = call("GET", "/v1/claims/clm_nothing")
    assert (status, error_code(answer)) == (404, "claim_not_found")
    assert answer["error"]["details"] == {"claimId": "clm_nothing"}


@pytest.mark.parametrize("claim_id", ["clm$1", "x" * 81])
def test_a_claim_id_of_another_shape_is_400(routes: FixedClock, claim_id: str) -> None:
    status, answer, _ = call("GET", f"/v1/claims/{claim_id}")
    assert status == 400, answer


def test_a_verified_claim_shows_its_reward_reasons_and_evidence(
    routes: FixedClock, store: ClaimStore
) -> None:
    first = submit(claim_body(receiptKey=uploaded()))
    store.verify(first, now=SUBMITTED)
    copy = submit(claim_body("cust-2", receiptKey=uploaded("cust-2")))
    store.verify(copy, now=SUBMITTED)
    store.reject(copy, reasons=("duplicate_receipt",), reviewer=None, now=SUBMITTED)

    _, passed, _ = call("GET", f"/v1/claims/{first}")
    assert (passed["status"], passed["reward"]) == ("verifying", yen(1000))
    _, rejected, _ = call("GET", f"/v1/claims/{copy}")
    assert (rejected["status"], rejected["reward"], rejected["reasons"]) == (
        "rejected",
        None,
        ["duplicate_receipt"],
    )
    assert [(e["rule"], e["claimIds"]) for e in rejected["evidence"]] == [
        ("same_receipt_number", [first]),
        ("same_receipt_file", [first]),
    ]
    assert [t["status"] for t in rejected["timeline"]] == ["submitted", "verifying", "rejected"]


def test_a_customers_claims_are_listed_newest_first_in_pages(routes: FixedClock) -> None:
    ids = []
    for n in range(5):
        ids.append(submit(claim_body(purchase=purchase(receiptNumber=f"R-{n}"))))
        routes.advance(timedelta(minutes=1))
    submit(claim_body("cust-2"))

    seen: list[str] = []
    query = {"limit": "2"}
    for _ in range(3):
        status, page, _ = call("GET", "/v1/customers/cust-1/claims", query=query)
        assert status == 200, page
        seen += [c["claimId"] for c in page["claims"]]
        if page["nextToken"] is None:
            break
        query = {"limit": "2", "nextToken": page["nextToken"]}
    assert seen == list(reversed(ids))
    assert page["nextToken"] is None


def test_a_customer_without_claims_has_an_empty_list(routes: FixedClock) -> None:
    status, page, _ = call("GET", "/v1/customers/cust-9/claims")
    assert (status, page) == (200, {"claims": [], "nextToken": None})


def tampered(token: str) -> list[str]:
    document = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    other = base64.urlsafe_b64encode(json.dumps({**document, "c": "cust-2"}).encode())
    return [
        "not-a-token",
        token[:-3] + "~~~",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b'{"c": "cust-1"}').decode(),
        other.decode().rstrip("="),  # another customer's listing
        "トークン",
    ]


def test_a_tampered_page_token_is_400(routes: FixedClock) -> None:
    for n in range(3):
        submit(claim_body(purchase=purchase(receiptNumber=f"R-{n}")))
    _, page, _ = call("GET", "/v1/customers/cust-1/claims", query={"limit": "1"})
    for token in tampered(page["nextToken"]):
        status, answer, _ = call(
            "GET", "/v1/customers/cust-1/claims", query={"nextToken": token, "limit": "1"}
        )
        assert status == 400, (token, answer)
        assert error_code(answer) in ("invalid_page_token", "invalid_request"), token
    status, answer, _ = call(
        "GET", "/v1/customers/cust-1/claims", query={"nextToken": page["nextToken"]}
    )
    assert status == 200


@pytest.mark.parametrize("limit", ["0", "101", "ten", "1.5"])
def test_a_page_size_out_of_range_is_400(routes: FixedClock, limit: str) -> None:
    status, answer, _ = call("GET", "/v1/customers/cust-1/claims", query={"limit": limit})
    assert (status, error_code(answer)) == (400, "invalid_request")


# -- review ----------------------------------------------------------------------------------


def waiting_claim(store: ClaimStore, customer: str = "cust-1") -> str:
    publish(rebate(claims={"window_days": 30, "auto_approve_up_to": 500}))
    claim_id = submit(claim_body(customer, receiptKey=uploaded(customer)))
    store.verify(claim_id, now=SUBMITTED)
    due = SUBMITTED + timedelta(hours=72)
    store.hold_for_review(claim_id, token=f"token-{customer}", due_at=due, now=SUBMITTED)
    return claim_id


def review(claim_id: str, decision: str = "approve", reviewer: str = "op-1") -> tuple[int, Any]:
    body = {"decision": decision, "reason": "receipt checked", "reviewer": reviewer}
    status, answer, _ = call("POST", f"/v1/claims/{claim_id}/review", body)
    return status, answer


def test_a_review_decision_is_recorded_and_sent(
    routes: FixedClock, store: ClaimStore, machine: RecordingStateMachine
) -> None:
    claim_id = waiting_claim(store)
    status, answer = review(claim_id)
    assert (status, answer) == (
        200,
        {"claimId": claim_id, "status": "in_review", "decision": "approve", "reviewer": "op-1"},
    )
    assert machine.decisions == [
        ("token-cust-1", {"decision": "approve", "reason": "receipt checked", "reviewer": "op-1"})
    ]
    _, view, _ = call("GET", f"/v1/claims/{claim_id}")
    assert view["reviewDueAt"] == format_instant(SUBMITTED + timedelta(hours=72))


def test_a_second_decision_is_409_already_decided(routes: FixedClock, store: ClaimStore) -> None:
    claim_id = waiting_claim(store)
    assert review(claim_id)[0] == 200
    status, answer = review(claim_id, "reject", reviewer="op-2")
    assert (status, error_code(answer)) == (409, "already_decided")
    assert answer["error"]["details"] == {
        "claimId": claim_id,
        "decision": "approve",
        "reviewer": "op-1",
    }


def test_a_decision_on_a_claim_not_waiting_is_409_not_in_review(
    routes: FixedClock, store: ClaimStore
) -> None:
    claim_id = submit()
    status, answer = review(claim_id)
    assert (status, error_code(answer)) == (409, "not_in_review")
    assert answer["error"]["details"] == {"claimId": claim_id, "status": "submitted"}


def test_a_decision_after_the_timeout_is_409_review_closed(
    routes: FixedClock, store: ClaimStore, machine: RecordingStateMachine
) -> None:
    claim_id = waiting_claim(store)
    machine.closed.add("token-cust-1")
    status, answer = review(claim_id)
    assert (status, error_code(answer)) == (409, "review_closed")
    assert store.get(claim_id).decision is None


def test_a_decision_on_an_unknown_claim_is_404(routes: FixedClock) -> None:
    status, answer = review("clm_nothing")
    assert (status, error_code(answer)) == (404, "claim_not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "maybe", "reason": "r", "reviewer": "op-1"},
        {"decision": "approve", "reason": "", "reviewer": "op-1"},
        {"decision": "approve", "reason": "r"},
        {"decision": "approve", "reason": "r", "reviewer": "op-1", "extra": 1},
    ],
)
def test_a_malformed_decision_is_400(
    routes: FixedClock, store: ClaimStore, machine: RecordingStateMachine, body: dict[str, Any]
) -> None:
    claim_id = waiting_claim(store)
    status, answer, _ = call("POST", f"/v1/claims/{claim_id}/review", body)
    assert (status, error_code(answer)) == (400, "invalid_request")
    assert machine.decisions == []


# -- uploads -------------------------------------------------------------------------------------


def test_an_upload_is_granted_for_a_receipt(routes: FixedClock) -> None:
    body = {"customerId": "cust-1", "contentType": "image/png", "size": 2048}
    status, answer, _ = call("POST", "/v1/claims/uploads", body)
    assert status == 201, answer
    assert answer["receiptKey"].startswith("receipts/Y3VzdC0x/rcp_")
    assert answer["receiptKey"].endswith(".png")
    assert answer["upload"]["fields"]["key"] == answer["receiptKey"]
    assert answer["expiresAt"] == format_instant(SUBMITTED + timedelta(minutes=15))


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"contentType": "image/gif", "size": 100}, "unsupported_receipt_type"),
        ({"contentType": "image/png", "size": MAX_RECEIPT_BYTES + 1}, "receipt_too_large"),
        ({"contentType": "image/png", "size": 0}, "receipt_empty"),
        ({"contentType": "image/png", "size": 100.0}, "invalid_request"),
        ({"contentType": "image/png"}, "invalid_request"),
    ],
)
def test_an_upload_of_the_wrong_type_or_size_is_400(
    routes: FixedClock, body: dict[str, Any], code: str
) -> None:
    before = claims_items()
    status, answer, _ = call("POST", "/v1/claims/uploads", {"customerId": "cust-1", **body})
    assert (status, error_code(answer)) == (400, code)
    assert claims_items() == before
