"""Campaign files: what an upload or a deletion in the campaigns bucket means.

Pure rules, no AWS. The loader handler reads the file and the published state through
the data layer, asks `decide` what to do, and carries the answer out.

- Keys. The loader answers every file under ``campaigns/`` (`is_campaign_upload`):
  ``<anything>.yaml|.yml|.json``, the suffix in any case, is a campaign file, and any
  other is rejected with a report saying so (the suffix rule is the file reader's,
  `read_campaign_document`, which ``rebates campaigns validate`` runs too). The report of
  ``<key>`` is ``reports/<key>.result.json`` (`report_key`), outside ``campaigns/`` so
  that writing it triggers nothing.
- Decisions (`decide`). A file that does not validate, or that breaks a version rule,
  is a `Reject` listing every error with its path. Otherwise it is a `Publish` of version
  ``previous + 1`` (1 for a new campaign), or `Unchanged` when the campaign already
  serves exactly this content from this key: the same object delivered again (S3
  delivers at least once) or a retry after a crash half-way through the effects. The
  handler then finishes the idempotent steps (codes, event, report) without a new version.
- Version rules, for a campaign already published: a new version may not change
  ``currency``, may not move a ``starts_at`` that has passed, and may not lower
  ``budget.amount`` / ``budget.max_rewards`` below what is already used. Offer ids and
  shared codes are global: one owned by another campaign (offer) is refused at its path.
- Replays (`already_handled`). The report records the revision (S3 version id, else
  ETag) of the file it answers; the same revision delivered again is skipped outright.
- What the outside world sees: the report document (`report_document`), the events
  (`published_event`, `rejected_event`, with ids derived from what they are about, so a
  retry re-sends the same ids and consumers dedupe) and the marketers' message
  (`rejection_message`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from functions.campaigns.config import CampaignConfig, CampaignFileError, OfferConfig
from functions.campaigns.states import ACTIVE
from functions.core.clock import format_instant
from functions.core.event_types import CampaignPublished, CampaignRejected, ValidationIssue

__all__ = [
    "CAMPAIGNS_PREFIX",
    "REPORTS_PREFIX",
    "REPORT_SUFFIX",
    "Decision",
    "Publish",
    "PublishedCampaign",
    "Reject",
    "SourceFile",
    "Unchanged",
    "already_handled",
    "code_prefix",
    "decide",
    "error_paths",
    "is_campaign_upload",
    "published_event",
    "rejected_event",
    "rejection_message",
    "report_document",
    "report_key",
]

CAMPAIGNS_PREFIX: Final = "campaigns/"
REPORTS_PREFIX: Final = "reports/"
REPORT_SUFFIX: Final = ".result.json"
# CampaignRejected carries at most this many errors; the report has them all.
MAX_EVENT_ERRORS: Final = 100
# SNS: a subject is at most 100 printable ASCII characters; the message stays far below
# the 256 KiB limit by listing at most this many errors.
_MAX_SUBJECT: Final = 100
_MAX_MESSAGE_ERRORS: Final = 200


# -- keys -------------------------------------------------------------------------------


def is_campaign_upload(key: str) -> bool:
    """Whether the loader answers `key`: any file under ``campaigns/``, whatever its name
    (one it cannot take gets a report saying why), but not a folder (``campaigns/teams/``,
    as the S3 console creates one), which is no file to report on."""
    return key.startswith(CAMPAIGNS_PREFIX) and not key.endswith("/")


def report_key(key: str) -> str:
    """``campaigns/spring.yaml`` -> ``reports/campaigns/spring.yaml.result.json``."""
    return f"{REPORTS_PREFIX}{key}{REPORT_SUFFIX}"


# -- inputs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    """One revision of an uploaded campaign file."""

    key: str
    etag: str
    # None when the bucket is not versioned (the campaigns bucket is).
    version_id: str | None = None

    @property
    def revision(self) -> str:
        """What tells this upload from another of the same key: its version id, else ETag."""
        return self.version_id or self.etag.strip('"')


@dataclass(frozen=True)
class PublishedCampaign:
    """What the version rules and the replay check need of the published campaign."""

    campaign_id: str
    version: int
    status: str
    currency: str
    starts_at: datetime
    budget_used_amount: int
    budget_used_count: int
    source_key: str
    published_at: datetime
    # The published file as stored (`CampaignConfig.to_document()`).
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def offer_ids(self) -> tuple[str, ...]:
        offers = self.config.get("offers") or ()
        return tuple(str(offer["id"]) for offer in offers if isinstance(offer, Mapping))


# -- decisions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Publish:
    """Store `config` as `version` of its campaign, with its offers."""

    config: CampaignConfig
    version: int
    source: SourceFile
    previous: PublishedCampaign | None = None

    @property
    def dropped_offer_ids(self) -> tuple[str, ...]:
        """Offers of the previous version that this one no longer has (to archive)."""
        if self.previous is None:
            return ()
        kept = {offer.id for offer in self.config.offers}
        return tuple(offer_id for offer_id in self.previous.offer_ids if offer_id not in kept)


@dataclass(frozen=True)
class Unchanged:
    """The campaign already serves this very file, from this key: no new version."""

    config: CampaignConfig
    published: PublishedCampaign

    @property
    def version(self) -> int:
        return self.published.version


@dataclass(frozen=True)
class Reject:
    """The file cannot be published; nothing changes. `campaign_id` is the file's id when
    it could be read."""

    campaign_id: str | None
    errors: tuple[ValidationIssue, ...]


Decision = Publish | Unchanged | Reject


def already_handled(source: SourceFile, reported_revision: str | None) -> bool:
    """Whether the key's report already answers this very revision (a replayed delivery)."""
    return reported_revision is not None and reported_revision == source.revision


