"""Whether a customer's wallet agrees with itself: `audit`.

It reads the customer's whole partition (consistently, page by page) and checks, with
`functions.wallet.logic.audit_differences`, that per currency the entries' deltas sum to
each balance (pending, available, owed) and the lots' remainders to pending and
available, that every lot's parts sum to what it earned, and that what active spends
drew from each lot is what the lot counts as spent. It also checks that every entry has
its marker and every marker its entry. `rebates wallet audit` and the tests use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from functions.wallet.logic import (
    AuditReport,
    BalanceFacts,
    EntryFacts,
    LotFacts,
    SpendFacts,
    audit_differences,
)
from functions.wallet.models import (
    SPENT,
    Balance,
    LedgerEntry,
    LedgerEntryId,
    Lot,
    Spend,
    customer_partition,
    partition_items,
    wallet_item,
)

__all__ = ["audit", "audit_items"]


def audit(customer_id: str) -> AuditReport:
    return audit_items(customer_id, partition_items(customer_partition(customer_id)))


def audit_items(customer_id: str, raw_items: Iterable[dict[str, Any]]) -> AuditReport:
    """The audit of the customer's partition as read (raw items, in any order)."""
    balances: list[BalanceFacts] = []
    lots: list[LotFacts] = []
    entries: list[EntryFacts] = []
    entry_keys: dict[str, str] = {}
    markers: dict[str, str] = {}
    spends: list[SpendFacts] = []
    for raw in raw_items:
        item = wallet_item(raw)
        if isinstance(item, Balance):
            balances.append(BalanceFacts(item.currency, item.pending, item.available, item.owed))
        elif isinstance(item, Lot):
            lots.append(_lot_facts(item))
        elif isinstance(item, LedgerEntry):
            entries.append(
                EntryFacts(
                    item.entry_id,
                    item.currency,
                    item.pending_delta,
                    item.available_delta,
                    item.owed_delta,
                )
            )
            entry_keys[item.entry_id] = item.sk
        elif isinstance(item, LedgerEntryId):
            markers[item.entry_id] = item.entry_sk
        elif isinstance(item, Spend):
            spends.append(
                SpendFacts(
                    item.order_id,
                    item.state == SPENT,
                    tuple((part.lot_id, part.amount) for part in item.lots),
                )
            )
    differences = audit_differences(balances, lots, entries, spends)
    for entry_id, sk in sorted(entry_keys.items()):
        if markers.get(entry_id) != sk:
            differences.append(f"entry {entry_id} has no marker pointing to it")
    for entry_id in sorted(set(markers) - set(entry_keys)):
        differences.append(f"marker {entry_id} has no entry")
    return AuditReport(customer_id, ok=not differences, differences=tuple(differences))


def _lot_facts(lot: Lot) -> LotFacts:
    return LotFacts(
        lot_id=lot.lot_id,
        campaign_id=lot.campaign_id,
        currency=lot.currency,
        state=lot.state,
        earned=lot.earned,
        remaining=lot.remaining,
        spent=lot.spent,
        settled=lot.settled,
        reversed=lot.reversed,
        expired=lot.expired,
        waived=lot.waived,
        owed=lot.owed,
    )
