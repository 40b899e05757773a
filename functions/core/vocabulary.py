"""The small closed vocabularies every layer speaks: kinds, channels, locales.

Plain `Literal` aliases in a module of their own, so a request model or a rule can name a
sales channel without importing the event contracts (`functions.core.event_types`
builds some fifty pydantic models at import, a cost the offers API need not pay).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["CampaignKind", "Locale", "NotificationChannel", "OfferChannel", "SalesChannel"]

CampaignKind = Literal["rebate", "cashback", "offer"]
SalesChannel = Literal["online", "in_store"]
OfferChannel = Literal["online", "in_store", "both"]
NotificationChannel = Literal["email", "sms"]
Locale = Literal["ja", "en"]
