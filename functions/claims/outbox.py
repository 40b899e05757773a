"""The claims outbox: committed changes of the Claims table, read back as claim events.

A claim's status moves by conditional updates inside the verification steps' own writes
(`functions.claims.dal`); publishing beside them could lose an event (the step dies after
the commit) or announce a move that never happened. The table's stream carries every
committed change with its old and new image, so the outbox
(`functions.claims.handlers.outbox`) publishes from it instead:

- a claim inserted (``CLAIM#<claimId>`` / ``META``): `ClaimSubmitted`;
- a claim whose status changed to ``in_review``: `ClaimNeedsReview`; to ``approved``:
  `ClaimApproved`; to ``rejected``: `ClaimRejected`.

Every other change is no event: verdicts, tokens, decisions, guards, counts, receipts, and
the moves to ``verifying``, ``credited`` (the wallet announces the credit as
`CashbackCredited`) and ``error`` (an alarm, not a customer event). A status is entered
once per claim (the transitions are conditional on the status left), so an event's id is
derived from the claim id and the status: a record delivered again publishes the same id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias

from functions.claims.models import Claim
from functions.core.event_types import (
    ClaimApproved,
    ClaimNeedsReview,
    ClaimRejected,
    ClaimSubmitted,
)
from functions.core.money import Money
from functions.core.outbox import (
    INSERT,
    MODIFY,
    OutboxRecordError,
    begins_with,
    event_id,
    stream_image,
    string_key,
)

__all__ = ["STATUSES_PUBLISHED", "STREAM_FILTERS", "ClaimEvent", "event_for"]

ClaimEvent: TypeAlias = ClaimSubmitted | ClaimNeedsReview | ClaimApproved | ClaimRejected

CLAIM_PREFIX: Final = "CLAIM#"
META: Final = "META"
STATUSES_PUBLISHED: Final = ("in_review", "approved", "rejected")

_PARTITION_KEY: Final = Claim.pk.attr_name
_SORT_KEY: Final = Claim.sk.attr_name
_STATUS: Final = Claim.status.attr_name
_REQUIREMENT: Final = "the Claims table's stream must carry new and old images"

_CLAIM_KEYS: Final = {_PARTITION_KEY: begins_with(CLAIM_PREFIX), _SORT_KEY: {"S": [META]}}

# Lambda event filter patterns (EventBridge pattern syntax over the stream record), OR'ed.
STREAM_FILTERS: Final[tuple[dict[str, Any], ...]] = (
    {"eventName": [INSERT], "dynamodb": {"Keys": _CLAIM_KEYS}},
    # A status entered, not kept (a decision recorded in review changes the claim too): a
    # pattern cannot compare the two images, so each published status has its own.
    *(
        {
            "eventName": [MODIFY],
            "dynamodb": {
                "Keys": _CLAIM_KEYS,
                "OldImage": {_STATUS: {"S": [{"anything-but": [status]}]}},
                "NewImage": {_STATUS: {"S": [status]}},
            },
        }
        for status in STATUSES_PUBLISHED
    ),
)


def event_for(record: Mapping[str, Any]) -> ClaimEvent | None:
    """The event a DynamoDB stream record (as Lambda delivers it) stands for, if any."""
    change: Mapping[str, Any] = record.get("dynamodb") or {}
    keys: Mapping[str, Any] = change.get("Keys") or {}
    if not string_key(keys, _PARTITION_KEY).startswith(CLAIM_PREFIX):
        return None
    if string_key(keys, _SORT_KEY) != META:
        return None
    name = record.get("eventName")
    if name not in (INSERT, MODIFY):
        return None  # a claim removed (by hand: nothing deletes claims) has no NewImage
    new = stream_image(change, "NewImage", requirement=_REQUIREMENT)
    if name == INSERT:
        return _submitted(Claim.from_raw_data(new))
    old = stream_image(change, "OldImage", requirement=_REQUIREMENT)
    status = string_key(new, _STATUS)
    if status == string_key(old, _STATUS) or status not in _STATUS_EVENTS:
        return None
    return _STATUS_EVENTS[status](Claim.from_raw_data(new))


def _entered_at(claim: Claim, status: str) -> Any:
    for entry in reversed(claim.timeline):
        if entry.status == status:
            return entry.at
    return claim.updated_at


def _fields(claim: Claim, detail_type: str, status: str) -> dict[str, Any]:
    return {
        "eventId": event_id(detail_type, claim.pk, status),
        "occurredAt": _entered_at(claim, status),
        "claimId": claim.claim_id,
        "customerId": claim.customer_id,
        "campaignId": claim.campaign_id,
    }


def _submitted(claim: Claim) -> ClaimSubmitted:
    purchase = claim.purchase
    return ClaimSubmitted(
        **_fields(claim, ClaimSubmitted.detail_type, "submitted"),
        orderId=purchase.order_id,
        retailer=purchase.retailer,
        purchasedAt=purchase.purchased_at,
        purchaseTotal=Money.of(purchase.total, purchase.currency),
    )


def _reward(claim: Claim) -> Money:
    if claim.reward is None:
        raise OutboxRecordError(f"claim {claim.claim_id} is {claim.status} without a reward")
    return claim.reward


def _needs_review(claim: Claim) -> ClaimNeedsReview:
    if claim.review_due_at is None:
        raise OutboxRecordError(f"claim {claim.claim_id} is in review without reviewDueAt")
    return ClaimNeedsReview(
        **_fields(claim, ClaimNeedsReview.detail_type, "in_review"),
        reward=_reward(claim),
        reasons=list(claim.review_reasons) or ["review_required"],
        reviewDueAt=claim.review_due_at,
    )


def _approved(claim: Claim) -> ClaimApproved:
    return ClaimApproved(
        **_fields(claim, ClaimApproved.detail_type, "approved"),
        reward=_reward(claim),
        reviewer=claim.reviewer,
    )


def _rejected(claim: Claim) -> ClaimRejected:
    return ClaimRejected(
        **_fields(claim, ClaimRejected.detail_type, "rejected"),
        reasons=list(claim.reasons) or ["not_eligible"],
        reviewer=claim.reviewer,
    )


_STATUS_EVENTS: Final[dict[str, Callable[[Claim], ClaimEvent]]] = {
    "in_review": _needs_review,
    "approved": _approved,
    "rejected": _rejected,
}
