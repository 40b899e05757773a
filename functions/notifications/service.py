"""What the consumers do with each event: decide, put into words, send exactly once, report.

- `Deliverer`: one message to one customer, on each of its channels, through the ledger
  (docs/notifications.md): claim, send, complete; NotificationSent or NotificationFailed
  after. Channels that hit a transient error (or a claim still held by another
  invocation) make it raise `RetryLater` once every channel was tried, so the queue
  brings the event back and only those channels are tried again.
- `NotificationService`: the messages consumer's events. CampaignPublished fills the
  directory; a post-purchase code (OfferCodeIssued with ``orderId``) is kept for the
  order's thank-you, or sent on its own when the thank-you went without it; the
  thank-you (PurchaseRecorded, from the delayed queue) carries the code when it is known
  and the promotion rule allows; every other event is `messages.message_for`.
- `MarketersAlerts`: a rejected campaign file, to the marketers' topic, once per event.

Collaborators (stores, senders, the publisher) are passed in: the handlers build the
AWS ones once per container, tests hand in fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from functions.core.clock import utc_now
from functions.core.event_types import (
    CampaignPublished,
    CampaignRejected,
    EventDetail,
    OfferCodeIssued,
    PurchaseRecorded,
)
from functions.core.events import EventPublisher
from functions.core.observability import (
    logger,
    record_notification_failed,
    record_notification_sent,
    record_notification_suppressed,
    record_sms_segments,
)
from functions.core.vocabulary import NotificationChannel
from functions.notifications import mime, rendering, tokens
from functions.notifications.consent import may_include_promotion
from functions.notifications.dal import (
    Claim,
    DeliveryLedger,
    DirectoryStore,
    FollowUpStore,
    MessageKey,
    ProfileStore,
    code_events_of,
)
from functions.notifications.logic import (
    ChannelPlan,
    Contact,
    failed_event,
    notification_id,
    plan_channels,
    sent_event,
)
from functions.notifications.messages import (
    Message,
    NextPurchaseCode,
    late_code_message,
    message_for,
)
from functions.notifications.models import (
    CLAIMED,
    FAILED,
    SENT,
    CustomerProfile,
    NotificationRecord,
)
from functions.notifications.senders import (
    EmailSender,
    PermanentSendError,
    SmsSender,
    TopicSender,
    TransientSendError,
)

__all__ = [
    "Deliverer",
    "MarketersAlerts",
    "NotificationService",
    "Outcome",
    "RetryLater",
    "contact_of",
]

MARKETERS_CHANNEL: Final = "topic"
MARKETERS_TEMPLATE: Final = "campaign_rejected"


class RetryLater(Exception):
    """Part of the work must be tried again later: the queue message is reported failed,
    and SQS delivers it again after its visibility timeout."""


@dataclass(frozen=True)
class Outcome:
    """What became of one channel of a message."""

    channel: str
    status: Literal["sent", "failed", "suppressed", "retry"]
    # True when the ledger already had the outcome (a replay): nothing was sent now.
    replayed: bool = False
    promotion_code: str | None = None


def contact_of(profile: CustomerProfile | None) -> Contact | None:
    if profile is None:
        return None
    return Contact(
        customer_id=profile.customer_id,
        email=profile.email,
        phone=profile.phone,
        locale=profile.language,
        country=profile.country,
        marketing_opt_in=profile.marketing_opt_in,
        consent_entry_id=profile.consent_entry_id,
    )


@dataclass(frozen=True)
class _Content:
    """A channel's message, rendered, and how to hand it to its provider."""

    send: Callable[[], str]
    sms_segments: int | None = None
    sms_encoding: str | None = None


