"""Analytics table: per campaign per day counters, and the markers that make them exact.

Items (pk / sk):

- ``DailyCounter``       ``CAMPAIGN#<campaignId>`` / ``DAY#<yyyy-mm-dd>``
- ``DailyAmounts``       ``CAMPAIGN#<campaignId>`` / ``AMOUNTS#<yyyy-mm-dd>#<currency>``
- ``DailyBreakdown``     ``CAMPAIGN#<campaignId>`` / ``BREAKDOWN#<yyyy-mm-dd>#<dimension>#<value>``
- ``SeenEvent``          ``EVENT#<eventId>`` / ``SEEN``                (TTL ``expiresAt``)
- ``SessionTouch``       ``SESSION#<sessionId>`` / ``TOUCH#<campaignId>``       (TTL)
- ``SessionConversion``  ``SESSION#<sessionId>`` / ``CONVERSION#<campaignId>``  (TTL)

Counting an event exactly once is one transaction: the conditional put of its
`SeenEvent` plus the ``ADD`` updates of the counters it moves. A replayed event fails
the put and the whole transaction, so nothing is counted twice; a crash between steps
cannot leave a marker without its counts, or counts without their marker.

The day is whatever day the analytics logic assigns (the campaign's local date), passed
as a `date`. Money sums live in their own item per currency (`DailyAmounts`) because
DynamoDB cannot ``ADD`` into a map entry that does not exist yet, and an event's currency
is only known when it arrives.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
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
    "DailyAmounts",
    "DailyBreakdown",
    "DailyCounter",
    "SeenEvent",
    "SessionConversion",
    "SessionTouch",
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
    rewards_paid = IntegerAttribute(attr_name="rewardsPaid", default=0)
    budget_used = IntegerAttribute(attr_name="budgetUsed", default=0)
    refunds = IntegerAttribute(default=0)

    SUMS: Final = ("sales", "discounts", "rewards_paid", "budget_used", "refunds")

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
    """A counter split by an open-ended dimension, e.g. conversions by channel under
    ``last_touch`` or ``first_touch`` attribution, whose values are not known upfront.

    Access patterns:

    - one value: pk=``CAMPAIGN#<campaignId>``,
      sk=``BREAKDOWN#<yyyy-mm-dd>#<dimension>#<value>``
    - a date range, every dimension: query pk, sk between ``BREAKDOWN#<from>#`` and
      ``BREAKDOWN#<to>#~`` (`between`; group by ``dimension`` and ``value``)
    - count: atomic ``ADD count`` (`increment`; python name ``total``)
    """

    Meta = table_meta(ANALYTICS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    campaign_id = UnicodeAttribute(attr_name="campaignId")
    day = UnicodeAttribute()
    dimension = UnicodeAttribute()
    value = UnicodeAttribute()
    total = IntegerAttribute(attr_name="count", default=0)

    @staticmethod
    def key(campaign_id: str, day: date, dimension: str, value: str) -> tuple[str, str]:
        # The dimension is ours; the value (a utm source, say) is anyone's, hence escaped.
        sort = f"BREAKDOWN#{day_key(day)}#{key_part(dimension)}#{key_part(value)}"
        return _campaign_partition(campaign_id), sort

    def derive_keys(self) -> None:
        parts = (self.campaign_id, self.day, self.dimension, self.value)
        if all(part is not None for part in parts):
            day = date.fromisoformat(self.day)
            self.pk, self.sk = self.key(self.campaign_id, day, self.dimension, self.value)

    @classmethod
    def ref(cls, campaign_id: str, day: date, dimension: str, value: str) -> DailyBreakdown:
        return cls(campaign_id=campaign_id, day=day_key(day), dimension=dimension, value=value)

    @classmethod
    def increment(
        cls, campaign_id: str, day: date, dimension: str, value: str, by: int = 1
    ) -> list[Action]:
        return [
            cls.total.add(by),
            cls.campaign_id.set(campaign_id),
            cls.day.set(day_key(day)),
            cls.dimension.set(dimension),
            cls.value.set(value),
        ]

    @classmethod
    def between(cls, campaign_id: str, first: date, last: date) -> Iterator[DailyBreakdown]:
        return cls.query(
            _campaign_partition(campaign_id),
            cls.sk.between(f"BREAKDOWN#{day_key(first)}#", f"BREAKDOWN#{day_key(last)}#~"),
        )


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
        return f"EVENT#{event_id}", "SEEN"

    def derive_keys(self) -> None:
        if self.event_id is not None:
            self.pk, self.sk = self.key(self.event_id)


class SessionTouch(TableModel):
    """A session's first and last touch of a campaign (counts the session once, and
    keeps the channels first- and last-touch attribution need at conversion time).

    Access patterns:

    - a session's touch of a campaign: pk=``SESSION#<sessionId>``,
      sk=``TOUCH#<campaignId>``
    - first touch: conditional put ``attribute_not_exists(pk)`` with the ``sessions``
      counter ``ADD`` in one transaction (a new session for the campaign that day)
    - later touches: update ``lastChannel``/``lastAt`` (`touch`)
    """

    Meta = table_meta(ANALYTICS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    session_id = UnicodeAttribute(attr_name="sessionId")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    first_channel = UnicodeAttribute(attr_name="firstChannel")
    first_at = InstantAttribute(attr_name="firstAt")
    last_channel = UnicodeAttribute(attr_name="lastChannel")
    last_at = InstantAttribute(attr_name="lastAt")
    expires_at = TTLAttribute(attr_name="expiresAt")

    @staticmethod
    def key(session_id: str, campaign_id: str) -> tuple[str, str]:
        return f"SESSION#{key_part(session_id)}", f"TOUCH#{campaign_id}"

    def derive_keys(self) -> None:
        if self.session_id is not None and self.campaign_id is not None:
            self.pk, self.sk = self.key(self.session_id, self.campaign_id)

    @classmethod
    def find(cls, session_id: str, campaign_id: str) -> SessionTouch | None:
        return cls.get_or_none(*cls.key(session_id, campaign_id))

    @staticmethod
    def touch(channel: str, at: datetime) -> tuple[list[Action], Condition]:
        """Record a later touch; only moves forward in time (events arrive out of order)."""
        actions: list[Action] = [
            SessionTouch.last_channel.set(channel),
            SessionTouch.last_at.set(at),
        ]
        return actions, SessionTouch.pk.exists() & (SessionTouch.last_at <= at)


class SessionConversion(TableModel):
    """Marks a session as converted for a campaign: a conversion counts once per session.

    Access patterns:

    - did this session convert: pk=``SESSION#<sessionId>``, sk=``CONVERSION#<campaignId>``
    - mark it: conditional put ``attribute_not_exists(pk)`` (`first_time`) with the
      ``conversions`` counter and attribution ``ADD`` in one transaction
    """

    Meta = table_meta(ANALYTICS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    session_id = UnicodeAttribute(attr_name="sessionId")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    event_id = UnicodeAttribute(attr_name="eventId")
    order_id = optional(UnicodeAttribute(attr_name="orderId"))
    converted_at = InstantAttribute(attr_name="convertedAt")
    expires_at = TTLAttribute(attr_name="expiresAt")

    @staticmethod
    def key(session_id: str, campaign_id: str) -> tuple[str, str]:
        return f"SESSION#{key_part(session_id)}", f"CONVERSION#{campaign_id}"

    def derive_keys(self) -> None:
        if self.session_id is not None and self.campaign_id is not None:
            self.pk, self.sk = self.key(self.session_id, self.campaign_id)
