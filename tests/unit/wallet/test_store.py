"""`WalletStore` on in-process moto: every rule, every refusal, the boundaries.

Campaigns are published as the loader publishes them. After every change the wallet's
own audit must agree; every refusal is checked to have written nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from functions.campaigns.models import Campaign
from functions.campaigns.states import ARCHIVED
from functions.core.models import Transaction
from functions.core.money import Money
from functions.core.tables import CAMPAIGNS, WALLET
from functions.wallet import dal
from functions.wallet.dal import CreditRequest, RefundInput, WalletStore
from functions.wallet.errors import (
    CurrencyNotHeld,
    CurrencyRequired,
    InsufficientBalance,
    InvalidPageToken,
    OrderNotFound,
    PurchaseConflict,
    RefundConflict,
    RefundCurrencyMismatch,
    RefundExceedsTotal,
    SpendConflict,
    SpendNotFound,
    TooManyLots,
    UnknownRefundItem,
)
from functions.wallet.models import (
    AVAILABLE,
    CLOSED,
    EXPIRED,
    PENDING,
    Balance,
    LedgerEntry,
    LedgerEntryId,
    Lot,
    LotPart,
    Purchase,
    RewardCount,
    Spend,
    SweepMark,
    order_lot_id,
)
from tests.unit.wallet.wallet_support import (
    CASHBACK,
    PLACED,
    assert_audited,
    at,
    aws_env,
    cashback,
    publish,
    purchase,
    tables,
    used,
)

__all__ = ["aws_env", "tables"]

CAMPAIGN = CASHBACK["id"]
LOT = order_lot_id("ord-1", CAMPAIGN)
# Pending three local days: the purchase of 2027-05-10 in Tokyo is released on 05-13.
RELEASED = datetime(2027, 5, 12, 15, 0, tzinfo=UTC)
EXPIRES = datetime(2027, 6, 11, 15, 0, tzinfo=UTC)


def jpy(amount: int) -> Money:
    return Money.of(amount, "JPY")


@pytest.fixture
def store(tables: list[str]) -> WalletStore:
    publish(cashback())
    return WalletStore(sweep_lookback_days=3)


def table_items(spec: Any = WALLET) -> list[dict[str, Any]]:
    client = boto3.client("dynamodb")
    items = client.scan(TableName=spec.default_name, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def everything() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return table_items(WALLET), table_items(CAMPAIGNS)


def balance(customer: str = "cust-1", currency: str = "JPY") -> tuple[int, int, int]:
    stored = Balance.get_or_none(*Balance.key(customer, currency))
    assert stored is not None
    return stored.pending, stored.available, stored.owed


def lot(lot_id: str = LOT, customer: str = "cust-1") -> Lot:
    stored = Lot.get_or_none(*Lot.key(customer, "JPY", lot_id))
    assert stored is not None
    return stored


def entry_ids(store: WalletStore, customer: str = "cust-1") -> list[str]:
    view = store.wallet(customer, currency="JPY", page_token=None, limit=100)
    return [entry.entry_id for entry in view.entries]


def available_lot(store: WalletStore, order: str, price: int, *, now: datetime) -> str:
    """A purchase, released by the sweep: its lot is available at `now`."""
    store.record_purchase(purchase(order, price=price), now=now - timedelta(days=4))
    store.sweep(now=now)
    return order_lot_id(order, CAMPAIGN)


@pytest.fixture
def fail_commit(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Make the n-th transaction from now on die as a crashed process would."""

    def arm(nth: int) -> None:
        commit = Transaction.commit
        calls = {"n": 0}

        def crashing(self: Transaction) -> None:
            calls["n"] += 1
            if calls["n"] == nth:
                raise RuntimeError("the process died")
            commit(self)

        monkeypatch.setattr(Transaction, "commit", crashing)

    return arm


# -- purchases ------------------------------------------------------------------------


def test_a_purchase_earns_a_pending_lot(store: WalletStore) -> None:
    outcome = store.record_purchase(purchase(price=12_345), now=PLACED)
    assert outcome.new
    [earned] = outcome.earnings
    assert earned == dal.CampaignEarning(CAMPAIGN, "credited", jpy(1234), LOT, RELEASED)
    assert balance() == (1234, 0, 0)
    stored = lot()
    assert (stored.state, stored.earned, stored.remaining) == (PENDING, 1234, 1234)
    assert (stored.available_at, stored.expires_at) == (RELEASED, EXPIRES)
    assert (stored.gsi1pk, stored.gsi1sk) == (
        "DUE#RELEASE#2027-05-12",
        f"2027-05-12T15:00:00.000000Z#{LOT}",
    )
    assert used() == (1234, 1)
    count = RewardCount.get_or_none(*RewardCount.key("cust-1", CAMPAIGN))
    assert count is not None and count.rewards == 1
    assert entry_ids(store) == [f"credit#{LOT}"]
    item = Purchase.get_or_none(*Purchase.key("ord-1"))
    assert item is not None and item.earnings_dict()[CAMPAIGN]["outcome"] == "credited"
    assert_audited(store, "cust-1")


