"""The wallet's event-driven functions: the scheduled sweep, the claims' credit task, and
the outbox that publishes committed ledger changes.

The sweep and the credit run on in-process moto with the real store (and once with a
recording stand-in, for what the handler itself adds: the clock, the metrics). The outbox
is fed stream records built from real model items (``serialize()`` is the DynamoDB JSON a
stream carries), and once the records moto's own stream produced for real API writes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import fastjsonschema
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from pynamodb.exceptions import UpdateError
from pynamodb.models import Model

from functions.core.clock import FixedClock, frozen_at
from functions.core.event_types import (
    CashbackAvailable,
    CashbackCredited,
    CashbackExpired,
    CashbackExpiring,
    CashbackReversed,
    CashbackSpent,
    PurchaseRecorded,
    PurchaseRefunded,
)
from functions.core.events import InMemoryPublisher, detail_schema_path
from functions.core.money import Money
from functions.core.observability import instrumented
from functions.core.tables import WALLET
from functions.wallet.dal import (
    CreditOutcome,
    CreditRequest,
    PurchaseInput,
    PurchaseLine,
    RefundInput,
    SweepReport,
    WalletStore,
)
from functions.wallet.handlers import credit as credit_module
from functions.wallet.handlers import outbox as outbox_module
from functions.wallet.handlers import sweep as sweep_module
from functions.wallet.handlers.credit import InvalidCreditRequest
from functions.wallet.handlers.outbox import Outbox
from functions.wallet.models import (
    CUSTOMER_PREFIX,
    ENTRY_KINDS,
    ENTRY_PREFIX,
    ORDER_PREFIX,
    PURCHASE_SK,
    REFUND_PREFIX,
    Balance,
    LedgerEntry,
    Lot,
    LotPart,
    Purchase,
    PurchaseItem,
    Refund,
    RewardCount,
    SweepMark,
    cancel_entry_id,
    claim_lot_id,
    credit_entry_id,
    expire_entry_id,
    order_lot_id,
    release_entry_id,
    reverse_entry_id,
    spend_entry_id,
)
from functions.wallet.outbox import (
    ENTRY_KINDS_PUBLISHED,
    STREAM_FILTERS,
    OutboxRecordError,
    event_for,
)
from infra.local.proxy_event import lambda_context
from infra.local.stream_filters import matches
from tests.support.aws import aws_env, tables
from tests.support.bus import (
    RefusingPublisher,
    publishing_environment,
    tap_the_bus,
    the_one_envelope,
)
from tests.support.campaigns import publish_campaign
from tests.support.streams import batch
from tests.support.streams import stream_record as stream_record_of
from tests.unit.core.log_capture import captured_logs, metric_values

__all__ = ["aws_env", "tables"]

OPEN = datetime(2027, 5, 10, 3, 0, tzinfo=UTC)

# Pending two local days, then spendable for ten.
REBATE: dict[str, Any] = {
    "id": "tent-rebate-2027",
    "name": "Tent rebate",
    "kind": "rebate",
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "starts_at": "2027-05-01T00:00:00+09:00",
    "ends_at": "2027-06-01T00:00:00+09:00",
    "budget": {"amount": 100_000},
    "eligibility": {"channels": ["online"]},
    "reward": {"fixed": 1000},
    "claims": {"window_days": 30, "require_receipt": False},
    "cashback": {"pending_days": 2, "expires_after_days": 10},
}


def publish(document: dict[str, Any]) -> None:
    publish_campaign(document, OPEN)


@pytest.fixture
def clock(tables: list[str]) -> Iterator[FixedClock]:
    publish(REBATE)
    store = WalletStore()
    credit_module.store = sweep_module.store = store
    with frozen_at(OPEN) as fixed:
        yield fixed


def claim_credit(claim_id: str = "clm_01", **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "customerId": "cust-1",
        "campaignId": REBATE["id"],
        "claimId": claim_id,
        "amount": {"amount": 1000, "currency": "JPY"},
        "approvedAt": "2027-05-10T12:00:00+09:00",
    }
    payload.update(changes)
    return payload


# -- the credit task ------------------------------------------------------------------------


def test_a_claim_is_credited_as_one_lot_pending_then_expiring(clock: FixedClock) -> None:
    answer = credit_module.handler(claim_credit(), lambda_context("rebates-wallet-credit"))

    assert answer["amount"] == {"amount": 1000, "currency": "JPY"}
    assert answer["new"] is True
    # Approved on 10 May (Tokyo): spendable from the start of 12 May, Tokyo time; it
    # expires ten local days later.
    assert answer["availableAt"] == "2027-05-11T15:00:00Z"
    assert answer["expiresAt"] == "2027-05-21T15:00:00Z"
    assert set(answer) == {"lotId", "entryId", "amount", "availableAt", "expiresAt", "new"}
    assert WalletStore().audit("cust-1").ok


def test_a_retried_credit_task_credits_once(
    clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    first = credit_module.handler(claim_credit(), lambda_context("rebates-wallet-credit"))
    again = credit_module.handler(claim_credit(), lambda_context("rebates-wallet-credit"))

    assert again == {**first, "new": False}
    view = WalletStore().wallet("cust-1", currency="JPY", page_token=None)
    assert view.pending == Money.of(1000, "JPY")
    out = capsys.readouterr().out
    assert metric_values(out, "CashbackCredits") == [1.0]
    assert metric_values(out, "CashbackCreditedAmount", currency="JPY") == [1000.0]


BAD_CREDITS = [
    pytest.param({"amount": {"amount": 1000.0, "currency": "JPY"}}, "amount.amount", id="float"),
    pytest.param({"amount": {"amount": "1000", "currency": "JPY"}}, "amount.amount", id="string"),
    pytest.param({"amount": {"amount": 0, "currency": "JPY"}}, "$", id="zero"),
    pytest.param({"amount": {"amount": -5, "currency": "JPY"}}, "$", id="negative"),
    pytest.param({"amount": {"amount": 5, "currency": "YEN"}}, "amount.currency", id="currency"),
    pytest.param({"amount": 1000}, "amount", id="bare amount"),
    pytest.param({"approvedAt": "2027-05-10 12:00"}, "approvedAt", id="no offset"),
    pytest.param({"campaignId": "Tent Rebate"}, "campaignId", id="campaign id"),
    pytest.param({"customerId": ""}, "customerId", id="empty customer"),
    pytest.param({"claimId": None}, "claimId", id="no claim id"),
    pytest.param({"extra": 1}, "extra", id="unknown key"),
]


@pytest.mark.parametrize(("changes", "path"), BAD_CREDITS)
def test_a_bad_credit_payload_is_a_clear_error_and_credits_nothing(
    clock: FixedClock, changes: dict[str, Any], path: str
) -> None:
    with pytest.raises(InvalidCreditRequest) as raised:
        credit_module.handler(claim_credit(**changes), lambda_context("rebates-wallet-credit"))
    paths = [problem["path"] for problem in raised.value.problems]
    assert path in paths, raised.value.problems
    assert str(raised.value).startswith("not a claim credit: ")
    assert WalletStore().wallet("cust-1", currency="JPY", page_token=None).entries == ()


@pytest.mark.parametrize("payload", [None, [], "credit", {}], ids=repr)
def test_a_payload_that_is_no_object_is_refused(clock: FixedClock, payload: Any) -> None:
    with pytest.raises(InvalidCreditRequest):
        credit_module.credit(payload, WalletStore())


# -- the sweep ------------------------------------------------------------------------------


def sweep(clock: FixedClock, at: datetime) -> dict[str, Any]:
    clock.set(at)
    answer: dict[str, Any] = sweep_module.handler(
        {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}},
        lambda_context("rebates-wallet-sweep"),
    )
    return answer


def test_the_sweep_releases_then_expires_each_lot_once(clock: FixedClock) -> None:
    credit_module.handler(claim_credit(), lambda_context("rebates-wallet-credit"))
    available_at = datetime(2027, 5, 11, 15, 0, tzinfo=UTC)
    expires_at = datetime(2027, 5, 21, 15, 0, tzinfo=UTC)
    store = WalletStore()

    assert sweep(clock, available_at - timedelta(seconds=1))["released"] == 0
    released = sweep(clock, available_at + timedelta(minutes=15))
    assert (released["released"], released["releasedAmount"]) == (1, {"JPY": 1000})
    assert released["lagSeconds"] == pytest.approx(15 * 60)
    assert sweep(clock, available_at + timedelta(minutes=30))["released"] == 0  # once only
    view = store.wallet("cust-1", currency="JPY", page_token=None)
    assert (view.available, view.pending) == (Money.of(1000, "JPY"), Money.of(0, "JPY"))

    expired = sweep(clock, expires_at)
    assert (expired["expired"], expired["expiredAmount"]) == (1, {"JPY": 1000})
    assert sweep(clock, expires_at + timedelta(hours=1))["expired"] == 0
    assert store.wallet("cust-1", currency="JPY", page_token=None).available == Money.of(0, "JPY")
    assert store.audit("cust-1").ok


def test_a_sweep_after_days_without_one_catches_up(clock: FixedClock) -> None:
    credit_module.handler(claim_credit("clm_01"), lambda_context("rebates-wallet-credit"))
    clock.set(OPEN + timedelta(days=1))
    credit_module.handler(
        claim_credit("clm_02", approvedAt="2027-05-11T12:00:00+09:00"),
        lambda_context("rebates-wallet-credit"),
    )
    # Nothing ran for a month: both lots were released and expired meanwhile.
    answer = sweep(clock, OPEN + timedelta(days=30))
    assert (answer["released"], answer["expired"]) == (2, 2)
    assert answer["expiredAmount"] == {"JPY": 2000}
    assert WalletStore().audit("cust-1").ok


class RecordingStore(WalletStore):
    """The sweep's collaborator, recording the instant it was asked to sweep at."""

    def __init__(self, report: SweepReport) -> None:
        super().__init__()
        self.report = report
        self.swept_at: list[datetime] = []

    def sweep(self, *, now: datetime) -> SweepReport:
        self.swept_at.append(now)
        return self.report


