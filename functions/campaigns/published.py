"""Published campaign files, parsed once per container.

A version's file never changes once published (a new file is a new version), so its
parsed `CampaignConfig` can be kept as long as the container lives: the functions that
read campaigns (offers, wallet) cache the campaign item itself only briefly, and parse each
version's file once. Bounded, oldest first out, so a container that sees many campaigns
and republishes does not grow without end.
"""

from __future__ import annotations

import threading
from typing import Final

from functions.campaigns.config import CampaignConfig, parse_campaign
from functions.campaigns.models import get_campaign_file

MAX_CACHED_FILES: Final = 256


class PublishedFiles:
    """Parsed files by (campaign id, version); thread-safe."""

    def __init__(self, limit: int = MAX_CACHED_FILES) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._files: dict[tuple[str, int], CampaignConfig] = {}

    def file(self, campaign_id: str, version: int) -> CampaignConfig:
        """The file of `version` of the campaign, parsed; LookupError if there is none."""
        with self._lock:
            cached = self._files.get((campaign_id, version))
        if cached is not None:
            return cached
        document = get_campaign_file(campaign_id, version)
        if document is None:
            # publish_campaign writes the version and the campaign in one transaction.
            raise LookupError(f"campaign {campaign_id} has no version {version}")
        config = parse_campaign(document)
        with self._lock:
            if len(self._files) >= self._limit:
                self._files.pop(next(iter(self._files)))
            self._files[(campaign_id, version)] = config
        return config

    def clear(self) -> None:
        with self._lock:
            self._files.clear()
