"""Wallet table: the cashback ledger and the per-customer balances it moves.

Items (pk / sk):

- ``LedgerEntry``    ``CUSTOMER#<customerId>`` / ``ENTRY#<recordedAt>#<entryId>``
- ``LedgerEntryId``  ``CUSTOMER#<customerId>`` / ``ENTRYID#<entryId>``
- ``Balance``        ``CUSTOMER#<customerId>`` / ``BALANCE#<currency>``

A customer's whole wallet is one partition, so an entry, its idempotency marker and the
balance it moves are written in one transaction (`record_entry`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Final

from pynamodb.attributes import UnicodeAttribute
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import GlobalSecondaryIndex

from functions.core.clock import instant_key
from functions.core.models import (
    InstantAttribute,
    IntegerAttribute,
    MoneyAttribute,
    TableModel,
    Transaction,
    TransactionCancelled,
    day_key,
    global_index,
    optional,
    table_meta,
)
from functions.core.money import Money
from functions.core.tables import WALLET

__all__ = [
    "AVAILABLE",
    "ENTRY_KINDS",
    "PENDING",
    "Balance",
    "LedgerEntry",
    "LedgerEntryId",
    "get_balance",
    "record_entry",
]

ENTRY_KINDS: Final = ("credit", "release", "spend", "reverse", "expire", "adjust")
PENDING: Final = "pending"
AVAILABLE: Final = "available"

_DUE_RELEASE: Final = "DUE#RELEASE#"
_DUE_EXPIRE: Final = "DUE#EXPIRE#"


def _customer_partition(customer_id: str) -> str:
    return f"CUSTOMER#{customer_id}"


class LedgerEntry(TableModel):
    """One immutable movement of cashback (signed amount) in one bucket.

    ``entryId`` is deterministic (``credit#<claimId>``, ``spend#<orderId>``,
    ``release#<creditEntryId>``...), which is what makes a retried write harmless: see
    `LedgerEntryId` and `record_entry`.

    Access patterns:

    - a customer's entries, newest first: pk=``CUSTOMER#<customerId>``, sk begins_with
      ``ENTRY#``, descending (`history`)
    - an entry by id: `find` (through its `LedgerEntryId` marker)
    - due work, by UTC day (gsi1, sparse):

      - pending entries becoming available on day D: pk=``DUE#RELEASE#<yyyy-mm-dd>``,
        sk=``<availableAt>#<entryId>`` (set while ``bucket=pending`` with ``availableAt``)
      - available credits expiring on day D: pk=``DUE#EXPIRE#<yyyy-mm-dd>``,
        sk=``<expiresAt>#<entryId>`` (set on positive ``available`` entries with
        ``expiresAt``, i.e. a release or a credit paid out at once)

      `due` queries one day up to an instant. The job records its release/expire entry
      with its own deterministic id, so re-running a day is harmless; the index item stays.
    """

    Meta = table_meta(WALLET)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = optional(UnicodeAttribute())
    gsi1sk = optional(UnicodeAttribute())
    gsi1: GlobalSecondaryIndex[LedgerEntry] = global_index(WALLET, "gsi1")

    entry_id = UnicodeAttribute(attr_name="entryId")
    customer_id = UnicodeAttribute(attr_name="customerId")
    kind = UnicodeAttribute()  # credit | release | spend | reverse | expire | adjust
    amount = MoneyAttribute()  # signed: spend, reverse and expire are negative
    bucket = UnicodeAttribute()  # pending | available
    campaign_id = optional(UnicodeAttribute(attr_name="campaignId"))
    claim_id = optional(UnicodeAttribute(attr_name="claimId"))
    order_id = optional(UnicodeAttribute(attr_name="orderId"))
    refund_id = optional(UnicodeAttribute(attr_name="refundId"))
    # The entry this one settles: the credit a release, reverse or expiry refers to.
    related_entry_id = optional(UnicodeAttribute(attr_name="relatedEntryId"))
    recorded_at = InstantAttribute(attr_name="recordedAt")
    available_at = optional(InstantAttribute(attr_name="availableAt"))
    expires_at = optional(InstantAttribute(attr_name="expiresAt"))
    note = optional(UnicodeAttribute())

    @staticmethod
    def sort_key(recorded_at: datetime, entry_id: str) -> str:
        # The entry id is last, so a '#' inside it (credit#clm_...) cannot shift the parts.
        return f"ENTRY#{instant_key(recorded_at)}#{entry_id}"

    def derive_keys(self) -> None:
        if self.customer_id is not None:
            self.pk = _customer_partition(self.customer_id)
        if self.recorded_at is not None and self.entry_id is not None:
            self.sk = self.sort_key(self.recorded_at, self.entry_id)
        self.gsi1pk = self.gsi1sk = None
        if self.bucket == PENDING and self.available_at is not None:
            self.gsi1pk = _DUE_RELEASE + day_key(self.available_at)
            self.gsi1sk = f"{instant_key(self.available_at)}#{self.entry_id}"
        elif (
            self.bucket == AVAILABLE
            and self.expires_at is not None
            and self.amount is not None
            and self.amount.amount > 0
        ):
            self.gsi1pk = _DUE_EXPIRE + day_key(self.expires_at)
            self.gsi1sk = f"{instant_key(self.expires_at)}#{self.entry_id}"

    @classmethod
    def history(cls, customer_id: str, *, limit: int | None = None) -> Iterator[LedgerEntry]:
        return cls.query(
            _customer_partition(customer_id),
            cls.sk.startswith("ENTRY#"),
            scan_index_forward=False,
            limit=limit,
            consistent_read=True,
        )

    @classmethod
    def find(cls, customer_id: str, entry_id: str) -> LedgerEntry | None:
        marker = LedgerEntryId.get_or_none(*LedgerEntryId.key(customer_id, entry_id))
        if marker is None:
            return None
        return cls.get_or_none(marker.pk, marker.entry_sk)

    @classmethod
    def due(cls, work: str, day: date | datetime, until: datetime) -> Iterator[LedgerEntry]:
        """Entries due for `work` (``release`` or ``expire``) on `day`'s UTC date, at or
        before `until` (gsi1, eventually consistent)."""
        prefix = {"release": _DUE_RELEASE, "expire": _DUE_EXPIRE}[work]
        # Everything at or before `until`: its key, then any entry id after it ('~' > id).
        return cls.gsi1.query(prefix + day_key(day), cls.gsi1sk <= f"{instant_key(until)}#~")


class LedgerEntryId(TableModel):
    """The idempotency marker of a ledger entry: ``entryId`` -> the entry's sort key.

    The entry's own key starts with the time it was recorded, which differs on a retry;
    this item's key is the deterministic id alone, so its conditional put
    (``attribute_not_exists(pk)``), in the same transaction as the entry, is what refuses
    a second credit for the same claim or a second spend for the same order.

    Access patterns:

    - an entry id's marker: pk=``CUSTOMER#<customerId>``, sk=``ENTRYID#<entryId>``
    """

    Meta = table_meta(WALLET)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    entry_id = UnicodeAttribute(attr_name="entryId")
    customer_id = UnicodeAttribute(attr_name="customerId")
    entry_sk = UnicodeAttribute(attr_name="entrySk")

    @staticmethod
    def key(customer_id: str, entry_id: str) -> tuple[str, str]:
        return _customer_partition(customer_id), f"ENTRYID#{entry_id}"

    def derive_keys(self) -> None:
        if self.customer_id is not None and self.entry_id is not None:
            self.pk, self.sk = self.key(self.customer_id, self.entry_id)


class Balance(TableModel):
    """A customer's pending and available cashback in one currency (minor units).

    Access patterns:

    - a customer's balance in a currency: pk=``CUSTOMER#<customerId>``,
      sk=``BALANCE#<currency>`` (`get_balance`)
    - all of a customer's balances: query pk, sk begins_with ``BALANCE#``
    - move money: conditional ``ADD`` on ``pendingAmount`` / ``availableAmount``
      (`change`): a decrease is refused if it would go below zero, so a spend can never
      overdraw; only an explicit adjustment may take ``available`` negative (a refund of
      cashback already spent). An upsert: the first credit creates the item.
    """

    Meta = table_meta(WALLET)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    customer_id = UnicodeAttribute(attr_name="customerId")
    currency = UnicodeAttribute()
    pending_amount = IntegerAttribute(attr_name="pendingAmount", default=0)
    available_amount = IntegerAttribute(attr_name="availableAmount", default=0)
    updated_at = optional(InstantAttribute(attr_name="updatedAt"))

    @staticmethod
    def key(customer_id: str, currency: str) -> tuple[str, str]:
        return _customer_partition(customer_id), f"BALANCE#{currency}"

    def derive_keys(self) -> None:
        if self.customer_id is not None and self.currency is not None:
            self.pk, self.sk = self.key(self.customer_id, self.currency)

    @classmethod
    def ref(cls, customer_id: str, currency: str) -> Balance:
        """A key-only instance, for updates inside a `Transaction`."""
        return cls(customer_id=customer_id, currency=currency)

    @property
    def pending(self) -> Money:
        return Money(amount=self.pending_amount or 0, currency=self.currency)

    @property
    def available(self) -> Money:
        return Money(amount=self.available_amount or 0, currency=self.currency)

    @staticmethod
    def change(
        customer_id: str,
        currency: str,
        at: datetime,
        *,
        pending: int = 0,
        available: int = 0,
        allow_negative_available: bool = False,
    ) -> tuple[list[Action], Condition | None]:
        """``ADD`` the deltas; each decrease is conditional on the bucket covering it."""
        actions: list[Action] = [
            Balance.customer_id.set(customer_id),
            Balance.currency.set(currency),
            Balance.updated_at.set(at),
        ]
        condition: Condition | None = None
        for attribute, delta, may_go_negative in (
            (Balance.pending_amount, pending, False),
            (Balance.available_amount, available, allow_negative_available),
        ):
            if delta == 0:
                continue
            actions.append(attribute.add(delta))
            if delta < 0 and not may_go_negative:
                covered = attribute >= -delta
                condition = covered if condition is None else condition & covered
        return actions, condition


def get_balance(customer_id: str, currency: str) -> Balance | None:
    return Balance.get_or_none(*Balance.key(customer_id, currency))


def record_entry(
    entry: LedgerEntry,
    *,
    pending: int = 0,
    available: int = 0,
    allow_negative_available: bool = False,
) -> bool:
    """Write `entry`, its idempotency marker and its balance change, all or nothing.

    `pending` and `available` are the deltas to the balance in the entry's currency (a
    release moves ``pending=-x, available=+x``); see `Balance.change` for the conditions.
    Returns False, writing nothing, if an entry with the same ``entryId`` was already
    recorded (a retry). Raises `TransactionCancelled` with label ``balance`` when the
    balance refuses (a spend larger than ``available``: ``insufficient_balance``).
    """
    entry.derive_keys()
    marker = LedgerEntryId(
        customer_id=entry.customer_id, entry_id=entry.entry_id, entry_sk=entry.sk
    )
    currency = entry.amount.currency
    actions, condition = Balance.change(
        entry.customer_id,
        currency,
        entry.recorded_at,
        pending=pending,
        available=available,
        allow_negative_available=allow_negative_available,
    )
    transaction = Transaction()
    transaction.put("marker", marker, condition=LedgerEntryId.pk.does_not_exist())
    transaction.put("entry", entry, condition=LedgerEntry.pk.does_not_exist())
    transaction.update(
        "balance", Balance.ref(entry.customer_id, currency), actions, condition=condition
    )
    try:
        transaction.commit()
    except TransactionCancelled as cancelled:
        if cancelled.failed("marker"):
            return False
        raise
    return True