class Deliverer:
    """One message to one customer, exactly once per channel (see the module docstring)."""

    def __init__(
        self,
        *,
        ledger: DeliveryLedger,
        email: EmailSender,
        sms: SmsSender,
        events: EventPublisher,
        sender_email: str,
        unsubscribe_url: str,
        unsubscribe_key: Callable[[], bytes],
    ) -> None:
        self.ledger = ledger
        self.email = email
        self.sms = sms
        self.events = events
        self.sender_email = sender_email
        self.unsubscribe_url = unsubscribe_url
        self.unsubscribe_key = unsubscribe_key

    def deliver(
        self,
        message: Message,
        contact: Contact | None,
        *,
        lease_until: datetime,
        promotion_code: str | None = None,
    ) -> list[Outcome]:
        """Send `message` on each channel it may go on; `RetryLater` if any must wait.

        `promotion_code` is the promotion the message carries (recorded on the email's
        ledger record, so a replay knows what was sent). `lease_until` is how long a
        claim is held: past the end of this invocation, so no live sender is taken over.
        """
        outcomes = []
        for plan in plan_channels(message, contact):
            if plan.suppressed is not None or contact is None or plan.address is None:
                record_notification_suppressed(
                    message.template, plan.channel, plan.suppressed or "no_profile"
                )
                logger.info(
                    "notification suppressed",
                    extra=_log(message, plan.channel, reason=plan.suppressed),
                )
                outcomes.append(Outcome(plan.channel, "suppressed"))
                continue
            outcome = self._channel(message, contact, plan, lease_until, promotion_code)
            if outcome is not None:
                outcomes.append(outcome)
        if any(outcome.status == "retry" for outcome in outcomes):
            raise RetryLater(
                f"{message.template} for {message.trigger_event_id}: "
                + ", ".join(o.channel for o in outcomes if o.status == "retry")
                + " to be tried again"
            )
        return outcomes

    def _channel(
        self,
        message: Message,
        contact: Contact,
        plan: ChannelPlan,
        lease_until: datetime,
        promotion_code: str | None,
    ) -> Outcome | None:
        channel = plan.channel
        notification = notification_id(message.trigger_event_id, channel, message.template)
        # Rendered before the claim: the claim-to-completion window holds the send alone.
        content = self._render(message, contact, plan, notification)
        if content is None:
            return None
        key = MessageKey(
            event_id=message.trigger_event_id,
            detail_type=message.trigger_detail_type,
            channel=channel,
            template=message.template,
            notification_id=notification,
            customer_id=contact.customer_id,
            locale=contact.locale,
            consent_entry_id=contact.consent_entry_id if message.purpose == "marketing" else None,
            promotion_code=promotion_code if channel == "email" else None,
        )
        claimed = self.ledger.claim(key, now=utc_now(), lease_until=lease_until)
        if isinstance(claimed, NotificationRecord):
            return self._recorded(claimed, message, contact, channel, notification)
        try:
            provider_message_id = content.send()
        except TransientSendError as error:
            self.ledger.release(claimed, error.cause, now=utc_now())
            logger.warning(
                "notification not sent, to be retried",
                extra=_log(message, channel, cause=error.cause),
            )
            return Outcome(channel, "retry")
        except PermanentSendError as error:
            return self._failed(claimed, message, contact, channel, error)
        self.ledger.complete(
            claimed,
            provider_message_id,
            now=utc_now(),
            segments=content.sms_segments,
            encoding=content.sms_encoding,
        )
        record_notification_sent(message.template, channel)
        if content.sms_segments is not None:
            record_sms_segments(message.template, content.sms_segments)
        logger.info(
            "notification sent",
            extra=_log(
                message, channel, notificationId=notification, providerMessageId=provider_message_id
            ),
        )
        self.events.publish(
            sent_event(
                notification=notification,
                message=message,
                channel=channel,
                contact=contact,
                provider_message_id=provider_message_id,
                at=utc_now(),
            )
        )
        return Outcome(channel, "sent", promotion_code=key.promotion_code)

    def _failed(
        self,
        claimed: Claim,
        message: Message,
        contact: Contact,
        channel: NotificationChannel,
        error: PermanentSendError,
    ) -> Outcome:
        self.ledger.fail(claimed, error.cause, now=utc_now())
        record_notification_failed(message.template, channel, error.code)
        logger.warning("notification refused", extra=_log(message, channel, cause=error.cause))
        self.events.publish(
            failed_event(
                notification=claimed.key.notification_id,
                message=message,
                channel=channel,
                contact=contact,
                cause=error.cause,
                at=utc_now(),
            )
        )
        return Outcome(channel, "failed")

    def _recorded(
        self,
        record: NotificationRecord,
        message: Message,
        contact: Contact,
        channel: NotificationChannel,
        notification: str,
    ) -> Outcome:
        """A replay: the ledger has this message. Its report is published again (the
        same event id, which consumers dedupe on), as the first publish may be the step
        that failed; a live claim is another invocation's to finish."""
        if record.status == SENT:
            self.events.publish(
                sent_event(
                    notification=notification,
                    message=message,
                    channel=channel,
                    contact=contact,
                    provider_message_id=record.provider_message_id or "",
                    at=record.updated_at,
                )
            )
            return Outcome(channel, "sent", replayed=True, promotion_code=record.promotion_code)
        if record.status == FAILED:
            self.events.publish(
                failed_event(
                    notification=notification,
                    message=message,
                    channel=channel,
                    contact=contact,
                    cause=record.cause or "failed",
                    at=record.updated_at,
                )
            )
            return Outcome(channel, "failed", replayed=True)
        logger.info(
            "notification held by another delivery"
            if record.status == CLAIMED
            else "notification record changed meanwhile",
            extra=_log(message, channel, leaseUntil=str(record.lease_until)),
        )
        return Outcome(channel, "retry")

    def _render(
        self, message: Message, contact: Contact, plan: ChannelPlan, notification: str
    ) -> _Content | None:
        address = plan.address or ""
        if plan.channel == "sms":
            sms = rendering.render_sms(message, contact.locale)
            if sms is None:
                return None
            return _Content(
                send=lambda: self.sms.send_sms(phone=address, text=sms.text),
                sms_segments=sms.segments,
                sms_encoding=sms.encoding,
            )
        unsubscribe = self._unsubscribe_link(contact) if message.purpose == "marketing" else None
        rendered = rendering.render_email(message, contact.locale, unsubscribe_url=unsubscribe)
        raw = mime.build_raw_email(
            rendered,
            sender=self.sender_email,
            to=address,
            message_id=notification,
            list_unsubscribe_url=unsubscribe,
        )
        raw = _with_headers(
            raw,
            {
                # RFC 3282: what language the message is in; and the template, which
                # support staff (and the demo's mailbox) sort messages by.
                "Content-Language": contact.locale,
                "X-Rebates-Template": message.template,
            },
        )
        return _Content(
            send=lambda: self.email.send_email(sender=self.sender_email, to=address, raw=raw)
        )

    def _unsubscribe_link(self, contact: Contact) -> str:
        token = tokens.sign(self.unsubscribe_key(), contact.customer_id, "email")
        return f"{self.unsubscribe_url}?token={token}"


