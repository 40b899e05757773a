"""Every read and write of notifications: profiles and consent, the campaign directory,
orders' follow-ups, the delivery ledger, and the unsubscribe key.

- `ProfileStore`: a profile is replaced with a put conditional on the version read; a
  consent change (the first profile, or ``marketingOptIn`` changing) puts its
  `ConsentEntry` in the same transaction. Two concurrent writers: the second's condition
  fails, it reads again and decides again, so no consent change is ever recorded on a
  stale value or lost.
- `DirectoryStore`: campaign names and time zones, the newest published version kept.
- `FollowUpStore`: each order's post-purchase code and thank-you (see `OrderFollowUp`).
- `DeliveryLedger`: the exactly-once protocol's writes (docs/notifications.md).
- `UnsubscribeKey`: the HMAC key, read from Secrets Manager once per container.

Clients are made on first use, never at import.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.update import Action

from functions.core.event_types import CampaignPublished, OfferCodeIssued
from functions.core.ids import new_id
from functions.core.models import Transaction, TransactionCancelled
from functions.core.observability import logger
from functions.core.secrets import SecretKey
from functions.notifications.errors import Contended
from functions.notifications.messages import CampaignFacts
from functions.notifications.models import (
    FAILED,
    RETRY,
    SENT,
    CampaignDirectoryEntry,
    ConsentEntry,
    CustomerProfile,
    NotificationRecord,
    OrderFollowUp,
    get_profile,
)

__all__ = [
    "Claim",
    "ConsentChannel",
    "DeliveryLedger",
    "DirectoryStore",
    "FollowUpStore",
    "MessageKey",
    "ProfileInput",
    "ProfileStore",
    "UnsubscribeKey",
]

ConsentChannel = Literal["api", "unsubscribe_link", "one_click"]

# Writers racing on one profile: each lost race is another writer's success, so a few
# passes always suffice outside a storm; then the client is told to retry (429).
_PROFILE_PASSES: Final = 5
_CONDITION_FAILED: Final = "ConditionalCheckFailedException"
# Longer than SQS keeps a message (14 days) plus a DLQ redrive's 14: a record must outlive
# every redelivery of its event, or a redrive would send again.
RECORD_TTL: Final = timedelta(days=30)
# A post-purchase code arriving later than this is not worth a message of its own.
FOLLOW_UP_TTL: Final = timedelta(days=30)


# -- profiles and consent ---------------------------------------------------------------


@dataclass(frozen=True)
class ProfileInput:
    """A whole profile as the customer gives it, already normalised (`schemas`)."""

    email: str | None
    phone: str | None
    locale: str
    country: str | None
    marketing_opt_in: bool


class ProfileStore:
    """Customer profiles and their consent log (Customers table)."""

    def get(self, customer_id: str) -> CustomerProfile | None:
        return get_profile(customer_id)

    def consent_history(self, customer_id: str) -> list[ConsentEntry]:
        return ConsentEntry.history(customer_id)

    def put(
        self, customer_id: str, given: ProfileInput, *, now: datetime, request_id: str | None
    ) -> CustomerProfile:
        """Store `given` as the customer's profile; a consent change is logged with it.

        A PUT repeating what is stored writes nothing: a retried request, or two clients
        saving the same form, leave one version and no second consent entry.
        """
        for attempt in range(_PROFILE_PASSES):
            previous = get_profile(customer_id)
            if previous is not None and _same(previous, given):
                return previous
            profile = CustomerProfile(
                customer_id=customer_id,
                email=given.email,
                phone=given.phone,
                locale=given.locale,
                country=given.country,
                marketing_opt_in=given.marketing_opt_in,
                consent_entry_id=previous.consent_entry_id if previous else None,
                version=previous.version + 1 if previous else 1,
                created_at=previous.created_at if previous else now,
                updated_at=now,
            )
            consent_changes = previous is None or (
                previous.marketing_opt_in != given.marketing_opt_in
            )
            entry = (
                _consent_entry(profile, previous, "api", request_id, now)
                if consent_changes
                else None
            )
            if self._write(profile, previous, entry):
                return profile
            _backoff(attempt)
        raise Contended(customer_id)

    def opt_out(
        self,
        customer_id: str,
        channel: ConsentChannel,
        *,
        now: datetime,
        request_id: str | None,
    ) -> CustomerProfile | None:
        """Withdraw marketing consent; the profile as it is now (None: there is none).

        Already opted out: nothing is written, so a second click (or a mail client
        repeating its POST) logs no second entry.
        """
        for attempt in range(_PROFILE_PASSES):
            previous = get_profile(customer_id)
            if previous is None or not previous.marketing_opt_in:
                return previous
            profile = CustomerProfile(
                customer_id=customer_id,
                email=previous.email,
                phone=previous.phone,
                locale=previous.locale,
                country=previous.country,
                marketing_opt_in=False,
                consent_entry_id=previous.consent_entry_id,
                version=previous.version + 1,
                created_at=previous.created_at,
                updated_at=now,
            )
            entry = _consent_entry(profile, previous, channel, request_id, now)
            if self._write(profile, previous, entry):
                return profile
            _backoff(attempt)
        raise Contended(customer_id)

    @staticmethod
    def _write(
        profile: CustomerProfile, previous: CustomerProfile | None, entry: ConsentEntry | None
    ) -> bool:
        """Put `profile` over `previous` (and `entry`, in one transaction); False when
        another writer came first."""
        condition = CustomerProfile.written_over(previous)
        if entry is None:
            try:
                profile.save(condition=condition)
            except PutError as error:
                if error.cause_response_code == _CONDITION_FAILED:
                    return False
                raise
            return True
        transaction = Transaction()
        transaction.put("profile", profile, condition=condition)
        transaction.put("consent", entry, condition=ConsentEntry.first_time())
        try:
            transaction.commit()
        except TransactionCancelled as cancelled:
            if cancelled.failed("profile") or cancelled.conflicted:
                return False
            raise
        return True


def _same(stored: CustomerProfile, given: ProfileInput) -> bool:
    return (
        stored.email == given.email
        and stored.phone == given.phone
        and stored.locale == given.locale
        and stored.country == given.country
        and stored.marketing_opt_in == given.marketing_opt_in
    )


def _consent_entry(
    profile: CustomerProfile,
    previous: CustomerProfile | None,
    channel: ConsentChannel,
    request_id: str | None,
    now: datetime,
) -> ConsentEntry:
    entry = ConsentEntry(
        customer_id=profile.customer_id,
        entry_id=new_id("cns"),
        marketing_opt_in=profile.marketing_opt_in,
        channel=channel,
        request_id=request_id,
        previous_entry_id=previous.consent_entry_id if previous else None,
        recorded_at=now,
    )
    profile.consent_entry_id = entry.entry_id
    return entry


def _backoff(attempt: int) -> None:
    # Short and growing: the winner's write is already committed when we learn of it.
    time.sleep(0.005 * 2**attempt)


# -- the campaign directory ---------------------------------------------------------------


class DirectoryStore:
    """Campaign names and time zones, as the newest CampaignPublished told them.

    Entries are cached per container for `ttl`: a republish renaming a campaign reaches
    messages within that time, and a batch of messages about one campaign reads it once.
    """

    def __init__(
        self,
        *,
        ttl: timedelta = timedelta(minutes=1),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl.total_seconds()
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, CampaignFacts]] = {}
        self._lock = threading.Lock()

    def record(self, detail: CampaignPublished, *, now: datetime) -> bool:
        """Keep `detail`'s name and zone unless a newer version is stored; whether it was."""
        facts = CampaignFacts.from_event(detail)
        entry = CampaignDirectoryEntry(
            campaign_id=facts.campaign_id,
            name=facts.name,
            timezone=facts.timezone,
            version=detail.version,
            recorded_at=now,
        )
        try:
            entry.save(condition=CampaignDirectoryEntry.newer_than_stored(detail.version))
        except PutError as error:
            if error.cause_response_code == _CONDITION_FAILED:
                return False
            raise
        with self._lock:
            self._cache.pop(detail.campaignId, None)
        return True

    def get(self, campaign_id: str) -> CampaignFacts | None:
        at = self._monotonic()
        with self._lock:
            cached = self._cache.get(campaign_id)
        if cached is not None and at - cached[0] < self._ttl:
            return cached[1]
        found = CampaignDirectoryEntry.get_or_none(*CampaignDirectoryEntry.key(campaign_id))
        if found is None:
            return None
        facts = CampaignFacts(found.campaign_id, found.name, found.timezone)
        with self._lock:
            self._cache[campaign_id] = (at, facts)
        return facts

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