def test_the_sweep_runs_on_the_clock_and_reports_what_moved(
    clock: FixedClock, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    report = SweepReport(
        released=3,
        released_amount={"JPY": 1500, "USD": 250},
        expired=1,
        expired_amount={"JPY": 40},
        lag_seconds=42.5,
        reminded=2,
        reminded_amount={"JPY": 700},
    )
    store = RecordingStore(report)
    monkeypatch.setattr(sweep_module, "store", store)

    with captured_logs() as logs:
        answer = sweep(clock, OPEN + timedelta(hours=5))

    assert store.swept_at == [OPEN + timedelta(hours=5)]
    assert answer == {
        "released": 3,
        "releasedAmount": {"JPY": 1500, "USD": 250},
        "expired": 1,
        "expiredAmount": {"JPY": 40},
        "lagSeconds": 42.5,
        "reminded": 2,
        "remindedAmount": {"JPY": 700},
    }
    (line,) = logs.with_message("wallet swept")
    assert (line["released"], line["expired"], line["lagSeconds"]) == (3, 1, 42.5)
    assert (line["reminded"], line["remindedAmount"]) == (2, {"JPY": 700})
    out = capsys.readouterr().out
    assert metric_values(out, "CashbackReleases") == [3.0]
    assert metric_values(out, "CashbackReleasedAmount", currency="JPY") == [1500.0]
    assert metric_values(out, "CashbackReleasedAmount", currency="USD") == [250.0]
    assert metric_values(out, "CashbackExpiries") == [1.0]
    assert metric_values(out, "CashbackExpiredAmount", currency="JPY") == [40.0]
    assert metric_values(out, "WalletSweepLag") == [42.5]
    assert metric_values(out, "CashbackReminders") == [2.0]
    assert metric_values(out, "CashbackRemindedAmount", currency="JPY") == [700.0]


def test_a_sweep_with_nothing_overdue_records_no_lag(
    clock: FixedClock, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = SweepReport(0, {}, 0, {}, None)
    monkeypatch.setattr(sweep_module, "store", RecordingStore(empty))
    sweep(clock, OPEN)
    out = capsys.readouterr().out
    assert metric_values(out, "WalletSweepLag") == []
    assert metric_values(out, "CashbackReleases") == [0.0]


class RecordingCredits(WalletStore):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[CreditRequest, datetime]] = []

    def credit(self, request: CreditRequest, *, now: datetime) -> CreditOutcome:
        self.requests.append((request, now))
        return CreditOutcome(
            lot_id="lot-1",
            entry_id="credit#claim#clm_01",
            amount=request.amount,
            available_at=now,
            expires_at=None,
            new=True,
        )


def test_the_credit_task_hands_the_store_the_claim_as_parsed(clock: FixedClock) -> None:
    store = RecordingCredits()
    answer = credit_module.credit(claim_credit(), store)
    ((request, now),) = store.requests
    assert request == CreditRequest(
        customer_id="cust-1",
        campaign_id=REBATE["id"],
        claim_id="clm_01",
        amount=Money.of(1000, "JPY"),
        approved_at=datetime(2027, 5, 10, 3, 0, tzinfo=UTC),
    )
    assert now == OPEN
    assert answer == json.loads(json.dumps(answer))  # plain JSON for Step Functions
    assert answer["expiresAt"] is None


# -- the outbox: which Wallet-table changes are events --------------------------------------

RECORDED_AT = datetime(2027, 5, 10, 3, 0, 5, tzinfo=UTC)
LATER = datetime(2027, 6, 9, 15, 0, tzinfo=UTC)
STREAM_ARN = (
    "arn:aws:dynamodb:ap-northeast-1:123456789012:table/rebates-wallet/stream/2027-05-01T00:00"
)
ORDER_LOT = order_lot_id("order-1", "camp-cashback-2027")


def yen(amount: int) -> Money:
    return Money.of(amount, "JPY")


def purchase_item(**changes: Any) -> Purchase:
    fields: dict[str, Any] = {
        "order_id": "order-1",
        "customer_id": "cust-1",
        "channel": "online",
        "placed_at": datetime(2027, 5, 10, 3, 0, tzinfo=UTC),
        "currency": "JPY",
        "items": [
            PurchaseItem(sku="TENT-2", category="tents", quantity=1, unit_price=20000),
            PurchaseItem(sku="STOVE-1", category=None, quantity=2, unit_price=3000),
        ],
        "total": 26000,
        "fingerprint": "f" * 64,
        "recorded_at": RECORDED_AT,
    }
    fields.update(changes)
    return Purchase(**fields)


def refund_item(**changes: Any) -> Refund:
    fields: dict[str, Any] = {
        "refund_id": "refund-1",
        "order_id": "order-1",
        "customer_id": "cust-1",
        "amount": yen(13000),
        "refunded_before": 0,
        "refunded_after": 13000,
        "fingerprint": "f" * 64,
        "recorded_at": RECORDED_AT,
    }
    fields.update(changes)
    return Refund(**fields)


def entry(kind: str, entry_id: str, amount: int, **changes: Any) -> LedgerEntry:
    fields: dict[str, Any] = {
        "entry_id": entry_id,
        "customer_id": "cust-1",
        "kind": kind,
        "amount": yen(amount),
        "lots": [LotPart(lot_id=ORDER_LOT, campaign_id="camp-cashback-2027", amount=amount)],
        "pending_after": yen(0),
        "available_after": yen(2000),
        "owed_after": yen(0),
        "recorded_at": RECORDED_AT,
    }
    fields.update(changes)
    return LedgerEntry(**fields)


def single_lot(**changes: Any) -> dict[str, Any]:
    return {"lot_id": ORDER_LOT, "campaign_id": "camp-cashback-2027", **changes}


CREDIT = entry(
    "credit",
    credit_entry_id(ORDER_LOT),
    2000,
    **single_lot(order_id="order-1"),
    available_delta=2000,
    available_at=RECORDED_AT,
    expires_at=LATER,
)
CLAIM_LOT = claim_lot_id("clm_01")
CLAIM_CREDIT = entry(
    "credit",
    credit_entry_id(CLAIM_LOT),
    1000,
    lot_id=CLAIM_LOT,
    campaign_id="tent-rebate-2027",
    claim_id="clm_01",
    pending_delta=1000,
    available_at=LATER,
)
RELEASE = entry(
    "release",
    release_entry_id(CLAIM_LOT),
    1000,
    lot_id=CLAIM_LOT,
    campaign_id="tent-rebate-2027",
    claim_id="clm_01",
    pending_delta=-1000,
    available_delta=1000,
    available_after=yen(3000),
    available_at=LATER,
    expires_at=LATER + timedelta(days=10),
)
SPEND = entry(
    "spend",
    spend_entry_id("checkout-1"),
    1500,
    order_id="checkout-1",
    available_delta=-1500,
    available_after=yen(500),
)
REVERSE = entry(
    "reverse",
    reverse_entry_id("refund-1", ORDER_LOT),
    2000,
    **single_lot(order_id="order-1", refund_id="refund-1"),
    available_delta=-500,
    owed_delta=1500,
    available_after=yen(0),
    owed_after=yen(1500),
)
EXPIRE = entry(
    "expire",
    expire_entry_id(ORDER_LOT),
    500,
    **single_lot(order_id="order-1"),
    available_delta=-500,
    available_after=yen(0),
    expires_at=LATER,
)
CANCEL = entry("cancel", cancel_entry_id("checkout-1"), 1500, order_id="checkout-1")


stream_record = functools.partial(stream_record_of, created=1809918005, stream_arn=STREAM_ARN)


def inserted(item: Model, sequence: int = 1) -> dict[str, Any]:
    return stream_record("INSERT", new=item, sequence=sequence)


# The mapping's FilterCriteria, as the stack declares it and the local cloud applies it.
FILTER_CRITERIA = {"Filters": [{"Pattern": json.dumps(pattern)} for pattern in STREAM_FILTERS]}


def delivered(record: dict[str, Any]) -> bool:
    """Whether Lambda hands `record` to the outbox at all."""
    return matches(FILTER_CRITERIA, record)


def test_the_filter_prefixes_are_those_the_models_build() -> None:
    assert Purchase.key("o1") == (f"{ORDER_PREFIX}o1", PURCHASE_SK)
    assert Refund.key("o1", "r1")[1].startswith(REFUND_PREFIX)
    entry_image = CREDIT.serialize()
    assert entry_image["pk"]["S"].startswith(CUSTOMER_PREFIX)
    assert entry_image["sk"]["S"].startswith(ENTRY_PREFIX)
    assert set(ENTRY_KINDS_PUBLISHED) | {"cancel"} == set(ENTRY_KINDS)


def test_a_recorded_purchase_is_announced_with_its_lines() -> None:
    event = event_for(inserted(purchase_item()))
    assert isinstance(event, PurchaseRecorded)
    assert event.model_dump(mode="json", exclude={"eventId"}) == {
        "occurredAt": "2027-05-10T03:00:05Z",
        "correlationId": None,
        "customerId": "cust-1",
        "orderId": "order-1",
        "channel": "online",
        "placedAt": "2027-05-10T03:00:00Z",
        "total": {"amount": 26000, "currency": "JPY"},
        "items": [
            {
                "sku": "TENT-2",
                "category": "tents",
                "quantity": 1,
                "unitPrice": {"amount": 20000, "currency": "JPY"},
            },
            {
                "sku": "STOVE-1",
                "category": None,
                "quantity": 2,
                "unitPrice": {"amount": 3000, "currency": "JPY"},
            },
        ],
    }


def test_a_refund_is_announced_with_its_customer() -> None:
    event = event_for(inserted(refund_item()))
    assert isinstance(event, PurchaseRefunded)
    assert (event.customerId, event.orderId, event.refundId, event.amount) == (
        "cust-1",
        "order-1",
        "refund-1",
        yen(13000),
    )
    assert event.occurredAt == RECORDED_AT


def test_a_purchase_credit_names_its_order_and_a_claim_credit_its_claim() -> None:
    bought = event_for(inserted(CREDIT))
    assert isinstance(bought, CashbackCredited)
    assert bought.model_dump(mode="json", exclude={"eventId"}) == {
        "occurredAt": "2027-05-10T03:00:05Z",
        "correlationId": None,
        "customerId": "cust-1",
        "entryId": credit_entry_id(ORDER_LOT),
        "amount": {"amount": 2000, "currency": "JPY"},
        "campaignId": "camp-cashback-2027",
        "claimId": None,
        "orderId": "order-1",
        "availableAt": "2027-05-10T03:00:05Z",
        "expiresAt": "2027-06-09T15:00:00Z",
    }
    claimed = event_for(inserted(CLAIM_CREDIT))
    assert isinstance(claimed, CashbackCredited)
    assert (claimed.claimId, claimed.orderId, claimed.expiresAt) == ("clm_01", None, None)
    assert claimed.availableAt == LATER


def test_a_release_says_the_balance_it_left() -> None:
    event = event_for(inserted(RELEASE))
    assert isinstance(event, CashbackAvailable)
    assert (event.entryId, event.campaignId, event.amount) == (
        release_entry_id(CLAIM_LOT),
        "tent-rebate-2027",
        yen(1000),
    )
    assert event.availableBalance == yen(3000)
    assert event.expiresAt == LATER + timedelta(days=10)


def test_a_spend_says_its_order_and_the_balance_it_left() -> None:
    event = event_for(inserted(SPEND))
    assert isinstance(event, CashbackSpent)
    assert (event.entryId, event.orderId, event.amount, event.availableBalance) == (
        spend_entry_id("checkout-1"),
        "checkout-1",
        yen(1500),
        yen(500),
    )


def test_a_reversal_names_the_credit_and_whether_it_left_something_owed() -> None:
    event = event_for(inserted(REVERSE))
    assert isinstance(event, CashbackReversed)
    assert (event.creditEntryId, event.orderId, event.refundId) == (
        credit_entry_id(ORDER_LOT),
        "order-1",
        "refund-1",
    )
    assert event.amount == yen(2000) and event.negativeAdjustment is True
    unspent = entry(
        "reverse",
        reverse_entry_id("refund-2", ORDER_LOT),
        300,
        **single_lot(order_id="order-1", refund_id="refund-2"),
        available_delta=-300,
    )
    event = event_for(inserted(unspent))
    assert isinstance(event, CashbackReversed) and event.negativeAdjustment is False


def test_an_expiry_names_the_credit_whose_remainder_expired() -> None:
    event = event_for(inserted(EXPIRE))
    assert isinstance(event, CashbackExpired)
    assert (event.entryId, event.campaignId, event.amount) == (
        credit_entry_id(ORDER_LOT),
        "camp-cashback-2027",
        yen(500),
    )


BALANCE = Balance(customer_id="cust-1", currency="JPY", available=2000, version=3)
LOT = Lot(
    lot_id=ORDER_LOT,
    customer_id="cust-1",
    campaign_id="camp-cashback-2027",
    currency="JPY",
    source="order",
    order_id="order-1",
    state="available",
    earned=2000,
    remaining=2000,
    credited_at=RECORDED_AT,
    available_at=RECORDED_AT,
    expires_at=LATER,
)
NO_EVENTS = [
    pytest.param(inserted(CANCEL), id="cancel entry"),
    pytest.param(inserted(BALANCE), id="balance"),
    pytest.param(inserted(LOT), id="lot"),
    pytest.param(inserted(CREDIT.marker()), id="entry marker"),
    pytest.param(
        inserted(RewardCount(customer_id="cust-1", campaign_id="c-1", rewards=1)), id="reward count"
    ),
    pytest.param(
        inserted(SweepMark(completed_through="2027-05-09", updated_at=RECORDED_AT)),
        id="sweep watermark",
    ),
    pytest.param(
        stream_record("MODIFY", old=purchase_item(), new=purchase_item(refunded=13000)),
        id="purchase refunded",
    ),
    pytest.param(stream_record("MODIFY", old=refund_item(), new=refund_item()), id="refund plan"),
    pytest.param(stream_record("MODIFY", old=BALANCE, new=BALANCE), id="balance moved"),
    pytest.param(
        stream_record("MODIFY", old=LOT, new=Lot(**{**LOT.attribute_values, "remaining": 500})),
        id="lot moved",
    ),
    pytest.param(stream_record("REMOVE", old=CREDIT), id="entry removed"),
]


@pytest.mark.parametrize("record", NO_EVENTS)
def test_every_other_change_is_no_event_and_is_filtered_out(record: dict[str, Any]) -> None:
    assert event_for(record) is None
    assert not delivered(record)


EVENT_RECORDS = [
    inserted(purchase_item()),
    inserted(refund_item()),
    inserted(CREDIT),
    inserted(CLAIM_CREDIT),
    inserted(RELEASE),
    inserted(SPEND),
    inserted(REVERSE),
    inserted(EXPIRE),
]


def test_every_event_passes_the_stream_filters() -> None:
    for record in EVENT_RECORDS:
        assert event_for(record) is not None
        assert delivered(record), record["dynamodb"]


def test_a_redelivered_record_has_the_same_event_id_and_facts_differ() -> None:
    first = [event_for(record) for record in EVENT_RECORDS]
    again = [event_for(json.loads(json.dumps(record))) for record in EVENT_RECORDS]
    ids = [event.eventId for event in first if event is not None]
    assert ids == [event.eventId for event in again if event is not None]
    assert len(set(ids)) == len(EVENT_RECORDS)
    assert all(event_id.startswith("evt_") for event_id in ids)


def test_a_record_without_its_new_image_cannot_be_read() -> None:
    record = inserted(CREDIT)
    del record["dynamodb"]["NewImage"]
    with pytest.raises(OutboxRecordError, match="NewImage"):
        event_for(record)


def test_an_entry_missing_what_its_event_needs_cannot_be_read() -> None:
    broken = entry("spend", spend_entry_id("checkout-9"), 100)  # no order id
    with pytest.raises(OutboxRecordError, match="orderId"):
        event_for(inserted(broken))


# -- the outbox handler -------------------------------------------------------------------


def refusing(refused: set[str]) -> RefusingPublisher:
    """A publisher EventBridge keeps refusing the events of the listed entries on."""
    return RefusingPublisher(refused, field="entryId")


def numbered(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`records` with sequence numbers and event ids 1, 2, ... in order."""
    out = []
    for n, record in enumerate(records, start=1):
        copy = json.loads(json.dumps(record))
        copy["eventID"] = f"event-{n}"
        copy["dynamodb"]["SequenceNumber"] = f"{n:021d}"
        out.append(copy)
    return out


def test_each_event_of_a_batch_is_published_in_order() -> None:
    events = InMemoryPublisher()
    records = numbered([*EVENT_RECORDS[:3], inserted(CANCEL), *EVENT_RECORDS[3:]])
    assert Outbox(events).handle(batch(*records)) == {"batchItemFailures": []}
    assert events.detail_types == [
        "PurchaseRecorded",
        "PurchaseRefunded",
        "CashbackCredited",
        "CashbackCredited",
        "CashbackAvailable",
        "CashbackSpent",
        "CashbackReversed",
        "CashbackExpired",
    ]


def test_a_record_that_cannot_be_published_or_read_fails_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    unreadable = inserted(SPEND)
    del unreadable["dynamodb"]["NewImage"]["availableAfter"]
    records = numbered([inserted(CREDIT), inserted(RELEASE), unreadable, inserted(REVERSE)])
    events = refusing({release_entry_id(CLAIM_LOT)})
    outbox = Outbox(events, clock=lambda: datetime.fromtimestamp(1809918007, tz=UTC))

    with captured_logs() as logs:
        response = instrumented(outbox.handle)(batch(*records), lambda_context("outbox"))

    assert response == {
        "batchItemFailures": [{"itemIdentifier": f"{2:021d}"}, {"itemIdentifier": f"{3:021d}"}]
    }
    assert events.detail_types == ["CashbackCredited", "CashbackReversed"]
    failed = logs.with_message("wallet event not published")
    assert [line["correlation_id"] for line in failed] == ["event-2", "event-3"]
    out = capsys.readouterr().out
    assert metric_values(out, "OutboxPublishFailures") == [1.0, 1.0]
    assert metric_values(out, "OutboxLag") == [2000.0, 2000.0]


def test_the_handler_publishes_to_the_bus_under_the_record_s_correlation(
    tables: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = tap_the_bus("rebates.wallet")
    publishing_environment(monkeypatch, "wallet")
    outbox_module._outbox.cache_clear()
    record = inserted(CREDIT)

    response = outbox_module.handler(batch(record), lambda_context("outbox"))

    assert response == {"batchItemFailures": []}
    envelope = the_one_envelope(queue)
    assert (envelope["source"], envelope["detail-type"]) == ("rebates.wallet", "CashbackCredited")
    expected = event_for(record)
    assert expected is not None
    assert envelope["detail"]["eventId"] == expected.eventId
    assert envelope["detail"]["correlationId"] == record["eventID"]
    outbox_module._outbox.cache_clear()


# -- on moto: real API writes, the table's own stream --------------------------------------


def _stream_records() -> list[dict[str, Any]]:
    """Everything the Wallet table's stream holds, shaped as Lambda delivers it."""
    table = boto3.client("dynamodb").describe_table(TableName=WALLET.default_name)
    stream_arn = table["Table"]["LatestStreamArn"]
    # moto routes DynamoDB Streams calls only without account-based endpoints.
    streams = boto3.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
    return [{**record, "eventSourceARN": stream_arn} for record in records]


CASHBACK_NOW: dict[str, Any] = {
    **REBATE,
    "id": "camp-cashback-2027",
    "kind": "cashback",
    "claims": None,
    "reward": {"percentage": 10},
    "cashback": {"pending_days": 1, "expires_after_days": 5},
}


def test_the_table_s_own_stream_yields_one_event_per_fact(clock: FixedClock) -> None:
    document = {key: value for key, value in CASHBACK_NOW.items() if value is not None}
    publish(document)
    store = WalletStore()
    store.campaigns.clear()
    purchase = PurchaseInput(
        order_id="order-1",
        customer_id="cust-1",
        channel="online",
        placed_at=OPEN,
        currency="JPY",
        items=(PurchaseLine(sku="TENT-2", category="tents", quantity=1, unit_price=20000),),
        total=20000,
    )
    store.record_purchase(purchase, now=OPEN)
    store.record_purchase(purchase, now=OPEN)  # a replay: no second fact
    refund = RefundInput(refund_id="refund-1", amount=5000, currency="JPY", items=None)
    store.refund("order-1", refund, now=OPEN)
    store.refund("order-1", refund, now=OPEN)
    store.sweep(now=OPEN + timedelta(days=2))
    store.spend("cust-1", "checkout-1", Money.of(500, "JPY"), now=OPEN + timedelta(days=2))
    store.cancel_spend("cust-1", "checkout-1", now=OPEN + timedelta(days=2))
    store.sweep(now=OPEN + timedelta(days=10))
    events = InMemoryPublisher()
    records = _stream_records()

    response = Outbox(events).handle({"Records": records})

    assert response == {"batchItemFailures": []}
    assert sorted(events.detail_types) == sorted(
        [
            "PurchaseRecorded",
            "CashbackCredited",
            "PurchaseRefunded",
            "CashbackReversed",
            "CashbackAvailable",
            "CashbackSpent",
            "CashbackExpired",
        ]
    )
    (credited,) = events.of_type(CashbackCredited)
    assert (credited.orderId, credited.amount) == ("order-1", yen(2000))
    (reversed_,) = events.of_type(CashbackReversed)
    assert reversed_.amount == yen(500) and reversed_.negativeAdjustment is False
    (expired,) = events.of_type(CashbackExpired)
    assert expired.amount == yen(1500) and expired.entryId == credited.entryId
    # The filters let through exactly the records that are events.
    passed = [record for record in records if delivered(record)]
    assert len(passed) == len(events.published)
    assert store.audit("cust-1").ok


# -- reminders before cashback expires ----------------------------------------------------

# The rebate's claim lot (approved 10 May, Tokyo): spendable from local 12 May, expiring at
# the start of local 22 May (2027-05-21T15:00Z). Its reminder days, counted in Tokyo days,
# are local 15 May (7 days before) and local 21 May (1 day before).
CLAIM_AVAILABLE = datetime(2027, 5, 11, 15, 0, tzinfo=UTC)
CLAIM_EXPIRES = datetime(2027, 5, 21, 15, 0, tzinfo=UTC)
TOKYO_15_MAY = datetime(2027, 5, 14, 15, 0, tzinfo=UTC)


def published_reminders() -> list[CashbackExpiring]:
    """The reminders the outbox publishes from the Wallet table's stream so far; the
    records the mapping's filters let through publish exactly the same."""
    records = _stream_records()
    everything, delivered_only = InMemoryPublisher(), InMemoryPublisher()
    assert Outbox(everything).handle({"Records": records}) == {"batchItemFailures": []}
    passed = [record for record in records if delivered(record)]
    assert Outbox(delivered_only).handle({"Records": passed}) == {"batchItemFailures": []}
    assert delivered_only.detail_types == everything.detail_types
    return everything.of_type(CashbackExpiring)


def test_the_sweep_warns_on_each_local_reminder_day_once(clock: FixedClock) -> None:
    credit_module.handler(claim_credit(), lambda_context("rebates-wallet-credit"))
    assert sweep(clock, CLAIM_AVAILABLE + timedelta(minutes=15))["released"] == 1

    # 14 May 23:59 in Tokyo: eight local days before (in UTC days it would already be 7).
    assert sweep(clock, TOKYO_15_MAY - timedelta(minutes=1))["reminded"] == 0
    first = sweep(clock, TOKYO_15_MAY)
    assert (first["reminded"], first["remindedAmount"]) == (1, {"JPY": 1000})
    # Every later run of that local day finds the lot already warned.
    for later in (timedelta(minutes=15), timedelta(hours=12), timedelta(hours=23, minutes=45)):
        assert sweep(clock, TOKYO_15_MAY + later)["reminded"] == 0
    assert sweep(clock, TOKYO_15_MAY + timedelta(days=1))["reminded"] == 0  # six days before
    last = sweep(clock, CLAIM_EXPIRES - timedelta(days=1))
    assert (last["reminded"], last["remindedAmount"]) == (1, {"JPY": 1000})
    assert sweep(clock, CLAIM_EXPIRES - timedelta(minutes=1))["reminded"] == 0
    at_expiry = sweep(clock, CLAIM_EXPIRES)
    assert (at_expiry["expired"], at_expiry["reminded"]) == (1, 0)

    week, day = published_reminders()
    lot_id = claim_lot_id("clm_01")
    # Published under the stream record's correlation id, as every outbox event.
    assert week.model_dump(mode="json", exclude={"eventId", "correlationId"}) == {
        "occurredAt": "2027-05-14T15:00:00Z",
        "customerId": "cust-1",
        "entryId": credit_entry_id(lot_id),
        "amount": {"amount": 1000, "currency": "JPY"},
        "campaignId": REBATE["id"],
        "expiresAt": "2027-05-21T15:00:00Z",
        "daysBefore": 7,
    }
    assert (day.daysBefore, day.amount) == (1, yen(1000))
    assert day.occurredAt == CLAIM_EXPIRES - timedelta(days=1)
    assert week.eventId != day.eventId
    assert WalletStore().audit("cust-1").ok


def test_a_lot_that_does_not_know_its_time_zone_counts_utc_days(clock: FixedClock) -> None:
    credit_module.handler(claim_credit(), lambda_context("rebates-wallet-credit"))
    sweep(clock, CLAIM_AVAILABLE + timedelta(minutes=15))
    # A lot credited before lots kept their campaign's time zone.
    Lot(
        lot_id=claim_lot_id("clm_legacy"),
        customer_id="cust-2",
        campaign_id=REBATE["id"],
        currency="JPY",
        source="claim",
        claim_id="clm_legacy",
        state="available",
        earned=500,
        remaining=500,
        credited_at=OPEN,
        available_at=OPEN,
        expires_at=CLAIM_EXPIRES,
    ).save()

    # 14 May in UTC is seven UTC days before 21 May; in Tokyo it is still 14 May.
    utc_day = sweep(clock, TOKYO_15_MAY - timedelta(minutes=1))
    assert (utc_day["reminded"], utc_day["remindedAmount"]) == (1, {"JPY": 500})
    tokyo_day = sweep(clock, TOKYO_15_MAY)
    assert (tokyo_day["reminded"], tokyo_day["remindedAmount"]) == (1, {"JPY": 1000})

    reminders = published_reminders()
    assert [(r.customerId, r.daysBefore) for r in reminders] == [("cust-2", 7), ("cust-1", 7)]


def test_only_lots_with_something_left_are_warned_for_what_is_left(clock: FixedClock) -> None:
    document = {key: value for key, value in CASHBACK_NOW.items() if value is not None}
    publish(document)
    store = WalletStore()
    store.campaigns.clear()
    for customer in ("cust-1", "cust-2", "cust-3", "cust-4"):
        store.record_purchase(
            PurchaseInput(
                order_id=f"order-{customer}",
                customer_id=customer,
                channel="online",
                placed_at=OPEN,
                currency="JPY",
                items=(PurchaseLine(sku="TENT-2", category="tents", quantity=1, unit_price=20000),),
                total=20000,
            ),
            now=OPEN,
        )
    # Refunded whole while pending: nothing is left to release.
    store.refund(
        "order-cust-3",
        RefundInput(refund_id="refund-1", amount=20000, currency="JPY", items=None),
        now=OPEN,
    )
    # Spendable from local 11 May, expiring at the start of local 16 May.
    assert sweep(clock, datetime(2027, 5, 10, 15, 5, tzinfo=UTC))["released"] == 3
    spent_at = datetime(2027, 5, 12, 3, 0, tzinfo=UTC)
    store.spend("cust-2", "checkout-2", yen(2000), now=spent_at)  # spent to zero
    store.spend("cust-4", "checkout-4", yen(500), now=spent_at)

    answer = sweep(clock, datetime(2027, 5, 14, 15, 5, tzinfo=UTC))  # local 15 May

    assert (answer["reminded"], answer["remindedAmount"]) == (2, {"JPY": 3500})
    reminders = published_reminders()
    assert sorted((r.customerId, r.amount.amount, r.daysBefore) for r in reminders) == [
        ("cust-1", 2000, 1),
        ("cust-4", 1500, 1),
    ]
    assert all(r.expiresAt == datetime(2027, 5, 15, 15, 0, tzinfo=UTC) for r in reminders)
    for customer in ("cust-1", "cust-2", "cust-3", "cust-4"):
        assert store.audit(customer).ok


class CrashingStore(WalletStore):
    """A sweep whose process dies right after it warned about its first lot."""

    def _remind(self, snapshot: Lot, days_before: int, now: datetime, tally: Any) -> bool:
        warned = super()._remind(snapshot, days_before, now, tally)
        if warned:
            raise RuntimeError("the sweep's process died")
        return warned


def test_a_sweep_that_dies_midway_warns_the_rest_next_time_and_nobody_twice(
    clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for claim_id in ("clm_01", "clm_02"):
        credit_module.handler(claim_credit(claim_id), lambda_context("rebates-wallet-credit"))
    sweep(clock, CLAIM_AVAILABLE + timedelta(minutes=15))
    monkeypatch.setattr(sweep_module, "store", CrashingStore())
    with pytest.raises(RuntimeError):
        sweep(clock, TOKYO_15_MAY)
    monkeypatch.setattr(sweep_module, "store", WalletStore())

    assert sweep(clock, TOKYO_15_MAY + timedelta(minutes=15))["reminded"] == 1
    assert sweep(clock, TOKYO_15_MAY + timedelta(minutes=30))["reminded"] == 0

    reminders = published_reminders()
    assert sorted(r.entryId for r in reminders) == [
        credit_entry_id(claim_lot_id("clm_01")),
        credit_entry_id(claim_lot_id("clm_02")),
    ]
    assert len({r.eventId for r in reminders}) == 2


# The outbox's view of a reminder: the lot's change that marks the day.
REMINDED_AT = datetime(2027, 6, 2, 15, 0, 3, tzinfo=UTC)


def lot_item(**changes: Any) -> Lot:
    return Lot(**{**LOT.attribute_values, "timezone": "Asia/Tokyo", **changes})


def reminded(days: set[int], before: set[int] | None = None, **changes: Any) -> dict[str, Any]:
    old = lot_item(reminded_days=before) if before else lot_item()
    new = lot_item(reminded_days=days, reminded_at=REMINDED_AT, **changes)
    return stream_record("MODIFY", old=old, new=new)


def test_a_reminder_marked_on_a_lot_is_a_valid_cashback_expiring() -> None:
    record = reminded({7}, remaining=1200, spent=800)
    event = event_for(record)
    assert isinstance(event, CashbackExpiring)
    detail = event.model_dump(mode="json")
    assert {key: value for key, value in detail.items() if key != "eventId"} == {
        "occurredAt": "2027-06-02T15:00:03Z",
        "correlationId": None,
        "customerId": "cust-1",
        "entryId": credit_entry_id(ORDER_LOT),
        "amount": {"amount": 1200, "currency": "JPY"},
        "campaignId": "camp-cashback-2027",
        "expiresAt": "2027-06-09T15:00:00Z",
        "daysBefore": 7,
    }
    schema = json.loads(detail_schema_path("CashbackExpiring").read_text(encoding="utf-8"))
    fastjsonschema.compile(schema)(detail)
    assert delivered(record)
    # Delivered again: the same event; the next reminder of the lot: another.
    again = event_for(json.loads(json.dumps(record)))
    assert again is not None and again.eventId == event.eventId
    next_one = event_for(reminded({7, 1}, before={7}))
    assert isinstance(next_one, CashbackExpiring) and next_one.daysBefore == 1
    assert next_one.eventId != event.eventId
    events = InMemoryPublisher()
    assert Outbox(events).handle(batch(record)) == {"batchItemFailures": []}
    assert events.detail_types == ["CashbackExpiring"]


def test_a_warned_lot_changing_again_is_no_second_reminder() -> None:
    spent_after = stream_record(
        "MODIFY",
        old=lot_item(reminded_days={7}, reminded_at=REMINDED_AT),
        new=lot_item(reminded_days={7}, reminded_at=REMINDED_AT, remaining=0, spent=2000),
    )
    assert event_for(spent_after) is None
    never_warned = stream_record("MODIFY", old=lot_item(), new=lot_item(remaining=0, spent=2000))
    assert event_for(never_warned) is None
    assert not delivered(never_warned)


def test_a_change_marking_two_days_at_once_cannot_be_read_as_one_reminder() -> None:
    with pytest.raises(OutboxRecordError, match="remindedDays"):
        event_for(reminded({7, 1}))


def test_a_reminder_meeting_a_commit_in_progress_is_tried_again(
    clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    credit_module.handler(claim_credit(), lambda_context("rebates-wallet-credit"))
    sweep(clock, CLAIM_AVAILABLE + timedelta(minutes=15))
    update, conflicts = Lot.update, [1]

    def conflicting_once(self: Lot, *args: Any, **kwargs: Any) -> Any:
        if conflicts:
            conflicts.pop()
            conflict = ClientError(
                {"Error": {"Code": "TransactionConflictException", "Message": "in progress"}},
                "UpdateItem",
            )
            raise UpdateError("Failed to update item", cause=conflict)
        return update(self, *args, **kwargs)

    monkeypatch.setattr(Lot, "update", conflicting_once)
    answer = sweep(clock, TOKYO_15_MAY)

    assert (answer["reminded"], conflicts) == (1, [])
    assert [r.daysBefore for r in published_reminders()] == [7]
