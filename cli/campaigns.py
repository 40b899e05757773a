"""`rebates campaigns validate FILE`: the upload's validation, offline, before uploading.

The same models and rules as the loader in the campaigns bucket, so a file that passes
here is published there (unless it clashes with what is already live: a running
campaign's currency, an offer id owned by another campaign, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from functions.campaigns.config import CampaignConfig, CampaignFileError, load_campaign_file


def check_file(path: Path) -> CampaignConfig:
    """The validated campaign in ``path``; raises `CampaignFileError` or `OSError`."""
    return load_campaign_file(path.name, path.read_bytes())


def validate_file(path: Path) -> list[dict[str, str]]:
    """Every error in the campaign file at ``path`` (``[]`` when valid).

    An unreadable file (missing, a directory) raises `OSError`: it is not a campaign
    file with mistakes, and the caller says so differently.
    """
    try:
        check_file(path)
    except CampaignFileError as error:
        return error.errors
    return []


def summary(config: CampaignConfig) -> str:
    offers = len(config.offers)
    return f"{config.id} ({config.kind}, {offers} offer{'' if offers == 1 else 's'})"


def run_validate(path: Path, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Print ``OK: ...`` or each error as ``<path>: <message>``; the exit code.

    ``out`` and ``err`` default to the streams current at the call (not at import).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        config = check_file(path)
    except OSError as error:
        print(f"error: cannot read {path}: {error.strerror or error}", file=err)
        return 1
    except CampaignFileError as error:
        for problem in error.errors:
            print(f"{problem['path']}: {problem['message']}", file=out)
        count = len(error.errors)
        print(f"{path}: invalid, {count} error{'' if count == 1 else 's'}", file=err)
        return 1
    print(f"OK: {summary(config)}", file=out)
    return 0
