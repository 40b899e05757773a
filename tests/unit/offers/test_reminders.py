"""The daily reminder sweep: which held codes are reminded on which local day, and why each
reminder is announced once however often the sweep runs that day.

The sweep only marks the code's issue (the day, in a set, on a condition); the offers
outbox publishes `OfferExpiring` from that change on the table's stream. So the events
here are what the outbox makes of the stream moto's table produced.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.campaigns.dal import CampaignStore
from functions.core.clock import FixedClock, frozen_at, local_date
from functions.core.event_types import OfferExpiring
from functions.offers.handlers import api, reminders
from functions.offers.logic import reminder_due
from functions.offers.models import CodeIssue
from infra.local.proxy_event import LambdaContextStub
from tests.unit.campaigns.documents import campaign as rebate_campaign
from tests.unit.campaigns.documents import offer as rebate_offer
from tests.unit.offers.api_calls import BIG_CART, issue, publish, redeem, roll_back
from tests.unit.offers.table_stream import published

# The campaign ends at local midnight starting 2027-06-01 in Tokyo (15:00 UTC the day
# before): 3 local days before is 2027-05-29, 1 day before is 2027-05-31.
SALE: dict[str, Any] = {
    "id": "sale-2027",
    "name": "May sale",
    "kind": "offer",
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "starts_at": "2027-05-01T00:00:00+09:00",
    "ends_at": "2027-06-01T00:00:00+09:00",
    "budget": {"amount": 100_000},
    "eligibility": {"channels": ["online", "in_store"]},
    "offers": [
        {
            "id": "MAY500",
            "channel": "online",
            "discount": {"amount": 500},
            "codes": {"mode": "unique", "prefix": "MAY", "count": 5},
            "reminders_days_before_expiry": [3, 1],
        },
        {
            "id": "MAYSHARED",
            "channel": "online",
            "discount": {"amount": 100},
            "codes": {"mode": "shared", "code": "may-everyone"},
            "reminders_days_before_expiry": [3],
        },
        {
            "id": "QUIET",
            "channel": "online",
            "discount": {"amount": 100},
            "codes": {"mode": "unique", "prefix": "QT", "count": 5},
        },
    ],
}
ENDS_AT = datetime(2027, 5, 31, 15, 0, tzinfo=UTC)
ISSUED_AT = datetime(2027, 5, 10, 3, 0, tzinfo=UTC)


def tokyo(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant of May 2027 given in Tokyo's local time."""
    return datetime(2027, 5, day, hour, minute, tzinfo=UTC) - timedelta(hours=9)


@pytest.fixture
def clock(tables: list[str]) -> Iterator[FixedClock]:
    api.store.campaigns.clear()
    reminders.store.campaigns.clear()
    publish(SALE)
    with frozen_at(ISSUED_AT) as fixed:
        yield fixed
    api.store.campaigns.clear()
    reminders.store.campaigns.clear()


def sweep(clock: FixedClock, at: datetime, **context: Any) -> dict[str, Any]:
    clock.set(at)
    stub = LambdaContextStub(function_name="reminders", **context)
    response: dict[str, Any] = reminders.handler(
        {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}},
        cast(LambdaContext, stub),
    )
    return response


def expiring() -> list[OfferExpiring]:
    return published(OfferExpiring)


def reminded(events: list[OfferExpiring]) -> list[tuple[str, str, int]]:
    return sorted((e.customerId, e.offerId, e.daysBefore) for e in events)


# -- which day is a reminder day (the rule) --------------------------------------------


@pytest.mark.parametrize(
    ("now", "due"),
    [
        pytest.param(tokyo(28, 23, 59), None, id="4-days-before"),
        pytest.param(tokyo(29, 0, 0), 3, id="3-days-before-from-local-midnight"),
        pytest.param(tokyo(29, 23, 59), 3, id="3-days-before-until-local-midnight"),
        pytest.param(tokyo(30, 12), None, id="2-days-before"),
        pytest.param(tokyo(31, 9), 1, id="1-day-before"),
        pytest.param(ENDS_AT, None, id="expired"),
    ],
)
def test_a_reminder_is_due_on_its_local_day_in_the_campaign_s_zone(
    now: datetime, due: int | None
) -> None:
    config = rebate_campaign(
        kind="offer",
        reward=None,
        claims=None,
        starts_at="2027-05-01T00:00:00+09:00",
        ends_at="2027-06-01T00:00:00+09:00",
        offers=[rebate_offer(reminders_days_before_expiry=[3, 1])],
    )
    reminder = reminder_due(config, config.offers[0], now)
    assert (reminder.days_before if reminder else None) == due
    if reminder is not None:
        assert reminder.expires_at == ENDS_AT
        assert reminder.day == local_date(now, "Asia/Tokyo")


# -- the sweep ----------------------------------------------------------------------------


