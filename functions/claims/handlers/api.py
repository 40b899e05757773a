"""The claims API: receipt uploads, claim submission, a claim and a customer's claims, and
the operators' review decision.

Routes (DESIGN "HTTP API"): POST /v1/claims/uploads, POST /v1/claims, GET
/v1/claims/{claimId}, GET /v1/customers/{customerId}/claims, POST
/v1/claims/{claimId}/review (IAM-authorised in AWS: operators sign it, storefronts'
API keys cannot reach it).

Submission stores the claim and starts its execution (named by the claim id); its
``Idempotency-Key`` is also kept with the claim for good (`ClaimStore.submit`), so a
retry after a crash finds the claim it made. The handler parses, calls `ClaimStore` and
shapes the answer; the store raises domain errors, which `api_error` maps to statuses
in one place.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any, Final

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.claims.dal import ClaimDraft, ClaimStore, PurchaseInput, deployed_state_machine
from functions.claims.errors import (
    AlreadyDecided,
    CampaignArchived,
    CampaignNotFound,
    ClaimError,
    ClaimNotFound,
    ClaimRequestConflict,
    CurrencyNotCampaigns,
    InvalidPageToken,
    NotARebateCampaign,
    NotInReview,
    PurchaseInFuture,
    ReceiptNotYours,
    ReviewClosed,
)
from functions.claims.models import Claim
from functions.claims.receipts import ReceiptRefused
from functions.claims.schemas import (
    ClaimAccepted,
    ClaimList,
    ClaimRequest,
    ClaimView,
    DecisionRecorded,
    EvidenceView,
    ReviewRequest,
    TimelineView,
    UploadForm,
    UploadGranted,
    UploadRequest,
)
from functions.claims.uploads import ReceiptSettings, ReceiptUploads
from functions.core.api import ResolverPerThread, domain_errors, responses, status_mapping
from functions.core.clock import utc_now
from functions.core.errors import BadRequest, Conflict, NotFound, RebatesError, Unprocessable
from functions.core.fields import MAX_CUSTOMER_ID_LENGTH, PRINTABLE
from functions.core.idempotency import IDEMPOTENCY_KEY_HEADER, idempotent
from functions.core.money import Money
from functions.core.observability import instrumented, logger, record_claim_submitted
from functions.core.settings import load_settings

router = Router()


store = ClaimStore(state_machine=deployed_state_machine())


@functools.cache
def _uploads(bucket: str) -> ReceiptUploads:
    return ReceiptUploads(bucket)


def uploads() -> ReceiptUploads:
    """The receipt grants of this deployment's bucket (one per container)."""
    return _uploads(load_settings(ReceiptSettings).receipts_bucket)


