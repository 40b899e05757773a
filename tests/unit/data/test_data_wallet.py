"""The wallet's items on moto: keys and the reads they serve, markers, version and bound
conditions, the due index, and the parts every transaction of the store is made of."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from functions.core.models import Transaction, TransactionCancelled
from functions.core.money import Money
from functions.wallet.models import (
    AVAILABLE,
    DUE_EXPIRE,
    DUE_RELEASE,
    ENTRIES_END,
    ENTRY_PREFIX,
    EXPIRED,
    PENDING,
    Balance,
    LedgerEntry,
    LedgerEntryId,
    Lot,
    LotPart,
    Purchase,
    PurchaseItem,
    Refund,
    RewardCount,
    Spend,
    SweepMark,
    claim_lot_id,
    currency_items,
    customer_partition,
    order_items,
    order_lot_id,
    partition_items,
    reverse_entry_id,
    spend_entry_id,
    wallet_item,
)

T0 = datetime(2027, 3, 10, 5, 0, tzinfo=UTC)

pytestmark = pytest.mark.usefixtures("tables")


def jpy(amount: int) -> Money:
    return Money(amount=amount, currency="JPY")


def stored_balance(customer: str = "cust-1", currency: str = "JPY") -> Balance:
    found = Balance.get_or_none(*Balance.key(customer, currency))
    assert found is not None
    return found


def entry(
    entry_id: str, amount: int, *, at: datetime = T0, customer: str = "cust-1"
) -> LedgerEntry:
    return LedgerEntry(
        entry_id=entry_id,
        customer_id=customer,
        kind="credit",
        amount=jpy(amount),
        pending_delta=amount,
        recorded_at=at,
    )


def move(balance: Balance, new_entry: LedgerEntry, **deltas: int) -> Balance:
    """An entry, its marker and the balance change in one transaction, as the store does."""
    actions, condition, after = balance.change(new_entry.recorded_at, **deltas)
    transaction = Transaction()
    transaction.put("entry", new_entry, condition=LedgerEntry.pk.does_not_exist())
    transaction.put("marker", new_entry.marker(), condition=LedgerEntryId.pk.does_not_exist())
    transaction.update(
        "balance", Balance.ref(balance.customer_id, balance.currency), actions, condition
    )
    transaction.commit()
    return after


def lot(lot_id: str, *, state: str = PENDING, remaining: int = 1000, **extra: Any) -> Lot:
    fields: dict[str, Any] = {
        "lot_id": lot_id,
        "customer_id": "cust-1",
        "campaign_id": "spring",
        "currency": "JPY",
        "source": "claim",
        "claim_id": lot_id,
        "state": state,
        "earned": 1000,
        "remaining": remaining,
        "credited_at": T0,
        "available_at": T0 + timedelta(days=3),
        "expires_at": T0 + timedelta(days=33),
        "version": 1,
    }
    return Lot(**(fields | extra))


# -- entries and markers --------------------------------------------------------------


def test_a_fact_is_recorded_once_whatever_the_retries() -> None:
    empty = Balance.empty("cust-1", "JPY")
    after = move(empty, entry("credit#claim#clm_1", 1000), pending=1000)
    assert (after.pending, after.version) == (1000, 1)
    # A retry a second later: another recordedAt (another key), the same id and marker.
    with pytest.raises(TransactionCancelled) as refused:
        move(after, entry("credit#claim#clm_1", 1000, at=T0 + timedelta(seconds=1)), pending=1000)
    assert refused.value.failed("marker")
    assert stored_balance().pending == 1000
    found = LedgerEntryId.find_entry("cust-1", "credit#claim#clm_1")
    assert found is not None
    assert (found.amount, found.pending_delta) == (jpy(1000), 1000)
    assert found.sk.startswith(ENTRY_PREFIX) and found.sk.endswith("#credit#claim#clm_1")
    assert LedgerEntryId.find_entry("cust-1", "credit#claim#clm_2") is None


def test_entries_sort_newest_first_after_the_balances_and_lots() -> None:
    balance = Balance.empty("cust-1", "JPY")
    for n in range(3):
        balance = move(balance, entry(f"e{n}", 100, at=T0 + timedelta(hours=n)), pending=100)
    move(Balance.empty("cust-2", "JPY"), entry("x", 100, customer="cust-2"), pending=100)
    lot("claim#a").save()
    Spend(
        customer_id="cust-1",
        order_id="o",
        amount=jpy(1),
        available_after=jpy(0),
        spent_at=T0,
    ).save()
    RewardCount(customer_id="cust-1", campaign_id="spring", rewards=1).save()
    wallet_range = LedgerEntry.sk.between("BALANCE#", ENTRIES_END)
    kinds = [
        type(wallet_item(raw)).__name__
        for raw in partition_items(customer_partition("cust-1"), wallet_range)
    ]
    # One Query reads balances and lots first, then entries; no marker, count or spend.
    assert kinds == ["Balance", "Lot", "LedgerEntry", "LedgerEntry", "LedgerEntry"]
    entries = [
        wallet_item(raw)
        for raw in partition_items(customer_partition("cust-1"), wallet_range)
        if raw["sk"]["S"].startswith(ENTRY_PREFIX)
    ]
    assert [e.entry_id for e in entries if isinstance(e, LedgerEntry)] == ["e2", "e1", "e0"]


def test_a_currencys_balance_and_lots_are_one_query() -> None:
    move(Balance.empty("cust-1", "JPY"), entry("j", 100), pending=100)
    usd = LedgerEntry(
        entry_id="u",
        customer_id="cust-1",
        kind="credit",
        amount=Money(amount=250, currency="USD"),
        available_delta=250,
        recorded_at=T0,
    )
    move(Balance.empty("cust-1", "USD"), usd, available=250)
    lot("claim#jpy").save()
    lot("claim#usd", currency="USD").save()
    balance, lots = currency_items("cust-1", "JPY")
    assert balance is not None and balance.pending == 100
    assert [item.lot_id for item in lots] == ["claim#jpy"]
    dollars, dollar_lots = currency_items("cust-1", "USD")
    assert dollars is not None and dollars.available == 250
    assert [item.lot_id for item in dollar_lots] == ["claim#usd"]
    assert currency_items("cust-1", "EUR") == (None, [])


# -- balances -------------------------------------------------------------------------


def test_a_balance_never_goes_below_zero() -> None:
    balance = move(Balance.empty("cust-1", "JPY"), entry("c", 1000), available=1000)
    with pytest.raises(TransactionCancelled) as refused:
        move(balance, entry("spend#1", 1001), available=-1001)
    assert refused.value.reasons == {"balance": "ConditionalCheckFailed"}
    assert LedgerEntryId.find_entry("cust-1", "spend#1") is None  # nothing half-written
    balance = move(balance, entry("spend#1", 1000), available=-1000)
    assert (stored_balance().available, balance.available) == (0, 0)
    with pytest.raises(TransactionCancelled):
        move(balance, entry("spend#2", 1), available=-1)


def test_a_spend_from_no_balance_at_all_is_refused() -> None:
    with pytest.raises(TransactionCancelled) as refused:
        move(Balance.empty("cust-1", "JPY"), entry("spend#1", 1), available=-1)
    assert refused.value.failed("balance")
    assert Balance.get_or_none(*Balance.key("cust-1", "JPY")) is None


def test_a_change_decided_on_a_stale_read_is_refused() -> None:
    first = move(Balance.empty("cust-1", "JPY"), entry("c1", 500), pending=500)
    move(first, entry("c2", 500), pending=500)
    # `first` is now stale (version 1, the table has 2): even a harmless credit is refused.
    with pytest.raises(TransactionCancelled) as refused:
        move(first, entry("c3", 1), pending=1)
    assert refused.value.failed("balance")
    assert stored_balance().version == 2


def test_a_release_moves_pending_to_available_and_owed_is_its_own_bucket() -> None:
    balance = move(Balance.empty("cust-1", "JPY"), entry("c", 1000), pending=1000)
    balance = move(balance, entry("reverse", 300), owed=300)
    after = move(balance, entry("release", 1000), pending=-1000, available=700, owed=-300)
    assert (after.pending, after.available, after.owed) == (0, 700, 0)
    stored = stored_balance()
    assert (stored.pending, stored.available, stored.owed, stored.version) == (0, 700, 0, 3)


def test_a_blind_credit_adds_and_bumps_the_version() -> None:
    balance = move(Balance.empty("cust-1", "JPY"), entry("c", 1000), available=1000)
    transaction = Transaction()
    transaction.update(
        "balance", Balance.ref("cust-1", "JPY"), *Balance.add_blind("cust-1", "JPY", T0, pending=5)
    )
    transaction.commit()
    assert (stored_balance().pending, stored_balance().version) == (5, 2)
    # Whoever read the balance before it is refused.
    with pytest.raises(TransactionCancelled):
        move(balance, entry("spend", 10), available=-10)
    # Credited available at once, it is refused while something is owed.
    move(stored_balance(), entry("reverse", 50), owed=50)
    blind = Transaction()
    blind.update(
        "balance",
        Balance.ref("cust-1", "JPY"),
        *Balance.add_blind("cust-1", "JPY", T0, available=5),
    )
    with pytest.raises(TransactionCancelled) as refused:
        blind.commit()
    assert refused.value.failed("balance")
    with pytest.raises(ValueError, match="only adds"):
        Balance.add_blind("cust-1", "JPY", T0, pending=-1)


# -- lots and the due index -----------------------------------------------------------


def test_a_lot_is_due_by_day_in_the_index_while_it_has_something_to_move() -> None:
    pending = lot("claim#p")
    assert (pending.gsi1pk, pending.gsi1sk) == (
        "DUE#RELEASE#2027-03-13",
        "2027-03-13T05:00:00.000000Z#claim#p",
    )
    available = lot("claim#a", state=AVAILABLE)
    assert available.gsi1pk == "DUE#EXPIRE#2027-04-12"
    assert lot("claim#spent", state=AVAILABLE, remaining=0).gsi1pk is None
    assert lot("claim#forever", state=AVAILABLE, expires_at=None).gsi1pk is None
    assert lot("claim#gone", state=EXPIRED, remaining=0).gsi1pk is None
    for item in (pending, available, lot("claim#other", available_at=T0 + timedelta(days=4))):
        item.save()
    morning = T0 + timedelta(days=3)
    assert [x.lot_id for x in Lot.due(DUE_RELEASE, date(2027, 3, 13), morning)] == ["claim#p"]
    assert list(Lot.due(DUE_RELEASE, date(2027, 3, 13), morning - timedelta(microseconds=1))) == []
    assert list(Lot.due(DUE_RELEASE, date(2027, 3, 12), morning)) == []
    late = T0 + timedelta(days=40)
    assert [x.lot_id for x in Lot.due(DUE_EXPIRE, date(2027, 4, 12), late)] == ["claim#a"]


def test_a_lot_change_is_conditional_on_its_version_and_moves_its_index_keys() -> None:
    item = lot("claim#p")
    item.save()
    actions, condition, released = item.change(state=AVAILABLE, remaining=-200, settled=200)
    transaction = Transaction()
    transaction.update("lot", Lot.ref("cust-1", "JPY", "claim#p"), actions, condition)
    transaction.commit()
    stored = Lot.get(*Lot.key("cust-1", "JPY", "claim#p"))
    assert (stored.state, stored.remaining, stored.settled, stored.version) == (
        AVAILABLE,
        800,
        200,
        2,
    )
    assert (stored.gsi1pk, stored.gsi1sk) == (released.gsi1pk, released.gsi1sk)
    assert stored.gsi1pk == "DUE#EXPIRE#2027-04-12"
    assert stored.parts_sum() == stored.earned
    # The same change again, from the first read: refused.
    again = Transaction()
    again.update("lot", Lot.ref("cust-1", "JPY", "claim#p"), *item.change(remaining=-1)[:2])
    with pytest.raises(TransactionCancelled):
        again.commit()
    # A part never goes below zero, whatever the version says.
    spent = Transaction()
    spent.update(
        "lot", Lot.ref("cust-1", "JPY", "claim#p"), *stored.change(remaining=-801, spent=801)[:2]
    )
    with pytest.raises(TransactionCancelled):
        spent.commit()
    drained = Transaction()
    drained.update(
        "lot", Lot.ref("cust-1", "JPY", "claim#p"), *stored.change(remaining=-800, spent=800)[:2]
    )
    drained.commit()
    assert Lot.get(*Lot.key("cust-1", "JPY", "claim#p")).gsi1pk is None


# -- ids ------------------------------------------------------------------------------


def test_ids_name_the_business_fact_and_cannot_collide() -> None:
    assert order_lot_id("ord-1", "spring") == "order#ord-1#spring"
    assert claim_lot_id("clm_1") == "claim#clm_1"
    assert spend_entry_id("ord-1") == "spend#ord-1"
    assert reverse_entry_id("rf-1", "order#ord-1#spring") == "reverse#rf-1#order#ord-1#spring"
    # An opaque id with a '#' is escaped: ("a#order#b", lot) and ("a", "order#b#...")
    # would otherwise name the same reversal.
    assert reverse_entry_id("a#order#b", "order#c#x") != reverse_entry_id("a", "order#b#order#c#x")
    assert order_lot_id("a#b", "c") != order_lot_id("a", "b#c")


# -- per-customer counts, spends, purchases, refunds ----------------------------------


def test_a_reward_count_stops_at_its_limit() -> None:
    def one_more(limit: int | None) -> None:
        transaction = Transaction()
        transaction.update(
            "rewards",
            RewardCount.ref("cust-1", "spring"),
            *RewardCount.one_more("cust-1", "spring", limit, T0),
        )
        transaction.commit()

    one_more(2)
    one_more(2)
    with pytest.raises(TransactionCancelled):
        one_more(2)
    one_more(None)
    assert RewardCount.get(*RewardCount.key("cust-1", "spring")).rewards == 3


def test_a_purchase_and_its_refunds_are_one_query_and_refunds_are_ordered() -> None:
    purchase = Purchase(
        order_id="ord-1",
        customer_id="cust-1",
        channel="online",
        placed_at=T0,
        currency="JPY",
        items=[PurchaseItem(sku="TRAIL-01", category="shoes", quantity=1, unit_price=10_000)],
        total=10_000,
        earnings={"spring": {"outcome": "crediting", "amount": 1000}},
        fingerprint="f",
        recorded_at=T0,
    )
    purchase.save()
    settle = Transaction()
    settle.update(
        "purchase",
        Purchase.ref("ord-1"),
        *Purchase.settle_earning("spring", {"outcome": "credited", "amount": 1000}),
    )
    settle.commit()
    again = Transaction()
    again.update(
        "purchase",
        Purchase.ref("ord-1"),
        *Purchase.settle_earning("spring", {"outcome": "budget_exhausted"}),
    )
    with pytest.raises(TransactionCancelled):  # no longer crediting
        again.commit()

    def count_refund(read: Purchase, refund_id: str, amount: int) -> None:
        transaction = Transaction()
        refund = Refund(
            refund_id=refund_id,
            order_id="ord-1",
            customer_id="cust-1",
            amount=jpy(amount),
            refunded_before=read.refunded,
            refunded_after=read.refunded + amount,
            plan={"order#ord-1#spring": {"state": "planned", "amount": 1}},
            fingerprint=refund_id,
            recorded_at=T0,
        )
        transaction.put("refund", refund, condition=Refund.pk.does_not_exist())
        transaction.update("purchase", Purchase.ref("ord-1"), *read.refund_actions(amount, {}))
        transaction.commit()

    first_read = Purchase.get(*Purchase.key("ord-1"))
    count_refund(first_read, "rf-1", 6000)
    with pytest.raises(TransactionCancelled):  # counted on a read another refund outdated
        count_refund(first_read, "rf-2", 1000)
    second_read = Purchase.get(*Purchase.key("ord-1"))
    with pytest.raises(TransactionCancelled):  # beyond the total
        count_refund(second_read, "rf-2", 4001)
    count_refund(second_read, "rf-2", 4000)
    stored, refunds = order_items("ord-1")
    assert stored is not None
    assert (stored.refunded, stored.refunds) == (10_000, 2)
    assert stored.earnings_dict() == {"spring": {"outcome": "credited", "amount": 1000}}
    assert [(r.refund_id, r.refunded_before, r.refunded_after) for r in refunds] == [
        ("rf-1", 0, 6000),
        ("rf-2", 6000, 10_000),
    ]
    step = Transaction()
    step.update(
        "refund",
        Refund.ref("ord-1", "rf-1"),
        *Refund.reverse_step("order#ord-1#spring", {"state": "reversed", "amount": 1}),
    )
    step.commit()
    replayed = Transaction()
    replayed.update(
        "refund",
        Refund.ref("ord-1", "rf-1"),
        *Refund.reverse_step("order#ord-1#spring", {"state": "reversed", "amount": 1}),
    )
    with pytest.raises(TransactionCancelled):
        replayed.commit()
    assert order_items("ord-404") == (None, [])


def test_a_spend_is_once_per_order_and_keeps_its_draws() -> None:
    spend = Spend(
        customer_id="cust-1",
        order_id="a#b",
        amount=jpy(300),
        lots=[LotPart(lot_id="claim#x", campaign_id="spring", amount=300)],
        available_after=jpy(0),
        spent_at=T0,
    )
    spend.save(condition=Spend.pk.does_not_exist())
    found = Spend.find("cust-1", "a#b")
    assert found is not None
    assert (found.sk, found.spend_id, found.state) == ("SPEND#a%23b", "spend#a%23b", "spent")
    assert [(p.lot_id, p.amount) for p in found.lots] == [("claim#x", 300)]
    assert Spend.find("cust-2", "a#b") is None


# -- the sweep's watermark ------------------------------------------------------------


def test_the_watermark_only_moves_forward() -> None:
    assert SweepMark.current() is None
    assert SweepMark.advance(date(2027, 3, 9), T0)
    assert SweepMark.advance(date(2027, 3, 11), T0)
    assert not SweepMark.advance(date(2027, 3, 10), T0)  # an overlapping, older run
    assert not SweepMark.advance(date(2027, 3, 11), T0)
    assert SweepMark.current() == date(2027, 3, 11)
