"""Who may be sent what: marketing needs consent, and so does a promotion inside a
transactional message where the GDPR applies.

- Marketing messages (reminders, a post-purchase code sent on its own) go only to
  customers with ``marketingOptIn``.
- Transactional messages (claims, cashback, a code the customer asked for) go to every
  customer with a contact: they are the service they use.
- A promotion carried by a transactional message (the next-purchase code in a purchase
  thank-you) needs consent in the EU/EEA and the UK, where the GDPR and the ePrivacy
  rules keep transactional mail free of marketing, but not elsewhere (CAN-SPAM, and
  Japan's Act on Specified Electronic Mail, allow it as secondary content of a
  transactional message). An unknown country is treated as one of the strict ones: a
  customer who never told us could live there.

Countries are ISO 3166-1 alpha-2 codes. Profiles store them upper-case; a lower-case or
padded code is read as the same country rather than as an unknown one, so a sloppy
caller can never turn an EU customer into an "elsewhere" one.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["EU_EEA_UK", "Purpose", "may_include_promotion", "may_send"]

Purpose = Literal["transactional", "marketing"]

EU_EEA_UK: Final[frozenset[str]] = frozenset(
    {
        # The 27 member states of the European Union.
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
        "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
        # The rest of the European Economic Area.
        "IS", "LI", "NO",
        # The United Kingdom (UK GDPR).
        "GB",
    }
)  # fmt: skip

# Codes outside that list where the same law applies: parts of member states that ISO
# 3166 lists on their own (Aland; the French outermost regions), and the codes the EU
# itself uses for two members (EL for Greece, UK for the United Kingdom, both reserved
# in ISO 3166 for exactly that use).
_ALSO_STRICT: Final[frozenset[str]] = frozenset(
    {"AX", "GF", "GP", "MQ", "RE", "YT", "MF", "EL", "UK"}
)


def _strict_consent_applies(country: str | None) -> bool:
    if country is None:
        return True
    code = country.strip().upper()
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        return True  # not a country code: as unknown as None
    return code in EU_EEA_UK or code in _ALSO_STRICT


def may_include_promotion(*, marketing_opt_in: bool, country: str | None) -> bool:
    """Whether a transactional message may carry a promotion for this customer."""
    return marketing_opt_in or not _strict_consent_applies(country)


def may_send(purpose: Purpose, *, marketing_opt_in: bool) -> bool:
    """Whether a message of `purpose` may be sent at all."""
    return purpose == "transactional" or marketing_opt_in