class NotificationService:
    """The messages consumer's work, one event at a time (see the module docstring)."""

    def __init__(
        self,
        *,
        deliverer: Deliverer,
        profiles: ProfileStore,
        directory: DirectoryStore,
        follow_ups: FollowUpStore,
    ) -> None:
        self.deliverer = deliverer
        self.profiles = profiles
        self.directory = directory
        self.follow_ups = follow_ups

    def handle(self, detail: EventDetail, *, lease_until: datetime) -> None:
        if isinstance(detail, CampaignPublished):
            recorded = self.directory.record(detail, now=utc_now())
            logger.info(
                "campaign directory updated" if recorded else "older campaign version ignored",
                extra={"campaignId": detail.campaignId, "version": detail.version},
            )
        elif isinstance(detail, OfferCodeIssued) and detail.orderId is not None:
            self._post_purchase_code(detail, lease_until)
        elif isinstance(detail, PurchaseRecorded):
            self._thank_you(detail, lease_until)
        else:
            self._notify(detail, lease_until)

    def _notify(self, detail: EventDetail, lease_until: datetime) -> None:
        campaign_id = getattr(detail, "campaignId", None)
        campaign = self.directory.get(campaign_id) if campaign_id else None
        message = message_for(detail, campaign=campaign)
        if message is None:
            logger.debug("no message for this event", extra={"detailType": detail.detail_type})
            return
        customer_id = getattr(detail, "customerId", None)
        if not isinstance(customer_id, str):  # pragma: no cover - every message has one
            return
        contact = contact_of(self.profiles.get(customer_id))
        self.deliverer.deliver(message, contact, lease_until=lease_until)

    def _thank_you(self, detail: PurchaseRecorded, lease_until: datetime) -> None:
        codes = code_events_of(self.follow_ups.find(detail.orderId))
        contact = contact_of(self.profiles.get(detail.customerId))
        promotion_allowed = contact is not None and may_include_promotion(
            marketing_opt_in=contact.marketing_opt_in, country=contact.country
        )
        # One code rides in the thank-you: the first issued; any other follows on its own.
        next_code = NextPurchaseCode.from_event(codes[0]) if codes else None
        campaign = self.directory.get(next_code.campaign_id) if next_code else None
        message = message_for(
            detail, campaign=campaign, next_code=next_code, promotion_allowed=promotion_allowed
        )
        if message is None:  # pragma: no cover - every purchase has a thank-you
            return
        carried = next_code.code if next_code is not None and promotion_allowed else None
        outcomes = self.deliverer.deliver(
            message, contact, lease_until=lease_until, promotion_code=carried
        )
        email = next((o for o in outcomes if o.channel == "email"), None)
        if email is None or email.status != "sent":
            return
        # What the sent email carried (on a replay, what the first send decided).
        after = self.follow_ups.thank_you_sent(
            detail.orderId, event_id=detail.eventId, code=email.promotion_code, now=utc_now()
        )
        for code in code_events_of(after):
            if code.code != email.promotion_code:
                # Not in the thank-you: this write or the code's own comes second and
                # sees the other, so this or `_post_purchase_code` sends it (the ledger
                # keeps a replay of both to one message).
                self._late_code(code, contact, lease_until)

    def _post_purchase_code(self, detail: OfferCodeIssued, lease_until: datetime) -> None:
        after = self.follow_ups.code_arrived(detail, now=utc_now())
        if after.thank_you_event_id is None or after.thank_you_code == detail.code:
            logger.info(
                "post-purchase code kept for the thank-you"
                if after.thank_you_event_id is None
                else "post-purchase code told in the thank-you",
                extra={"orderId": detail.orderId, "code": detail.code},
            )
            return
        contact = contact_of(self.profiles.get(detail.customerId))
        self._late_code(detail, contact, lease_until)

    def _late_code(
        self, detail: OfferCodeIssued, contact: Contact | None, lease_until: datetime
    ) -> None:
        campaign = self.directory.get(detail.campaignId)
        message = late_code_message(detail, campaign=campaign)
        if contact is not None and not may_include_promotion(
            marketing_opt_in=contact.marketing_opt_in, country=contact.country
        ):
            for channel in message.channels:
                record_notification_suppressed(message.template, channel, "promotion_not_allowed")
            logger.info(
                "notification suppressed",
                extra=_log(message, "email", reason="promotion_not_allowed"),
            )
            return
        self.deliverer.deliver(message, contact, lease_until=lease_until)


