"""A `Message` in words: emails (subject, text, HTML, inline images), SMS, web pages.

Templates live in ``templates/<locale>/<template>.jinja``, one file per message and
language holding its subject, its SMS text (transactional messages short enough for one)
and its body. The body is written once with the building blocks of ``_layout/parts.*``
(paragraphs, facts, a code box) and rendered twice: through an HTML environment, which
autoescapes everything and lays it out in tables with inline styles, and through a text
environment into the plain-text part. So the two parts cannot say different things.

Formatting follows the locale and the campaign: amounts with Babel in the currency's ISO
4217 minor unit (``1,000円`` in Japanese, ``¥1,000`` and ``$15.00`` in English), dates and
times in the campaign's zone, with the zone's name wherever a time is shown. A deadline
that falls at local midnight (an exclusive end, as windows are kept) is shown as 23:59 of
the day before, the last minute it is still valid, as people read "until".

Jinja2 and Babel are imported and the environments built on the first render, not at
import: a cold start of a handler that renders nothing pays for neither.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal

from functions.core.clock import format_instant, load_zone
from functions.core.money import Money
from functions.core.vocabulary import Locale
from functions.notifications.messages import Message
from functions.notifications.qr import qr_png
from functions.notifications.sms import Encoding, gsm_friendly, segments

if TYPE_CHECKING:
    import babel
    import jinja2

    from functions.core.event_types import CampaignRejected

__all__ = [
    "LOCALES",
    "InlineImage",
    "Page",
    "RenderedEmail",
    "RenderedSms",
    "format_date",
    "format_datetime",
    "format_deadline",
    "format_money",
    "reason_text",
    "reason_words",
    "render_email",
    "render_marketers_alert",
    "render_page",
    "render_sms",
]

LOCALES: Final[tuple[Locale, ...]] = ("ja", "en")
Page = Literal["unsubscribe_confirm", "unsubscribe_done", "unsubscribe_invalid"]

_TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
_FONTS: Final[Mapping[str, str]] = {
    "ja": (
        "'Hiragino Sans','Hiragino Kaku Gothic ProN','Noto Sans JP','Noto Sans CJK JP',"
        "Meiryo,'Yu Gothic',sans-serif"
    ),
    "en": "Helvetica,Arial,'Noto Sans',sans-serif",
}
# A campaign name shortened to fit an SMS in one segment keeps at least this much.
_MIN_SMS_NAME: Final = 6
# SNS: an SMS-or-email subject is ASCII, one line, under 100 characters.
_SNS_SUBJECT_MAX: Final = 99


@dataclass(frozen=True)
class InlineImage:
    """An image the HTML part shows by ``cid:<content_id>``, carried in the email itself."""

    content_id: str
    filename: str
    png: bytes


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    images: tuple[InlineImage, ...]


@dataclass(frozen=True)
class RenderedSms:
    text: str
    encoding: Encoding
    segments: int


# -- reasons ----------------------------------------------------------------------------


def reason_words(locale: Locale) -> Mapping[str, tuple[str, str]]:
    """The rejection reasons `locale` words, by code: (the sentence an email lists, the
    few words an SMS has room for). From ``templates/<locale>/reasons.jinja``.

    The codes are claims' `Reason` values and the campaign rules' quote reasons a claim
    can carry; a reviewer may give any other snake_case code, which `reason_text` words
    with the locale's fallback.
    """
    return _reasons(_check_locale(locale))[0]


@functools.cache
def _reasons(locale: Locale) -> tuple[Mapping[str, tuple[str, str]], tuple[str, str]]:
    module = _environments().text.get_template(f"{locale}/reasons.jinja").module
    exported = vars(module)  # a template module's attributes are its top-level sets
    return MappingProxyType(dict(exported["reasons"])), tuple(exported["fallback"])


def reason_text(code: str, locale: Locale, *, short: bool = False) -> str:
    """A rejection reason in words; an unknown code gets a general sentence naming it."""
    words, (sentence, brief) = _reasons(_check_locale(locale))
    known = words.get(code)
    if known is None:
        return brief if short else sentence.format(code=code)
    return known[1] if short else known[0]


# -- amounts and dates ------------------------------------------------------------------


def format_money(money: Money, locale: Locale) -> str:
    """``1,000円`` (ja, JPY), ``¥1,000`` (en, JPY), ``$15.00``: the locale's currency format
    with exactly the currency's ISO 4217 decimals (CLDR's differ for some, e.g. IQD)."""
    if locale == "ja" and money.currency == "JPY":
        # The form Japanese shops print; CLDR's is a full-width "￥1,000".
        from babel.numbers import format_decimal

        return format_decimal(money.to_decimal(), format="#,##0", locale="ja") + "円"
    pattern = copy.copy(_babel_locale(locale).currency_formats["standard"])
    pattern.frac_prec = (money.exponent, money.exponent)
    return str(
        pattern.apply(
            money.to_decimal(),
            _babel_locale(locale),
            currency=money.currency,
            currency_digits=False,
        )
    )


def format_date(instant: datetime, locale: Locale, timezone: str) -> str:
    """The local date: ``2027年3月2日(火)``, ``Tue, Mar 2, 2027``."""
    from babel.dates import format_skeleton

    return format_skeleton("yMMMEd", _local(instant, timezone), locale=locale)


def format_datetime(instant: datetime, locale: Locale, timezone: str) -> str:
    """Local date, time and zone: ``Tue, Mar 2, 2027, 9:30 AM (Japan Standard Time)``,
    in Japanese the same order with the zone in full-width parentheses."""
    return _date_time_zone(_local(instant, timezone), locale)


def format_deadline(instant: datetime, locale: Locale, timezone: str) -> str:
    """Like `format_datetime`, for the end of a validity: local midnight reads as 23:59 of
    the day before (the last minute still valid), not as 0:00 of a day that is not."""
    return _date_time_zone(_deadline_local(instant, timezone), locale)


def _format_deadline_short(instant: datetime, locale: Locale, timezone: str) -> str:
    # For an SMS, where there is no room for the year and the zone: ``3月31日 23:59``.
    from babel.dates import format_skeleton

    local = _deadline_local(instant, timezone)
    return f"{format_skeleton('MMMd', local, locale=locale)} {_time(local, locale)}"


def _local(instant: datetime, timezone: str) -> datetime:
    if instant.utcoffset() is None:
        raise ValueError("instants must be timezone-aware")
    return instant.astimezone(load_zone(timezone))


def _deadline_local(instant: datetime, timezone: str) -> datetime:
    local = _local(instant, timezone)
    if local.timetz().replace(tzinfo=None) == time(0):
        return _local(instant - timedelta(minutes=1), timezone)
    return local


def _time(local: datetime, locale: Locale) -> str:
    from babel.dates import format_time

    # Our own patterns: CLDR's short English time puts a narrow no-break space before
    # "PM", which some mail clients' fonts lack and which would make an SMS UCS-2.
    return str(format_time(local, "H:mm" if locale == "ja" else "h:mm a", locale=locale))


def _date_time_zone(local: datetime, locale: Locale) -> str:
    from babel.dates import format_datetime as babel_datetime
    from babel.dates import format_skeleton

    day = format_skeleton("yMMMEd", local, locale=locale)
    zone = babel_datetime(local, "zzzz", locale=locale)
    if locale == "ja":
        return f"{day} {_time(local, locale)}{_JA_OPEN}{zone}{_JA_CLOSE}"
    return f"{day}, {_time(local, locale)} ({zone})"


_JA_OPEN: Final = "\N{FULLWIDTH LEFT PARENTHESIS}"
_JA_CLOSE: Final = "\N{FULLWIDTH RIGHT PARENTHESIS}"


@functools.cache
def _babel_locale(locale: str) -> babel.Locale:
    import babel

    return babel.Locale.parse(locale)


# -- environments -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Environments:
    html: jinja2.Environment
    text: jinja2.Environment


@functools.cache
def _environments() -> _Environments:
    import jinja2
    from markupsafe import Markup

    loader = jinja2.FileSystemLoader(_TEMPLATES)

    def with_locale(
        format_: Any,
    ) -> Any:
        # Filters read the locale and the campaign's zone from the render context, so
        # one environment serves every language.
        @jinja2.pass_context
        def apply(context: jinja2.runtime.Context, value: datetime) -> str:
            return str(format_(value, context["locale"], context["timezone"]))

        return apply

    @jinja2.pass_context
    def money(context: jinja2.runtime.Context, value: Money) -> str:
        return format_money(value, context["locale"])

    @jinja2.pass_context
    def reason(context: jinja2.runtime.Context, code: str) -> str:
        return reason_text(code, context["locale"])

    @jinja2.pass_context
    def reason_short(context: jinja2.runtime.Context, code: str) -> str:
        return reason_text(code, context["locale"], short=True)

    def build(*, autoescape: bool) -> jinja2.Environment:
        environment = jinja2.Environment(
            loader=loader,
            # The text environment renders plain-text parts, subjects and SMS, which no
            # browser reads as HTML; escaping there would show "&amp;" to the customer.
            autoescape=autoescape,  # noqa: S701
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            # Templates ship with the code and never change under a running function.
            auto_reload=False,
        )
        environment.filters.update(
            money=money,
            date=with_locale(format_date),
            datetime=with_locale(format_datetime),
            deadline=with_locale(format_deadline),
            deadline_short=with_locale(_format_deadline_short),
            reason=reason,
            reason_short=reason_short,
        )
        # Constants with quotes in them, written into style attributes as they are.
        environment.globals["fonts"] = {
            key: Markup(value)  # noqa: S704  # our constants, no input
            for key, value in _FONTS.items()
        }
        return environment

    return _Environments(html=build(autoescape=True), text=build(autoescape=False))


def _block(template: jinja2.Template, name: str, variables: Mapping[str, Any]) -> str:
    return "".join(template.blocks[name](template.new_context(dict(variables))))


def _one_line(text: str) -> str:
    return " ".join(text.split())


_BLANK_LINES: Final = re.compile(r"\n{3,}")


def _tidy_text(text: str) -> str:
    lines = "\n".join(line.rstrip() for line in text.strip().splitlines())
    return _BLANK_LINES.sub("\n\n", lines) + "\n"


def _check_locale(locale: str) -> Locale:
    if locale == "ja":
        return "ja"
    if locale == "en":
        return "en"
    raise ValueError(f"no templates for locale {locale!r}; there are {', '.join(LOCALES)}")


# -- emails and SMS ---------------------------------------------------------------------


def _codes(context: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for key in ("code", "next_code"):
        code = context.get(key)
        if code is not None:
            yield code


def _images(message: Message) -> tuple[InlineImage, ...]:
    return tuple(
        InlineImage(
            content_id=f"qr-{code['code']}@rebates",
            filename=f"qr-{code['code']}.png",
            png=qr_png(code["qr_payload"]),
        )
        for code in _codes(message.context)
        if code.get("qr_payload")
    )


def _variables(
    message: Message,
    locale: Locale,
    *,
    unsubscribe_url: str | None,
    images: tuple[InlineImage, ...] = (),
) -> dict[str, Any]:
    return {
        **message.context,
        "locale": locale,
        "purpose": message.purpose,
        "unsubscribe_url": unsubscribe_url,
        "qr_cid": images[0].content_id if images else None,
    }


def _name(message: Message, locale: Locale) -> str:
    return f"{_check_locale(locale)}/{message.template}.jinja"


def render_email(message: Message, locale: Locale, *, unsubscribe_url: str | None) -> RenderedEmail:
    """The email for `message` in `locale`. A marketing message needs `unsubscribe_url`
    (the footer links it); a transactional one shows none."""
    if message.purpose == "marketing" and not unsubscribe_url:
        raise ValueError(f"{message.template} is marketing: it needs an unsubscribe_url")
    name = _name(message, locale)
    environments = _environments()
    images = _images(message)
    variables = _variables(message, locale, unsubscribe_url=unsubscribe_url, images=images)
    text_template = environments.text.get_template(name)
    text_variables = {**variables, "layout": "_layout/email.txt", "parts": "_layout/parts.txt"}
    subject = _one_line(_block(text_template, "subject", text_variables))
    text = _tidy_text(text_template.render(text_variables))
    html = environments.html.get_template(name).render(
        {
            **variables,
            "subject": subject,
            "layout": "_layout/email.html",
            "parts": "_layout/parts.html",
        }
    )
    return RenderedEmail(subject=subject, text=text, html=html + "\n", images=images)


def render_sms(message: Message, locale: Locale) -> RenderedSms | None:
    """The SMS for `message`, or None when it has no SMS part (marketing never has one).

    When the text would take more than one segment, the campaign name is shortened
    (down to a few characters) until it fits; if nothing fits, the full text is sent in
    several segments.
    """
    if "sms" not in message.channels or message.purpose != "transactional":
        return None
    template = _environments().text.get_template(_name(message, locale))
    if "sms" not in template.blocks:
        return None
    variables = _variables(message, locale, unsubscribe_url=None)

    def attempt(campaign_name: Any) -> RenderedSms:
        text = gsm_friendly(
            _one_line(_block(template, "sms", {**variables, "campaign_name": campaign_name}))
        )
        encoding, count = segments(text)
        return RenderedSms(text=text, encoding=encoding, segments=count)

    full = attempt(variables["campaign_name"])
    name = variables["campaign_name"]
    if full.segments == 1 or not isinstance(name, str):
        return full
    for keep in range(len(name) - 1, _MIN_SMS_NAME - 1, -1):
        shortened = attempt(name[:keep].rstrip() + "…")
        if shortened.segments == 1:
            return shortened
    return full


# -- pages and alerts -------------------------------------------------------------------

_PAGE_NEEDS: Final[Mapping[str, frozenset[str]]] = {
    "unsubscribe_confirm": frozenset({"action_url"}),
    "unsubscribe_done": frozenset(),
    "unsubscribe_invalid": frozenset(),
}


def render_page(page: Page, locale: Locale | None, **context: Any) -> str:
    """A whole HTML page in `locale`, or in Japanese and English when None (a bad token
    tells no language).

    ``unsubscribe_confirm`` needs ``action_url``: the URL the page was opened at (token
    included), which its button posts ``confirm=yes`` to, so the service tells a person's
    click from a mail client's RFC 8058 one-click POST. ``channel`` (``email`` unless
    given) words what is unsubscribed from.
    """
    missing = _PAGE_NEEDS[page] - context.keys()
    if missing:
        raise ValueError(f"page {page} needs {', '.join(sorted(missing))}")
    locales = LOCALES if locale is None else (_check_locale(locale),)
    environment = _environments().html
    sections = []
    for each in locales:
        module = environment.get_template(f"{each}/pages/{page}.jinja").make_module(
            {"channel": "email", **context, "locale": each}
        )
        sections.append({"locale": each, "title": vars(module)["title"], "body": module})
    return environment.get_template("_layout/page.html").render(sections=sections)


def render_marketers_alert(detail: CampaignRejected) -> tuple[str, str]:
    """(subject, text) in English for the marketers' topic: which file, which campaign,
    each error with its path. The subject fits SNS's rules (ASCII, one line, < 100)."""
    subject = _sns_subject(f"Campaign file rejected: {detail.campaignId or detail.fileKey}")
    text = (
        _environments()
        .text.get_template("en/marketers_alert.jinja")
        .render(
            file_key=detail.fileKey,
            campaign_id=detail.campaignId,
            occurred_at=format_instant(detail.occurredAt),
            event_id=detail.eventId,
            errors=[{"path": error.path, "message": error.message} for error in detail.errors],
        )
    )
    return subject, _tidy_text(text)


def _sns_subject(text: str) -> str:
    ascii_only = "".join(char if " " <= char <= "~" else "?" for char in _one_line(text))
    if len(ascii_only) <= _SNS_SUBJECT_MAX:
        return ascii_only
    return ascii_only[: _SNS_SUBJECT_MAX - 3] + "..."
