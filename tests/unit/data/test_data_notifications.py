"""Profiles, unsubscribe tokens and notification dedupe records on moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3

from functions.core.tables import IDEMPOTENCY
from functions.notifications.models import (
    FAILED,
    SENT,
    CustomerProfile,
    NotificationRecord,
    UnsubscribeToken,
    begin_notification,
    get_profile,
    issue_unsubscribe_token,
)

T0 = datetime(2027, 3, 10, tzinfo=UTC)


def save_profile(customer_id: str = "cust-1") -> None:
    CustomerProfile(
        customer_id=customer_id,
        email="hanako@example.com",
        phone="+819012345678",
        locale="ja",
        marketing_opt_in=True,
        updated_at=T0,
    ).save()


def test_profile_round_trip(tables: list[str]) -> None:
    save_profile()
    profile = get_profile("cust-1")
    assert profile is not None
    assert (profile.pk, profile.sk) == ("CUSTOMER#cust-1", "PROFILE")
    assert (profile.email, profile.locale, profile.marketing_opt_in) == (
        "hanako@example.com",
        "ja",
        True,
    )
    assert profile.unsubscribe_token is None
    assert get_profile("cust-2") is None


def test_unsubscribe_token_is_issued_once_and_resolves(tables: list[str]) -> None:
    save_profile()
    assert issue_unsubscribe_token("cust-1", "tok-first", T0) == "tok-first"
    assert issue_unsubscribe_token("cust-1", "tok-second", T0) == "tok-first"
    assert UnsubscribeToken.resolve("tok-first") == "cust-1"
    assert UnsubscribeToken.resolve("tok-second") is None
    profile = get_profile("cust-1")
    assert profile is not None
    assert profile.unsubscribe_token == "tok-first"


def test_no_token_without_a_profile(tables: list[str]) -> None:
    assert issue_unsubscribe_token("ghost", "tok", T0) is None
    assert UnsubscribeToken.resolve("tok") is None


def record(event_id: str = "evt_1", channel: str = "email") -> NotificationRecord:
    return NotificationRecord(
        event_id=event_id,
        channel=channel,
        customer_id="cust-1",
        template="claim_approved",
        expiration=T0 + timedelta(days=7),
        updated_at=T0,
        status="sending",
    )


def test_one_message_per_event_and_channel(tables: list[str]) -> None:
    assert begin_notification(record(), T0) is True
    assert begin_notification(record(), T0 + timedelta(seconds=1)) is False  # in flight
    assert begin_notification(record(channel="sms"), T0) is True  # the other channel
    assert begin_notification(record("evt_2"), T0) is True

    sent = NotificationRecord.find("evt_1", "email")
    assert sent is not None
    assert sent.id == "notification#evt_1#email"
    sent.update([NotificationRecord.status.set(SENT), NotificationRecord.message_id.set("m-1")])
    # Sent: never again, even once the sending lease would have run out.
    assert begin_notification(record(), T0 + timedelta(hours=1)) is False


def test_a_crashed_or_failed_send_can_be_retried(tables: list[str]) -> None:
    assert begin_notification(record(), T0) is True
    # The sender died: after its lease, another delivery of the event may send.
    assert begin_notification(record(), T0 + timedelta(minutes=4)) is False
    assert begin_notification(record(), T0 + timedelta(minutes=6)) is True
    found = NotificationRecord.find("evt_1", "email")
    assert found is not None
    found.update([NotificationRecord.status.set(FAILED)])
    assert begin_notification(record(), T0 + timedelta(minutes=7)) is True


def test_record_shape_leaves_powertools_attributes_alone(tables: list[str]) -> None:
    begin_notification(record(), T0)
    item = boto3.client("dynamodb").get_item(
        TableName=IDEMPOTENCY.default_name, Key={"id": {"S": "notification#evt_1#email"}}
    )["Item"]
    # `expiration` is the table's TTL: epoch seconds, as Powertools writes it too.
    assert item["expiration"] == {"N": str(int((T0 + timedelta(days=7)).timestamp()))}
    assert "data" not in item
    assert "validation" not in item
    # Powertools keys are "<function>.<module>.<fn>#<hash>": a '.' before the first '#'.
    assert "." not in item["id"]["S"].split("#")[0]
