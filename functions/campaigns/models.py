"""Campaigns table: the published campaign, its version history and its offers.

Items (pk / sk):

- ``Campaign``         ``CAMPAIGN#<campaignId>`` / ``META``
- ``CampaignVersion``  ``CAMPAIGN#<campaignId>`` / ``VERSION#<000042>``
- ``Offer``            ``OFFER#<offerId>`` / ``META``

Codes, code issues, redemptions and per-customer usage share this table (see
`functions.offers.models`), so one transaction can touch a code, its offer and its
campaign's budget together.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from pynamodb.attributes import (
    Attribute,
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import GlobalSecondaryIndex

from functions.core.clock import instant_key
from functions.core.models import (
    InstantAttribute,
    IntegerAttribute,
    TableModel,
    Transaction,
    TypedMap,
    bounded_add,
    bounded_subtract,
    global_index,
    key_part,
    optional,
    table_meta,
    upsert_actions,
)
from functions.core.tables import CAMPAIGNS

__all__ = [
    "ACTIVE",
    "ARCHIVED",
    "MAX_OFFERS_PER_CAMPAIGN",
    "Campaign",
    "CampaignVersion",
    "Discount",
    "Offer",
    "get_campaign",
    "get_campaign_file",
    "get_offer",
    "list_campaigns",
    "list_offers",
    "publish_campaign",
]

ACTIVE: Final = "active"
ARCHIVED: Final = "archived"

# Versions are zero-padded so that string order is version order in the sort key.
_VERSION_WIDTH: Final = 6


class Campaign(TableModel):
    """The current published state of a campaign, with its budget counters.

    Access patterns:

    - get a campaign by id: pk=``CAMPAIGN#<id>``, sk=``META`` (`get_campaign`)
    - list campaigns by status, soonest start first: gsi1 pk=``CAMPAIGNS#<status>``,
      sk=``<startsAt>#<id>`` (`list_campaigns`; status is ``active`` or ``archived``)
    - reserve / release budget atomically: conditional ``ADD`` on ``budgetUsedAmount`` and
      ``budgetUsedCount`` (`budget_reservation`, `budget_release`), usually inside the
      redemption or claim transaction
    - publish a version with its offers: `publish_campaign` (one transaction; keeps the
      counters, refuses a stale or repeated version)

    Money amounts here (budget, counters) are integers in the campaign's ``currency``:
    plain numbers so that DynamoDB can ``ADD`` to them.
    """

    Meta = table_meta(CAMPAIGNS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = optional(UnicodeAttribute())
    gsi1sk = optional(UnicodeAttribute())
    gsi1: GlobalSecondaryIndex[Campaign] = global_index(CAMPAIGNS, "gsi1")

    campaign_id = UnicodeAttribute(attr_name="campaignId")
    name = UnicodeAttribute()
    kind = UnicodeAttribute()  # rebate | cashback | offer
    currency = UnicodeAttribute()
    timezone = UnicodeAttribute()
    starts_at = InstantAttribute(attr_name="startsAt")
    ends_at = InstantAttribute(attr_name="endsAt")
    status = UnicodeAttribute(default=ACTIVE)
    # The published version (1, 2, ...): the file's generation, not an optimistic lock,
    # since budget updates must not bump it. Its file is on the `CampaignVersion` item:
    # every redemption writes this item's counters, and DynamoDB bills a write by the
    # whole item's size, so the file (up to 10,000 SKUs) is kept off it.
    version = IntegerAttribute()
    budget_amount = optional(IntegerAttribute(attr_name="budgetAmount"))
    budget_max_rewards = optional(IntegerAttribute(attr_name="budgetMaxRewards"))
    budget_used_amount = IntegerAttribute(attr_name="budgetUsedAmount", default=0)
    budget_used_count = IntegerAttribute(attr_name="budgetUsedCount", default=0)
    source_key = UnicodeAttribute(attr_name="sourceKey")
    published_at = InstantAttribute(attr_name="publishedAt")
    archived_at = optional(InstantAttribute(attr_name="archivedAt"))

    @staticmethod
    def key(campaign_id: str) -> tuple[str, str]:
        return f"CAMPAIGN#{campaign_id}", "META"

    @staticmethod
    def status_partition(status: str) -> str:
        return f"CAMPAIGNS#{status}"

    def derive_keys(self) -> None:
        if self.campaign_id is not None:
            self.pk, self.sk = self.key(self.campaign_id)
        if self.status is not None and self.starts_at is not None:
            self.gsi1pk = self.status_partition(self.status)
            self.gsi1sk = f"{instant_key(self.starts_at)}#{self.campaign_id}"

    @classmethod
    def ref(cls, campaign_id: str) -> Campaign:
        """A key-only instance, for updates and deletes inside a `Transaction`."""
        return cls(campaign_id=campaign_id)

    def status_actions(self, status: str, at: datetime) -> list[Action]:
        """Change the status and move the item to that status's gsi1 partition with it."""
        actions: list[Action] = [
            Campaign.status.set(status),
            Campaign.gsi1pk.set(self.status_partition(status)),
        ]
        if status == ARCHIVED:
            actions.append(Campaign.archived_at.set(at))
        return actions

    @staticmethod
    def budget_reservation(
        amount: int, count: int, *, limit_amount: int | None, limit_count: int | None
    ) -> tuple[list[Action], Condition]:
        """Add to the used counters, refused if either would pass its limit.

        The limits are the ones the caller read from this campaign; the condition also
        checks they are still the stored ones, so a republish that lowers the budget
        between read and write cancels the write instead of overspending.
        """
        amount_actions, amount_ok = bounded_add(Campaign.budget_used_amount, amount, limit_amount)
        count_actions, count_ok = bounded_add(Campaign.budget_used_count, count, limit_count)
        condition = (
            Campaign.pk.exists()
            & _same_limit(Campaign.budget_amount, limit_amount)
            & _same_limit(Campaign.budget_max_rewards, limit_count)
        )
        for part in (amount_ok, count_ok):
            if part is not None:
                condition &= part
        return amount_actions + count_actions, condition

    @staticmethod
    def budget_release(amount: int, count: int) -> tuple[list[Action], Condition]:
        """Give back a reservation (a rollback); the counters never go below zero."""
        amount_actions, amount_ok = bounded_subtract(Campaign.budget_used_amount, amount)
        count_actions, count_ok = bounded_subtract(Campaign.budget_used_count, count)
        return amount_actions + count_actions, Campaign.pk.exists() & amount_ok & count_ok


