"""Analytics table: per campaign per day counters, and the markers that make them exact.

Items (pk / sk):

- ``DailyCounter``     ``CAMPAIGN#<campaignId>`` / ``DAY#<yyyy-mm-dd>``
- ``DailyAmounts``     ``CAMPAIGN#<campaignId>`` / ``AMOUNTS#<yyyy-mm-dd>#<currency>``
- ``DailyBreakdown``   ``CAMPAIGN#<campaignId>`` /
  ``BREAKDOWN#<yyyy-mm-dd>#<dimension>#<value>#<currency>``
- ``CampaignCustomer`` ``CAMPAIGN#<campaignId>`` / ``CUSTOMER#<customerKey>``   (first order)
- ``SeenEvent``        ``EVENT#<eventId>`` / ``SEEN``                          (TTL ``expiresAt``)
- ``SessionState``     ``SESSION#<sessionId>`` / ``CAMPAIGN#<campaignId>``     (TTL)
- ``VisitorTouch``     ``VISITOR#<anonymousId>`` / ``TOUCH#<epoch ms>#<eventId>`` (TTL)
- ``CustomerChannel``  ``CUSTOMER#<customerKey>`` / ``CHANNEL#<campaignId>``    (TTL)
- ``CreditChannel``    ``CREDIT#<entryId>`` / ``CHANNEL``                      (TTL)
- ``OrderFact``        ``ORDER#<orderId>`` /
  ``TOTAL`` | ``TIE#<campaignId>`` | ``COUNTED#<campaignId>``  (TTL)

Counting an event exactly once is one transaction: the conditional put of its
`SeenEvent` plus the ``ADD`` updates of the counters it moves (and the conditional
write of its session's state). A replayed event fails the put and the whole
transaction, so nothing is counted twice; a crash between steps cannot leave a marker
without its counts, or counts without their marker. What an event does besides (a
touch, an order fact) is keyed so that doing it twice is doing it once, and is done
before that transaction, so a retry after a crash finds it done or does it.

The day is the campaign's local date, computed by the consumer and passed as a `date`.
Money sums live in their own item per currency (`DailyAmounts`) because DynamoDB cannot
``ADD`` into a map entry that does not exist yet, and an event's currency is only known
when it arrives.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Final

from pynamodb.attributes import TTLAttribute, UnicodeAttribute
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from functions.core.models import (
    InstantAttribute,
    IntegerAttribute,
    TableModel,
    day_key,
    key_part,
    optional,
    table_meta,
)
from functions.core.tables import ANALYTICS

__all__ = [
    "CampaignCustomer",
    "CreditChannel",
    "CustomerChannel",
    "DailyAmounts",
    "DailyBreakdown",
    "DailyCounter",
    "OrderFact",
    "SeenEvent",
    "SessionState",
    "VisitorTouch",
]


def _campaign_partition(campaign_id: str) -> str:
    return f"CAMPAIGN#{campaign_id}"


def _add_actions(
    model: type[TableModel], fields: tuple[str, ...], deltas: dict[str, int]
) -> list[Action]:
    unknown = set(deltas) - set(fields)
    if unknown:
        raise ValueError(f"{model.__name__} has no counter(s) {sorted(unknown)}")
    attributes = model.get_attributes()
    return [attributes[name].add(delta) for name, delta in deltas.items() if delta]


class DailyCounter(TableModel):
    """How many of each thing happened for a campaign on a day.

    Access patterns:

    - one day: pk=``CAMPAIGN#<campaignId>``, sk=``DAY#<yyyy-mm-dd>``
    - a date range (the stats query): query pk, sk between ``DAY#<from>`` and ``DAY#<to>``
      (`between`)
    - count: atomic ``ADD`` of each delta (`increment`), an upsert, inside the
      transaction that puts the event's `SeenEvent`
    """

    Meta = table_meta(ANALYTICS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    campaign_id = UnicodeAttribute(attr_name="campaignId")
    day = UnicodeAttribute()
    impressions = IntegerAttribute(default=0)
    page_views = IntegerAttribute(attr_name="pageViews", default=0)
    offer_views = IntegerAttribute(attr_name="offerViews", default=0)
    sessions = IntegerAttribute(default=0)
    add_to_carts = IntegerAttribute(attr_name="addToCarts", default=0)
    checkouts = IntegerAttribute(default=0)
    purchases = IntegerAttribute(default=0)
    conversions = IntegerAttribute(default=0)
    signups = IntegerAttribute(default=0)
    codes_issued = IntegerAttribute(attr_name="codesIssued", default=0)
    redemptions = IntegerAttribute(default=0)
    redemptions_rolled_back = IntegerAttribute(attr_name="redemptionsRolledBack", default=0)
    claims_submitted = IntegerAttribute(attr_name="claimsSubmitted", default=0)
    claims_approved = IntegerAttribute(attr_name="claimsApproved", default=0)
    claims_rejected = IntegerAttribute(attr_name="claimsRejected", default=0)
    rewards_credited = IntegerAttribute(attr_name="rewardsCredited", default=0)
    rewards_reversed = IntegerAttribute(attr_name="rewardsReversed", default=0)
    orders = IntegerAttribute(default=0)
    new_customers = IntegerAttribute(attr_name="newCustomers", default=0)
    # Sessions with exactly one page view, and the sum of session lengths (ms): the
    # session's day carries both, however long it lasts.
    bounces = IntegerAttribute(default=0)
    session_ms = IntegerAttribute(attr_name="sessionMs", default=0)
    # Sessions reaching each funnel step (functions.analytics.logic.FUNNEL).
    funnel_offer_view = IntegerAttribute(attr_name="funnelOfferView", default=0)
    funnel_add_to_cart = IntegerAttribute(attr_name="funnelAddToCart", default=0)
    funnel_checkout = IntegerAttribute(attr_name="funnelCheckout", default=0)
    funnel_purchase = IntegerAttribute(attr_name="funnelPurchase", default=0)

    COUNTERS: Final = (
        "impressions",
        "page_views",
        "offer_views",
        "sessions",
        "add_to_carts",
        "checkouts",
        "purchases",
        "conversions",
        "signups",
        "codes_issued",
        "redemptions",
        "redemptions_rolled_back",
        "claims_submitted",
        "claims_approved",
        "claims_rejected",
        "rewards_credited",
        "rewards_reversed",
        "orders",
        "new_customers",
        "bounces",
        "session_ms",
        "funnel_offer_view",
        "funnel_add_to_cart",
        "funnel_checkout",
        "funnel_purchase",
    )

    @staticmethod
    def key(campaign_id: str, day: date) -> tuple[str, str]:
        return _campaign_partition(campaign_id), f"DAY#{day_key(day)}"

    def derive_keys(self) -> None:
        if self.campaign_id is not None and self.day is not None:
            self.pk, self.sk = self.key(self.campaign_id, date.fromisoformat(self.day))

    @classmethod
    def ref(cls, campaign_id: str, day: date) -> DailyCounter:
        return cls(campaign_id=campaign_id, day=day_key(day))

    @classmethod
    def increment(cls, campaign_id: str, day: date, **deltas: int) -> list[Action]:
        """``ADD`` each named counter (python names, e.g. ``codes_issued=1``)."""
        return [
            *_add_actions(cls, cls.COUNTERS, deltas),
            cls.campaign_id.set(campaign_id),
            cls.day.set(day_key(day)),
        ]

    @classmethod
    def between(cls, campaign_id: str, first: date, last: date) -> Iterator[DailyCounter]:
        """Days `first` to `last`, both included, in date order."""
        return cls.query(
            _campaign_partition(campaign_id),
            cls.sk.between(f"DAY#{day_key(first)}", f"DAY#{day_key(last)}"),
        )


class DailyAmounts(TableModel):
    """Sums of money for a campaign on a day in one currency (minor units).

    Access patterns:

    - one day and currency: pk=``CAMPAIGN#<campaignId>``,
      sk=``AMOUNTS#<yyyy-mm-dd>#<currency>``
    - a date range, every currency: query pk, sk between ``AMOUNTS#<from>#`` and
      ``AMOUNTS#<to>#~`` (`between`)
    - add: atomic ``ADD`` (`increment`), in the same transaction as the counters
    """

    Meta = table_meta(ANALYTICS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    campaign_id = UnicodeAttribute(attr_name="campaignId")
    day = UnicodeAttribute()
    currency = UnicodeAttribute()
    sales = IntegerAttribute(default=0)
    discounts = IntegerAttribute(default=0)
    # Net of reversals and rollbacks: a reversal ADDs a negative amount.
    rewards_paid = IntegerAttribute(attr_name="rewardsPaid", default=0)

    SUMS: Final = ("sales", "discounts", "rewards_paid")

    @staticmethod
    def key(campaign_id: str, day: date, currency: str) -> tuple[str, str]:
        return _campaign_partition(campaign_id), f"AMOUNTS#{day_key(day)}#{currency}"

    def derive_keys(self) -> None:
        if self.campaign_id is not None and self.day is not None and self.currency is not None:
            day = date.fromisoformat(self.day)
            self.pk, self.sk = self.key(self.campaign_id, day, self.currency)

    @classmethod
    def ref(cls, campaign_id: str, day: date, currency: str) -> DailyAmounts:
        return cls(campaign_id=campaign_id, day=day_key(day), currency=currency)

    @classmethod
    def increment(cls, campaign_id: str, day: date, currency: str, **deltas: int) -> list[Action]:
        """``ADD`` each named sum (python names, e.g. ``sales=12000``)."""
        return [
            *_add_actions(cls, cls.SUMS, deltas),
            cls.campaign_id.set(campaign_id),
            cls.day.set(day_key(day)),
            cls.currency.set(currency),
        ]

    @classmethod
    def between(cls, campaign_id: str, first: date, last: date) -> Iterator[DailyAmounts]:
        return cls.query(
            _campaign_partition(campaign_id),
            cls.sk.between(f"AMOUNTS#{day_key(first)}#", f"AMOUNTS#{day_key(last)}#~"),
        )


class DailyBreakdown(TableModel):
    """A counter split by an open-ended dimension whose values are not known upfront:
    conversions by channel under ``last_touch`` and ``first_touch`` attribution, and
    rewards paid (net of reversals) by last-touch channel, ``rewards``, per currency.

    Access patterns:

    - one value: pk=``CAMPAIGN#<campaignId>``,
      sk=``BREAKDOWN#<yyyy-mm-dd>#<dimension>#<value>#<currency>`` (currency empty for
      plain counts)
    - a date range, every dimension: query pk, sk between ``BREAKDOWN#<from>#`` and
      ``BREAKDOWN#<to>#~`` (`between`; group by ``dimension`` and ``value``)
    - count: atomic ``ADD count`` / ``ADD amount`` (`increment`)
    """

    Meta = table_meta(ANALYTICS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    campaign_id = UnicodeAttribute(attr_name="campaignId")
    day = UnicodeAttribute()
    dimension = UnicodeAttribute()
    value = UnicodeAttribute()
    currency = UnicodeAttribute(default="")
    total = IntegerAttribute(attr_name="count", default=0)
    amount = IntegerAttribute(default=0)

    @staticmethod
    def key(
        campaign_id: str, day: date, dimension: str, value: str, currency: str = ""
    ) -> tuple[str, str]:
        # The dimension is ours; the value (a utm source, say) is anyone's, hence escaped.
        sort = f"BREAKDOWN#{day_key(day)}#{key_part(dimension)}#{key_part(value)}#{currency}"
        return _campaign_partition(campaign_id), sort

    def derive_keys(self) -> None:
        parts = (self.campaign_id, self.day, self.dimension, self.value)
        if all(part is not None for part in parts):
            day = date.fromisoformat(self.day)
            self.pk, self.sk = self.key(
                self.campaign_id, day, self.dimension, self.value, self.currency or ""
            )

    @classmethod
    def ref(
        cls, campaign_id: str, day: date, dimension: str, value: str, currency: str = ""
    ) -> DailyBreakdown:
        return cls(
            campaign_id=campaign_id,
            day=day_key(day),
            dimension=dimension,
            value=value,
            currency=currency,
        )

    @classmethod
    def increment(
        cls,
        campaign_id: str,
        day: date,
        dimension: str,
        value: str,
        *,
        by: int = 1,
        amount: int = 0,
        currency: str = "",
    ) -> list[Action]:
        actions: list[Action] = []
        if by:
            actions.append(cls.total.add(by))
        if amount:
            actions.append(cls.amount.add(amount))
        return [
            *actions,
            cls.campaign_id.set(campaign_id),
            cls.day.set(day_key(day)),
            cls.dimension.set(dimension),
            cls.value.set(value),
            cls.currency.set(currency),
        ]

    @classmethod
    def between(cls, campaign_id: str, first: date, last: date) -> Iterator[DailyBreakdown]:
        return cls.query(
            _campaign_partition(campaign_id),
            cls.sk.between(f"BREAKDOWN#{day_key(first)}#", f"BREAKDOWN#{day_key(last)}#~"),
        )


class CampaignCustomer(TableModel):
    """A customer's first order in a campaign: counts them once as a new customer.

    Access patterns:

    - pk=``CAMPAIGN#<campaignId>``, sk=``CUSTOMER#<customerKey>``; conditional put
      (`first_time`) with the ``newCustomers`` ``ADD`` of the order's day, in one
      transaction
    """

    Meta = table_meta(ANALYTICS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    campaign_id = UnicodeAttribute(attr_name="campaignId")
    customer_key = UnicodeAttribute(attr_name="customerKey")
    order_id = UnicodeAttribute(attr_name="orderId")
    day = UnicodeAttribute()

    @staticmethod
    def key(campaign_id: str, customer_key: str) -> tuple[str, str]:
        return _campaign_partition(campaign_id), f"CUSTOMER#{customer_key}"

    def derive_keys(self) -> None:
        if self.campaign_id is not None and self.customer_key is not None:
            self.pk, self.sk = self.key(self.campaign_id, self.customer_key)


class SeenEvent(TableModel):
    """Marks an ``eventId`` as counted, so a repeated event counts once.

    Access patterns:

    - was this event counted: pk=``EVENT#<eventId>``, sk=``SEEN``
    - mark it: conditional put ``attribute_not_exists(pk)`` (`first_time`) in the same
      transaction as the counter updates; expires (``expiresAt``) after the longest
      replay window, after which a replay would count again
    """

    Meta = table_meta(ANALYTICS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    event_id = UnicodeAttribute(attr_name="eventId")
    event_type = UnicodeAttribute(attr_name="eventType")
    seen_at = InstantAttribute(attr_name="seenAt")
    expires_at = TTLAttribute(attr_name="expiresAt")

    @staticmethod
    def key(event_id: str) -> tuple[str, str]:
        return f"EVENT#{key_part(event_id)}", "SEEN"

    def derive_keys(self) -> None:
        if self.event_id is not None:
            self.pk, self.sk = self.key(self.event_id)


class SessionState(TableModel):
    """What the counters know of one session of a campaign (`logic.Session`).

    Access patterns:

    - read: pk=``SESSION#<sessionId>``, sk=``CAMPAIGN#<campaignId>`` (consistent get)
    - write: put in the event's counting transaction, on condition that the stored
      ``version`` is the one read (or that there was none): a session's events are read
      in order from one shard, so the condition only ever refuses a replay racing itself
    """

    Meta = table_meta(ANALYTICS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    session_id = UnicodeAttribute(attr_name="sessionId")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    day = UnicodeAttribute()
    first_ms = IntegerAttribute(attr_name="firstMs")
    last_ms = IntegerAttribute(attr_name="lastMs")
    page_views = IntegerAttribute(attr_name="pageViews", default=0)
    funnel_step = IntegerAttribute(attr_name="funnelStep", default=0)
    anchor_ms = optional(IntegerAttribute(attr_name="anchorMs"))
    reached_ms = optional(IntegerAttribute(attr_name="reachedMs"))
    converted = IntegerAttribute(default=0)
    version = IntegerAttribute(default=1)
    expires_at = TTLAttribute(attr_name="expiresAt")

    @staticmethod
    def key(session_id: str, campaign_id: str) -> tuple[str, str]:
        return f"SESSION#{key_part(session_id)}", f"CAMPAIGN#{campaign_id}"

    def derive_keys(self) -> None:
        if self.session_id is not None and self.campaign_id is not None:
            self.pk, self.sk = self.key(self.session_id, self.campaign_id)

    @classmethod
    def find(cls, session_id: str, campaign_id: str) -> SessionState | None:
        return cls.get_or_none(*cls.key(session_id, campaign_id), consistent_read=True)

    @classmethod
    def unchanged_since(cls, version: int | None) -> Condition:
        if version is None:
            return cls.first_time()
        return cls.version == version


class VisitorTouch(TableModel):
    """A visitor arrived through a marketing channel (an event with ``utm``).

    Access patterns:

    - put (idempotent: the key is the event's): pk=``VISITOR#<anonymousId>``,
      sk=``TOUCH#<epoch ms, 15 digits>#<eventId>``
    - the touches of a lookback window: query pk, sk between ``TOUCH#<from ms>#`` and
      ``TOUCH#<to ms>#~`` (`within`), oldest first
    """

    Meta = table_meta(ANALYTICS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    anonymous_id = UnicodeAttribute(attr_name="anonymousId")
    event_id = UnicodeAttribute(attr_name="eventId")
    at_ms = IntegerAttribute(attr_name="atMs")
    channel = UnicodeAttribute()
    expires_at = TTLAttribute(attr_name="expiresAt")

    @staticmethod
    def key(anonymous_id: str, at_ms: int, event_id: str) -> tuple[str, str]:
        return f"VISITOR#{key_part(anonymous_id)}", f"TOUCH#{at_ms:015d}#{key_part(event_id)}"

    def derive_keys(self) -> None:
        parts = (self.anonymous_id, self.at_ms, self.event_id)
        if all(part is not None for part in parts):
            self.pk, self.sk = self.key(self.anonymous_id, self.at_ms, self.event_id)

    @classmethod
    def within(cls, anonymous_id: str, first_ms: int, last_ms: int) -> list[VisitorTouch]:
        return list(
            cls.query(
                f"VISITOR#{key_part(anonymous_id)}",
                cls.sk.between(f"TOUCH#{first_ms:015d}#", f"TOUCH#{last_ms:015d}#~"),
                consistent_read=True,
            )
        )


class CustomerChannel(TableModel):
    """The last-touch channel of a customer's latest conversion in a campaign: where
    the rewards later paid to them are attributed.

    Access patterns:

    - pk=``CUSTOMER#<customerKey>``, sk=``CHANNEL#<campaignId>``; get, and put on
      condition that it is new or older than the conversion (`older_than`)
    """

    Meta = table_meta(ANALYTICS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    customer_key = UnicodeAttribute(attr_name="customerKey")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    channel = UnicodeAttribute()
    at_ms = IntegerAttribute(attr_name="atMs")
    expires_at = TTLAttribute(attr_name="expiresAt")

    @staticmethod
    def key(customer_key: str, campaign_id: str) -> tuple[str, str]:
        return f"CUSTOMER#{customer_key}", f"CHANNEL#{campaign_id}"

    def derive_keys(self) -> None:
        if self.customer_key is not None and self.campaign_id is not None:
            self.pk, self.sk = self.key(self.customer_key, self.campaign_id)

    @classmethod
    def older_than(cls, at_ms: int) -> Condition:
        missing: Condition = cls.pk.does_not_exist()
        newer: Condition = cls.at_ms < at_ms
        either: Condition = missing | newer
        return either


class CreditChannel(TableModel):
    """The channel a cashback credit was attributed to, so its reversals are taken from
    the same channel and rewards by channel always sum to the wallet's net credits.

    Access patterns:

    - pk=``CREDIT#<entryId>``, sk=``CHANNEL``: consistent get; conditional put
      (`first_time`): the first to decide (the credit or an early reversal) decides
    """

    Meta = table_meta(ANALYTICS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    entry_id = UnicodeAttribute(attr_name="entryId")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    channel = UnicodeAttribute()
    expires_at = TTLAttribute(attr_name="expiresAt")

    @staticmethod
    def key(entry_id: str) -> tuple[str, str]:
        return f"CREDIT#{key_part(entry_id)}", "CHANNEL"

    def derive_keys(self) -> None:
        if self.entry_id is not None:
            self.pk, self.sk = self.key(self.entry_id)


class OrderFact(TableModel):
    """What is known of an order: its total (``TOTAL``), the campaigns it belongs to
    (``TIE#<campaignId>``) and the campaigns whose sales already count it
    (``COUNTED#<campaignId>``).

    An order's total and its campaign come from different events in any order (a
    `PurchaseRecorded` has the total and no campaign; a credit has the campaign and
    no total; a redemption or a storefront purchase has both), so whichever arrives
    second counts the order, once per campaign: the ``COUNTED`` put is conditional and
    in one transaction with the sales ``ADD``.

    Access patterns:

    - facts of an order: query pk=``ORDER#<orderId>`` (consistent)
    - record a total or a tie: conditional put (`first_time`); the first total wins
    - count: put ``COUNTED#<campaignId>`` (`first_time`) with the day's ``ADD``
    """

    Meta = table_meta(ANALYTICS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    order_id = UnicodeAttribute(attr_name="orderId")
    fact = UnicodeAttribute()  # TOTAL | TIE#<campaignId> | COUNTED#<campaignId>
    amount = optional(IntegerAttribute())
    currency = optional(UnicodeAttribute())
    at_ms = optional(IntegerAttribute(attr_name="atMs"))
    customer_key = optional(UnicodeAttribute(attr_name="customerKey"))
    expires_at = TTLAttribute(attr_name="expiresAt")

    @staticmethod
    def key(order_id: str, fact: str) -> tuple[str, str]:
        return f"ORDER#{key_part(order_id)}", fact

    def derive_keys(self) -> None:
        if self.order_id is not None and self.fact is not None:
            self.pk, self.sk = self.key(self.order_id, self.fact)

    @classmethod
    def of(cls, order_id: str) -> list[OrderFact]:
        return list(cls.query(f"ORDER#{key_part(order_id)}", consistent_read=True))