class MarketersAlerts:
    """A rejected campaign file, to the marketers' SNS topic, once per event."""

    def __init__(self, *, ledger: DeliveryLedger, topic: TopicSender, topic_arn: str) -> None:
        self.ledger = ledger
        self.topic = topic
        self.topic_arn = topic_arn

    def alert(self, detail: CampaignRejected, *, lease_until: datetime) -> None:
        subject, text = rendering.render_marketers_alert(detail)
        notification = notification_id(detail.eventId, MARKETERS_CHANNEL, MARKETERS_TEMPLATE)
        key = MessageKey(
            event_id=detail.eventId,
            detail_type=detail.detail_type,
            channel=MARKETERS_CHANNEL,
            template=MARKETERS_TEMPLATE,
            notification_id=notification,
        )
        claimed = self.ledger.claim(key, now=utc_now(), lease_until=lease_until)
        log = {"eventId": detail.eventId, "fileKey": detail.fileKey, "notificationId": notification}
        if isinstance(claimed, NotificationRecord):
            if claimed.status == CLAIMED:
                raise RetryLater(f"alert for {detail.eventId} held by another delivery")
            logger.info("marketers alert already handled", extra={**log, "status": claimed.status})
            return
        try:
            message_id = self.topic.publish(topic_arn=self.topic_arn, subject=subject, text=text)
        except TransientSendError as error:
            self.ledger.release(claimed, error.cause, now=utc_now())
            raise RetryLater(f"alert for {detail.eventId}: {error.cause}") from error
        except PermanentSendError as error:
            self.ledger.fail(claimed, error.cause, now=utc_now())
            record_notification_failed(MARKETERS_TEMPLATE, MARKETERS_CHANNEL, error.code)
            logger.error("marketers alert refused", extra={**log, "cause": error.cause})
            return
        self.ledger.complete(claimed, message_id, now=utc_now())
        record_notification_sent(MARKETERS_TEMPLATE, MARKETERS_CHANNEL)
        logger.info("marketers alerted", extra={**log, "providerMessageId": message_id})


def _with_headers(raw: bytes, headers: Mapping[str, str]) -> bytes:
    """`raw` with `headers` added to the top-level header block (ASCII names and values
    only: RFC 5322 lets header fields come in any order)."""
    lines = b"".join(f"{name}: {value}\r\n".encode("ascii") for name, value in headers.items())
    return lines + raw


def _log(message: Message, channel: str, **extra: object) -> dict[str, object]:
    return {
        "template": message.template,
        "channel": channel,
        "triggerEventId": message.trigger_event_id,
        "triggerDetailType": message.trigger_detail_type,
        **extra,
    }