# -- orders' follow-ups ---------------------------------------------------------------


class FollowUpStore:
    """Each order's post-purchase codes and thank-you (see `OrderFollowUp`)."""

    def find(self, order_id: str) -> OrderFollowUp | None:
        return OrderFollowUp.find(order_id)

    def code_arrived(self, detail: OfferCodeIssued, *, now: datetime) -> OrderFollowUp:
        """Record one of the order's codes; the item as it is after the write, so the
        caller sees a thank-you already sent. Told twice, the code is recorded once."""
        if detail.orderId is None:
            raise ValueError("a follow-up needs the order the code was issued after")
        told = detail.model_dump_json(by_alias=True)
        common: list[Action] = [
            OrderFollowUp.order_id.set(detail.orderId),
            OrderFollowUp.expiration.set(now + FOLLOW_UP_TTL),
            OrderFollowUp.updated_at.set(now),
        ]
        item = OrderFollowUp(order_id=detail.orderId)
        try:
            # The first code makes the map; DynamoDB cannot set a key of a map not there.
            item.update(
                [OrderFollowUp.codes.set({detail.eventId: told}), *common],
                condition=OrderFollowUp.codes.does_not_exist(),
            )
        except UpdateError as error:
            if error.cause_response_code != _CONDITION_FAILED:
                raise
            # A raw map's element path; PynamoDB types the item's value, not the path.
            element: Any = OrderFollowUp.codes[detail.eventId]
            item.update([element.set(told), *common])
        return item

    def thank_you_sent(
        self, order_id: str, *, event_id: str, code: str | None, now: datetime
    ) -> OrderFollowUp:
        """Record that the order's thank-you went out, carrying `code` (or none); the item
        as it is after the write, so the caller sees the codes that came meanwhile."""
        item = OrderFollowUp(order_id=order_id)
        actions: list[Action] = [
            OrderFollowUp.thank_you_event_id.set(event_id),
            OrderFollowUp.order_id.set(order_id),
            OrderFollowUp.expiration.set(now + FOLLOW_UP_TTL),
            OrderFollowUp.updated_at.set(now),
        ]
        actions.append(
            OrderFollowUp.thank_you_code.set(code)
            if code is not None
            else OrderFollowUp.thank_you_code.remove()
        )
        item.update(actions)
        return item


