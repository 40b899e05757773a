"""The storefront's offers API: campaigns and offers to show, codes, checkout redemption.

Routes (DESIGN "HTTP API"): GET /v1/campaigns, GET /v1/campaigns/{campaignId},
GET /v1/offers, POST /v1/offers/{offerId}/codes, POST /v1/redemptions/validate,
POST /v1/redemptions, POST /v1/redemptions/{redemptionId}/rollback. The state-changing
POSTs honour ``Idempotency-Key``; validation changes nothing, so it needs none.

One function serves them all: they share the campaign cache (`OfferStore.campaigns`),
so a container that lists offers has the campaigns its next redemption needs.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from functions.campaigns.models import ACTIVE, Offer, get_offer, list_campaigns, list_offers
from functions.core.api import ResolverPerThread
from functions.core.clock import utc_now
from functions.core.errors import NotFound
from functions.core.event_types import SalesChannel
from functions.core.idempotency import idempotent
from functions.core.money import Money
from functions.core.observability import instrumented
from functions.offers.codes import normalise_code
from functions.offers.dal import OfferStore, RedemptionRequest, StaleCampaign
from functions.offers.logic import (
    LiveCampaign,
    Refusal,
    campaign_view,
    check_redemption,
    discount_view,
    refusal_error,
)
from functions.offers.models import CodeIssue, CustomerUsage
from functions.offers.qr import qr_for_code
from functions.offers.schemas import (
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
# A republish between the cached read and the redemption's write: decide once more on the
# fresh campaign; a second republish within the same request is not worth chasing.
_REDEEM_PASSES = 2


def _responses(
    success: HTTPStatus, model: type[BaseModel], **errors: str
) -> dict[int, OpenAPIResponse]:
    """The OpenAPI responses of a route: its success with `model`, and the errors it
    answers with, ``e404="code_not_found"`` (`cli.openapi` adds the error body)."""
    responses = {
        int(success): OpenAPIResponse(
            description=success.phrase, content={"application/json": {"model": model}}
        )
    }
    for name, text in errors.items():
        responses[int(name[1:])] = OpenAPIResponse(description=text)
    return responses


_CONTENDED = "contended: too many concurrent changes to the same offer, retry shortly"
_ARCHIVED = "offer_archived, campaign_archived, expired"


# -- campaigns ------------------------------------------------------------------------


@router.get("/v1/campaigns", summary="Campaigns a storefront may show", tags=["campaigns"])
def get_campaigns(
    status: Annotated[Literal["active", "archived"], Query()] = "active",
) -> CampaignList:
    now = utc_now()
    views = [
        CampaignView.model_validate(campaign_view(store.campaigns.live(item), now))
        for item in list_campaigns(status)
    ]
    return CampaignList(campaigns=views)


@router.get(
    "/v1/campaigns/<campaignId>",
    summary="One campaign",
    tags=["campaigns"],
    responses=_responses(HTTPStatus.OK, CampaignView, e404="campaign_not_found"),
)
def get_campaign_by_id(campaignId: PathId) -> CampaignView:
    campaign = store.campaigns.get(campaignId)
    if campaign is None:
        raise NotFound("campaign_not_found", "No such campaign.", {"campaignId": campaignId})
    return CampaignView.model_validate(campaign_view(campaign, utc_now()))


# -- offers ---------------------------------------------------------------------------


@router.get("/v1/offers", summary="Offers open now for a channel and customer", tags=["offers"])
def get_offers(
    channel: Annotated[SalesChannel | None, Query()] = None,
    customerId: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
) -> OfferList:
    now = utc_now()
    shown: list[tuple[Offer, LiveCampaign]] = []
    for offer in list_offers(ACTIVE):
        campaign = store.campaigns.get(offer.campaign_id)
        if campaign is None or campaign.status != ACTIVE:
            continue
        if not campaign.config.window.contains(now) or campaign.offer(offer.offer_id) is None:
            continue
        if channel is not None and offer.channel not in ("both", channel):
            continue
        if offer.max_total is not None and offer.redemptions_count >= offer.max_total:
            continue
        shown.append((offer, campaign))
    issued, uses = _customer_state(customerId, [offer.offer_id for offer, _ in shown])
    views = []
    for offer, campaign in shown:
        used = uses.get(offer.offer_id, 0)
        if customerId is not None and offer.per_customer is not None and used >= offer.per_customer:
            continue
        views.append(_offer_view(offer, campaign, customerId, issued.get(offer.offer_id), used))
    return OfferList(offers=views)


def _customer_state(
    customer_id: str | None, offer_ids: list[str]
) -> tuple[dict[str, str], dict[str, int]]:
    """The customer's issued codes and uses of these offers (one batch read each)."""
    if customer_id is None or not offer_ids:
        return {}, {}
    issues = CodeIssue.batch_get([CodeIssue.key(customer_id, o) for o in offer_ids])
    usages = CustomerUsage.batch_get([CustomerUsage.key(customer_id, o) for o in offer_ids])
    return (
        {issue.offer_id: issue.code for issue in issues},
        {usage.offer_id: usage.uses for usage in usages},
    )


