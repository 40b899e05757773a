"""Campaigns table, offers side: codes, code issues, redemptions and per-customer usage.

Items (pk / sk):

- ``Code``             ``CODE#<CODE>`` / ``META``
- ``CodeGeneration``   ``OFFER#<offerId>`` / ``CODES``
- ``CodeIssue``        ``CUSTOMER#<customerId>`` / ``ISSUE#<offerId>``
- ``CustomerUsage``    ``CUSTOMER#<customerId>`` / ``USAGE#<offerId>``
- ``Redemption``       ``REDEMPTION#<redemptionId>`` / ``META``
- ``OrderRedemption``  ``ORDER#<orderId>`` / ``CODE#<CODE>``

They live next to `Offer` and `Campaign` (`functions.campaigns.models`) so that a
redemption is one TransactWrite over a single table's keys: ``ADD`` to the code's uses,
the customer's usage, the offer's total and the campaign's budget, each under its own
limit condition, plus the conditional puts of the redemption and its order guard.
Per-customer items sit in the customer's partition, not the offer's, so a popular offer
does not concentrate every customer's writes on one partition key.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
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
    "Code",
    "CodeGeneration",
    "CodeIssue",
    "CustomerUsage",
    "OrderRedemption",
    "Redemption",
    "get_code",
    "get_redemption",
    "normalize_code",
]

REDEEMED: Final = "redeemed"
ROLLED_BACK: Final = "rolled_back"


def normalize_code(code: str) -> str:
    """Codes are case-insensitive on input and stored upper-case (the contract)."""
    return code.strip().upper()


def _customer_partition(customer_id: str) -> str:
    # Customer ids are opaque: the whole rest of the key is the id, so no escaping needed.
    return f"CUSTOMER#{customer_id}"


class Code(TableModel):
    """An offer code: unique (pre-generated, issued to one customer) or shared.

    Access patterns:

    - get a code as typed at checkout: pk=``CODE#<CODE upper-case>``, sk=``META``
      (`get_code`)
    - take an unissued unique code of an offer: gsi1 pk=``OFFER#<offerId>#POOL``,
      sk=``<CODE>`` (`pool`; sparse: a code leaves the pool when issued, see `issue`).
      Codes are random, so starting the query at a random code spreads concurrent issuers
      over the pool instead of having them all race for the first one.
    - count one use: conditional ``ADD uses`` refused once ``uses`` reaches ``maxUses``
      (`use`), and give it back on rollback (`release`)
    """

    Meta = table_meta(CAMPAIGNS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = optional(UnicodeAttribute())
    gsi1sk = optional(UnicodeAttribute())
    gsi1: GlobalSecondaryIndex[Code] = global_index(CAMPAIGNS, "gsi1")

    code = UnicodeAttribute()
    offer_id = UnicodeAttribute(attr_name="offerId")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    mode = UnicodeAttribute()  # unique | shared
    uses = IntegerAttribute(default=0)
    # None: no per-code cap (a shared code is bounded by the offer's maxTotal instead).
    max_uses = optional(IntegerAttribute(attr_name="maxUses"))
    issued_to = optional(UnicodeAttribute(attr_name="issuedTo"))
    issued_at = optional(InstantAttribute(attr_name="issuedAt"))
    created_at = InstantAttribute(attr_name="createdAt")

    @staticmethod
    def key(code: str) -> tuple[str, str]:
        return f"CODE#{normalize_code(code)}", "META"

    @staticmethod
    def pool_partition(offer_id: str) -> str:
        return f"OFFER#{key_part(offer_id)}#POOL"

    def derive_keys(self) -> None:
        if self.code is not None:
            self.code = normalize_code(self.code)
            self.pk, self.sk = self.key(self.code)
        # Only an unissued unique code is in the pool (the index is sparse).
        in_pool = self.mode == "unique" and self.issued_to is None and self.offer_id is not None
        self.gsi1pk = self.pool_partition(self.offer_id) if in_pool else None
        self.gsi1sk = self.code if in_pool else None

    @classmethod
    def ref(cls, code: str) -> Code:
        """A key-only instance, for updates inside a `Transaction`."""
        return cls(code=code)

    @classmethod
    def pool(cls, offer_id: str, start_after: str | None = None, limit: int = 10) -> Iterator[Code]:
        """Unissued unique codes of an offer (gsi1, eventually consistent: `issue`'s
        condition is what guarantees a code goes to one customer only)."""
        condition = cls.gsi1sk > normalize_code(start_after) if start_after else None
        return cls.gsi1.query(cls.pool_partition(offer_id), condition, limit=limit)

    @staticmethod
    def issue(customer_id: str, at: datetime) -> tuple[list[Action], Condition]:
        """Give an unissued code to `customer_id` and take it out of the pool."""
        actions: list[Action] = [
            Code.issued_to.set(customer_id),
            Code.issued_at.set(at),
            Code.gsi1pk.remove(),
            Code.gsi1sk.remove(),
        ]
        return actions, Code.pk.exists() & Code.issued_to.does_not_exist()

    @staticmethod
    def use() -> tuple[list[Action], Condition]:
        """One more use, refused once ``uses`` reaches the stored ``maxUses``."""
        condition = Code.pk.exists() & (
            Code.max_uses.does_not_exist() | (Code.uses < Code.max_uses)
        )
        return [Code.uses.add(1)], condition

    @staticmethod
    def release() -> tuple[list[Action], Condition]:
        actions, condition = bounded_subtract(Code.uses, 1)
        return actions, Code.pk.exists() & condition


class CodeGeneration(TableModel):
    """How many unique codes have been generated for an offer, so a republish (or a retried
    publish) generates only the missing number.

    A separate item rather than a counter on the ``Offer``: every redemption updates the
    offer's ``redemptionsCount`` in a transaction, and a bulk generation touching the same
    item a thousand times would make those redemptions fail with TransactionConflict.

    Access patterns:

    - the count of an offer: pk=``OFFER#<offerId>`` (the offer's own partition, as
      ``functions.campaigns.models.Offer.key``), sk=``CODES`` (`for_offer`)
    - advance it in the same transaction as the codes it counts, conditional on the count
      the writer read (`advance`), so the count never differs from the codes stored and two
      writers cannot both fill the same gap
    """

    Meta = table_meta(CAMPAIGNS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    offer_id = UnicodeAttribute(attr_name="offerId")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    generated = IntegerAttribute(default=0)
    updated_at = optional(InstantAttribute(attr_name="updatedAt"))

    @staticmethod
    def key(offer_id: str) -> tuple[str, str]:
        return f"OFFER#{offer_id}", "CODES"

    def derive_keys(self) -> None:
        if self.offer_id is not None:
            self.pk, self.sk = self.key(self.offer_id)

    @classmethod
    def ref(cls, offer_id: str) -> CodeGeneration:
        """A key-only instance, for updates inside a `Transaction`."""
        return cls(offer_id=offer_id)

    @classmethod
    def for_offer(cls, offer_id: str) -> int:
        """Codes generated so far for the offer (0 before the first)."""
        item = cls.get_or_none(*cls.key(offer_id))
        return item.generated if item is not None else 0

    @staticmethod
    def advance(
        offer_id: str, campaign_id: str, expected: int, by: int, at: datetime
    ) -> tuple[list[Action], Condition]:
        """Move the count from `expected` to ``expected + by``; refused if it is not
        `expected` any more (another writer got there first). Creates the item at 0."""
        if expected < 0 or by < 0:
            raise ValueError(f"counts are non-negative, got expected={expected}, by={by}")
        actions: list[Action] = [
            CodeGeneration.generated.set(expected + by),
            CodeGeneration.offer_id.set(offer_id),
            CodeGeneration.campaign_id.set(campaign_id),
            CodeGeneration.updated_at.set(at),
        ]
        current = CodeGeneration.generated == expected
        if expected == 0:
            current = CodeGeneration.generated.does_not_exist() | current
        return actions, current


class CodeIssue(TableModel):
    """Which code an offer gave a customer, so asking again returns the same code.

    Access patterns:

    - the code issued to a customer for an offer: pk=``CUSTOMER#<customerId>``,
      sk=``ISSUE#<offerId>`` (`find`)
    - a customer's issued codes: query pk, sk begins_with ``ISSUE#``
    - issue once: conditional put ``attribute_not_exists(pk)``, in the same transaction
      as `Code.issue`, so a lost race leaves no half-issued code
    """

    Meta = table_meta(CAMPAIGNS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    customer_id = UnicodeAttribute(attr_name="customerId")
    offer_id = UnicodeAttribute(attr_name="offerId")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    code = UnicodeAttribute()
    mode = UnicodeAttribute()  # unique | shared
    channel = UnicodeAttribute()  # the offer's: online | in_store | both
    issued_at = InstantAttribute(attr_name="issuedAt")
    expires_at = InstantAttribute(attr_name="expiresAt")

    @staticmethod
    def key(customer_id: str, offer_id: str) -> tuple[str, str]:
        return _customer_partition(customer_id), f"ISSUE#{offer_id}"

    def derive_keys(self) -> None:
        if self.customer_id is not None and self.offer_id is not None:
            self.pk, self.sk = self.key(self.customer_id, self.offer_id)

    @classmethod
    def find(cls, customer_id: str, offer_id: str) -> CodeIssue | None:
        return cls.get_or_none(*cls.key(customer_id, offer_id))


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
        return f"ORDER#{key_part(order_id)}", f"CODE#{normalize_code(code)}"

    def derive_keys(self) -> None:
        if self.order_id is not None and self.code is not None:
            self.code = normalize_code(self.code)
            self.pk, self.sk = self.key(self.order_id, self.code)

    @classmethod
    def find(cls, order_id: str, code: str) -> OrderRedemption | None:
        return cls.get_or_none(*cls.key(order_id, code))

    @staticmethod
    def owned_by(redemption_id: str) -> Condition:
        """For the rollback's delete: only the guard this redemption created."""
        return OrderRedemption.redemption_id == redemption_id


def get_code(code: str) -> Code | None:
    """The code as typed (any case), or None."""
    return Code.get_or_none(*Code.key(code))


def get_redemption(redemption_id: str) -> Redemption | None:
    return Redemption.get_or_none(*Redemption.key(redemption_id))
