"""Profiles and their consent log, the campaign directory, orders' follow-ups and the
delivery ledger on moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3

from functions.core.event_types import CampaignPublished, OfferCodeIssued
from functions.core.tables import IDEMPOTENCY
from functions.notifications.dal import (
    Claim,
    DeliveryLedger,
    DirectoryStore,
    FollowUpStore,
    MessageKey,
    ProfileInput,
    ProfileStore,
    code_events_of,
)
from functions.notifications.models import ConsentEntry, NotificationRecord, get_profile

T0 = datetime(2027, 3, 10, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def test_profile_round_trip_with_its_first_consent_entry(tables: list[str]) -> None:
    ProfileStore().put(
        "cust-1",
        ProfileInput("hanako@example.com", "+819012345678", "ja", "JP", True),
        now=T0,
        request_id="req-1",
    )
    profile = get_profile("cust-1")
    assert profile is not None
    assert (profile.pk, profile.sk) == ("CUSTOMER#cust-1", "PROFILE")
    assert (profile.email, profile.locale, profile.country, profile.marketing_opt_in) == (
        "hanako@example.com",
        "ja",
        "JP",
        True,
    )
    [entry] = ConsentEntry.history("cust-1")
    assert (entry.pk, entry.sk) == ("CUSTOMER#cust-1", f"CONSENT#{entry.entry_id}")
    assert profile.consent_entry_id == entry.entry_id
    assert get_profile("cust-2") is None


def test_opting_out_logs_once(tables: list[str]) -> None:
    store = ProfileStore()
    store.put(
        "cust-1", ProfileInput("a@example.com", None, "en", None, True), now=T0, request_id=None
    )
    assert store.opt_out("cust-1", "one_click", now=T0, request_id="r") is not None
    assert store.opt_out("cust-1", "unsubscribe_link", now=T0, request_id="r") is not None
    assert [(e.marketing_opt_in, e.channel) for e in ConsentEntry.history("cust-1")] == [
        (True, "api"),
        (False, "one_click"),
    ]
    assert store.opt_out("ghost", "one_click", now=T0, request_id=None) is None


def published(version: int, name: str) -> CampaignPublished:
    return CampaignPublished(
        campaignId="camp-1",
        version=version,
        kind="offer",
        name=name,
        currency="JPY",
        timezone="Asia/Tokyo",
        startsAt=T0,
        endsAt=T0 + timedelta(days=30),
        fileKey="campaigns/camp-1.yaml",
    )


def test_the_directory_keeps_the_newest_version(tables: list[str]) -> None:
    directory = DirectoryStore(ttl=timedelta(0))
    assert directory.record(published(2, "Second"), now=T0) is True
    assert directory.record(published(1, "First"), now=T0) is False
    assert directory.record(published(2, "Second again"), now=T0) is False
    facts = directory.get("camp-1")
    assert facts is not None
    assert (facts.name, facts.timezone) == ("Second", "Asia/Tokyo")
    assert directory.get("camp-2") is None


def test_every_code_of_an_order_is_kept_once(tables: list[str]) -> None:
    follow_ups = FollowUpStore()

    def code(value: str, campaign: str, minutes: int) -> OfferCodeIssued:
        return OfferCodeIssued(
            eventId=f"evt-{value}",
            occurredAt=T0 + timedelta(minutes=minutes),
            customerId="cust-1",
            campaignId=campaign,
            offerId="THANKS500",
            code=value,
            channel="both",
            mode="unique",
            expiresAt=T0 + timedelta(days=30),
            orderId="order-1",
        )

    follow_ups.code_arrived(code("THX-2", "camp-2", 2), now=T0)
    follow_ups.code_arrived(code("THX-1", "camp-1", 1), now=T0)
    again = follow_ups.code_arrived(code("THX-1", "camp-1", 1), now=T0)
    assert [c.code for c in code_events_of(again)] == ["THX-1", "THX-2"]  # first issued first
    after = follow_ups.thank_you_sent("order-1", event_id="evt-p", code="THX-1", now=T0)
    assert (after.thank_you_event_id, after.thank_you_code) == ("evt-p", "THX-1")
    assert len(code_events_of(after)) == 2
    assert code_events_of(follow_ups.find("order-2")) == []


def key(event_id: str = "evt_1", channel: str = "email") -> MessageKey:
    return MessageKey(
        event_id=event_id,
        detail_type="ClaimApproved",
        channel=channel,
        template="claim_approved",
        notification_id=f"ntf-{event_id}-{channel}",
        customer_id="cust-1",
        locale="ja",
    )


def test_one_message_per_event_channel_and_template(tables: list[str]) -> None:
    ledger = DeliveryLedger()
    claim = ledger.claim(key(), now=T0, lease_until=T0 + LEASE)
    assert isinstance(claim, Claim)
    in_flight = ledger.claim(key(), now=T0 + timedelta(seconds=1), lease_until=T0 + LEASE)
    assert isinstance(in_flight, NotificationRecord)
    assert in_flight.status == "claimed"
    assert isinstance(ledger.claim(key(channel="sms"), now=T0, lease_until=T0 + LEASE), Claim)
    assert isinstance(ledger.claim(key("evt_2"), now=T0, lease_until=T0 + LEASE), Claim)

    assert ledger.complete(claim, "ses-1", now=T0) is True
    # Sent: never again, even once the sending lease would have run out.
    done = ledger.claim(key(), now=T0 + timedelta(hours=1), lease_until=T0 + 2 * LEASE)
    assert isinstance(done, NotificationRecord)
    assert (done.status, done.provider_message_id) == ("sent", "ses-1")
    assert done.id == "notification#email#claim_approved#evt_1"


def test_a_dead_senders_claim_is_taken_over_after_its_lease_and_only_then(
    tables: list[str],
) -> None:
    ledger = DeliveryLedger()
    first = ledger.claim(key(), now=T0, lease_until=T0 + LEASE)
    assert isinstance(first, Claim)
    assert isinstance(
        ledger.claim(key(), now=T0 + LEASE, lease_until=T0 + 2 * LEASE), NotificationRecord
    )
    second = ledger.claim(key(), now=T0 + LEASE + timedelta(seconds=1), lease_until=T0 + 3 * LEASE)
    assert isinstance(second, Claim)
    # The first holder, were it alive after all, may no longer complete.
    assert ledger.complete(first, "ses-late", now=T0 + LEASE) is False
    assert ledger.complete(second, "ses-2", now=T0 + LEASE) is True
    record = NotificationRecord.find("evt_1", "email", "claim_approved")
    assert record is not None
    assert (record.provider_message_id, record.attempts) == ("ses-2", 2)


def test_a_released_claim_may_be_claimed_again_a_failed_one_never(tables: list[str]) -> None:
    ledger = DeliveryLedger()
    claim = ledger.claim(key(), now=T0, lease_until=T0 + LEASE)
    assert isinstance(claim, Claim)
    assert ledger.release(claim, "Throttling: slow down", now=T0)
    again = ledger.claim(key(), now=T0, lease_until=T0 + LEASE)
    assert isinstance(again, Claim)
    assert ledger.fail(again, "MessageRejected: no such mailbox", now=T0)
    final = ledger.claim(key(), now=T0 + timedelta(days=1), lease_until=T0 + LEASE)
    assert isinstance(final, NotificationRecord)
    assert (final.status, final.cause) == ("failed", "MessageRejected: no such mailbox")


def test_record_shape_leaves_powertools_attributes_alone(tables: list[str]) -> None:
    DeliveryLedger().claim(key(), now=T0, lease_until=T0 + LEASE)
    item = boto3.client("dynamodb").get_item(
        TableName=IDEMPOTENCY.default_name,
        Key={"id": {"S": "notification#email#claim_approved#evt_1"}},
    )["Item"]
    # `expiration` is the table's TTL: epoch seconds, as Powertools writes it too.
    assert item["expiration"] == {"N": str(int((T0 + timedelta(days=30)).timestamp()))}
    assert "data" not in item
    assert "validation" not in item
    # Powertools keys are "<function>.<module>.<fn>#<hash>": a '.' before the first '#'.
    assert "." not in item["id"]["S"].split("#")[0]
