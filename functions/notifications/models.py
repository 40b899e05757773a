"""Customer contact data (Customers table) and notification dedupe records (Idempotency).

Items:

- ``CustomerProfile``     Customers  ``CUSTOMER#<customerId>`` / ``PROFILE``
- ``UnsubscribeToken``    Customers  ``UNSUBSCRIBE#<token>`` / ``TOKEN``
- ``NotificationRecord``  Idempotency  id=``notification#<eventId>#<channel>``

The Idempotency table is shared with Powertools' idempotency utility, whose items use
the attributes ``id``, ``expiration``, ``status``, ``data``, ``validation`` and keys
like ``<function-name>.<module>.<function>#<hash>``. Ours start ``notification#``, and
event ids and channels contain no ``.``, so the two key spaces cannot meet; our records
share ``expiration`` (the table's TTL) and ``status`` (different values) and never use
``data`` or ``validation``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from pynamodb.attributes import BooleanAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.exceptions import PutError

from functions.core.models import (
    InstantAttribute,
    TableModel,
    Transaction,
    TransactionCancelled,
    optional,
    table_meta,
)
from functions.core.tables import CUSTOMERS, IDEMPOTENCY

__all__ = [
    "FAILED",
    "SENDING",
    "SENT",
    "CustomerProfile",
    "NotificationRecord",
    "UnsubscribeToken",
    "begin_notification",
    "get_profile",
    "issue_unsubscribe_token",
]

SENDING: Final = "sending"
SENT: Final = "sent"
FAILED: Final = "failed"


class CustomerProfile(TableModel):
    """Contact details, language and marketing consent of a customer.

    Access patterns:

    - get a customer's profile: pk=``CUSTOMER#<customerId>``, sk=``PROFILE``
      (`get_profile`)
    - replace it (``PUT /profile``): plain put; ``unsubscribeToken`` is kept by the
      caller (read first) or re-issued by `issue_unsubscribe_token`
    """

    Meta = table_meta(CUSTOMERS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    customer_id = UnicodeAttribute(attr_name="customerId")
    email = optional(UnicodeAttribute())
    phone = optional(UnicodeAttribute())
    locale = UnicodeAttribute(default="ja")  # ja | en
    marketing_opt_in = BooleanAttribute(attr_name="marketingOptIn", default=False)
    unsubscribe_token = optional(UnicodeAttribute(attr_name="unsubscribeToken"))
    updated_at = InstantAttribute(attr_name="updatedAt")

    @staticmethod
    def key(customer_id: str) -> tuple[str, str]:
        return f"CUSTOMER#{customer_id}", "PROFILE"

    def derive_keys(self) -> None:
        if self.customer_id is not None:
            self.pk, self.sk = self.key(self.customer_id)

    @classmethod
    def ref(cls, customer_id: str) -> CustomerProfile:
        return cls(customer_id=customer_id)


class UnsubscribeToken(TableModel):
    """An unguessable token in marketing messages, pointing back to its customer.

    Access patterns:

    - resolve a token (one-click unsubscribe): pk=``UNSUBSCRIBE#<token>``, sk=``TOKEN``
      (`resolve`)
    - a customer's token: ``CustomerProfile.unsubscribe_token``; both are written together
      by `issue_unsubscribe_token`
    """

    Meta = table_meta(CUSTOMERS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    token = UnicodeAttribute()
    customer_id = UnicodeAttribute(attr_name="customerId")
    created_at = InstantAttribute(attr_name="createdAt")

    @staticmethod
    def key(token: str) -> tuple[str, str]:
        return f"UNSUBSCRIBE#{token}", "TOKEN"

    def derive_keys(self) -> None:
        if self.token is not None:
            self.pk, self.sk = self.key(self.token)

    @classmethod
    def resolve(cls, token: str) -> str | None:
        """The customer id behind `token`, or None for an unknown token."""
        found = cls.get_or_none(*cls.key(token))
        return found.customer_id if found else None


def get_profile(customer_id: str) -> CustomerProfile | None:
    return CustomerProfile.get_or_none(*CustomerProfile.key(customer_id))


def issue_unsubscribe_token(customer_id: str, candidate: str, at: datetime) -> str | None:
    """The customer's unsubscribe token, creating it from `candidate` if there is none.

    Writes the token item and sets it on the profile in one transaction, so a token
    never points to a profile that does not know it. Returns None if the customer has no
    profile (nothing to unsubscribe from); a concurrent issuer's token wins and is returned.
    """
    profile = get_profile(customer_id)
    if profile is None:
        return None
    if profile.unsubscribe_token:
        return profile.unsubscribe_token
    transaction = Transaction()
    transaction.put(
        "token",
        UnsubscribeToken(token=candidate, customer_id=customer_id, created_at=at),
        condition=UnsubscribeToken.pk.does_not_exist(),
    )
    transaction.update(
        "profile",
        CustomerProfile.ref(customer_id),
        [CustomerProfile.unsubscribe_token.set(candidate)],
        condition=CustomerProfile.pk.exists() & CustomerProfile.unsubscribe_token.does_not_exist(),
    )
    try:
        transaction.commit()
    except TransactionCancelled as cancelled:
        if not cancelled.failed("profile"):
            raise
        again = get_profile(customer_id)
        return again.unsubscribe_token if again else None
    return candidate


class NotificationRecord(TableModel):
    """At most one message per event per channel, whatever the retries.

    Access patterns:

    - the record of (event, channel): id=``notification#<eventId>#<channel>``
    - start sending: conditional put (`begin_notification`) that succeeds only if there is
      no record, the last attempt failed, or a previous sender's lease ran out (it crashed
      mid-send); then an update to ``sent`` with the provider's ``messageId``
    - expiry: ``expiration`` (the table's TTL) a few days after the event, longer than
      any queue redelivery
    """

    Meta = table_meta(IDEMPOTENCY)

    id = UnicodeAttribute(hash_key=True)
    expiration = TTLAttribute()
    status = UnicodeAttribute()  # sending | sent | failed
    event_id = UnicodeAttribute(attr_name="eventId")
    channel = UnicodeAttribute()  # email | sms
    customer_id = optional(UnicodeAttribute(attr_name="customerId"))
    template = optional(UnicodeAttribute())
    message_id = optional(UnicodeAttribute(attr_name="messageId"))
    lease_until = optional(InstantAttribute(attr_name="leaseUntil"))
    error = optional(UnicodeAttribute())
    updated_at = InstantAttribute(attr_name="updatedAt")

    @staticmethod
    def key(event_id: str, channel: str) -> str:
        return f"notification#{event_id}#{channel}"

    def derive_keys(self) -> None:
        if self.event_id is not None and self.channel is not None:
            self.id = self.key(self.event_id, self.channel)

    @classmethod
    def find(cls, event_id: str, channel: str) -> NotificationRecord | None:
        return cls.get_or_none(cls.key(event_id, channel))


def begin_notification(
    record: NotificationRecord, now: datetime, lease: timedelta = timedelta(minutes=5)
) -> bool:
    """Take the right to send `record`'s message; False if it is sent or being sent.

    `record` is written with status ``sending`` and a lease of `lease` from `now`.
    """
    record.status = SENDING
    record.lease_until = now + lease
    record.updated_at = now
    condition = (
        NotificationRecord.id.does_not_exist()
        | (NotificationRecord.status == FAILED)
        | ((NotificationRecord.status == SENDING) & (NotificationRecord.lease_until < now))
    )
    try:
        record.save(condition=condition)
    except PutError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True
