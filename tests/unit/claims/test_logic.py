"""The claim rules without I/O: validation, receipt identity, routing, review signals and
the review wait's timing, each at its boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.campaigns.config import CampaignConfig, parse_campaign
from functions.campaigns.rewards import LineItem
from functions.claims.logic import (
    TERMINAL,
    ClaimFacts,
    EvidenceFound,
    Outcome,
    Reason,
    ReviewReason,
    ReviewTiming,
    Validation,
    claim_deadline,
    normalise_receipt_part,
    purchase_day,
    review_reasons,
    review_timing,
    route,
    validate,
)
from functions.core.money import Money
from tests.unit.claims.conftest import PURCHASED, SUBMITTED, full_width, line, rebate

MICROSECOND = timedelta(microseconds=1)
STARTS = datetime(2027, 2, 28, 15, 0, tzinfo=UTC)  # 2027-03-01 00:00 in Tokyo
ENDS = datetime(2027, 3, 31, 15, 0, tzinfo=UTC)  # 2027-04-01 00:00 in Tokyo
# A purchase on 2027-03-10 in Tokyo, 30 days: open through 04-09, closed from 04-10 00:00.
DEADLINE = datetime(2027, 4, 9, 15, 0, tzinfo=UTC)


def config(**changes: Any) -> CampaignConfig:
    return parse_campaign(rebate(**changes))


def claims_section(**changes: Any) -> dict[str, Any]:
    return {"window_days": 30, "auto_approve_up_to": 3000, **changes}


def facts(
    *items: LineItem,
    purchased_at: datetime = PURCHASED,
    submitted_at: datetime = SUBMITTED,
    currency: str = "JPY",
    receipt: str | None = "valid",
) -> ClaimFacts:
    return ClaimFacts(
        purchased_at=purchased_at,
        submitted_at=submitted_at,
        currency=currency,
        items=items or (line(),),
        receipt_status=receipt,
    )


def yen(amount: int) -> Money:
    return Money.of(amount, "JPY")


# -- validate: the campaign window and the claim window -----------------------------------


def test_a_claim_inside_every_window_earns_the_reward() -> None:
    assert validate(config(), facts()) == Validation(yen(1000))


@pytest.mark.parametrize(
    ("purchased_at", "inside"),
    [
        (STARTS - MICROSECOND, False),
        (STARTS, True),
        (ENDS - MICROSECOND, True),
        (ENDS, False),
        (ENDS + timedelta(days=3), False),
    ],
)
def test_the_purchase_must_be_inside_the_campaign_start_included_end_excluded(
    purchased_at: datetime, inside: bool
) -> None:
    result = validate(config(), facts(purchased_at=purchased_at, submitted_at=purchased_at))
    if inside:
        assert result.passed, result.reasons
    else:
        # Outside the campaign nothing else is judged: the one reason says it all.
        assert result == Validation(yen(0), (Reason.OUTSIDE_WINDOW,))


def test_the_claim_window_closes_at_the_start_of_the_day_after_the_last() -> None:
    campaign = config()
    assert claim_deadline(PURCHASED, campaign) == DEADLINE
    assert validate(campaign, facts(submitted_at=DEADLINE - MICROSECOND)).passed
    closed = validate(campaign, facts(submitted_at=DEADLINE))
    assert closed == Validation(yen(0), (Reason.CLAIM_WINDOW_CLOSED,))


def test_a_late_purchase_on_the_same_local_day_closes_at_the_same_instant() -> None:
    # 23:59 in Tokyo on 03-10 is still 03-10 there (14:59 UTC).
    late = datetime(2027, 3, 10, 14, 59, tzinfo=UTC)
    assert claim_deadline(late, config()) == DEADLINE
    # 00:00 on 03-11 in Tokyo (15:00 UTC on 03-10) is the next local day.
    assert claim_deadline(late + timedelta(minutes=1), config()) == DEADLINE + timedelta(days=1)


NEW_YORK = {
    "id": "ny-rebate",
    "currency": "USD",
    "timezone": "America/New_York",
    "starts_at": "2027-03-01T00:00:00-05:00",
    "ends_at": "2027-12-01T00:00:00-05:00",
    "budget": {"amount": 1_000_000},
    "reward": {"fixed": 1000},
    "eligibility": {"channels": ["online"], "skus": ["TRAIL-01"]},
}


@pytest.mark.parametrize(
    ("purchased_at", "deadline"),
    [
        # 23:30 EST on 03-13; the clocks go forward on 03-14: closes 00:00 EDT on 03-15.
        pytest.param(
            datetime(2027, 3, 14, 4, 30, tzinfo=UTC),
            datetime(2027, 3, 15, 4, 0, tzinfo=UTC),
            id="spring forward",
        ),
        # 12:00 EDT on 11-06; the clocks go back on 11-07: closes 00:00 EST on 11-08.
        pytest.param(
            datetime(2027, 11, 6, 16, 0, tzinfo=UTC),
            datetime(2027, 11, 8, 5, 0, tzinfo=UTC),
            id="fall back",
        ),
    ],
)
def test_the_claim_window_counts_local_days_across_a_clock_change(
    purchased_at: datetime, deadline: datetime
) -> None:
    campaign = config(**NEW_YORK, claims=claims_section(window_days=1))
    assert claim_deadline(purchased_at, campaign) == deadline
    on_time = facts(purchased_at=purchased_at, submitted_at=deadline - MICROSECOND, currency="USD")
    too_late = facts(purchased_at=purchased_at, submitted_at=deadline, currency="USD")
    assert validate(campaign, on_time) == Validation(Money.of(1000, "USD"))
    assert validate(campaign, too_late).reasons == (Reason.CLAIM_WINDOW_CLOSED,)


# -- validate: currency, eligibility, the reward --------------------------------------------


def test_another_currency_is_a_mismatch_and_nothing_else_is_judged() -> None:
    result = validate(config(), facts(line("OTHER", 10), currency="USD", receipt=None))
    assert result == Validation(Money.zero("USD"), (Reason.CURRENCY_MISMATCH,))


def test_lines_of_other_skus_are_not_eligible() -> None:
    result = validate(config(), facts(line("ROAD-01", 20_000), line("SOCKS", 900)))
    assert result == Validation(yen(0), (Reason.NOT_ELIGIBLE,))


def test_lines_of_other_categories_are_not_eligible() -> None:
    campaign = config(eligibility={"channels": ["online"], "categories": ["tents"]})
    assert validate(campaign, facts(line(price=20_000))).reasons == (Reason.NOT_ELIGIBLE,)
    tent = LineItem(sku="TENT-2", category="tents", quantity=1, unitPrice=20_000)
    assert validate(campaign, facts(tent)).passed


def test_only_the_eligible_lines_count_towards_the_minimum() -> None:
    campaign = config()  # min_purchase 5000 on TRAIL-01 and TRAIL-02
    below = facts(line(price=4999), line("ROAD-01", 50_000))
    assert validate(campaign, below) == Validation(yen(0), (Reason.BELOW_MIN_PURCHASE,))
    assert validate(campaign, facts(line(price=2500), line("TRAIL-02", 2500))).passed


@pytest.mark.parametrize(
    ("reward", "lines", "expected"),
    [
        pytest.param({"fixed": 1000}, [line(price=5000)], 1000, id="fixed"),
        pytest.param({"percentage": 10}, [line(price=12_345)], 1234, id="percentage rounds down"),
        pytest.param(
            {"percentage": 10}, [line(price=6000), line("TRAIL-02", 7000, 2)], 2000, id="lines"
        ),
        pytest.param(
            {"percentage": 50, "max_per_reward": 2000}, [line(price=9000)], 2000, id="capped"
        ),
        pytest.param(
            {"percentage": 50, "max_per_reward": 5000}, [line(price=9000)], 4500, id="under cap"
        ),
    ],
)
def test_the_reward_follows_the_campaign_rule(
    reward: dict[str, Any], lines: list[LineItem], expected: int
) -> None:
    assert validate(config(reward=reward), facts(*lines)) == Validation(yen(expected))


TIERS = {
    "tiered": [
        {"min_purchase": 8000, "amount": 500},
        {"min_purchase": 10_000, "amount": 1500},
        {"min_purchase": 20_000, "amount": 4000},
    ],
    "max_per_reward": 3000,
}


@pytest.mark.parametrize(
    ("price", "expected"),
    [(8000, 500), (9999, 500), (10_000, 1500), (19_999, 1500), (20_000, 3000), (90_000, 3000)],
)
def test_the_highest_tier_reached_applies_and_is_capped(price: int, expected: int) -> None:
    campaign = config(reward=TIERS)
    assert validate(campaign, facts(line(price=price))) == Validation(yen(expected))


def test_below_the_first_tier_is_below_the_minimum_purchase() -> None:
    campaign = config(reward=TIERS)
    assert validate(campaign, facts(line(price=7999))).reasons == (Reason.BELOW_MIN_PURCHASE,)


def test_a_fixed_reward_is_never_more_than_the_eligible_lines_cost() -> None:
    campaign = config(eligibility={"channels": ["online"], "skus": ["TRAIL-01"]})
    assert validate(campaign, facts(line(price=600))) == Validation(yen(600))


@pytest.mark.parametrize(
    ("reward", "price"),
    [
        pytest.param({"percentage": 1}, 99, id="a percentage rounding down to nothing"),
        pytest.param({"fixed": 1000}, 0, id="a free line"),
    ],
)
def test_a_purchase_that_earns_nothing_is_not_eligible(reward: dict[str, Any], price: int) -> None:
    # Approving it would count a reward against the budget and credit nothing (the
    # wallet refuses a zero credit), leaving the claim in error.
    campaign = config(reward=reward, eligibility={"channels": ["online"], "skus": ["TRAIL-01"]})
    assert validate(campaign, facts(line(price=price))) == Validation(
        yen(0), (Reason.NOT_ELIGIBLE,)
    )


# -- validate: the receipt ---------------------------------------------------------------


@pytest.mark.parametrize("status", [None, "awaiting_upload"])
def test_a_required_receipt_absent_or_never_uploaded_is_missing(status: str | None) -> None:
    assert validate(config(), facts(receipt=status)) == Validation(
        yen(0), (Reason.RECEIPT_MISSING,)
    )


@pytest.mark.parametrize("required", [True, False])
def test_an_invalid_receipt_is_refused_whether_or_not_one_is_required(required: bool) -> None:
    campaign = config(claims=claims_section(require_receipt=required))
    assert validate(campaign, facts(receipt="invalid")).reasons == (Reason.RECEIPT_INVALID,)


@pytest.mark.parametrize("status", [None, "awaiting_upload", "valid"])
def test_without_the_requirement_a_missing_receipt_is_no_reason(status: str | None) -> None:
    campaign = config(claims=claims_section(require_receipt=False))
    assert validate(campaign, facts(receipt=status)) == Validation(yen(1000))


def test_every_reason_is_reported_at_once() -> None:
    result = validate(
        config(), facts(line("ROAD-01", 9000), submitted_at=DEADLINE + timedelta(days=2))
    )
    assert result.reasons == (Reason.CLAIM_WINDOW_CLOSED, Reason.NOT_ELIGIBLE)
    result = validate(config(), facts(line(price=100), submitted_at=DEADLINE, receipt="invalid"))
    assert result.reasons == (
        Reason.CLAIM_WINDOW_CLOSED,
        Reason.BELOW_MIN_PURCHASE,
        Reason.RECEIPT_INVALID,
    )
    assert result.reward == yen(0)
    result = validate(config(), facts(line("X", 1), submitted_at=DEADLINE, receipt=None))
    assert result.reasons == (
        Reason.CLAIM_WINDOW_CLOSED,
        Reason.NOT_ELIGIBLE,
        Reason.RECEIPT_MISSING,
    )


# -- the receipt's identity ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "compared"),
    [
        ("ABC Mart", "abcmart"),
        (full_width("ABC Mart"), "abcmart"),  # with an ideographic space
        ("abc mart", "abcmart"),
        (" A B C\tM a r t\n", "abcmart"),
        ("R-0012 ", "r-0012"),
        (full_width("R-0012"), "r-0012"),  # a full-width hyphen and digits
        ("r - 00\t12", "r-0012"),
        ("Straße 5", "strasse5"),  # case folded, not only lowered
    ],
)
def test_receipt_parts_are_compared_as_people_mean_them(written: str, compared: str) -> None:
    assert normalise_receipt_part(written) == compared


def test_full_width_text_is_what_a_full_width_keyboard_types() -> None:
    assert full_width("A1 -z") == "\uff21\uff11\u3000\uff0d\uff5a"


def test_different_receipts_stay_different() -> None:
    assert normalise_receipt_part("R-0012") != normalise_receipt_part("R-0013")
    assert normalise_receipt_part("R-0012") != normalise_receipt_part("R0012")


def test_the_purchase_day_is_the_campaigns_local_date() -> None:
    # 16:00 UTC on 03-10 is 01:00 on 03-11 in Tokyo.
    assert purchase_day(datetime(2027, 3, 10, 16, 0, tzinfo=UTC), config()) == date(2027, 3, 11)
    assert purchase_day(datetime(2027, 3, 10, 14, 59, tzinfo=UTC), config()) == date(2027, 3, 10)


# -- routing -------------------------------------------------------------------------------

SAME_NUMBER = EvidenceFound("same_receipt_number", Reason.DUPLICATE_RECEIPT, ("clm_a",), "n")
SAME_FILE = EvidenceFound("same_receipt_file", Reason.DUPLICATE_RECEIPT, ("clm_b",), "f")
LIMIT = EvidenceFound("per_customer_limit", Reason.LIMIT_REACHED, ("clm_c",), "l")
VELOCITY = EvidenceFound("velocity", ReviewReason.VELOCITY, ("clm_d",), "v")


def test_a_passed_validation_without_signals_is_approved() -> None:
    verdict = route(Validation(yen(1000)))
    assert (verdict.outcome, verdict.reward, verdict.reasons, verdict.review_reasons) == (
        Outcome.APPROVE,
        yen(1000),
        (),
        (),
    )


def test_validation_reasons_reject_with_every_reason_once() -> None:
    verdict = route(
        Validation(yen(0), (Reason.NOT_ELIGIBLE, Reason.RECEIPT_MISSING)),
        review=(ReviewReason.VELOCITY,),
    )
    assert verdict.outcome is Outcome.REJECT
    assert verdict.reasons == ("not_eligible", "receipt_missing")
    assert verdict.review_reasons == ()


def test_duplicates_reject_with_their_evidence_and_one_reason_each() -> None:
    verdict = route(
        Validation(yen(1000)),
        duplicates=(SAME_NUMBER, SAME_FILE, LIMIT),
        review=(ReviewReason.VELOCITY,),
    )
    assert verdict.outcome is Outcome.REJECT
    assert verdict.reasons == ("duplicate_receipt", "limit_reached")
    assert verdict.evidence == (SAME_NUMBER, SAME_FILE, LIMIT)
    # Stored and serialised as they are: plain strings, not enum members.
    assert all(type(reason) is str for reason in verdict.reasons)


def test_a_review_signal_sends_a_passed_claim_to_review_with_its_evidence() -> None:
    verdict = route(Validation(yen(5000)), review=(ReviewReason.VELOCITY,), evidence=(VELOCITY,))
    assert verdict.outcome is Outcome.REVIEW
    assert verdict.review_reasons == ("velocity",)
    assert all(type(reason) is str for reason in verdict.review_reasons)
    assert (verdict.reward, verdict.evidence) == (yen(5000), (VELOCITY,))


# -- review signals --------------------------------------------------------------------------


def signals(
    reward: int,
    campaign: CampaignConfig,
    *,
    claims: int = 1,
    limit: int = 5,
    others: tuple[str, ...] = (),
) -> tuple[str, ...]:
    return review_reasons(
        yen(reward),
        campaign,
        claims_in_period=claims,
        velocity_limit=limit,
        other_customers_on_file=others,
    )


def test_a_reward_equal_to_the_auto_approve_limit_is_approved_one_above_is_reviewed() -> None:
    campaign = config()  # auto_approve_up_to 3000
    assert signals(3000, campaign) == ()
    assert signals(3001, campaign) == (ReviewReason.ABOVE_AUTO_APPROVE_LIMIT,)


def test_without_an_auto_approve_limit_no_reward_is_too_large() -> None:
    campaign = config(claims={"window_days": 30})
    assert signals(999_999_999, campaign) == ()


def test_an_auto_approve_limit_of_zero_sends_every_claim_to_review() -> None:
    campaign = config(claims=claims_section(auto_approve_up_to=0))
    assert signals(1, campaign) == (ReviewReason.ABOVE_AUTO_APPROVE_LIMIT,)


def test_velocity_is_more_claims_in_a_day_than_the_limit() -> None:
    assert signals(1000, config(), claims=5, limit=5) == ()
    assert signals(1000, config(), claims=6, limit=5) == (ReviewReason.VELOCITY,)


def test_a_receipt_file_another_customer_sent_is_a_signal() -> None:
    assert signals(1000, config(), others=("cust-2",)) == (ReviewReason.SHARED_RECEIPT_FILE,)


def test_every_signal_is_reported() -> None:
    assert signals(9000, config(), claims=9, limit=2, others=("cust-2", "cust-3")) == (
        ReviewReason.ABOVE_AUTO_APPROVE_LIMIT,
        ReviewReason.VELOCITY,
        ReviewReason.SHARED_RECEIPT_FILE,
    )


# -- the review wait -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "per_hour", "heartbeat", "expected"),
    [
        (72, 3600, 21600, ReviewTiming(259_200, 21_600)),
        (1, 3600, 21600, ReviewTiming(3600, 1800)),
        (1, 4, 21600, ReviewTiming(4, 2)),
        (3, 4, 1, ReviewTiming(12, 1)),
        (1, 1, 21600, ReviewTiming(2, 1)),
    ],
)
def test_the_review_timeout_is_hours_of_the_configured_length(
    hours: int, per_hour: int, heartbeat: int, expected: ReviewTiming
) -> None:
    assert review_timing(hours, seconds_per_hour=per_hour, heartbeat_seconds=heartbeat) == expected


@given(
    hours=st.integers(1, 24 * 300),
    per_hour=st.integers(1, 3600),
    heartbeat=st.integers(1, 10**7),
)
def test_the_heartbeat_is_always_below_the_timeout(
    hours: int, per_hour: int, heartbeat: int
) -> None:
    timing = review_timing(hours, seconds_per_hour=per_hour, heartbeat_seconds=heartbeat)
    assert timing.timeout_seconds == max(2, hours * per_hour)
    assert 1 <= timing.heartbeat_seconds < timing.timeout_seconds
    assert timing.heartbeat_seconds <= heartbeat


@pytest.mark.parametrize(("hours", "per_hour", "heartbeat"), [(0, 3600, 1), (1, 0, 1), (1, 1, 0)])
def test_review_timing_values_are_positive(hours: int, per_hour: int, heartbeat: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        review_timing(hours, seconds_per_hour=per_hour, heartbeat_seconds=heartbeat)


def test_the_ends_are_the_statuses_no_step_leaves() -> None:
    assert frozenset({"rejected", "credited", "error"}) == TERMINAL
