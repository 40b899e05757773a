"""SMS segments as carriers count them, and every SMS template in one segment."""

from __future__ import annotations

import pytest

from functions.core.event_types import ClaimApproved
from functions.core.vocabulary import Locale
from functions.notifications.messages import SMS_TEMPLATES, TEMPLATES, CampaignFacts, message_for
from functions.notifications.rendering import render_sms
from functions.notifications.sms import (
    _GSM_BASIC,
    _GSM_EXTENSION,
    fits_gsm7,
    gsm_friendly,
    segments,
)
from tests.unit.notifications.content_samples import (
    CAMPAIGN_ID,
    CLAIM,
    CODE,
    CUSTOMER,
    NEW_YORK,
    TOKYO,
    jpy,
    message,
)


def test_the_gsm_tables_have_every_character_and_only_those() -> None:
    assert len(_GSM_BASIC) == 127  # 128 positions less the escape
    assert len(_GSM_EXTENSION) == 10  # form feed ^ { } \\ [ ~ ] | €
    assert "\x1b" not in _GSM_BASIC
    assert set("@£$¥èéÇ\nØ_ΔΩÆß!\"#¤%&'()*+,-./:;<=>?¡§¿äöñüà") <= _GSM_BASIC
    assert not _GSM_BASIC & _GSM_EXTENSION


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("GSM-7", 1)),
        ("Your code is SPRING-7KQ2M9XD.", ("GSM-7", 1)),
        ("a" * 160, ("GSM-7", 1)),
        ("a" * 161, ("GSM-7", 2)),
        ("a" * 306, ("GSM-7", 2)),
        ("a" * 307, ("GSM-7", 3)),
        # Extension characters take two septets.
        ("€" * 80, ("GSM-7", 1)),
        ("€" * 80 + "a", ("GSM-7", 2)),
        ("[x]{y}|~^\\", ("GSM-7", 1)),
        # 306 septets in all, but the escape pair cannot straddle segments 1 and 2.
        ("a" * 152 + "€" + "a" * 152, ("GSM-7", 3)),
        ("¥1,000 @ £5", ("GSM-7", 1)),
        # Anything outside both tables makes the whole text UCS-2.
        ("a" * 69 + "`", ("UCS-2", 1)),
        ("a" * 70 + "ç", ("UCS-2", 2)),
        ("あ" * 70, ("UCS-2", 1)),
        ("あ" * 71, ("UCS-2", 2)),
        ("あ" * 134, ("UCS-2", 2)),
        ("あ" * 135, ("UCS-2", 3)),
        # An emoji is two UTF-16 code units and is never split.
        ("😀" * 35, ("UCS-2", 1)),
        ("😀" * 35 + "a", ("UCS-2", 2)),
        ("あ" * 66 + "😀" + "あ" * 66, ("UCS-2", 3)),
    ],
)
def test_segments(text: str, expected: tuple[str, int]) -> None:
    assert segments(text) == expected


def test_typography_is_made_plain_when_that_keeps_a_text_in_gsm7() -> None:
    fancy = "Spring\u2019s \u201cBig\u201d Sale \u2013 ends 3:00\u202fPM\u2026"
    assert not fits_gsm7(fancy)
    assert gsm_friendly(fancy) == 'Spring\'s "Big" Sale - ends 3:00 PM...'
    assert fits_gsm7(gsm_friendly(fancy))
    # Japanese stays as it is: UCS-2 carries the real characters.
    assert gsm_friendly("春のセール\u2026") == "春のセール\u2026"


# Campaign names as a Japanese and an American storefront would write them.
JAPANESE = TOKYO
ENGLISH = NEW_YORK


@pytest.mark.parametrize(
    ("template", "locale", "campaign", "encoding"),
    [
        (template, locale, campaign, encoding)
        for template in sorted(SMS_TEMPLATES)
        for locale, campaign, encoding in (
            ("ja", JAPANESE, "UCS-2"),
            ("en", ENGLISH, "GSM-7"),
        )
    ],
)
def test_every_sms_template_fits_one_segment_with_realistic_data(
    template: str, locale: Locale, campaign: CampaignFacts, encoding: str
) -> None:
    sms = render_sms(message(template, campaign), locale)
    assert sms is not None
    assert (sms.encoding, sms.segments) == (encoding, 1), sms.text
    assert segments(sms.text) == (sms.encoding, sms.segments)
    assert campaign.name in sms.text  # who it is from
    assert "\n" not in sms.text and "None" not in sms.text


def test_the_sms_say_what_matters() -> None:
    code = render_sms(message("code_issued", JAPANESE), "ja")
    assert code is not None and CODE in code.text and "3月31日 23:59" in code.text
    english_code = render_sms(message("code_issued", ENGLISH), "en")
    # 31 March 15:00 UTC is 11:00 in New York: a deadline, not midnight there.
    assert english_code is not None and "valid until Mar 31 11:00 AM" in english_code.text
    rejected = render_sms(message("claim_rejected", JAPANESE), "ja")
    assert rejected is not None and "対象期間外のご購入ほか" in rejected.text
    available = render_sms(message("cashback_available", JAPANESE), "ja")
    assert available is not None and "1,000円" in available.text and "2,500円" in available.text


@pytest.mark.parametrize("template", sorted(set(TEMPLATES) - SMS_TEMPLATES))
def test_other_templates_have_no_sms(template: str) -> None:
    for locale in ("ja", "en"):
        assert render_sms(message(template), locale) is None


def test_a_long_campaign_name_is_shortened_to_keep_one_segment() -> None:
    long_name = "The Great Big Spring Running Shoes And Apparel Cashback Festival 2027"
    approved = ClaimApproved(
        customerId=CUSTOMER, campaignId=CAMPAIGN_ID, claimId=CLAIM, reward=jpy(1500)
    )
    for locale, name in (
        ("en", long_name),
        ("ja", "春の大感謝祭ランニングシューズとアパレルのキャッシュバックキャンペーン"),
    ):
        built = message_for(approved, campaign=CampaignFacts(CAMPAIGN_ID, name, "Asia/Tokyo"))
        assert built is not None
        sms = render_sms(built, locale)  # type: ignore[arg-type]
        assert sms is not None and sms.segments == 1, sms
        kept = sms.text.split("...")[0] if locale == "en" else sms.text.split("…")[0]
        assert name.startswith(kept.lstrip("【"))
        assert len(kept) >= 6


@pytest.mark.parametrize("template", sorted(SMS_TEMPLATES))
def test_an_english_sms_for_a_japanese_campaign_name_takes_at_most_two_segments(
    template: str,
) -> None:
    # The one case that cannot keep to one segment: the name makes the text UCS-2 (70
    # code units) and the English words alone come near that. Shortening the name helps
    # where it can (the code); otherwise the SMS goes in two segments, never more.
    sms = render_sms(message(template, JAPANESE), "en")
    assert sms is not None and sms.encoding == "UCS-2"
    assert sms.segments <= 2
