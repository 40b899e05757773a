"""The claims outbox: which Claims-table changes are events, the events' fields, and the
stream filters that hand the outbox exactly those changes.

The claims are made by the store as verification makes them (on in-process moto), and
read back after each step; each change is a stream record built from the item before and
after (their ``serialize()`` is the DynamoDB JSON the stream carries).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import pytest

from functions.claims.dal import ClaimStore
from functions.claims.handlers.outbox import Outbox
from functions.claims.models import (
    Claim,
    ClaimRequest,
    CustomerClaimCount,
    DuplicateGuard,
    PurchaseItem,
    PurchaseMap,
    Receipt,
    ReceiptFileUse,
)
from functions.claims.outbox import STREAM_FILTERS, event_for
from functions.core.event_types import (
    ClaimApproved,
    ClaimNeedsReview,
    ClaimRejected,
    ClaimSubmitted,
)
from functions.core.events import InMemoryPublisher
from functions.core.money import Money
from functions.core.outbox import OutboxRecordError, event_id
from infra.local.stream_filters import matches, validate_filter_criteria
from tests.support.streams import batch
from tests.support.streams import stream_record as stream_record_of
from tests.unit.claims.conftest import (
    CAMPAIGN,
    PURCHASED,
    SUBMITTED,
    RecordingStateMachine,
    aws_env,
    draft,
    publish,
    rebate,
    tables_for_a_module,
    uploaded,
)

__all__ = ["aws_env"]

STREAM_ARN: Final = (
    "arn:aws:dynamodb:ap-northeast-1:123456789012:table/rebates-claims/stream/2027-03-01T00:00"
)
VERIFIED = SUBMITTED + timedelta(minutes=1)
DUE = VERIFIED + timedelta(hours=72)
DECIDED = VERIFIED + timedelta(hours=5)
CREDITED = DECIDED + timedelta(seconds=3)

stream_record = functools.partial(stream_record_of, created=1804734005, stream_arn=STREAM_ARN)
# The mapping's FilterCriteria, as the stack declares it and the local cloud applies it.
FILTER_CRITERIA: Final = {
    "Filters": [{"Pattern": json.dumps(pattern)} for pattern in STREAM_FILTERS]
}


def modified(old: Any, new: Any, sequence: int = 1) -> dict[str, Any]:
    return stream_record("MODIFY", old=old, new=new, sequence=sequence)


def delivered(record: dict[str, Any]) -> bool:
    """Whether Lambda hands `record` to the outbox at all."""
    return matches(FILTER_CRITERIA, record)


@dataclass
class Story:
    """A claim as each step left it (every field a `Claim` read back)."""

    submitted: Claim
    verified: Claim
    held: Claim
    decided: Claim
    approved: Claim
    credited: Claim


def reviewed_and_credited(store: ClaimStore) -> Story:
    publish(rebate(claims={"window_days": 30, "auto_approve_up_to": 500}))
    claim_id = store.submit(
        draft(receipt=uploaded(), order_id="ord-7"), now=SUBMITTED
    ).claim.claim_id
    submitted = store.get(claim_id)
    store.verify(claim_id, now=VERIFIED)
    verified = store.get(claim_id)
    store.hold_for_review(claim_id, token="token-1", due_at=DUE, now=VERIFIED)
    held = store.get(claim_id)
    store.decide(claim_id, decision="approve", reason="ok", reviewer="op-1", now=DECIDED)
    decided = store.get(claim_id)
    store.approve(claim_id, reviewer="op-1", reason="ok", now=DECIDED)
    approved = store.get(claim_id)
    store.mark_credited(claim_id, lot_id="lot-1", now=CREDITED)
    return Story(submitted, verified, held, decided, approved, store.get(claim_id))


@pytest.fixture(scope="module")
def story(connections: None) -> Story:
    """One claim's story, told once for the module: the claims read back stay in memory."""
    with tables_for_a_module():
        return reviewed_and_credited(ClaimStore(state_machine=RecordingStateMachine()))


