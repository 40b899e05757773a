"""`Counters.count` on in-process moto: each figure from the events that move it, once."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from functions.analytics.dal import Counters
from functions.analytics.logic import DIRECT, UNATTRIBUTED
from functions.analytics.models import DailyAmounts, DailyBreakdown, DailyCounter
from functions.analytics.stats import Totals, kpis
from functions.core.clock import utc_now
from functions.core.models import Transaction
from tests.unit.analytics.analytics_support import (
    CAMPAIGN,
    T0,
    aws_env,
    counters,
    domain,
    storefront,
    tables,
)

__all__ = ["aws_env", "tables"]

DAY = date(2027, 3, 10)


def figures(first: date = DAY, last: date = DAY) -> dict[str, Any]:
    totals = Totals.of(
        DailyCounter.between(CAMPAIGN, first, last),
        DailyAmounts.between(CAMPAIGN, first, last),
        DailyBreakdown.between(CAMPAIGN, first, last),
    )
    return kpis(totals, "JPY")


def count_all(counting: Counters, *events: Any) -> None:
    for event in events:
        counting.count(event, now=utc_now())


def test_a_replayed_event_counts_once(tables: list[str]) -> None:
    counting = counters()
    purchase = storefront("purchase", value=12_000, currency="JPY")
    assert counting.count(purchase, now=utc_now()).counted
    replay = counting.count(purchase, now=utc_now())
    assert (replay.counted, replay.reason) == (False, "replayed")
    stats = figures()
    assert (stats["sessions"], stats["conversions"], stats["orders"]) == (1, 1, 1)
    assert stats["totalSales"] == {"amount": 12_000, "currency": "JPY"}


def test_a_goal_twice_in_a_session_counts_once_and_sales_count_both_orders(
    tables: list[str],
) -> None:
    counting = counters()
    count_all(
        counting,
        storefront("page_view"),
        storefront(
            "purchase", at=T0 + timedelta(minutes=5), order_id="o-1", value=8000, currency="JPY"
        ),
        storefront(
            "purchase", at=T0 + timedelta(minutes=9), order_id="o-2", value=4000, currency="JPY"
        ),
        storefront("page_view", session="sess-2", visitor="anon-2"),
    )
    stats = figures()
    assert (stats["sessions"], stats["conversions"]) == (2, 1)
    assert stats["conversionRate"] == 0.5
    assert (stats["orders"], stats["totalSales"]["amount"]) == (2, 12_000)
    assert stats["averageOrderValue"] == {"amount": 6000, "currency": "JPY"}


def test_a_purchase_event_and_the_wallets_purchase_of_one_order_are_one_order(
    tables: list[str],
) -> None:
    counting = counters()
    # The wallet's record (no campaign) first, the storefront's event second, and a
    # credit naming the same order: one order, counted once, in the campaign.
    count_all(
        counting,
        domain(
            "purchase_recorded",
            campaign=None,
            order_id="o-7",
            value=15_000,
            currency="JPY",
            customer_id="cus-1",
        ),
        storefront("purchase", order_id="o-7", value=15_000, currency="JPY", customer_id="cus-1"),
        domain(
            "cashback_credited",
            order_id="o-7",
            value=750,
            currency="JPY",
            customer_id="cus-1",
            credit_id="wle-1",
        ),
    )
    stats = figures()
    assert (stats["orders"], stats["totalSales"]["amount"], stats["newCustomers"]) == (1, 15_000, 1)


def test_an_order_counts_when_its_campaign_arrives_after_its_total(tables: list[str]) -> None:
    counting = counters()
    count_all(
        counting,
        domain("purchase_recorded", campaign=None, order_id="o-9", value=9000, currency="JPY"),
    )
    assert figures()["orders"] == 0  # no campaign knows the order yet
    count_all(
        counting, domain("redemption", order_id="o-9", value=500, currency="JPY", order_total=9000)
    )
    stats = figures()
    assert (stats["orders"], stats["totalSales"]["amount"], stats["redemptions"]) == (1, 9000, 1)
    assert stats["discounts"] == {"amount": 500, "currency": "JPY"}


def test_bounces_pages_and_session_length(tables: list[str]) -> None:
    counting = counters()
    count_all(
        counting,
        storefront("page_view", session="a"),  # a bounce
        storefront("page_view", session="b"),
        storefront("page_view", session="b", at=T0 + timedelta(seconds=90)),
        storefront("offer_view", session="b", at=T0 + timedelta(seconds=120)),
    )
    stats = figures()
    assert stats["sessions"] == 2
    assert stats["bounceRate"] == 0.5
    assert stats["pagesPerSession"] == 1.5
    assert stats["averageSessionSeconds"] == 60.0  # (0 + 120) / 2


def test_the_funnel_follows_order_and_window(tables: list[str]) -> None:
    counting = counters()
    late = T0 + timedelta(hours=25)
    count_all(
        counting,
        # a: every step in order
        storefront("offer_view", session="a"),
        storefront("add_to_cart", session="a", at=T0 + timedelta(minutes=1)),
        storefront("checkout", session="a", at=T0 + timedelta(minutes=2)),
        storefront("purchase", session="a", at=T0 + timedelta(minutes=3)),
        # b: a cart before any offer view does not count; the checkout is past 24 h
        storefront("add_to_cart", session="b"),
        storefront("offer_view", session="b", at=T0 + timedelta(minutes=1)),
        storefront("add_to_cart", session="b", at=T0 + timedelta(minutes=2)),
        storefront("checkout", session="b", at=late),
    )
    steps = [
        (row["step"], row["sessions"]) for row in figures(DAY, DAY + timedelta(days=1))["funnel"]
    ]
    assert steps == [("offer_view", 2), ("add_to_cart", 2), ("checkout", 1), ("purchase", 1)]


def test_attribution_last_and_first_touch_within_the_lookback(tables: list[str]) -> None:
    counting = counters()
    count_all(
        counting,
        # Touches of the visitor: one too old to count, two inside 30 days.
        storefront("page_view", session="old", at=T0 - timedelta(days=31), utm_source="tv"),
        storefront(
            "page_view",
            session="s1",
            at=T0 - timedelta(days=10),
            utm_source="newsletter",
            utm_medium="email",
        ),
        storefront(
            "page_view",
            session="s2",
            at=T0 - timedelta(hours=1),
            utm_source="google",
            utm_medium="cpc",
        ),
        storefront("purchase", session="s2", at=T0, customer_id="cus-1"),
        # Another visitor converts with no touch at all.
        storefront("purchase", session="s3", visitor="anon-2", at=T0),
    )
    attribution = figures()["attribution"]
    last = {row["channel"]: row["conversions"] for row in attribution["lastTouch"]}
    first = {row["channel"]: row["conversions"] for row in attribution["firstTouch"]}
    assert last == {"google/cpc": 1, DIRECT: 1}
    assert first == {"newsletter/email": 1, DIRECT: 1}


def test_rewards_by_channel_net_of_reversals_sum_to_the_credits(tables: list[str]) -> None:
    counting = counters()
    count_all(
        counting,
        storefront("page_view", utm_source="google", utm_medium="cpc"),
        storefront("purchase", customer_id="cus-1"),
        domain(
            "cashback_credited", customer_id="cus-1", value=1000, currency="JPY", credit_id="wle-1"
        ),
        # A reversal of that credit arrives: it comes off the same channel.
        domain(
            "cashback_reversed", customer_id="cus-1", value=300, currency="JPY", credit_id="wle-1"
        ),
        # A customer whose conversion was never seen: unattributed, still counted.
        domain(
            "cashback_credited", customer_id="cus-2", value=500, currency="JPY", credit_id="wle-2"
        ),
    )
    stats = figures()
    paid = {
        row["channel"]: row["rewardsPaid"]["amount"] for row in stats["attribution"]["lastTouch"]
    }
    assert paid == {"google/cpc": 700, UNATTRIBUTED: 500}
    assert sum(paid.values()) == stats["rewardsPaid"]["amount"] == 1200


def test_a_reversal_before_its_credit_decides_the_channel_for_both(tables: list[str]) -> None:
    counting = counters()
    count_all(
        counting,
        domain(
            "cashback_reversed", customer_id="cus-1", value=200, currency="JPY", credit_id="wle-9"
        ),
        storefront("page_view", utm_source="google", utm_medium="cpc"),
        storefront("purchase", customer_id="cus-1"),
        domain(
            "cashback_credited", customer_id="cus-1", value=900, currency="JPY", credit_id="wle-9"
        ),
    )
    paid = {
        row["channel"]: row["rewardsPaid"]["amount"]
        for row in figures()["attribution"]["lastTouch"]
    }
    assert paid[UNATTRIBUTED] == 700


def test_domain_counters_and_rates(tables: list[str]) -> None:
    counting = counters()
    count_all(
        counting,
        *[domain("code_issued") for _ in range(4)],
        domain("redemption", order_id="o-1", value=500, currency="JPY", order_total=10_000),
        domain("redemption", order_id="o-2", value=500, currency="JPY", order_total=6_000),
        domain("redemption_rolled_back", order_id="o-2", value=500, currency="JPY"),
        domain("claim_submitted"),
        domain("claim_submitted"),
        domain("claim_submitted"),
        domain("claim_approved", value=1000, currency="JPY"),
        domain("claim_rejected"),
    )
    stats = figures()
    assert (stats["codesIssued"], stats["redemptions"], stats["redemptionRate"]) == (4, 1, 0.25)
    assert stats["discounts"]["amount"] == 500
    assert (stats["claimsSubmitted"], stats["claimsApproved"], stats["claimsRejected"]) == (3, 1, 1)
    assert stats["approvalRate"] == 0.5


def test_events_of_no_or_an_unknown_campaign_are_not_counted(tables: list[str]) -> None:
    counting = counters()
    assert (
        counting.count(storefront("page_view", campaign=None), now=utc_now()).reason
        == "no_campaign"
    )
    assert (
        counting.count(storefront("page_view", campaign="nope-2027"), now=utc_now()).reason
        == "unknown_campaign"
    )
    assert figures()["sessions"] == 0


def test_a_crash_before_the_counting_transaction_loses_nothing_on_retry(
    tables: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = counters()
    event = storefront("purchase", order_id="o-5", value=5000, currency="JPY", customer_id="cus-5")
    commit = Transaction.commit
    calls = {"n": 0}

    def crash_on_the_seen_transaction(self: Transaction) -> None:
        if "seen" in self.labels:
            calls["n"] += 1
            if calls["n"] == 1:
                raise ConnectionError("the host died")
        commit(self)

    monkeypatch.setattr(Transaction, "commit", crash_on_the_seen_transaction)
    with pytest.raises(ConnectionError):
        counting.count(event, now=utc_now())
    assert counting.count(event, now=utc_now()).counted  # the retry
    assert not counting.count(event, now=utc_now()).counted  # and any later replay
    stats = figures()
    assert (stats["conversions"], stats["orders"], stats["newCustomers"]) == (1, 1, 1)
    assert stats["totalSales"]["amount"] == 5000
