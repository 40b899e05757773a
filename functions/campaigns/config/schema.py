"""The JSON Schema of a campaign file (``events/campaign.schema.json``)."""

from __future__ import annotations

from typing import Any

from functions.campaigns.config.campaign import CampaignConfig


def campaign_json_schema() -> dict[str, Any]:
    """The JSON Schema of a campaign file, generated from the models.

    It describes the shape and the main rules for editors; `parse_campaign` stays the
    authority (tier order, uniqueness, limits across sections are checked there only).
    """
    schema = CampaignConfig.model_json_schema(mode="validation")
    schema["title"] = "Rebates campaign file"
    return schema
