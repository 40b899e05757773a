"""A campaign's budget is one counter, whichever path spends it.

A checkout discount (offers) and a cashback credit (wallet) each write their own items in
their own transaction, with the same `functions.campaigns.budget` part in it: together
they never pass either cap, a refusal leaves the spender's items unwritten, and a release
by one path is room for the other.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from functions.campaigns import budget
from functions.campaigns.budget import BudgetLimits
from functions.campaigns.models import Campaign, get_campaign
from functions.core.models import Transaction, TransactionCancelled
from functions.core.money import Money
from functions.offers.models import OrderRedemption
from functions.wallet.models import LedgerEntry
from tests.unit.data.factories import T0, make_campaign, publish

CAMPAIGN = "spring-trail-2027"
LIMITS = BudgetLimits(amount=5000, max_rewards=3)


def discount_at_checkout(order_id: str, amount: int, limits: BudgetLimits = LIMITS) -> None:
    """The offers path: the order's guard and the budget, in one transaction."""
    transaction = Transaction()
    guard = OrderRedemption(
        order_id=order_id, code="TRAIL-X", redemption_id=f"red_{order_id}", created_at=T0
    )
    transaction.put("order", guard, condition=OrderRedemption.pk.does_not_exist())
    budget.reserve(transaction, CAMPAIGN, amount, limits=limits)
    transaction.commit()


def cashback_credit(entry_id: str, amount: int, limits: BudgetLimits = LIMITS) -> None:
    """The wallet path: a ledger entry in another table and the same budget part."""
    transaction = Transaction()
    entry = LedgerEntry(
        entry_id=entry_id,
        customer_id="cust-1",
        kind="credit",
        amount=Money(amount=amount, currency="JPY"),
        pending_delta=amount,
        campaign_id=CAMPAIGN,
        recorded_at=T0,
    )
    transaction.put("entry", entry, condition=LedgerEntry.pk.does_not_exist())
    budget.reserve(transaction, CAMPAIGN, amount, limits=limits)
    transaction.commit()


def used() -> tuple[int, int]:
    campaign = get_campaign(CAMPAIGN)
    assert campaign is not None
    return campaign.budget_used_amount, campaign.budget_used_count


def entries() -> list[str]:
    return sorted(entry.entry_id for entry in LedgerEntry.scan())


@pytest.mark.usefixtures("tables")
def test_two_paths_share_the_amount_cap() -> None:
    publish(make_campaign())
    discount_at_checkout("ord-1", 2000)
    cashback_credit("credit#1", 2500)
    assert used() == (4500, 2)
    with pytest.raises(TransactionCancelled) as refused:
        cashback_credit("credit#2", 501)
    assert refused.value.failed(budget.LABEL)
    # The refused credit wrote nothing of its own either.
    assert entries() == ["credit#1"]
    with pytest.raises(TransactionCancelled):
        discount_at_checkout("ord-2", 501)
    assert OrderRedemption.find("ord-2", "TRAIL-X") is None
    discount_at_checkout("ord-3", 500)
    assert used() == (5000, 3)


@pytest.mark.usefixtures("tables")
def test_two_paths_share_the_count_cap() -> None:
    publish(make_campaign(budget_amount=None))
    count_only = BudgetLimits(None, 3)
    discount_at_checkout("ord-1", 10, count_only)
    cashback_credit("credit#1", 10, count_only)
    discount_at_checkout("ord-2", 10, count_only)
    with pytest.raises(TransactionCancelled) as refused:
        cashback_credit("credit#2", 10, count_only)
    assert refused.value.failed(budget.LABEL)
    assert used() == (30, 3)


@pytest.mark.usefixtures("tables")
def test_a_release_by_one_path_is_room_for_the_other() -> None:
    publish(make_campaign())
    discount_at_checkout("ord-1", 3000)
    cashback_credit("credit#1", 2000)
    with pytest.raises(TransactionCancelled):
        cashback_credit("credit#2", 1000)
    transaction = Transaction()
    budget.release_in(transaction, CAMPAIGN, 3000)
    transaction.commit()
    cashback_credit("credit#2", 1000)
    assert used() == (3000, 2)


@pytest.mark.usefixtures("tables")
def test_a_spender_deciding_on_old_caps_is_refused() -> None:
    publish(make_campaign())
    publish(make_campaign(version=2, budget_amount=1000, published_at=T0 + timedelta(days=1)))
    with pytest.raises(TransactionCancelled) as refused:
        cashback_credit("credit#1", 900)  # within the new cap, but decided on the old one
    assert refused.value.failed(budget.LABEL)
    cashback_credit("credit#1", 900, BudgetLimits(1000, 3))
    assert used() == (900, 1)


@pytest.mark.usefixtures("tables")
def test_the_spender_adds_its_own_conditions_on_the_campaign() -> None:
    publish(make_campaign())
    transaction = Transaction()
    budget.reserve(transaction, CAMPAIGN, 100, limits=LIMITS, only_if=Campaign.version == 2)
    with pytest.raises(TransactionCancelled) as refused:
        transaction.commit()
    assert refused.value.failed(budget.LABEL)
    assert used() == (0, 0)


@pytest.mark.usefixtures("tables")
def test_the_snapshot_check_agrees_with_the_condition() -> None:
    publish(make_campaign())
    discount_at_checkout("ord-1", 4000)
    campaign = get_campaign(CAMPAIGN)
    assert campaign is not None
    assert not budget.would_exceed(campaign, 1000)
    assert budget.would_exceed(campaign, 1001)
    discount_at_checkout("ord-2", 1)
    discount_at_checkout("ord-3", 1)
    campaign = get_campaign(CAMPAIGN)
    assert campaign is not None
    assert budget.would_exceed(campaign, 0)  # the count cap: 3 rewards used


def test_negative_amounts_are_not_a_reservation() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        budget.reservation(-1, 1, limits=LIMITS)
    with pytest.raises(ValueError, match="non-negative"):
        budget.release(1, -1)
