"""The wallet in any order: a Hypothesis state machine over purchases, claim credits,
sweeps with the clock moved, spends, cancels, refunds (partial, full, repeated) and
replays of each, on in-process moto.

After every step: the audit passes for every customer (entries, lots and balances
agree), no balance is negative, and the campaign's budget never passes its caps and is
exactly what the purchase lots keep (credits minus reversals), in amount and in count.
Every replay must change nothing at all: the Wallet table and the campaign's counters
are compared item by item before and after.

Two campaigns, one pending two days and expiring three days later, one available at once
and expiring two days later, with a budget a few purchases exhaust, so sequences reach
every state a lot can be in, the caps, and owed amounts settled by later money.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

import boto3
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from functions.campaigns.models import get_campaign
from functions.core.money import Money
from functions.core.tables import CAMPAIGNS, WALLET
from functions.wallet import dal
from functions.wallet.audit import audit_items
from functions.wallet.dal import (
    CreditRequest,
    LotDraw,
    PurchaseInput,
    RefundInput,
    RefundOutcome,
    WalletStore,
)
from functions.wallet.errors import CurrencyNotHeld, InsufficientBalance, RefundExceedsTotal
from functions.wallet.models import Lot, customer_partition, partition_items, wallet_item
from tests.support.tables import create_table_request
from tests.unit.wallet.wallet_support import PLACED, aws_env, cashback, publish, purchase, tables

__all__ = ["aws_env", "tables"]

CUSTOMERS = ("cust-1", "cust-2")
BUDGET = {"amount": 4000, "max_rewards": 6}
CAMPAIGNS_FILES = (
    cashback(
        id="slow",
        budget=BUDGET,
        reward={"percentage": 10},
        limits={"per_customer": 3},
        cashback={"pending_days": 2, "expires_after_days": 3},
    ),
    cashback(
        id="fast",
        budget=BUDGET,
        reward={"percentage": 5},
        cashback={"pending_days": 0, "expires_after_days": 2},
        eligibility={"channels": ["online"], "categories": ["shoes"]},
    ),
)

# A fixed, derandomized run: the same sequences on every machine, no example database,
# well under the suite's time budget.
SETTINGS = settings(
    max_examples=8,
    stateful_step_count=12,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass
class Order:
    order_id: str
    customer_id: str
    total: int
    refunded: int = 0


@dataclass(frozen=True)
class Spent:
    customer_id: str
    order_id: str
    amount: int
    lots: tuple[LotDraw, ...]


# Every attribute a change of an item writes (entries and markers are never changed, so
# their keys say all): a replay that changed anything would change one of these or add
# a key. Reading only these keeps the comparison after every replay affordable on moto.
MUTABLE = (
    "pk",
    "sk",
    "version",
    "updatedAt",
    "rewards",
    "state",
    "refunded",
    "refunds",
    "earnings",
    "plan",
    "completedThrough",
    "cancelledAt",
)


def scan(spec: Any) -> list[dict[str, Any]]:
    client = boto3.client("dynamodb")
    names = {f"#a{n}": name for n, name in enumerate(MUTABLE)}
    items = client.scan(
        TableName=spec.default_name,
        ConsistentRead=True,
        ProjectionExpression=", ".join(names),
        ExpressionAttributeNames=names,
    )["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def counters() -> list[tuple[str, int, int]]:
    found = []
    for document in CAMPAIGNS_FILES:
        campaign = get_campaign(document["id"])
        assert campaign is not None
        found.append(
            (campaign.campaign_id, campaign.budget_used_amount, campaign.budget_used_count)
        )
    return found


def snapshot() -> tuple[list[dict[str, Any]], list[tuple[str, int, int]]]:
    """Everything a replay could change: the Wallet table and the campaigns' counters."""
    return scan(WALLET), counters()