def test_a_replayed_purchase_changes_nothing(store: WalletStore) -> None:
    first = store.record_purchase(purchase(), now=PLACED)
    before = everything()
    again = store.record_purchase(purchase(), now=PLACED + timedelta(hours=1))
    assert everything() == before
    assert not again.new
    assert again.earnings == first.earnings


def test_the_same_order_with_another_body_is_a_conflict(store: WalletStore) -> None:
    store.record_purchase(purchase(), now=PLACED)
    before = everything()
    with pytest.raises(PurchaseConflict) as refused:
        store.record_purchase(purchase(price=20_000), now=PLACED)
    assert refused.value.code == "purchase_conflict"
    with pytest.raises(PurchaseConflict):
        store.record_purchase(purchase(customer_id="cust-2"), now=PLACED)
    assert everything() == before


def test_every_active_cashback_campaign_says_what_the_purchase_earned(
    store: WalletStore,
) -> None:
    publish(cashback(id="socks-cashback", eligibility={"channels": ["online"], "skus": ["S"]}))
    publish(cashback(id="dollar-cashback", currency="USD"))
    publish(cashback(id="store-only", eligibility={"channels": ["in_store"]}))
    publish(cashback(id="later", starts_at="2027-06-01T00:00:00+09:00"))
    outcome = store.record_purchase(purchase(), now=PLACED)
    assert {e.campaign_id: e.outcome for e in outcome.earnings} == {
        CAMPAIGN: "credited",
        "dollar-cashback": "currency_mismatch",
        "later": "outside_window",
        "socks-cashback": "not_eligible",
        "store-only": "wrong_channel",
    }
    assert [e.campaign_id for e in outcome.earnings] == sorted(
        e.campaign_id for e in outcome.earnings
    )
    assert used("socks-cashback") == (0, 0)
    assert_audited(store, "cust-1")


def test_a_purchase_earning_nothing_is_recorded_all_the_same(store: WalletStore) -> None:
    outcome = store.record_purchase(purchase(category="socks"), now=PLACED)
    assert [e.outcome for e in outcome.earnings] == ["not_eligible"]
    assert Purchase.get_or_none(*Purchase.key("ord-1")) is not None
    assert Balance.get_or_none(*Balance.key("cust-1", "JPY")) is None
    assert not store.record_purchase(purchase(category="socks"), now=PLACED).new


@pytest.mark.parametrize(("budget_amount", "credited"), [(2000, 2), (1999, 1)])
def test_the_budget_at_its_limit_and_one_below(
    tables: list[str], budget_amount: int, credited: int
) -> None:
    publish(cashback(budget={"amount": budget_amount}))
    store = WalletStore()
    outcomes = [
        store.record_purchase(purchase(f"ord-{n}", f"cust-{n}"), now=PLACED) for n in range(3)
    ]
    assert [o.earnings[0].outcome for o in outcomes] == ["credited"] * credited + [
        "budget_exhausted"
    ] * (3 - credited)
    assert used() == (1000 * credited, credited)
    # A refused credit wrote nothing but the purchase and its reason.
    refused = outcomes[-1]
    assert Balance.get_or_none(*Balance.key(refused.customer_id, "JPY")) is None
    stored = Purchase.get_or_none(*Purchase.key(refused.order_id))
    assert stored is not None
    assert stored.earnings_dict() == {CAMPAIGN: {"outcome": "budget_exhausted"}}


def test_the_budgets_count_of_rewards(tables: list[str]) -> None:
    publish(cashback(budget={"max_rewards": 2}))
    store = WalletStore()
    outcomes = [
        store.record_purchase(purchase(f"ord-{n}", f"cust-{n}"), now=PLACED) for n in range(3)
    ]
    assert [o.earnings[0].outcome for o in outcomes] == [
        "credited",
        "credited",
        "budget_exhausted",
    ]
    assert used() == (2000, 2)


def test_the_per_customer_limit_at_and_over(tables: list[str]) -> None:
    publish(cashback(limits={"per_customer": 2}))
    store = WalletStore()
    outcomes = [store.record_purchase(purchase(f"ord-{n}"), now=PLACED) for n in range(3)]
    assert [o.earnings[0].outcome for o in outcomes] == [
        "credited",
        "credited",
        "limit_reached",
    ]
    other = store.record_purchase(purchase("ord-x", "cust-2"), now=PLACED)
    assert other.earnings[0].outcome == "credited"
    assert used() == (3000, 3)
    assert balance() == (2000, 0, 0)
    assert_audited(store, "cust-1", "cust-2")


def test_pending_days_zero_credits_available_and_pays_what_is_owed_first(
    store: WalletStore,
) -> None:
    # Owe 300: a released lot of 1,000, 800 of it spent, then the order refunded whole.
    available_lot(store, "ord-1", 10_000, now=at(4))
    store.spend("cust-1", "buy-1", jpy(800), now=at(4))
    reversal = store.refund("ord-1", RefundInput("rf-1", 10_000, "JPY", None), now=at(4))
    assert [(r.reversed, r.owed) for r in reversal.reversals] == [(jpy(1000), jpy(800))]
    assert balance() == (0, 0, 800)
    publish(cashback(id="instant", cashback={"pending_days": 0}))
    outcome = store.record_purchase(purchase("ord-2", price=5000, placed_at=at(5)), now=at(5))
    lot_id = order_lot_id("ord-2", "instant")
    assert {e.campaign_id: e.outcome for e in outcome.earnings} == {
        CAMPAIGN: "credited",
        "instant": "credited",
    }
    instant = lot(lot_id)
    assert (instant.state, instant.remaining, instant.settled) == (AVAILABLE, 0, 500)
    assert balance() == (500, 0, 300)
    assert_audited(store, "cust-1")


