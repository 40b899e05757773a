"""The system's own events as tracked events: what the KPIs need no storefront for.

A rule sends every domain event to the analytics queue; its consumer reads each as the
typed detail of its ``detail-type`` (`functions.core.envelopes.parse`) and turns the
ones that move a figure into a `TrackedEvent` (`tracked`) put on the same stream as
the storefront's events, so one consumer counts and archives both. The event's own
``eventId`` is the tracked event's, so a redelivered domain event counts once like any
other.

==========================  =====================  ==========================================
detail-type                 tracked type           value
==========================  =====================  ==========================================
OfferCodeIssued             code_issued            (none)
OfferRedeemed               redemption             the discount (the cart total ties the order)
RedemptionRolledBack        redemption_rolled_back the discount given back
PurchaseRecorded            purchase_recorded      the order total (no campaign: the order's
                                                   campaigns come from redemptions and credits)
ClaimSubmitted              claim_submitted        the purchase total
ClaimApproved               claim_approved         the reward
ClaimRejected               claim_rejected         (none)
CashbackCredited            cashback_credited      the amount credited
CashbackReversed            cashback_reversed      the amount taken back (from its credit)
==========================  =====================  ==========================================

Any other detail-type is not tracked (`tracked` answers None): the rule sends everything
so that a new figure needs no change of the stack, only of this table.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from functions.analytics.records import TrackedEvent
from functions.core.envelopes import PoisonMessage, parse
from functions.core.event_types import (
    CashbackCredited,
    CashbackReversed,
    ClaimApproved,
    ClaimRejected,
    ClaimSubmitted,
    EventDetail,
    OfferCodeIssued,
    OfferRedeemed,
    PurchaseRecorded,
    RedemptionRolledBack,
)
from functions.core.money import Money

__all__ = ["PoisonMessage", "parse", "tracked"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)


def tracked(detail: EventDetail, *, received_at: datetime) -> TrackedEvent | None:
    """`detail` as a tracked event, or None when no figure depends on it."""
    shape = _SHAPES.get(type(detail))
    if shape is None:
        return None
    fields: dict[str, Any] = {
        "event_id": detail.eventId,
        "source": detail.source,
        "occurred_ms": _epoch_ms(detail.occurredAt),
        "received_ms": _epoch_ms(received_at),
        **shape(detail),
    }
    return TrackedEvent(**fields)


def _money(value: Money) -> dict[str, Any]:
    return {"value": value.amount, "currency": value.currency}


def _code_issued(detail: Any) -> dict[str, Any]:
    return {
        "type": "code_issued",
        "customer_id": detail.customerId,
        "campaign_id": detail.campaignId,
        "offer_id": detail.offerId,
        "order_id": detail.orderId,
    }


def _redemption(detail: Any) -> dict[str, Any]:
    same_currency = detail.cartTotal.currency == detail.discount.currency
    return {
        "type": "redemption",
        "customer_id": detail.customerId,
        "campaign_id": detail.campaignId,
        "offer_id": detail.offerId,
        "order_id": detail.orderId,
        "order_total": detail.cartTotal.amount if same_currency else None,
        **_money(detail.discount),
    }


def _rolled_back(detail: Any) -> dict[str, Any]:
    return {
        "type": "redemption_rolled_back",
        "customer_id": detail.customerId,
        "campaign_id": detail.campaignId,
        "offer_id": detail.offerId,
        "order_id": detail.orderId,
        **_money(detail.discount),
    }


def _purchase(detail: Any) -> dict[str, Any]:
    # When the order was placed, not when the wallet heard of it: sales by day.
    return {
        "type": "purchase_recorded",
        "customer_id": detail.customerId,
        "order_id": detail.orderId,
        "occurred_ms": _epoch_ms(detail.placedAt),
        **_money(detail.total),
    }


def _claim_submitted(detail: Any) -> dict[str, Any]:
    return {
        "type": "claim_submitted",
        "customer_id": detail.customerId,
        "campaign_id": detail.campaignId,
        "order_id": detail.orderId,
        **_money(detail.purchaseTotal),
    }


def _claim_approved(detail: Any) -> dict[str, Any]:
    return {
        "type": "claim_approved",
        "customer_id": detail.customerId,
        "campaign_id": detail.campaignId,
        **_money(detail.reward),
    }


def _claim_rejected(detail: Any) -> dict[str, Any]:
    return {
        "type": "claim_rejected",
        "customer_id": detail.customerId,
        "campaign_id": detail.campaignId,
    }


def _credited(detail: Any) -> dict[str, Any]:
    return {
        "type": "cashback_credited",
        "customer_id": detail.customerId,
        "campaign_id": detail.campaignId,
        "order_id": detail.orderId,
        "credit_id": detail.entryId,
        **_money(detail.amount),
    }


def _reversed(detail: Any) -> dict[str, Any]:
    return {
        "type": "cashback_reversed",
        "customer_id": detail.customerId,
        "campaign_id": detail.campaignId,
        "order_id": detail.orderId,
        "credit_id": detail.creditEntryId,
        **_money(detail.amount),
    }


_SHAPES: Final[dict[type[EventDetail], Callable[[Any], dict[str, Any]]]] = {
    OfferCodeIssued: _code_issued,
    OfferRedeemed: _redemption,
    RedemptionRolledBack: _rolled_back,
    PurchaseRecorded: _purchase,
    ClaimSubmitted: _claim_submitted,
    ClaimApproved: _claim_approved,
    ClaimRejected: _claim_rejected,
    CashbackCredited: _credited,
    CashbackReversed: _reversed,
}


def _epoch_ms(instant: datetime) -> int:
    return (instant - _EPOCH) // _MILLISECOND