class Wallet(RuleBasedStateMachine):
    orders = Bundle("orders")
    spends = Bundle("spends")
    claims = Bundle("claims")
    refunds = Bundle("refunds")

    store: ClassVar[WalletStore]

    def __init__(self) -> None:
        super().__init__()
        client = boto3.client("dynamodb")
        for spec in (CAMPAIGNS, WALLET):
            client.delete_table(TableName=spec.default_name)
            request = create_table_request(spec, spec.default_name)
            request.pop("StreamSpecification", None)
            client.create_table(**request)
        self.store.campaigns.clear()
        for document in CAMPAIGNS_FILES:
            publish(document)
        self.now = PLACED
        # The sweep runs from the start, as its schedule does: its watermark is set.
        self.store.sweep(now=self.now)
        self.numbers = itertools.count(1)
        self.orders_by_id: dict[str, Order] = {}
        self.bodies: dict[str, PurchaseInput] = {}
        self.cancelled: set[str] = set()

    def next_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.numbers)}"

    def unchanged(self, replay: Any) -> Any:
        before = snapshot()
        result = replay()
        assert snapshot() == before, "a replay changed something"
        return result

    # -- steps -------------------------------------------------------------------------

    @initialize(target=orders)
    def each_customer_buys(self) -> Any:
        # Something to spend and refund from the first step on.
        return multiple(*(self.buy(customer, 10_000, "online") for customer in CUSTOMERS))

    @rule(
        target=orders,
        customer=st.sampled_from(CUSTOMERS),
        price=st.sampled_from([999, 5000, 10_000, 20_000]),
        channel=st.sampled_from(["online", "in_store"]),
    )
    def buy(self, customer: str, price: int, channel: str) -> Order:
        order = Order(self.next_id("ord"), customer, price)
        bought = purchase(
            order.order_id, customer, price=price, channel=channel, placed_at=self.now
        )
        outcome = self.store.record_purchase(bought, now=self.now)
        assert outcome.new
        for earning in outcome.earnings:
            event(f"{earning.campaign_id} {earning.outcome}")
        self.orders_by_id[order.order_id] = order
        self.bodies[order.order_id] = bought
        return order

    @rule(order=orders)
    def replay_purchase(self, order: Order) -> None:
        again = self.unchanged(
            lambda: self.store.record_purchase(self.bodies[order.order_id], now=self.now)
        )
        assert not again.new

    @rule(target=claims, customer=st.sampled_from(CUSTOMERS), amount=st.integers(1, 700))
    def credit_a_claim(self, customer: str, amount: int) -> CreditRequest:
        request = CreditRequest(
            customer, "slow", self.next_id("clm"), Money.of(amount, "JPY"), self.now
        )
        assert self.store.credit(request, now=self.now).new
        return request

    @rule(request=claims)
    def replay_claim_credit(self, request: CreditRequest) -> None:
        assert not self.unchanged(lambda: self.store.credit(request, now=self.now)).new

    @rule(
        days=st.integers(0, 3),
        hours=st.sampled_from([0, 7, 13]),
        swept=st.sampled_from([True, False]),
    )
    def time_passes(self, days: int, hours: int, swept: bool) -> None:
        """The clock moves; the sweep runs then (twice: the second run is a replay), or
        not, so spends and cancels also meet lots past their instant, not yet swept."""
        self.now += timedelta(days=days, hours=hours)
        if not swept:
            return
        report = self.store.sweep(now=self.now)
        if report.released:
            event("released")
        if report.expired:
            event("expired")
        self.unchanged(lambda: self.store.sweep(now=self.now))

    @rule(target=spends, customer=st.sampled_from(CUSTOMERS), amount=st.integers(1, 400))
    def spend(self, customer: str, amount: int) -> Any:
        order_id = self.next_id("buy")
        try:
            outcome = self.store.spend(customer, order_id, Money.of(amount, "JPY"), now=self.now)
        except (InsufficientBalance, CurrencyNotHeld):
            return multiple()
        assert outcome.new and outcome.available_after.amount >= 0
        return Spent(customer, order_id, amount, outcome.lots)

    @rule(spent=spends)
    def replay_spend(self, spent: Spent) -> None:
        # Later, whatever happened since (a cancel included): the first spend, unchanged.
        again = self.unchanged(
            lambda: self.store.spend(
                spent.customer_id, spent.order_id, Money.of(spent.amount, "JPY"), now=self.now
            )
        )
        assert (again.new, again.lots) == (False, spent.lots)

    @rule(spent=spends)
    def cancel(self, spent: Spent) -> None:
        """The first cancel of a spend returns it; any later one is a replay."""
        if spent.order_id in self.cancelled:
            again = self.unchanged(
                lambda: self.store.cancel_spend(spent.customer_id, spent.order_id, now=self.now)
            )
            assert not again.new
            return
        assert self.store.cancel_spend(spent.customer_id, spent.order_id, now=self.now).new
        self.cancelled.add(spent.order_id)
        event("cancelled")

    @rule(target=refunds, order=orders, share=st.sampled_from([0.25, 0.5, 1.0]))
    def refund(self, order: Order, share: float) -> Any:
        left = order.total - order.refunded
        if left == 0:
            over = RefundInput(self.next_id("rf"), 1, "JPY", None)
            self.unchanged(lambda: self.refused_refund(order, over))
            return multiple()
        amount = min(left, max(1, int(order.total * share)))
        refund = RefundInput(self.next_id("rf"), amount, "JPY", None)
        outcome = self.store.refund(order.order_id, refund, now=self.now)
        assert outcome.new
        order.refunded += amount
        if any(reversal.owed.amount for reversal in outcome.reversals):
            event("spent cashback became owed")
        assert outcome.refunded_total.amount == order.refunded
        return (order, refund, outcome)

    @rule(refunded=refunds)
    def replay_refund(self, refunded: tuple[Order, RefundInput, RefundOutcome]) -> None:
        order, refund, first = refunded
        again = self.unchanged(lambda: self.store.refund(order.order_id, refund, now=self.now))
        assert not again.new
        assert (again.reversals, again.refunded_total) == (first.reversals, first.refunded_total)

    def refused_refund(self, order: Order, refund: RefundInput) -> None:
        with pytest.raises(RefundExceedsTotal):
            self.store.refund(order.order_id, refund, now=self.now)

    # -- what must always hold ---------------------------------------------------------

    @invariant()
    def the_books_agree_and_the_budget_is_what_the_purchase_lots_keep(self) -> None:
        kept = {document["id"]: (0, 0) for document in CAMPAIGNS_FILES}
        for customer in CUSTOMERS:
            raw_items = list(partition_items(customer_partition(customer)))
            # The store's own audit, on the same read: negative balances included.
            report = audit_items(customer, raw_items)
            assert report.ok, report.differences
            for item in map(wallet_item, raw_items):
                if isinstance(item, Lot) and item.source == "order":
                    keeps = item.earned - item.reversed - item.waived - item.owed
                    amount, count = kept[item.campaign_id]
                    kept[item.campaign_id] = (amount + keeps, count + (1 if keeps > 0 else 0))
        for campaign_id, amount, count in counters():
            assert (amount, count) == kept[campaign_id]
            assert amount <= BUDGET["amount"] and count <= BUDGET["max_rewards"]


def test_the_wallet_in_any_order(tables: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dal, "_backoff", lambda attempt: None)
    Wallet.store = WalletStore(sweep_lookback_days=3)
    run_state_machine_as_test(Wallet, settings=SETTINGS)
