"""The rules of a rebate claim. Pure: no I/O, every input passed in.

A claim's verification (DESIGN "Claim verification") asks, in order:

1. **Validate** (`validate`): is the purchase inside the campaign, was the claim made
   within ``claims.window_days`` of it, is the currency the campaign's, is the receipt
   there and sound when the campaign requires one, and what does the campaign's reward
   rule (fixed, percentage, tiered, capped: `functions.campaigns.rewards.reward_for`)
   give the purchase's eligible lines. A failure is a rejection with its reasons.
2. **Duplicates and fraud** are decided by conditional writes in the store (the guards),
   so two identical claims at one instant cannot both pass; what they found is turned into
   reasons and evidence here (`duplicate_evidence`, `limit_evidence`), and the signals that
   ask for a person rather than a rejection (`review_reasons`).
3. **Route** (`route`): reject with the reasons; auto-approve up to
   ``claims.auto_approve_up_to``; otherwise review.

The identity of a receipt is (retailer, receipt number, purchase date), each part
normalised as people write it differently (`normalise_receipt_part`), the date counted
in the campaign's timezone.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Final

from functions.campaigns.config import CampaignConfig
from functions.campaigns.rewards import Cart, LineItem, check_window, reward_for
from functions.core.clock import deadline_after_days, local_date
from functions.core.money import Money

__all__ = [
    "DEFAULT_HEARTBEAT_SECONDS",
    "DEFAULT_VELOCITY_PER_DAY",
    "SECONDS_PER_HOUR",
    "TERMINAL",
    "ClaimFacts",
    "Outcome",
    "Reason",
    "ReviewReason",
    "ReviewTiming",
    "Validation",
    "Verdict",
    "claim_deadline",
    "normalise_receipt_part",
    "purchase_day",
    "review_reasons",
    "review_timing",
    "route",
    "validate",
]

SECONDS_PER_HOUR: Final = 3600
# A review waits for days; a heartbeat every few hours (sent by the review keeper for
# every claim it finds waiting) shows the wait still has a live record behind it, so a
# token lost to a failed write ends the claim in error hours later, not days.
DEFAULT_HEARTBEAT_SECONDS: Final = 6 * SECONDS_PER_HOUR
# Claims by one customer in 24 hours (any campaign) above which a person looks.
DEFAULT_VELOCITY_PER_DAY: Final = 5
VELOCITY_PERIOD: Final = timedelta(days=1)

# Statuses no step leaves: a replayed step finds the claim here and changes nothing.
TERMINAL: Final = frozenset({"rejected", "credited", "error"})


class Reason(StrEnum):
    """Why a claim is rejected (DESIGN "Claim statuses")."""

    NOT_ELIGIBLE = "not_eligible"
    OUTSIDE_WINDOW = "outside_window"
    CLAIM_WINDOW_CLOSED = "claim_window_closed"
    BELOW_MIN_PURCHASE = "below_min_purchase"
    CURRENCY_MISMATCH = "currency_mismatch"
    DUPLICATE_RECEIPT = "duplicate_receipt"
    LIMIT_REACHED = "limit_reached"
    BUDGET_EXHAUSTED = "budget_exhausted"
    REVIEW_REJECTED = "review_rejected"
    REVIEW_TIMEOUT = "review_timeout"
    RECEIPT_MISSING = "receipt_missing"
    RECEIPT_INVALID = "receipt_invalid"


class ReviewReason(StrEnum):
    """Why a claim that passed verification goes to a person instead of being approved."""

    ABOVE_AUTO_APPROVE_LIMIT = "above_auto_approve_limit"
    VELOCITY = "velocity"
    SHARED_RECEIPT_FILE = "shared_receipt_file"


class Outcome(StrEnum):
    REJECT = "reject"
    APPROVE = "approve"
    REVIEW = "review"


@dataclass(frozen=True)
class ClaimFacts:
    """What validation needs of a claim: its purchase, when it was made, its receipt.

    ``receipt_status`` is None without a receipt (or an unknown key), else the receipt's
    status (`functions.claims.models.RECEIPT_STATUSES`).
    """

    purchased_at: datetime
    submitted_at: datetime
    currency: str
    items: tuple[LineItem, ...]
    receipt_status: str | None


@dataclass(frozen=True)
class Validation:
    """The reward the purchase earns, or zero with the rejection reasons."""

    reward: Money
    reasons: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.reasons


@dataclass(frozen=True)
class Verdict:
    """Verification's answer: the route, the reward, the reasons and the evidence."""

    outcome: Outcome
    reward: Money
    reasons: tuple[str, ...] = ()
    review_reasons: tuple[str, ...] = ()
    evidence: tuple[EvidenceFound, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class EvidenceFound:
    """What a duplicate or fraud rule found: the rule, its reason, the claims matched."""

    rule: str
    reason: str
    claim_ids: tuple[str, ...]
    note: str


def claim_deadline(purchased_at: datetime, config: CampaignConfig) -> datetime | None:
    """When claims for a purchase at `purchased_at` close (None: the campaign takes none)."""
    if config.claims is None:
        return None
    return deadline_after_days(purchased_at, config.claims.window_days, config.timezone)


def validate(config: CampaignConfig, facts: ClaimFacts) -> Validation:
    """Step 1: the campaign's rules applied to the claim; every reason found, not the first.

    The window and the currency decide alone (a purchase outside the campaign, or in
    another currency, earns nothing whatever its lines); eligibility, the receipt and the
    claim window are all reported, so one rejection tells the customer everything.
    """
    zero = Money.zero(facts.currency)
    if facts.currency != config.currency:
        return Validation(zero, (Reason.CURRENCY_MISMATCH,))
    if check_window(config, facts.purchased_at) is not None:
        return Validation(zero, (Reason.OUTSIDE_WINDOW,))
    reasons: list[str] = []
    deadline = claim_deadline(facts.purchased_at, config)
    if deadline is None or facts.submitted_at >= deadline:
        reasons.append(Reason.CLAIM_WINDOW_CLOSED)
    quote = reward_for(config, Cart(currency=facts.currency, items=facts.items))
    reasons += [_claim_reason(reason) for reason in quote.reasons]
    if not quote.reasons and quote.amount.is_zero:
        # Free lines, or a percentage rounding down to nothing: approving would count a
        # reward against the budget and then credit nothing (the wallet refuses a zero).
        reasons.append(Reason.NOT_ELIGIBLE)
    required = config.claims is not None and config.claims.require_receipt
    if facts.receipt_status == "invalid":
        reasons.append(Reason.RECEIPT_INVALID)
    elif required and facts.receipt_status != "valid":
        reasons.append(Reason.RECEIPT_MISSING)
    if reasons:
        return Validation(zero, tuple(dict.fromkeys(reasons)))
    return Validation(quote.amount)


def _claim_reason(quote_reason: str) -> str:
    # A rebate campaign always has a reward (the campaign file rules); a quote without one
    # is a campaign that pays nothing for this purchase.
    return Reason.NOT_ELIGIBLE if quote_reason == "no_reward" else quote_reason


def normalise_receipt_part(text: str) -> str:
    """A retailer or receipt number as compared: NFKC (full-width digits and letters are
    ASCII ones), case folded, without any whitespace: a retailer typed in full-width
    letters with a space is the same as "abcmart", and ``"R-0012 "`` is ``"r-0012"``."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(character for character in folded if not character.isspace())


def purchase_day(purchased_at: datetime, config: CampaignConfig) -> date:
    """The purchase's date as the receipt shows it: in the campaign's timezone."""
    return local_date(purchased_at, config.timezone)


def review_reasons(
    reward: Money,
    config: CampaignConfig,
    *,
    claims_in_period: int,
    velocity_limit: int,
    other_customers_on_file: Sequence[str],
) -> tuple[str, ...]:
    """The signals that send a claim that passed to a person: a reward above the
    auto-approve limit, more than `velocity_limit` claims by the customer in a day (this one
    included in `claims_in_period`), the same receipt file from another customer."""
    reasons: list[str] = []
    limit = config.claims.auto_approve_up_to if config.claims is not None else None
    if limit is not None and reward.amount > limit:
        reasons.append(ReviewReason.ABOVE_AUTO_APPROVE_LIMIT)
    if claims_in_period > velocity_limit:
        reasons.append(ReviewReason.VELOCITY)
    if other_customers_on_file:
        reasons.append(ReviewReason.SHARED_RECEIPT_FILE)
    return tuple(reasons)


def route(
    validation: Validation,
    *,
    duplicates: Sequence[EvidenceFound] = (),
    review: Sequence[str] = (),
    evidence: Sequence[EvidenceFound] = (),
) -> Verdict:
    """Step 3: reject with every reason found; review when a signal asks for a person;
    approve otherwise."""
    found = tuple(duplicates) + tuple(evidence)
    # Plain strings, not the enums: they are stored and serialised as they are.
    reasons = tuple(
        str(reason)
        for reason in dict.fromkeys((*validation.reasons, *(e.reason for e in duplicates)))
    )
    if reasons:
        return Verdict(Outcome.REJECT, validation.reward, reasons, (), found)
    if review:
        return Verdict(Outcome.REVIEW, validation.reward, (), tuple(str(r) for r in review), found)
    return Verdict(Outcome.APPROVE, validation.reward, (), (), found)


@dataclass(frozen=True)
class ReviewTiming:
    """The review wait's limits in seconds, as the state machine's Task takes them."""

    timeout_seconds: int
    heartbeat_seconds: int


def review_timing(
    hours: int, *, seconds_per_hour: int = SECONDS_PER_HOUR, heartbeat_seconds: int
) -> ReviewTiming:
    """``review_timeout_hours`` as seconds (`seconds_per_hour` shrinks an hour for tests, down
    to one second), and the heartbeat interval, which Step Functions wants below the
    timeout: at most half of it, at least a second."""
    if hours < 1 or seconds_per_hour < 1 or heartbeat_seconds < 1:
        raise ValueError("review timing values are positive")
    timeout = hours * seconds_per_hour
    timeout = max(timeout, 2)
    heartbeat = max(1, min(heartbeat_seconds, timeout // 2))
    return ReviewTiming(timeout, heartbeat)
