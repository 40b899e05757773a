"""Realistic events for every customer message, and the words each must show per locale.

Times are chosen so that the campaign's zone matters: the purchase at 16:30 UTC on
4 March is 5 March in Tokyo, and codes expire at Tokyo midnight (15:00 UTC), which reads
as 23:59 of the day before.
"""

# Japanese copy uses full-width parentheses and colons, as Japanese is written.
# ruff: noqa: RUF001

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from functions.core.event_types import (
    CashbackAvailable,
    CashbackCredited,
    CashbackExpired,
    CashbackExpiring,
    ClaimApproved,
    ClaimNeedsReview,
    ClaimRejected,
    ClaimSubmitted,
    EventDetail,
    LineItem,
    OfferCodeIssued,
    OfferExpiring,
    PurchaseRecorded,
)
from functions.core.money import Money
from functions.notifications.messages import (
    CampaignFacts,
    Message,
    NextPurchaseCode,
    late_code_message,
    message_for,
)

CAMPAIGN_ID = "spring-cashback-2027"
TOKYO = CampaignFacts(CAMPAIGN_ID, "春のキャッシュバックキャンペーン", "Asia/Tokyo")
NEW_YORK = CampaignFacts(CAMPAIGN_ID, "Spring Cashback", "America/New_York")
HOSTILE = CampaignFacts(CAMPAIGN_ID, '<script>alert("x")</script> & <b>Co</b>', "Asia/Tokyo")

CUSTOMER = "cus_7730415"
CLAIM = "clm_01MGHGBYXRKEP5VFMFZWK45V3N"
ORDER = "1001-58372"
CODE = "SPRING-7KQ2M9XD"
NOW = datetime(2027, 3, 8, 2, 44, tzinfo=UTC)
PURCHASED = datetime(2027, 3, 4, 16, 30, tzinfo=UTC)  # Tokyo: Fri 5 March, 1:30
EXPIRES = datetime(2027, 3, 31, 15, 0, tzinfo=UTC)  # Tokyo: Thu 1 April, 0:00
AVAILABLE = datetime(2027, 4, 7, 3, 0, tzinfo=UTC)  # Tokyo: Wed 7 April, 12:00
REVIEW_DUE = datetime(2027, 3, 11, 2, 44, tzinfo=UTC)  # Tokyo: Thu 11 March, 11:44
UNSUBSCRIBE_URL = "https://api.example.com/v1/unsubscribe?token=v1.abc&channel=email"

# Every rejection reason a claim can carry today.
REJECTION_REASONS = (
    "not_eligible",
    "outside_window",
    "claim_window_closed",
    "below_min_purchase",
    "currency_mismatch",
    "wrong_channel",
    "duplicate_receipt",
    "limit_reached",
    "budget_exhausted",
    "review_rejected",
    "review_timeout",
    "receipt_missing",
    "receipt_invalid",
)


def jpy(amount: int) -> Money:
    return Money.of(amount, "JPY")


def code_issued(*, order_id: str | None = None, qr: bool = True) -> OfferCodeIssued:
    return OfferCodeIssued(
        occurredAt=NOW,
        customerId=CUSTOMER,
        campaignId=CAMPAIGN_ID,
        offerId="SPRING10",
        code=CODE,
        channel="both",
        mode="unique",
        expiresAt=EXPIRES,
        qrPayload=f"REBATES1:{CODE}" if qr else None,
        orderId=order_id,
    )


def purchase(currency: str = "JPY", total: int = 12800) -> PurchaseRecorded:
    return PurchaseRecorded(
        occurredAt=NOW,
        customerId=CUSTOMER,
        orderId=ORDER,
        channel="online",
        placedAt=PURCHASED,
        total=Money.of(total, currency),
        items=[LineItem(sku="RUN-FLY-09", quantity=1, unitPrice=Money.of(total, currency))],
    )


DETAILS: dict[str, Callable[[], EventDetail]] = {
    "claim_received": lambda: ClaimSubmitted(
        occurredAt=NOW,
        customerId=CUSTOMER,
        campaignId=CAMPAIGN_ID,
        claimId=CLAIM,
        orderId=ORDER,
        retailer="Rebates Store Shibuya",
        purchasedAt=PURCHASED,
        purchaseTotal=jpy(12800),
    ),
    "claim_in_review": lambda: ClaimNeedsReview(
        occurredAt=NOW,
        customerId=CUSTOMER,
        campaignId=CAMPAIGN_ID,
        claimId=CLAIM,
        reward=jpy(3000),
        reasons=["above_auto_approve_limit", "velocity"],
        reviewDueAt=REVIEW_DUE,
    ),
    "claim_approved": lambda: ClaimApproved(
        occurredAt=NOW, customerId=CUSTOMER, campaignId=CAMPAIGN_ID, claimId=CLAIM, reward=jpy(1500)
    ),
    "claim_rejected": lambda: ClaimRejected(
        occurredAt=NOW,
        customerId=CUSTOMER,
        campaignId=CAMPAIGN_ID,
        claimId=CLAIM,
        reasons=["outside_window", "duplicate_receipt"],
    ),
    "cashback_credited": lambda: CashbackCredited(
        occurredAt=NOW,
        customerId=CUSTOMER,
        campaignId=CAMPAIGN_ID,
        entryId="wle_01",
        amount=jpy(1000),
        orderId=ORDER,
        availableAt=AVAILABLE,
        expiresAt=EXPIRES,
    ),
    "cashback_available": lambda: CashbackAvailable(
        occurredAt=NOW,
        customerId=CUSTOMER,
        campaignId=CAMPAIGN_ID,
        entryId="wle_01",
        amount=jpy(1000),
        expiresAt=EXPIRES,
        availableBalance=jpy(2500),
    ),
    "cashback_expiring": lambda: CashbackExpiring(
        occurredAt=NOW,
        customerId=CUSTOMER,
        campaignId=CAMPAIGN_ID,
        entryId="wle_01",
        amount=jpy(700),
        expiresAt=EXPIRES,
        daysBefore=7,
    ),
    "cashback_expired": lambda: CashbackExpired(
        occurredAt=NOW,
        customerId=CUSTOMER,
        campaignId=CAMPAIGN_ID,
        entryId="wle_01",
        amount=jpy(700),
    ),
    "code_issued": code_issued,
    "offer_expiring": lambda: OfferExpiring(
        occurredAt=NOW,
        customerId=CUSTOMER,
        campaignId=CAMPAIGN_ID,
        offerId="SPRING10",
        code=CODE,
        expiresAt=EXPIRES,
        daysBefore=3,
    ),
    "purchase_thank_you": purchase,
    "next_purchase_code": lambda: code_issued(order_id=ORDER),
}

