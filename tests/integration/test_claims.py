"""Rebate claims on the local cloud: every path a claim can take, end to end.

Each test plays a storefront against the HTTP API (receipts uploaded with the presigned
POST straight to the receipts bucket, claims submitted and read), and an operator against
the IAM-authorised review route with a SigV4-signed request. Behind it run the real
handlers: the receipt checker on the bucket's notifications, the claims state machine on
moto's Step Functions engine, the wallet's credit as its task, the review keeper fired
through the local cloud's control plane. Outcomes are read as their users read them:
the claim through the API, the execution's history, the wallet and `rebates wallet audit`.

Campaigns are published through the campaigns bucket. The tests that need no rule of
their own share one campaign, each with its own customers; Step Functions' Retry
intervals run at a hundredth of real time for the whole module.
"""

from __future__ import annotations

import importlib
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

import cli.local
from functions.core.clock import format_instant, local_date
from infra.constructs.claims import KEEPER_SCHEDULE_ID
from infra.local.campaign_files import upload_campaign_file, wait_for_report
from infra.local.cloud import LocalCloud
from infra.local.patches import set_step_functions_time_scale, step_functions_time_scale
from tests.integration.test_wallet import rebates
from tests.integration.test_wiring import eventually, physical_id

__all__ = ["rebates"]  # fixture, found by name

# A line of each reward tier of the shared campaign: 1,000 yen (approved automatically)
# and 2,500 yen (above its auto-approve limit of 2,000: a person reviews it).
TRAIL = {"sku": "TRAIL-01", "category": "shoes", "quantity": 1, "unitPrice": 9000}
SUMMIT = {"sku": "TRAIL-02", "category": "shoes", "quantity": 1, "unitPrice": 16000}
SETTLED = frozenset({"credited", "rejected", "error"})
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Retry intervals (1 s, 10 s for a receipt still being checked) become 10 ms and 100 ms.
TIME_SCALE = 0.01


def png() -> bytes:
    """A PNG receipt of its own (its SHA-256 matches no other receipt)."""
    return PNG_MAGIC + os.urandom(200)


def full_width(text: str) -> str:
    """`text` as typed on a Japanese keyboard in full-width mode."""
    return "".join(
        "\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text
    )


def yen(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "JPY"}


def purchase(
    receipt_number: str,
    *lines: dict[str, Any],
    retailer: str = "ABC Mart",
    purchased_at: datetime | None = None,
) -> dict[str, Any]:
    items = list(lines) or [TRAIL]
    return {
        "retailer": retailer,
        "receiptNumber": receipt_number,
        "purchasedAt": format_instant(purchased_at or datetime.now(UTC) - timedelta(hours=2)),
        "currency": "JPY",
        "items": items,
        "total": sum(line["unitPrice"] * line["quantity"] for line in items),
    }


def someone(role: str) -> str:
    return f"it-{role}-{uuid.uuid4().hex[:8]}"


# -- the storefront and the operator, over HTTP ---------------------------------------------


