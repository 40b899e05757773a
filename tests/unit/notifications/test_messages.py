"""Which event becomes which message: template, purpose, channels, campaign."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from functions.core.event_types import EVENT_TYPES, CampaignPublished, EventDetail
from functions.notifications.messages import (
    MARKETING_TEMPLATES,
    SMS_TEMPLATES,
    TEMPLATES,
    CampaignFacts,
    NextPurchaseCode,
    late_code_message,
    message_for,
)
from tests.unit.notifications.content_samples import (
    CAMPAIGN_ID,
    CODE,
    DETAILS,
    NEXT_CODE,
    ORDER,
    TOKYO,
    code_issued,
    message,
    purchase,
)

SAMPLES = Path(__file__).resolve().parents[3] / "events" / "detail"

TOLD = {
    "ClaimSubmitted": "claim_received",
    "ClaimNeedsReview": "claim_in_review",
    "ClaimApproved": "claim_approved",
    "ClaimRejected": "claim_rejected",
    "CashbackCredited": "cashback_credited",
    "CashbackAvailable": "cashback_available",
    "CashbackExpiring": "cashback_expiring",
    "CashbackExpired": "cashback_expired",
    "OfferCodeIssued": "code_issued",
    "OfferExpiring": "offer_expiring",
    "PurchaseRecorded": "purchase_thank_you",
}
NOT_TOLD = {
    "CampaignPublished",
    "CampaignRejected",  # goes to marketers, not customers
    "OfferRedeemed",
    "RedemptionRolledBack",
    "PurchaseRefunded",
    "CashbackSpent",
    "CashbackReversed",
    "NotificationSent",
    "NotificationFailed",
}


def sample(detail_type: str) -> EventDetail:
    envelope = json.loads((SAMPLES / f"{detail_type}.sample.json").read_text())
    return EVENT_TYPES[detail_type].model_validate(envelope["detail"])


def test_every_detail_type_is_decided() -> None:
    assert set(TOLD) | NOT_TOLD == set(EVENT_TYPES)
    assert not set(TOLD) & NOT_TOLD


@pytest.mark.parametrize("detail_type", sorted(EVENT_TYPES))
def test_each_sample_event_gets_its_template_or_none(detail_type: str) -> None:
    detail = sample(detail_type)
    built = message_for(detail, campaign=None)
    if detail_type in NOT_TOLD:
        assert built is None
        return
    assert built is not None
    assert built.template == TOLD[detail_type]
    assert built.trigger_event_id == detail.eventId
    assert built.trigger_detail_type == detail_type
    assert built.channels[0] == "email"
    assert set(built.channels) == (
        {"email", "sms"} if built.template in SMS_TEMPLATES else {"email"}
    )
    expected_purpose = "marketing" if built.template in MARKETING_TEMPLATES else "transactional"
    assert built.purpose == expected_purpose


def test_marketing_is_email_only_and_the_templates_are_all_listed() -> None:
    assert not MARKETING_TEMPLATES & SMS_TEMPLATES
    assert set(TEMPLATES) == set(DETAILS)
    assert set(TEMPLATES) >= MARKETING_TEMPLATES | SMS_TEMPLATES
    for template in TEMPLATES:
        built = message(template)
        assert built.purpose == (
            "marketing" if template in MARKETING_TEMPLATES else "transactional"
        )
        if built.purpose == "marketing":
            assert built.channels == ("email",)


def test_an_unknown_campaign_is_named_by_its_id_and_shown_in_utc() -> None:
    built = message("claim_approved", campaign=None)
    assert built.campaign_id == CAMPAIGN_ID
    assert built.context["campaign_name"] == CAMPAIGN_ID
    assert built.context["timezone"] == "UTC"
    known = message("claim_approved", campaign=TOKYO)
    assert known.context["campaign_name"] == TOKYO.name
    assert known.context["timezone"] == "Asia/Tokyo"


def test_facts_of_another_campaign_are_refused() -> None:
    other = CampaignFacts("autumn-2027", "Autumn", "Asia/Tokyo")
    with pytest.raises(ValueError, match="autumn-2027"):
        message_for(DETAILS["claim_approved"](), campaign=other)


def test_campaign_facts_come_from_campaign_published() -> None:
    published = sample("CampaignPublished")
    assert isinstance(published, CampaignPublished)
    facts = CampaignFacts.from_event(published)
    assert (facts.campaign_id, facts.name, facts.timezone) == (
        published.campaignId,
        published.name,
        published.timezone,
    )


def test_the_thank_you_carries_the_next_code_only_when_a_promotion_is_allowed() -> None:
    allowed = message_for(purchase(), campaign=None, next_code=NEXT_CODE, promotion_allowed=True)
    assert allowed is not None
    assert allowed.context["next_code"]["code"] == CODE
    assert allowed.context["next_code"]["qr_payload"] == f"REBATES1:{CODE}"
    assert allowed.campaign_id == CAMPAIGN_ID  # the code's campaign
    assert allowed.purpose == "transactional"
    refused = message_for(purchase(), campaign=None, next_code=NEXT_CODE, promotion_allowed=False)
    assert refused is not None and refused.context["next_code"] is None
    assert refused.campaign_id is None and refused.context["campaign_name"] is None
    no_code = message_for(purchase(), campaign=None, promotion_allowed=True)
    assert no_code is not None and no_code.context["next_code"] is None


def test_a_code_issued_after_a_purchase_is_no_code_issued_message() -> None:
    after_purchase = code_issued(order_id=ORDER)
    assert message_for(after_purchase, campaign=TOKYO) is None
    late = late_code_message(after_purchase, campaign=TOKYO)
    assert late.template == "next_purchase_code"
    assert late.purpose == "transactional" and late.channels == ("email",)
    assert late.trigger_event_id == after_purchase.eventId
    assert late.context["order_id"] == ORDER
    assert NextPurchaseCode.from_event(after_purchase) == NEXT_CODE
    with pytest.raises(ValueError, match="orderId"):
        late_code_message(code_issued(), campaign=TOKYO)


def test_rejection_reasons_are_kept_in_order_once_each() -> None:
    from functions.core.event_types import ClaimRejected

    detail = ClaimRejected(
        customerId="c",
        campaignId=CAMPAIGN_ID,
        claimId="clm",
        reasons=["duplicate_receipt", "outside_window", "duplicate_receipt"],
    )
    built = message_for(detail, campaign=None)
    assert built is not None
    assert built.context["reasons"] == ("duplicate_receipt", "outside_window")


def test_credited_cashback_says_whether_it_is_spendable_now() -> None:
    credited = message("cashback_credited")
    assert credited.context["available_now"] is False
    detail = DETAILS["cashback_credited"]()
    instant = detail.model_copy(update={"availableAt": detail.occurredAt})
    built = message_for(instant, campaign=TOKYO)
    assert built is not None and built.context["available_now"] is True


def test_the_context_cannot_be_changed() -> None:
    built = message("claim_approved")
    with pytest.raises(TypeError):
        built.context["reward"] = None  # type: ignore[index]
