"""Campaign files: the loader's access to AWS.

- `CampaignFiles`: the campaigns bucket. Reads the current revision of a file (bytes,
  ETag, version id), and writes and reads its report object, which records the revision
  it answers in its metadata (``x-amz-meta-source-revision``) so a replayed delivery
  is recognised.
- `MarketersTopic`: tells marketers, through the SNS topic, that a file was rejected.
- `CampaignStore`: the Campaigns table through the PynamoDB models: the published state
  the rules need, publishing a version with its offers (one transaction), the codes of
  its offers, retiring offers a version dropped and codes it no longer gives out, and
  archiving on deletion.

AWS clients are made on first use, never at import; tests pass their own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Protocol

from botocore.exceptions import ClientError
from pynamodb.exceptions import PutError, UpdateError

from functions.campaigns.code_pool import (
    RetiredCodes,
    StoredCodes,
    provision_codes,
    retire_surplus_codes,
)
from functions.campaigns.codes import canonical_code
from functions.campaigns.config import MAX_FILE_BYTES, CampaignConfig, OfferConfig
from functions.campaigns.logic import (
    Publish,
    PublishedCampaign,
    SourceFile,
    code_prefix,
    report_key,
)
from functions.campaigns.models import (
    MAX_OFFERS_PER_CAMPAIGN,
    Campaign,
    Code,
    Discount,
    Offer,
    get_campaign,
    get_campaign_file,
    list_offers,
    publish_campaign,
)
from functions.campaigns.states import ACTIVE, ARCHIVED
from functions.core import aws
from functions.core.models import Transaction, TransactionCancelled
from functions.core.observability import logger

__all__ = [
    "CampaignFiles",
    "CampaignStore",
    "MarketersTopic",
    "Owners",
    "ProvisionCodes",
    "PublishConflict",
    "RetireCodes",
    "SharedCodeTaken",
]

# User metadata on the report: the revision of the file it answers.
_REVISION_METADATA: Final = "source-revision"
_NOT_FOUND: Final = frozenset({"404", "NoSuchKey", "NotFound"})
_CONDITION_FAILED: Final = "ConditionalCheckFailedException"


def _not_found(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in _NOT_FOUND


# -- the campaigns bucket ---------------------------------------------------------------


class CampaignFiles:
    """Campaign files (``campaigns/``) and their reports (``reports/``) in one bucket."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("s3")
        return self._client

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def read(self, key: str) -> tuple[SourceFile, bytes] | None:
        """The current revision of `key` and its content; None when it is gone (deleted).

        At most ``MAX_FILE_BYTES + 1`` bytes are read: a bigger file is refused by the
        parser for its size without the loader ever holding it whole.
        """
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _not_found(error):
                return None
            raise
        body = response["Body"]
        try:
            content: bytes = body.read(MAX_FILE_BYTES + 1)
        finally:
            body.close()
        source = SourceFile(
            key=key, etag=str(response["ETag"]).strip('"'), version_id=response.get("VersionId")
        )
        return source, content

    def revision(self, key: str) -> str | None:
        """The revision `key` has now, or None when it does not exist (deleted)."""
        head = self._head(key)
        if head is None:
            return None
        return SourceFile(key, str(head["ETag"]).strip('"'), head.get("VersionId")).revision

    def reported_revision(self, key: str) -> str | None:
        """The revision of `key` its report answers, or None when there is no report yet."""
        head = self._head(report_key(key))
        if head is None:
            return None
        revision = head.get("Metadata", {}).get(_REVISION_METADATA)
        return str(revision) if revision else None

    def reported_campaign_id(self, key: str) -> str | None:
        """The campaign id the report of `key` names, or None (no report, or no id)."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=report_key(key))
        except ClientError as error:
            if _not_found(error):
                return None
            raise
        try:
            document = json.loads(response["Body"].read())
        except ValueError:
            return None
        campaign_id = document.get("campaignId") if isinstance(document, dict) else None
        return campaign_id if isinstance(campaign_id, str) else None

    def write_report(self, source: SourceFile, document: Mapping[str, Any]) -> str:
        """Write the report of `source` (``reports/<key>.result.json``); returns its key."""
        key = report_key(source.key)
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(document, ensure_ascii=False, indent=2).encode(),
            ContentType="application/json",
            Metadata={_REVISION_METADATA: source.revision},
        )
        return key

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _not_found(error):
                return None
            raise
        return head


# -- the marketers' topic ---------------------------------------------------------------


class MarketersTopic:
    """The SNS topic marketers subscribe to for rejected files."""

    def __init__(self, topic_arn: str, client: Any | None = None) -> None:
        self.topic_arn = topic_arn
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("sns")
        return self._client

    def tell(self, subject: str, message: str) -> None:
        self.client.publish(TopicArn=self.topic_arn, Subject=subject, Message=message)


# -- the Campaigns table ----------------------------------------------------------------


class PublishConflict(Exception):
    """The publish transaction was refused: another writer got there first (a version,
    an offer id or the campaign moved). Re-read the state and decide again."""

    def __init__(self, reasons: Mapping[str, str]) -> None:
        super().__init__(f"publish refused: {dict(reasons)}")
        self.reasons = dict(reasons)


class SharedCodeTaken(Exception):
    """A shared code was claimed by another offer between the check and the write."""


@dataclass(frozen=True)
class Owners:
    """Who already owns the ids a file claims: offer id -> campaign id, code -> offer id."""

    offers: dict[str, str]
    codes: dict[str, str]


class ProvisionCodes(Protocol):
    """Make an offer have `count` unique codes, writing only the missing ones."""

    def __call__(
        self, offer_id: str, campaign_id: str, *, prefix: str, count: int
    ) -> StoredCodes: ...


class RetireCodes(Protocol):
    """Retire an offer's unissued codes beyond `count`, which campaign `version` set."""

    def __call__(
        self, offer_id: str, campaign_id: str, *, count: int, version: int
    ) -> RetiredCodes: ...


