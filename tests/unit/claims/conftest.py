"""The claims domain's tests on in-process moto: the tables the claims use, rebate
campaigns published as the loader publishes them, receipts as the checker records them,
and a state machine that records what it is asked instead of running executions.

The test modules import the builders below by name; the fixtures are found by pytest.
Nothing here is autouse, so the receipts tests beside these keep their own fixtures.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import boto3
import pytest
from moto import mock_aws

from functions.campaigns.models import Campaign, get_campaign
from functions.campaigns.rewards import LineItem
from functions.campaigns.states import ARCHIVED
from functions.claims.dal import ClaimDraft, ClaimStore, PurchaseInput, StateMachine
from functions.claims.models import Claim, Receipt
from functions.claims.receipts import receipt_key
from functions.core.ids import new_id
from functions.core.models import ALLOW_DEFAULT_TABLES_ENV, reset_connections, resolve_table_name
from functions.core.tables import ALL_TABLES, CAMPAIGNS, CLAIMS, IDEMPOTENCY
from tests.support.aws import aws_env
from tests.support.campaigns import publish_campaign
from tests.support.tables import create_table_request

__all__ = ["aws_env"]

CAMPAIGN: Final = "trail-rebate-2027"
STATE_MACHINE_ARN: Final = "arn:aws:states:ap-northeast-1:123456789012:stateMachine:Claims"
# 2027-03-10 12:00 in Tokyo; claimed the next day.
PURCHASED: Final = datetime(2027, 3, 10, 3, 0, tzinfo=UTC)
SUBMITTED: Final = PURCHASED + timedelta(days=1)
PUBLISHED: Final = datetime(2027, 2, 20, tzinfo=UTC)

# 1,000 yen back on a trail shoe bought for 5,000 yen or more in March 2027, claimed
# within 30 days with a receipt; rewards above 3,000 yen go to a person.
REBATE: Final[dict[str, Any]] = {
    "id": CAMPAIGN,
    "name": "Trail shoes rebate",
    "kind": "rebate",
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "starts_at": "2027-03-01T00:00:00+09:00",
    "ends_at": "2027-04-01T00:00:00+09:00",
    "budget": {"amount": 1_000_000, "max_rewards": 1000},
    "eligibility": {
        "channels": ["online", "in_store"],
        "skus": ["TRAIL-01", "TRAIL-02"],
        "min_purchase": 5000,
    },
    "reward": {"fixed": 1000},
    "limits": {"per_customer": 3},
    "claims": {"window_days": 30, "auto_approve_up_to": 3000, "review_timeout_hours": 72},
}

PNG: Final = b"\x89PNG\r\n\x1a\n" + b"receipt"


def rebate(**changes: Any) -> dict[str, Any]:
    """The campaign file with top-level keys replaced (a value of None removes the key)."""
    document = copy.deepcopy(REBATE)
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return document


def publish(document: Mapping[str, Any]) -> None:
    """Publish `document` as the loader does, as the campaign's next version."""
    stored = get_campaign(str(document["id"]))
    version = stored.version + 1 if stored is not None else 1
    publish_campaign(dict(document), PUBLISHED, version=version)


def full_width(text: str) -> str:
    """`text` as typed on a Japanese keyboard in full-width mode: letters, digits and
    signs from U+FF01, spaces as ideographic spaces (U+3000)."""
    return "".join(
        "\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text
    )


def archive(campaign_id: str) -> None:
    """Withdraw the campaign, as the loader does when its file is deleted."""
    item = Campaign.get(*Campaign.key(campaign_id))
    item.update(item.status_actions(ARCHIVED, PUBLISHED + timedelta(days=1)))


def budget_used(campaign_id: str = CAMPAIGN) -> tuple[int, int]:
    campaign = get_campaign(campaign_id)
    assert campaign is not None
    return campaign.budget_used_amount, campaign.budget_used_count


def line(sku: str = "TRAIL-01", price: int = 12_000, quantity: int = 1) -> LineItem:
    return LineItem(sku=sku, category="shoes", quantity=quantity, unitPrice=price)


def draft(
    customer: str = "cust-1",
    *,
    campaign: str = CAMPAIGN,
    retailer: str = "ABC Mart",
    receipt_number: str = "R-0012",
    purchased_at: datetime = PURCHASED,
    currency: str = "JPY",
    items: tuple[LineItem, ...] | None = None,
    total: int | None = None,
    receipt: str | None = None,
    request_key: str | None = None,
    order_id: str | None = None,
) -> ClaimDraft:
    lines = items if items is not None else (line(),)
    return ClaimDraft(
        campaign_id=campaign,
        customer_id=customer,
        purchase=PurchaseInput(
            order_id=order_id,
            retailer=retailer,
            receipt_number=receipt_number,
            purchased_at=purchased_at,
            currency=currency,
            items=lines,
            total=total if total is not None else sum(i.unitPrice * i.quantity for i in lines),
        ),
        receipt_key=receipt,
        request_key=request_key,
    )