def _same_limit(attribute: Attribute[int | None], limit: int | None) -> Condition:
    return attribute.does_not_exist() if limit is None else attribute == limit


class CampaignVersion(TableModel):
    """One published version of a campaign, immutable once written.

    Access patterns:

    - get version N of a campaign: pk=``CAMPAIGN#<id>``, sk=``VERSION#<N, 6 digits>``
    - a campaign's history, newest first: query pk, sk begins_with ``VERSION#``,
      descending (`list_versions`)
    - written once: conditional put ``attribute_not_exists(pk)`` (in `publish_campaign`)
    """

    Meta = table_meta(CAMPAIGNS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    campaign_id = UnicodeAttribute(attr_name="campaignId")
    version = IntegerAttribute()
    config = JSONAttribute()
    source_key = UnicodeAttribute(attr_name="sourceKey")
    published_at = InstantAttribute(attr_name="publishedAt")

    @staticmethod
    def key(campaign_id: str, version: int) -> tuple[str, str]:
        return f"CAMPAIGN#{campaign_id}", f"VERSION#{version:0{_VERSION_WIDTH}d}"

    def derive_keys(self) -> None:
        if self.campaign_id is not None and self.version is not None:
            self.pk, self.sk = self.key(self.campaign_id, self.version)

    @classmethod
    def list_versions(cls, campaign_id: str) -> Iterator[CampaignVersion]:
        pk, _ = cls.key(campaign_id, 0)
        return cls.query(pk, cls.sk.startswith("VERSION#"), scan_index_forward=False)


class Discount(TypedMap):
    """An offer's discount: either ``amount`` or ``percentage`` (with an optional ``max``),
    all in the offer's currency minor unit except the percentage."""

    amount = optional(IntegerAttribute())
    # A whole or fractional percentage (the file allows 12.5); rounding is the logic's.
    percentage = optional(NumberAttribute())
    max = optional(IntegerAttribute())


class Offer(TableModel):
    """An offer of a campaign: channel, discount, code mode, limits and usage counter.

    Offer ids are global (the API addresses ``/v1/offers/{offerId}``), so the key is the
    offer id alone and a conditional put refuses a second campaign claiming the same id.

    Access patterns:

    - get an offer by id: pk=``OFFER#<offerId>``, sk=``META`` (`get_offer`)
    - list offers by status (the storefront's "offers open now"), and a campaign's offers:
      gsi1 pk=``OFFERS#<status>``, sk=``CAMPAIGN#<campaignId>#OFFER#<offerId>``, the
      latter with begins_with ``CAMPAIGN#<campaignId>#`` (`list_offers`)
    - publish / republish: with its campaign in `publish_campaign` (keeps the counters,
      refuses an offer id already owned by another campaign)
    - count a redemption against ``maxTotal``: conditional ``ADD redemptionsCount``
      (`use_total`, refused once ``redemptionsCount`` reaches ``maxTotal``) and give it
      back on rollback (`release_total`)
    """

    Meta = table_meta(CAMPAIGNS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = optional(UnicodeAttribute())
    gsi1sk = optional(UnicodeAttribute())
    gsi1: GlobalSecondaryIndex[Offer] = global_index(CAMPAIGNS, "gsi1")

    offer_id = UnicodeAttribute(attr_name="offerId")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    campaign_version = IntegerAttribute(attr_name="campaignVersion")
    status = UnicodeAttribute(default=ACTIVE)
    channel = UnicodeAttribute()  # online | in_store | both
    currency = UnicodeAttribute()
    discount = Discount()
    code_mode = UnicodeAttribute(attr_name="codeMode")  # unique | shared
    shared_code = optional(UnicodeAttribute(attr_name="sharedCode"))
    code_prefix = optional(UnicodeAttribute(attr_name="codePrefix"))
    code_count = optional(IntegerAttribute(attr_name="codeCount"))
    max_total = optional(IntegerAttribute(attr_name="maxTotal"))
    per_customer = optional(IntegerAttribute(attr_name="perCustomer"))
    redemptions_count = IntegerAttribute(attr_name="redemptionsCount", default=0)
    codes_issued = IntegerAttribute(attr_name="codesIssued", default=0)
    starts_at = InstantAttribute(attr_name="startsAt")
    ends_at = InstantAttribute(attr_name="endsAt")
    # A list of plain numbers: without `of`, PynamoDB stores each int as N and reads it back.
    reminders_days_before_expiry = ListAttribute[int](
        attr_name="remindersDaysBeforeExpiry", default=list
    )

    @staticmethod
    def key(offer_id: str) -> tuple[str, str]:
        return f"OFFER#{offer_id}", "META"

    @staticmethod
    def status_partition(status: str) -> str:
        return f"OFFERS#{status}"

    @staticmethod
    def campaign_prefix(campaign_id: str) -> str:
        return f"CAMPAIGN#{key_part(campaign_id)}#"

    def derive_keys(self) -> None:
        if self.offer_id is not None:
            self.pk, self.sk = self.key(self.offer_id)
        if self.status is not None and self.campaign_id is not None:
            self.gsi1pk = self.status_partition(self.status)
            self.gsi1sk = f"{self.campaign_prefix(self.campaign_id)}OFFER#{self.offer_id}"

    @classmethod
    def ref(cls, offer_id: str) -> Offer:
        """A key-only instance, for updates inside a `Transaction`."""
        return cls(offer_id=offer_id)

    def status_actions(self, status: str) -> list[Action]:
        return [Offer.status.set(status), Offer.gsi1pk.set(self.status_partition(status))]

    @staticmethod
    def use_total() -> tuple[list[Action], Condition]:
        """One more redemption, refused once ``redemptionsCount`` reaches ``maxTotal``.

        The limit is compared attribute to attribute, so it is always the stored one.
        """
        condition = Offer.pk.exists() & (
            Offer.max_total.does_not_exist() | (Offer.redemptions_count < Offer.max_total)
        )
        return [Offer.redemptions_count.add(1)], condition

    @staticmethod
    def release_total() -> tuple[list[Action], Condition]:
        actions, condition = bounded_subtract(Offer.redemptions_count, 1)
        return actions, Offer.pk.exists() & condition


def get_campaign(campaign_id: str) -> Campaign | None:
    return Campaign.get_or_none(*Campaign.key(campaign_id))


def get_campaign_file(campaign_id: str, version: int) -> dict[str, Any] | None:
    """The file of version `version` of the campaign, as published (JSON), or None."""
    item = CampaignVersion.get_or_none(*CampaignVersion.key(campaign_id, version))
    if item is None:
        return None
    document: dict[str, Any] = item.config
    return document


def list_campaigns(status: str = ACTIVE) -> Iterator[Campaign]:
    """Campaigns with `status`, soonest start first (gsi1: eventually consistent)."""
    return Campaign.gsi1.query(Campaign.status_partition(status))


def get_offer(offer_id: str) -> Offer | None:
    return Offer.get_or_none(*Offer.key(offer_id))


def list_offers(status: str = ACTIVE, campaign_id: str | None = None) -> Iterator[Offer]:
    """Offers with `status`, optionally of one campaign (gsi1: eventually consistent)."""
    range_condition = (
        Offer.gsi1sk.startswith(Offer.campaign_prefix(campaign_id)) if campaign_id else None
    )
    return Offer.gsi1.query(Offer.status_partition(status), range_condition)


# One transaction holds at most 100 items: the version, the campaign and the offers.
MAX_OFFERS_PER_CAMPAIGN: Final = 98


def publish_campaign(
    campaign: Campaign, config: Mapping[str, Any], offers: Sequence[Offer] = ()
) -> None:
    """Make `campaign` (at its ``version``, with its file `config`) and its `offers` the
    published state.

    One transaction, so a reader never sees a campaign with half its offers:

    - ``version``: the immutable `CampaignVersion` with the file is created (refused if it
      exists);
    - ``campaign``: the `Campaign` item is written field by field, refused unless the
      stored version is older (two loaders racing on one file cannot publish out of
      order), keeping the budget counters a republish must not reset;
    - ``offer:<offerId>``: each offer likewise, keeping its counters, refused if the
      offer id belongs to another campaign (offer ids are global).

    Offers left out of a new version are not touched (archive them with
    `Offer.status_actions`). Raises `TransactionCancelled` with those labels.
    """
    if len(offers) > MAX_OFFERS_PER_CAMPAIGN:
        raise ValueError(f"at most {MAX_OFFERS_PER_CAMPAIGN} offers publish with a campaign")
    campaign.derive_keys()
    version = CampaignVersion(
        campaign_id=campaign.campaign_id,
        version=campaign.version,
        config=dict(config),
        source_key=campaign.source_key,
        published_at=campaign.published_at,
    )
    transaction = Transaction()
    transaction.put("version", version, condition=CampaignVersion.pk.does_not_exist())
    transaction.update(
        "campaign",
        Campaign.ref(campaign.campaign_id),
        upsert_actions(campaign, counters=("budget_used_amount", "budget_used_count")),
        condition=Campaign.pk.does_not_exist() | (Campaign.version < campaign.version),
    )
    for offer in offers:
        if offer.campaign_id != campaign.campaign_id:
            raise ValueError(f"offer {offer.offer_id} is not of {campaign.campaign_id}")
        transaction.update(
            f"offer:{offer.offer_id}",
            Offer.ref(offer.offer_id),
            upsert_actions(offer, counters=("redemptions_count", "codes_issued")),
            condition=Offer.pk.does_not_exist() | (Offer.campaign_id == campaign.campaign_id),
        )
    transaction.commit()
