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
  `CashbackSpent`, ``reverse``: `CashbackReversed`, ``expire``: `CashbackExpired`;
- a lot modified (``CUSTOMER#<customerId>`` / ``BALANCE#<currency>#LOT#<lotId>``) whose
  ``remindedDays`` gained a day: `CashbackExpiring`, that many local days before its
  expiry, for what the lot still held (the sweep marks each reminder day once,
  `functions.wallet.models.Lot.remind`).

Every other change is no event: balances, lots, markers, counters, the sweep's watermark,
other modifications (entries are immutable; a purchase's outcomes and refunded total are
bookkeeping; a lot's money moving is announced by its entry) and ``cancel`` entries (a
spend given back has no event in the contract).

The stream delivers at least once and Lambda retries whole stretches of a shard, so an
event's id is derived from its fact (detail type, the item's key): a record delivered again
is published with the same ``eventId``, which consumers dedupe on. A ledger entry's key
ends with its entry id, which is itself derived from the business fact (the order and
campaign, the claim, the lot released...), so even a retried write that the ledger refused
as a duplicate could never announce the fact twice. A reminder's id is the lot's key and
its reminder day, which the lot's condition lets be marked only once.

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
    CashbackExpiring,
    CashbackReversed,
    CashbackSpent,
    LineItem,
    PurchaseRecorded,
    PurchaseRefunded,
)
from functions.core.money import Money
from functions.core.outbox import (
    INSERT,
    MODIFY,
    OutboxRecordError,
    begins_with,
    event_id,
    stream_image,
    string_key,
)
from functions.wallet.models import (
    BALANCE_PREFIX,
    CUSTOMER_PREFIX,
    ENTRY_PREFIX,
    ORDER_PREFIX,
    PURCHASE_SK,
    REFUND_PREFIX,
    LedgerEntry,
    Lot,
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
    | CashbackExpiring
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
_REMINDED_DAYS: Final = Lot.reminded_days.attr_name
_REMINDED_AT: Final = Lot.reminded_at.attr_name


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
    # A lot once warned keeps its mark, so its later changes pass too; `event_for` finds
    # no new day in them (patterns cannot compare the two images).
    {
        "eventName": [MODIFY],
        "dynamodb": {
            "Keys": {
                _PARTITION_KEY: begins_with(CUSTOMER_PREFIX),
                _SORT_KEY: begins_with(BALANCE_PREFIX),
            },
            "NewImage": {_REMINDED_AT: {"S": [{"exists": True}]}},
        },
    },
)


def event_for(record: Mapping[str, Any]) -> WalletEvent | None:
    """The event a DynamoDB stream record (as Lambda delivers it) stands for, if any."""
    name = record.get("eventName")
    if name not in (INSERT, MODIFY):
        return None
    change: Mapping[str, Any] = record.get("dynamodb") or {}
    keys: Mapping[str, Any] = change.get("Keys") or {}
    partition, sort = string_key(keys, _PARTITION_KEY), string_key(keys, _SORT_KEY)
    if name == MODIFY:
        if partition.startswith(CUSTOMER_PREFIX) and sort.startswith(BALANCE_PREFIX):
            return _reminder(change)
        return None
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


def _old_image(change: Mapping[str, Any]) -> dict[str, Any]:
    return stream_image(
        change, "OldImage", requirement="the Wallet table's stream must carry NEW_AND_OLD_IMAGES"
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


# -- reminders ----------------------------------------------------------------------------


def _reminder(change: Mapping[str, Any]) -> CashbackExpiring | None:
    """A balance or lot modified: a reminder when the lot's ``remindedDays`` gained a day."""
    new_image = _new_image(change)
    if _REMINDED_DAYS not in new_image:
        return None  # a balance, or a lot never warned
    after, before = Lot.from_raw_data(new_image), Lot.from_raw_data(_old_image(change))
    marked = (after.reminded_days or set()) - (before.reminded_days or set())
    if not marked:
        return None
    if len(marked) > 1:
        # `Lot.remind` marks one day per write; two at once would be two reminders in
        # one record, which cannot be published as one event.
        raise OutboxRecordError(
            f"Lot {after.pk} / {after.sk} gained several remindedDays at once: {sorted(marked)}"
        )
    days_before = int(marked.pop())
    return CashbackExpiring(
        eventId=event_id(CashbackExpiring.detail_type, after.pk, after.sk, str(days_before)),
        occurredAt=_required(after.reminded_at, "remindedAt", after),
        customerId=after.customer_id,
        entryId=credit_entry_id(after.lot_id),
        amount=Money.of(after.remaining, after.currency),
        campaignId=after.campaign_id,
        expiresAt=_required(after.expires_at, "expiresAt", after),
        daysBefore=days_before,
    )


_ENTRY_EVENTS: Final[dict[str, Callable[[LedgerEntry], WalletEvent]]] = {
    CREDIT: _credited,
    RELEASE: _available,
    SPEND: _spent,
    REVERSE: _reversed,
    EXPIRE: _expired,
}
