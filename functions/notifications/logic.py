"""The rules of delivery, without I/O: which channels a message goes on for a customer
(and why not), the ids a message is known by, and the events that report it.

The service (`functions.notifications.service`) reads the profile and the ledger, asks
here, and writes what was decided.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from functions.core.event_types import NotificationFailed, NotificationSent
from functions.core.vocabulary import Locale, NotificationChannel
from functions.notifications.consent import may_send
from functions.notifications.messages import Message

__all__ = [
    "ChannelPlan",
    "Contact",
    "SuppressionReason",
    "failed_event",
    "notification_id",
    "plan_channels",
    "sent_event",
]

SuppressionReason = Literal[
    "no_profile", "no_email", "no_phone", "no_marketing_consent", "promotion_not_allowed"
]

NO_PROFILE: Final = "no_profile"


@dataclass(frozen=True)
class Contact:
    """What a message needs of a customer's profile."""

    customer_id: str
    email: str | None
    phone: str | None
    locale: Locale
    country: str | None
    marketing_opt_in: bool
    consent_entry_id: str | None


@dataclass(frozen=True)
class ChannelPlan:
    """One channel of a message: sent to `address`, or suppressed for `suppressed`."""

    channel: NotificationChannel
    address: str | None
    suppressed: SuppressionReason | None


def plan_channels(message: Message, contact: Contact | None) -> list[ChannelPlan]:
    """Each of the message's channels, with the address it goes to or why it does not.

    No profile: nothing (we know no address, nor the customer's wishes). Marketing
    without consent: nothing. Otherwise each channel where the profile has an address.
    """
    plans = []
    for channel in message.channels:
        reason: SuppressionReason | None = None
        address = None
        if contact is None:
            reason = "no_profile"
        elif not may_send(message.purpose, marketing_opt_in=contact.marketing_opt_in):
            reason = "no_marketing_consent"
        else:
            address = contact.email if channel == "email" else contact.phone
            if address is None:
                reason = "no_email" if channel == "email" else "no_phone"
        plans.append(ChannelPlan(channel, address, reason))
    return plans


def notification_id(trigger_event_id: str, channel: str, template: str) -> str:
    """``ntf_`` and a digest of the message's identity: the same for every delivery of
    the event, so every report of it names one notification."""
    return _digest_id("ntf", trigger_event_id, channel, template)


def _digest_id(prefix: str, *fact: str) -> str:
    # As `functions.core.outbox.event_id` derives event ids, without importing the
    # outbox (and the AWS clients behind it) into rules.
    digest = hashlib.sha256("\x1f".join(fact).encode()).digest()
    return f"{prefix}_" + base64.b32encode(digest).decode()[:26]


def sent_event(
    *,
    notification: str,
    message: Message,
    channel: NotificationChannel,
    contact: Contact,
    provider_message_id: str,
    at: datetime,
) -> NotificationSent:
    """NotificationSent for a message handed to its provider; its `eventId` is derived
    from the notification, so announcing it again (a replay) is the same event."""
    return NotificationSent(
        eventId=_digest_id("evt", NotificationSent.detail_type, notification),
        occurredAt=at,
        customerId=contact.customer_id,
        notificationId=notification,
        channel=channel,
        template=message.template,
        locale=contact.locale,
        triggerEventId=message.trigger_event_id,
        triggerDetailType=message.trigger_detail_type,
        providerMessageId=provider_message_id,
    )


def failed_event(
    *,
    notification: str,
    message: Message,
    channel: NotificationChannel,
    contact: Contact,
    cause: str,
    at: datetime,
) -> NotificationFailed:
    """NotificationFailed for a message its provider refused for good."""
    return NotificationFailed(
        eventId=_digest_id("evt", NotificationFailed.detail_type, notification),
        occurredAt=at,
        customerId=contact.customer_id,
        notificationId=notification,
        channel=channel,
        template=message.template,
        locale=contact.locale,
        triggerEventId=message.trigger_event_id,
        triggerDetailType=message.trigger_detail_type,
        cause=cause[:1000],
    )
