"""The storefront's offers API: campaigns and offers to show, codes, checkout redemption.

Routes (DESIGN "HTTP API"): GET /v1/campaigns, GET /v1/campaigns/{campaignId},
GET /v1/offers, POST /v1/offers/{offerId}/codes, POST /v1/redemptions/validate,
POST /v1/redemptions, POST /v1/redemptions/{redemptionId}/rollback. The state-changing
POSTs honour ``Idempotency-Key``; validation changes nothing, so it needs none.

One function serves them all: they share the campaign cache (`OfferStore.campaigns`),
so a container that lists offers has the campaigns its next redemption needs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any, Final, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.campaigns.codes import parse_typed_code
from functions.core.api import ResolverPerThread, domain_errors, responses
from functions.core.clock import utc_now
from functions.core.errors import Conflict, NotFound, RebatesError, Throttled, Unprocessable
from functions.core.idempotency import idempotent
from functions.core.money import Money
from functions.core.observability import (
    instrumented,
    record_code_issued,
    record_redemption,
)
from functions.core.vocabulary import SalesChannel
from functions.offers.dal import OfferStore, RedemptionRequest, StaleCampaign
from functions.offers.errors import (
    CodesExhausted,
    Contended,
    Missing,
    NotFoundError,
    OfferError,
    Refused,
)
from functions.offers.logic import (
    COUNTED_REFUSALS,
    CodeFacts,
    LiveCampaign,
    Refusal,
    campaign_view,
    check_redemption,
    issue_refusal,
    offers_to_show,
    open_offers,
)
from functions.offers.qr import qr_for_code
from functions.offers.schemas import (
    MAX_CUSTOMER_ID_LENGTH,
    PRINTABLE,
    CampaignList,
    CampaignView,
    IssueCodeRequest,
    IssuedCode,
    OfferList,
    OfferView,
    Redeemed,
    RedeemRequest,
    RollbackRequest,
    RolledBack,
    ValidateRequest,
    Validation,
)

router = Router()
store = OfferStore()

PathId = Annotated[str, Path(min_length=1, max_length=128)]
# A republish between the cached read and the redemption's write, or a refusal of the
# cached copy: decide once more on the fresh campaign; a second republish within the same
# request is not worth chasing.
_REDEEM_PASSES = 2


_CONTENDED = "contended: too many concurrent changes to the same offer, retry shortly"
_ARCHIVED = "offer_archived, campaign_archived, expired"


# -- domain errors to HTTP, in one place ------------------------------------------------


def api_error(error: OfferError) -> RebatesError:
    """The API's answer to what the offers domain refused: a counted limit, exhausted
    codes: 409; a property of the request or the campaign: 422; an unknown id: 404;
    contention: 429 (the storefront retries)."""
    if isinstance(error, NotFoundError):
        return NotFound(error.code, error.message, error.details)
    if isinstance(error, Contended):
        return Throttled(error.code, error.message, error.details)
    if isinstance(error, CodesExhausted):
        return Conflict(error.code, error.message, error.details)
    if isinstance(error, Refused) and error.reason not in COUNTED_REFUSALS:
        return Unprocessable(error.code, error.message, error.details)
    return Conflict(error.code, error.message, error.details)


# Refusals the very same request may see lifted later, so an Idempotency-Key answers them
# without pinning them for the record's day: the campaign or the offer archived (an upload
# again or a republish brings it back), not started (the clock), a code not issued yet
# (issuing), the counted limits and the budget, an order's redemption included (a
# rollback frees them, a republish may raise them), codes run out (a republish adds some),
# a retired code (a later version that names it again brings it back), and an unknown
# code or offer (a publish creates them). Replayed, as permanent: what the
# request itself asks measured against the offer's rules (channel, cart, currency, the
# discount), a code issued to another customer (a code is issued once), the window's end
# (time only moves on; only new rules reopen it, as they would change the rest), and an
# unknown redemption (its ids are ours, and one never comes to exist later).
_PROVISIONAL: Final = frozenset(
    {
        Refusal.CAMPAIGN_ARCHIVED,
        Refusal.OFFER_ARCHIVED,
        Refusal.NOT_STARTED,
        Refusal.CODE_NOT_ISSUED,
        Refusal.CODE_RETIRED,
        *COUNTED_REFUSALS,
        "codes_exhausted",
        Missing.CODE,
        Missing.OFFER,
    }
)

# Innermost on every route: a refusal is answered (and replayed) as one, counted once.
_DOMAIN_ERRORS: Final = domain_errors(OfferError, api_error)
_READS: list[Callable[..., Any]] = [_DOMAIN_ERRORS]
_CHANGES: list[Callable[..., Any]] = [idempotent(provisional=_PROVISIONAL), _DOMAIN_ERRORS]


# -- campaigns ------------------------------------------------------------------------


@router.get(
    "/v1/campaigns",
    summary="Campaigns a storefront may show",
    tags=["campaigns"],
    middlewares=_READS,
)
def get_campaigns(
    status: Annotated[Literal["active", "archived"], Query()] = "active",
) -> CampaignList:
    now = utc_now()
    views = [
        CampaignView.model_validate(campaign_view(campaign, now))
        for campaign in store.campaigns_with_status(status)
    ]
    return CampaignList(campaigns=views)


@router.get(
    "/v1/campaigns/<campaignId>",
    summary="One campaign",
    tags=["campaigns"],
    middlewares=_READS,
    responses=responses(HTTPStatus.OK, CampaignView, e404="campaign_not_found"),
)
def get_campaign_by_id(campaignId: PathId) -> CampaignView:
    return CampaignView.model_validate(campaign_view(store.campaign(campaignId), utc_now()))


# -- offers ---------------------------------------------------------------------------


@router.get(
    "/v1/offers",
    summary="Offers open now for a channel and customer",
    tags=["offers"],
    middlewares=_READS,
)
def get_offers(
    channel: Annotated[SalesChannel | None, Query()] = None,
    customerId: Annotated[
        str | None, Query(min_length=1, max_length=MAX_CUSTOMER_ID_LENGTH, pattern=PRINTABLE)
    ] = None,
) -> OfferList:
    listed = open_offers(store.active_offers(), channel, utc_now())
    customer = store.customer_offers(customerId, [offer.offer_id for offer, _ in listed])
    views = offers_to_show(listed, customer)
    return OfferList(offers=[OfferView.model_validate(view) for view in views])


@router.post(
    "/v1/offers/<offerId>/codes",
    summary="Issue a code to a customer (or return the shared code)",
    tags=["offers"],
    middlewares=_CHANGES,
    status_code=HTTPStatus.CREATED,
    responses=responses(
        HTTPStatus.CREATED,
        IssuedCode,
        e404="offer_not_found",
        e409="codes_exhausted",
        e422=_ARCHIVED,
        e429=_CONTENDED,
    ),
)
def issue_code(offerId: PathId, body: IssueCodeRequest) -> IssuedCode:
    started = store.campaigns.moment()
    offer = store.offer(offerId)
    campaign = store.campaigns.get(offer.campaign_id)
    now = utc_now()
    refusal = issue_refusal(offer, campaign, now)
    if refusal is not None:
        # Refused on what may be the container's copy from before a republish or an
        # upload again: decide on the table's.
        campaign = store.campaigns.read_since(offer.campaign_id, started)
        refusal = issue_refusal(offer, campaign, now)
    if refusal is Refusal.CAMPAIGN_ARCHIVED:
        raise Refused(refusal, {"campaignId": offer.campaign_id})
    if refusal is not None or campaign is None:
        raise Refused(refusal or Refusal.OFFER_ARCHIVED, {"offerId": offerId})
    outcome = store.issue_code(offer, body.customerId, campaign.config.ends_at, now)
    issue = outcome.issue
    if outcome.new:
        record_code_issued(issue.mode)
    qr = None
    if offer.channel in ("in_store", "both"):
        symbol = qr_for_code(outcome.code, offer_id=offerId, expires_at=outcome.expires_at)
        qr = {"payload": symbol.payload, "svg": symbol.svg}
    return IssuedCode.model_validate(
        {
            "code": outcome.code,
            "offerId": offerId,
            "campaignId": issue.campaign_id,
            "mode": issue.mode,
            "expiresAt": outcome.expires_at,
            "qr": qr,
        }
    )


# -- redemption -----------------------------------------------------------------------


@router.post(
    "/v1/redemptions/validate",
    summary="What a code would give this cart, without redeeming it",
    tags=["redemptions"],
    middlewares=_READS,
    responses=responses(HTTPStatus.OK, Validation, e404="code_not_found"),
)
def validate_redemption(body: ValidateRequest) -> Validation:
    started = store.campaigns.moment()
    code = store.code(parse_typed_code(body.code))
    campaign = store.campaign_of(code)
    now = utc_now()
    answer = _validation(body, code, campaign, now)
    if not answer.valid:
        fresh = _fresher(code.campaign_id, campaign, started)
        if fresh is not None:
            answer = _validation(body, code, fresh, now)
    return answer


def _validation(
    body: ValidateRequest, code: CodeFacts, campaign: LiveCampaign, now: datetime
) -> Validation:
    check = check_redemption(
        campaign,
        code,
        customer_id=body.customerId,
        channel=body.channel,
        cart=body.cart,
        now=now,
    )
    reasons = [*check.reasons]
    if check.allowed:
        reasons += store.counted_refusals(code, campaign, body.customerId, check.discount)
    discount = check.discount if not reasons else Money.zero(body.cart.currency)
    return Validation(valid=not reasons, discount=discount, reasons=[r.value for r in reasons])


def _fresher(campaign_id: str, campaign: LiveCampaign, started: float) -> LiveCampaign | None:
    """The table's campaign, to decide again a refusal decided on `campaign`, which may be
    the container's copy from before a republish or an upload again; None when the
    refusal stands: `campaign` is what the table held since the request `started`."""
    fresh = store.campaigns.read_since(campaign_id, started)
    return fresh if fresh is not None and fresh != campaign else None


@router.post(
    "/v1/redemptions",
    summary="Redeem a code at checkout; limits and budget are enforced atomically",
    tags=["redemptions"],
    middlewares=_CHANGES,
    status_code=HTTPStatus.CREATED,
    responses=responses(
        HTTPStatus.CREATED,
        Redeemed,
        e404="code_not_found",
        e409="already_redeemed, code_used_up, customer_limit_reached, offer_limit_reached, "
        "budget_exhausted",
        e422="not_started, expired, wrong_channel, not_eligible, below_min_purchase, "
        "currency_mismatch, code_not_issued, code_issued_to_another_customer, no_discount, "
        "offer_archived, campaign_archived, code_retired",
        e429=_CONTENDED,
    ),
)
def redeem(body: RedeemRequest) -> Redeemed:
    started = store.campaigns.moment()
    code = store.code(parse_typed_code(body.code))
    campaign = store.campaign_of(code)
    for passes in range(1, _REDEEM_PASSES + 1):
        now = utc_now()
        check = check_redemption(
            campaign,
            code,
            customer_id=body.customerId,
            channel=body.channel,
            cart=body.cart,
            now=now,
        )
        if not check.allowed:
            fresh = _fresher(code.campaign_id, campaign, started)
            if fresh is not None and passes < _REDEEM_PASSES:
                campaign = fresh
                continue
            first = check.reasons[0]
            raise Refused(first, {"reasons": [reason.value for reason in check.reasons]})
        request = RedemptionRequest(
            code=code,
            campaign=campaign,
            customer_id=body.customerId,
            order_id=body.orderId,
            channel=body.channel,
            store_id=body.storeId,
            discount=check.discount,
            cart_total=body.cart.subtotal,
            at=now,
        )
        try:
            redemption = store.redeem(request)
        except StaleCampaign:
            fresh = store.campaigns.reload(code.campaign_id)
            if fresh is None or passes == _REDEEM_PASSES:
                raise Refused(Refusal.OFFER_ARCHIVED, {"offerId": code.offer_id}) from None
            campaign = fresh
            continue
        record_redemption(body.channel)
        return Redeemed(
            redemptionId=redemption.redemption_id,
            discount=redemption.discount,
            code=redemption.code,
            offerId=redemption.offer_id,
            campaignId=redemption.campaign_id,
            status="redeemed",
            redeemedAt=redemption.redeemed_at,
        )
    raise AssertionError("unreachable: the last pass returns or raises")


@router.post(
    "/v1/redemptions/<redemptionId>/rollback",
    summary="Release a redemption's usage and budget (order cancelled, payment failed)",
    tags=["redemptions"],
    middlewares=_CHANGES,
    responses=responses(HTTPStatus.OK, RolledBack, e404="redemption_not_found", e429=_CONTENDED),
)
def roll_back(redemptionId: PathId, body: RollbackRequest) -> RolledBack:
    outcome = store.roll_back(redemptionId, body.reason, utc_now())
    redemption = outcome.redemption
    if redemption.rolled_back_at is None:
        raise AssertionError("a rolled back redemption has its time")
    return RolledBack(
        redemptionId=redemption.redemption_id,
        status="rolled_back",
        rolledBackAt=redemption.rolled_back_at,
        alreadyRolledBack=outcome.already,
    )


app = ResolverPerThread(router)


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