def code_events_of(item: OrderFollowUp | None) -> list[OfferCodeIssued]:
    """The order's post-purchase codes recorded on `item`, first issued first."""
    if item is None or item.codes is None:
        return []
    # A raw map reads back as a MapAttribute; `as_dict` is unannotated in PynamoDB.
    codes: Any = item.codes
    stored: dict[str, str] = codes.as_dict() if hasattr(codes, "as_dict") else dict(codes)
    events = [OfferCodeIssued.model_validate_json(text) for text in stored.values()]
    return sorted(events, key=lambda event: (event.occurredAt, event.eventId))


# -- the delivery ledger ----------------------------------------------------------------


@dataclass(frozen=True)
class MessageKey:
    """Which message a record is about, and what it records about its permission."""

    event_id: str
    detail_type: str
    channel: str
    template: str
    notification_id: str
    customer_id: str | None = None
    locale: str | None = None
    consent_entry_id: str | None = None
    # The promotion a transactional message carried (the thank-you's next-purchase code).
    promotion_code: str | None = None


@dataclass(frozen=True)
class Claim:
    """The right to send one message, held until `lease_until` by `token`."""

    key: MessageKey
    token: str
    lease_until: datetime


class DeliveryLedger:
    """The writes of the exactly-once protocol (docs/notifications.md, "States").

    Per message: `claim` (one conditional update), the send, then one of `complete`,
    `fail` or `release` (one conditional update). `claim` returns the record standing in
    its way when it cannot claim: ``sent`` or ``failed`` (nothing more to do) or a live
    ``claimed`` (another invocation is sending it, or died less than a lease ago).
    """

    def claim(
        self, key: MessageKey, *, now: datetime, lease_until: datetime
    ) -> Claim | NotificationRecord:
        token = uuid.uuid4().hex
        record = NotificationRecord(
            event_id=key.event_id,
            channel=key.channel,
            template=key.template,
            notification_id=key.notification_id,
            detail_type=key.detail_type,
            customer_id=key.customer_id,
            locale=key.locale,
            consent_entry_id=key.consent_entry_id,
            promotion_code=key.promotion_code,
            expiration=now + RECORD_TTL,
        )
        actions, condition = record.claim(token, now, lease_until)
        try:
            record.update(actions, condition=condition)
        except UpdateError as error:
            if error.cause_response_code != _CONDITION_FAILED:
                raise
            existing = NotificationRecord.find(key.event_id, key.channel, key.template)
            if existing is None:
                # Expired by TTL between the two calls: as good as absent, but the
                # redelivery will find out; this one leaves it to the queue.
                raise
            return existing
        return Claim(key=key, token=token, lease_until=lease_until)

    def complete(
        self,
        claim: Claim,
        provider_message_id: str,
        *,
        now: datetime,
        segments: int | None = None,
        encoding: str | None = None,
    ) -> bool:
        """``sent`` (an SMS with its `segments` and `encoding`); False if the claim was
        taken over meanwhile (its lease ran out)."""
        actions: list[Action] = [
            NotificationRecord.status.set(SENT),
            NotificationRecord.provider_message_id.set(provider_message_id),
        ]
        if segments is not None:
            actions.append(NotificationRecord.segments.set(segments))
        if encoding is not None:
            actions.append(NotificationRecord.encoding.set(encoding))
        return self._finish(claim, actions, now)

    def fail(self, claim: Claim, cause: str, *, now: datetime) -> bool:
        """``failed``: the provider refused the message for good."""
        return self._finish(
            claim,
            [NotificationRecord.status.set(FAILED), NotificationRecord.cause.set(cause[:1000])],
            now,
        )

    def release(self, claim: Claim, cause: str, *, now: datetime) -> bool:
        """``retry``: a transient error; the next delivery of the event may claim again."""
        return self._finish(
            claim,
            [NotificationRecord.status.set(RETRY), NotificationRecord.cause.set(cause[:1000])],
            now,
        )

    @staticmethod
    def _finish(claim: Claim, actions: list[Any], now: datetime) -> bool:
        record = NotificationRecord(
            event_id=claim.key.event_id, channel=claim.key.channel, template=claim.key.template
        )
        try:
            record.update(
                [
                    *actions,
                    NotificationRecord.claim_token.remove(),
                    NotificationRecord.lease_until.remove(),
                    NotificationRecord.updated_at.set(now),
                ],
                condition=NotificationRecord.held_by(claim.token),
            )
        except UpdateError as error:
            if error.cause_response_code != _CONDITION_FAILED:
                raise
            logger.warning(
                "notification claim was taken over before it completed",
                extra={"notificationId": claim.key.notification_id, "record": record.id},
            )
            return False
        return True


# -- the unsubscribe key ----------------------------------------------------------------


class UnsubscribeKey(SecretKey):
    """The HMAC key of unsubscribe tokens: the SecretString of a Secrets Manager secret
    (`functions.core.secrets`)."""
