"""Every email in both languages, read as a customer reads it: amounts, dates, reasons and
codes formatted for the locale, markup escaped, the unsubscribe link where it belongs."""

# Japanese copy uses full-width parentheses and colons, as Japanese is written.
# ruff: noqa: RUF001

from __future__ import annotations

import html as html_lib
import re
import subprocess
import sys
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from functions.campaigns.rewards import Reason as QuoteReason
from functions.claims.logic import Reason as ClaimReason
from functions.core.event_types import CampaignRejected, ClaimRejected, ValidationIssue
from functions.core.money import Money
from functions.core.vocabulary import Locale
from functions.notifications.messages import TEMPLATES, CampaignFacts, message_for
from functions.notifications.qr import qr_png
from functions.notifications.rendering import (
    format_date,
    format_datetime,
    format_deadline,
    format_money,
    reason_text,
    reason_words,
    render_email,
    render_marketers_alert,
    render_page,
)
from tests.unit.notifications.content_samples import (
    CAMPAIGN_ID,
    CLAIM,
    CODE,
    CUSTOMER,
    EXPECTED,
    HOSTILE,
    NEW_YORK,
    REJECTION_REASONS,
    UNSUBSCRIBE_URL,
    message,
)

ROOT = Path(__file__).resolve().parents[3]
LOCALES: tuple[Locale, ...] = ("ja", "en")


def url_for(template: str) -> str | None:
    return UNSUBSCRIBE_URL if message(template).purpose == "marketing" else None


