"""Daily counters, seen-event and session markers on moto: exact counting."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from functions.analytics.models import (
    DailyAmounts,
    DailyBreakdown,
    DailyCounter,
    SeenEvent,
    SessionConversion,
    SessionTouch,
)
from functions.core.models import Transaction, TransactionCancelled
from tests.support.tables import refused_by_condition

T0 = datetime(2027, 3, 10, 3, 0, tzinfo=UTC)
DAY = date(2027, 3, 10)
CAMPAIGN = "spring-trail-2027"


def count_event(event_id: str, day: date = DAY, sales: int = 0, **counters: int) -> None:
    """What the Kinesis consumer does: marker and counters in one transaction."""
    transaction = Transaction()
    transaction.put(
        "seen",
        SeenEvent(
            event_id=event_id,
            event_type="purchase",
            seen_at=T0,
            expires_at=T0 + timedelta(days=30),
        ),
        condition=SeenEvent.first_time(),
    )
    transaction.update(
        "counter",
        DailyCounter.ref(CAMPAIGN, day),
        DailyCounter.increment(CAMPAIGN, day, **counters),
    )
    if sales:
        transaction.update(
            "amounts",
            DailyAmounts.ref(CAMPAIGN, day, "JPY"),
            DailyAmounts.increment(CAMPAIGN, day, "JPY", sales=sales),
        )
    transaction.commit()


def test_a_repeated_event_counts_once(tables: list[str]) -> None:
    count_event("evt_1", purchases=1, sales=12000)
    with pytest.raises(TransactionCancelled) as replay:
        count_event("evt_1", purchases=1, sales=12000)
    assert replay.value.reasons == {"seen": "ConditionalCheckFailed"}
    count_event("evt_2", purchases=1, redemptions=1, sales=8000)
    [counter] = DailyCounter.between(CAMPAIGN, DAY, DAY)
    assert (counter.pk, counter.sk) == ("CAMPAIGN#spring-trail-2027", "DAY#2027-03-10")
    assert (counter.purchases, counter.redemptions, counter.sessions) == (2, 1, 0)
    [amounts] = DailyAmounts.between(CAMPAIGN, DAY, DAY)
    assert (amounts.currency, amounts.sales, amounts.rewards_paid) == ("JPY", 20000, 0)


def test_date_ranges(tables: list[str]) -> None:
    for n in range(5):
        count_event(f"evt_{n}", day=DAY + timedelta(days=n), page_views=n + 1, sales=100)
    days = DailyCounter.between(CAMPAIGN, DAY + timedelta(days=1), DAY + timedelta(days=3))
    assert [c.day for c in days] == ["2027-03-11", "2027-03-12", "2027-03-13"]
    assert [c.page_views for c in DailyCounter.between(CAMPAIGN, DAY, DAY)] == [1]
    amounts = DailyAmounts.between(CAMPAIGN, DAY + timedelta(days=3), DAY + timedelta(days=9))
    assert [a.day for a in amounts] == ["2027-03-13", "2027-03-14"]
    # Counters and amounts share the partition but never show up in each other's range.
    assert all(c.sk.startswith("DAY#") for c in DailyCounter.between(CAMPAIGN, DAY, DAY))


def test_unknown_counter_names_are_refused() -> None:
    with pytest.raises(ValueError, match="no counter"):
        DailyCounter.increment(CAMPAIGN, DAY, clicks=1)
    with pytest.raises(ValueError, match="no counter"):
        DailyAmounts.increment(CAMPAIGN, DAY, "JPY", revenue=1)


def test_breakdown_counts_open_ended_values(tables: list[str]) -> None:
    for source in ("newsletter", "newsletter", "ads#spring"):
        DailyBreakdown.ref(CAMPAIGN, DAY, "last_touch", source).update(
            DailyBreakdown.increment(CAMPAIGN, DAY, "last_touch", source)
        )
    DailyBreakdown.ref(CAMPAIGN, DAY, "first_touch", "ads#spring").update(
        DailyBreakdown.increment(CAMPAIGN, DAY, "first_touch", "ads#spring")
    )
    found = {(b.dimension, b.value): b.total for b in DailyBreakdown.between(CAMPAIGN, DAY, DAY)}
    assert found == {
        ("last_touch", "newsletter"): 2,
        ("last_touch", "ads#spring"): 1,
        ("first_touch", "ads#spring"): 1,
    }


def test_a_session_counts_once_and_keeps_first_and_last_touch(tables: list[str]) -> None:
    def first_touch(channel: str, at: datetime) -> None:
        transaction = Transaction()
        transaction.put(
            "touch",
            SessionTouch(
                session_id="sess-1",
                campaign_id=CAMPAIGN,
                first_channel=channel,
                first_at=at,
                last_channel=channel,
                last_at=at,
                expires_at=at + timedelta(days=2),
            ),
            condition=SessionTouch.first_time(),
        )
        transaction.update(
            "counter",
            DailyCounter.ref(CAMPAIGN, DAY),
            DailyCounter.increment(CAMPAIGN, DAY, sessions=1),
        )
        transaction.commit()

    first_touch("newsletter", T0)
    with pytest.raises(TransactionCancelled):
        first_touch("ads", T0 + timedelta(minutes=1))
    touch = SessionTouch.find("sess-1", CAMPAIGN)
    assert touch is not None
    touch.update(*SessionTouch.touch("ads", T0 + timedelta(minutes=2)))
    with refused_by_condition():  # an older event arriving late does not move it back
        touch.update(*SessionTouch.touch("social", T0 + timedelta(minutes=1)))
    touch = SessionTouch.find("sess-1", CAMPAIGN)
    assert touch is not None
    assert (touch.first_channel, touch.last_channel) == ("newsletter", "ads")
    [counter] = DailyCounter.between(CAMPAIGN, DAY, DAY)
    assert counter.sessions == 1


def test_a_conversion_counts_once_per_session(tables: list[str]) -> None:
    def convert(event_id: str) -> None:
        transaction = Transaction()
        transaction.put(
            "conversion",
            SessionConversion(
                session_id="sess-1",
                campaign_id=CAMPAIGN,
                event_id=event_id,
                order_id="order-1",
                converted_at=T0,
                expires_at=T0 + timedelta(days=2),
            ),
            condition=SessionConversion.first_time(),
        )
        transaction.update(
            "counter",
            DailyCounter.ref(CAMPAIGN, DAY),
            DailyCounter.increment(CAMPAIGN, DAY, conversions=1),
        )
        transaction.commit()

    convert("evt_1")
    with pytest.raises(TransactionCancelled) as cancelled:
        convert("evt_2")  # a second purchase in the same session
    assert cancelled.value.failed("conversion")
    [counter] = DailyCounter.between(CAMPAIGN, DAY, DAY)
    assert counter.conversions == 1
