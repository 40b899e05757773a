"""The profile API's request and response bodies.

Field names are camelCase, as in the JSON. Contact details are checked and normalised
here (`functions.notifications.contacts`), so a bad one is a 400 naming its field
(``body.phone``) in the contract's error shape, and what reaches the store is the stored
form: the normalised address, E.164, the upper-case country code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from functions.core.vocabulary import Locale
from functions.notifications.contacts import (
    InvalidContact,
    normalise_country,
    normalise_email,
    normalise_phone,
)

__all__ = ["ProfileRequest", "ProfileView"]

# RFC 5321's limit on a path; longer input is refused before the validator parses it.
_MAX_EMAIL_INPUT = 320


class ProfileRequest(BaseModel):
    """``PUT /v1/customers/{customerId}/profile``: the whole profile (absent: none)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: Annotated[str, Field(min_length=3, max_length=_MAX_EMAIL_INPUT)] | None = None
    # Declared before `phone`, whose national form it lets us read.
    country: Annotated[str, Field(min_length=2, max_length=2)] | None = Field(
        default=None, description="ISO 3166-1 alpha-2, any case; stored upper-case."
    )
    phone: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None,
        description="E.164 (+819012345678), or national with `country`; stored in E.164.",
    )
    locale: Locale
    marketingOptIn: StrictBool

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return None if value is None else _checked(normalise_email, "invalid_email", value)

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        return None if value is None else _checked(normalise_country, "invalid_country", value)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        country = info.data.get("country")
        return _checked(lambda text: normalise_phone(text, country), "invalid_phone", value)


def _checked(normalise: Any, kind: str, value: str) -> str:
    try:
        return str(normalise(value))
    except InvalidContact as error:
        # A custom error keeps the message as written (no "Value error, " prefix).
        raise PydanticCustomError(kind, "{reason}", {"reason": str(error)}) from None


class ProfileView(BaseModel):
    """A stored profile, as GET and PUT answer it."""

    customerId: str
    email: str | None
    phone: str | None
    locale: Locale
    country: str | None
    marketingOptIn: bool
    consentEntryId: str | None = Field(
        description="The consent log entry recording the current marketingOptIn."
    )
    updatedAt: datetime