def test_the_right_codes_are_reminded_on_the_right_local_day(clock: FixedClock) -> None:
    holder = issue("MAY500", "cust-holder")
    issue("MAYSHARED", "cust-holder")
    issue("QUIET", "cust-holder")  # an offer without reminders
    redeemer = issue("MAY500", "cust-redeemer")
    assert redeem(redeemer, "cust-redeemer", "order-9", cart_body=BIG_CART).status == 201

    # Still 2027-05-28 in UTC, already 3 days before the end in Tokyo.
    assert sweep(clock, tokyo(28, 23, 59))["reminded"] == 0
    assert sweep(clock, tokyo(29, 0, 30))["reminded"] == 2
    assert sweep(clock, tokyo(30, 9))["reminded"] == 0
    assert sweep(clock, tokyo(31, 9))["reminded"] == 1

    events = expiring()
    assert reminded(events) == [
        ("cust-holder", "MAY500", 1),
        ("cust-holder", "MAY500", 3),
        ("cust-holder", "MAYSHARED", 3),
    ]
    unique = [e for e in events if e.offerId == "MAY500"]
    assert {(e.code, e.campaignId, e.expiresAt) for e in unique} == {(holder, "sale-2027", ENDS_AT)}
    (shared,) = [e for e in events if e.offerId == "MAYSHARED"]
    assert shared.code == "MAY-EVERYONE"
    assert shared.occurredAt == tokyo(29, 0, 30)


def test_fired_twice_on_one_day_the_reminder_is_announced_once(clock: FixedClock) -> None:
    issue("MAY500", "cust-1")

    assert sweep(clock, tokyo(29, 9))["reminded"] == 1
    assert sweep(clock, tokyo(29, 21))["reminded"] == 0

    (event,) = expiring()
    assert (event.customerId, event.daysBefore) == ("cust-1", 3)
    held = CodeIssue.find("cust-1", "MAY500")
    assert held is not None and held.reminded_days == {"2027-05-29"}


def test_a_reminder_marked_twice_is_refused_by_its_condition(clock: FixedClock) -> None:
    # The index the sweep reads lags behind the table: the condition is what holds.
    issue("MAY500", "cust-1")
    clock.set(tokyo(29, 9))
    held = CodeIssue.find("cust-1", "MAY500")
    assert held is not None
    campaign = reminders.store.campaign("sale-2027")
    due = reminder_due(campaign.config, campaign.config.offer("MAY500"), tokyo(29, 9))
    assert due is not None

    assert reminders.store.mark_reminder(held, due, code=held.code, at=tokyo(29, 9)) is True
    assert reminders.store.mark_reminder(held, due, code=held.code, at=tokyo(29, 10)) is False

    (event,) = expiring()
    assert event.occurredAt == tokyo(29, 9)


def test_a_run_out_of_time_stops_and_fails_so_that_lambda_runs_it_again(
    clock: FixedClock,
) -> None:
    issue("MAY500", "cust-1")

    # No time left: it stops before its first mark and says so, as a failed scheduled
    # invocation, which Lambda retries (twice, then the DLQ).
    with pytest.raises(reminders.RemindersUnfinished):
        sweep(clock, tokyo(29, 9), deadline_ms=0.0)
    assert expiring() == []

    assert sweep(clock, tokyo(29, 9, 1))["reminded"] == 1
    assert reminded(expiring()) == [("cust-1", "MAY500", 3)]


def test_a_sweep_stopped_midway_is_finished_by_the_next_run(clock: FixedClock) -> None:
    for customer in ("cust-1", "cust-2", "cust-3"):
        issue("MAY500", customer)

    first = reminders.store.send_reminders(tokyo(29, 9), should_stop=iter([False, True]).__next__)
    assert (first.reminded, first.complete) == (1, False)
    assert sweep(clock, tokyo(29, 12))["reminded"] == 2

    assert reminded(expiring()) == [
        ("cust-1", "MAY500", 3),
        ("cust-2", "MAY500", 3),
        ("cust-3", "MAY500", 3),
    ]


def test_a_redeemed_code_gets_no_reminder_until_its_use_is_rolled_back(
    clock: FixedClock,
) -> None:
    code = issue("MAY500", "cust-1")
    answer = redeem(code, "cust-1", "order-1", cart_body=BIG_CART)
    assert answer.status == 201

    assert sweep(clock, tokyo(29, 9))["reminded"] == 0
    clock.set(ISSUED_AT)
    assert roll_back(answer.body["redemptionId"]).status == 200
    assert sweep(clock, tokyo(31, 9))["reminded"] == 1

    (event,) = expiring()
    assert (event.code, event.daysBefore) == (code, 1)


def test_an_archived_campaign_reminds_nobody(clock: FixedClock) -> None:
    issue("MAY500", "cust-1")
    assert CampaignStore().archive("sale-2027", "campaigns/sale-2027.json", ISSUED_AT)

    assert sweep(clock, tokyo(29, 9))["reminded"] == 0
    assert expiring() == []
