"""Campaigns table, offers side: code issues, redemptions and per-customer usage.

Items (pk / sk), each written only by the offers domain:

- ``CodeIssue``        ``CUSTOMER#<customerId>`` / ``ISSUE#<offerId>``; gsi1
  ``OFFER#<offerId>#HOLDERS`` / ``<customerId>`` (the reminder sweep's way to an
  offer's holders)
- ``CustomerUsage``    ``CUSTOMER#<customerId>`` / ``USAGE#<offerId>``
- ``Redemption``       ``REDEMPTION#<redemptionId>`` / ``META``
- ``OrderRedemption``  ``ORDER#<orderId>`` / ``CODE#<CODE>``

They live next to `Campaign`, `Offer` and `Code` (owned by `functions.campaigns.models`,
which hands out the transaction parts that change them) so that a redemption is one
TransactWrite over a single table's keys: ``ADD`` to the code's uses,
the customer's usage, the offer's total and the campaign's budget, each under its own
limit condition, plus the conditional puts of the redemption and its order guard.
Per-customer items sit in the customer's partition, not the offer's, so a popular offer
does not concentrate every customer's writes on one partition key.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Final

from pynamodb.attributes import UnicodeAttribute, UnicodeSetAttribute
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import GlobalSecondaryIndex

from functions.campaigns.codes import canonical_code
from functions.core.clock import instant_key
from functions.core.models import (
    InstantAttribute,
    IntegerAttribute,
    MoneyAttribute,
    TableModel,
    TypedMap,
    bounded_add,
    bounded_subtract,
    global_index,
    key_part,
    optional,
    table_meta,
)
from functions.core.tables import CAMPAIGNS

__all__ = [
    "REDEEMED",
    "ROLLED_BACK",
    "CodeIssue",
    "CustomerUsage",
    "OrderRedemption",
    "Redemption",
    "Reminder",
    "get_redemption",
]

REDEEMED: Final = "redeemed"
ROLLED_BACK: Final = "rolled_back"


def _customer_partition(customer_id: str) -> str:
    # Customer ids are opaque: the whole rest of the key is the id, so no escaping needed.
    return f"CUSTOMER#{customer_id}"


class Reminder(TypedMap):
    """The latest reminder the sweep marked on a code issue, as `OfferExpiring` tells it:
    the offers outbox publishes the event from the change that wrote it."""

    # The campaign's local day (YYYY-MM-DD) it is for; one reminder per code per day.
    day = UnicodeAttribute()
    days_before = IntegerAttribute(attr_name="daysBefore")
    expires_at = InstantAttribute(attr_name="expiresAt")
    # The code as the offer gives it now (a shared code may have been replaced since).
    code = UnicodeAttribute()
    at = InstantAttribute()


class CodeIssue(TableModel):
    """Which code an offer gave a customer, so asking again returns the same code.

    Access patterns:

    - the code issued to a customer for an offer: pk=``CUSTOMER#<customerId>``,
      sk=``ISSUE#<offerId>`` (`find`)
    - a customer's issued codes: query pk, sk begins_with ``ISSUE#``
    - issue once: conditional put ``attribute_not_exists(pk)``, in the same transaction
      as `Code.issue`, so a lost race leaves no half-issued code
    - an offer's holders (the reminder sweep): gsi1 pk=``OFFER#<offerId>#HOLDERS``,
      sk=``<customerId>`` (`holders`; every issue is listed: whether its code was used is
      the customer's `CustomerUsage`, which a redemption writes, not this item)
    - remind once per local day: ``ADD remindedDays`` conditional on the day not being in
      it (`remind`); the change carries the `Reminder` the outbox announces
    """

    Meta = table_meta(CAMPAIGNS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = optional(UnicodeAttribute())
    gsi1sk = optional(UnicodeAttribute())
    gsi1: GlobalSecondaryIndex[CodeIssue] = global_index(CAMPAIGNS, "gsi1")

    customer_id = UnicodeAttribute(attr_name="customerId")
    offer_id = UnicodeAttribute(attr_name="offerId")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    code = UnicodeAttribute()
    mode = UnicodeAttribute()  # unique | shared
    channel = UnicodeAttribute()  # the offer's: online | in_store | both
    issued_at = InstantAttribute(attr_name="issuedAt")
    expires_at = InstantAttribute(attr_name="expiresAt")
    # The purchase this code was issued after (an offer with issue_after_purchase);
    # None when the customer asked for it.
    order_id = optional(UnicodeAttribute(attr_name="orderId"))
    # The campaign's local days a reminder was marked on, and the latest reminder (absent
    # before the first: PynamoDB types a map as always there, so read `latest_reminder`).
    reminded_days = optional(UnicodeSetAttribute(attr_name="remindedDays"))
    reminder = Reminder(null=True)

    @staticmethod
    def key(customer_id: str, offer_id: str) -> tuple[str, str]:
        return _customer_partition(customer_id), f"ISSUE#{offer_id}"

    @staticmethod
    def holders_partition(offer_id: str) -> str:
        return f"OFFER#{key_part(offer_id)}#HOLDERS"

    def derive_keys(self) -> None:
        if self.customer_id is not None and self.offer_id is not None:
            self.pk, self.sk = self.key(self.customer_id, self.offer_id)
            self.gsi1pk = self.holders_partition(self.offer_id)
            self.gsi1sk = self.customer_id

    @classmethod
    def find(cls, customer_id: str, offer_id: str) -> CodeIssue | None:
        return cls.get_or_none(*cls.key(customer_id, offer_id))

    @classmethod
    def ref(cls, customer_id: str, offer_id: str) -> CodeIssue:
        """A key-only instance, for updates inside a `Transaction`."""
        return cls(customer_id=customer_id, offer_id=offer_id)

    @classmethod
    def holders(cls, offer_id: str) -> Iterator[CodeIssue]:
        """Every issue of the offer, read from gsi1 a page at a time as iterated
        (eventually consistent: `remind`'s condition is what makes a reminder once)."""
        return cls.gsi1.query(cls.holders_partition(offer_id))

    @staticmethod
    def remind(reminder: Reminder) -> tuple[list[Action], Condition]:
        """Mark `reminder` on an existing issue, refused if its day was marked before."""
        actions: list[Action] = [
            CodeIssue.reminded_days.add({reminder.day}),
            CodeIssue.reminder.set(reminder),
        ]
        return actions, CodeIssue.pk.exists() & ~CodeIssue.reminded_days.contains(reminder.day)

    def reminded_on(self, day: str) -> bool:
        return day in (self.reminded_days or set())

    @property
    def latest_reminder(self) -> Reminder | None:
        reminder: Reminder | None = self.reminder
        return reminder


class CustomerUsage(TableModel):
    """How many times a customer has redeemed an offer (for ``usage.per_customer``).

    Access patterns:

    - a customer's usage of an offer: pk=``CUSTOMER#<customerId>``, sk=``USAGE#<offerId>``
    - count one use under the per-customer limit: conditional ``ADD uses`` that also
      creates the item on first use (`use`), and give it back on rollback (`release`)
    """

    Meta = table_meta(CAMPAIGNS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    customer_id = UnicodeAttribute(attr_name="customerId")
    offer_id = UnicodeAttribute(attr_name="offerId")
    uses = IntegerAttribute(default=0)
    updated_at = optional(InstantAttribute(attr_name="updatedAt"))

    @staticmethod
    def key(customer_id: str, offer_id: str) -> tuple[str, str]:
        return _customer_partition(customer_id), f"USAGE#{offer_id}"

    def derive_keys(self) -> None:
        if self.customer_id is not None and self.offer_id is not None:
            self.pk, self.sk = self.key(self.customer_id, self.offer_id)

    @classmethod
    def ref(cls, customer_id: str, offer_id: str) -> CustomerUsage:
        """A key-only instance, for updates inside a `Transaction`."""
        return cls(customer_id=customer_id, offer_id=offer_id)

    @staticmethod
    def use(
        customer_id: str, offer_id: str, limit: int | None, at: datetime
    ) -> tuple[list[Action], Condition | None]:
        """One more use, refused if it would pass `limit` (the offer's ``per_customer``,
        None: unlimited). An upsert: the first use creates the item with its ids."""
        actions, condition = bounded_add(CustomerUsage.uses, 1, limit)
        actions += [
            CustomerUsage.customer_id.set(customer_id),
            CustomerUsage.offer_id.set(offer_id),
            CustomerUsage.updated_at.set(at),
        ]
        return actions, condition

    @staticmethod
    def release(at: datetime) -> tuple[list[Action], Condition]:
        actions, condition = bounded_subtract(CustomerUsage.uses, 1)
        return [*actions, CustomerUsage.updated_at.set(at)], condition

    @staticmethod
    def unused() -> Condition:
        """The customer has no use of the offer counted now (none yet, or rolled back)."""
        unused: Condition = CustomerUsage.pk.does_not_exist() | (CustomerUsage.uses == 0)
        return unused


class Redemption(TableModel):
    """A code redeemed on an order, and whether it has been rolled back.

    Access patterns:

    - get a redemption by id (rollback, support): pk=``REDEMPTION#<redemptionId>``,
      sk=``META`` (`get_redemption`; strongly consistent, unlike an index)
    - a campaign's redemptions in time order (reconciliation, reports): gsi1
      pk=``CAMPAIGN#<campaignId>#REDEMPTIONS``, sk=``<redeemedAt>#<redemptionId>``
    - roll back exactly once: update conditional on ``status = redeemed`` (`roll_back`)
    - one redemption per order and code: the `OrderRedemption` guard in the same
      transaction
    """

    Meta = table_meta(CAMPAIGNS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = optional(UnicodeAttribute())
    gsi1sk = optional(UnicodeAttribute())
    gsi1: GlobalSecondaryIndex[Redemption] = global_index(CAMPAIGNS, "gsi1")

    redemption_id = UnicodeAttribute(attr_name="redemptionId")
    code = UnicodeAttribute()
    # unique: the code's own uses were counted (and a rollback gives them back); shared:
    # only the offer's, as a shared code has no cap of its own.
    code_mode = UnicodeAttribute(attr_name="codeMode", default="unique")
    offer_id = UnicodeAttribute(attr_name="offerId")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    customer_id = UnicodeAttribute(attr_name="customerId")
    order_id = UnicodeAttribute(attr_name="orderId")
    channel = UnicodeAttribute()  # online | in_store
    store_id = optional(UnicodeAttribute(attr_name="storeId"))
    discount = MoneyAttribute()
    cart_total = MoneyAttribute(attr_name="cartTotal")
    status = UnicodeAttribute(default=REDEEMED)
    redeemed_at = InstantAttribute(attr_name="redeemedAt")
    rolled_back_at = optional(InstantAttribute(attr_name="rolledBackAt"))
    rollback_reason = optional(UnicodeAttribute(attr_name="rollbackReason"))

    @staticmethod
    def key(redemption_id: str) -> tuple[str, str]:
        return f"REDEMPTION#{redemption_id}", "META"

    @staticmethod
    def campaign_partition(campaign_id: str) -> str:
        return f"CAMPAIGN#{key_part(campaign_id)}#REDEMPTIONS"

    def derive_keys(self) -> None:
        if self.redemption_id is not None:
            self.pk, self.sk = self.key(self.redemption_id)
        if self.campaign_id is not None and self.redeemed_at is not None:
            self.gsi1pk = self.campaign_partition(self.campaign_id)
            self.gsi1sk = f"{instant_key(self.redeemed_at)}#{self.redemption_id}"

    @staticmethod
    def roll_back(reason: str, at: datetime) -> tuple[list[Action], Condition]:
        """Mark rolled back, refused unless currently redeemed (so it happens once)."""
        actions: list[Action] = [
            Redemption.status.set(ROLLED_BACK),
            Redemption.rolled_back_at.set(at),
            Redemption.rollback_reason.set(reason),
        ]
        return actions, Redemption.status == REDEEMED

    @classmethod
    def for_campaign(cls, campaign_id: str, since: datetime | None = None) -> Iterator[Redemption]:
        condition = cls.gsi1sk >= instant_key(since) if since else None
        return cls.gsi1.query(cls.campaign_partition(campaign_id), condition)


class OrderRedemption(TableModel):
    """The guard that makes (order, code) redeem at most once at a time.

    Access patterns:

    - has this order redeemed this code: pk=``ORDER#<orderId>``, sk=``CODE#<CODE>``
      (`find`), pointing to the redemption
    - the codes redeemed on an order: query pk, sk begins_with ``CODE#``
    - claim: conditional put ``attribute_not_exists(pk)`` in the redemption transaction;
      a rollback deletes it (conditional on the same ``redemptionId``) so the order may
      redeem the code again, e.g. after a failed payment
    """

    Meta = table_meta(CAMPAIGNS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    order_id = UnicodeAttribute(attr_name="orderId")
    code = UnicodeAttribute()
    redemption_id = UnicodeAttribute(attr_name="redemptionId")
    created_at = InstantAttribute(attr_name="createdAt")

    @staticmethod
    def key(order_id: str, code: str) -> tuple[str, str]:
        # The code is validated [A-Z0-9_-]; the order id is the storefront's, hence escaped.
        return f"ORDER#{key_part(order_id)}", f"CODE#{canonical_code(code)}"

    def derive_keys(self) -> None:
        if self.order_id is not None and self.code is not None:
            self.code = canonical_code(self.code)
            self.pk, self.sk = self.key(self.order_id, self.code)

    @classmethod
    def find(cls, order_id: str, code: str) -> OrderRedemption | None:
        return cls.get_or_none(*cls.key(order_id, code))

    @staticmethod
    def owned_by(redemption_id: str) -> Condition:
        """For the rollback's delete: only the guard this redemption created."""
        return OrderRedemption.redemption_id == redemption_id


def get_redemption(redemption_id: str) -> Redemption | None:
    return Redemption.get_or_none(*Redemption.key(redemption_id))