def decide(
    source: SourceFile,
    loaded: CampaignConfig | CampaignFileError,
    published: PublishedCampaign | None,
    now: datetime,
    *,
    offer_owners: Mapping[str, str] | None = None,
    code_owners: Mapping[str, str] | None = None,
) -> Decision:
    """What to do with a file: the parsed `loaded` config (or its file errors), given the
    campaign as published now (None: never published).

    `offer_owners` maps the file's offer ids that already exist to their campaign;
    `code_owners` maps its shared codes that already exist to their offer.
    """
    if isinstance(loaded, CampaignFileError):
        return Reject(loaded.campaign_id, tuple(_issue(error) for error in loaded.errors))
    config = loaded
    errors = [
        *_ownership_errors(config, offer_owners or {}, code_owners or {}),
        *(_version_errors(config, published, now) if published is not None else ()),
    ]
    if errors:
        return Reject(config.id, tuple(errors))
    if published is None:
        return Publish(config, 1, source)
    if (
        published.status == ACTIVE
        and published.source_key == source.key
        and dict(published.config) == config.to_document()
    ):
        return Unchanged(config, published)
    return Publish(config, published.version + 1, source, previous=published)


def _issue(error: Mapping[str, str]) -> ValidationIssue:
    return ValidationIssue(path=error["path"], message=error["message"])


def _version_errors(
    config: CampaignConfig, published: PublishedCampaign, now: datetime
) -> list[ValidationIssue]:
    errors = []
    running = f"version {published.version} of {published.campaign_id}"
    if config.currency != published.currency:
        errors.append(
            ValidationIssue(
                path="currency",
                message=f"a new version cannot change the currency: {running} is in "
                f"{published.currency}",
            )
        )
    if published.starts_at <= now and config.starts_at != published.starts_at:
        errors.append(
            ValidationIssue(
                path="starts_at",
                message=f"the campaign started at {format_instant(published.starts_at)}: a "
                "start that has passed cannot move",
            )
        )
    amount, max_rewards = config.budget.amount, config.budget.max_rewards
    if amount is not None and amount < published.budget_used_amount:
        errors.append(
            ValidationIssue(
                path="budget.amount",
                message=f"{amount} is below the {published.budget_used_amount} already used: "
                "a budget cannot be lowered below what is used",
            )
        )
    if max_rewards is not None and max_rewards < published.budget_used_count:
        errors.append(
            ValidationIssue(
                path="budget.max_rewards",
                message=f"{max_rewards} is below the {published.budget_used_count} rewards "
                "already given: a budget cannot be lowered below what is used",
            )
        )
    return errors


def _ownership_errors(
    config: CampaignConfig, offer_owners: Mapping[str, str], code_owners: Mapping[str, str]
) -> list[ValidationIssue]:
    errors = []
    own_offers = {offer.id for offer in config.offers}
    for index, offer in enumerate(config.offers):
        owner = offer_owners.get(offer.id)
        if owner is not None and owner != config.id:
            errors.append(
                ValidationIssue(
                    path=f"offers[{index}].id",
                    message=f"offer {offer.id} belongs to campaign {owner}: offer ids are "
                    "unique across all campaigns",
                )
            )
        code = offer.codes.code if offer.codes.mode == "shared" else None
        holder = code_owners.get(code) if code is not None else None
        if code is not None and holder is not None and holder != offer.id:
            where = "" if holder in own_offers else " of another campaign"
            errors.append(
                ValidationIssue(
                    path=f"offers[{index}].codes.code",
                    message=f"code {code} is already used by offer {holder}{where}: codes "
                    "are unique across all offers",
                )
            )
    return errors


