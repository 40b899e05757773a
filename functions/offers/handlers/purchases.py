"""Codes issued after a purchase: `PurchaseRecorded` in, the buyer's post-purchase codes.

The bus delivers every `PurchaseRecorded` to the offers' own queue (a rule on the
detail type, a DLQ behind it); this function takes its batches. For each live campaign
whose window holds the purchase and whose post-purchase offer (``issue_after_purchase``)
takes the purchase's channel (`functions.offers.logic.post_purchase_offers`), the buyer
gets that offer's code through the same store path as ``POST /v1/offers/{offerId}/codes``
(`OfferStore.issue_code`), with the order recorded on the issue: the offers outbox then
announces `OfferCodeIssued` with its ``orderId``.

Every retry is harmless: one code per customer per offer, so a redelivered purchase, the
same purchase published again, or a customer's next purchase finds the code issued before
and writes nothing (and the outbox announces nothing).

What a retry cannot mend is not retried: codes run out, the offer or campaign archived or
ended meanwhile. The message is done, the skip is logged and counted
(`PostPurchaseCodesSkipped`, by reason), so a sold-out offer never loops through the
queue into its DLQ. Contention (`Contended`) and AWS errors fail the record alone
(``batchItemFailures``): SQS brings it back after its visibility timeout, and after a few
receives parks it in the DLQ, which pages.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.campaigns.states import ACTIVE
from functions.core.clock import utc_now
from functions.core.event_types import PurchaseRecorded
from functions.core.observability import (
    correlated,
    instrumented,
    logger,
    record_code_issued,
    record_post_purchase_code_skipped,
)
from functions.offers.dal import OfferStore
from functions.offers.errors import CodesExhausted, NotFoundError, Refused
from functions.offers.logic import LiveCampaign, issue_refusal, post_purchase_offers

__all__ = ["handler", "issue_after_purchase", "purchase_of"]

store = OfferStore()


class NotAPurchase(ValueError):
    """A message on the purchases queue that is no `PurchaseRecorded` envelope: a wiring
    mistake, failed so that it is parked in the DLQ where someone looks."""


def purchase_of(body: str) -> PurchaseRecorded:
    """The purchase an SQS message body (the EventBridge envelope a rule sent) carries."""
    envelope = json.loads(body)
    if not isinstance(envelope, dict) or envelope.get("detail-type") != "PurchaseRecorded":
        raise NotAPurchase("the message is no PurchaseRecorded event")
    return PurchaseRecorded.model_validate(envelope.get("detail"))


def issue_after_purchase(offers: OfferStore, purchase: PurchaseRecorded, now: datetime) -> int:
    """Issue the buyer of `purchase` each post-purchase code it earns; how many are new."""
    campaigns = offers.campaigns_with_status(ACTIVE)
    issued = 0
    for campaign, offer in post_purchase_offers(campaigns, purchase.channel, purchase.placedAt):
        if _issue(offers, campaign, offer.id, purchase, now):
            issued += 1
    return issued


def _issue(
    offers: OfferStore,
    campaign: LiveCampaign,
    offer_id: str,
    purchase: PurchaseRecorded,
    now: datetime,
) -> bool:
    try:
        offer = offers.offer(offer_id)
        refusal = issue_refusal(offer, campaign, now)
        if refusal is not None:
            return _skipped(offer_id, purchase, refusal.value)
        outcome = offers.issue_code(
            offer, purchase.customerId, campaign.config.ends_at, now, order_id=purchase.orderId
        )
    except CodesExhausted as exhausted:
        return _skipped(offer_id, purchase, exhausted.code)
    except (Refused, NotFoundError) as refused:
        # Archived between the campaign's read and the issue's transaction.
        return _skipped(offer_id, purchase, refused.code)
    if not outcome.new:
        logger.info(
            "post-purchase code held already",
            extra={"offerId": offer_id, "orderId": purchase.orderId},
        )
        return False
    record_code_issued(outcome.issue.mode)
    logger.info(
        "post-purchase code issued",
        extra={"offerId": offer_id, "orderId": purchase.orderId, "mode": outcome.issue.mode},
    )
    return True


def _skipped(offer_id: str, purchase: PurchaseRecorded, reason: str) -> bool:
    record_post_purchase_code_skipped(reason)
    logger.warning(
        "post-purchase code not issued",
        extra={"offerId": offer_id, "orderId": purchase.orderId, "reason": reason},
    )
    return False


def _record(record: SQSRecord) -> None:
    with correlated(record):
        issue_after_purchase(store, purchase_of(record.body), utc_now())


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # A processor per batch: it keeps the batch's outcomes as state.
    processor = BatchProcessor(event_type=EventType.SQS)
    return process_partial_response(
        event=event, record_handler=_record, processor=processor, context=context
    )
