"""The campaign loader: S3 notifications on ``campaigns/`` publish, reject or archive.

Invoked asynchronously by S3 (ObjectCreated:* and ObjectRemoved:*) for every object
under ``campaigns/``: S3 matches a filter's suffix case-sensitively, so the loader, not
the bucket, tells a campaign file (``.yaml``, ``.yml`` or ``.json``, in any case) from any
other file, which is rejected with a report saying why.

A failure raises: Lambda retries the event twice, then its DLQ keeps it with the cause.
Every step is safe to repeat, and S3 may deliver a notification more than once, so:

- the file read is the key's *current* revision, not the one the record names: deliveries
  out of order, or of a revision since replaced, converge on what the bucket holds now
  (and a created file that is gone again is left to its deletion);
- a revision the key's report already answers is skipped (`logic.already_handled`);
- a version is written once (`publish_campaign` refuses an existing one) and a file the
  campaign already serves is `Unchanged`, so a retry finishes the remaining steps;
- codes are provisioned up to the offer's count, never twice; events carry ids derived
  from their subject, so a re-sent one is deduplicated by consumers;
- the report is written last: once it exists, every effect of its revision is done.

A rejected file changes nothing in the Campaigns table: the report lists its errors,
`CampaignRejected` is emitted and the marketers' topic is told.

Each record is handled under the request id of the S3 call behind it (the marketer's
upload or deletion), in its log lines and in the events it publishes. The metrics
`CampaignFilesPublished` and `CampaignFilesRejected` count reports once written, so a
replayed notification, answered by the report already there, counts nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from functions.campaigns.config import CampaignConfig, CampaignFileError, load_campaign_file
from functions.campaigns.dal import CampaignFiles, CampaignStore, MarketersTopic, PublishConflict
from functions.campaigns.logic import (
    Publish,
    Reject,
    SourceFile,
    Unchanged,
    already_handled,
    decide,
    error_paths,
    is_campaign_upload,
    published_event,
    rejected_event,
    rejection_message,
    report_document,
    report_key,
)
from functions.core.clock import utc_now
from functions.core.events import EventBridgePublisher, EventPublisher
from functions.core.observability import (
    correlated,
    instrumented,
    logger,
    record_campaign_file_published,
    record_campaign_file_rejected,
)
from functions.core.settings import EventBusSettings, load_settings

# Passes over one key when a newer revision lands while the loader works on it.
_MAX_PASSES: Final = 3
# Publish attempts when another writer takes the version (or an offer id) first.
_MAX_ATTEMPTS: Final = 3


class LoaderSettings(EventBusSettings):
    campaigns_table: str = Field(alias="CAMPAIGNS_TABLE", min_length=1)
    campaign_bucket: str = Field(alias="CAMPAIGN_BUCKET", min_length=1)
    marketers_topic_arn: str = Field(alias="MARKETERS_TOPIC_ARN", min_length=1)


@dataclass(frozen=True)
class Loader:
    """The loader's collaborators, passed in so tests can hand over their own."""

    files: CampaignFiles
    store: CampaignStore
    events: EventPublisher
    marketers: MarketersTopic

    # -- uploads ----------------------------------------------------------------------

    def on_created(self, key: str) -> str:
        outcome = "gone"
        for _ in range(_MAX_PASSES):
            read = self.files.read(key)
            if read is None:
                logger.info(
                    "file gone before it was read: its deletion archives", extra={"key": key}
                )
                return "gone"
            source, content = read
            if already_handled(source, self.files.reported_revision(key)):
                logger.info(
                    "revision already reported", extra={"key": key, "revision": source.revision}
                )
                return "replayed"
            outcome = self._load(source, content)
            if self.files.revision(key) == source.revision:
                return outcome
            logger.info("a newer revision arrived meanwhile: loading it", extra={"key": key})
        return outcome

    def _load(self, source: SourceFile, content: bytes) -> str:
        now = utc_now()
        loaded: CampaignConfig | CampaignFileError
        try:
            loaded = load_campaign_file(source.key, content)
        except CampaignFileError as error:
            loaded = error
        for _ in range(_MAX_ATTEMPTS):
            if isinstance(loaded, CampaignFileError):
                decision = decide(source, loaded, None, now)
            else:
                owners = self.store.owners(loaded)
                decision = decide(
                    source,
                    loaded,
                    self.store.published(loaded.id),
                    now,
                    offer_owners=owners.offers,
                    code_owners=owners.codes,
                )
            if isinstance(decision, Reject):
                return self._reject(source, decision)
            if isinstance(decision, Unchanged):
                return self._complete(source, decision, decision.published.published_at)
            try:
                self.store.publish(decision, now)
            except PublishConflict as conflict:
                logger.warning(
                    "publish refused: deciding again", extra={"reasons": conflict.reasons}
                )
                continue
            return self._complete(source, decision, now)
        raise RuntimeError(f"{source.key}: publish refused {_MAX_ATTEMPTS} times in a row")

    def _complete(
        self, source: SourceFile, decision: Publish | Unchanged, published_at: datetime
    ) -> str:
        """Everything after the publish transaction; each step is a no-op when done."""
        config, version = decision.config, decision.version
        dropped = decision.dropped_offer_ids if isinstance(decision, Publish) else ()
        retired = self.store.retire_offers(config, version, dropped)
        self.store.store_shared_codes(config, published_at)
        codes = self.store.provision_unique_codes(config)
        codes_retired = self.store.retire_codes(config, version, published_at)
        self.events.publish(published_event(config, version, published_at, source.key))
        self.files.write_report(source, report_document(decision, codes_retired))
        record_campaign_file_published()
        outcome = "published" if isinstance(decision, Publish) else "unchanged"
        logger.info(
            f"campaign file {outcome}",
            extra={
                "key": source.key,
                "campaignId": config.id,
                "version": version,
                "retiredOffers": retired,
                "codesGenerated": {offer: result.stored for offer, result in codes.items()},
                "codesRetired": codes_retired,
            },
        )
        return outcome

    def _reject(self, source: SourceFile, decision: Reject) -> str:
        """Tell everyone; the Campaigns table is not touched."""
        self.events.publish(rejected_event(source, decision, utc_now()))
        report_uri = self.files.uri(report_key(source.key))
        self.marketers.tell(*rejection_message(source, decision, report_uri))
        self.files.write_report(source, report_document(decision))
        record_campaign_file_rejected()
        logger.info(
            "campaign file rejected",
            extra={
                "key": source.key,
                "campaignId": decision.campaign_id,
                "paths": error_paths(decision.errors),
            },
        )
        return "rejected"

    # -- deletions --------------------------------------------------------------------

    def on_removed(self, key: str) -> str:
        if self.files.revision(key) is not None:
            logger.info(
                "file uploaded again since this deletion: nothing to archive", extra={"key": key}
            )
            return "stale"
        now = utc_now()
        reported = self.files.reported_campaign_id(key)
        candidates = dict.fromkeys(
            [*([reported] if reported else []), *self.store.campaigns_from(key)]
        )
        archived = [
            campaign_id for campaign_id in candidates if self.store.archive(campaign_id, key, now)
        ]
        # No event fits an archived campaign in the contract; the log records it.
        logger.info("campaign file deleted", extra={"key": key, "archived": archived})
        return "archived" if archived else "nothing_to_archive"

    # -- records ----------------------------------------------------------------------

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        """Each S3 record in turn; the first failure raises (a retry redoes only what is
        not done yet)."""
        results = []
        for record in event.get("Records", []):
            with correlated(record):
                key = unquote_plus(record["s3"]["object"]["key"])
                results.append({"key": key, "outcome": self._handle_record(record, key)})
        return {"results": results}

    def _handle_record(self, record: dict[str, Any], key: str) -> str:
        bucket = record["s3"]["bucket"]["name"]
        event_name = str(record.get("eventName", ""))
        if bucket != self.files.bucket:
            logger.warning("record of another bucket ignored", extra={"bucket": bucket, "key": key})
            return "ignored"
        if not is_campaign_upload(key):
            logger.info(
                "not a file under campaigns/: ignored", extra={"key": key, "eventName": event_name}
            )
            return "ignored"
        if event_name.startswith("ObjectCreated:"):
            return self.on_created(key)
        if event_name.startswith("ObjectRemoved:"):
            return self.on_removed(key)
        logger.info("event ignored", extra={"key": key, "eventName": event_name})
        return "ignored"


@functools.cache
def _loader(settings: LoaderSettings) -> Loader:
    # One per container (and per environment, for the local cloud); clients made lazily.
    return Loader(
        files=CampaignFiles(settings.campaign_bucket),
        store=CampaignStore(),
        events=EventBridgePublisher(settings.event_bus_name),
        marketers=MarketersTopic(settings.marketers_topic_arn),
    )


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _loader(load_settings(LoaderSettings)).handle(event)
