"""What notifications store: profiles and their consent log, the campaign directory (in the
Customers table), the delivery ledger and each order's follow-up (in the Idempotency table).

Items:

- ``CustomerProfile``         Customers    ``CUSTOMER#<customerId>`` / ``PROFILE``
- ``ConsentEntry``            Customers    ``CUSTOMER#<customerId>`` / ``CONSENT#<entryId>``
- ``CampaignDirectoryEntry``  Customers    ``CAMPAIGN#<campaignId>`` / ``DIRECTORY``
- ``NotificationRecord``      Idempotency  id=``notification#<channel>#<template>#<eventId>``
- ``OrderFollowUp``           Idempotency  id=``notification#order#<orderId>``

The Idempotency table is shared with the API's ``Idempotency-Key`` records (ids starting
``api#``) and Powertools' idempotency utility, whose ids look like
``<function-name>.<module>.<function>#<hash>`` (a ``.`` before the first ``#``). Ours start
``notification#``, so the three key spaces cannot meet; within ours, the channel (``email``,
``sms``, ``topic``) is never ``order``, and the opaque id goes last, so a ``#`` inside it
cannot shift the other parts. Our items share ``expiration`` (the table's TTL, epoch
seconds) and ``status`` (with values of their own) and never use Powertools' ``data`` or
``validation``.

The models hold the keys, the attributes and each item's transaction parts; the store
(`functions.notifications.dal`) decides when they are written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from pynamodb.attributes import BooleanAttribute, MapAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from functions.core.models import (
    InstantAttribute,
    IntegerAttribute,
    TableModel,
    optional,
    table_meta,
)
from functions.core.tables import CUSTOMERS, IDEMPOTENCY
from functions.core.vocabulary import Locale

__all__ = [
    "CLAIMED",
    "FAILED",
    "RETRY",
    "SENT",
    "CampaignDirectoryEntry",
    "ConsentEntry",
    "CustomerProfile",
    "NotificationRecord",
    "OrderFollowUp",
    "get_profile",
]

# NotificationRecord.status (docs/notifications.md has the state table).
CLAIMED: Final = "claimed"
SENT: Final = "sent"
FAILED: Final = "failed"
RETRY: Final = "retry"

_CUSTOMER: Final = "CUSTOMER#"


class CustomerProfile(TableModel):
    """Contact details, language, country and marketing consent of a customer.

    Access patterns:

    - get a customer's profile: pk=``CUSTOMER#<customerId>``, sk=``PROFILE`` (`get_profile`)
    - replace it (``PUT /profile``) or opt out (unsubscribe): a put conditional on the
      ``version`` read (`written_over`), so of two concurrent writers the second reads
      again, and a consent change is never decided on a stale value; a consent change
      puts its `ConsentEntry` in the same transaction and keeps its id here
    """

    Meta = table_meta(CUSTOMERS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    customer_id = UnicodeAttribute(attr_name="customerId")
    email = optional(UnicodeAttribute())
    phone = optional(UnicodeAttribute())  # E.164
    locale = UnicodeAttribute(default="ja")  # ja | en
    country = optional(UnicodeAttribute())  # ISO 3166-1 alpha-2, upper-case
    marketing_opt_in = BooleanAttribute(attr_name="marketingOptIn", default=False)
    # The ConsentEntry recording the current marketingOptIn (every profile has one).
    consent_entry_id = optional(UnicodeAttribute(attr_name="consentEntryId"))
    version = IntegerAttribute(default=1)
    created_at = optional(InstantAttribute(attr_name="createdAt"))
    updated_at = InstantAttribute(attr_name="updatedAt")

    @staticmethod
    def key(customer_id: str) -> tuple[str, str]:
        return f"{_CUSTOMER}{customer_id}", "PROFILE"

    @property
    def language(self) -> Locale:
        """The locale to write to this customer in (stored values are `ja` or `en`)."""
        return "en" if self.locale == "en" else "ja"

    def derive_keys(self) -> None:
        if self.customer_id is not None:
            self.pk, self.sk = self.key(self.customer_id)

    @classmethod
    def written_over(cls, previous: CustomerProfile | None) -> Condition:
        """The condition of a put replacing `previous` (None: creating the profile)."""
        if previous is None:
            return cls.pk.does_not_exist()
        return cls.version == previous.version


def get_profile(customer_id: str) -> CustomerProfile | None:
    return CustomerProfile.get_or_none(*CustomerProfile.key(customer_id))


class ConsentEntry(TableModel):
    """One change of a customer's marketing consent, never changed or deleted.

    Access patterns:

    - a customer's consent history, oldest first: pk=``CUSTOMER#<customerId>``, sk
      ``begins_with CONSENT#`` (entry ids are time-ordered ULIDs) (`history`)
    - an entry by id (what permitted a marketing message): get by both keys
    - written in the transaction that changes the profile, on ``attribute_not_exists``;
      each entry names the one before it (`previous_entry_id`), so a gap shows
    """

    Meta = table_meta(CUSTOMERS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    customer_id = UnicodeAttribute(attr_name="customerId")
    entry_id = UnicodeAttribute(attr_name="entryId")
    marketing_opt_in = BooleanAttribute(attr_name="marketingOptIn")
    # How the customer said so: api | unsubscribe_link | one_click.
    channel = UnicodeAttribute()
    request_id = optional(UnicodeAttribute(attr_name="requestId"))
    previous_entry_id = optional(UnicodeAttribute(attr_name="previousEntryId"))
    recorded_at = InstantAttribute(attr_name="recordedAt")

    @staticmethod
    def key(customer_id: str, entry_id: str) -> tuple[str, str]:
        return f"{_CUSTOMER}{customer_id}", f"CONSENT#{entry_id}"

    def derive_keys(self) -> None:
        if self.customer_id is not None and self.entry_id is not None:
            self.pk, self.sk = self.key(self.customer_id, self.entry_id)

    @classmethod
    def history(cls, customer_id: str) -> list[ConsentEntry]:
        return list(
            cls.query(
                f"{_CUSTOMER}{customer_id}",
                cls.sk.startswith("CONSENT#"),
                consistent_read=True,
            )
        )


class CampaignDirectoryEntry(TableModel):
    """What messages say about a campaign (its name and time zone), from CampaignPublished.

    Access patterns:

    - get by campaign: pk=``CAMPAIGN#<campaignId>``, sk=``DIRECTORY``
    - record a published version: a put conditional on no entry or an older version
      (`newer_than_stored`), so a late delivery of version 2 never replaces version 3
    """

    Meta = table_meta(CUSTOMERS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    campaign_id = UnicodeAttribute(attr_name="campaignId")
    name = UnicodeAttribute()
    timezone = UnicodeAttribute()
    version = IntegerAttribute()
    recorded_at = InstantAttribute(attr_name="recordedAt")

    @staticmethod
    def key(campaign_id: str) -> tuple[str, str]:
        return f"CAMPAIGN#{campaign_id}", "DIRECTORY"

    def derive_keys(self) -> None:
        if self.campaign_id is not None:
            self.pk, self.sk = self.key(self.campaign_id)

    @classmethod
    def newer_than_stored(cls, version: int) -> Condition:
        condition: Condition = cls.pk.does_not_exist() | (cls.version < version)
        return condition


class NotificationRecord(TableModel):
    """The delivery ledger: one message per (event, channel, template), whatever the retries.

    Access patterns:

    - the record of one message: id=``notification#<channel>#<template>#<eventId>``
    - claim before sending (`claim`): an update that succeeds only if there is no record,
      the last attempt ended transient (``retry``), or a claim's lease ran out (its sender
      died); it sets ``claimed``, a lease and a token, and counts the attempt
    - complete after sending (`complete`, `fail`, `release`): an update conditional on the
      claim's token, to ``sent`` (the provider's message id), ``failed`` (the provider's
      refusal) or ``retry`` (a transient error)
    - expiry: ``expiration`` (the table's TTL), long after any redelivery or redrive
    """

    Meta = table_meta(IDEMPOTENCY)

    id = UnicodeAttribute(hash_key=True)
    expiration = TTLAttribute()
    status = UnicodeAttribute()  # claimed | sent | failed | retry
    notification_id = UnicodeAttribute(attr_name="notificationId")
    event_id = UnicodeAttribute(attr_name="eventId")
    detail_type = UnicodeAttribute(attr_name="detailType")
    channel = UnicodeAttribute()  # email | sms | topic
    template = UnicodeAttribute()
    customer_id = optional(UnicodeAttribute(attr_name="customerId"))
    locale = optional(UnicodeAttribute())
    # The ConsentEntry that permitted a marketing message (None for transactional ones).
    consent_entry_id = optional(UnicodeAttribute(attr_name="consentEntryId"))
    # The promotion a transactional message carried (the thank-you's next-purchase code),
    # decided before the claim: a replay reads what was sent, not what it would send now.
    promotion_code = optional(UnicodeAttribute(attr_name="promotionCode"))
    claim_token = optional(UnicodeAttribute(attr_name="claimToken"))
    lease_until = optional(InstantAttribute(attr_name="leaseUntil"))
    attempts = IntegerAttribute(default=0)
    provider_message_id = optional(UnicodeAttribute(attr_name="providerMessageId"))
    # An SMS sent: how many segments it took, in which encoding (GSM-7 or UCS-2).
    segments = optional(IntegerAttribute())
    encoding = optional(UnicodeAttribute())
    cause = optional(UnicodeAttribute())
    updated_at = InstantAttribute(attr_name="updatedAt")

    @staticmethod
    def key(event_id: str, channel: str, template: str) -> str:
        return f"notification#{channel}#{template}#{event_id}"

    def derive_keys(self) -> None:
        if self.event_id is not None and self.channel is not None and self.template is not None:
            self.id = self.key(self.event_id, self.channel, self.template)

    @classmethod
    def find(cls, event_id: str, channel: str, template: str) -> NotificationRecord | None:
        return cls.get_or_none(cls.key(event_id, channel, template))

    def claim(
        self, token: str, now: datetime, lease_until: datetime
    ) -> tuple[list[Action], Condition]:
        """The claim of this record's message for `token` (see the class docstring)."""
        cls = type(self)
        actions: list[Action] = [
            cls.status.set(CLAIMED),
            cls.claim_token.set(token),
            cls.lease_until.set(lease_until),
            cls.attempts.add(1),
            cls.updated_at.set(now),
            cls.expiration.set(self.expiration),
            cls.notification_id.set(self.notification_id),
            cls.event_id.set(self.event_id),
            cls.detail_type.set(self.detail_type),
            cls.channel.set(self.channel),
            cls.template.set(self.template),
        ]
        for attribute, value in (
            (cls.customer_id, self.customer_id),
            (cls.locale, self.locale),
            (cls.consent_entry_id, self.consent_entry_id),
            (cls.promotion_code, self.promotion_code),
        ):
            actions.append(attribute.set(value) if value is not None else attribute.remove())
        condition: Condition = (
            cls.id.does_not_exist()
            | (cls.status == RETRY)
            | ((cls.status == CLAIMED) & (cls.lease_until < now))
        )
        return actions, condition

    @classmethod
    def held_by(cls, token: str) -> Condition:
        """Only the claim `token` made may complete it: one whose lease ran out and was
        taken over must not overwrite the new holder's outcome."""
        condition: Condition = (cls.status == CLAIMED) & (cls.claim_token == token)
        return condition


class OrderFollowUp(TableModel):
    """What notifications know about one order: its post-purchase codes and its thank-you.

    A purchase issues one code per campaign with an ``issue_after_purchase`` offer. The
    thank-you waits (a delayed queue) so that those codes are usually known when it is
    sent; it carries one, and every other code, or one that comes later, is sent on its
    own: whichever of a code's write and the thank-you's write comes second sees the
    other and sends it (`functions.notifications.service`), so each code is told once,
    in the thank-you or after it.

    Access patterns:

    - get by order: id=``notification#order#<orderId>``
    - a code arrived (`FollowUpStore.code_arrived`): its OfferCodeIssued (JSON) under its
      event id in ``codes``, returning the item as it is now
    - the thank-you was sent (`FollowUpStore.thank_you_sent`): its event and the code it
      carried (none: absent), returning the item as it is now
    - expiry: ``expiration``, a month after the order: later, no late code is sent
    """

    Meta = table_meta(IDEMPOTENCY)

    id = UnicodeAttribute(hash_key=True)
    expiration = TTLAttribute()
    order_id = UnicodeAttribute(attr_name="orderId")
    # OfferCodeIssued detail (JSON) by its eventId, for each post-purchase code.
    # A raw map (its keys are event ids); PynamoDB leaves its constructor unannotated.
    codes: MapAttribute[str, str] = MapAttribute(null=True)  # type: ignore[no-untyped-call]
    thank_you_event_id = optional(UnicodeAttribute(attr_name="thankYouEventId"))
    # The code the thank-you carried (absent: it carried none).
    thank_you_code = optional(UnicodeAttribute(attr_name="thankYouCode"))
    updated_at = InstantAttribute(attr_name="updatedAt")

    @staticmethod
    def key(order_id: str) -> str:
        return f"notification#order#{order_id}"

    def derive_keys(self) -> None:
        if self.order_id is not None:
            self.id = self.key(self.order_id)

    @classmethod
    def find(cls, order_id: str) -> OrderFollowUp | None:
        return cls.get_or_none(cls.key(order_id))
