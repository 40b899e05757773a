"""Contact details as a profile stores them: an email address, an E.164 phone number, a
country code. Pure: the rules of well-kept libraries, no I/O.

Each function returns the stored form or raises `InvalidContact` with a message for the
storefront; the request models turn that into a 400 naming the field
(`functions.notifications.schemas`).
"""

from __future__ import annotations

import functools
from typing import Final

__all__ = ["InvalidContact", "countries", "normalise_country", "normalise_email", "normalise_phone"]

# Longer than any number written with spaces and dashes; longer input is not parsed.
MAX_PHONE_INPUT: Final = 32
# CLDR's two-letter territory codes that are not ISO 3166-1 countries: groupings (EU, EZ,
# UN, QO: Outlying Oceania), codes ISO reserves without assigning (AC, CP, CQ, DG, EA, IC,
# TA), user-assigned ones (XA, XB: pseudo-locales, XK: Kosovo) and ZZ (unknown region).
_NOT_COUNTRIES: Final = frozenset(
    {"AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "IC", "QO", "TA", "UN", "XA", "XB", "XK", "ZZ"}
)


class InvalidContact(ValueError):
    """A contact detail that cannot be stored; the message says why, for the storefront."""


def normalise_email(value: str) -> str:
    """The address as email-validator normalises it (domain lower-cased, IDNA, NFC).

    No DNS lookup (`check_deliverability=False`): a profile is saved at checkout, where
    waiting on DNS is not acceptable; SES tells us about bad mailboxes when it matters.
    """
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise InvalidContact(f"not a valid email address: {error}") from None


def normalise_phone(value: str, country: str | None) -> str:
    """The number in E.164 (``+819012345678``); written nationally, it is read as a number
    of `country` (which then must be given)."""
    import phonenumbers

    text = value.strip()
    if not text or len(text) > MAX_PHONE_INPUT:
        raise InvalidContact(f"a phone number is 1-{MAX_PHONE_INPUT} characters")
    if not text.startswith("+") and country is None:
        raise InvalidContact(
            "not an international number: write it in E.164 (+819012345678) or give country"
        )
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else country)
    except phonenumbers.NumberParseException as error:
        raise InvalidContact(f"not a phone number: {error}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidContact("not a valid phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_country(value: str) -> str:
    """The ISO 3166-1 alpha-2 code, upper-case (``jp`` -> ``JP``)."""
    code = value.strip().upper()
    if code not in countries():
        raise InvalidContact("not an ISO 3166-1 alpha-2 country code, e.g. JP, US, DE")
    return code


@functools.cache
def countries() -> frozenset[str]:
    """Every ISO 3166-1 alpha-2 code (249), from CLDR's territories as Babel ships them.

    Loaded on first use: Babel reads its locale data from disk, which only a profile with
    a country needs.
    """
    from babel import Locale

    territories = Locale("en").territories
    return frozenset(
        code
        for code in territories
        if isinstance(code, str)
        and len(code) == 2
        and code.isalpha()
        and code not in _NOT_COUNTRIES
    )