class _Html(HTMLParser):
    """The text a browser shows and the attributes of each element, for assertions."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag in ("title", "style", "script"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("title", "style", "script"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def parse(document: str) -> _Html:
    parser = _Html()
    parser.feed(document)
    return parser


def squeeze(text: str) -> str:
    """Runs of ASCII white space as one space (a no-break space is part of the words)."""
    return re.sub(r"[ \t\r\n]+", " ", text).strip()


def shown_text(document: str) -> str:
    return squeeze("".join(parse(document).text))


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", TEMPLATES)
def test_every_email_shows_its_facts_formatted_for_the_locale(
    template: str, locale: Locale
) -> None:
    email = render_email(message(template), locale, unsubscribe_url=url_for(template))

    words = squeeze(email.html)
    seen = shown_text(email.html)
    text = squeeze(email.text)
    for expected in getattr(EXPECTED[template], locale):
        assert expected in text, f"text part of {template}/{locale} lacks {expected!r}"
        assert expected in seen, f"HTML part of {template}/{locale} lacks {expected!r}"
    for part in (email.subject, email.text, seen):
        assert "None" not in part and "Undefined" not in part
        assert "{{" not in part and "{%" not in part
    assert f'<html lang="{locale}">' in words
    assert "<title>" + html_lib.escape(email.subject, quote=False) + "</title>" in words
    assert "\n" not in email.subject and email.subject.strip() == email.subject
    if locale == "ja":
        # Polite Japanese: the body is in です/ます.
        assert re.search(r"(ます|です|ください|ました)。", email.text)


@pytest.mark.parametrize("template", TEMPLATES)
def test_the_campaign_name_is_escaped_in_html_and_kept_as_is_in_text(template: str) -> None:
    for locale in LOCALES:
        email = render_email(message(template, HOSTILE), locale, unsubscribe_url=url_for(template))
        assert "<script>" not in email.html and "<b>Co</b>" not in email.html
        assert (
            "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;Co&lt;/b&gt;"
            in email.html
        )
        if template != "purchase_thank_you":  # about an order, not a campaign
            assert HOSTILE.name in email.subject


@pytest.mark.parametrize("template", TEMPLATES)
def test_marketing_emails_link_the_unsubscribe_page_and_transactional_ones_do_not(
    template: str,
) -> None:
    built = message(template)
    for locale in LOCALES:
        if built.purpose == "marketing":
            email = render_email(built, locale, unsubscribe_url=UNSUBSCRIBE_URL)
            links = [attrs.get("href") for tag, attrs in parse(email.html).elements if tag == "a"]
            assert links == [UNSUBSCRIBE_URL]
            assert UNSUBSCRIBE_URL.replace("&", "&amp;") in email.html
            assert UNSUBSCRIBE_URL in email.text
            with pytest.raises(ValueError, match="unsubscribe_url"):
                render_email(built, locale, unsubscribe_url=None)
        else:
            email = render_email(built, locale, unsubscribe_url=None)
            assert "unsubscribe" not in email.html.lower() and "配信停止" not in email.html


def test_the_marketing_templates_are_the_reminders_and_the_late_code() -> None:
    marketing = {t for t in TEMPLATES if message(t).purpose == "marketing"}
    assert marketing == {"cashback_expiring", "offer_expiring"}


@pytest.mark.parametrize("template", ["code_issued", "purchase_thank_you", "next_purchase_code"])
def test_in_store_codes_carry_their_qr_as_an_inline_png_with_a_text_fallback(
    template: str,
) -> None:
    for locale in LOCALES:
        email = render_email(message(template), locale, unsubscribe_url=url_for(template))
        (image,) = email.images
        assert image.png == qr_png(f"REBATES1:{CODE}")
        assert image.png.startswith(b"\x89PNG\r\n\x1a\n")
        images = [attrs for tag, attrs in parse(email.html).elements if tag == "img"]
        assert [attrs["src"] for attrs in images] == [f"cid:{image.content_id}"]
        # With images blocked the code still reads: as text and as the image's alt.
        assert CODE in (images[0]["alt"] or "")
        assert CODE in shown_text(email.html)
        assert images[0]["width"] and images[0]["height"]


def test_codes_without_a_qr_payload_have_no_image() -> None:
    from tests.unit.notifications.content_samples import TOKYO, code_issued

    built = message_for(code_issued(qr=False), campaign=TOKYO)
    assert built is not None
    for locale in LOCALES:
        email = render_email(built, locale, unsubscribe_url=None)
        assert email.images == () and "<img" not in email.html
        assert CODE in email.text
    assert (
        render_email(message("offer_expiring"), "ja", unsubscribe_url=UNSUBSCRIBE_URL).images == ()
    )


def test_a_thank_you_without_a_code_has_no_promotion() -> None:
    from tests.unit.notifications.content_samples import NEXT_CODE, purchase

    built = message_for(purchase(), campaign=None, next_code=NEXT_CODE, promotion_allowed=False)
    assert built is not None
    for locale in LOCALES:
        email = render_email(built, locale, unsubscribe_url=None)
        assert CODE not in email.text and CODE not in email.html and email.images == ()
        assert "1001-58372" in email.subject


def test_usd_amounts_and_a_daylight_saving_zone() -> None:
    from tests.unit.notifications.content_samples import purchase

    built = message_for(purchase("USD", 15997), campaign=NEW_YORK)
    assert built is not None
    english = render_email(built, "en", unsubscribe_url=None)
    japanese = render_email(built, "ja", unsubscribe_url=None)
    assert "$159.97" in english.text and "$159.97" in japanese.text
    # 4 March 16:30 UTC is 11:30 in New York, still on standard time.
    assert "Thu, Mar 4, 2027, 11:30 AM (Eastern Standard Time)" in english.text
    assert "2027年3月4日(木) 11:30（米国東部標準時）" in japanese.text


def test_an_unknown_campaign_shows_its_id_and_utc() -> None:
    built = message("claim_in_review", campaign=None)
    email = render_email(built, "en", unsubscribe_url=None)
    assert email.subject.startswith(f"{CAMPAIGN_ID}:")
    assert "Thu, Mar 11, 2027, 2:44 AM (Coordinated Universal Time)" in email.text


# -- formatting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "shown"),
    [
        (1000, "JPY", "ja", "1,000円"),
        (1000, "JPY", "en", "¥1,000"),
        (1500, "USD", "en", "$15.00"),
        (1500, "USD", "ja", "$15.00"),
        (123456789, "EUR", "en", "€1,234,567.89"),
        (-1000, "JPY", "ja", "-1,000円"),
        (-1500, "USD", "en", "-$15.00"),
        (0, "JPY", "ja", "0円"),
        (5, "USD", "en", "$0.05"),
        # CLDR shows these with fewer decimals than ISO 4217 has; the minor unit wins.
        (1500, "IQD", "en", "IQD1.500"),
        (1505, "HUF", "en", "HUF15.05"),
    ],
)
def test_money_is_formatted_per_locale_and_currency(
    amount: int, currency: str, locale: Locale, shown: str
) -> None:
    assert format_money(Money.of(amount, currency), locale) == shown


def test_dates_are_shown_in_the_campaign_zone() -> None:
    instant = datetime(2027, 3, 4, 16, 30, tzinfo=UTC)
    assert format_date(instant, "ja", "Asia/Tokyo") == "2027年3月5日(金)"
    assert format_date(instant, "en", "Asia/Tokyo") == "Fri, Mar 5, 2027"
    assert format_date(instant, "en", "UTC") == "Thu, Mar 4, 2027"
    summer = datetime(2027, 7, 1, 16, 0, tzinfo=UTC)
    assert format_datetime(summer, "en", "America/New_York") == (
        "Thu, Jul 1, 2027, 12:00 PM (Eastern Daylight Time)"
    )
    assert (
        format_datetime(summer, "ja", "Europe/Berlin")
        == "2027年7月1日(木) 18:00（中央ヨーロッパ夏時間）"
    )


def test_a_deadline_at_local_midnight_reads_as_the_last_minute_of_the_day_before() -> None:
    midnight_tokyo = datetime(2027, 3, 31, 15, 0, tzinfo=UTC)
    assert (
        format_deadline(midnight_tokyo, "ja", "Asia/Tokyo")
        == "2027年3月31日(水) 23:59（日本標準時）"
    )
    # The same instant is no midnight in UTC, so it is shown as it is.
    assert format_deadline(midnight_tokyo, "en", "UTC") == (
        "Wed, Mar 31, 2027, 3:00 PM (Coordinated Universal Time)"
    )
    with pytest.raises(ValueError, match="aware"):
        format_deadline(datetime(2027, 3, 31), "ja", "Asia/Tokyo")


# -- reasons --------------------------------------------------------------------------------


def test_every_rejection_reason_a_claim_can_carry_has_words_in_both_languages() -> None:
    claim_codes = {str(reason) for reason in ClaimReason}
    # Quote reasons reach a claim as they are, except no_reward (it becomes not_eligible).
    quote_codes = {str(reason) for reason in QuoteReason} - {"no_reward"}
    assert claim_codes | quote_codes == set(REJECTION_REASONS)
    for locale in LOCALES:
        words = reason_words(locale)
        assert set(words) == set(REJECTION_REASONS)
        sentences = [sentence for sentence, _ in words.values()]
        briefs = [brief for _, brief in words.values()]
        assert len(set(sentences)) == len(sentences) and len(set(briefs)) == len(briefs)
        for code in REJECTION_REASONS:
            assert code not in reason_text(code, locale)


@pytest.mark.parametrize("locale", LOCALES)
def test_an_unknown_reason_gets_a_general_sentence_naming_its_code(locale: Locale) -> None:
    sentence = reason_text("reviewer_said_so", locale)
    assert "reviewer_said_so" in sentence
    assert reason_text("reviewer_said_so", locale, short=True)
    rejected = ClaimRejected(
        customerId=CUSTOMER,
        campaignId=CAMPAIGN_ID,
        claimId=CLAIM,
        reasons=["reviewer_said_so", "outside_window", "reviewer_said_so"],
        reviewer="ops@example.com",
    )
    built = message_for(rejected, campaign=HOSTILE)
    assert built is not None
    email = render_email(built, locale, unsubscribe_url=None)
    assert email.text.count("reviewer_said_so") == 1
    assert reason_text("outside_window", locale) in email.text


def test_every_reason_is_listed_in_the_rejection_email() -> None:
    rejected = ClaimRejected(
        customerId=CUSTOMER, campaignId=CAMPAIGN_ID, claimId=CLAIM, reasons=list(REJECTION_REASONS)
    )
    built = message_for(rejected, campaign=CampaignFacts(CAMPAIGN_ID, "Spring", "Asia/Tokyo"))
    assert built is not None
    for locale in LOCALES:
        email = render_email(built, locale, unsubscribe_url=None)
        items = [t for t in parse(email.html).elements if t[0] == "li"]
        assert len(items) == len(REJECTION_REASONS)
        for code in REJECTION_REASONS:
            assert reason_text(code, locale) in email.text
            assert reason_text(code, locale) in shown_text(email.html)


# -- pages ------------------------------------------------------------------------------------


def forms(document: str) -> list[tuple[dict[str, str | None], list[dict[str, str | None]]]]:
    found: list[tuple[dict[str, str | None], list[dict[str, str | None]]]] = []
    for tag, attrs in parse(document).elements:
        if tag == "form":
            found.append((attrs, []))
        elif tag == "input" and found:
            found[-1][1].append(attrs)
    return found


ACTION = 'https://api.example.com/v1/unsubscribe?token=v1.abc"def&x=<1>'


@pytest.mark.parametrize("locale", LOCALES)
def test_the_confirm_page_posts_confirm_yes_to_the_url_it_was_opened_at(locale: Locale) -> None:
    page = render_page("unsubscribe_confirm", locale, action_url=ACTION)
    ((form, inputs),) = forms(page)
    assert form["method"] == "post" and form["action"] == ACTION
    assert inputs == [{"type": "hidden", "name": "confirm", "value": "yes"}]
    assert f'<html lang="{locale}">' in page
    assert '"def&x=<1>' not in page  # escaped in the attribute
    sms = render_page("unsubscribe_confirm", locale, action_url=ACTION, channel="sms")
    assert ("SMS" if locale == "ja" else "text message") in shown_text(sms)
    assert ("メール" if locale == "ja" else "by email") in shown_text(page)


def test_the_confirm_page_needs_its_action_url() -> None:
    with pytest.raises(ValueError, match="action_url"):
        render_page("unsubscribe_confirm", "ja")


@pytest.mark.parametrize("page", ["unsubscribe_done", "unsubscribe_invalid"])
def test_pages_in_one_language_and_in_both(page: Any) -> None:
    japanese = shown_text(render_page(page, "ja"))
    english = shown_text(render_page(page, "en"))
    both = render_page(page, None)
    assert japanese and english and japanese != english
    assert japanese in shown_text(both) and english in shown_text(both)
    sections = [attrs.get("lang") for tag, attrs in parse(both).elements if tag == "section"]
    assert sections == ["ja", "en"]
    assert re.search(r"(ました|ください)。", japanese)
    assert forms(both) == []


def test_the_invalid_token_page_names_itself_in_both_languages() -> None:
    both = render_page("unsubscribe_invalid", None)
    assert "<title>このリンクは無効です / This link is not valid</title>" in both


# -- marketers' alert -----------------------------------------------------------------------


def test_the_marketers_alert_lists_every_error_with_its_path() -> None:
    rejected = CampaignRejected(
        campaignId="spring-cashback-2027",
        fileKey="campaigns/spring-cashback-2027.yaml",
        errors=[
            ValidationIssue(path="reward.tiered[1].amount", message="must be greater than 0"),
            ValidationIssue(path="$", message="ends_at must be after starts_at"),
        ],
    )
    subject, text = render_marketers_alert(rejected)
    assert subject == "Campaign file rejected: spring-cashback-2027"
    assert "File: campaigns/spring-cashback-2027.yaml" in text
    assert "Campaign: spring-cashback-2027" in text
    assert "- reward.tiered[1].amount: must be greater than 0\n" in text
    assert "- $: ends_at must be after starts_at\n" in text
    assert "2 errors:" in text
    assert rejected.eventId in text


def test_the_alert_subject_fits_sns_whatever_the_file_is_called() -> None:
    rejected = CampaignRejected(
        campaignId=None,
        fileKey="campaigns/春の\nキャンペーン-" + "x" * 200 + ".yaml",
        errors=[ValidationIssue(path="$", message="not YAML: <bad> & worse")],
    )
    subject, text = render_marketers_alert(rejected)
    assert subject.isascii() and subject.isprintable() and len(subject) < 100
    assert subject.startswith("Campaign file rejected: campaigns/??")
    assert subject.endswith("...")
    assert "Campaign: (the file's id could not be read)" in text
    assert "- $: not YAML: <bad> & worse" in text  # plain text: nothing escaped
    assert "1 error:" in text


# -- cold start -------------------------------------------------------------------------------


def test_importing_the_content_modules_loads_neither_jinja2_nor_babel_nor_segno() -> None:
    code = (
        "import sys\n"
        "import functions.notifications.consent, functions.notifications.messages\n"
        "import functions.notifications.rendering, functions.notifications.mime\n"
        "import functions.notifications.sms, functions.notifications.qr\n"
        "print(sorted({'jinja2', 'babel', 'segno', 'markupsafe'} & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


# -- QR ---------------------------------------------------------------------------------------


def test_the_inline_png_draws_the_payloads_symbol_with_its_quiet_zone() -> None:
    import io

    import segno
    from PIL import Image

    payload = f"REBATES1:{CODE}"
    png = qr_png(payload)
    assert qr_png(payload) == png  # the same bytes every time
    symbol = segno.make(payload, error="q", micro=False, boost_error=True)
    modules = symbol.matrix
    size = len(modules) + 2 * 4
    with Image.open(io.BytesIO(png)) as image:
        grey = image.convert("L")
        assert grey.size == (size * 6, size * 6)

        def dark(row: int, column: int) -> bool:
            level = grey.getpixel((column * 6 + 3, row * 6 + 3))
            assert isinstance(level, int)
            return level < 128

        drawn = [[dark(r + 4, c + 4) for c in range(len(modules))] for r in range(len(modules))]
        assert drawn == [[bool(m) for m in row] for row in modules]
        assert not any(dark(r, c) for r in range(4) for c in range(size))  # quiet zone
    with pytest.raises(ValueError):
        qr_png("")


def test_a_locale_without_templates_is_refused() -> None:
    with pytest.raises(ValueError, match="no templates for locale 'fr'"):
        render_email(message("claim_approved"), "fr", unsubscribe_url=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no templates"):
        render_page("unsubscribe_done", "de")  # type: ignore[arg-type]
