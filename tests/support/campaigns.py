"""Campaigns published as the loader publishes them once it has decided to (no S3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from functions.campaigns.config import CampaignConfig, parse_campaign
from functions.campaigns.dal import CampaignStore
from functions.campaigns.logic import Publish, SourceFile


def publish_campaign(
    document: dict[str, Any], at: datetime, *, version: int = 1, store: CampaignStore | None = None
) -> CampaignConfig:
    """Publish `document` as `version` at `at`; its parsed file."""
    config = parse_campaign(document)
    source = SourceFile(key=f"campaigns/{config.id}.json", etag=f"etag-{version}")
    (store or CampaignStore()).publish(Publish(config=config, version=version, source=source), at)
    return config