class Storefront:
    """A storefront calling the claims routes with the stack's key; an operator signing
    the review route (SigV4, no key)."""

    def __init__(self, cloud: LocalCloud) -> None:
        self.base = cloud.outputs["ApiUrl"].rstrip("/")
        self.key = cloud.outputs["ApiKey"]
        self.region = cloud.outputs["Region"]

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        keyed: bool = True,
    ) -> tuple[int, Any]:
        """Status and JSON body; `data` is sent as is instead of `body` as JSON."""
        sent = {"Content-Type": "application/json", **(headers or {})}
        if keyed:
            sent["x-api-key"] = self.key
        if data is None and body is not None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers=sent, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def grant(self, customer: str, content_type: str, size: int) -> tuple[int, Any]:
        body = {"customerId": customer, "contentType": content_type, "size": size}
        return self.call("POST", "/v1/claims/uploads", body)

    def post_file(
        self, granted: dict[str, Any], content: bytes, content_type: str
    ) -> requests.Response:
        """The browser's upload: the grant's fields, then the file, to the bucket."""
        form = granted["upload"]
        return requests.post(
            form["url"],
            data=form["fields"],
            files={"file": ("receipt", content, content_type)},
            timeout=60,
        )

    def upload(
        self, customer: str, content: bytes | None = None, content_type: str = "image/png"
    ) -> str:
        """A receipt uploaded as the customer's browser does; its key."""
        content = png() if content is None else content
        status, granted = self.grant(customer, content_type, len(content))
        assert status == 201, granted
        answer = self.post_file(granted, content, content_type)
        assert answer.status_code == 204, answer.text
        return str(granted["receiptKey"])

    def submit(
        self,
        campaign_id: str,
        customer: str,
        bought: dict[str, Any],
        receipt_key: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[int, Any]:
        body: dict[str, Any] = {"campaignId": campaign_id, "customerId": customer}
        body["purchase"] = bought
        if receipt_key is not None:
            body["receiptKey"] = receipt_key
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self.call("POST", "/v1/claims", body, headers=headers)

    def claim_for(
        self,
        campaign_id: str,
        customer: str,
        bought: dict[str, Any],
        receipt_key: str | None = None,
    ) -> str:
        status, accepted = self.submit(campaign_id, customer, bought, receipt_key)
        assert (status, accepted.get("status")) == (202, "submitted"), accepted
        return str(accepted["claimId"])

    def claim(self, claim_id: str) -> dict[str, Any]:
        status, body = self.call("GET", f"/v1/claims/{claim_id}")
        assert status == 200, body
        return dict(body)

    def settled(
        self, claim_id: str, statuses: frozenset[str] = SETTLED, timeout: float = 30
    ) -> dict[str, Any]:
        """The claim once it is in one of `statuses`."""
        return eventually(lambda: _if_in(self.claim(claim_id), statuses), timeout=timeout)

    def review(
        self, claim_id: str, decision: str, reason: str, reviewer: str = "ops@example.com"
    ) -> tuple[int, Any]:
        """The operator's decision, signed as `aws` signs an execute-api call."""
        url = f"{self.base}/v1/claims/{claim_id}/review"
        body = json.dumps({"decision": decision, "reason": reason, "reviewer": reviewer})
        return self.call(
            "POST", url.removeprefix(self.base), data=body.encode(), headers=self.signed(url, body)
        )

    def signed(self, url: str, body: str) -> dict[str, str]:
        request = AWSRequest(
            method="POST", url=url, data=body, headers={"Content-Type": "application/json"}
        )
        SigV4Auth(Credentials("testing", "testing"), "execute-api", self.region).add_auth(request)
        return dict(request.headers.items())

    def wallet(self, customer: str) -> dict[str, Any]:
        status, body = self.call("GET", f"/v1/customers/{customer}/wallet")
        assert status == 200, body
        return dict(body)


def _if_in(claim: dict[str, Any], statuses: frozenset[str]) -> dict[str, Any] | None:
    return claim if claim["status"] in statuses else None


def at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call concurrently (one thread each); their answers in order."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


# -- the stack: campaigns, the state machine, the steps function ---------------------------


@dataclass(frozen=True)
class Stack:
    """The deployed stack as an operator sees it: campaigns published through their
    bucket, items, executions and their history, the functions' configuration and
    the scheduled rules."""

    cloud: LocalCloud
    s3: Any
    states: Any
    dynamodb: Any

    def publish(self, **changes: Any) -> str:
        """A running rebate campaign of its own (the shared one's rules, with `changes`)."""
        campaign_id = f"it-claims-{uuid.uuid4().hex[:8]}"
        now = datetime.now(UTC)
        document: dict[str, Any] = {
            "id": campaign_id,
            "name": "Integration rebate",
            "kind": "rebate",
            "currency": "JPY",
            "timezone": "Asia/Tokyo",
            "starts_at": (now - timedelta(days=20)).isoformat(),
            "ends_at": (now + timedelta(days=30)).isoformat(),
            "budget": {"amount": 10_000_000},
            "eligibility": {
                "channels": ["online", "in_store"],
                "skus": ["TRAIL-01", "TRAIL-02"],
                "min_purchase": 8000,
            },
            "reward": {
                "tiered": [
                    {"min_purchase": 8000, "amount": 1000},
                    {"min_purchase": 15000, "amount": 2500},
                ]
            },
            "claims": {
                "window_days": 3,
                "require_receipt": True,
                "auto_approve_up_to": 2000,
                "review_timeout_hours": 1,
            },
            "cashback": {"pending_days": 0, "expires_after_days": 365},
        }
        document.update(changes)
        bucket = self.cloud.outputs["CampaignBucketName"]
        key = f"campaigns/{campaign_id}.json"
        revision = upload_campaign_file(self.s3, bucket, key, json.dumps(document).encode())
        report = wait_for_report(self.s3, bucket, key, revision, timeout=60)
        assert report.document["status"] == "published", report.document
        return campaign_id

    def campaign_item(self, campaign_id: str) -> dict[str, Any]:
        table = physical_id(self.cloud, "CampaignsTable", "AWS::DynamoDB::Table")
        key = {"pk": {"S": f"CAMPAIGN#{campaign_id}"}, "sk": {"S": "META"}}
        item: dict[str, Any] = self.dynamodb.get_item(
            TableName=table, Key=key, ConsistentRead=True
        )["Item"]
        return item

    def claim_item(self, claim_id: str) -> dict[str, Any]:
        table = physical_id(self.cloud, "ClaimsTable", "AWS::DynamoDB::Table")
        key = {"pk": {"S": f"CLAIM#{claim_id}"}, "sk": {"S": "META"}}
        item: dict[str, Any] = self.dynamodb.get_item(
            TableName=table, Key=key, ConsistentRead=True
        )["Item"]
        return item

    @property
    def state_machine_arn(self) -> str:
        return self.cloud.outputs["ClaimsStateMachineArn"]

    def execution_arn(self, claim_id: str) -> str:
        return self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{claim_id}"

    def execution(self, claim_id: str) -> dict[str, Any]:
        """The claim's execution once it has ended."""

        def ended() -> dict[str, Any] | None:
            found = self.states.describe_execution(executionArn=self.execution_arn(claim_id))
            return dict(found) if found["status"] != "RUNNING" else None

        return eventually(ended, timeout=30)

    def history(self, claim_id: str) -> list[dict[str, Any]]:
        pages = self.states.get_paginator("get_execution_history").paginate(
            executionArn=self.execution_arn(claim_id)
        )
        return [event for page in pages for event in page["events"]]

    def executions(self) -> int:
        pages = self.states.get_paginator("list_executions").paginate(
            stateMachineArn=self.state_machine_arn
        )
        return sum(len(page["executions"]) for page in pages)

    @contextmanager
    def steps_environment(self, **changes: str) -> Iterator[None]:
        """The steps function's environment with `changes`, put back afterwards."""
        lambdas = self.cloud.client("lambda")
        name = physical_id(self.cloud, "ClaimsStepsFunction", "AWS::Lambda::Function")
        before = lambdas.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        lambdas.update_function_configuration(
            FunctionName=name, Environment={"Variables": {**before, **changes}}
        )
        try:
            yield
        finally:
            lambdas.update_function_configuration(
                FunctionName=name, Environment={"Variables": before}
            )

    def fire_keeper(self) -> None:
        """`rebates local fire ClaimsReviewKeeperSchedule`: the local cloud's control plane."""
        answer = cli.local.control(
            "POST", f"fire/{KEEPER_SCHEDULE_ID}", api_url=self.cloud.outputs["ApiUrl"]
        )
        assert [target["outcome"] for target in answer["targets"]] == ["invoked"], answer


def attempts(history: list[dict[str, Any]], state: str) -> list[str]:
    """How each attempt of the task `state` ended, in order: ``succeeded`` or the error
    (a Retry runs the task again without entering the state again)."""
    outcomes = []
    entered: str | None = None
    for event in history:
        entered = _state_of(event) or entered
        if entered != state:
            continue
        if event["type"] == "TaskSucceeded":
            outcomes.append("succeeded")
        elif event["type"] == "TaskFailed":
            outcomes.append(str(event["taskFailedEventDetails"].get("error")))
    return outcomes


def _state_of(event: dict[str, Any]) -> str | None:
    details = event.get("stateEnteredEventDetails")
    return str(details["name"]) if details else None


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def quick_retries(cloud: LocalCloud) -> Iterator[None]:
    before = step_functions_time_scale()
    set_step_functions_time_scale(TIME_SCALE)
    yield
    set_step_functions_time_scale(before)


@pytest.fixture(scope="module")
def stack(cloud: LocalCloud) -> Stack:
    return Stack(
        cloud=cloud,
        s3=cloud.client("s3"),
        states=cloud.client("stepfunctions"),
        dynamodb=cloud.client("dynamodb"),
    )


@pytest.fixture(scope="module")
def shop(cloud: LocalCloud) -> Storefront:
    return Storefront(cloud)


@pytest.fixture(scope="module")
def campaign(stack: Stack) -> str:
    """The shared campaign: receipts required, claims within 3 days of the purchase,
    1,000 yen from 8,000 (approved at once), 2,500 from 15,000 (reviewed, for an hour)."""
    return stack.publish()


# -- approved ---------------------------------------------------------------------------------


def test_a_claim_within_the_rules_is_approved_and_credited_to_the_wallet(
    stack: Stack, shop: Storefront, campaign: str, rebates: Callable[..., int]
) -> None:
    customer = someone("hiker")
    claim_id = shop.claim_for(campaign, customer, purchase("R-1"), shop.upload(customer))

    claim = shop.settled(claim_id)

    assert (claim["status"], claim["reward"], claim["reasons"]) == ("credited", yen(1000), [])
    assert [step["status"] for step in claim["timeline"]] == [
        "submitted",
        "verifying",
        "approved",
        "credited",
    ]
    wallet = shop.wallet(customer)
    assert wallet["available"] == yen(1000)
    (entry,) = wallet["entries"]
    assert (entry["kind"], entry["claimId"], entry["amount"]) == ("credit", claim_id, yen(1000))
    assert stack.execution(claim_id)["status"] == "SUCCEEDED"
    assert rebates("wallet", "audit", customer) == 0


# -- review -----------------------------------------------------------------------------------


def test_a_reviewer_approves_a_claim_above_the_auto_approve_limit(
    stack: Stack, shop: Storefront, campaign: str
) -> None:
    customer = someone("reviewed")
    claim_id = shop.claim_for(campaign, customer, purchase("R-2", SUMMIT), shop.upload(customer))
    waiting = shop.settled(claim_id, frozenset({"in_review", *SETTLED}))
    assert (waiting["status"], waiting["reviewReasons"]) == (
        "in_review",
        ["above_auto_approve_limit"],
    )
    assert waiting["reviewDueAt"] is not None

    # A storefront's key does not reach the operators' route; a signature does.
    refused = shop.call(
        "POST",
        f"/v1/claims/{claim_id}/review",
        {"decision": "approve", "reason": "receipt matches", "reviewer": "ops@example.com"},
    )
    decided = shop.review(claim_id, "approve", "receipt matches")
    again = shop.review(claim_id, "reject", "second thoughts", reviewer="other@example.com")

    assert refused[0] == 403, refused
    assert decided == (
        200,
        {
            "claimId": claim_id,
            "status": "in_review",
            "decision": "approve",
            "reviewer": "ops@example.com",
        },
    )
    assert (again[0], again[1]["error"]["code"]) == (409, "already_decided")
    claim = shop.settled(claim_id)
    assert (claim["status"], claim["reward"]) == ("credited", yen(2500))
    assert [step["status"] for step in claim["timeline"]] == [
        "submitted",
        "verifying",
        "in_review",
        "approved",
        "credited",
    ]
    assert "receipt matches" in (claim["timeline"][3]["note"] or "")
    assert shop.wallet(customer)["available"] == yen(2500)


def test_a_reviewer_rejects_a_claim_with_their_reason(
    stack: Stack, shop: Storefront, campaign: str
) -> None:
    customer = someone("refused")
    claim_id = shop.claim_for(campaign, customer, purchase("R-3", SUMMIT), shop.upload(customer))
    assert shop.settled(claim_id, frozenset({"in_review", *SETTLED}))["status"] == "in_review"

    decided = shop.review(claim_id, "reject", "receipt is for another store")

    assert decided[0] == 200, decided
    claim = shop.settled(claim_id)
    assert (claim["status"], claim["reasons"]) == ("rejected", ["review_rejected"])
    assert claim["timeline"][-1]["status"] == "rejected"
    assert claim["timeline"][-1]["note"] == "receipt is for another store"
    assert shop.wallet(customer)["entries"] == []
    assert stack.execution(claim_id)["status"] == "SUCCEEDED"


def test_a_review_nobody_decides_in_time_rejects_the_claim(
    stack: Stack, shop: Storefront, campaign: str
) -> None:
    customer = someone("forgotten")
    receipt = shop.upload(customer)
    # An hour of review_timeout_hours lasts 4 s: the wait's heartbeat is due every 2 s,
    # which the review keeper (fired here as its schedule would) sends.
    with stack.steps_environment(CLAIMS_REVIEW_SECONDS_PER_HOUR="4"):
        claim_id = shop.claim_for(campaign, customer, purchase("R-4", SUMMIT), receipt)
        waiting = shop.settled(claim_id, frozenset({"in_review", *SETTLED}))
        assert waiting["status"] == "in_review", waiting

        def timed_out() -> dict[str, Any] | None:
            stack.fire_keeper()
            time.sleep(0.3)
            return _if_in(shop.claim(claim_id), SETTLED)

        claim = eventually(timed_out, timeout=20)

    assert (claim["status"], claim["reasons"]) == ("rejected", ["review_timeout"])
    late = shop.review(claim_id, "approve", "sorry, busy")
    assert (late[0], late[1]["error"]["code"]) == (409, "review_closed")
    assert shop.claim(claim_id)["status"] == "rejected"
    assert stack.execution(claim_id)["status"] == "SUCCEEDED"
    assert "Close the review" in [
        _state_of(event) for event in stack.history(claim_id) if _state_of(event)
    ]


def test_a_review_wait_nobody_keeps_alive_ends_in_error_with_its_cause(
    stack: Stack, shop: Storefront, campaign: str
) -> None:
    customer = someone("unkept")
    receipt = shop.upload(customer)
    with stack.steps_environment(CLAIMS_REVIEW_SECONDS_PER_HOUR="4"):
        claim_id = shop.claim_for(campaign, customer, purchase("R-5", SUMMIT), receipt)
        claim = shop.settled(claim_id, timeout=20)

    assert claim["status"] == "error", claim
    assert "HeartbeatTimeout" in stack.claim_item(claim_id)["errorCause"]["S"]
    execution = stack.execution(claim_id)
    assert (execution["status"], execution.get("error")) == ("FAILED", "ClaimVerificationFailed")


# -- duplicates -------------------------------------------------------------------------------


def test_a_receipt_claimed_again_by_another_customer_however_written_is_a_duplicate(
    shop: Storefront, campaign: str
) -> None:
    first, second = someone("original"), someone("copycat")
    number = f"R-{uuid.uuid4().hex[:6].upper()}"
    bought = datetime.now(UTC) - timedelta(hours=3)
    # The rule is the same receipt on the same local day: with a Tokyo midnight inside
    # the hour between the two, they would be two days (and this test would fail from
    # 14:00 to 15:00 UTC), so the hour is taken before that midnight.
    if local_date(bought, "Asia/Tokyo") != local_date(bought + timedelta(hours=1), "Asia/Tokyo"):
        bought -= timedelta(hours=1)
    original = shop.claim_for(
        campaign, first, purchase(number, purchased_at=bought), shop.upload(first)
    )
    assert shop.settled(original)["status"] == "credited"

    # Full-width letters and digits, another case, spaces: the same receipt, an hour later.
    retyped = purchase(
        f" {full_width(number.lower())} ",
        retailer=full_width("abc mart"),
        purchased_at=bought + timedelta(hours=1),
    )
    copy = shop.claim_for(campaign, second, retyped, shop.upload(second))
    claim = shop.settled(copy)

    assert (claim["status"], claim["reasons"]) == ("rejected", ["duplicate_receipt"])
    assert [(e["rule"], e["reason"], e["claimIds"]) for e in claim["evidence"]] == [
        ("same_receipt_number", "duplicate_receipt", [original])
    ]
    assert shop.wallet(second)["entries"] == []


def test_the_same_receipt_file_under_another_key_is_a_duplicate(
    shop: Storefront, campaign: str
) -> None:
    customer = someone("twice")
    content = png()
    first = shop.claim_for(campaign, customer, purchase("F-1"), shop.upload(customer, content))
    assert shop.settled(first)["status"] == "credited"

    again = shop.claim_for(campaign, customer, purchase("F-2"), shop.upload(customer, content))
    claim = shop.settled(again)

    assert (claim["status"], claim["reasons"]) == ("rejected", ["duplicate_receipt"])
    assert [(e["rule"], e["claimIds"]) for e in claim["evidence"]] == [
        ("same_receipt_file", [first])
    ]
    assert shop.wallet(customer)["available"] == yen(1000)


def test_two_identical_claims_at_once_credit_one(
    shop: Storefront, campaign: str, rebates: Callable[..., int]
) -> None:
    customer = someone("eager")
    receipt = shop.upload(customer)
    bought = purchase("SAME-1")
    answers = at_once([lambda: shop.submit(campaign, customer, bought, receipt)] * 2)
    assert [status for status, _ in answers] == [202, 202], answers
    claims = [shop.settled(body["claimId"]) for _, body in answers]

    assert sorted((c["status"], tuple(c["reasons"])) for c in claims) == [
        ("credited", ()),
        ("rejected", ("duplicate_receipt",)),
    ]
    assert shop.wallet(customer)["available"] == yen(1000)
    assert rebates("wallet", "audit", customer) == 0


# -- the campaign's rules ---------------------------------------------------------------------


def test_claims_outside_the_campaigns_rules_are_rejected_with_their_reason(
    stack: Stack, shop: Storefront, campaign: str
) -> None:
    now = datetime.now(UTC)
    cases = {
        # Before the campaign started (20 days ago).
        "outside_window": purchase("W-1", purchased_at=now - timedelta(days=25)),
        # Inside the campaign, but claims close 3 days after the purchase.
        "claim_window_closed": purchase("W-2", purchased_at=now - timedelta(days=10)),
        "below_min_purchase": purchase("W-3", {**TRAIL, "unitPrice": 5000}),
        "not_eligible": purchase("W-4", {**TRAIL, "sku": "ROAD-99"}),
    }
    customers = {reason: someone(reason.replace("_", "-")) for reason in cases}
    receipts = {reason: shop.upload(customer) for reason, customer in customers.items()}

    claim_ids = at_once(
        [
            partial(shop.claim_for, campaign, customers[reason], cases[reason], receipts[reason])
            for reason in cases
        ]
    )
    claims = {
        reason: shop.settled(claim_id) for reason, claim_id in zip(cases, claim_ids, strict=True)
    }

    assert {reason: (c["status"], c["reasons"]) for reason, c in claims.items()} == {
        reason: ("rejected", [reason]) for reason in cases
    }
    assert all(c["reward"] is None for c in claims.values())
    assert all(stack.execution(c)["status"] == "SUCCEEDED" for c in claim_ids)


def test_a_claim_for_an_unknown_campaign_is_refused_before_any_verification(
    stack: Stack, shop: Storefront
) -> None:
    customer = someone("lost")
    receipt = shop.upload(customer)
    executions = stack.executions()

    status, body = shop.submit("it-claims-never-published", customer, purchase("U-1"), receipt)

    assert (status, body["error"]["code"]) == (422, "campaign_not_found")
    assert body["error"]["details"] == {"campaignId": "it-claims-never-published"}
    assert stack.executions() == executions
    listed = shop.call("GET", f"/v1/customers/{customer}/claims")
    assert (listed[0], listed[1]["claims"]) == (200, [])


def test_twenty_customers_claiming_at_once_against_a_budget_of_five_rewards(
    stack: Stack, shop: Storefront, rebates: Callable[..., int]
) -> None:
    campaign_id = stack.publish(
        budget={"amount": 5000},
        reward={"fixed": 1000},
        claims={"window_days": 3, "require_receipt": False, "auto_approve_up_to": 2000},
    )
    run = uuid.uuid4().hex[:6]
    customers = [f"it-budget-{run}-{n}" for n in range(20)]

    claim_ids = at_once(
        [
            partial(shop.claim_for, campaign_id, customer, purchase(f"B-{customer}"))
            for customer in customers
        ]
    )
    claims = [shop.settled(claim_id, timeout=60) for claim_id in claim_ids]

    assert Counter((c["status"], tuple(c["reasons"])) for c in claims) == {
        ("credited", ()): 5,
        ("rejected", ("budget_exhausted",)): 15,
    }
    item = stack.campaign_item(campaign_id)
    assert (item["budgetUsedAmount"]["N"], item["budgetUsedCount"]["N"]) == ("5000", "5")
    credited = [c["customerId"] for c in claims if c["status"] == "credited"]
    assert sum(shop.wallet(customer)["available"]["amount"] for customer in credited) == 5000
    assert rebates("wallet", "audit", credited[0]) == 0


def test_a_customer_past_the_per_customer_limit_is_refused(stack: Stack, shop: Storefront) -> None:
    campaign_id = stack.publish(
        limits={"per_customer": 1},
        claims={"window_days": 3, "require_receipt": False, "auto_approve_up_to": 2000},
    )
    customer = someone("limited")
    first = shop.claim_for(campaign_id, customer, purchase("L-1"))
    assert shop.settled(first)["status"] == "credited"

    second = shop.claim_for(campaign_id, customer, purchase("L-2"))
    claim = shop.settled(second)

    assert (claim["status"], claim["reasons"]) == ("rejected", ["limit_reached"])
    assert [(e["rule"], e["claimIds"]) for e in claim["evidence"]] == [
        ("per_customer_limit", [first])
    ]
    assert shop.wallet(customer)["available"] == yen(1000)


# -- failures on the way ------------------------------------------------------------------------


def _throttled(operation: str) -> ClientError:
    error = {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    return ClientError({"Error": error}, operation)


def test_a_throttled_step_is_retried_and_the_claim_still_credited(
    stack: Stack, shop: Storefront, campaign: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = importlib.import_module("functions.claims.handlers.steps")
    customer = someone("throttled")
    mark_credited = steps.store.mark_credited
    refused: list[str] = []

    def throttled_once(claim_id: str, **kwargs: Any) -> Any:
        if steps.store.get(claim_id).customer_id == customer and not refused:
            refused.append(claim_id)
            raise _throttled("UpdateItem")
        return mark_credited(claim_id, **kwargs)

    monkeypatch.setattr(steps.store, "mark_credited", throttled_once)
    claim_id = shop.claim_for(campaign, customer, purchase("T-1"), shop.upload(customer))
    claim = shop.settled(claim_id)

    assert refused == [claim_id]
    assert claim["status"] == "credited", claim
    assert attempts(stack.history(claim_id), "Mark credited") == ["TransientError", "succeeded"]
    assert shop.wallet(customer)["available"] == yen(1000)


class TransientError(Exception):
    """Named as the state machine's Retry knows it: a failure a retry may mend."""


def test_a_credit_whose_answer_was_lost_is_retried_and_credits_once(
    stack: Stack,
    shop: Storefront,
    campaign: str,
    monkeypatch: pytest.MonkeyPatch,
    rebates: Callable[..., int],
) -> None:
    credit_task = importlib.import_module("functions.wallet.handlers.credit")
    customer = someone("lost-answer")
    credit = credit_task.credit
    credited: list[dict[str, Any]] = []

    def credits_then_fails(event: Any, wallet: Any) -> dict[str, Any]:
        answer: dict[str, Any] = credit(event, wallet)
        if event.get("customerId") == customer:
            credited.append(answer)
            if len(credited) == 1:
                # The lot is written; the task never hears of it.
                raise TransientError("connection reset after the credit was written")
        return answer

    monkeypatch.setattr(credit_task, "credit", credits_then_fails)
    claim_id = shop.claim_for(campaign, customer, purchase("C-1"), shop.upload(customer))
    claim = shop.settled(claim_id)

    assert claim["status"] == "credited", claim
    assert [answer["new"] for answer in credited] == [True, False]
    assert credited[0]["lotId"] == credited[1]["lotId"]
    assert attempts(stack.history(claim_id), "Credit the cashback") == [
        "TransientError",
        "succeeded",
    ]
    wallet = shop.wallet(customer)
    assert wallet["available"] == yen(1000)
    assert [(e["kind"], e["claimId"]) for e in wallet["entries"]] == [("credit", claim_id)]
    assert rebates("wallet", "audit", customer) == 0


# -- retries of the storefront ----------------------------------------------------------------


def test_a_submission_retried_with_its_idempotency_key_is_one_claim(
    stack: Stack, shop: Storefront, campaign: str
) -> None:
    customer = someone("retrying")
    receipt = shop.upload(customer)
    key = f"submit-{uuid.uuid4().hex}"
    bought = purchase("I-1")

    first = shop.submit(campaign, customer, bought, receipt, idempotency_key=key)
    again = shop.submit(campaign, customer, bought, receipt, idempotency_key=key)
    other = shop.submit(campaign, customer, purchase("I-2"), receipt, idempotency_key=key)

    assert first[0] == 202, first
    assert again == first
    assert (other[0], other[1]["error"]["code"]) == (409, "idempotency_key_reused")
    assert shop.settled(first[1]["claimId"])["status"] == "credited"
    listed = shop.call("GET", f"/v1/customers/{customer}/claims")[1]["claims"]
    assert [c["claimId"] for c in listed] == [first[1]["claimId"]]


# -- receipts ---------------------------------------------------------------------------------


def test_a_receipt_whose_bytes_are_not_its_declared_type_rejects_the_claim(
    shop: Storefront, campaign: str
) -> None:
    customer = someone("forger")
    # Exactly the declared size and content type, so the POST policy lets it in; the
    # bytes are a JPEG's, not the PNG declared.
    receipt = shop.upload(customer, b"\xff\xd8\xff\xe0" + os.urandom(200), "image/png")

    claim = shop.settled(shop.claim_for(campaign, customer, purchase("X-1"), receipt))

    assert (claim["status"], claim["reasons"]) == ("rejected", ["receipt_invalid"])


def test_an_upload_larger_than_granted_is_refused_by_the_bucket(
    stack: Stack, shop: Storefront
) -> None:
    customer = someone("oversized")
    content = png()
    status, granted = shop.grant(customer, "image/png", len(content))
    assert status == 201, granted

    answer = shop.post_file(granted, content + b"\x00" * 1024, "image/png")

    assert answer.status_code == 400, answer.text
    assert "<Code>EntityTooLarge</Code>" in answer.text
    bucket = physical_id(stack.cloud, "ClaimsReceiptsBucket", "AWS::S3::Bucket")
    with pytest.raises(ClientError) as missing:
        stack.s3.head_object(Bucket=bucket, Key=granted["receiptKey"])
    assert missing.value.response["Error"]["Code"] == "404"
    # Nor does the grant go beyond 10 MiB in the first place.
    status, refused = shop.grant(customer, "image/png", 10 * 1024 * 1024 + 1)
    assert (status, refused["error"]["code"]) == (400, "receipt_too_large")


# -- hostile requests -------------------------------------------------------------------------


def test_hostile_requests_on_the_claims_routes_are_refused_in_the_error_shape(
    shop: Storefront, campaign: str
) -> None:
    good: dict[str, Any] = {"campaignId": campaign, "customerId": someone("hostile")}
    good["purchase"] = purchase("H-1")

    def claim_with(**changes: Any) -> bytes:
        return json.dumps({**good, **changes}).encode()

    def bought_with(**changes: Any) -> bytes:
        return claim_with(purchase={**good["purchase"], **changes})

    bodies = {
        "not UTF-8": b"\xff\xfe\xfd{",
        "not UTF-8 inside a string": b'{"campaignId": "\xff\xfe"}',
        "not JSON": b"campaignId=x",
        "empty": b"",
        "a list": b"[]",
        "null": b"null",
        "nested without end": b"[" * 100_000,
        "NaN": b'{"campaignId": NaN}',
        "a number of 5,000 digits": b'{"size": ' + b"9" * 5000 + b"}",
        "no keys": b"{}",
        "no purchase": claim_with(purchase=None),
        "an unknown key": claim_with(admin=True),
        "a float total": bought_with(total=9000.0),
        "a float price": bought_with(items=[{**TRAIL, "unitPrice": 9000.5}]),
        "a string total": bought_with(total="9000"),
        "an instant without offset": bought_with(purchasedAt="2026-11-30T10:00:00"),
        "no items": bought_with(items=[]),
        "a receipt key outside receipts/": claim_with(receiptKey="receipts/../../etc/passwd"),
        "a customer id with a NUL": claim_with(customerId="a\u0000b"),
        "a size as a float": json.dumps(
            {"customerId": "c", "contentType": "image/png", "size": 1.5}
        ).encode(),
    }
    answers = {
        (path, name): shop.call("POST", path, data=data)
        for name, data in bodies.items()
        for path in ("/v1/claims", "/v1/claims/uploads")
    }
    review = f"{shop.base}/v1/claims/clm_hostile/review"
    for name, data in {
        "not UTF-8": b"\xff",
        "another decision": b'{"decision": "maybe", "reason": "r", "reviewer": "x"}',
        "a float reason": b'{"decision": "approve", "reason": 1.5, "reviewer": "x"}',
        "no reviewer": b'{"decision": "approve", "reason": "r"}',
    }.items():
        signed = shop.signed(review, data.decode("utf-8", "replace"))
        answers[("review", name)] = shop.call(
            "POST", review.removeprefix(shop.base), data=data, headers=signed, keyed=False
        )
    for path in (
        "/v1/claims/%ff%fe",
        "/v1/claims/..%2F..%2Fetc",
        "/v1/claims/" + "a" * 200,
        "/v1/customers/c1/claims?limit=abc",
        "/v1/customers/c1/claims?limit=0",
        "/v1/customers/c1/claims?limit=1.5",
        "/v1/customers/c1/claims?nextToken=garbage",
        "/v1/customers/c1/claims?nextToken=%ff%fe",
    ):
        answers[("GET", path)] = shop.call("GET", path)

    refused = {request: status for request, (status, _) in answers.items()}
    assert refused == dict.fromkeys(answers, 400)
    for request, (_, body) in answers.items():
        error = body["error"]
        assert error["code"] in {"invalid_request", "invalid_page_token"}, (request, error)
        assert error["message"], request

    too_large = b'{"campaignId": "' + b"x" * (11 * 1024 * 1024) + b'"}'
    for path in ("/v1/claims", "/v1/claims/uploads"):
        status, body = shop.call("POST", path, data=too_large)
        assert (status, body["error"]["code"]) == (413, "payload_too_large")
    # An operator's well-formed decision on a claim that does not exist.
    data = b'{"decision": "approve", "reason": "r", "reviewer": "x"}'
    signed = shop.signed(review, data.decode())
    status, body = shop.call(
        "POST", review.removeprefix(shop.base), data=data, headers=signed, keyed=False
    )
    assert (status, body["error"]["code"]) == (404, "claim_not_found")
