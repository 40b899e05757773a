"""Daily counters, seen-event and session markers on moto: exact counting."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from functions.analytics.models import (
    DailyAmounts,
    DailyBreakdown,
    DailyCounter,
    OrderFact,
    SeenEvent,
    SessionState,
    VisitorTouch,
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


def test_a_session_state_is_written_only_over_the_version_read(tables: list[str]) -> None:
    def write(version_read: int | None, page_views: int) -> None:
        transaction = Transaction()
        transaction.put(
            "session",
            SessionState(
                session_id="sess#1",
                campaign_id=CAMPAIGN,
                day="2027-03-10",
                first_ms=1,
                last_ms=2,
                page_views=page_views,
                version=(version_read or 0) + 1,
                expires_at=T0 + timedelta(days=2),
            ),
            condition=SessionState.unchanged_since(version_read),
        )
        transaction.commit()

    write(None, 1)
    with pytest.raises(TransactionCancelled):
        write(None, 5)  # a second "first" write of the same session
    write(1, 2)
    with pytest.raises(TransactionCancelled):
        write(1, 9)  # written over a version that is no longer the stored one
    state = SessionState.find("sess#1", CAMPAIGN)
    assert state is not None
    assert (state.pk, state.page_views, state.version) == ("SESSION#sess%231", 2, 2)


def test_touches_of_a_window_oldest_first(tables: list[str]) -> None:
    for at_ms, event_id in ((5_000, "b"), (1_000, "a"), (9_000, "c"), (20_000, "d")):
        VisitorTouch(
            anonymous_id="anon#1",
            at_ms=at_ms,
            event_id=event_id,
            channel=f"src-{event_id}/cpc",
            expires_at=T0 + timedelta(days=31),
        ).save()
    touches = VisitorTouch.within("anon#1", 1_000, 9_000)
    assert [(t.at_ms, t.event_id) for t in touches] == [(1_000, "a"), (5_000, "b"), (9_000, "c")]


def test_order_facts_are_written_once_each(tables: list[str]) -> None:
    kept = T0 + timedelta(days=400)
    OrderFact(
        order_id="o#1", fact="TOTAL", amount=100, currency="JPY", at_ms=1, expires_at=kept
    ).save(condition=OrderFact.first_time())
    with refused_by_condition():  # the first total wins
        OrderFact(
            order_id="o#1", fact="TOTAL", amount=999, currency="JPY", at_ms=2, expires_at=kept
        ).save(condition=OrderFact.first_time())
    OrderFact(order_id="o#1", fact=f"TIE#{CAMPAIGN}", expires_at=kept).save(
        condition=OrderFact.first_time()
    )
    facts = {fact.fact: fact for fact in OrderFact.of("o#1")}
    assert set(facts) == {"TOTAL", f"TIE#{CAMPAIGN}"}
    assert facts["TOTAL"].amount == 100