def _offer_view(
    offer: Offer, campaign: LiveCampaign, customer_id: str | None, code: str | None, used: int
) -> OfferView:
    config = campaign.config
    offer_config = config.offer(offer.offer_id)
    remaining = (
        None if offer.max_total is None else max(offer.max_total - offer.redemptions_count, 0)
    )
    return OfferView.model_validate(
        {
            "offerId": offer.offer_id,
            "campaignId": offer.campaign_id,
            "channel": offer.channel,
            "discount": discount_view(offer_config, config.currency),
            "codeMode": offer.code_mode,
            "startsAt": config.starts_at,
            "endsAt": config.ends_at,
            "maxTotal": offer.max_total,
            "perCustomer": offer.per_customer,
            "remaining": remaining,
            "issuedCode": code,
            "customerUses": used if customer_id is not None else None,
        }
    )


@router.post(
    "/v1/offers/<offerId>/codes",
    summary="Issue a code to a customer (or return the shared code)",
    tags=["offers"],
    middlewares=[idempotent()],
    status_code=HTTPStatus.CREATED,
    responses=_responses(
        HTTPStatus.CREATED,
        IssuedCode,
        e404="offer_not_found",
        e409="codes_exhausted",
        e422=_ARCHIVED,
        e429=_CONTENDED,
    ),
)
def issue_code(offerId: PathId, body: IssueCodeRequest) -> IssuedCode:
    offer = get_offer(offerId)
    if offer is None:
        raise NotFound("offer_not_found", "No such offer.", {"offerId": offerId})
    campaign = store.campaigns.get(offer.campaign_id)
    if offer.status != ACTIVE or campaign is None or campaign.offer(offerId) is None:
        raise refusal_error(Refusal.OFFER_ARCHIVED, {"offerId": offerId})
    if campaign.status != ACTIVE:
        raise refusal_error(Refusal.CAMPAIGN_ARCHIVED, {"campaignId": offer.campaign_id})
    now = utc_now()
    expires_at = campaign.config.ends_at
    # Codes may be handed out before the campaign starts (they work from its start);
    # after its end there is nothing left to give.
    if now >= expires_at:
        raise refusal_error(Refusal.EXPIRED, {"offerId": offerId})
    issue = store.issue_code(offer, body.customerId, expires_at, now)
    qr = None
    if offer.channel in ("in_store", "both"):
        symbol = qr_for_code(issue.code, offer_id=offerId, expires_at=issue.expires_at)
        qr = {"payload": symbol.payload, "svg": symbol.svg}
    return IssuedCode.model_validate(
        {
            "code": issue.code,
            "offerId": offerId,
            "campaignId": issue.campaign_id,
            "mode": issue.mode,
            "expiresAt": issue.expires_at,
            "qr": qr,
        }
    )


# -- redemption -----------------------------------------------------------------------


@router.post(
    "/v1/redemptions/validate",
    summary="What a code would give this cart, without redeeming it",
    tags=["redemptions"],
    responses=_responses(HTTPStatus.OK, Validation, e404="code_not_found"),
)
def validate_redemption(body: ValidateRequest) -> Validation:
    code = store.code(normalise_code(body.code))
    campaign = store.campaign_of(code)
    check = check_redemption(
        campaign,
        code,
        customer_id=body.customerId,
        channel=body.channel,
        cart=body.cart,
        now=utc_now(),
    )
    reasons = [*check.reasons]
    if check.allowed:
        reasons += store.counted_refusals(code, campaign, body.customerId, check.discount)
    discount = check.discount if not reasons else Money.zero(body.cart.currency)
    return Validation(valid=not reasons, discount=discount, reasons=[r.value for r in reasons])


@router.post(
    "/v1/redemptions",
    summary="Redeem a code at checkout; limits and budget are enforced atomically",
    tags=["redemptions"],
    middlewares=[idempotent()],
    status_code=HTTPStatus.CREATED,
    responses=_responses(
        HTTPStatus.CREATED,
        Redeemed,
        e404="code_not_found",
        e409="already_redeemed, code_used_up, customer_limit_reached, offer_limit_reached, "
        "budget_exhausted",
        e422="not_started, expired, wrong_channel, not_eligible, below_min_purchase, "
        "currency_mismatch, code_not_issued, code_issued_to_another_customer, no_discount, "
        "offer_archived, campaign_archived",
        e429=_CONTENDED,
    ),
)
def redeem(body: RedeemRequest) -> Redeemed:
    code = store.code(normalise_code(body.code))
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
            first = check.reasons[0]
            raise refusal_error(first, {"reasons": [reason.value for reason in check.reasons]})
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
                raise refusal_error(Refusal.OFFER_ARCHIVED, {"offerId": code.offer_id}) from None
            campaign = fresh
            continue
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
    middlewares=[idempotent()],
    responses=_responses(HTTPStatus.OK, RolledBack, e404="redemption_not_found", e429=_CONTENDED),
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
