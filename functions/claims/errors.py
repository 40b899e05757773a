"""What the claims domain refuses, in its own terms.

The store raises these; none of them knows HTTP. The API handler maps each to its status
in one place (`functions.claims.handlers.api`), and the verification steps let the ones
that no retry mends end the claim in ``error`` with the message as its cause. Every error
carries a stable snake_case `code`, a message for people and the ids it concerns.
"""

from __future__ import annotations

from functions.core.errors import DomainError

__all__ = [
    "AlreadyDecided",
    "CampaignArchived",
    "CampaignNotFound",
    "ClaimError",
    "ClaimNotFound",
    "ClaimRequestConflict",
    "CurrencyNotCampaigns",
    "InvalidPageToken",
    "NotARebateCampaign",
    "NotInReview",
    "PurchaseInFuture",
    "ReceiptNotYours",
    "ReviewClosed",
]


class ClaimError(DomainError):
    """Base of the claims domain's refusals."""

    code = "claim_error"


class ClaimNotFound(ClaimError):
    code = "claim_not_found"

    def __init__(self, claim_id: str) -> None:
        super().__init__("No such claim.", {"claimId": claim_id})


class CampaignNotFound(ClaimError):
    """A claim names a campaign that was never published: refused before any execution."""

    code = "campaign_not_found"

    def __init__(self, campaign_id: str) -> None:
        super().__init__("No such campaign.", {"campaignId": campaign_id})


class CampaignArchived(ClaimError):
    """The campaign's file was deleted: it takes no new claims (those made finish)."""

    code = "campaign_archived"

    def __init__(self, campaign_id: str) -> None:
        super().__init__(
            "The campaign was withdrawn and takes no new claims.", {"campaignId": campaign_id}
        )


class NotARebateCampaign(ClaimError):
    code = "not_a_rebate_campaign"

    def __init__(self, campaign_id: str, kind: str) -> None:
        super().__init__(
            f"Campaign {campaign_id} is a {kind} campaign; only rebate campaigns take claims.",
            {"campaignId": campaign_id, "kind": kind},
        )


class CurrencyNotCampaigns(ClaimError):
    code = "currency_mismatch"

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(
            f"The campaign pays in {expected}; the purchase is in {actual}.",
            {"expected": expected, "actual": actual},
        )


class PurchaseInFuture(ClaimError):
    code = "purchase_in_future"

    def __init__(self, purchased_at: str) -> None:
        super().__init__(
            "The purchase is dated after the claim's submission.", {"purchasedAt": purchased_at}
        )


class ReceiptNotYours(ClaimError):
    """The receipt key was granted to another customer (or is no receipt key at all)."""

    code = "receipt_not_found"

    def __init__(self, receipt_key: str) -> None:
        super().__init__(
            "No receipt upload with this key was granted to this customer.",
            {"receiptKey": receipt_key},
        )


class ClaimRequestConflict(ClaimError):
    """The same customer's Idempotency-Key was used before for another claim."""

    code = "idempotency_key_reused"

    def __init__(self, claim_id: str) -> None:
        super().__init__(
            "This Idempotency-Key was used before with a different claim.", {"claimId": claim_id}
        )


class NotInReview(ClaimError):
    code = "not_in_review"

    def __init__(self, claim_id: str, status: str) -> None:
        super().__init__(
            f"The claim is {status}, not waiting for review.",
            {"claimId": claim_id, "status": status},
        )


class AlreadyDecided(ClaimError):
    code = "already_decided"

    def __init__(self, claim_id: str, decision: str | None, reviewer: str | None) -> None:
        super().__init__(
            "A reviewer decided this claim already.",
            {"claimId": claim_id, "decision": decision, "reviewer": reviewer},
        )


class ReviewClosed(ClaimError):
    code = "review_closed"

    def __init__(self, claim_id: str) -> None:
        super().__init__(
            "The review timed out; the claim was rejected with review_timeout.",
            {"claimId": claim_id},
        )


class InvalidPageToken(ClaimError):
    code = "invalid_page_token"

    def __init__(self) -> None:
        super().__init__("nextToken is not one this API returned for this listing.")