def code_prefix(offer: OfferConfig) -> str:
    """The prefix of an offer's unique codes: the file's, else made from the offer id
    (upper-case letters and digits, at most 12), else ``CODE``."""
    if offer.codes.prefix:
        return offer.codes.prefix
    derived = re.sub(r"[^A-Z0-9]", "", offer.id.upper())[:12]
    return derived or "CODE"


# -- what the outside world sees --------------------------------------------------------


def report_document(
    decision: Decision, codes_retired: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """The report object's JSON (DESIGN "Campaign file").

    A published version that retired codes (a shared code replaced, unissued codes beyond
    a lowered ``codes.count``) adds ``codesRetired``: offer id -> codes it retired, for
    the offers that retired any. DESIGN's keys are unchanged, and a report without it
    means nothing was retired.
    """
    if isinstance(decision, Reject):
        return {
            "status": "rejected",
            "campaignId": decision.campaign_id,
            "version": None,
            "errors": [error.model_dump() for error in decision.errors],
        }
    document: dict[str, Any] = {
        "status": "published",
        "campaignId": decision.config.id,
        "version": decision.version,
        "errors": [],
    }
    retired = {offer_id: count for offer_id, count in (codes_retired or {}).items() if count}
    if retired:
        document["codesRetired"] = dict(sorted(retired.items()))
    return document


def _event_id(*parts: str) -> str:
    """A stable event id for the fact `parts` name: ``evt_`` and 26 base32 characters."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return "evt_" + base64.b32encode(digest).decode()[:26]


def published_event(
    config: CampaignConfig, version: int, published_at: datetime, file_key: str
) -> CampaignPublished:
    """`CampaignPublished` for `version`: the same id and time however often it is sent."""
    return CampaignPublished(
        eventId=_event_id("CampaignPublished", config.id, str(version)),
        occurredAt=published_at,
        campaignId=config.id,
        version=version,
        kind=config.kind,
        name=config.name,
        currency=config.currency,
        timezone=config.timezone,
        startsAt=config.starts_at,
        endsAt=config.ends_at,
        fileKey=file_key,
    )


def rejected_event(source: SourceFile, decision: Reject, now: datetime) -> CampaignRejected:
    """`CampaignRejected` for this revision of the file (its id is the revision's)."""
    return CampaignRejected(
        eventId=_event_id("CampaignRejected", source.key, source.revision),
        occurredAt=now,
        campaignId=decision.campaign_id,
        fileKey=source.key,
        errors=list(decision.errors[:MAX_EVENT_ERRORS]),
    )


def rejection_message(source: SourceFile, decision: Reject, report_uri: str) -> tuple[str, str]:
    """Subject and text telling marketers why a file was rejected, one line per error."""
    subject = _ascii(f"Rejected: {source.key}")
    if len(subject) > _MAX_SUBJECT:
        subject = subject[: _MAX_SUBJECT - 3] + "..."
    campaign = decision.campaign_id or "unknown (the file's id could not be read)"
    count = len(decision.errors)
    lines = [
        f"The campaign file {source.key} was rejected; nothing was changed.",
        f"Campaign: {campaign}",
        f"Report: {report_uri}",
        "",
        f"{count} error{'s' if count != 1 else ''}:",
        *(f"- {error.path}: {error.message}" for error in decision.errors[:_MAX_MESSAGE_ERRORS]),
    ]
    if count > _MAX_MESSAGE_ERRORS:
        lines.append(f"... and {count - _MAX_MESSAGE_ERRORS} more: see the report.")
    lines += ["", "Fix the file and upload it again (check it first: rebates campaigns validate)."]
    return subject, "\n".join(lines)


def _ascii(text: str) -> str:
    # SNS subjects: printable ASCII, no line breaks; anything else becomes "?".
    return "".join(char if " " <= char <= "~" else "?" for char in text)


def error_paths(errors: Sequence[ValidationIssue]) -> list[str]:
    """The paths of `errors`, for logs."""
    return [error.path for error in errors]