class CampaignStore:
    """The campaign side of the Campaigns table, as the loader uses it.

    `provision` generates and stores an offer's unique codes (`provision_codes`; tests
    that need no real codes pass a fake), and `retire` retires those beyond a lowered
    count (`retire_surplus_codes`).
    """

    def __init__(
        self,
        provision: ProvisionCodes = provision_codes,
        retire: RetireCodes = retire_surplus_codes,
    ) -> None:
        self._provision = provision
        self._retire = retire

    def published(self, campaign_id: str) -> PublishedCampaign | None:
        campaign = get_campaign(campaign_id)
        if campaign is None:
            return None
        published_file = get_campaign_file(campaign_id, campaign.version)
        return PublishedCampaign(
            campaign_id=campaign.campaign_id,
            version=campaign.version,
            status=campaign.status,
            currency=campaign.currency,
            starts_at=campaign.starts_at,
            budget_used_amount=campaign.budget_used_amount,
            budget_used_count=campaign.budget_used_count,
            source_key=campaign.source_key,
            published_at=campaign.published_at,
            config=published_file or {},
        )

    def owners(self, config: CampaignConfig) -> Owners:
        """The current owners of the file's offer ids and shared codes (consistent reads)."""
        offer_keys = [Offer.key(offer.id) for offer in config.offers]
        shared = [o.codes.code for o in config.offers if o.codes.mode == "shared" and o.codes.code]
        offers = {
            offer.offer_id: offer.campaign_id
            for offer in Offer.batch_get(offer_keys, consistent_read=True)
        }
        codes = {
            code.code: code.offer_id
            for code in Code.batch_get([Code.key(c) for c in shared], consistent_read=True)
        }
        return Owners(offers, codes)

    def publish(self, decision: Publish, now: datetime) -> None:
        """Make `decision` the published state in one transaction (`publish_campaign`).

        Raises `PublishConflict` when the version, the campaign or an offer id was taken
        by another writer meanwhile.
        """
        config = decision.config
        campaign = Campaign(
            campaign_id=config.id,
            name=config.name,
            kind=config.kind,
            currency=config.currency,
            timezone=config.timezone,
            starts_at=config.starts_at,
            ends_at=config.ends_at,
            status=ACTIVE,
            version=decision.version,
            budget_amount=config.budget.amount,
            budget_max_rewards=config.budget.max_rewards,
            budget_used_amount=0,
            budget_used_count=0,
            source_key=decision.source.key,
            published_at=now,
            archived_at=None,
        )
        offers = [_offer_item(config, offer, decision.version) for offer in config.offers]
        try:
            publish_campaign(campaign, config.to_document(), offers)
        except TransactionCancelled as cancelled:
            if "ConditionalCheckFailed" in cancelled.reasons.values() or cancelled.conflicted:
                raise PublishConflict(cancelled.reasons) from cancelled
            raise

    def retire_offers(
        self, config: CampaignConfig, version: int, candidates: Iterable[str] = ()
    ) -> list[str]:
        """Archive the campaign's offers that `version` no longer has; returns their ids.

        Candidates are `candidates` (the previous version's offers) and the campaign's
        active offers in the index; each is archived only if the table says it is still
        of this campaign, from an older version, and active, so an index lagging behind
        the publish can never archive a current offer.
        """
        current = {offer.id for offer in config.offers}
        listed = {offer.offer_id for offer in list_offers(ACTIVE, config.id)}
        retired = []
        for offer_id in sorted((set(candidates) | listed) - current):
            ref = Offer.ref(offer_id)
            condition = (
                (Offer.campaign_id == config.id)
                & (Offer.campaign_version < version)
                & (Offer.status == ACTIVE)
            )
            try:
                ref.update(actions=ref.status_actions(ARCHIVED), condition=condition)
            except UpdateError as error:
                if error.cause_response_code != _CONDITION_FAILED:
                    raise
                continue
            retired.append(offer_id)
        return retired

    def store_shared_codes(self, config: CampaignConfig, now: datetime) -> list[str]:
        """Create the `Code` item of each shared-mode offer (kept if it is already there,
        and working again if an earlier version retired it).

        Raises `SharedCodeTaken` if another offer holds the code.
        """
        created = []
        for offer in config.offers:
            code = offer.codes.code
            if offer.codes.mode != "shared" or not code:
                continue
            item = Code(
                code=code,
                offer_id=offer.id,
                campaign_id=config.id,
                mode="shared",
                uses=0,
                max_uses=None,
                created_at=now,
            )
            try:
                item.save(condition=Code.pk.does_not_exist())
            except PutError as error:
                if error.cause_response_code != _CONDITION_FAILED:
                    raise
                existing = Code.get_or_none(*Code.key(code))
                if existing is None or existing.offer_id != offer.id:
                    owner = existing.offer_id if existing else "?"
                    raise SharedCodeTaken(f"code {code} is held by offer {owner}") from error
                if existing.retired_at is not None:
                    actions, condition = Code.reinstate_shared(offer.id)
                    Code.ref(code).update(actions=actions, condition=condition)
                continue
            created.append(code)
        return created

    def provision_unique_codes(self, config: CampaignConfig) -> dict[str, StoredCodes]:
        """Give each unique-mode offer its ``codes.count`` codes, writing only the missing
        ones (`functions.campaigns.code_pool.provision_codes`): a retry or a republish with the
        same count writes nothing, and a code never overwrites an existing one."""
        results = {}
        for offer in config.offers:
            if offer.codes.mode != "unique" or offer.codes.count is None:
                continue
            results[offer.id] = self._provision(
                offer.id, config.id, prefix=code_prefix(offer), count=offer.codes.count
            )
        return results

    def retire_codes(self, config: CampaignConfig, version: int, now: datetime) -> dict[str, int]:
        """Retire the codes `version` of the campaign no longer gives out: each shared code
        an offer replaced (or dropped for unique codes) since the version before, and the
        unissued unique codes beyond a lowered ``codes.count``
        (`functions.campaigns.code_pool.retire_surplus_codes`).

        Returns how many codes `version` retired, by offer id, leaving out offers with
        none; a retry retires nothing twice and returns the same.
        """
        retired: dict[str, int] = {}
        for offer_id, code in self._replaced_shared_codes(config, version):
            actions, condition = Code.retire_shared(offer_id, now)
            try:
                Code.ref(code).update(actions=actions, condition=condition)
            except UpdateError as error:
                if error.cause_response_code != _CONDITION_FAILED:
                    raise
                continue  # gone, or never this offer's: nothing of it to retire
            retired[offer_id] = retired.get(offer_id, 0) + 1
        for offer in config.offers:
            if offer.codes.mode != "unique" or offer.codes.count is None:
                continue
            result = self._retire(offer.id, config.id, count=offer.codes.count, version=version)
            if result.by_version:
                retired[offer.id] = retired.get(offer.id, 0) + result.by_version
        return retired

    @staticmethod
    def _replaced_shared_codes(config: CampaignConfig, version: int) -> list[tuple[str, str]]:
        """(offer id, code) of each shared code of the version before that the offer, still
        in `config`, does not name any more. A dropped offer is archived, codes and all."""
        previous = get_campaign_file(config.id, version - 1) if version > 1 else None
        offers = {offer.id: offer for offer in config.offers}
        replaced = []
        for document in (previous or {}).get("offers", ()):
            codes = document.get("codes") if isinstance(document, Mapping) else None
            if not isinstance(codes, Mapping) or codes.get("mode") != "shared":
                continue
            old_code, current = codes.get("code"), offers.get(str(document.get("id")))
            if not isinstance(old_code, str) or current is None:
                continue
            named = current.codes.code if current.codes.mode == "shared" else None
            if named is not None and canonical_code(named) == canonical_code(old_code):
                continue
            replaced.append((current.id, old_code))
        return replaced

    def campaigns_from(self, key: str) -> list[str]:
        """Active campaigns published from the file `key` (gsi1: eventually consistent)."""
        query = Campaign.gsi1.query(
            Campaign.status_partition(ACTIVE), filter_condition=Campaign.source_key == key
        )
        return [campaign.campaign_id for campaign in query]

    def archive(self, campaign_id: str, source_key: str, now: datetime) -> bool:
        """Archive the campaign and its offers if it is active and was published from
        `source_key`; False when there is nothing to archive (already archived, or now
        served from another file). One transaction: campaign and offers together."""
        campaign = get_campaign(campaign_id)
        if campaign is None or campaign.status != ACTIVE or campaign.source_key != source_key:
            return False
        stored = get_campaign_file(campaign_id, campaign.version) or {}
        offer_ids = {str(o["id"]) for o in stored.get("offers", ()) if isinstance(o, Mapping)}
        offer_ids |= {offer.offer_id for offer in list_offers(ACTIVE, campaign_id)}
        transaction = Transaction()
        transaction.update(
            "campaign",
            Campaign.ref(campaign_id),
            campaign.status_actions(ARCHIVED, now),
            condition=(Campaign.status == ACTIVE)
            & (Campaign.source_key == source_key)
            & (Campaign.version == campaign.version),
        )
        ordered = sorted(offer_ids)
        for offer_id in ordered[:MAX_OFFERS_PER_CAMPAIGN]:
            ref = Offer.ref(offer_id)
            transaction.update(
                f"offer:{offer_id}",
                ref,
                ref.status_actions(ARCHIVED),
                condition=Offer.campaign_id == campaign_id,
            )
        try:
            transaction.commit()
        except TransactionCancelled as cancelled:
            if cancelled.failed("campaign"):
                logger.info("campaign changed while archiving", extra={"campaignId": campaign_id})
                return False
            raise
        # Offers beyond one transaction (dropped ones the index still lists) follow alone.
        for offer_id in ordered[MAX_OFFERS_PER_CAMPAIGN:]:
            ref = Offer.ref(offer_id)
            ref.update(
                actions=ref.status_actions(ARCHIVED), condition=Offer.campaign_id == campaign_id
            )
        return True


def _offer_item(config: CampaignConfig, offer: OfferConfig, version: int) -> Offer:
    unique = offer.codes.mode == "unique"
    return Offer(
        offer_id=offer.id,
        campaign_id=config.id,
        campaign_version=version,
        status=ACTIVE,
        channel=offer.channel,
        currency=config.currency,
        discount=Discount(
            amount=offer.discount.amount,
            percentage=_number(offer.discount.percentage),
            max=offer.discount.max,
        ),
        code_mode=offer.codes.mode,
        shared_code=None if unique else offer.codes.code,
        code_prefix=code_prefix(offer) if unique else None,
        code_count=offer.codes.count if unique else None,
        max_total=offer.usage.max_total,
        per_customer=offer.usage.per_customer,
        redemptions_count=0,
        codes_issued=0,
        starts_at=config.starts_at,
        ends_at=config.ends_at,
        reminders_days_before_expiry=list(offer.reminders_days_before_expiry),
        issue_after_purchase=offer.issue_after_purchase,
    )


def _number(value: Decimal | None) -> int | float | None:
    # NumberAttribute stores what json.dumps can write: 10 stays 10, 12.5 is 12.5.
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)
