"""The wallet outbox: committed changes of the Wallet table, read back as wallet events.

Why an outbox. A purchase, a refund, a spend or a sweep is one transaction per fact on the
Wallet table; calling PutEvents beside it would add a call to each and could lose the event
(the process dies after the commit) or announce a write that never happened (the commit
fails after the publish). The table's stream carries every committed item as stored, so the
outbox function (`functions.wallet.handlers.outbox`) publishes from it instead:

- a purchase inserted (``ORDER#<orderId>`` / ``PURCHASE``): `PurchaseRecorded`;
- a refund inserted (``ORDER#<orderId>`` / ``REFUND#<refundId>``): `PurchaseRefunded`;
- a ledger entry inserted (``CUSTOMER#<customerId>`` / ``ENTRY#...``), by its kind:
  ``credit``: `CashbackCredited`, ``release``: `CashbackAvailable`, ``spend``:
  `CashbackSpent`, ``reverse``: `CashbackReversed`, ``expire``: `CashbackExpired`.

Every other change is no event: balances, lots, markers, counters, the sweep's watermark,
modifications (entries are immutable; a purchase's outcomes and refunded total are
bookkeeping) and ``cancel`` entries (a spend given back has no event in the contract).

The stream delivers at least once and Lambda retries whole stretches of a shard, so an
event's id is derived from its fact (detail type, the item's key): a record delivered again
is published with the same ``eventId``, which consumers dedupe on. A ledger entry's key
ends with its entry id, which is itself derived from the business fact (the order and
campaign, the claim, the lot released...), so even a retried write that the ledger refused
as a duplicate could never announce the fact twice.

Items are read back through their PynamoDB models (`functions.wallet.models`; a stream
image is the item in the DynamoDB JSON the table stores), so attribute names and types are
declared in one place. `STREAM_FILTERS` says the same cases as Lambda event filter patterns,
so the function is invoked only for them; `event_for` still decides on its own, and a
record the filters let through by mistake is ignored, never misread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias

from functions.core.event_types import (
    CashbackAvailable,
    CashbackCredited,
    CashbackExpired,
    CashbackReversed,
    CashbackSpent,
    LineItem,
    PurchaseRecorded,
    PurchaseRefunded,
)
from functions.core.money import Money
from functions.core.outbox import (
    INSERT,
    OutboxRecordError,
    begins_with,
    event_id,
    stream_image,
    string_key,
)
from functions.wallet.models import (
    CUSTOMER_PREFIX,
    ENTRY_PREFIX,
    ORDER_PREFIX,
    PURCHASE_SK,
    REFUND_PREFIX,
    LedgerEntry,
    Purchase,
    Refund,
    credit_entry_id,
)

__all__ = [
    "ENTRY_KINDS_PUBLISHED",
    "STREAM_FILTERS",
    "OutboxRecordError",
    "WalletEvent",
    "event_for",
]

WalletEvent: TypeAlias = (
    PurchaseRecorded
    | PurchaseRefunded
    | CashbackCredited
    | CashbackAvailable
    | CashbackSpent
    | CashbackReversed
    | CashbackExpired
)

# The ledger entry kinds that are events, and which.
CREDIT: Final = "credit"
RELEASE: Final = "release"
SPEND: Final = "spend"
REVERSE: Final = "reverse"
EXPIRE: Final = "expire"
ENTRY_KINDS_PUBLISHED: Final = (CREDIT, RELEASE, SPEND, REVERSE, EXPIRE)

_PARTITION_KEY: Final = LedgerEntry.pk.attr_name
_SORT_KEY: Final = LedgerEntry.sk.attr_name
_KIND: Final = LedgerEntry.kind.attr_name


# Lambda event filter patterns (EventBridge pattern syntax over the stream record), OR'ed.
STREAM_FILTERS: Final[tuple[dict[str, Any], ...]] = (
    {
        "eventName": [INSERT],
        "dynamodb": {
            "Keys": {_PARTITION_KEY: begins_with(ORDER_PREFIX), _SORT_KEY: {"S": [PURCHASE_SK]}}
        },
    },
    {
        "eventName": [INSERT],
        "dynamodb": {
            "Keys": {
                _PARTITION_KEY: begins_with(ORDER_PREFIX),
                _SORT_KEY: begins_with(REFUND_PREFIX),
            }
        },
    },
    {
        "eventName": [INSERT],
        "dynamodb": {
            "Keys": {
                _PARTITION_KEY: begins_with(CUSTOMER_PREFIX),
                _SORT_KEY: begins_with(ENTRY_PREFIX),
            },
            "NewImage": {_KIND: {"S": list(ENTRY_KINDS_PUBLISHED)}},
        },
    },
)


def event_for(record: Mapping[str, Any]) -> WalletEvent | None:
    """The event a DynamoDB stream record (as Lambda delivers it) stands for, if any."""
    if record.get("eventName") != INSERT:
        return None
    change: Mapping[str, Any] = record.get("dynamodb") or {}
    keys: Mapping[str, Any] = change.get("Keys") or {}
    partition, sort = string_key(keys, _PARTITION_KEY), string_key(keys, _SORT_KEY)
    if partition.startswith(ORDER_PREFIX):
        return _order_event(sort, change)
    if partition.startswith(CUSTOMER_PREFIX) and sort.startswith(ENTRY_PREFIX):
        image = _new_image(change)
        kind = string_key(image, _KIND)
        if kind in ENTRY_KINDS_PUBLISHED:
            return _ENTRY_EVENTS[kind](LedgerEntry.from_raw_data(image))
    return None


def _order_event(sort: str, change: Mapping[str, Any]) -> WalletEvent | None:
    """A purchase or a refund inserted into an order's partition; anything else there is
    bookkeeping."""
    if sort == PURCHASE_SK:
        return _purchase_recorded(Purchase.from_raw_data(_new_image(change)))
    if sort.startswith(REFUND_PREFIX):
        return _purchase_refunded(Refund.from_raw_data(_new_image(change)))
    return None


def _new_image(change: Mapping[str, Any]) -> dict[str, Any]:
    return stream_image(
        change, "NewImage", requirement="the Wallet table's stream must carry new images"
    )


def _required(value: Any, what: str, item: Any) -> Any:
    if value is None:
        raise OutboxRecordError(f"{type(item).__name__} {item.pk} / {item.sk} has no {what}")
    return value


# -- purchases and refunds -----------------------------------------------------------------


def _purchase_recorded(purchase: Purchase) -> PurchaseRecorded:
    currency = purchase.currency
    return PurchaseRecorded(
        eventId=event_id(PurchaseRecorded.detail_type, purchase.pk, purchase.sk),
        occurredAt=purchase.recorded_at,
        customerId=purchase.customer_id,
        orderId=purchase.order_id,
        channel=purchase.channel,
        placedAt=purchase.placed_at,
        total=Money.of(purchase.total, currency),
        items=[
            LineItem(
                sku=line.sku,
                category=line.category,
                quantity=line.quantity,
                unitPrice=Money.of(line.unit_price, currency),
            )
            for line in purchase.items
        ],
    )


def _purchase_refunded(refund: Refund) -> PurchaseRefunded:
    return PurchaseRefunded(
        eventId=event_id(PurchaseRefunded.detail_type, refund.pk, refund.sk),
        occurredAt=refund.recorded_at,
        customerId=refund.customer_id,
        orderId=refund.order_id,
        refundId=refund.refund_id,
        amount=refund.amount,
    )


# -- ledger entries ---------------------------------------------------------------------


def _entry_fields(entry: LedgerEntry, detail_type: str) -> dict[str, Any]:
    """The `WalletEntryRef` fields, identity and time every entry event carries."""
    return {
        "eventId": event_id(detail_type, entry.pk, entry.sk),
        "occurredAt": entry.recorded_at,
        "customerId": entry.customer_id,
        "entryId": entry.entry_id,
        "amount": entry.amount,
    }


def _credited(entry: LedgerEntry) -> CashbackCredited:
    return CashbackCredited(
        **_entry_fields(entry, CashbackCredited.detail_type),
        campaignId=_required(entry.campaign_id, "campaignId", entry),
        claimId=entry.claim_id,
        orderId=None if entry.claim_id is not None else entry.order_id,
        availableAt=_required(entry.available_at, "availableAt", entry),
        expiresAt=entry.expires_at,
    )


def _available(entry: LedgerEntry) -> CashbackAvailable:
    return CashbackAvailable(
        **_entry_fields(entry, CashbackAvailable.detail_type),
        campaignId=_required(entry.campaign_id, "campaignId", entry),
        expiresAt=entry.expires_at,
        availableBalance=_required(entry.available_after, "availableAfter", entry),
    )


def _spent(entry: LedgerEntry) -> CashbackSpent:
    return CashbackSpent(
        **_entry_fields(entry, CashbackSpent.detail_type),
        orderId=_required(entry.order_id, "orderId", entry),
        availableBalance=_required(entry.available_after, "availableAfter", entry),
    )


def _reversed(entry: LedgerEntry) -> CashbackReversed:
    return CashbackReversed(
        **_entry_fields(entry, CashbackReversed.detail_type),
        campaignId=_required(entry.campaign_id, "campaignId", entry),
        creditEntryId=credit_entry_id(_required(entry.lot_id, "lotId", entry)),
        orderId=_required(entry.order_id, "orderId", entry),
        refundId=_required(entry.refund_id, "refundId", entry),
        # Part of what it took back was already spent: the wallet now owes it.
        negativeAdjustment=(entry.owed_delta or 0) > 0,
    )


def _expired(entry: LedgerEntry) -> CashbackExpired:
    fields = _entry_fields(entry, CashbackExpired.detail_type)
    # The contract names the credit whose remainder expired, not the expiry entry; the
    # event id stays the expiry entry's, a fact of its own.
    fields["entryId"] = credit_entry_id(_required(entry.lot_id, "lotId", entry))
    return CashbackExpired(**fields, campaignId=_required(entry.campaign_id, "campaignId", entry))


_ENTRY_EVENTS: Final[dict[str, Callable[[LedgerEntry], WalletEvent]]] = {
    CREDIT: _credited,
    RELEASE: _available,
    SPEND: _spent,
    REVERSE: _reversed,
    EXPIRE: _expired,
}
