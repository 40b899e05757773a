"""The wallet's pure rules: availability, earning, the refund formula, allocation, owing,
page tokens and the audit's arithmetic. No AWS here."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.campaigns.config import parse_campaign
from functions.core.clock import local_date, start_of_local_day
from functions.wallet import logic
from functions.wallet.errors import InvalidPageToken, UnknownRefundItem
from functions.wallet.logic import (
    BalanceFacts,
    EntryFacts,
    LotFacts,
    Outcome,
    PurchaseInput,
    PurchaseLine,
    RefundInput,
    SpendableLot,
    SpendFacts,
)
from tests.unit.wallet.wallet_support import PLACED, cashback, purchase

PROPERTIES = settings(max_examples=300, derandomize=True, database=None, deadline=None)

# -- availability ---------------------------------------------------------------------


def test_pending_days_count_local_days_after_the_purchase_day() -> None:
    # 2027-05-10 12:00 in Tokyo; 3 days: available from local 05-13 00:00 (15:00Z 05-12).
    available, expires = logic.availability(
        PLACED, PLACED, pending_days=3, expires_after_days=30, tz="Asia/Tokyo"
    )
    assert available == datetime(2027, 5, 12, 15, 0, tzinfo=UTC)
    # 30 local days after it became available: closed from local 06-12 00:00.
    assert expires == datetime(2027, 6, 11, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("placed", "available"),
    [
        # The last second of local 05-10 and the first of 05-11: one day apart.
        (datetime(2027, 5, 10, 14, 59, 59, tzinfo=UTC), datetime(2027, 5, 10, 15, tzinfo=UTC)),
        (datetime(2027, 5, 10, 15, 0, 0, tzinfo=UTC), datetime(2027, 5, 11, 15, tzinfo=UTC)),
    ],
)
def test_one_pending_day_at_local_midnight(placed: datetime, available: datetime) -> None:
    got, _ = logic.availability(
        placed, placed, pending_days=1, expires_after_days=None, tz="Asia/Tokyo"
    )
    assert got == available


def test_days_are_calendar_days_across_a_daylight_saving_change() -> None:
    # New York springs forward on 2027-03-14: midnight is 05:00Z before, 04:00Z after.
    placed = datetime(2027, 3, 13, 17, 0, tzinfo=UTC)  # 12:00 EST on 03-13
    one, _ = logic.availability(
        placed, placed, pending_days=1, expires_after_days=None, tz="America/New_York"
    )
    two, expires = logic.availability(
        placed, placed, pending_days=2, expires_after_days=1, tz="America/New_York"
    )
    assert one == datetime(2027, 3, 14, 5, 0, tzinfo=UTC)
    assert two == datetime(2027, 3, 15, 4, 0, tzinfo=UTC)
    assert expires == datetime(2027, 3, 16, 4, 0, tzinfo=UTC)
    # Autumn: 2027-11-07 falls back; a day of 25 hours still counts as one.
    autumn = datetime(2027, 11, 6, 16, 0, tzinfo=UTC)  # 12:00 EDT on 11-06
    available, expires = logic.availability(
        autumn, autumn, pending_days=1, expires_after_days=1, tz="America/New_York"
    )
    assert available == datetime(2027, 11, 7, 4, 0, tzinfo=UTC)
    assert expires == datetime(2027, 11, 8, 5, 0, tzinfo=UTC)
    assert expires - available == timedelta(hours=25)


def test_zero_pending_days_is_at_once_and_never_before_the_credit() -> None:
    assert logic.availability(
        PLACED, PLACED, pending_days=0, expires_after_days=None, tz="Asia/Tokyo"
    ) == (PLACED, None)
    late = PLACED + timedelta(hours=5)
    assert logic.availability(
        PLACED, late, pending_days=0, expires_after_days=None, tz="Asia/Tokyo"
    ) == (late, None)


def test_a_credit_recorded_after_its_pending_period_is_available_at_once() -> None:
    late = PLACED + timedelta(days=10)
    available, expires = logic.availability(
        PLACED, late, pending_days=3, expires_after_days=2, tz="Asia/Tokyo"
    )
    assert available == late
    # Expiry counts from when it became available.
    assert expires == datetime(2027, 5, 21, 15, 0, tzinfo=UTC)


# -- reminders before expiry ----------------------------------------------------------


def test_reminder_days_are_the_local_days_before_the_expiry_s_day() -> None:
    # Expiring at the start of local 2027-05-22 in Tokyo (15:00Z the day before).
    expires = datetime(2027, 5, 21, 15, 0, tzinfo=UTC)
    tokyo_15_may = datetime(2027, 5, 14, 15, 0, tzinfo=UTC)
    assert logic.days_before_expiry(expires, tokyo_15_may, "Asia/Tokyo") == 7
    assert logic.days_before_expiry(expires, tokyo_15_may - timedelta(seconds=1), "Asia/Tokyo") == 8
    assert logic.days_before_expiry(expires, expires - timedelta(seconds=1), "Asia/Tokyo") == 1
    # The same instants counted in UTC days.
    assert logic.days_before_expiry(expires, tokyo_15_may - timedelta(seconds=1), "UTC") == 7
    assert logic.CASHBACK_REMINDER_DAYS == (7, 1)


def test_the_reminder_window_allows_for_a_clock_change_in_between() -> None:
    # Just after local midnight in New York, a week before the last moment of the day
    # the clocks go back (2027-11-07): 8 days and an hour apart, 7 local days before.
    now = start_of_local_day(date(2027, 10, 31), "America/New_York")
    expires = start_of_local_day(date(2027, 11, 8), "America/New_York") - timedelta(microseconds=1)
    assert expires - now > timedelta(days=8)
    assert logic.days_before_expiry(expires, now, "America/New_York") == 7
    after, before = logic.reminder_window(now, 7)
    assert after <= expires <= before


ZONES = [
    "UTC",
    "Asia/Tokyo",
    "America/New_York",  # DST
    "Australia/Lord_Howe",  # a half-hour DST
    "Asia/Kathmandu",  # +05:45
    "Pacific/Kiritimati",  # +14
    "Pacific/Pago_Pago",  # -11
    "America/Santiago",  # DST at midnight
]


@PROPERTIES
@given(
    tz=st.sampled_from(ZONES),
    now=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2029, 1, 1), timezones=st.just(UTC)
    ),
    days_before=st.sampled_from([1, 2, 7]),
    millionths=st.integers(min_value=0, max_value=999_999),
)
def test_the_reminder_window_holds_every_expiry_that_many_local_days_away(
    tz: str, now: datetime, days_before: int, millionths: int
) -> None:
    # Any instant of the local day `days_before` days after today's (expiries of lots
    # that know their zone are its start; of lots that do not, any time of a UTC day).
    day = local_date(now, tz) + timedelta(days=days_before)
    start, end = start_of_local_day(day, tz), start_of_local_day(day + timedelta(days=1), tz)
    expires = start + (end - start) * millionths // 1_000_000
    assert logic.days_before_expiry(expires, now, tz) == days_before
    after, before = logic.reminder_window(now, days_before)
    assert after <= expires <= before


# -- earning --------------------------------------------------------------------------


def earning(document: dict[str, Any], bought: PurchaseInput) -> logic.Earning:
    return logic.earning_for(parse_campaign(document), bought, logic.cart_of(bought))


def test_a_purchase_earns_the_campaigns_reward() -> None:
    assert earning(cashback(), purchase(price=12_345)) == logic.Earning(Outcome.CREDITED, 1234)


@pytest.mark.parametrize(
    ("document", "bought", "reason"),
    [
        (cashback(), purchase(currency="USD"), Outcome.CURRENCY_MISMATCH),
        (
            cashback(),
            purchase(placed_at=datetime(2027, 4, 30, 14, 59, tzinfo=UTC)),
            Outcome.OUTSIDE_WINDOW,
        ),
        (  # the end is exclusive
            cashback(),
            purchase(placed_at=datetime(2027, 6, 30, 15, 0, tzinfo=UTC)),
            Outcome.OUTSIDE_WINDOW,
        ),
        (
            cashback(eligibility={"channels": ["online"], "categories": ["shoes"]}),
            purchase(channel="in_store"),
            Outcome.WRONG_CHANNEL,
        ),
        (cashback(), purchase(category="socks"), Outcome.NOT_ELIGIBLE),
        (
            cashback(
                eligibility={"channels": ["online"], "categories": ["shoes"], "min_purchase": 5000}
            ),
            purchase(price=4999),
            Outcome.BELOW_MIN_PURCHASE,
        ),
        (cashback(), purchase(price=9), Outcome.NO_REWARD),
    ],
)
def test_why_a_purchase_earns_nothing(
    document: dict[str, Any], bought: PurchaseInput, reason: Outcome
) -> None:
    assert earning(document, bought) == logic.Earning(reason)


def test_the_window_includes_its_start() -> None:
    start = datetime(2027, 4, 30, 15, 0, tzinfo=UTC)  # 2027-05-01 00:00 in Tokyo
    assert earning(cashback(), purchase(placed_at=start)).credits


def test_a_purchase_the_rules_cannot_read_earns_nothing() -> None:
    absurd = purchase(price=2**53 - 1, quantity=2)
    assert logic.cart_of(absurd) is None
    assert earning(cashback(), absurd) == logic.Earning(Outcome.NOT_ELIGIBLE)


# -- the refund formula ---------------------------------------------------------------

earned_amounts = st.integers(0, 10**7)
totals = st.integers(1, 10**9)


def test_two_refunds_of_half_reverse_what_one_of_the_whole_does() -> None:
    one = logic.reversal(1000, 10_000, 0, 5000)
    two = logic.reversal(1000, 10_000, 0, 2500) + logic.reversal(1000, 10_000, 2500, 5000)
    assert one == two == 500
    assert logic.reversal(1000, 10_000, 5000, 10_000) == 500


def test_rounding_keeps_the_unit_for_nobody() -> None:
    # 333 of 1,000 earned on 3 units of 1,000: each third refunded takes back 111, and
    # the customer keeps floor(333 * 2/3) = 222, never 222.67 rounded up.
    assert logic.kept(333, 3000, 1000) == 222
    assert logic.kept(100, 3, 1) == 66
    assert logic.reversal(100, 3, 0, 1) == 34


@PROPERTIES
@given(earned_amounts, totals, st.data())
def test_refunds_in_steps_reverse_what_their_sum_does(earned: int, total: int, data: Any) -> None:
    first = data.draw(st.integers(0, total))
    second = data.draw(st.integers(0, total - first))
    in_steps = logic.reversal(earned, total, 0, first) + logic.reversal(
        earned, total, first, first + second
    )
    assert in_steps == logic.reversal(earned, total, 0, first + second)
    assert logic.reversal(earned, total, 0, first) >= 0


@PROPERTIES
@given(earned_amounts, totals, st.lists(st.integers(1, 10**9), max_size=8))
def test_a_full_refund_reverses_all_in_any_steps(earned: int, total: int, cuts: list[int]) -> None:
    points = sorted({min(cut, total) for cut in cuts} | {0, total})
    reversed_ = sum(logic.reversal(earned, total, a, b) for a, b in itertools.pairwise(points))
    assert reversed_ == earned
    assert logic.kept(earned, total, total) == 0


@PROPERTIES
@given(earned_amounts, totals, st.data())
def test_the_formula_never_gives_away_a_unit(earned: int, total: int, data: Any) -> None:
    refunded = data.draw(st.integers(0, total))
    kept = logic.kept(earned, total, refunded)
    # floor: at most the exact share, and less than one unit below it.
    assert kept * total <= earned * (total - refunded) < (kept + 1) * total
    assert 0 <= kept <= earned
    more = data.draw(st.integers(refunded, total))
    assert logic.kept(earned, total, more) <= kept


def test_an_order_of_total_zero_keeps_everything() -> None:
    assert logic.kept(500, 0, 0) == 500


# -- refunds of items -----------------------------------------------------------------

LINES = (
    PurchaseLine("TENT", "tents", 2, 3000),
    PurchaseLine("SOCK", None, 3, 500),
    PurchaseLine("TENT", "tents", 1, 2000),  # the same sku later, at another price
)


def test_items_are_priced_as_bought() -> None:
    amount, after = logic.refund_of_items("o", LINES, {}, [("SOCK", 2), ("TENT", 1)])
    assert (amount, after) == (1000 + 3000, {"SOCK": 2, "TENT": 1})
    # The next two tents: the second of the first line, then the one of the last line.
    amount, after = logic.refund_of_items("o", LINES, after, [("TENT", 1), ("TENT", 1)])
    assert (amount, after) == (3000 + 2000, {"SOCK": 2, "TENT": 3})


@pytest.mark.parametrize(
    ("already", "items", "sku", "refundable"),
    [
        ({}, [("BOOT", 1)], "BOOT", 0),
        ({}, [("SOCK", 4)], "SOCK", 3),
        ({"SOCK": 3}, [("SOCK", 1)], "SOCK", 0),
        ({}, [("SOCK", 2), ("SOCK", 2)], "SOCK", 3),
    ],
)
def test_more_items_than_are_left_are_refused(
    already: dict[str, int], items: list[tuple[str, int]], sku: str, refundable: int
) -> None:
    with pytest.raises(UnknownRefundItem) as refused:
        logic.refund_of_items("ord-9", LINES, already, items)
    assert refused.value.code == "unknown_item"
    assert refused.value.details == {"orderId": "ord-9", "sku": sku, "refundable": refundable}


def test_a_reversal_takes_what_remains_then_what_expired_then_owes() -> None:
    assert logic.split_reversal(50, remaining=80, expired_unwaived=10) == logic.ReversalSplit(
        50, 0, 0
    )
    assert logic.split_reversal(50, remaining=20, expired_unwaived=10) == logic.ReversalSplit(
        20, 10, 20
    )
    assert logic.split_reversal(50, remaining=0, expired_unwaived=0) == logic.ReversalSplit(
        0, 0, 50
    )


@PROPERTIES
@given(st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 1000))
def test_a_reversal_splits_exactly(amount: int, remaining: int, expired: int) -> None:
    split = logic.split_reversal(amount, remaining=remaining, expired_unwaived=expired)
    assert split.from_remaining + split.waived + split.owed == amount
    assert 0 <= split.from_remaining <= remaining
    assert 0 <= split.waived <= expired
    assert split.owed >= 0
    assert split.owed == 0 or split.from_remaining == remaining


# -- spending -------------------------------------------------------------------------

NOW = datetime(2027, 6, 1, tzinfo=UTC)


def lot(lot_id: str, remaining: int, expires_in_days: float | None) -> SpendableLot:
    expires = None if expires_in_days is None else NOW + timedelta(days=expires_in_days)
    return SpendableLot(lot_id, "camp", remaining, expires)


def test_the_lot_expiring_first_is_drawn_first() -> None:
    lots = [lot("c", 100, None), lot("b", 100, 5), lot("a", 100, 9), lot("d", 100, 5)]
    draws = logic.allocate_spend(250, lots, NOW)
    assert draws is not None
    assert [(drawn.lot_id, take) for drawn, take in draws] == [("b", 100), ("d", 100), ("a", 50)]


def test_expired_and_empty_lots_are_not_spendable() -> None:
    lots = [lot("gone", 100, 0), lot("empty", 0, 3), lot("ok", 70, 3)]
    assert logic.spendable_total(lots, NOW) == 70
    assert logic.allocate_spend(71, lots, NOW) is None
    draws = logic.allocate_spend(70, lots, NOW)
    assert draws is not None and [(d.lot_id, t) for d, t in draws] == [("ok", 70)]
    with pytest.raises(ValueError, match="positive"):
        logic.allocate_spend(0, lots, NOW)


spendable_lots = st.lists(
    st.builds(
        lot,
        st.text("abcdef", min_size=1, max_size=3),
        st.integers(0, 500),
        st.one_of(st.none(), st.floats(-3, 30, allow_nan=False)),
    ),
    max_size=12,
    unique_by=lambda lot: lot.lot_id,
)


@PROPERTIES
@given(st.integers(1, 3000), spendable_lots)
def test_an_allocation_draws_exactly_the_amount(amount: int, lots: list[SpendableLot]) -> None:
    draws = logic.allocate_spend(amount, lots, NOW)
    spendable = logic.spendable_total(lots, NOW)
    if spendable < amount:
        assert draws is None
        return
    assert draws is not None
    assert sum(take for _, take in draws) == amount
    assert all(0 < take <= drawn.remaining for drawn, take in draws)
    assert all(drawn.expires_at is None or drawn.expires_at > NOW for drawn, _ in draws)
    # Only the last lot drawn may keep a remainder, and none expires before one drawn.
    assert all(take == drawn.remaining for drawn, take in draws[:-1])
    order = [(d.expires_at is None, d.expires_at or NOW, d.lot_id) for d, _ in draws]
    assert order == sorted(order)
    skipped = [s for s in lots if s not in [d for d, _ in draws] and s.remaining > 0]
    last = order[-1]
    for other in skipped:
        if other.expires_at is None or other.expires_at > NOW:
            assert (other.expires_at is None, other.expires_at or NOW, other.lot_id) > last


@PROPERTIES
@given(st.integers(-5, 2000), st.lists(st.integers(0, 500), max_size=6))
def test_money_becoming_available_pays_what_is_owed_first(owed: int, amounts: list[int]) -> None:
    settled = logic.settle_owed(owed, amounts)
    assert sum(settled) == min(max(owed, 0), sum(amounts))
    assert all(0 <= paid <= amount for paid, amount in zip(settled, amounts, strict=True))


def test_the_next_move_is_the_earliest_with_what_is_due_then() -> None:
    soon, later = NOW + timedelta(days=1), NOW + timedelta(days=2)
    assert logic.next_move([(later, 5), (soon, 3), (soon, 4), (NOW, 0)]) == (soon, 7)
    assert logic.next_move([(soon, 0)]) is None


# -- fingerprints and page tokens -----------------------------------------------------


def test_a_fingerprint_changes_with_any_field() -> None:
    base = logic.purchase_fingerprint(purchase())
    assert logic.purchase_fingerprint(purchase()) == base
    for changed in (
        purchase(customer_id="cust-2"),
        purchase(price=10_001),
        purchase(channel="in_store"),
        purchase(total=9_999),
        purchase(placed_at=PLACED + timedelta(seconds=1)),
        purchase(category=None),
    ):
        assert logic.purchase_fingerprint(changed) != base
    refund = RefundInput("rf", 100, "JPY", None)
    assert logic.refund_fingerprint(refund) != logic.refund_fingerprint(
        RefundInput("rf", 101, "JPY", None)
    )
    assert logic.refund_fingerprint(refund) != logic.refund_fingerprint(
        RefundInput("rf", None, None, (("SKU", 1),))
    )


def test_a_page_token_round_trips_for_its_customer_only() -> None:
    token = logic.encode_page_token("cust-1", "JPY", "ENTRY#123#credit#x")
    assert logic.decode_page_token(token, customer_id="cust-1", currency=None, prefix="ENTRY#") == (
        "JPY",
        "ENTRY#123#credit#x",
    )
    assert logic.decode_page_token(token, customer_id="cust-1", currency="JPY", prefix="ENTRY#")
    for customer, currency in (("cust-2", None), ("cust-1", "USD")):
        with pytest.raises(InvalidPageToken):
            logic.decode_page_token(token, customer_id=customer, currency=currency, prefix="ENTRY#")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not base64 at all!",
        "bm90IGpzb24",  # "not json"
        "WzEsMl0",  # [1,2]
        logic.encode_page_token("cust-1", "JPY", "LOT#x"),
        "//79",
    ],
)
def test_a_token_this_wallet_did_not_hand_out_is_refused(token: str) -> None:
    with pytest.raises(InvalidPageToken) as refused:
        logic.decode_page_token(token, customer_id="cust-1", currency=None, prefix="ENTRY#")
    assert refused.value.code == "invalid_request"


# -- the audit's arithmetic -----------------------------------------------------------


def lot_facts(**changes: Any) -> LotFacts:
    fields: dict[str, Any] = {
        "lot_id": "lot-1",
        "campaign_id": "camp",
        "currency": "JPY",
        "state": "available",
        "earned": 1000,
        "remaining": 600,
        "spent": 300,
        "settled": 0,
        "reversed": 100,
        "expired": 0,
        "waived": 0,
        "owed": 0,
    }
    return LotFacts(**(fields | changes))


CONSISTENT: dict[str, Any] = {
    "balances": [BalanceFacts("JPY", 0, 600, 0)],
    "lots": [lot_facts()],
    "entries": [
        EntryFacts("credit#lot-1", "JPY", 0, 1000, 0),
        EntryFacts("spend#o", "JPY", 0, -300, 0),
        EntryFacts("reverse#r#lot-1", "JPY", 0, -100, 0),
    ],
    "spends": [SpendFacts("o", True, (("lot-1", 300),)), SpendFacts("x", False, (("lot-1", 5),))],
}


def test_a_consistent_ledger_has_no_differences() -> None:
    assert logic.audit_differences(**CONSISTENT) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"balances": [BalanceFacts("JPY", 0, 650, 0)]}, "JPY available: the balance is 650"),
        ({"balances": [BalanceFacts("JPY", -1, 600, 0)]}, "JPY pending: the balance is negative"),
        ({"lots": [lot_facts(remaining=650)]}, "lot lot-1: earned 1000"),
        ({"lots": [lot_facts(state="expired")]}, "lot lot-1: expired with 600 remaining"),
        ({"lots": [lot_facts(waived=1)]}, "lot lot-1: waived 1 exceeds expired 0"),
        ({"spends": []}, "lot lot-1: spent 300, but spends drew 0"),
        (
            {"entries": [*CONSISTENT["entries"], EntryFacts("spend#o", "JPY", 0, 0, 0)]},
            "entry spend#o is recorded twice",
        ),
        (
            {"lots": [lot_facts(owed=50, spent=250, reversed=150)]},
            "JPY owed: the balance is 0, the lots sum to 50",
        ),
        ({"balances": []}, "JPY available: the balance is 0, the entries sum to 600"),
    ],
)
def test_every_disagreement_is_a_line(change: dict[str, Any], expected: str) -> None:
    differences = logic.audit_differences(**(CONSISTENT | change))
    assert any(line.startswith(expected) for line in differences), differences
