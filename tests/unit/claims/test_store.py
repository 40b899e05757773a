"""`ClaimStore` on in-process moto: submission and its refusals, every verification rule
with its evidence, approval against the budget, reviewers' decisions, and every step
replayed.

The state machine is a recording fake (`RecordingStateMachine`): the store's part is to
start executions and carry decisions, which is all it sees of Step Functions. Every
refusal is checked to have written nothing; every replay to have changed nothing.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import pytest

from functions.claims.dal import ClaimStore, Decision, ReceiptPending
from functions.claims.errors import (
    AlreadyDecided,
    CampaignArchived,
    CampaignNotFound,
    ClaimError,
    ClaimNotFound,
    ClaimRequestConflict,
    CurrencyNotCampaigns,
    NotARebateCampaign,
    NotInReview,
    PurchaseInFuture,
    ReceiptNotYours,
    ReviewClosed,
)
from functions.claims.logic import Outcome, Verdict
from functions.claims.models import Claim, CustomerClaimCount, DuplicateGuard
from functions.core.money import Money
from tests.unit.claims.conftest import (
    CAMPAIGN,
    PNG,
    PURCHASED,
    SUBMITTED,
    RecordingStateMachine,
    archive,
    aws_env,
    budget_used,
    draft,
    everything,
    full_width,
    line,
    publish,
    rebate,
    timeline,
    uploaded,
)

__all__ = ["aws_env"]

VERIFIED = SUBMITTED + timedelta(minutes=1)
DUE = VERIFIED + timedelta(hours=72)
DECIDED = VERIFIED + timedelta(hours=5)
LATER = DECIDED + timedelta(hours=1)


def yen(amount: int) -> Money:
    return Money.of(amount, "JPY")


def submit(store: ClaimStore, customer: str = "cust-1", **changes: Any) -> Claim:
    """A claim with a valid receipt of its own (unless `receipt` is given), submitted."""
    changes.setdefault("receipt", uploaded(customer))
    now = changes.pop("now", SUBMITTED)
    return store.submit(draft(customer, **changes), now=now).claim


def verify(store: ClaimStore, claim: Claim, now: datetime = VERIFIED, **options: Any) -> Verdict:
    return store.verify(claim.claim_id, now=now, **options)


def in_review(store: ClaimStore, claim: Claim, token: str = "token-1") -> Claim:
    return store.hold_for_review(claim.claim_id, token=token, due_at=DUE, now=VERIFIED)


def evidence(claim_id: str, store: ClaimStore) -> list[tuple[str, str, list[str]]]:
    return [(e.rule, e.reason, list(e.claim_ids)) for e in store.get(claim_id).evidence]


def guard_holders() -> dict[str, str]:
    """Each duplicate guard's holder, by the guard's key."""
    guards = DuplicateGuard.scan(DuplicateGuard.pk.startswith("DUP#"))
    return {guard.pk: guard.claim_id for guard in guards}


def counted(customer: str = "cust-1", campaign: str = CAMPAIGN) -> set[str]:
    count = CustomerClaimCount.get_or_none(*CustomerClaimCount.key(customer, campaign))
    return set(count.claim_ids or ()) if count is not None else set()


def review_campaign(**changes: Any) -> None:
    """The campaign republished so that every 1,000-yen reward goes to a person."""
    publish(rebate(claims={"window_days": 30, "auto_approve_up_to": 500}, **changes))


# -- submission ---------------------------------------------------------------------------


def test_a_submission_stores_the_claim_and_starts_its_execution(
    store: ClaimStore, machine: RecordingStateMachine
) -> None:
    key = uploaded()
    submitted = store.submit(draft(receipt=key, order_id="ord-7"), now=SUBMITTED)

    assert submitted.new
    claim = store.get(submitted.claim.claim_id)
    assert claim.claim_id.startswith("clm_")
    assert (claim.status, claim.campaign_id, claim.customer_id) == ("submitted", CAMPAIGN, "cust-1")
    assert (claim.receipt_key, claim.submitted_at, claim.updated_at) == (key, SUBMITTED, SUBMITTED)
    assert (claim.purchase.order_id, claim.purchase.retailer) == ("ord-7", "ABC Mart")
    assert (claim.purchase.purchased_at, claim.purchase.total) == (PURCHASED, 12_000)
    assert [(i.sku, i.quantity, i.unit_price) for i in claim.purchase.items] == [
        ("TRAIL-01", 1, 12_000)
    ]
    assert timeline(claim) == ["submitted"]
    assert (claim.reward, claim.reasons, claim.task_token) == (None, [], None)
    assert machine.started == [claim.claim_id]
    assert [c.claim_id for c in Claim.with_status("submitted")] == [claim.claim_id]


def cashback_campaign() -> None:
    publish(
        rebate(
            id="trail-cashback",
            kind="cashback",
            claims=None,
            cashback={"pending_days": 0, "expires_after_days": 30},
        )
    )


@pytest.mark.parametrize(
    ("changes", "refusal", "details"),
    [
        pytest.param(
            {"campaign": "never-published"},
            CampaignNotFound,
            {"campaignId": "never-published"},
            id="unknown campaign",
        ),
        pytest.param(
            {"campaign": "trail-archived"},
            CampaignArchived,
            {"campaignId": "trail-archived"},
            id="withdrawn campaign",
        ),
        pytest.param(
            {"campaign": "trail-cashback"},
            NotARebateCampaign,
            {"campaignId": "trail-cashback", "kind": "cashback"},
            id="cashback campaign",
        ),
        pytest.param(
            {"currency": "USD"},
            CurrencyNotCampaigns,
            {"expected": "JPY", "actual": "USD"},
            id="another currency",
        ),
        pytest.param(
            {"purchased_at": SUBMITTED + timedelta(minutes=5, microseconds=1)},
            PurchaseInFuture,
            {"purchasedAt": "2027-03-11T03:05:00.000001Z"},
            id="purchase beyond the clock skew",
        ),
        pytest.param(
            {"receipt": "receipts/Y3VzdC0y/rcp_01JF6Z3Q8W0X9V2KQ4T7M5N8RB.png"},
            ReceiptNotYours,
            {"receiptKey": "receipts/Y3VzdC0y/rcp_01JF6Z3Q8W0X9V2KQ4T7M5N8RB.png"},
            id="receipt of another customer",
        ),
        pytest.param(
            {"receipt": "uploads/cust-1/receipt.png"},
            ReceiptNotYours,
            {"receiptKey": "uploads/cust-1/receipt.png"},
            id="no receipt key",
        ),
    ],
)
def test_refused_submissions_write_nothing_and_start_nothing(
    store: ClaimStore,
    machine: RecordingStateMachine,
    changes: dict[str, Any],
    refusal: type[ClaimError],
    details: dict[str, object],
) -> None:
    cashback_campaign()
    publish(rebate(id="trail-archived"))
    archive("trail-archived")
    uploaded("cust-2")  # the receipt of the other customer's key, granted and checked
    before = everything()
    with pytest.raises(refusal) as refused:
        store.submit(draft(request_key="key-1", **changes), now=SUBMITTED)

    assert refused.value.details == details
    assert everything() == before
    assert machine.started == []


def test_the_receipt_key_of_another_customer_is_refused_even_when_granted(
    store: ClaimStore, machine: RecordingStateMachine
) -> None:
    theirs = uploaded("cust-2")
    before = everything()
    with pytest.raises(ReceiptNotYours):
        store.submit(draft("cust-1", receipt=theirs), now=SUBMITTED)
    assert everything() == before
    assert machine.started == []


def test_a_claim_made_before_its_campaign_was_withdrawn_is_still_verified(
    store: ClaimStore,
) -> None:
    claim = submit(store)
    archive(CAMPAIGN)
    assert verify(store, claim).outcome is Outcome.APPROVE
    approval = store.approve(claim.claim_id, reviewer=None, reason=None, now=DECIDED)
    assert approval.outcome == "approved"


def test_a_purchase_up_to_five_minutes_after_now_is_a_storefronts_clock(
    store: ClaimStore,
) -> None:
    ahead = SUBMITTED + timedelta(minutes=5)
    claim = store.submit(draft(purchased_at=ahead), now=SUBMITTED).claim
    assert store.get(claim.claim_id).purchase.purchased_at == ahead


def test_a_resubmission_with_its_key_returns_the_first_claim_and_starts_it_harmlessly(
    store: ClaimStore, machine: RecordingStateMachine
) -> None:
    key = uploaded()
    first = store.submit(draft(receipt=key, request_key="order-7-claim"), now=SUBMITTED)
    after_first = everything()
    again = store.submit(
        draft(receipt=key, request_key="order-7-claim"), now=SUBMITTED + timedelta(seconds=30)
    )

    assert (first.new, again.new) == (True, False)
    assert again.claim.claim_id == first.claim.claim_id
    assert everything() == after_first
    # Started again in case the first start was lost; Step Functions refuses the second.
    assert machine.started == [first.claim.claim_id, first.claim.claim_id]
    assert machine.executions == {first.claim.claim_id}


def test_the_same_key_with_another_claim_is_a_conflict(
    store: ClaimStore, machine: RecordingStateMachine
) -> None:
    first = store.submit(draft(request_key="k"), now=SUBMITTED).claim
    before = everything()
    with pytest.raises(ClaimRequestConflict) as refused:
        store.submit(draft(request_key="k", receipt_number="R-9999"), now=SUBMITTED)
    assert refused.value.details == {"claimId": first.claim_id}
    assert everything() == before
    assert machine.started == [first.claim_id]


def test_keys_are_each_customers_own(store: ClaimStore) -> None:
    mine = store.submit(draft("cust-1", request_key="k"), now=SUBMITTED)
    theirs = store.submit(draft("cust-2", request_key="k"), now=SUBMITTED)
    assert theirs.new
    assert theirs.claim.claim_id != mine.claim.claim_id


def test_without_a_key_every_submission_is_a_new_claim(store: ClaimStore) -> None:
    first = store.submit(draft(), now=SUBMITTED).claim
    second = store.submit(draft(), now=SUBMITTED).claim
    assert first.claim_id != second.claim_id


def test_an_unknown_claim_is_not_found(store: ClaimStore) -> None:
    with pytest.raises(ClaimNotFound) as missing:
        store.get("clm_nothing")
    assert missing.value.details == {"claimId": "clm_nothing"}


# -- verification: the happy path ----------------------------------------------------------


def test_a_sound_claim_is_verified_approved_and_credited_with_its_timeline(
    store: ClaimStore,
) -> None:
    claim = submit(store)

    verdict = verify(store, claim)
    assert verdict == Verdict(Outcome.APPROVE, yen(1000))
    stored = store.get(claim.claim_id)
    assert (stored.status, stored.reward, stored.review_reasons) == ("verifying", yen(1000), [])
    assert stored.receipt_hash == hashlib.sha256(PNG).hexdigest()

    approval = store.approve(claim.claim_id, reviewer=None, reason=None, now=DECIDED)
    assert (approval.outcome, approval.reward, approval.approved_at) == (
        "approved",
        yen(1000),
        DECIDED,
    )
    assert budget_used() == (1000, 1)

    credited = store.mark_credited(claim.claim_id, lot_id="lot_claim_1", now=LATER)
    assert (credited.status, credited.lot_id) == ("credited", "lot_claim_1")
    final = store.get(claim.claim_id)
    assert [(t.status, t.at, t.note) for t in final.timeline] == [
        ("submitted", SUBMITTED, None),
        ("verifying", VERIFIED, None),
        ("approved", DECIDED, "approved automatically"),
        ("credited", LATER, "lot lot_claim_1"),
    ]
    assert (final.reviewer, final.task_token, final.reasons) == (None, None, [])


def test_a_claim_failing_validation_is_rejected_without_taking_any_guard(
    store: ClaimStore,
) -> None:
    claim = submit(store, items=(line("ROAD-01", 20_000),))
    verdict = verify(store, claim)
    assert (verdict.outcome, verdict.reasons) == (Outcome.REJECT, ("not_eligible",))
    assert store.get(claim.claim_id).reward is None
    assert guard_holders() == {}
    assert counted() == set()

    rejected = store.reject(claim.claim_id, reasons=verdict.reasons, reviewer=None, now=LATER)
    assert (rejected.status, rejected.reasons) == ("rejected", ["not_eligible"])
    assert timeline(rejected) == ["submitted", "verifying", "rejected"]


def test_a_receipt_not_yet_checked_waits_then_is_judged_missing(store: ClaimStore) -> None:
    claim = submit(store, receipt=uploaded(status="awaiting_upload"))
    with pytest.raises(ReceiptPending):
        verify(store, claim)
    assert store.get(claim.claim_id).status == "verifying"

    verdict = verify(store, claim, receipt_wait_over=True)
    assert (verdict.outcome, verdict.reasons) == (Outcome.REJECT, ("receipt_missing",))


def test_an_invalid_receipt_rejects_the_claim(store: ClaimStore) -> None:
    claim = submit(store, receipt=uploaded(status="invalid"))
    assert verify(store, claim).reasons == ("receipt_invalid",)


def test_a_receipt_key_never_granted_is_a_missing_receipt(store: ClaimStore) -> None:
    claim = submit(store, receipt="receipts/Y3VzdC0x/rcp_01JF6Z3Q8W0X9V2KQ4T7M5N8RB.png")
    assert verify(store, claim).reasons == ("receipt_missing",)


# -- duplicates and fraud -------------------------------------------------------------------


def test_the_same_receipt_written_differently_by_another_customer_is_a_duplicate(
    store: ClaimStore,
) -> None:
    first = submit(store, "cust-1", retailer="ABC Mart", receipt_number="R-0012")
    assert verify(store, first).outcome is Outcome.APPROVE

    second = submit(
        store,
        "cust-2",
        retailer=full_width("ABC mart"),
        receipt_number="r-0012 ",
        # Later the same day in Tokyo (23:00 there): the same purchase date.
        purchased_at=PURCHASED + timedelta(hours=11),
        receipt=uploaded("cust-2", content=PNG + b" photographed again"),
    )
    verdict = verify(store, second)

    assert (verdict.outcome, verdict.reasons) == (Outcome.REJECT, ("duplicate_receipt",))
    assert evidence(second.claim_id, store) == [
        ("same_receipt_number", "duplicate_receipt", [first.claim_id])
    ]
    store.reject(second.claim_id, reasons=verdict.reasons, reviewer=None, now=LATER)
    # The first claim keeps its guard; the duplicate gave back only what it held.
    assert set(guard_holders().values()) == {first.claim_id}
    assert counted("cust-2") == set()


def test_a_customers_second_copy_is_a_duplicate_and_takes_no_place_in_the_count(
    store: ClaimStore,
) -> None:
    publish(rebate(limits={"per_customer": 1}))
    key = uploaded()
    original = submit(store, receipt=key)
    assert verify(store, original).outcome is Outcome.APPROVE
    copy = submit(store, receipt=key)

    verdict = verify(store, copy)
    assert verdict.reasons == ("duplicate_receipt",)  # not limit_reached as well
    assert [rule for rule, _, _ in evidence(copy.claim_id, store)] == [
        "same_receipt_number",
        "same_receipt_file",
    ]
    assert counted() == {original.claim_id}
    assert set(guard_holders().values()) == {original.claim_id}


def test_the_same_receipt_on_another_day_is_another_receipt(store: ClaimStore) -> None:
    first = submit(store, "cust-1")
    verify(store, first)
    # 01:00 on 03-11 in Tokyo.
    other_day = submit(
        store,
        "cust-2",
        purchased_at=PURCHASED + timedelta(hours=13),
        receipt=uploaded("cust-2", content=b"another photo"),
    )
    assert verify(store, other_day).outcome is Outcome.APPROVE


def test_the_same_receipt_file_is_a_duplicate_whatever_its_number(store: ClaimStore) -> None:
    first = submit(store, "cust-1")
    verify(store, first)
    copy = submit(store, "cust-2", receipt_number="R-7777", receipt=uploaded("cust-2"))

    verdict = verify(store, copy)
    assert verdict.reasons == ("duplicate_receipt",)
    assert evidence(copy.claim_id, store) == [
        ("same_receipt_file", "duplicate_receipt", [first.claim_id])
    ]


def test_the_per_customer_limit_rejects_the_claim_after_it_with_the_claims_counted(
    store: ClaimStore,
) -> None:
    publish(rebate(limits={"per_customer": 2}))
    claims = [
        submit(store, receipt_number=f"R-{n}", receipt=uploaded(content=PNG + bytes([n])))
        for n in range(3)
    ]
    assert [verify(store, c).outcome for c in claims[:2]] == [Outcome.APPROVE] * 2

    verdict = verify(store, claims[2])
    assert verdict.reasons == ("limit_reached",)
    assert evidence(claims[2].claim_id, store) == [
        ("per_customer_limit", "limit_reached", sorted(c.claim_id for c in claims[:2]))
    ]
    assert store.get(claims[2].claim_id).evidence[0].note == (
        "the customer has 2 of 2 rewards of this campaign"
    )
    store.reject(claims[2].claim_id, reasons=verdict.reasons, reviewer=None, now=LATER)
    assert counted() == {c.claim_id for c in claims[:2]}


def claimed_at(store: ClaimStore, when: datetime, n: int) -> Claim:
    """A claim by cust-1 with a receipt of its own, submitted at `when`."""
    return submit(
        store, receipt_number=f"R-{n}", receipt=uploaded(content=PNG + bytes([n])), now=when
    )


@pytest.mark.parametrize(
    ("third", "outcome"),
    [
        pytest.param(SUBMITTED + timedelta(days=1), Outcome.REVIEW, id="first 24 hours old"),
        pytest.param(
            SUBMITTED + timedelta(days=1, microseconds=1), Outcome.APPROVE, id="first older"
        ),
    ],
)
def test_more_claims_in_a_day_than_the_velocity_limit_go_to_review(
    store: ClaimStore, third: datetime, outcome: Outcome
) -> None:
    claims = []
    for n, when in enumerate((SUBMITTED, SUBMITTED + timedelta(hours=1), third)):
        claim = claimed_at(store, when, n)
        claims.append(claim)
        verdict = verify(store, claim, now=when, velocity_limit=2)
    assert verdict.outcome is outcome
    if outcome is Outcome.REVIEW:
        assert verdict.review_reasons == ("velocity",)
        assert evidence(claims[2].claim_id, store) == [
            ("velocity", "velocity", [claims[1].claim_id, claims[0].claim_id])
        ]
        stored = store.get(claims[2].claim_id)
        assert stored.review_reasons == ["velocity"]
        assert stored.evidence[0].note == "3 claims by this customer in 24 hours (more than 2)"
    else:
        assert evidence(claims[2].claim_id, store) == []


def test_a_receipt_file_another_customer_sent_elsewhere_goes_to_review(
    store: ClaimStore,
) -> None:
    publish(rebate(id="hike-rebate-2027", name="Hiking boots rebate"))
    first = submit(store, "cust-1")
    verify(store, first)
    # The same photo, for another campaign (where it is no duplicate), by someone else.
    shared = submit(store, "cust-2", campaign="hike-rebate-2027", receipt=uploaded("cust-2"))

    verdict = verify(store, shared)
    assert (verdict.outcome, verdict.review_reasons) == (Outcome.REVIEW, ("shared_receipt_file",))
    assert evidence(shared.claim_id, store) == [
        ("receipt_file_shared", "shared_receipt_file", [first.claim_id])
    ]
    held = in_review(store, shared)
    assert held.status == "in_review"


def test_the_same_customer_sending_one_file_to_two_campaigns_is_no_signal(
    store: ClaimStore,
) -> None:
    publish(rebate(id="hike-rebate-2027", name="Hiking boots rebate"))
    verify(store, submit(store, "cust-1"))
    again = submit(store, "cust-1", campaign="hike-rebate-2027")
    assert verify(store, again).outcome is Outcome.APPROVE


def test_a_rejection_gives_back_the_guards_and_the_count_so_a_corrected_claim_passes(
    store: ClaimStore,
) -> None:
    review_campaign(limits={"per_customer": 1})
    key = uploaded()
    first = submit(store, receipt=key)
    assert verify(store, first).outcome is Outcome.REVIEW
    assert set(guard_holders().values()) == {first.claim_id}  # its number and its file
    assert len(guard_holders()) == 2
    assert counted() == {first.claim_id}
    in_review(store, first)
    store.decide(first.claim_id, decision="reject", reason="blurred", reviewer="op-1", now=DECIDED)
    rejected = store.reject(
        first.claim_id, reasons=("review_rejected",), reviewer="op-1", note="blurred", now=DECIDED
    )
    assert (rejected.status, rejected.reasons, rejected.reviewer) == (
        "rejected",
        ["review_rejected"],
        "op-1",
    )
    assert rejected.timeline[-1].note == "blurred"
    assert guard_holders() == {}
    assert counted() == set()

    corrected = submit(store, receipt=key, now=DECIDED)
    verdict = verify(store, corrected, now=LATER)
    assert (verdict.outcome, verdict.reasons) == (Outcome.REVIEW, ())
    assert set(guard_holders().values()) == {corrected.claim_id}
    assert counted() == {corrected.claim_id}


# -- approval and the budget ------------------------------------------------------------------


def test_a_replayed_approval_reserves_the_budget_once(store: ClaimStore) -> None:
    claim = submit(store)
    verify(store, claim)
    first = store.approve(claim.claim_id, reviewer=None, reason=None, now=DECIDED)
    before = everything()

    again = store.approve(claim.claim_id, reviewer=None, reason=None, now=LATER)
    assert again == first
    assert everything() == before
    assert budget_used() == (1000, 1)


def test_an_approval_after_review_names_the_reviewer(store: ClaimStore) -> None:
    review_campaign()
    claim = submit(store)
    verify(store, claim)
    in_review(store, claim)
    store.approve(claim.claim_id, reviewer="op-1", reason="receipt checked", now=DECIDED)
    approved = store.get(claim.claim_id)
    assert (approved.status, approved.reviewer, approved.task_token) == ("approved", "op-1", None)
    assert approved.timeline[-1].note == "approved by op-1: receipt checked"
    assert [c.claim_id for c in store.review_queue()] == []


@pytest.mark.parametrize(
    "budget",
    [
        pytest.param({"amount": 1500}, id="amount"),
        pytest.param({"max_rewards": 1}, id="rewards"),
    ],
)
def test_an_exhausted_budget_rejects_the_claim_and_gives_back_its_guards(
    store: ClaimStore, budget: dict[str, int]
) -> None:
    publish(rebate(budget=budget, claims={"window_days": 30, "auto_approve_up_to": 1000}))
    paid = submit(store, "cust-1")
    verify(store, paid)
    store.approve(paid.claim_id, reviewer=None, reason=None, now=DECIDED)
    late = submit(store, "cust-2", receipt_number="R-2", receipt=uploaded("cust-2", content=b"2"))
    assert verify(store, late).outcome is Outcome.APPROVE
    assert late.claim_id in guard_holders().values()

    approval = store.approve(late.claim_id, reviewer=None, reason=None, now=DECIDED)
    assert (approval.outcome, approval.reward, approval.reasons) == (
        "rejected",
        None,
        ("budget_exhausted",),
    )
    rejected = store.get(late.claim_id)
    assert (rejected.status, rejected.reasons) == ("rejected", ["budget_exhausted"])
    assert rejected.reward is None  # a rejected claim pays nothing
    assert set(guard_holders().values()) == {paid.claim_id}
    assert counted("cust-2") == set()
    assert budget_used() == (1000, 1)
    # Replayed, the approval answers the rejection it made.
    assert store.approve(late.claim_id, reviewer=None, reason=None, now=LATER) == approval


def test_approving_a_claim_verification_rejected_is_refused(store: ClaimStore) -> None:
    claim = submit(store, items=(line(price=100),))
    verify(store, claim)
    with pytest.raises(NotInReview):
        store.approve(claim.claim_id, reviewer=None, reason=None, now=DECIDED)
    assert budget_used() == (0, 0)


# -- reviewers' decisions ----------------------------------------------------------------------


@pytest.fixture
def waiting(store: ClaimStore) -> Claim:
    """A claim waiting for review with the task token "token-1"."""
    review_campaign()
    claim = submit(store)
    assert verify(store, claim).outcome is Outcome.REVIEW
    return in_review(store, claim)


def test_a_decision_is_recorded_and_sent_to_the_waiting_execution(
    store: ClaimStore, machine: RecordingStateMachine, waiting: Claim
) -> None:
    decided = store.decide(
        waiting.claim_id, decision="approve", reason="looks fine", reviewer="op-1", now=DECIDED
    )
    assert decided == Decision(waiting.claim_id, "approve", "op-1", "in_review")
    assert machine.decisions == [
        ("token-1", {"decision": "approve", "reason": "looks fine", "reviewer": "op-1"})
    ]
    claim = store.get(waiting.claim_id)
    assert (claim.decision, claim.decision_reason, claim.reviewer, claim.decided_at) == (
        "approve",
        "looks fine",
        "op-1",
        DECIDED,
    )


def test_a_second_decision_is_refused_naming_the_first(
    store: ClaimStore, machine: RecordingStateMachine, waiting: Claim
) -> None:
    store.decide(waiting.claim_id, decision="approve", reason="ok", reviewer="op-1", now=DECIDED)
    before = everything()
    with pytest.raises(AlreadyDecided) as refused:
        store.decide(waiting.claim_id, decision="reject", reason="no", reviewer="op-2", now=LATER)
    assert refused.value.details == {
        "claimId": waiting.claim_id,
        "decision": "approve",
        "reviewer": "op-1",
    }
    assert everything() == before
    assert len(machine.decisions) == 1


def test_the_same_decision_sent_again_before_the_claim_moves_on_is_answered_and_kept(
    store: ClaimStore, machine: RecordingStateMachine, waiting: Claim
) -> None:
    first = store.decide(
        waiting.claim_id, decision="approve", reason="ok", reviewer="op-1", now=DECIDED
    )
    machine.closed.add("token-1")  # spent by the first delivery; the wait is not over
    again = store.decide(
        waiting.claim_id, decision="approve", reason="ok", reviewer="op-1", now=DECIDED
    )
    assert again == first
    claim = store.get(waiting.claim_id)
    assert (claim.decision, claim.reviewer, claim.decided_at) == ("approve", "op-1", DECIDED)


def test_the_same_decision_sent_again_after_the_deadline_is_closed(
    store: ClaimStore, machine: RecordingStateMachine, waiting: Claim
) -> None:
    store.decide(waiting.claim_id, decision="approve", reason="ok", reviewer="op-1", now=DECIDED)
    machine.closed.add("token-1")
    due = store.get(waiting.claim_id).review_due_at
    assert due is not None
    with pytest.raises(ReviewClosed):
        store.decide(waiting.claim_id, decision="approve", reason="ok", reviewer="op-1", now=due)
    assert store.get(waiting.claim_id).decision is None


def test_a_decision_on_a_claim_decided_and_approved_is_already_decided(
    store: ClaimStore, waiting: Claim
) -> None:
    store.decide(waiting.claim_id, decision="approve", reason="ok", reviewer="op-1", now=DECIDED)
    store.approve(waiting.claim_id, reviewer="op-1", reason="ok", now=DECIDED)
    with pytest.raises(AlreadyDecided):
        store.decide(waiting.claim_id, decision="approve", reason="ok", reviewer="op-2", now=LATER)


@pytest.mark.parametrize("stage", ["verifying", "approved automatically"])
def test_a_decision_on_a_claim_not_waiting_is_refused(
    store: ClaimStore, machine: RecordingStateMachine, stage: str
) -> None:
    claim = submit(store)
    verify(store, claim)
    if stage == "approved automatically":
        store.approve(claim.claim_id, reviewer=None, reason=None, now=DECIDED)
    before = everything()
    with pytest.raises(NotInReview) as refused:
        store.decide(claim.claim_id, decision="approve", reason="ok", reviewer="op-1", now=LATER)
    assert refused.value.details["claimId"] == claim.claim_id
    assert everything() == before
    assert machine.decisions == []


def test_a_decision_after_the_wait_timed_out_is_closed_and_not_kept(
    store: ClaimStore, machine: RecordingStateMachine, waiting: Claim
) -> None:
    machine.closed.add("token-1")
    before = everything()
    with pytest.raises(ReviewClosed) as refused:
        store.decide(waiting.claim_id, decision="approve", reason="ok", reviewer="op-1", now=LATER)
    assert refused.value.details == {"claimId": waiting.claim_id}
    assert everything() == before  # the decision recorded first was taken back
    claim = store.get(waiting.claim_id)
    assert (claim.decision, claim.reviewer, claim.decided_at) == (None, None, None)

    # Once the timeout path rejected it, a decision is still closed, and none is sent.
    store.reject(waiting.claim_id, reasons=("review_timeout",), reviewer=None, now=LATER)
    with pytest.raises(ReviewClosed):
        store.decide(waiting.claim_id, decision="reject", reason="no", reviewer="op-2", now=LATER)
    assert len(machine.decisions) == 1


def test_a_decision_on_an_unknown_claim_is_not_found(store: ClaimStore) -> None:
    with pytest.raises(ClaimNotFound):
        store.decide("clm_nothing", decision="approve", reason="ok", reviewer="op", now=LATER)


def test_the_review_queue_holds_the_waiting_claims_oldest_first(
    store: ClaimStore, waiting: Claim
) -> None:
    later = submit(store, "cust-2", receipt_number="R-2", receipt=uploaded("cust-2", content=b"2"))
    verify(store, later)
    in_review(store, later, token="token-2")
    assert [c.claim_id for c in store.review_queue()] == [waiting.claim_id, later.claim_id]
    assert store.get(waiting.claim_id).review_due_at == DUE


# -- replays ------------------------------------------------------------------------------------


def test_every_step_replayed_changes_nothing(store: ClaimStore, waiting: Claim) -> None:
    claim_id = waiting.claim_id

    def replayed(step: Any) -> None:
        before = everything()
        step()
        assert everything() == before

    replayed(lambda: in_review(store, waiting))
    replayed(lambda: store.verify(claim_id, now=LATER))
    store.decide(claim_id, decision="approve", reason="ok", reviewer="op-1", now=DECIDED)
    replayed(lambda: store.verify(claim_id, now=LATER))
    store.approve(claim_id, reviewer="op-1", reason="ok", now=DECIDED)
    replayed(lambda: store.approve(claim_id, reviewer="op-1", reason="ok", now=LATER))
    replayed(lambda: store.verify(claim_id, now=LATER))
    store.mark_credited(claim_id, lot_id="lot-1", now=DECIDED)
    replayed(lambda: store.mark_credited(claim_id, lot_id="lot-1", now=LATER))
    replayed(lambda: store.approve(claim_id, reviewer="op-1", reason="ok", now=LATER))
    replayed(lambda: store.fail(claim_id, error="Late", cause="a stray retry", now=LATER))
    assert timeline(store.get(claim_id)) == [
        "submitted",
        "verifying",
        "in_review",
        "approved",
        "credited",
    ]


def routed(verdict: Verdict) -> tuple[Any, ...]:
    """What the state machine acts on, and the evidence behind it."""
    found = [(e.rule, str(e.reason), e.claim_ids) for e in verdict.evidence]
    return verdict.outcome, verdict.reasons, verdict.review_reasons, found


def test_a_verification_replayed_before_its_answer_gives_the_same_verdict(
    store: ClaimStore,
) -> None:
    claims = [claimed_at(store, SUBMITTED + timedelta(minutes=n), n) for n in range(2)]
    first = verify(store, claims[0])
    before = everything()

    # Retried, later, after another claim of the customer arrived (velocity would count
    # it): the verdict given stands, and nothing is written again.
    assert verify(store, claims[0], now=LATER, velocity_limit=1) == first
    assert everything() == before
    assert timeline(store.get(claims[0].claim_id)) == ["submitted", "verifying"]


def test_a_rejecting_verification_replayed_gives_the_same_verdict(store: ClaimStore) -> None:
    original = submit(store, "cust-1")
    verify(store, original)
    copy = submit(store, "cust-2", receipt=uploaded("cust-2"))  # the same receipt
    verdict = verify(store, copy)
    before = everything()

    assert routed(verify(store, copy, now=LATER)) == routed(verdict)
    assert everything() == before
    assert set(guard_holders().values()) == {original.claim_id}


def test_a_replayed_rejection_changes_nothing(store: ClaimStore) -> None:
    claim = submit(store, items=(line(price=100),))
    reasons = verify(store, claim).reasons
    store.reject(claim.claim_id, reasons=reasons, reviewer=None, now=DECIDED)
    before = everything()
    store.reject(claim.claim_id, reasons=reasons, reviewer=None, now=LATER)
    store.reject(claim.claim_id, reasons=("review_timeout",), reviewer=None, now=LATER)
    assert store.verify(claim.claim_id, now=LATER).reasons == ("below_min_purchase",)
    assert everything() == before


def test_holding_for_review_twice_is_one_move_into_review(
    store: ClaimStore, waiting: Claim
) -> None:
    # The hold task retried: a new attempt of the wait, with its own token.
    later_due = DUE + timedelta(minutes=1)
    store.hold_for_review(waiting.claim_id, token="token-2", due_at=later_due, now=LATER)
    claim = store.get(waiting.claim_id)
    assert timeline(claim) == ["submitted", "verifying", "in_review"]
    assert (claim.task_token, claim.review_due_at) == ("token-2", later_due)
    assert [c.claim_id for c in store.review_queue()] == [waiting.claim_id]


# -- errors --------------------------------------------------------------------------------------


def test_a_failure_ends_the_claim_in_error_with_its_cause_kept(
    store: ClaimStore, waiting: Claim
) -> None:
    failed = store.fail(
        waiting.claim_id,
        error="States.HeartbeatTimeout",
        cause="no heartbeat for 21600 seconds",
        now=LATER,
    )
    assert failed.status == "error"
    claim = store.get(waiting.claim_id)
    assert claim.error_cause == "States.HeartbeatTimeout: no heartbeat for 21600 seconds"
    assert (claim.task_token, claim.timeline[-1].status, claim.timeline[-1].note) == (
        None,
        "error",
        "States.HeartbeatTimeout",
    )
    assert store.review_queue() == []
    before = everything()
    store.fail(waiting.claim_id, error="Other", cause="later", now=LATER + timedelta(hours=1))
    assert everything() == before


def test_a_failure_after_approval_is_an_error_too(store: ClaimStore) -> None:
    claim = submit(store)
    verify(store, claim)
    store.approve(claim.claim_id, reviewer=None, reason=None, now=DECIDED)
    cause = "x" * 5000
    failed = store.fail(claim.claim_id, error="Lambda.Unknown", cause=cause, now=LATER)
    assert failed.status == "error"
    kept = store.get(claim.claim_id).error_cause
    assert kept is not None and len(kept) == 4000
    assert kept.startswith("Lambda.Unknown: xxx")


def test_a_failure_reported_for_a_credited_claim_changes_nothing(store: ClaimStore) -> None:
    claim = submit(store)
    verify(store, claim)
    store.approve(claim.claim_id, reviewer=None, reason=None, now=DECIDED)
    store.mark_credited(claim.claim_id, lot_id="lot-1", now=DECIDED)
    before = everything()
    assert store.fail(claim.claim_id, error="E", cause="c", now=LATER).status == "credited"
    assert everything() == before


# -- a customer's claims --------------------------------------------------------------------------


def test_a_customers_claims_are_paged_newest_first(store: ClaimStore) -> None:
    claims = [
        store.submit(draft(receipt_number=f"R-{n}"), now=SUBMITTED + timedelta(minutes=n)).claim
        for n in range(5)
    ]
    store.submit(draft("cust-2"), now=SUBMITTED)
    newest_first = [c.claim_id for c in reversed(claims)]

    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = store.for_customer("cust-1", page_token=token, limit=2)
        seen += [c.claim_id for c in page.claims]
        pages += 1
        token = page.next_token
        if token is None:
            break
    assert seen == newest_first
    assert pages == 3