CustomerPath = Annotated[
    str, Path(min_length=1, max_length=MAX_CUSTOMER_ID_LENGTH, pattern=PRINTABLE)
]
ClaimPath = Annotated[str, Path(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_-]+$")]
PageToken = Annotated[str | None, Query(min_length=1, max_length=2048)]
PageSize = Annotated[int, Query(ge=1, le=100)]


# -- domain errors to HTTP, in one place ------------------------------------------------

# An unknown id: 404; a conflict with the claim's state: 409; a claim its campaign cannot
# take (wrong kind, currency, a purchase after now, a receipt not the customer's): 422;
# a read that cannot be answered as asked: 400.
_STATUSES: Final[dict[type[ClaimError], type[RebatesError]]] = {
    ClaimNotFound: NotFound,
    AlreadyDecided: Conflict,
    NotInReview: Conflict,
    ReviewClosed: Conflict,
    ClaimRequestConflict: Conflict,
    CampaignNotFound: Unprocessable,
    CampaignArchived: Unprocessable,
    NotARebateCampaign: Unprocessable,
    CurrencyNotCampaigns: Unprocessable,
    PurchaseInFuture: Unprocessable,
    ReceiptNotYours: Unprocessable,
    InvalidPageToken: BadRequest,
}


# The API's answer to what the domain refused, by the error's class.
api_error = status_mapping(_STATUSES)


# A campaign may be published (or published again) after a claim for it was refused:
# not pinned by a key.
_PROVISIONAL: Final = frozenset({CampaignNotFound.code, CampaignArchived.code})
_DOMAIN_ERRORS: Final = domain_errors(ClaimError, api_error)
_READS: list[Callable[..., Any]] = [_DOMAIN_ERRORS]
_CHANGES: list[Callable[..., Any]] = [idempotent(provisional=_PROVISIONAL), _DOMAIN_ERRORS]


def _upload_refused(error: ReceiptRefused) -> RebatesError:
    # A property of the request (its type or size): malformed for this route.
    return BadRequest(error.code, error.message, error.details)


_UPLOADS: list[Callable[..., Any]] = [
    idempotent(),
    domain_errors(ReceiptRefused, _upload_refused),
]


# -- uploads and submission -------------------------------------------------------------


@router.post(
    "/v1/claims/uploads",
    summary="A presigned POST for one receipt (jpeg, png or pdf, at most 10 MiB)",
    tags=["claims"],
    middlewares=_UPLOADS,
    status_code=HTTPStatus.CREATED,
    responses=responses(
        HTTPStatus.CREATED,
        UploadGranted,
        e400="unsupported_receipt_type, receipt_too_large, receipt_empty",
    ),
)
def grant_upload(body: UploadRequest) -> UploadGranted:
    grant = uploads().grant(body.customerId, body.contentType, body.size, now=utc_now())
    return UploadGranted(
        receiptKey=grant.receipt_key,
        upload=UploadForm(url=grant.url, fields=dict(grant.fields)),
        expiresAt=grant.expires_at,
    )


@router.post(
    "/v1/claims",
    summary="Submit a rebate claim; its verification starts at once",
    tags=["claims"],
    middlewares=_CHANGES,
    status_code=HTTPStatus.ACCEPTED,
    responses=responses(
        HTTPStatus.ACCEPTED,
        ClaimAccepted,
        e409="idempotency_key_reused",
        e422="campaign_not_found, campaign_archived, not_a_rebate_campaign, currency_mismatch, "
        "purchase_in_future, receipt_not_found",
    ),
)
def submit_claim(body: ClaimRequest) -> ClaimAccepted:
    purchase = body.purchase
    draft = ClaimDraft(
        campaign_id=body.campaignId,
        customer_id=body.customerId,
        purchase=PurchaseInput(
            order_id=purchase.orderId,
            retailer=purchase.retailer,
            receipt_number=purchase.receiptNumber,
            purchased_at=purchase.purchasedAt,
            currency=purchase.currency,
            items=purchase.items,
            total=purchase.total,
        ),
        receipt_key=body.receiptKey,
        request_key=router.current_event.headers.get(IDEMPOTENCY_KEY_HEADER),
    )
    submitted = store.submit(draft, now=utc_now())
    if submitted.new:
        record_claim_submitted()
    logger.info(
        "claim submitted" if submitted.new else "claim submitted before",
        extra={"claimId": submitted.claim.claim_id, "campaignId": body.campaignId},
    )
    return ClaimAccepted(claimId=submitted.claim.claim_id, status=submitted.claim.status)


# -- reading ----------------------------------------------------------------------------


@router.get(
    "/v1/claims/<claimId>",
    summary="A claim: its status, reward, reasons and timeline",
    tags=["claims"],
    middlewares=_READS,
    responses=responses(HTTPStatus.OK, ClaimView, e404="claim_not_found"),
)
def get_claim(claimId: ClaimPath) -> ClaimView:
    return claim_view(store.get(claimId))


@router.get(
    "/v1/customers/<customerId>/claims",
    summary="A customer's claims, newest first",
    tags=["claims"],
    middlewares=_READS,
    responses=responses(HTTPStatus.OK, ClaimList, e400="invalid_page_token"),
)
def customer_claims(
    customerId: CustomerPath, nextToken: PageToken = None, limit: PageSize = 20
) -> ClaimList:
    page = store.for_customer(customerId, page_token=nextToken, limit=limit)
    return ClaimList(claims=[claim_view(c) for c in page.claims], nextToken=page.next_token)


def claim_view(claim: Claim) -> ClaimView:
    purchase = claim.purchase
    return ClaimView(
        claimId=claim.claim_id,
        campaignId=claim.campaign_id,
        customerId=claim.customer_id,
        status=claim.status,
        reward=claim.reward,
        reasons=list(claim.reasons),
        reviewReasons=list(claim.review_reasons),
        evidence=[
            EvidenceView(
                rule=e.rule, reason=e.reason, claimIds=list(e.claim_ids or ()), note=e.note
            )
            for e in claim.evidence
        ],
        purchaseTotal=Money.of(purchase.total, purchase.currency),
        submittedAt=claim.submitted_at,
        updatedAt=claim.updated_at,
        reviewDueAt=claim.review_due_at if claim.status == "in_review" else None,
        timeline=[TimelineView(at=t.at, status=t.status, note=t.note) for t in claim.timeline],
    )


# -- review -------------------------------------------------------------------------------


@router.post(
    "/v1/claims/<claimId>/review",
    summary="An operator's decision on a claim waiting for review (IAM-authorised)",
    tags=["claims"],
    middlewares=_CHANGES,
    responses=responses(
        HTTPStatus.OK,
        DecisionRecorded,
        e404="claim_not_found",
        e409="already_decided, not_in_review, review_closed",
    ),
)
def review_claim(claimId: ClaimPath, body: ReviewRequest) -> DecisionRecorded:
    # API Gateway puts the signer of an IAM-authorised call here; the log keeps both.
    caller = router.current_event.raw_event.get("requestContext", {}).get("identity", {})
    decided = store.decide(
        claimId, decision=body.decision, reason=body.reason, reviewer=body.reviewer, now=utc_now()
    )
    logger.info(
        "review decision sent",
        extra={"claimId": claimId, "decision": body.decision, "signedBy": caller.get("userArn")},
    )
    return DecisionRecorded(
        claimId=decided.claim_id,
        decision=decided.decision,
        reviewer=decided.reviewer,
        status=decided.status,
    )


app = ResolverPerThread(router)


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