def fields(event: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = event.model_dump(mode="json", exclude={"eventId", "correlationId"})
    return dumped


def ids(claim: Claim) -> dict[str, str]:
    return {"claimId": claim.claim_id, "customerId": "cust-1", "campaignId": CAMPAIGN}


# -- the events -------------------------------------------------------------------------------


def test_a_stored_claim_is_announced_as_submitted(story: Story) -> None:
    event = event_for(stream_record("INSERT", new=story.submitted))
    assert isinstance(event, ClaimSubmitted)
    assert fields(event) == {
        **ids(story.submitted),
        "occurredAt": "2027-03-11T03:00:00Z",
        "orderId": "ord-7",
        "retailer": "ABC Mart",
        "purchasedAt": "2027-03-10T03:00:00Z",
        "purchaseTotal": {"amount": 12000, "currency": "JPY"},
    }
    assert event.eventId == event_id("ClaimSubmitted", story.submitted.pk, "submitted")


def test_a_claim_entering_review_is_announced_with_its_reasons_and_due_date(
    story: Story,
) -> None:
    event = event_for(modified(story.verified, story.held))
    assert isinstance(event, ClaimNeedsReview)
    assert fields(event) == {
        **ids(story.held),
        "occurredAt": "2027-03-11T03:01:00Z",
        "reward": {"amount": 1000, "currency": "JPY"},
        "reasons": ["above_auto_approve_limit"],
        "reviewDueAt": "2027-03-14T03:01:00Z",
    }


def test_an_approval_is_announced_with_its_reviewer(story: Story) -> None:
    event = event_for(modified(story.decided, story.approved))
    assert isinstance(event, ClaimApproved)
    assert fields(event) == {
        **ids(story.approved),
        "occurredAt": "2027-03-11T08:01:00Z",
        "reward": {"amount": 1000, "currency": "JPY"},
        "reviewer": "op-1",
    }


def test_an_automatic_approval_has_no_reviewer(store: ClaimStore) -> None:
    claim_id = store.submit(draft(receipt=uploaded()), now=SUBMITTED).claim.claim_id
    store.verify(claim_id, now=VERIFIED)
    verified = store.get(claim_id)
    store.approve(claim_id, reviewer=None, reason=None, now=DECIDED)
    event = event_for(modified(verified, store.get(claim_id)))
    assert isinstance(event, ClaimApproved)
    assert (event.reviewer, event.reward) == (None, Money.of(1000, "JPY"))


def test_a_rejection_is_announced_with_its_reasons(store: ClaimStore) -> None:
    claim_id = store.submit(draft(receipt=None), now=SUBMITTED).claim.claim_id
    reasons = store.verify(claim_id, now=VERIFIED).reasons
    verified = store.get(claim_id)
    store.reject(claim_id, reasons=reasons, reviewer=None, now=DECIDED)
    event = event_for(modified(verified, store.get(claim_id)))
    assert isinstance(event, ClaimRejected)
    assert fields(event) == {
        **ids(verified),
        "occurredAt": "2027-03-11T08:01:00Z",
        "reasons": ["receipt_missing"],
        "reviewer": None,
    }


def test_a_rejection_by_a_reviewer_names_them(store: ClaimStore) -> None:
    publish(rebate(claims={"window_days": 30, "auto_approve_up_to": 500}))
    claim_id = store.submit(
        draft("cust-2", receipt_number="R-2", receipt=uploaded("cust-2", content=b"2")),
        now=SUBMITTED,
    ).claim.claim_id
    store.verify(claim_id, now=VERIFIED)
    store.hold_for_review(claim_id, token="token-2", due_at=DUE, now=VERIFIED)
    held = store.get(claim_id)
    store.reject(claim_id, reasons=("review_rejected",), reviewer="op-2", now=DECIDED)
    event = event_for(modified(held, store.get(claim_id)))
    assert isinstance(event, ClaimRejected)
    assert (event.reasons, event.reviewer) == (["review_rejected"], "op-2")


def test_the_moves_that_are_no_customer_event(story: Story, store: ClaimStore) -> None:
    assert event_for(modified(story.submitted, story.verified)) is None  # verifying
    assert event_for(modified(story.approved, story.credited)) is None  # the wallet's event
    claim_id = store.submit(draft("cust-2"), now=SUBMITTED).claim.claim_id
    before = store.get(claim_id)
    store.fail(claim_id, error="States.TaskFailed", cause="boom", now=VERIFIED)
    assert store.get(claim_id).status == "error"
    assert event_for(modified(before, store.get(claim_id))) is None  # an alarm, not an event


def test_a_change_that_keeps_the_status_is_no_event(story: Story) -> None:
    assert event_for(modified(story.held, story.decided)) is None  # the decision recorded
    assert event_for(modified(story.approved, story.approved)) is None
    assert event_for(stream_record("REMOVE", old=story.approved)) is None


def test_a_redelivered_record_is_published_with_the_same_event_id(story: Story) -> None:
    records = [
        stream_record("INSERT", new=story.submitted),
        modified(story.verified, story.held),
        modified(story.decided, story.approved),
    ]
    first = [event_for(record) for record in records]
    again = [event_for(json.loads(json.dumps(record))) for record in records]
    assert all(first)
    assert [e.eventId for e in first if e] == [e.eventId for e in again if e]
    assert len({e.eventId for e in first if e}) == 3


def test_a_claim_in_review_without_its_due_date_is_a_broken_record(story: Story) -> None:
    broken = modified(story.verified, story.held)
    del broken["dynamodb"]["NewImage"]["reviewDueAt"]
    with pytest.raises(OutboxRecordError, match="reviewDueAt"):
        event_for(broken)


def test_an_approved_claim_without_its_reward_is_a_broken_record(story: Story) -> None:
    broken = modified(story.decided, story.approved)
    del broken["dynamodb"]["NewImage"]["reward"]
    with pytest.raises(OutboxRecordError, match="without a reward"):
        event_for(broken)


# -- the handler --------------------------------------------------------------------------------


def test_a_batch_publishes_each_event_once_and_skips_the_rest(story: Story) -> None:
    events = InMemoryPublisher()
    response = Outbox(events).handle(
        batch(
            stream_record("INSERT", new=story.submitted, sequence=1),
            modified(story.submitted, story.verified, sequence=2),
            modified(story.verified, story.held, sequence=3),
            modified(story.decided, story.approved, sequence=4),
            modified(story.approved, story.credited, sequence=5),
        )
    )
    assert response == {"batchItemFailures": []}
    assert events.detail_types == ["ClaimSubmitted", "ClaimNeedsReview", "ClaimApproved"]


def test_a_broken_record_fails_alone(story: Story) -> None:
    broken = modified(story.decided, story.approved, sequence=2)
    del broken["dynamodb"]["NewImage"]["reward"]
    events = InMemoryPublisher()
    response = Outbox(events).handle(
        batch(stream_record("INSERT", new=story.submitted, sequence=1), broken)
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": f"{2:021d}"}]}
    assert events.detail_types == ["ClaimSubmitted"]


# -- the stream filters ---------------------------------------------------------------------------


def other_items(store: ClaimStore) -> list[Any]:
    """Every other kind of item the Claims table holds, as the store wrote them."""
    kinds = (DuplicateGuard, CustomerClaimCount, ClaimRequest, Receipt, ReceiptFileUse)
    items = []
    for kind in kinds:
        found = [item for item in kind.scan() if item.pk.startswith(_PREFIXES[kind])]
        assert found, kind.__name__
        items.append(found[0])
    return items


_PREFIXES: Final[dict[type[Any], str]] = {
    DuplicateGuard: "DUP#",
    CustomerClaimCount: "CUSTOMER#",
    ClaimRequest: "CLAIMREQ#",
    Receipt: "RECEIPT#",
    ReceiptFileUse: "FILE#",
}


def test_the_filters_pass_exactly_the_records_that_are_events(
    story: Story, store: ClaimStore
) -> None:
    # A claim from another customer with the same receipt file: it uses the file too.
    publish(rebate(id="hike-rebate-2027", name="Hiking boots rebate"))
    shared = store.submit(
        draft("cust-2", campaign="hike-rebate-2027", receipt=uploaded("cust-2"), request_key="k"),
        now=SUBMITTED,
    ).claim
    store.verify(shared.claim_id, now=VERIFIED)
    others = other_items(store)
    claim_changes = [
        stream_record("INSERT", new=story.submitted),
        modified(story.submitted, story.verified),
        modified(story.verified, story.verified),
        modified(story.verified, story.held),
        modified(story.held, story.decided),
        modified(story.decided, story.approved),
        modified(story.approved, story.credited),
        stream_record("REMOVE", old=story.credited),
    ]
    records = (
        claim_changes
        + [stream_record("INSERT", new=item) for item in others]
        + [modified(item, item) for item in others]
        + [stream_record("REMOVE", old=item) for item in others]
    )
    assert [delivered(record) for record in records] == [
        event_for(record) is not None for record in records
    ]
    assert sum(delivered(record) for record in records) == 3


@pytest.mark.parametrize(
    ("status", "published"),
    [
        ("verifying", False),
        ("in_review", True),
        ("approved", True),
        ("rejected", True),
        ("credited", False),
        ("error", False),
    ],
)
def test_a_status_entered_passes_the_filters_only_when_it_is_an_event(
    status: str, published: bool
) -> None:
    before = Claim(
        claim_id="clm_1",
        campaign_id=CAMPAIGN,
        customer_id="cust-1",
        status="submitted",
        purchase=PurchaseMap(
            retailer="ABC Mart",
            receipt_number="R-0012",
            purchased_at=PURCHASED,
            currency="JPY",
            total=12000,
            items=[PurchaseItem(sku="TRAIL-01", quantity=1, unit_price=12000)],
        ),
        submitted_at=SUBMITTED,
        updated_at=SUBMITTED,
    )
    after = Claim.from_raw_data(before.serialize())
    after.status = status
    after.reasons = ["not_eligible"] if status == "rejected" else []
    after.reward = Money.of(1000, "JPY")
    after.review_due_at = DUE
    record = modified(before, after)
    assert delivered(record) is published
    assert (event_for(record) is not None) is published
    kept = modified(after, after)  # a later change in the same status
    assert (delivered(kept), event_for(kept)) == (False, None)


def test_the_filters_are_valid_and_within_the_quota() -> None:
    validate_filter_criteria(FILTER_CRITERIA)
    assert len(FILTER_CRITERIA["Filters"]) <= 5
