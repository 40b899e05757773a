"""A campaign's budget: the one counter every path that pays out spends from.

``budget: {amount, max_rewards}`` in a campaign file are hard caps on what the campaign
gives: discounts at checkout (offers), cashback credited on purchases (wallet) and
approved rebates (claims) together. They are one pair of counters on the `Campaign` item
(``budgetUsedAmount``, ``budgetUsedCount``), and this module alone says how they change:
it hands out the transaction parts (the update and its condition) that reserve or give
back an amount and a number of rewards. Each spender puts the part into its own
transaction, next to its own items, so the budget and what it pays for are written
together or not at all, and DynamoDB's condition, never a read, keeps the total under the
cap whichever path spends and however many spend at once.

::

    transaction = Transaction()
    budget.reserve(transaction, campaign_id, discount, limits=live.budget)
    transaction.put("redemption", redemption, condition=...)
    try:
        transaction.commit()
    except TransactionCancelled as cancelled:
        if cancelled.failed(budget.LABEL): ...  # over the cap, or the caps changed

A reservation names the caps its caller decided with; the condition also checks they are
still the stored ones, so a republish lowering the budget between the read and the write
cancels the write instead of overspending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pynamodb.attributes import Attribute
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from functions.campaigns.models import Campaign
from functions.core.models import Transaction, bounded_add, bounded_subtract

__all__ = [
    "LABEL",
    "BudgetLimits",
    "release",
    "release_in",
    "reservation",
    "reserve",
    "would_exceed",
]

# The transaction label of the budget's item; refusals are read back by it.
LABEL: Final = "budget"


@dataclass(frozen=True)
class BudgetLimits:
    """The caps as published (None: no cap on that counter)."""

    amount: int | None
    max_rewards: int | None


def reservation(amount: int, count: int, *, limits: BudgetLimits) -> tuple[list[Action], Condition]:
    """Add `amount` and `count` to the used counters, refused if either would pass its cap
    or the caps are no longer `limits`; for ``item.update(*reservation(...))``."""
    if amount < 0 or count < 0:
        raise ValueError(f"a reservation is non-negative, got amount={amount}, count={count}")
    amount_actions, amount_ok = bounded_add(Campaign.budget_used_amount, amount, limits.amount)
    count_actions, count_ok = bounded_add(Campaign.budget_used_count, count, limits.max_rewards)
    condition = (
        Campaign.pk.exists()
        & _same_limit(Campaign.budget_amount, limits.amount)
        & _same_limit(Campaign.budget_max_rewards, limits.max_rewards)
    )
    for part in (amount_ok, count_ok):
        if part is not None:
            condition &= part
    return amount_actions + count_actions, condition


def release(amount: int, count: int) -> tuple[list[Action], Condition]:
    """Give back a reservation (a rollback, a reversal); the counters never go below zero."""
    if amount < 0 or count < 0:
        raise ValueError(f"a release is non-negative, got amount={amount}, count={count}")
    amount_actions, amount_ok = bounded_subtract(Campaign.budget_used_amount, amount)
    count_actions, count_ok = bounded_subtract(Campaign.budget_used_count, count)
    return amount_actions + count_actions, Campaign.pk.exists() & amount_ok & count_ok


def reserve(
    transaction: Transaction,
    campaign_id: str,
    amount: int,
    count: int = 1,
    *,
    limits: BudgetLimits,
    only_if: Condition | None = None,
) -> None:
    """Add the reservation to `transaction` under `LABEL`.

    `only_if` adds the spender's own conditions on the campaign item (the version it
    decided with, that it is still active), so one refusal covers both.
    """
    actions, condition = reservation(amount, count, limits=limits)
    if only_if is not None:
        condition &= only_if
    transaction.update(LABEL, Campaign.ref(campaign_id), actions, condition)


def release_in(transaction: Transaction, campaign_id: str, amount: int, count: int = 1) -> None:
    """Add the release of an earlier reservation to `transaction` under `LABEL`."""
    transaction.update(LABEL, Campaign.ref(campaign_id), *release(amount, count))


def would_exceed(campaign: Campaign, amount: int, count: int = 1) -> bool:
    """Whether reserving now would pass a cap, as the item reads: a snapshot for answers
    that change nothing (validation); only a transaction's condition decides."""
    over_amount = (
        campaign.budget_amount is not None
        and campaign.budget_used_amount + amount > campaign.budget_amount
    )
    over_count = (
        campaign.budget_max_rewards is not None
        and campaign.budget_used_count + count > campaign.budget_max_rewards
    )
    return over_amount or over_count


def _same_limit(attribute: Attribute[int | None], limit: int | None) -> Condition:
    return attribute.does_not_exist() if limit is None else attribute == limit