def test_a_republish_between_the_read_and_the_credit_is_decided_on_the_new_file(
    store: WalletStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = store.campaigns.active()
    publish(cashback(reward={"percentage": 20}))
    monkeypatch.setattr(store.campaigns, "active", lambda since=None: stale)
    outcome = store.record_purchase(purchase(), now=PLACED)
    assert outcome.earnings[0].amount == jpy(2000)
    assert used() == (2000, 1)


def test_a_campaign_archived_between_the_read_and_the_credit_earns_nothing(
    store: WalletStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = store.campaigns.active()
    item = Campaign.get(*Campaign.key(CAMPAIGN))
    item.update(item.status_actions(ARCHIVED, PLACED))
    monkeypatch.setattr(store.campaigns, "active", lambda since=None: stale)
    outcome = store.record_purchase(purchase(), now=PLACED)
    assert outcome.earnings == ()
    assert used() == (0, 0)


def test_a_campaign_published_just_before_is_seen_by_the_next_purchase(
    store: WalletStore,
) -> None:
    store.record_purchase(purchase("ord-1"), now=PLACED)
    publish(cashback(id="fresh"))
    outcome = store.record_purchase(purchase("ord-2"), now=PLACED)
    assert {e.campaign_id for e in outcome.earnings} == {CAMPAIGN, "fresh"}


def test_a_crash_between_two_credits_is_finished_by_the_replay(
    store: WalletStore, fail_commit: Callable[[int], None]
) -> None:
    publish(cashback(id="zz-second"))
    fail_commit(2)  # the first credit (with the purchase) commits, the second dies
    with pytest.raises(RuntimeError):
        store.record_purchase(purchase(), now=PLACED)
    stored = Purchase.get_or_none(*Purchase.key("ord-1"))
    assert stored is not None
    assert {c: e["outcome"] for c, e in stored.earnings_dict().items()} == {
        CAMPAIGN: "credited",
        "zz-second": "crediting",
    }
    assert_audited(store, "cust-1")
    again = store.record_purchase(purchase(), now=PLACED + timedelta(minutes=1))
    assert not again.new
    assert [e.outcome for e in again.earnings] == ["credited", "credited"]
    assert balance() == (2000, 0, 0)
    assert used("zz-second") == (1000, 1)
    assert_audited(store, "cust-1")


# -- refunds --------------------------------------------------------------------------


def test_a_refund_of_half_reverses_half_and_gives_it_back_to_the_budget(
    store: WalletStore,
) -> None:
    store.record_purchase(purchase(price=10_000), now=PLACED)
    outcome = store.refund("ord-1", RefundInput("rf-1", 5000, "JPY", None), now=PLACED)
    assert outcome.new
    assert (outcome.amount, outcome.refunded_total) == (jpy(5000), jpy(5000))
    assert outcome.reversals == (dal.LotReversal(LOT, CAMPAIGN, jpy(500), jpy(0)),)
    assert balance() == (500, 0, 0)
    assert used() == (500, 1)
    assert (lot().remaining, lot().reversed, lot().state) == (500, 500, PENDING)
    assert f"reverse#rf-1#{LOT}" in entry_ids(store)
    assert_audited(store, "cust-1")


def test_two_refunds_of_half_reverse_exactly_what_one_of_the_whole_does(
    store: WalletStore,
) -> None:
    for order in ("ord-a", "ord-b"):
        store.record_purchase(purchase(order, price=3333), now=PLACED)  # earns 333
    halves = [
        store.refund("ord-a", RefundInput(f"rf-{n}", 1111, "JPY", None), now=PLACED)
        for n in range(3)
    ]
    whole = store.refund("ord-b", RefundInput("rf-all", 3333, "JPY", None), now=PLACED)
    assert sum(h.reversals[0].reversed.amount for h in halves) == 333
    assert whole.reversals[0].reversed == jpy(333)
    assert lot(order_lot_id("ord-a", CAMPAIGN)).state == CLOSED
    assert used() == (0, 0)
    assert_audited(store, "cust-1")


def test_a_full_refund_gives_the_reward_back_to_the_campaign_and_the_customer(
    tables: list[str],
) -> None:
    publish(cashback(limits={"per_customer": 1}))
    store = WalletStore()
    store.record_purchase(purchase(), now=PLACED)
    assert store.record_purchase(purchase("ord-2"), now=PLACED).earnings[0].outcome == (
        "limit_reached"
    )
    store.refund("ord-1", RefundInput("rf-1", 10_000, "JPY", None), now=PLACED)
    assert used() == (0, 0)
    assert lot().state == CLOSED and lot().gsi1pk is None
    assert store.record_purchase(purchase("ord-3"), now=PLACED).earnings[0].outcome == "credited"
    assert_audited(store, "cust-1")


def test_refunding_spent_cashback_makes_it_owed_and_the_next_release_pays_it(
    store: WalletStore,
) -> None:
    available_lot(store, "ord-1", 10_000, now=at(4))
    store.spend("cust-1", "buy-1", jpy(900), now=at(4))
    outcome = store.refund("ord-1", RefundInput("rf-1", 10_000, "JPY", None), now=at(4))
    assert outcome.reversals == (dal.LotReversal(LOT, CAMPAIGN, jpy(1000), jpy(900)),)
    assert balance() == (0, 0, 900)
    spent = lot()
    assert (spent.remaining, spent.reversed, spent.owed, spent.spent) == (0, 100, 900, 900)
    view = store.wallet("cust-1", currency=None, page_token=None)
    assert view.owed == jpy(900)
    store.record_purchase(purchase("ord-2", price=5000, placed_at=at(5)), now=at(5))
    store.sweep(now=at(9))
    paid = lot(order_lot_id("ord-2", CAMPAIGN))
    assert (paid.state, paid.remaining, paid.settled) == (AVAILABLE, 0, 500)
    assert balance() == (0, 0, 400)
    release = store.wallet("cust-1", currency=None, page_token=None).entries[0]
    assert release.kind == "release"
    assert_audited(store, "cust-1")


def test_a_refund_after_expiry_owes_nothing_for_what_expired(store: WalletStore) -> None:
    available_lot(store, "ord-1", 10_000, now=at(4))
    store.spend("cust-1", "buy-1", jpy(400), now=at(4))
    store.sweep(now=EXPIRES + timedelta(hours=1))
    assert (lot().state, lot().expired) == (EXPIRED, 600)
    # Half refunded: 500 taken back, all of it set against what expired.
    half = store.refund("ord-1", RefundInput("rf-1", 5000, "JPY", None), now=EXPIRES)
    assert half.reversals[0].owed == jpy(0)
    assert (lot().waived, lot().owed) == (500, 0)
    # The rest: 100 more expired, then 400 spent is owed.
    rest = store.refund("ord-1", RefundInput("rf-2", 5000, "JPY", None), now=EXPIRES)
    assert rest.reversals[0].owed == jpy(400)
    assert balance() == (0, 0, 400)
    assert used() == (0, 0)
    assert_audited(store, "cust-1")


def test_a_replayed_refund_changes_nothing_and_another_body_is_a_conflict(
    store: WalletStore,
) -> None:
    store.record_purchase(purchase(), now=PLACED)
    first = store.refund("ord-1", RefundInput("rf-1", 2500, "JPY", None), now=PLACED)
    before = everything()
    again = store.refund("ord-1", RefundInput("rf-1", 2500, "JPY", None), now=PLACED)
    assert everything() == before
    assert not again.new
    assert (again.reversals, again.refunded_total) == (first.reversals, first.refunded_total)
    with pytest.raises(RefundConflict) as refused:
        store.refund("ord-1", RefundInput("rf-1", 2600, "JPY", None), now=PLACED)
    assert refused.value.details == {"orderId": "ord-1", "refundId": "rf-1"}
    assert everything() == before


def test_what_a_refund_refuses_writes_nothing(store: WalletStore) -> None:
    store.record_purchase(
        purchase(price=3000, extra=(dal.PurchaseLine("SOCK", None, 2, 500),)), now=PLACED
    )
    before = everything()
    with pytest.raises(OrderNotFound):
        store.refund("ord-404", RefundInput("rf-1", 1, "JPY", None), now=PLACED)
    with pytest.raises(RefundExceedsTotal) as over:
        store.refund("ord-1", RefundInput("rf-1", 4001, "JPY", None), now=PLACED)
    assert over.value.details["refundable"] == 4000
    with pytest.raises(RefundCurrencyMismatch) as mismatch:
        store.refund("ord-1", RefundInput("rf-1", 10, "USD", None), now=PLACED)
    assert mismatch.value.code == "currency_mismatch"
    with pytest.raises(UnknownRefundItem):
        store.refund("ord-1", RefundInput("rf-1", None, None, (("SOCK", 3),)), now=PLACED)
    assert everything() == before
    # Exactly the total is fine; then nothing more is.
    store.refund("ord-1", RefundInput("rf-2", 4000, "JPY", None), now=PLACED)
    with pytest.raises(RefundExceedsTotal):
        store.refund("ord-1", RefundInput("rf-3", 1, "JPY", None), now=PLACED)
    assert_audited(store, "cust-1")


def test_a_refund_of_items_is_worth_what_they_cost(store: WalletStore) -> None:
    socks = dal.PurchaseLine("SOCK", None, 2, 500)
    store.record_purchase(purchase(price=9000, extra=(socks,)), now=PLACED)  # earns 900
    outcome = store.refund("ord-1", RefundInput("rf-1", None, None, (("SOCK", 1),)), now=PLACED)
    assert outcome.amount == jpy(500)
    # Keeps floor(900 * 9500 / 10000) = 855.
    assert outcome.reversals[0].reversed == jpy(45)
    with pytest.raises(UnknownRefundItem):
        store.refund("ord-1", RefundInput("rf-2", None, None, (("SOCK", 2),)), now=PLACED)
    store.refund("ord-1", RefundInput("rf-3", None, None, (("SOCK", 1),)), now=PLACED)
    assert balance() == (810, 0, 0)
    assert_audited(store, "cust-1")


def test_a_crash_after_the_refund_is_recorded_is_finished_by_the_replay(
    store: WalletStore, fail_commit: Callable[[int], None]
) -> None:
    store.record_purchase(purchase(), now=PLACED)
    fail_commit(2)  # the refund is recorded, its reversal dies
    with pytest.raises(RuntimeError):
        store.refund("ord-1", RefundInput("rf-1", 5000, "JPY", None), now=PLACED)
    assert balance() == (1000, 0, 0)
    assert_audited(store, "cust-1")
    outcome = store.refund("ord-1", RefundInput("rf-1", 5000, "JPY", None), now=PLACED)
    assert not outcome.new
    assert outcome.reversals[0].reversed == jpy(500)
    assert balance() == (500, 0, 0)
    assert used() == (500, 1)
    assert_audited(store, "cust-1")


def test_a_refund_first_finishes_a_credit_a_crash_left_undone(
    store: WalletStore, fail_commit: Callable[[int], None]
) -> None:
    publish(cashback(id="zz-second"))
    fail_commit(2)
    with pytest.raises(RuntimeError):
        store.record_purchase(purchase(), now=PLACED)
    outcome = store.refund("ord-1", RefundInput("rf-1", 10_000, "JPY", None), now=PLACED)
    assert {r.campaign_id: r.reversed for r in outcome.reversals} == {
        CAMPAIGN: jpy(1000),
        "zz-second": jpy(1000),
    }
    assert balance() == (0, 0, 0)
    assert used("zz-second") == (0, 0)
    assert_audited(store, "cust-1")


# -- spending -------------------------------------------------------------------------


def test_a_spend_of_exactly_the_balance_and_one_unit_more(store: WalletStore) -> None:
    available_lot(store, "ord-1", 10_000, now=at(4))
    before = everything()
    with pytest.raises(InsufficientBalance) as short:
        store.spend("cust-1", "buy-1", jpy(1001), now=at(4))
    assert short.value.details == {
        "customerId": "cust-1",
        "available": 1000,
        "amount": 1001,
        "currency": "JPY",
    }
    assert everything() == before
    spent = store.spend("cust-1", "buy-1", jpy(1000), now=at(4))
    assert spent.new and spent.available_after == jpy(0)
    assert spent.lots == (dal.LotDraw(LOT, CAMPAIGN, jpy(1000)),)
    assert spent.spend_id == "spend#buy-1"
    assert balance() == (0, 0, 0)
    assert lot().gsi1pk is None  # nothing left to expire
    with pytest.raises(InsufficientBalance):
        store.spend("cust-1", "buy-2", jpy(1), now=at(4))
    assert_audited(store, "cust-1")


def test_a_currency_the_wallet_does_not_hold(store: WalletStore) -> None:
    available_lot(store, "ord-1", 10_000, now=at(4))
    with pytest.raises(CurrencyNotHeld) as refused:
        store.spend("cust-1", "buy-1", Money.of(100, "USD"), now=at(4))
    assert refused.value.code == "currency_not_held"
    with pytest.raises(CurrencyNotHeld):
        store.spend("nobody", "buy-1", jpy(100), now=at(4))


def test_the_same_spend_again_returns_the_first_and_another_amount_conflicts(
    store: WalletStore,
) -> None:
    available_lot(store, "ord-1", 10_000, now=at(4))
    first = store.spend("cust-1", "buy-1", jpy(1000), now=at(4))
    before = everything()
    again = store.spend("cust-1", "buy-1", jpy(1000), now=at(4))
    assert not again.new
    assert (again.lots, again.available_after) == (first.lots, first.available_after)
    with pytest.raises(SpendConflict):
        store.spend("cust-1", "buy-1", jpy(999), now=at(4))
    assert everything() == before


def test_a_spend_draws_on_the_lot_expiring_first_and_never_on_an_expired_one(
    store: WalletStore,
) -> None:
    publish(cashback(id="short", cashback={"pending_days": 0, "expires_after_days": 2}))
    publish(cashback(id="forever", cashback={"pending_days": 0}))
    store.record_purchase(purchase("ord-1", price=10_000, placed_at=at(4)), now=at(4))
    short, forever = order_lot_id("ord-1", "short"), order_lot_id("ord-1", "forever")
    spent = store.spend("cust-1", "buy-1", jpy(1500), now=at(4))
    assert [(d.lot_id, d.amount.amount) for d in spent.lots] == [(short, 1000), (forever, 500)]
    # The campaign's own (pending) lot is not drawn on.
    assert lot(order_lot_id("ord-1", CAMPAIGN)).spent == 0
    store.record_purchase(purchase("ord-2", price=10_000, placed_at=at(5)), now=at(5))
    expires_at = lot(order_lot_id("ord-2", "short")).expires_at
    assert expires_at is not None
    past_expiry = expires_at + timedelta(seconds=1)
    # Its expiry passed, the sweep has not run: the balance counts it, a spend may not.
    with pytest.raises(InsufficientBalance) as short_of:
        store.spend("cust-1", "buy-2", jpy(1600), now=past_expiry)
    assert short_of.value.details["available"] == 1500
    assert_audited(store, "cust-1")


def test_a_spend_drawing_on_more_lots_than_a_transaction_holds_is_refused(
    store: WalletStore,
) -> None:
    # 97 claim credits of 10, stored directly: crediting them one by one on moto, which
    # copies its tables for every transaction, would take most of a minute.
    lots = [
        Lot(
            lot_id=f"claim#clm-{n:03d}",
            customer_id="cust-1",
            campaign_id="rebates",
            currency="JPY",
            source="claim",
            claim_id=f"clm-{n:03d}",
            state=AVAILABLE,
            earned=10,
            remaining=10,
            credited_at=PLACED,
            available_at=PLACED,
            version=1,
        )
        for n in range(97)
    ]
    with Lot.batch_write() as batch:
        for item in lots:
            batch.save(item)
    after = Balance(customer_id="cust-1", currency="JPY", available=970, version=1)
    after.save()
    credits = LedgerEntry(
        entry_id="credit#claims",
        customer_id="cust-1",
        kind="credit",
        amount=jpy(970),
        available_delta=970,
        lots=[LotPart(lot_id=item.lot_id, campaign_id="rebates", amount=10) for item in lots],
        recorded_at=PLACED,
    )
    credits.save()
    credits.marker().save()
    assert_audited(store, "cust-1")
    before = everything()
    with pytest.raises(TooManyLots) as refused:
        store.spend("cust-1", "buy-1", jpy(970), now=PLACED)
    assert refused.value.details == {
        "customerId": "cust-1",
        "lots": 97,
        "maxLots": 96,
        "maxAmount": 960,
    }
    assert everything() == before
    # 96 lots, the spend item, the balance, the entry and its marker: 100 items.
    assert len(store.spend("cust-1", "buy-1", jpy(960), now=PLACED).lots) == 96
    assert_audited(store, "cust-1")


def test_a_cancelled_spend_returns_to_its_lots_once(store: WalletStore) -> None:
    available_lot(store, "ord-1", 10_000, now=at(4))
    store.spend("cust-1", "buy-1", jpy(700), now=at(4))
    cancelled = store.cancel_spend("cust-1", "buy-1", now=at(5))
    assert cancelled == dal.CancelOutcome("spend#buy-1", "buy-1", jpy(700), new=True)
    assert balance() == (0, 1000, 0)
    assert (lot().remaining, lot().spent) == (1000, 0)
    assert lot().gsi1pk == "DUE#EXPIRE#2027-06-11"
    before = everything()
    assert not store.cancel_spend("cust-1", "buy-1", now=at(6)).new
    assert everything() == before
    with pytest.raises(SpendNotFound):
        store.cancel_spend("cust-1", "buy-404", now=at(6))
    # The order id stays taken by its (cancelled) spend.
    assert not store.spend("cust-1", "buy-1", jpy(700), now=at(6)).new
    assert Spend.find("cust-1", "buy-1") is not None
    assert_audited(store, "cust-1")


def test_what_a_cancel_returns_to_a_lot_past_its_expiry_expires_at_once(
    store: WalletStore,
) -> None:
    available_lot(store, "ord-1", 10_000, now=at(4))
    store.spend("cust-1", "buy-1", jpy(700), now=at(4))
    store.sweep(now=EXPIRES)
    assert (lot().state, lot().expired) == (EXPIRED, 300)
    store.cancel_spend("cust-1", "buy-1", now=EXPIRES + timedelta(days=1))
    assert (lot().state, lot().expired, lot().spent, lot().remaining) == (EXPIRED, 1000, 0, 0)
    assert balance() == (0, 0, 0)
    view = store.wallet("cust-1", currency="JPY", page_token=None)
    assert view.entries[0].kind == "cancel"
    assert_audited(store, "cust-1")


def test_a_cancel_pays_what_is_owed_first(store: WalletStore) -> None:
    store.record_purchase(purchase("ord-1"), now=PLACED)
    store.record_purchase(purchase("ord-2"), now=PLACED)
    store.sweep(now=at(5))
    store.spend("cust-1", "buy-1", jpy(2000), now=at(5))
    store.refund("ord-1", RefundInput("rf-1", 10_000, "JPY", None), now=at(5))
    assert balance() == (0, 0, 1000)
    store.cancel_spend("cust-1", "buy-1", now=at(5))
    # 2,000 returns: 1,000 pays what is owed, 1,000 is available again.
    assert balance() == (0, 1000, 0)
    assert_audited(store, "cust-1")


# -- claims ---------------------------------------------------------------------------


def test_a_claim_credit_is_idempotent_and_follows_the_campaigns_cashback(
    store: WalletStore,
) -> None:
    request = CreditRequest("cust-1", CAMPAIGN, "clm-1", jpy(800), PLACED)
    first = store.credit(request, now=PLACED + timedelta(hours=1))
    assert first == dal.CreditOutcome(
        "claim#clm-1", "credit#claim#clm-1", jpy(800), RELEASED, EXPIRES, new=True
    )
    assert used() == (0, 0)  # the claims workflow reserved it
    before = everything()
    again = store.credit(request, now=PLACED + timedelta(hours=2))
    assert again == dal.CreditOutcome(
        "claim#clm-1", "credit#claim#clm-1", jpy(800), RELEASED, EXPIRES, new=False
    )
    assert everything() == before
    assert_audited(store, "cust-1")


def test_a_claim_credit_without_a_cashback_section_is_available_at_once(
    store: WalletStore,
) -> None:
    outcome = store.credit(
        CreditRequest("cust-1", "rebate-only", "clm-1", jpy(800), PLACED), now=at(1)
    )
    assert (outcome.available_at, outcome.expires_at) == (at(1), None)
    assert balance() == (0, 800, 0)
    assert store.spend("cust-1", "buy-1", jpy(800), now=at(1)).new


# -- the sweep ------------------------------------------------------------------------


def test_the_sweep_releases_then_expires_and_run_twice_moves_each_lot_once(
    store: WalletStore,
) -> None:
    store.record_purchase(purchase(), now=PLACED)
    assert store.sweep(now=RELEASED - timedelta(seconds=1)).released == 0
    report = store.sweep(now=RELEASED)
    assert (report.released, report.released_amount, report.lag_seconds) == (1, {"JPY": 1000}, 0)
    assert store.sweep(now=RELEASED + timedelta(hours=1)).released == 0
    assert (lot().state, lot().gsi1pk) == (AVAILABLE, "DUE#EXPIRE#2027-06-11")
    assert balance() == (0, 1000, 0)
    store.spend("cust-1", "buy-1", jpy(250), now=RELEASED)
    expired = store.sweep(now=EXPIRES + timedelta(minutes=10))
    assert (expired.expired, expired.expired_amount, expired.lag_seconds) == (1, {"JPY": 750}, 600)
    assert (lot().state, lot().expired, lot().spent, lot().gsi1pk) == (EXPIRED, 750, 250, None)
    assert store.sweep(now=EXPIRES + timedelta(hours=2)).expired == 0
    assert entry_ids(store)[0] == f"expire#{LOT}"
    assert_audited(store, "cust-1")


def test_the_sweep_does_not_miss_the_days_it_did_not_run(store: WalletStore) -> None:
    store.sweep(now=PLACED)
    assert SweepMark.current() == PLACED.date() - timedelta(days=1)
    store.record_purchase(purchase(), now=PLACED)
    # Next run ten days after the lot was due.
    report = store.sweep(now=RELEASED + timedelta(days=10))
    assert report.released == 1
    assert report.lag_seconds == timedelta(days=10).total_seconds()
    assert SweepMark.current() == (RELEASED + timedelta(days=9)).date()


def test_a_lot_released_after_its_expiry_expires_in_the_same_run(store: WalletStore) -> None:
    store.sweep(now=PLACED)
    store.record_purchase(purchase(), now=PLACED)
    report = store.sweep(now=EXPIRES + timedelta(days=1))
    assert (report.released, report.expired) == (1, 1)
    assert lot().state == EXPIRED
    assert entry_ids(store)[:2] == [f"expire#{LOT}", f"release#{LOT}"]
    assert_audited(store, "cust-1")


# -- reading --------------------------------------------------------------------------


def test_an_unknown_customer_has_an_empty_wallet(store: WalletStore) -> None:
    view = store.wallet("nobody", currency=None, page_token=None)
    assert (view.available, view.pending, view.owed) == (jpy(0), jpy(0), jpy(0))
    assert (view.entries, view.next_token, view.next_release, view.next_expiry) == (
        (),
        None,
        None,
        None,
    )
    usd = store.wallet("nobody", currency="USD", page_token=None)
    assert usd.available == Money.of(0, "USD")


def test_the_wallet_shows_the_next_release_and_expiry(store: WalletStore) -> None:
    store.record_purchase(purchase("ord-1", price=10_000), now=PLACED)
    store.record_purchase(purchase("ord-2", price=20_000), now=PLACED)
    store.record_purchase(purchase("ord-3", price=5000, placed_at=at(2)), now=at(2))
    view = store.wallet("cust-1", currency=None, page_token=None)
    assert view.next_release == dal.NextMove(RELEASED, jpy(3000))
    assert view.next_expiry is None
    store.sweep(now=RELEASED)
    view = store.wallet("cust-1", currency=None, page_token=None)
    assert view.next_release == dal.NextMove(RELEASED + timedelta(days=2), jpy(500))
    assert view.next_expiry == dal.NextMove(EXPIRES, jpy(3000))
    assert (view.available, view.pending) == (jpy(3000), jpy(500))


def test_entries_come_newest_first_in_pages(store: WalletStore) -> None:
    for n in range(5):
        store.record_purchase(purchase(f"ord-{n}"), now=PLACED + timedelta(minutes=n))
    first = store.wallet("cust-1", currency=None, page_token=None, limit=2)
    assert [e.order_id for e in first.entries] == ["ord-4", "ord-3"]
    assert first.next_token is not None
    second = store.wallet("cust-1", currency=None, page_token=first.next_token, limit=2)
    assert [e.order_id for e in second.entries] == ["ord-2", "ord-1"]
    assert second.pending == jpy(5000)
    assert second.next_token is not None
    last = store.wallet("cust-1", currency="JPY", page_token=second.next_token, limit=2)
    assert [e.order_id for e in last.entries] == ["ord-0"]
    assert last.next_token is None
    exact = store.wallet("cust-1", currency=None, page_token=None, limit=5)
    assert len(exact.entries) == 5 and exact.next_token is None
    with pytest.raises(InvalidPageToken):
        store.wallet("cust-2", currency=None, page_token=first.next_token)
    with pytest.raises(InvalidPageToken):
        store.wallet("cust-1", currency="USD", page_token=first.next_token)
    with pytest.raises(InvalidPageToken):
        store.wallet("cust-1", currency=None, page_token="garbage")


def test_a_wallet_of_several_currencies_needs_one_asked_for(store: WalletStore) -> None:
    store.record_purchase(purchase(), now=PLACED)
    store.credit(
        CreditRequest("cust-1", "dollars", "clm-1", Money.of(250, "USD"), PLACED), now=PLACED
    )
    with pytest.raises(CurrencyRequired) as refused:
        store.wallet("cust-1", currency=None, page_token=None)
    assert refused.value.details["currencies"] == ["JPY", "USD"]
    usd = store.wallet("cust-1", currency="USD", page_token=None)
    assert usd.available == Money.of(250, "USD")
    assert [e.entry_id for e in usd.entries] == ["credit#claim#clm-1"]
    jpy_view = store.wallet("cust-1", currency="JPY", page_token=None)
    assert [e.kind for e in jpy_view.entries] == ["credit"] and jpy_view.pending == jpy(1000)
    assert_audited(store, "cust-1")


def test_the_audit_reports_a_tampered_balance(store: WalletStore) -> None:
    store.record_purchase(purchase(), now=PLACED)
    Balance.get(*Balance.key("cust-1", "JPY")).update([Balance.pending.add(1)])
    report = store.audit("cust-1")
    assert not report.ok
    assert any("JPY pending: the balance is 1001" in line for line in report.differences)
    marker = LedgerEntryId.get(*LedgerEntryId.key("cust-1", f"credit#{LOT}"))
    marker.delete()
    assert any("has no marker" in line for line in store.audit("cust-1").differences)


@pytest.fixture(autouse=True)
def _no_real_sleeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Backoff between retries only spreads real contention; tests need not wait.
    monkeypatch.setattr(dal, "_backoff", lambda attempt: None)
    yield


# -- nothing is ever written already due, and nothing due is stranded -----------------


def test_a_purchase_recorded_after_its_pending_period_is_available_at_once(
    store: WalletStore,
) -> None:
    store.sweep(now=at(40))  # the sweep is up to date: its watermark is past the due day
    outcome = store.record_purchase(purchase(), now=at(40))
    assert outcome.earnings[0].available_at == at(40)
    assert (lot().state, lot().remaining, lot().available_at) == (AVAILABLE, 1000, at(40))
    # Its expiry counts from then: 30 local days after 2027-06-19 in Tokyo.
    assert lot().expires_at == datetime(2027, 7, 18, 15, 0, tzinfo=UTC)
    assert balance() == (0, 1000, 0)
    assert_audited(store, "cust-1")


def test_a_claim_approved_long_ago_is_available_at_once(store: WalletStore) -> None:
    store.sweep(now=at(40))
    outcome = store.credit(CreditRequest("cust-1", CAMPAIGN, "clm-1", jpy(500), PLACED), now=at(40))
    assert (outcome.available_at, lot("claim#clm-1").state) == (at(40), AVAILABLE)
    assert balance() == (0, 500, 0)


def test_a_lot_due_after_the_clock_moved_back_is_still_released(store: WalletStore) -> None:
    # The local cloud's clock jumps a month ahead, the sweep runs, the clock comes back.
    store.sweep(now=at(30))
    assert SweepMark.current() == at(29).date()
    store.record_purchase(purchase(), now=PLACED)
    report = store.sweep(now=RELEASED)
    assert report.released == 1
    assert SweepMark.current() == at(29).date()  # the watermark never moves back
    assert balance() == (0, 1000, 0)
    assert_audited(store, "cust-1")


def test_the_sweep_rescans_the_days_before_its_watermark(store: WalletStore) -> None:
    store.sweep(now=PLACED)
    store.record_purchase(purchase(), now=PLACED)
    # A run that completed the lot's day without moving it (the index had not caught up).
    SweepMark.advance(RELEASED.date() + timedelta(days=1), RELEASED)
    assert store.sweep(now=RELEASED + timedelta(days=3)).released == 1


def test_a_credit_a_crash_delayed_is_credited_as_of_the_replay(
    store: WalletStore, fail_commit: Callable[[int], None]
) -> None:
    publish(cashback(id="zz-second"))
    fail_commit(2)
    with pytest.raises(RuntimeError):
        store.record_purchase(purchase(), now=PLACED)
    store.sweep(now=at(40))
    # Replayed weeks later: past its pending period, so available at once from then.
    again = store.record_purchase(purchase(), now=at(40))
    late = lot(order_lot_id("ord-1", "zz-second"))
    assert (late.state, late.available_at) == (AVAILABLE, at(40))
    assert late.expires_at == datetime(2027, 7, 18, 15, 0, tzinfo=UTC)
    assert {e.campaign_id: e.available_at for e in again.earnings} == {
        CAMPAIGN: RELEASED,
        "zz-second": at(40),
    }
    assert_audited(store, "cust-1")