def uploaded(
    customer: str = "cust-1",
    *,
    content: bytes = PNG,
    status: str = "valid",
    at: datetime = SUBMITTED,
) -> str:
    """A receipt granted to `customer`, uploaded and checked as `status` (or still
    awaiting its upload); its key."""
    key = receipt_key(customer, new_id("rcp"), "image/png")
    checked = status != "awaiting_upload"
    Receipt(
        receipt_key=key,
        customer_id=customer,
        content_type="image/png",
        declared_size=len(content),
        status=status,
        sha256=hashlib.sha256(content).hexdigest() if checked else None,
        uploaded_size=len(content) if checked else None,
        invalid_reason="PDF bytes, declared PNG" if status == "invalid" else None,
        granted_at=at - timedelta(minutes=10),
        checked_at=at - timedelta(minutes=5) if checked else None,
    ).save()
    return key


def claims_items() -> list[dict[str, Any]]:
    """Every item of the Claims table, in key order (DynamoDB JSON)."""
    return table_items(CLAIMS.default_name)


def table_items(name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = _dynamodb().scan(TableName=name, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item.get("sk", {}).get("S", "")))


def everything() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The Claims table and the Campaigns table (the budget's counters live there)."""
    return claims_items(), table_items(CAMPAIGNS.default_name)


def timeline(claim: Claim) -> list[str]:
    return [entry.status for entry in claim.timeline]


class RecordingStateMachine(StateMachine):
    """The claims state machine as the store sees it, without Step Functions: it records
    every start, decision and heartbeat, refuses a second start of one claim (as Step
    Functions refuses a second execution of one name), and answers False for the
    decisions and heartbeats of waits in `closed` (timed out)."""

    def __init__(self) -> None:
        super().__init__(lambda: STATE_MACHINE_ARN, client=object())
        self.lock = threading.Lock()
        self.started: list[str] = []
        self.executions: set[str] = set()
        self.decisions: list[tuple[str, dict[str, str]]] = []
        self.heartbeats: list[str] = []
        self.closed: set[str] = set()

    def start(self, claim: Claim) -> bool:
        with self.lock:
            self.started.append(claim.claim_id)
            if claim.claim_id in self.executions:
                return False
            self.executions.add(claim.claim_id)
            return True

    def send_decision(self, token: str, decision: Mapping[str, str]) -> bool:
        with self.lock:
            self.decisions.append((token, dict(decision)))
            return token not in self.closed

    def heartbeat(self, token: str) -> bool:
        with self.lock:
            self.heartbeats.append(token)
            return token not in self.closed


@functools.cache
def _dynamodb() -> Any:
    # One client for every test: making one costs more than most of the calls made with it.
    return boto3.client("dynamodb", region_name="ap-northeast-1")


def _create(*specs: Any) -> None:
    client = _dynamodb()
    for spec in specs:
        request = create_table_request(spec, resolve_table_name(spec))
        # Nothing here reads the streams, and moto copies a stream record for every
        # item of every transaction, which slows every write.
        request.pop("StreamSpecification", None)
        client.create_table(**request)


@pytest.fixture(scope="module")
def connections() -> Iterator[None]:
    """Connections made afresh for each module, and kept from one test to the next.

    Every test has the same fake credentials, region and table names, and moto answers
    the kept clients as it answers new ones; making them again for every test would
    load botocore's service descriptions again each time, a good part of a test's time.
    """
    reset_connections()
    yield
    reset_connections()


@pytest.fixture
def tables(connections: None, aws_env: None) -> Iterator[None]:
    """The Campaigns, Claims and Idempotency tables, fresh and empty, on in-process moto."""
    with mock_aws():
        _create(CAMPAIGNS, CLAIMS, IDEMPOTENCY)
        yield


@contextlib.contextmanager
def tables_for_a_module() -> Iterator[None]:
    """What `aws_env` and `tables` give a test, for a fixture that serves a whole module
    (the environment is restored and moto's state dropped when the block ends)."""
    with pytest.MonkeyPatch.context() as patch:
        for spec in ALL_TABLES:
            patch.delenv(spec.env_var, raising=False)
        for variable in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
            patch.delenv(variable, raising=False)
        patch.setenv("AWS_DEFAULT_REGION", "ap-northeast-1")
        for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            patch.setenv(variable, "testing")
        patch.setenv(ALLOW_DEFAULT_TABLES_ENV, "1")
        with mock_aws():
            _create(CAMPAIGNS, CLAIMS, IDEMPOTENCY)
            yield


@pytest.fixture
def machine() -> RecordingStateMachine:
    return RecordingStateMachine()


@pytest.fixture
def store(tables: None, machine: RecordingStateMachine) -> ClaimStore:
    """A store over the rebate campaign, published; a new one per test, so no parsed
    campaign file is carried from one test's tables to the next."""
    publish(REBATE)
    return ClaimStore(state_machine=machine)


@pytest.fixture
def serialised_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One request at a time into in-process moto, as the local cloud's gate does: moto
    does not lock its backends, while the code under test runs in many threads."""
    from moto.core.botocore_stubber import BotocoreStubber

    gate = threading.Lock()
    process = BotocoreStubber.process_request

    def one_at_a_time(self: BotocoreStubber, request: Any) -> Any:
        with gate:
            return process(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", one_at_a_time)
    yield
