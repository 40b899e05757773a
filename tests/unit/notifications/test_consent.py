"""The promotion rule: who may get a promotion inside a transactional message."""

from __future__ import annotations

import pytest

from functions.notifications.consent import EU_EEA_UK, may_include_promotion, may_send

EU = ("AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
      "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE")  # fmt: skip


def test_the_strict_countries_are_the_eu_the_eea_and_the_uk() -> None:
    assert len(EU) == 27
    assert frozenset((*EU, "IS", "LI", "NO", "GB")) == EU_EEA_UK
    assert all(len(code) == 2 and code.isupper() for code in EU_EEA_UK)


@pytest.mark.parametrize(
    ("marketing_opt_in", "country", "allowed"),
    [
        # Opted in: a promotion may ride along everywhere.
        (True, "DE", True),
        (True, "NO", True),
        (True, "GB", True),
        (True, "JP", True),
        (True, "US", True),
        (True, None, True),
        # Not opted in: only where transactional mail may carry secondary marketing.
        (False, "DE", False),  # EU
        (False, "FR", False),
        (False, "IS", False),  # EEA
        (False, "LI", False),
        (False, "NO", False),
        (False, "GB", False),  # UK
        (False, "JP", True),  # elsewhere
        (False, "US", True),
        (False, "CH", True),
        (False, None, False),  # unknown: could be anywhere, so the strict rule
        # Lower-case or padded codes are the same countries, never "unknown elsewhere".
        (False, "de", False),
        (False, " gb ", False),
        (False, "jp", True),
        (False, "Us", True),
        # Not a country code at all: as unknown as None.
        (False, "", False),
        (False, "DEU", False),
        (False, "1A", False),
        # Codes the EU uses for its members, and parts of members ISO lists apart.
        (False, "EL", False),
        (False, "UK", False),
        (False, "RE", False),
        (False, "AX", False),
    ],
)
def test_may_include_promotion(marketing_opt_in: bool, country: str | None, allowed: bool) -> None:
    assert may_include_promotion(marketing_opt_in=marketing_opt_in, country=country) is allowed


@pytest.mark.parametrize(
    ("purpose", "marketing_opt_in", "allowed"),
    [
        ("transactional", True, True),
        ("transactional", False, True),
        ("marketing", True, True),
        ("marketing", False, False),
    ],
)
def test_may_send(purpose: str, marketing_opt_in: bool, allowed: bool) -> None:
    assert may_send(purpose, marketing_opt_in=marketing_opt_in) is allowed  # type: ignore[arg-type]
