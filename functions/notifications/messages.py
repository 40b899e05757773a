"""Which message an event becomes: the template, its purpose, its channels, what it says.

Pure: no I/O, no locale. `message_for` turns an event detail (plus what the service
knows besides: the campaign's name and zone, the code issued after a purchase, whether a
promotion may ride along) into a `Message`; `functions.notifications.rendering` words it
per locale. The context holds facts, not text: amounts as `Money`, instants as aware UTC
datetimes, reasons as codes.

Templates by detail type:

==========================  ======================  =============  ============
detail type                 template                purpose        channels
==========================  ======================  =============  ============
ClaimSubmitted              claim_received          transactional  email, sms
ClaimNeedsReview            claim_in_review         transactional  email
ClaimApproved               claim_approved          transactional  email, sms
ClaimRejected               claim_rejected          transactional  email, sms
CashbackCredited            cashback_credited       transactional  email
CashbackAvailable           cashback_available      transactional  email, sms
CashbackExpiring            cashback_expiring       marketing      email
CashbackExpired             cashback_expired        transactional  email
OfferCodeIssued (no order)  code_issued             transactional  email, sms
OfferExpiring               offer_expiring          marketing      email
PurchaseRecorded            purchase_thank_you      transactional  email
OfferCodeIssued (an order)  next_purchase_code      transactional  email
==========================  ======================  =============  ============

A code issued after a purchase normally rides in that purchase's thank-you (when
`promotion_allowed`); `message_for` returns None for it, and `late_code_message` makes
the marketing email for one that arrived after the thank-you had gone. Marketing is email
only: SMS marketing would need its own STOP keyword handling. The claim under review does
not tell its reasons (they are fraud signals such as ``velocity``), only when a decision
is due.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from functions.core.event_types import (
    CampaignPublished,
    CashbackAvailable,
    CashbackCredited,
    CashbackExpired,
    CashbackExpiring,
    ClaimApproved,
    ClaimNeedsReview,
    ClaimRejected,
    ClaimSubmitted,
    EventDetail,
    OfferCodeIssued,
    OfferExpiring,
    PurchaseRecorded,
)
from functions.core.vocabulary import NotificationChannel
from functions.notifications.consent import Purpose

__all__ = [
    "MARKETING_TEMPLATES",
    "SMS_TEMPLATES",
    "TEMPLATES",
    "CampaignFacts",
    "Message",
    "NextPurchaseCode",
    "late_code_message",
    "message_for",
]

TEMPLATES: Final = (
    "claim_received",
    "claim_in_review",
    "claim_approved",
    "claim_rejected",
    "cashback_credited",
    "cashback_available",
    "cashback_expiring",
    "cashback_expired",
    "code_issued",
    "offer_expiring",
    "purchase_thank_you",
    "next_purchase_code",
)
MARKETING_TEMPLATES: Final = frozenset({"cashback_expiring", "offer_expiring"})
# Transactional messages short enough to say in one SMS segment.
SMS_TEMPLATES: Final = frozenset(
    {"claim_received", "claim_approved", "claim_rejected", "cashback_available", "code_issued"}
)
# The zone dates are shown in while the campaign directory does not know the campaign.
FALLBACK_TIMEZONE: Final = "UTC"


@dataclass(frozen=True)
class CampaignFacts:
    """What messages show of a campaign, as its `CampaignPublished` told."""

    campaign_id: str
    name: str
    timezone: str

    @classmethod
    def from_event(cls, detail: CampaignPublished) -> CampaignFacts:
        return cls(campaign_id=detail.campaignId, name=detail.name, timezone=detail.timezone)


@dataclass(frozen=True)
class NextPurchaseCode:
    """A code issued after a purchase (an offer with ``issue_after_purchase``)."""

    code: str
    offer_id: str
    campaign_id: str
    expires_at: datetime
    qr_payload: str | None

    @classmethod
    def from_event(cls, detail: OfferCodeIssued) -> NextPurchaseCode:
        return cls(
            code=detail.code,
            offer_id=detail.offerId,
            campaign_id=detail.campaignId,
            expires_at=detail.expiresAt,
            qr_payload=detail.qrPayload,
        )


@dataclass(frozen=True)
class Message:
    """One message to one customer about one event, before it is put into words."""

    template: str
    purpose: Purpose
    channels: tuple[NotificationChannel, ...]
    context: Mapping[str, Any]
    trigger_event_id: str
    trigger_detail_type: str
    campaign_id: str | None


def message_for(
    detail: EventDetail,
    *,
    campaign: CampaignFacts | None,
    next_code: NextPurchaseCode | None = None,
    promotion_allowed: bool = False,
) -> Message | None:
    """The message a customer gets for `detail`, or None when customers are not told.

    `campaign` is the detail's campaign as the directory knows it (None when not yet
    known: the id stands in for the name and dates are shown in UTC). For a purchase it
    is the next-purchase code's campaign, if any. `next_code` goes into the thank-you only
    when `promotion_allowed` (`functions.notifications.consent.may_include_promotion`).
    """
    if isinstance(detail, PurchaseRecorded):
        included = next_code if promotion_allowed else None
        return _message(
            "purchase_thank_you",
            detail,
            campaign,
            campaign_id=None if included is None else included.campaign_id,
            order_id=detail.orderId,
            placed_at=detail.placedAt,
            total=detail.total,
            sales_channel=detail.channel,
            next_code=None if included is None else _code(included),
        )
    if isinstance(detail, OfferCodeIssued) and detail.orderId is not None:
        return None  # rides in the thank-you, or goes as `late_code_message`
    facts = _FACTS.get(type(detail))
    if facts is None:
        return None
    template, context = facts(detail)
    return _message(template, detail, campaign, **context)


def _claim_received(detail: ClaimSubmitted) -> tuple[str, dict[str, Any]]:
    return "claim_received", {
        "claim_id": detail.claimId,
        "order_id": detail.orderId,
        "retailer": detail.retailer,
        "purchased_at": detail.purchasedAt,
        "purchase_total": detail.purchaseTotal,
    }


def _claim_in_review(detail: ClaimNeedsReview) -> tuple[str, dict[str, Any]]:
    return "claim_in_review", {
        "claim_id": detail.claimId,
        "reward": detail.reward,
        "review_due_at": detail.reviewDueAt,
    }


def _claim_approved(detail: ClaimApproved) -> tuple[str, dict[str, Any]]:
    return "claim_approved", {"claim_id": detail.claimId, "reward": detail.reward}


def _claim_rejected(detail: ClaimRejected) -> tuple[str, dict[str, Any]]:
    return "claim_rejected", {
        "claim_id": detail.claimId,
        "reasons": tuple(dict.fromkeys(detail.reasons)),
        "reviewed": detail.reviewer is not None,
    }


def _cashback_credited(detail: CashbackCredited) -> tuple[str, dict[str, Any]]:
    return "cashback_credited", {
        "amount": detail.amount,
        "available_at": detail.availableAt,
        "available_now": detail.availableAt <= detail.occurredAt,
        "expires_at": detail.expiresAt,
        "claim_id": detail.claimId,
        "order_id": detail.orderId,
    }


def _cashback_available(detail: CashbackAvailable) -> tuple[str, dict[str, Any]]:
    return "cashback_available", {
        "amount": detail.amount,
        "available_balance": detail.availableBalance,
        "expires_at": detail.expiresAt,
    }


def _cashback_expiring(detail: CashbackExpiring) -> tuple[str, dict[str, Any]]:
    return "cashback_expiring", {
        "amount": detail.amount,
        "expires_at": detail.expiresAt,
        "days_before": detail.daysBefore,
    }


def _cashback_expired(detail: CashbackExpired) -> tuple[str, dict[str, Any]]:
    return "cashback_expired", {"amount": detail.amount}


def _code_issued(detail: OfferCodeIssued) -> tuple[str, dict[str, Any]]:
    return "code_issued", {
        "code": _code(NextPurchaseCode.from_event(detail)),
        "code_channel": detail.channel,
    }


def _offer_expiring(detail: OfferExpiring) -> tuple[str, dict[str, Any]]:
    code = {
        "code": detail.code,
        "offer_id": detail.offerId,
        "expires_at": detail.expiresAt,
        "qr_payload": None,
    }
    return "offer_expiring", {"code": code, "days_before": detail.daysBefore}


# What each detail type says; a type not listed is not told to customers.
_FACTS: Final[Mapping[type[EventDetail], Callable[[Any], tuple[str, dict[str, Any]]]]] = {
    ClaimSubmitted: _claim_received,
    ClaimNeedsReview: _claim_in_review,
    ClaimApproved: _claim_approved,
    ClaimRejected: _claim_rejected,
    CashbackCredited: _cashback_credited,
    CashbackAvailable: _cashback_available,
    CashbackExpiring: _cashback_expiring,
    CashbackExpired: _cashback_expired,
    OfferCodeIssued: _code_issued,
    OfferExpiring: _offer_expiring,
}


def late_code_message(detail: OfferCodeIssued, *, campaign: CampaignFacts | None) -> Message:
    """The email for a post-purchase code whose thank-you has already gone: the rest of
    that thank-you, so it goes where the thank-you could have carried it (the promotion
    rule, `consent.may_include_promotion`), as a transactional message."""
    if detail.orderId is None:
        raise ValueError("a next-purchase code message needs the code's orderId")
    return _message(
        "next_purchase_code",
        detail,
        campaign,
        code=_code(NextPurchaseCode.from_event(detail)),
        order_id=detail.orderId,
    )


def _code(code: NextPurchaseCode) -> dict[str, Any]:
    return {
        "code": code.code,
        "offer_id": code.offer_id,
        "expires_at": code.expires_at,
        "qr_payload": code.qr_payload,
    }


def _message(
    template: str,
    detail: EventDetail,
    campaign: CampaignFacts | None,
    *,
    campaign_id: str | None = None,
    **facts: Any,
) -> Message:
    detail_campaign: str | None = getattr(detail, "campaignId", None)
    campaign_id = detail_campaign or campaign_id
    name: str | None
    if campaign is not None:
        if campaign_id is not None and campaign.campaign_id != campaign_id:
            raise ValueError(
                f"campaign facts for {campaign.campaign_id!r} given for an event of {campaign_id!r}"
            )
        campaign_id, name, timezone = campaign.campaign_id, campaign.name, campaign.timezone
    else:
        name, timezone = campaign_id, FALLBACK_TIMEZONE
    purpose: Purpose = "marketing" if template in MARKETING_TEMPLATES else "transactional"
    channels: tuple[NotificationChannel, ...] = (
        ("email", "sms") if template in SMS_TEMPLATES else ("email",)
    )
    context = {
        "campaign_id": campaign_id,
        "campaign_name": name,
        "timezone": timezone,
        "occurred_at": detail.occurredAt,
        **facts,
    }
    return Message(
        template=template,
        purpose=purpose,
        channels=channels,
        context=MappingProxyType(context),
        trigger_event_id=detail.eventId,
        trigger_detail_type=detail.detail_type,
        campaign_id=campaign_id,
    )
