"""The delivery ledger's promise at each point a delivery can die (docs/notifications.md).

Through the messages consumer (`consume`, as its handler calls it) over the real ledger
on moto, with in-memory senders and publisher that fail where a test says. A crash is a
`BaseException` the batch processor does not catch: the invocation dies there, as a
Lambda timeout or an out-of-memory would end it, and SQS delivers the batch again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from functions.core.clock import FixedClock, frozen_at
from functions.core.event_types import NotificationFailed, NotificationSent
from functions.core.events import InMemoryPublisher
from functions.notifications.dal import (
    DeliveryLedger,
    DirectoryStore,
    FollowUpStore,
    ProfileStore,
)
from functions.notifications.handlers import messages
from functions.notifications.handlers.messages import consume
from functions.notifications.models import NotificationRecord
from functions.notifications.senders import (
    InMemoryEmailSender,
    InMemorySmsSender,
    PermanentSendError,
    TransientSendError,
)
from functions.notifications.service import Deliverer, NotificationService
from tests.unit.notifications.service_support import (
    CONTEXT,
    T0,
    UNSUBSCRIBE_KEY,
    Cloud,
    claim_approved,
    cloud,
    count_aws_calls,
    envelope,
    failed_ids,
    ids,
    save_profile,
    sqs_batch,
)

__all__ = ["cloud", "ids"]

Ids = Callable[[str], str]
# The consumer's claims last the invocation (the stub context has 30 s left) and 30 s more.
PAST_THE_LEASE = timedelta(seconds=61)


class Crash(BaseException):
    """The process dies here."""


def crash() -> None:
    raise Crash


@dataclass
class CrashingLedger(DeliveryLedger):
    """The real ledger, dying before the listed calls."""

    crash_before: list[str] = field(default_factory=list)

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        self._maybe("claim")
        return super().claim(*args, **kwargs)

    def complete(self, *args: Any, **kwargs: Any) -> Any:
        self._maybe("complete")
        return super().complete(*args, **kwargs)

    def _maybe(self, step: str) -> None:
        if step in self.crash_before:
            self.crash_before.remove(step)
            raise Crash


@dataclass
class FailingPublisher(InMemoryPublisher):
    failures: list[Exception] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def publish(self, *details: Any) -> None:
        if self.failures:
            raise self.failures.pop(0)
        super().publish(*details)


@dataclass
class World:
    service: NotificationService
    ledger: CrashingLedger
    email: InMemoryEmailSender
    sms: InMemorySmsSender
    events: FailingPublisher
    clock: FixedClock

    def deliver(self, event: Any) -> list[str]:
        """One invocation with a batch of `event`; the message ids reported failed."""
        batch = sqs_batch(envelope(event))
        return failed_ids(consume(batch, CONTEXT, self.service))

    def record(self, event: Any, channel: str = "email") -> NotificationRecord:
        found = NotificationRecord.find(event.eventId, channel, "claim_approved")
        assert found is not None
        return found

    def announced(self, event: Any) -> list[Any]:
        return [d for d in self.events.published if d.triggerEventId == event.eventId]  # type: ignore[attr-defined]


@pytest.fixture
def world(cloud: Cloud) -> Iterator[World]:
    ledger = CrashingLedger()
    email, sms, events = InMemoryEmailSender(), InMemorySmsSender(), FailingPublisher()
    service = NotificationService(
        deliverer=Deliverer(
            ledger=ledger,
            email=email,
            sms=sms,
            events=events,
            sender_email="rewards@rebates.example",
            unsubscribe_url="https://api.rebates.example/v1/unsubscribe",
            unsubscribe_key=UNSUBSCRIBE_KEY.encode,
        ),
        profiles=ProfileStore(),
        directory=DirectoryStore(),
        follow_ups=FollowUpStore(),
    )
    with frozen_at(T0) as clock:
        yield World(service, ledger, email, sms, events, clock)


def an_event(ids: Ids, *, phone: str | None = None) -> Any:
    customer = ids("cust")
    save_profile(customer, email=f"{ids('mail')}@example.com", phone=phone)
    return claim_approved(customer, ids("camp"), ids("evt"))


def test_a_replayed_event_sends_once_with_one_send_and_two_ledger_writes(
    world: World, ids: Ids, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = an_event(ids)
    calls = count_aws_calls(monkeypatch)
    assert world.deliver(event) == []
    # The profile and the campaign read, then claim and complete: no other write.
    assert calls == [
        ("dynamodb", "GetItem"),
        ("dynamodb", "GetItem"),
        ("dynamodb", "UpdateItem"),
        ("dynamodb", "UpdateItem"),
    ]
    assert len(world.email.sent) == 1

    calls.clear()
    assert world.deliver(event) == []
    assert len(world.email.sent) == 1
    # A replay: the claim is refused and the record read, nothing written.
    assert [c for c in calls if c[1] not in ("GetItem",)] == [("dynamodb", "UpdateItem")]
    assert {d.eventId for d in world.announced(event)} == {world.announced(event)[0].eventId}


def test_a_crash_before_the_claim_leaves_nothing_and_the_retry_sends(
    world: World, ids: Ids
) -> None:
    event = an_event(ids)
    world.ledger.crash_before.append("claim")
    with pytest.raises(Crash):
        world.deliver(event)
    assert NotificationRecord.find(event.eventId, "email", "claim_approved") is None
    assert world.deliver(event) == []
    assert len(world.email.sent) == 1


def test_a_crash_after_the_claim_waits_for_the_lease_then_sends_once(
    world: World, ids: Ids
) -> None:
    event = an_event(ids)
    world.email.fail_next(Crash())
    with pytest.raises(Crash):
        world.deliver(event)
    assert world.record(event).status == "claimed"

    # Redelivered while the lease runs: it could still be sending, so nothing is sent.
    assert len(world.deliver(event)) == 1
    assert world.email.sent == []

    world.clock.advance(PAST_THE_LEASE)
    assert world.deliver(event) == []
    assert len(world.email.sent) == 1
    record = world.record(event)
    assert (record.status, record.attempts) == ("sent", 2)
    assert world.deliver(event) == []
    assert len(world.email.sent) == 1


def test_a_transient_send_error_releases_the_claim_and_the_retry_sends_once(
    world: World, ids: Ids
) -> None:
    event = an_event(ids)
    world.email.fail_next(TransientSendError("TooManyRequestsException", "slow down"))
    assert len(world.deliver(event)) == 1
    assert world.record(event).status == "retry"
    assert world.announced(event) == []
    assert world.deliver(event) == []  # no lease to wait for: it was released
    assert world.deliver(event) == []
    assert len(world.email.sent) == 1


def test_a_permanent_send_error_fails_for_good_and_is_announced(world: World, ids: Ids) -> None:
    event = an_event(ids)
    world.email.fail_next(PermanentSendError("MessageRejected", "Address blacklisted."))
    assert world.deliver(event) == []
    record = world.record(event)
    assert (record.status, record.cause) == ("failed", "MessageRejected: Address blacklisted.")
    [failed] = world.announced(event)
    assert isinstance(failed, NotificationFailed)
    assert failed.notificationId == record.notification_id
    assert world.deliver(event) == []
    assert world.email.calls == 1


def test_a_crash_after_the_send_before_completion_sends_again_after_the_lease(
    world: World, ids: Ids
) -> None:
    """The one window the ledger cannot close: the provider took the message, and the
    process died before the record said so. After the lease it is sent again (at least
    once, rather than maybe never); replays before and after send nothing more."""
    event = an_event(ids)
    world.email.fail_next(crash)
    with pytest.raises(Crash):
        world.deliver(event)
    assert len(world.email.sent) == 1
    assert world.record(event).status == "claimed"

    assert len(world.deliver(event)) == 1
    assert len(world.email.sent) == 1
    world.clock.advance(PAST_THE_LEASE)
    assert world.deliver(event) == []
    assert len(world.email.sent) == 2
    assert world.deliver(event) == []
    assert len(world.email.sent) == 2


def test_a_crash_before_the_completion_write_is_the_same_window(world: World, ids: Ids) -> None:
    event = an_event(ids)
    world.ledger.crash_before.append("complete")
    with pytest.raises(Crash):
        world.deliver(event)
    assert (len(world.email.sent), world.record(event).status) == (1, "claimed")


def test_a_failed_announcement_is_retried_without_sending_again(world: World, ids: Ids) -> None:
    event = an_event(ids)
    world.events.failures.append(RuntimeError("PutEvents refused the entry"))
    assert len(world.deliver(event)) == 1
    assert world.record(event).status == "sent"
    assert world.announced(event) == []
    assert world.deliver(event) == []
    assert len(world.email.sent) == 1
    [sent] = world.announced(event)
    assert isinstance(sent, NotificationSent)
    assert sent.providerMessageId == world.email.sent[0].message_id


def test_one_channel_failing_retries_that_channel_alone(world: World, ids: Ids) -> None:
    event = an_event(ids, phone="+819011112222")
    world.sms.fail_next(TransientSendError("Throttling", "Rate exceeded"))
    assert len(world.deliver(event)) == 1
    assert (len(world.email.sent), len(world.sms.sent)) == (1, 0)
    assert world.deliver(event) == []
    assert (len(world.email.sent), len(world.sms.sent)) == (1, 1)


def test_the_consumer_handler_builds_its_service_once(cloud: Cloud) -> None:
    from functions.core.settings import load_settings

    settings = load_settings(messages.MessagesSettings)
    assert messages._service(settings) is messages._service(settings)