NEXT_CODE = NextPurchaseCode.from_event(code_issued(order_id=ORDER))


def message(template: str, campaign: CampaignFacts | None = TOKYO) -> Message:
    """The message of `template` for its sample event (the thank-you carries a code)."""
    detail = DETAILS[template]()
    if template == "next_purchase_code":
        assert isinstance(detail, OfferCodeIssued)
        return late_code_message(detail, campaign=campaign)
    built = message_for(detail, campaign=campaign, next_code=NEXT_CODE, promotion_allowed=True)
    assert built is not None and built.template == template
    return built


@dataclass(frozen=True)
class Expected:
    """Words the email (text and HTML) must show, per locale, for the Tokyo campaign."""

    ja: tuple[str, ...]
    en: tuple[str, ...]


DEADLINE_JA = "2027年3月31日(水) 23:59（日本標準時）"
DEADLINE_EN = "Wed, Mar 31, 2027, 11:59 PM (Japan Standard Time)"

EXPECTED: dict[str, Expected] = {
    "claim_received": Expected(
        ja=(
            "ご申請を受け付けました",
            CLAIM,
            "Rebates Store Shibuya",
            "2027年3月5日(金)",
            "12,800円",
            ORDER,
        ),
        en=("We have received your claim", CLAIM, "Fri, Mar 5, 2027", "¥12,800", ORDER),
    ),
    "claim_in_review": Expected(
        ja=("確認しております", "3,000円", "2027年3月11日(木) 11:44（日本標準時）までに"),
        en=("being reviewed", "¥3,000", "by Thu, Mar 11, 2027, 11:44 AM (Japan Standard Time)"),
    ),
    "claim_approved": Expected(
        ja=("承認されました", "1,500円", CLAIM),
        en=("has been approved", "¥1,500", CLAIM),
    ),
    "claim_rejected": Expected(
        ja=(
            "承認することができませんでした",
            "ご購入日がキャンペーンの対象期間外でした。",
            "同じレシートで、すでにご申請いただいています。",
            CLAIM,
        ),
        en=(
            "could not approve it",
            "The purchase was made outside the campaign period.",
            "This receipt has already been used for a claim.",
            CLAIM,
        ),
    ),
    "cashback_credited": Expected(
        ja=("1,000円", ORDER, "2027年4月7日(水) 12:00（日本標準時）から", DEADLINE_JA + "まで"),
        en=("¥1,000", ORDER, "Wed, Apr 7, 2027, 12:00 PM (Japan Standard Time)", DEADLINE_EN),
    ),
    "cashback_available": Expected(
        ja=("1,000円", "2,500円", DEADLINE_JA + "まで"),
        en=("¥1,000", "¥2,500", DEADLINE_EN),
    ),
    "cashback_expiring": Expected(
        ja=("700円", DEADLINE_JA + "まで"),
        en=("¥700", DEADLINE_EN),
    ),
    "cashback_expired": Expected(ja=("700円", "失効しました"), en=("¥700", "has now expired")),
    "code_issued": Expected(
        ja=(CODE, "有効期限：" + DEADLINE_JA + "まで", "QRコード"),
        en=(CODE, "Valid until " + DEADLINE_EN, "QR code"),
    ),
    "offer_expiring": Expected(
        ja=(CODE, DEADLINE_JA + "まで"),
        en=(CODE, DEADLINE_EN),
    ),
    "purchase_thank_you": Expected(
        ja=(
            "ご購入ありがとうございます",
            ORDER,
            "12,800円",
            "2027年3月5日(金) 1:30（日本標準時）",
            CODE,
        ),
        en=("Thank you for your purchase", ORDER, "¥12,800", "Fri, Mar 5, 2027, 1:30 AM", CODE),
    ),
    "next_purchase_code": Expected(
        ja=("次回のお買い物", ORDER, CODE, DEADLINE_JA + "まで"),
        en=("next purchase", ORDER, CODE, DEADLINE_EN),
    ),
}
