"""Valid campaign documents (as a JSON file would give them) for the campaign tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from functions.campaigns.config import CampaignConfig, parse_campaign

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "campaigns"

_REBATE: dict[str, Any] = {
    "id": "spring-trail-2027",
    "name": "Spring trail shoes",
    "kind": "rebate",
    "currency": "JPY",
    "timezone": "Asia/Tokyo",
    "starts_at": "2027-03-01T00:00:00+09:00",
    "ends_at": "2027-04-01T00:00:00+09:00",
    "budget": {"amount": 5_000_000, "max_rewards": 10_000},
    "eligibility": {"channels": ["online", "in_store"], "skus": ["TRAIL-01", "TRAIL-02"]},
    "reward": {"fixed": 1000},
    "claims": {"window_days": 30},
    "offers": [
        {
            "id": "TRAIL10",
            "channel": "online",
            "discount": {"percentage": 10, "max": 2000},
            "codes": {"mode": "unique", "prefix": "TRAIL", "count": 5000},
            "usage": {"max_total": 5000, "per_customer": 1},
        }
    ],
}


def rebate(**changes: Any) -> dict[str, Any]:
    """A valid rebate campaign document; top-level keys in ``changes`` replace its own
    (a value of None removes the key)."""
    document = copy.deepcopy(_REBATE)
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return document


def offer(**changes: Any) -> dict[str, Any]:
    """A valid offer of the rebate document, with ``changes`` applied."""
    return {**copy.deepcopy(_REBATE["offers"][0]), **changes}


def campaign(**changes: Any) -> CampaignConfig:
    return parse_campaign(rebate(**changes))
