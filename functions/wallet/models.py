"""Wallet table: purchases, the cashback ledger, its lots and the balances they move.

Items (pk / sk):

- ``Balance``        ``CUSTOMER#<customerId>`` / ``BALANCE#<currency>``
- ``Lot``            ``CUSTOMER#<customerId>`` / ``BALANCE#<currency>#LOT#<lotId>``
- ``LedgerEntry``    ``CUSTOMER#<customerId>`` / ``ENTRY#<newest first>#<entryId>``
- ``LedgerEntryId``  ``CUSTOMER#<customerId>`` / ``ENTRYID#<entryId>``
- ``RewardCount``    ``CUSTOMER#<customerId>`` / ``REWARDS#<campaignId>``
- ``Spend``          ``CUSTOMER#<customerId>`` / ``SPEND#<orderId>``
- ``Purchase``       ``ORDER#<orderId>`` / ``PURCHASE``
- ``Refund``         ``ORDER#<orderId>`` / ``REFUND#<refundId>``
- ``SweepMark``      ``SWEEP`` / ``WATERMARK``

A customer's wallet is one partition, so an entry, its marker, the lots it moves and the
balance are written in one transaction. The sort keys are laid out for the two reads
that matter: a currency's balance and its lots share the prefix ``BALANCE#<currency>``
(a spend reads them with one Query), and the entries follow the balances and lots,
newest first (the wallet reads balances, lots and its first page of entries with one
Query from ``BALANCE#`` up to ``ENTRY$``). Markers, reward counts and spends sort after
the entries, out of both ranges.

A purchase and its refunds live in the order's partition: the refund route names the
order, not the customer.

Every item that moves money carries a ``version`` (balances, lots) or a count (the
purchase's ``refunds``), and every change is conditional on the one read, so a writer
knows the exact values it leaves behind (the balances an entry records, the lot's part
of the due index) and concurrent writers cannot both act on the same state.

Ids: lots and entries are named after the business fact (`order_lot_id`,
`claim_lot_id`, `credit_entry_id`, ...). Opaque ids from storefronts are escaped with
`key_part` inside them, so ``("a#b", "c")`` and ``("a", "b#c")`` never name the same lot.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from pynamodb.attributes import (
    ListAttribute,
    MapAttribute,
    NumberSetAttribute,
    UnicodeAttribute,
)
from pynamodb.exceptions import PutError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import GlobalSecondaryIndex

from functions.core.clock import instant_key
from functions.core.models import (
    InstantAttribute,
    IntegerAttribute,
    MoneyAttribute,
    TableModel,
    TypedMap,
    bounded_add,
    bounded_subtract,
    day_key,
    global_index,
    key_part,
    optional,
    table_meta,
)
from functions.core.money import Money
from functions.core.tables import WALLET

__all__ = [
    "AVAILABLE",
    "BALANCE_PREFIX",
    "CANCELLED",
    "CLOSED",
    "CUSTOMER_PREFIX",
    "DUE_EXPIRE",
    "DUE_RELEASE",
    "ENTRIES_END",
    "ENTRY_KINDS",
    "ENTRY_PREFIX",
    "EXPIRED",
    "LOT_STATES",
    "MARKER_PREFIX",
    "ORDER_PREFIX",
    "PENDING",
    "PLANNED",
    "PURCHASE_SK",
    "REFUND_PREFIX",
    "REVERSED",
    "SPENT",
    "Balance",
    "LedgerEntry",
    "LedgerEntryId",
    "Lot",
    "LotPart",
    "Purchase",
    "PurchaseItem",
    "Refund",
    "RefundItem",
    "RewardCount",
    "Spend",
    "SweepMark",
    "WalletItem",
    "cancel_entry_id",
    "claim_lot_id",
    "credit_entry_id",
    "currency_items",
    "customer_partition",
    "expire_entry_id",
    "order_items",
    "order_lot_id",
    "order_partition",
    "partition_items",
    "release_entry_id",
    "reverse_entry_id",
    "spend_entry_id",
    "wallet_item",
]

CUSTOMER_PREFIX: Final = "CUSTOMER#"
ORDER_PREFIX: Final = "ORDER#"
PURCHASE_SK: Final = "PURCHASE"
REFUND_PREFIX: Final = "REFUND#"
BALANCE_PREFIX: Final = "BALANCE#"
ENTRY_PREFIX: Final = "ENTRY#"
MARKER_PREFIX: Final = "ENTRYID#"
REWARDS_PREFIX: Final = "REWARDS#"
SPEND_PREFIX: Final = "SPEND#"
_LOT_INFIX: Final = "#LOT#"
# Just above every ``ENTRY#...`` key and below ``ENTRYID#`` ('$' follows '#').
ENTRIES_END: Final = "ENTRY$"

DUE_RELEASE: Final = "DUE#RELEASE#"
DUE_EXPIRE: Final = "DUE#EXPIRE#"

# Entry kinds. Settling what a customer owes is not an entry of its own: the credit,
# release or cancel whose money paid it records how much (``settled``).
ENTRY_KINDS: Final = ("credit", "release", "spend", "cancel", "reverse", "expire")

# Lot states: pending (not spendable yet), available (released; its remainder may be
# spent), expired (its expiry passed: the remainder was written off), closed (reversed
# whole while pending: nothing is left to release).
PENDING: Final = "pending"
AVAILABLE: Final = "available"
EXPIRED: Final = "expired"
CLOSED: Final = "closed"
LOT_STATES: Final = (PENDING, AVAILABLE, EXPIRED, CLOSED)

# Spend states.
SPENT: Final = "spent"
CANCELLED: Final = "cancelled"

# States of a lot in a refund's plan.
PLANNED: Final = "planned"
REVERSED: Final = "reversed"

# Entry keys sort newest first: the instant counted down from far in the future, in
# fixed width (microseconds since the epoch stay below 10**18 until the year 33658).
_NEWEST_FIRST_BASE: Final = 10**18 - 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _customer_partition(customer_id: str) -> str:
    # Customer ids are opaque: the whole rest of the key is the id, so no escaping needed.
    return f"{CUSTOMER_PREFIX}{customer_id}"


def _order_partition(order_id: str) -> str:
    return f"{ORDER_PREFIX}{order_id}"


def _newest_first(instant: datetime) -> str:
    micros = (instant - _EPOCH) // timedelta(microseconds=1)
    return f"{_NEWEST_FIRST_BASE - micros:018d}"


# -- ids ------------------------------------------------------------------------------


def order_lot_id(order_id: str, campaign_id: str) -> str:
    """The lot an order earns in a campaign (campaign ids have no ``#``)."""
    return f"order#{key_part(order_id)}#{campaign_id}"


def claim_lot_id(claim_id: str) -> str:
    return f"claim#{key_part(claim_id)}"


def credit_entry_id(lot_id: str) -> str:
    return f"credit#{lot_id}"


def release_entry_id(lot_id: str) -> str:
    return f"release#{lot_id}"


def expire_entry_id(lot_id: str) -> str:
    return f"expire#{lot_id}"


def spend_entry_id(order_id: str) -> str:
    return f"spend#{key_part(order_id)}"


def cancel_entry_id(order_id: str) -> str:
    return f"cancel#{key_part(order_id)}"


def reverse_entry_id(refund_id: str, lot_id: str) -> str:
    return f"reverse#{key_part(refund_id)}#{lot_id}"


# -- balances -------------------------------------------------------------------------


class Balance(TableModel):
    """A customer's cashback in one currency: ``pending``, ``available``, ``owed`` (minor
    units, each >= 0) and a ``version`` bumped by every change.

    Access patterns:

    - a currency's balance with its lots: pk=``CUSTOMER#<customerId>``, sk begins_with
      ``BALANCE#<currency>`` (one Query; the balance sorts first)
    - every balance and lot of a customer: sk begins_with ``BALANCE#``
    - move money: `change`, conditional on the version read (or on the item being absent
      for a first credit), each decrease also bounded so no bucket can go below zero;
      a credit may instead `add_blind` (no read: it only adds, and bumps the version)
    """

    Meta = table_meta(WALLET)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    customer_id = UnicodeAttribute(attr_name="customerId")
    currency = UnicodeAttribute()
    pending = IntegerAttribute(default=0)
    available = IntegerAttribute(default=0)
    owed = IntegerAttribute(default=0)
    version = IntegerAttribute(default=0)
    updated_at = optional(InstantAttribute(attr_name="updatedAt"))

    @staticmethod
    def key(customer_id: str, currency: str) -> tuple[str, str]:
        return _customer_partition(customer_id), f"{BALANCE_PREFIX}{currency}"

    def derive_keys(self) -> None:
        if self.customer_id is not None and self.currency is not None:
            self.pk, self.sk = self.key(self.customer_id, self.currency)

    @classmethod
    def ref(cls, customer_id: str, currency: str) -> Balance:
        """A key-only instance, for updates inside a `Transaction`."""
        return cls(customer_id=customer_id, currency=currency)

    @classmethod
    def empty(cls, customer_id: str, currency: str) -> Balance:
        """What a customer who never held `currency` has (version 0: not stored)."""
        return cls(customer_id=customer_id, currency=currency, pending=0, available=0, owed=0)

    def money(self, amount: int) -> Money:
        return Money.of(amount, self.currency)

    @staticmethod
    def add_blind(
        customer_id: str, currency: str, at: datetime, *, pending: int = 0, available: int = 0
    ) -> tuple[list[Action], Condition | None]:
        """``ADD`` a credit without reading the balance first (an upsert): only money
        becoming available needs a condition, that nothing is owed (else it must settle
        it first, which needs the read). The version is bumped, so a writer that read the
        balance before this credit is refused and reads again."""
        if pending < 0 or available < 0:
            raise ValueError(f"a credit only adds, got pending={pending}, available={available}")
        actions: list[Action] = [
            Balance.customer_id.set(customer_id),
            Balance.currency.set(currency),
            Balance.updated_at.set(at),
            Balance.version.add(1),
        ]
        if pending:
            actions.append(Balance.pending.add(pending))
        if not available:
            return actions, None
        actions.append(Balance.available.add(available))
        return actions, Balance.owed.does_not_exist() | (Balance.owed == 0)

    def change(
        self, at: datetime, *, pending: int = 0, available: int = 0, owed: int = 0
    ) -> tuple[list[Action], Condition, Balance]:
        """``ADD`` the deltas to this balance as read, conditional on it being unchanged;
        returns the update, its condition and the balance it leaves."""
        actions: list[Action] = [
            Balance.customer_id.set(self.customer_id),
            Balance.currency.set(self.currency),
            Balance.updated_at.set(at),
            Balance.version.add(1),
        ]
        condition = (
            Balance.pk.does_not_exist() if self.version == 0 else Balance.version == self.version
        )
        for attribute, delta in (
            (Balance.pending, pending),
            (Balance.available, available),
            (Balance.owed, owed),
        ):
            if delta > 0:
                actions.append(attribute.add(delta))
            elif delta < 0:
                decrease, covered = bounded_subtract(attribute, -delta)
                actions += decrease
                condition &= covered
        after = Balance(
            customer_id=self.customer_id,
            currency=self.currency,
            pending=self.pending + pending,
            available=self.available + available,
            owed=self.owed + owed,
            version=self.version + 1,
            updated_at=at,
        )
        # Read from a stale copy (the due index), `after` may be impossible; the
        # conditions then refuse the write, so it is never stored.
        return actions, condition, after


# -- lots -----------------------------------------------------------------------------


class Lot(TableModel):
    """One credit of cashback and what became of it.

    ``earned`` = ``remaining`` + ``spent`` + ``settled`` + ``reversed`` + ``expired``:
    ``remaining`` is still pending (state pending) or spendable (state available),
    ``settled`` went to pay what the customer owed, ``reversed`` was taken back by a
    refund from what remained. A refund taking back more than remained charges the rest:
    first against what had ``expired`` (``waived``: the customer never had it), then as
    ``owed`` (it was spent). ``waived`` and ``owed`` are outside the sum.

    Access patterns:

    - a customer's lots in a currency: with the balance (see `Balance`)
    - due work by UTC day (gsi1, sparse; `due`):

      - pending lots by ``availableAt``: pk=``DUE#RELEASE#<yyyy-mm-dd>``,
        sk=``<availableAt>#<lotId>``
      - available lots with a remainder, by ``expiresAt``: pk=``DUE#EXPIRE#<yyyy-mm-dd>``,
        sk=``<expiresAt>#<lotId>``

      The index is eventually consistent: the sweep's conditions on the lot decide.
    - lots expiring in a span of time, not yet warned some days ahead (gsi1, the expiry
      buckets above; `expiring`)
    - change: `change`, conditional on the version read; the index keys follow the state
      and remainder it leaves.
    - warn its customer once per reminder day: `remind`, conditional on the day not being
      marked yet and on something being left to expire; the stream's change of
      ``remindedDays`` is the reminder's event (`functions.wallet.outbox`).
    """

    Meta = table_meta(WALLET)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = optional(UnicodeAttribute())
    gsi1sk = optional(UnicodeAttribute())
    gsi1: GlobalSecondaryIndex[Lot] = global_index(WALLET, "gsi1")

    lot_id = UnicodeAttribute(attr_name="lotId")
    customer_id = UnicodeAttribute(attr_name="customerId")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    currency = UnicodeAttribute()
    source = UnicodeAttribute()  # order | claim
    order_id = optional(UnicodeAttribute(attr_name="orderId"))
    claim_id = optional(UnicodeAttribute(attr_name="claimId"))
    state = UnicodeAttribute()
    earned = IntegerAttribute()
    remaining = IntegerAttribute(default=0)
    spent = IntegerAttribute(default=0)
    settled = IntegerAttribute(default=0)
    reversed = IntegerAttribute(default=0)
    expired = IntegerAttribute(default=0)
    waived = IntegerAttribute(default=0)
    owed = IntegerAttribute(default=0)
    credited_at = InstantAttribute(attr_name="creditedAt")
    available_at = InstantAttribute(attr_name="availableAt")
    expires_at = optional(InstantAttribute(attr_name="expiresAt"))
    version = IntegerAttribute(default=1)
    # The campaign's time zone, whose local days its availability and expiry were counted
    # in (absent on lots credited before lots kept it: theirs are UTC days).
    timezone = optional(UnicodeAttribute())
    # How many local days before its expiry its customer was warned (each reminder day
    # once), and when last.
    reminded_days = optional(NumberSetAttribute(attr_name="remindedDays"))
    reminded_at = optional(InstantAttribute(attr_name="remindedAt"))

    @staticmethod
    def key(customer_id: str, currency: str, lot_id: str) -> tuple[str, str]:
        pk, balance_sk = Balance.key(customer_id, currency)
        return pk, f"{balance_sk}{_LOT_INFIX}{lot_id}"

    @staticmethod
    def due_keys(
        lot_id: str,
        state: str,
        remaining: int,
        available_at: datetime,
        expires_at: datetime | None,
    ) -> tuple[str, str] | None:
        """The lot's gsi1 keys for this state and remainder (None: nothing is due)."""
        if remaining <= 0:
            return None
        if state == PENDING:
            return DUE_RELEASE + day_key(available_at), f"{instant_key(available_at)}#{lot_id}"
        if state == AVAILABLE and expires_at is not None:
            return DUE_EXPIRE + day_key(expires_at), f"{instant_key(expires_at)}#{lot_id}"
        return None

    def derive_keys(self) -> None:
        if self.customer_id is not None and self.currency is not None and self.lot_id:
            self.pk, self.sk = self.key(self.customer_id, self.currency, self.lot_id)
        if self.state is not None and self.available_at is not None:
            keys = self.due_keys(
                self.lot_id, self.state, self.remaining or 0, self.available_at, self.expires_at
            )
            self.gsi1pk, self.gsi1sk = keys if keys is not None else (None, None)

    @classmethod
    def ref(cls, customer_id: str, currency: str, lot_id: str) -> Lot:
        return cls(customer_id=customer_id, currency=currency, lot_id=lot_id)

    def parts_sum(self) -> int:
        return self.remaining + self.spent + self.settled + self.reversed + self.expired

    def change(
        self,
        *,
        state: str | None = None,
        remaining: int = 0,
        spent: int = 0,
        settled: int = 0,
        reversed: int = 0,
        expired: int = 0,
        waived: int = 0,
        owed: int = 0,
    ) -> tuple[list[Action], Condition, Lot]:
        """Move this lot (as read) by the deltas, conditional on its version; a decrease is
        also bounded, so a part never goes below zero. Returns the update, its condition
        and the lot it leaves."""
        condition: Condition = Lot.version == self.version
        actions: list[Action] = [Lot.version.add(1)]
        for attribute, delta in (
            (Lot.remaining, remaining),
            (Lot.spent, spent),
            (Lot.settled, settled),
            (Lot.reversed, reversed),
            (Lot.expired, expired),
            (Lot.waived, waived),
            (Lot.owed, owed),
        ):
            if delta > 0:
                increase, _ = bounded_add(attribute, delta, None)
                actions += increase
            elif delta < 0:
                decrease, covered = bounded_subtract(attribute, -delta)
                actions += decrease
                condition &= covered
        new_state = state or self.state
        if new_state != self.state:
            actions.append(Lot.state.set(new_state))
        moved = Lot(
            **{
                **self.attribute_values,
                "state": new_state,
                "remaining": self.remaining + remaining,
                "spent": self.spent + spent,
                "settled": self.settled + settled,
                "reversed": self.reversed + reversed,
                "expired": self.expired + expired,
                "waived": self.waived + waived,
                "owed": self.owed + owed,
                "version": self.version + 1,
            }
        )
        if moved.gsi1pk is None or moved.gsi1sk is None:
            actions += [Lot.gsi1pk.remove(), Lot.gsi1sk.remove()]
        else:
            actions += [Lot.gsi1pk.set(moved.gsi1pk), Lot.gsi1sk.set(moved.gsi1sk)]
        return actions, condition, moved

    @staticmethod
    def remind(days_before: int, at: datetime) -> tuple[list[Action], Condition]:
        """Mark the customer warned `days_before` days ahead of the expiry; refused if they
        already were, or if nothing is left to expire (spent, reversed, expired). The
        version stays as it is: a reminder moves no money, so a spend that read the lot
        just before still commits."""
        actions: list[Action] = [Lot.reminded_days.add({days_before}), Lot.reminded_at.set(at)]
        condition = (
            (Lot.state == AVAILABLE)
            & (Lot.remaining > 0)
            & ~Lot.reminded_days.contains(days_before)
        )
        return actions, condition

    @classmethod
    def expiring(
        cls, day: date, after: datetime, before: datetime, *, not_reminded: int
    ) -> Iterator[Lot]:
        """Lots in `day`'s expiry bucket (`DUE_EXPIRE`) expiring from `after` to `before`
        whose customer was not yet warned `not_reminded` days ahead (gsi1: eventually
        consistent)."""
        return cls.gsi1.query(
            DUE_EXPIRE + day_key(day),
            cls.gsi1sk.between(instant_key(after), instant_key(before)),
            filter_condition=~cls.reminded_days.contains(not_reminded),
        )

    @classmethod
    def due(cls, prefix: str, day: date, until: datetime) -> Iterator[Lot]:
        """Lots in `prefix`'s day bucket (`DUE_RELEASE` or `DUE_EXPIRE`) due at or before
        `until` (gsi1: eventually consistent)."""
        bound = instant_key(until + timedelta(microseconds=1))
        return cls.gsi1.query(prefix + day_key(day), cls.gsi1sk < bound)


# -- ledger entries -------------------------------------------------------------------


class LotPart(TypedMap):
    """One lot's share of an entry (positive), and of a cancel: the part that expired at
    once (its lot's expiry had passed) and the part that settled owed."""

    lot_id = UnicodeAttribute(attr_name="lotId")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    amount = IntegerAttribute()
    expired = optional(IntegerAttribute())
    settled = optional(IntegerAttribute())


class LedgerEntry(TableModel):
    """One immutable movement of a customer's cashback, with everything the events need.

    ``entryId`` names the business fact (``credit#order#<orderId>#<campaignId>``,
    ``credit#claim#<claimId>``, ``release#<lotId>``, ``expire#<lotId>``,
    ``spend#<orderId>``, ``cancel#<orderId>``, ``reverse#<refundId>#<lotId>``); its
    `LedgerEntryId` marker, put in the same transaction, makes a second write of the
    same fact fail as a whole. ``amount`` is the positive amount the entry concerns; the
    signed deltas say what it did to each bucket (``settled``: of the money that became
    available, how much paid what was owed), and the ``*_after`` fields are the balance
    it left, exact because the balance's version is a condition of the write (a credit
    that only adds is written without reading the balance, and has none).

    Access patterns:

    - a customer's entries, newest first: pk=``CUSTOMER#<customerId>``, sk begins_with
      ``ENTRY#`` ascending (the key counts time down); the first page comes with the
      balances and lots (`Balance`), later pages start after the last key read
    - an entry by id: through its marker (`LedgerEntryId.entry_sk`)
    - written once, in the transaction of the change it records; never updated
    """

    Meta = table_meta(WALLET)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    entry_id = UnicodeAttribute(attr_name="entryId")
    customer_id = UnicodeAttribute(attr_name="customerId")
    kind = UnicodeAttribute()
    amount = MoneyAttribute()
    pending_delta = IntegerAttribute(attr_name="pendingDelta", default=0)
    available_delta = IntegerAttribute(attr_name="availableDelta", default=0)
    owed_delta = IntegerAttribute(attr_name="owedDelta", default=0)
    settled = IntegerAttribute(default=0)
    lots = ListAttribute(of=LotPart, default=list)
    # Absent on a credit written without reading the balance (`Balance.add_blind`).
    pending_after = optional(MoneyAttribute(attr_name="pendingAfter"))
    available_after = optional(MoneyAttribute(attr_name="availableAfter"))
    owed_after = optional(MoneyAttribute(attr_name="owedAfter"))
    # The lot of a single-lot entry (credit, release, reverse, expire), and its campaign.
    lot_id = optional(UnicodeAttribute(attr_name="lotId"))
    campaign_id = optional(UnicodeAttribute(attr_name="campaignId"))
    order_id = optional(UnicodeAttribute(attr_name="orderId"))
    claim_id = optional(UnicodeAttribute(attr_name="claimId"))
    refund_id = optional(UnicodeAttribute(attr_name="refundId"))
    # The lot's, for the credited and available events.
    available_at = optional(InstantAttribute(attr_name="availableAt"))
    expires_at = optional(InstantAttribute(attr_name="expiresAt"))
    recorded_at = InstantAttribute(attr_name="recordedAt")

    @staticmethod
    def sort_key(recorded_at: datetime, entry_id: str) -> str:
        # The entry id is last, so a '#' inside it cannot shift the parts.
        return f"{ENTRY_PREFIX}{_newest_first(recorded_at)}#{entry_id}"

    def derive_keys(self) -> None:
        if self.customer_id is not None:
            self.pk = _customer_partition(self.customer_id)
        if self.recorded_at is not None and self.entry_id is not None:
            self.sk = self.sort_key(self.recorded_at, self.entry_id)

    @property
    def currency(self) -> str:
        return self.amount.currency

    @property
    def credit_entry_id(self) -> str | None:
        """The entry that credited this entry's lot (single-lot entries)."""
        return credit_entry_id(self.lot_id) if self.lot_id is not None else None

    def marker(self) -> LedgerEntryId:
        self.derive_keys()
        return LedgerEntryId(customer_id=self.customer_id, entry_id=self.entry_id, entry_sk=self.sk)


class LedgerEntryId(TableModel):
    """The marker of a ledger entry: ``entryId`` -> the entry's sort key.

    The entry's own key starts with the time it was recorded, which differs on a retry;
    this key is the deterministic id alone, so its conditional put
    (``attribute_not_exists(pk)``), in the entry's transaction, refuses a second write
    of the same fact.

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
        return _customer_partition(customer_id), f"{MARKER_PREFIX}{entry_id}"

    def derive_keys(self) -> None:
        if self.customer_id is not None and self.entry_id is not None:
            self.pk, self.sk = self.key(self.customer_id, self.entry_id)

    @classmethod
    def find_entry(cls, customer_id: str, entry_id: str) -> LedgerEntry | None:
        marker = cls.get_or_none(*cls.key(customer_id, entry_id))
        if marker is None:
            return None
        return LedgerEntry.get_or_none(marker.pk, marker.entry_sk)


# -- per-customer reward counts -------------------------------------------------------


class RewardCount(TableModel):
    """How many purchase rewards a customer holds in a campaign (``limits.per_customer``).

    Access patterns:

    - a customer's count in a campaign: pk=``CUSTOMER#<customerId>``,
      sk=``REWARDS#<campaignId>``
    - one more, refused at the limit: `one_more` (an upsert), in the credit's
      transaction; one fewer when a refund reverses the reward whole: `one_fewer`
    """

    Meta = table_meta(WALLET)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    customer_id = UnicodeAttribute(attr_name="customerId")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    rewards = IntegerAttribute(default=0)
    updated_at = optional(InstantAttribute(attr_name="updatedAt"))

    @staticmethod
    def key(customer_id: str, campaign_id: str) -> tuple[str, str]:
        return _customer_partition(customer_id), f"{REWARDS_PREFIX}{campaign_id}"

    def derive_keys(self) -> None:
        if self.customer_id is not None and self.campaign_id is not None:
            self.pk, self.sk = self.key(self.customer_id, self.campaign_id)

    @classmethod
    def ref(cls, customer_id: str, campaign_id: str) -> RewardCount:
        return cls(customer_id=customer_id, campaign_id=campaign_id)

    @staticmethod
    def one_more(
        customer_id: str, campaign_id: str, limit: int | None, at: datetime
    ) -> tuple[list[Action], Condition | None]:
        actions, condition = bounded_add(RewardCount.rewards, 1, limit)
        actions += [
            RewardCount.customer_id.set(customer_id),
            RewardCount.campaign_id.set(campaign_id),
            RewardCount.updated_at.set(at),
        ]
        return actions, condition

    @staticmethod
    def one_fewer(at: datetime) -> tuple[list[Action], Condition]:
        actions, condition = bounded_subtract(RewardCount.rewards, 1)
        return [*actions, RewardCount.updated_at.set(at)], condition


# -- spends ---------------------------------------------------------------------------


class Spend(TableModel):
    """Cashback spent on an order, the lots it drew from, and whether it was cancelled.

    Access patterns:

    - a customer's spend on an order: pk=``CUSTOMER#<customerId>``,
      sk=``SPEND#<orderId>`` (`find`)
    - spend once per order: conditional put ``attribute_not_exists(pk)``
    - cancel once: update conditional on ``state = spent``
    """

    Meta = table_meta(WALLET)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    customer_id = UnicodeAttribute(attr_name="customerId")
    order_id = UnicodeAttribute(attr_name="orderId")
    amount = MoneyAttribute()
    lots = ListAttribute(of=LotPart, default=list)
    state = UnicodeAttribute(default=SPENT)
    available_after = MoneyAttribute(attr_name="availableAfter")
    spent_at = InstantAttribute(attr_name="spentAt")
    cancelled_at = optional(InstantAttribute(attr_name="cancelledAt"))

    @staticmethod
    def key(customer_id: str, order_id: str) -> tuple[str, str]:
        return _customer_partition(customer_id), f"{SPEND_PREFIX}{key_part(order_id)}"

    def derive_keys(self) -> None:
        if self.customer_id is not None and self.order_id is not None:
            self.pk, self.sk = self.key(self.customer_id, self.order_id)

    @classmethod
    def find(cls, customer_id: str, order_id: str) -> Spend | None:
        return cls.get_or_none(*cls.key(customer_id, order_id))

    @property
    def spend_id(self) -> str:
        return spend_entry_id(self.order_id)


# -- purchases and refunds ------------------------------------------------------------


def _raw_map(attr_name: str | None = None) -> MapAttribute[str, Any]:
    """A map with keys chosen at run time (campaign ids, skus, lot ids), empty by default."""
    if attr_name is None:
        return MapAttribute(default=dict)  # type: ignore[no-untyped-call]
    return MapAttribute(attr_name=attr_name, default=dict)  # type: ignore[no-untyped-call]


def _plain(value: MapAttribute[str, Any] | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(value, MapAttribute):
        plain: Mapping[str, Any] = value.as_dict()  # type: ignore[no-untyped-call]
        return plain
    return value


class PurchaseItem(TypedMap):
    sku = UnicodeAttribute()
    category = optional(UnicodeAttribute())
    quantity = IntegerAttribute()
    unit_price = IntegerAttribute(attr_name="unitPrice")


class Purchase(TableModel):
    """A purchase as the storefront recorded it, what it earned and how much was refunded.

    ``earnings`` maps each active cashback campaign to its outcome: ``{"outcome":
    "credited", "amount", "lotId", "availableAt", "expiresAt"?}``, a reason code
    (``{"outcome": "budget_exhausted"}``), or ``crediting``: decided, its credit not yet
    committed (a crash in between; a replay of the purchase or a refund finishes it).
    A crediting earning keeps what its credit needs (``campaignVersion``,
    ``perCustomer``), so finishing it credits what was decided.

    Access patterns:

    - a purchase and its refunds: pk=``ORDER#<orderId>`` (one Query); the purchase:
      sk=``PURCHASE``
    - recorded once: its put (``attribute_not_exists(pk)``) is in the transaction of the
      first credit it earns, or alone when it earns nothing
    - an earning becomes final in its credit's transaction, conditional on it still being
      ``crediting``
    - a refund grows ``refunded`` and ``refunds`` in the refund's transaction,
      conditional on ``refunds`` being the count read, so refunds are ordered and each
      knows the cumulative total before it
    """

    Meta = table_meta(WALLET)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    order_id = UnicodeAttribute(attr_name="orderId")
    customer_id = UnicodeAttribute(attr_name="customerId")
    channel = UnicodeAttribute()
    placed_at = InstantAttribute(attr_name="placedAt")
    currency = UnicodeAttribute()
    items = ListAttribute(of=PurchaseItem)
    total = IntegerAttribute()
    refunded = IntegerAttribute(default=0)
    refunds = IntegerAttribute(default=0)
    refunded_items = _raw_map(attr_name="refundedItems")
    earnings = _raw_map()
    fingerprint = UnicodeAttribute()
    recorded_at = InstantAttribute(attr_name="recordedAt")

    @staticmethod
    def key(order_id: str) -> tuple[str, str]:
        return _order_partition(order_id), PURCHASE_SK

    def derive_keys(self) -> None:
        if self.order_id is not None:
            self.pk, self.sk = self.key(self.order_id)

    @classmethod
    def ref(cls, order_id: str) -> Purchase:
        return cls(order_id=order_id)

    def earnings_dict(self) -> dict[str, dict[str, Any]]:
        return {campaign: dict(earning) for campaign, earning in _plain(self.earnings).items()}

    def refunded_items_dict(self) -> dict[str, int]:
        return {sku: int(quantity) for sku, quantity in _plain(self.refunded_items).items()}

    @staticmethod
    def settle_earning(
        campaign_id: str, earning: Mapping[str, Any]
    ) -> tuple[list[Action], Condition]:
        """Make a crediting earning final, refused unless it is still crediting."""
        path = Purchase.earnings[campaign_id]
        return [path.set(dict(earning))], path["outcome"] == "crediting"

    def refund_actions(
        self, amount: int, refunded_items: Mapping[str, int]
    ) -> tuple[list[Action], Condition]:
        """Count a refund of `amount` on this purchase as read; refused if another refund
        was counted since or the total would be passed."""
        actions: list[Action] = [
            Purchase.refunded.add(amount),
            Purchase.refunds.add(1),
            Purchase.refunded_items.set(dict(refunded_items)),
        ]
        current = (
            Purchase.refunds.does_not_exist() | (Purchase.refunds == 0)
            if self.refunds == 0
            else Purchase.refunds == self.refunds
        )
        within = Purchase.refunded <= self.total - amount
        return actions, Purchase.pk.exists() & current & within


class RefundItem(TypedMap):
    sku = UnicodeAttribute()
    quantity = IntegerAttribute()


class Refund(TableModel):
    """A refund of part or all of an order, and its plan: what each lot the order earned
    gives back because of it.

    ``refundedBefore``/``refundedAfter`` are the order's cumulative refunded total around
    this refund (fixed when it is recorded), so each lot's reversal is
    ``keep(before) - keep(after)`` whatever order the reversals are applied in. ``plan``
    maps each lot id to ``{"campaignId", "amount", "whole", "state": "planned"}``; the
    lot's reversal sets ``state`` to ``reversed`` with ``reversed`` and ``owed``, in its own
    transaction.

    Access patterns:

    - with its purchase (see `Purchase`); one refund: sk=``REFUND#<refundId>``
    - recorded once: conditional put, in the transaction that counts it on the purchase
    - a lot reversed once: update of ``plan.<lotId>`` conditional on ``planned``
    """

    Meta = table_meta(WALLET)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    refund_id = UnicodeAttribute(attr_name="refundId")
    order_id = UnicodeAttribute(attr_name="orderId")
    customer_id = UnicodeAttribute(attr_name="customerId")
    amount = MoneyAttribute()
    items = optional(ListAttribute(of=RefundItem))
    refunded_before = IntegerAttribute(attr_name="refundedBefore")
    refunded_after = IntegerAttribute(attr_name="refundedAfter")
    plan = _raw_map()
    fingerprint = UnicodeAttribute()
    recorded_at = InstantAttribute(attr_name="recordedAt")

    @staticmethod
    def key(order_id: str, refund_id: str) -> tuple[str, str]:
        return _order_partition(order_id), f"{REFUND_PREFIX}{refund_id}"

    def derive_keys(self) -> None:
        if self.order_id is not None and self.refund_id is not None:
            self.pk, self.sk = self.key(self.order_id, self.refund_id)

    @classmethod
    def ref(cls, order_id: str, refund_id: str) -> Refund:
        return cls(order_id=order_id, refund_id=refund_id)

    def plan_dict(self) -> dict[str, dict[str, Any]]:
        return {lot_id: dict(step) for lot_id, step in _plain(self.plan).items()}

    @staticmethod
    def reverse_step(lot_id: str, step: Mapping[str, Any]) -> tuple[list[Action], Condition]:
        path = Refund.plan[lot_id]
        return [path.set(dict(step))], path["state"] == PLANNED


# -- reading a partition --------------------------------------------------------------

WalletItem = Balance | Lot | LedgerEntry | LedgerEntryId | RewardCount | Spend | Purchase | Refund

_BY_PREFIX: Final[tuple[tuple[str, type[WalletItem]], ...]] = (
    # Longest prefixes first: a lot's key starts with its balance's.
    (ENTRY_PREFIX, LedgerEntry),
    (MARKER_PREFIX, LedgerEntryId),
    (REWARDS_PREFIX, RewardCount),
    (SPEND_PREFIX, Spend),
    (REFUND_PREFIX, Refund),
)


def wallet_item(raw: dict[str, Any]) -> WalletItem:
    """The model of a raw item of a customer's or an order's partition, by its sort key."""
    sk: str = raw["sk"]["S"]
    if sk == PURCHASE_SK:
        return Purchase.from_raw_data(raw)
    if sk.startswith(BALANCE_PREFIX):
        return (Lot if _LOT_INFIX in sk else Balance).from_raw_data(raw)
    for prefix, model in _BY_PREFIX:
        if sk.startswith(prefix):
            return model.from_raw_data(raw)
    raise ValueError(f"no wallet item has the sort key {sk!r}")


def partition_items(
    pk: str,
    range_condition: Condition | None = None,
    *,
    start_after: dict[str, Any] | None = None,
    page_size: int | None = None,
) -> Iterator[dict[str, Any]]:
    """The raw items of partition `pk` in sort key order, strongly consistent, one Query
    per page fetched as iteration reaches it (several item types share a partition, so
    no single model's query fits)."""
    connection = Balance._get_connection()
    last = start_after
    while True:
        page = connection.query(
            pk,
            range_key_condition=range_condition,
            consistent_read=True,
            exclusive_start_key=last,
            limit=page_size,
        )
        yield from page.get("Items", [])
        last = page.get("LastEvaluatedKey")
        if not last:
            return


def customer_partition(customer_id: str) -> str:
    return _customer_partition(customer_id)


def order_partition(order_id: str) -> str:
    return _order_partition(order_id)


def order_items(order_id: str) -> tuple[Purchase | None, list[Refund]]:
    """The purchase and its refunds, as stored now (one Query)."""
    purchase: Purchase | None = None
    refunds: list[Refund] = []
    for raw in partition_items(_order_partition(order_id)):
        item = wallet_item(raw)
        if isinstance(item, Purchase):
            purchase = item
        elif isinstance(item, Refund):
            refunds.append(item)
    return purchase, refunds


def currency_items(customer_id: str, currency: str) -> tuple[Balance | None, list[Lot]]:
    """A customer's balance in `currency` and its lots, as stored now (one Query)."""
    pk, balance_sk = Balance.key(customer_id, currency)
    balance: Balance | None = None
    lots: list[Lot] = []
    for raw in partition_items(pk, Balance.sk.startswith(balance_sk)):
        item = wallet_item(raw)
        if isinstance(item, Balance):
            balance = item
        elif isinstance(item, Lot):
            lots.append(item)
    return balance, lots


# -- the sweep's watermark ------------------------------------------------------------


class SweepMark(TableModel):
    """The last UTC day whose due lots the sweep has all moved: the next run scans from
    the day after, so days it did not run are never skipped.

    Access patterns:

    - the watermark: pk=``SWEEP``, sk=``WATERMARK`` (`current`)
    - advance it: `advance`, conditional on it only ever moving forward (two sweeps may
      overlap)
    """

    Meta = table_meta(WALLET)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    completed_through = UnicodeAttribute(attr_name="completedThrough")  # YYYY-MM-DD
    updated_at = InstantAttribute(attr_name="updatedAt")

    KEY: Final = ("SWEEP", "WATERMARK")

    def derive_keys(self) -> None:
        self.pk, self.sk = self.KEY

    @classmethod
    def current(cls) -> date | None:
        mark = cls.get_or_none(*cls.KEY)
        return date.fromisoformat(mark.completed_through) if mark is not None else None

    @classmethod
    def advance(cls, day: date, at: datetime) -> bool:
        """Record `day` as completed unless a later day already is; False if it was."""
        mark = cls(completed_through=day.isoformat(), updated_at=at)
        condition = cls.pk.does_not_exist() | (cls.completed_through < day.isoformat())
        try:
            mark.save(condition=condition)
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True
