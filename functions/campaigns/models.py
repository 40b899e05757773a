"""Campaigns table, campaigns side: what a published file made, and the codes of its offers.

Items (pk / sk), each owned here (defined, and changed only through the parts below):

- ``Campaign``         ``CAMPAIGN#<campaignId>`` / ``META`` (its budget counters are
  changed only through `functions.campaigns.budget`)
- ``CampaignVersion``  ``CAMPAIGN#<campaignId>`` / ``VERSION#<000042>``
- ``Offer``            ``OFFER#<offerId>`` / ``META``
- ``Code``             ``CODE#<CODE>`` / ``META``
- ``CodeGeneration``   ``OFFER#<offerId>`` / ``CODES``

The loader publishes campaigns, offers and codes; the domains built on campaigns change
them only through the transaction parts their models hand out (`Offer.use_total`,
`Code.issue`, `Code.use`, ...). Code issues, redemptions and per-customer usage share the
table (`functions.offers.models`), so one transaction can touch a code, its offer, its
campaign's budget and the redemption together.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import GlobalSecondaryIndex

from functions.campaigns.codes import canonical_code
from functions.campaigns.states import ACTIVE, ARCHIVED
from functions.core.clock import instant_key
from functions.core.models import (
    InstantAttribute,
    IntegerAttribute,
    TableModel,
    Transaction,
    TypedMap,
    bounded_subtract,
    global_index,
    key_part,
    optional,
    table_meta,
    upsert_actions,
)
from functions.core.tables import CAMPAIGNS

__all__ = [
    "MAX_OFFERS_PER_CAMPAIGN",
    "Campaign",
    "CampaignVersion",
    "Code",
    "CodeGeneration",
    "Discount",
    "Offer",
    "get_campaign",
    "get_campaign_file",
    "get_code",
    "get_offer",
    "list_campaigns",
    "list_offers",
    "publish_campaign",
]

# Versions are zero-padded so that string order is version order in the sort key.
_VERSION_WIDTH: Final = 6


class Campaign(TableModel):
    """The current published state of a campaign, with its budget counters.

    Access patterns:

    - get a campaign by id: pk=``CAMPAIGN#<id>``, sk=``META`` (`get_campaign`)
    - list campaigns by status, soonest start first: gsi1 pk=``CAMPAIGNS#<status>``,
      sk=``<startsAt>#<id>`` (`list_campaigns`; status is ``active`` or ``archived``)
    - reserve / release budget atomically: conditional ``ADD`` on ``budgetUsedAmount`` and
      ``budgetUsedCount``, only through `functions.campaigns.budget`, inside the
      transaction of whatever spends it (a redemption, a cashback credit, a claim)
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
    # A purchase in the campaign issues the buyer one of this offer's codes (offers'
    # purchases consumer); absent on items from before the field existed: False.
    issue_after_purchase = BooleanAttribute(attr_name="issueAfterPurchase", default=False)

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


class Code(TableModel):
    """An offer code: unique (pre-generated, issued to one customer) or shared.

    Access patterns:

    - get a code as typed at checkout: pk=``CODE#<CODE upper-case>``, sk=``META``
      (`get_code`)
    - take an unissued unique code of an offer: gsi1 pk=``OFFER#<offerId>#POOL``,
      sk=``<CODE>`` (`pool`; sparse: a code leaves the pool when issued, see `issue`).
      Codes are random, so starting the query at a random code spreads concurrent issuers
      over the pool instead of having them all race for the first one.
    - count one use: conditional ``ADD uses`` refused once ``uses`` reaches ``maxUses``
      (`use`), and give it back on rollback (`release`)
    - retire a code a new version no longer gives out: an unissued unique code beyond a
      lowered ``codes.count`` (`retire_unissued`, conditional on it being unissued, as
      `issue` is on it being unretired, so a code racing both ends up one or the other),
      or a shared code the offer replaced (`retire_shared`; `reinstate_shared` when a
      later version names it again). A retired code stays, so it is refused by name.
    """

    Meta = table_meta(CAMPAIGNS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = optional(UnicodeAttribute())
    gsi1sk = optional(UnicodeAttribute())
    gsi1: GlobalSecondaryIndex[Code] = global_index(CAMPAIGNS, "gsi1")

    code = UnicodeAttribute()
    offer_id = UnicodeAttribute(attr_name="offerId")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    mode = UnicodeAttribute()  # unique | shared
    uses = IntegerAttribute(default=0)
    # None: no per-code cap (a shared code is bounded by the offer's maxTotal instead).
    max_uses = optional(IntegerAttribute(attr_name="maxUses"))
    issued_to = optional(UnicodeAttribute(attr_name="issuedTo"))
    issued_at = optional(InstantAttribute(attr_name="issuedAt"))
    created_at = InstantAttribute(attr_name="createdAt")
    # Set when a version stopped giving the code out; it is then refused as retired.
    retired_at = optional(InstantAttribute(attr_name="retiredAt"))

    @staticmethod
    def key(code: str) -> tuple[str, str]:
        return f"CODE#{canonical_code(code)}", "META"

    @staticmethod
    def pool_partition(offer_id: str) -> str:
        return f"OFFER#{key_part(offer_id)}#POOL"

    def derive_keys(self) -> None:
        if self.code is not None:
            self.code = canonical_code(self.code)
            self.pk, self.sk = self.key(self.code)
        # Only an unissued, unretired unique code is in the pool (the index is sparse).
        in_pool = (
            self.mode == "unique"
            and self.issued_to is None
            and self.retired_at is None
            and self.offer_id is not None
        )
        self.gsi1pk = self.pool_partition(self.offer_id) if in_pool else None
        self.gsi1sk = self.code if in_pool else None

    @classmethod
    def ref(cls, code: str) -> Code:
        """A key-only instance, for updates inside a `Transaction`."""
        return cls(code=code)

    @classmethod
    def pool(cls, offer_id: str, start_after: str | None = None, limit: int = 10) -> Iterator[Code]:
        """Unissued unique codes of an offer (gsi1, eventually consistent: `issue`'s
        condition is what guarantees a code goes to one customer only)."""
        condition = cls.gsi1sk > canonical_code(start_after) if start_after else None
        return cls.gsi1.query(cls.pool_partition(offer_id), condition, limit=limit)

    @staticmethod
    def issue(customer_id: str, at: datetime) -> tuple[list[Action], Condition]:
        """Give an unissued code to `customer_id` and take it out of the pool."""
        actions: list[Action] = [
            Code.issued_to.set(customer_id),
            Code.issued_at.set(at),
            Code.gsi1pk.remove(),
            Code.gsi1sk.remove(),
        ]
        unissued = Code.pk.exists() & Code.issued_to.does_not_exist()
        return actions, unissued & Code.retired_at.does_not_exist()

    @staticmethod
    def retire_unissued(offer_id: str, at: datetime) -> tuple[list[Action], Condition]:
        """Take an unissued unique code of `offer_id` out of the pool for good; refused
        if it was issued (or retired) meanwhile."""
        actions: list[Action] = [
            Code.retired_at.set(at),
            Code.gsi1pk.remove(),
            Code.gsi1sk.remove(),
        ]
        condition = (
            Code.pk.exists()
            & (Code.offer_id == offer_id)
            & (Code.mode == "unique")
            & Code.issued_to.does_not_exist()
            & Code.retired_at.does_not_exist()
        )
        return actions, condition

    @staticmethod
    def retire_shared(offer_id: str, at: datetime) -> tuple[list[Action], Condition]:
        """Retire the shared code of `offer_id` (the first retirement's time is kept, so
        doing it again changes nothing); refused if the code is not that offer's."""
        actions: list[Action] = [Code.retired_at.set(Code.retired_at | at)]
        condition = Code.pk.exists() & (Code.offer_id == offer_id) & (Code.mode == "shared")
        return actions, condition

    @staticmethod
    def reinstate_shared(offer_id: str) -> tuple[list[Action], Condition]:
        """Make a retired shared code of `offer_id` work again (a version names it)."""
        condition = Code.pk.exists() & (Code.offer_id == offer_id) & (Code.mode == "shared")
        return [Code.retired_at.remove()], condition

    @staticmethod
    def use() -> tuple[list[Action], Condition]:
        """One more use, refused once ``uses`` reaches the stored ``maxUses``."""
        condition = Code.pk.exists() & (
            Code.max_uses.does_not_exist() | (Code.uses < Code.max_uses)
        )
        return [Code.uses.add(1)], condition

    @staticmethod
    def release() -> tuple[list[Action], Condition]:
        actions, condition = bounded_subtract(Code.uses, 1)
        return actions, Code.pk.exists() & condition


class CodeGeneration(TableModel):
    """How many unique codes have been generated for an offer, so a republish (or a retried
    publish) generates only the missing number.

    A separate item rather than a counter on the ``Offer``: every redemption updates the
    offer's ``redemptionsCount`` in a transaction, and a bulk generation touching the same
    item a thousand times would make those redemptions fail with TransactionConflict.

    Access patterns:

    - the count of an offer: pk=``OFFER#<offerId>`` (the offer's own partition, as
      ``functions.campaigns.models.Offer.key``), sk=``CODES`` (`for_offer`)
    - advance it in the same transaction as the codes it counts, conditional on the count
      the writer read (`advance`), so the count never differs from the codes stored and two
      writers cannot both fill the same gap
    - count retired codes likewise, in the same transaction as the codes it retires,
      conditional on both counts the writer read (`retire`): ``generated - retired`` is
      what the offer has out or in its pool (`live`), the figure ``codes.count`` sets
    """

    Meta = table_meta(CAMPAIGNS)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    offer_id = UnicodeAttribute(attr_name="offerId")
    campaign_id = UnicodeAttribute(attr_name="campaignId")
    generated = IntegerAttribute(default=0)
    retired = IntegerAttribute(default=0)
    # The campaign version that last retired codes and how many it did: a retried publish
    # reports what its version retired, even when an earlier attempt did the retiring.
    retired_version = optional(IntegerAttribute(attr_name="retiredVersion"))
    retired_in_version = IntegerAttribute(attr_name="retiredInVersion", default=0)
    updated_at = optional(InstantAttribute(attr_name="updatedAt"))

    @staticmethod
    def key(offer_id: str) -> tuple[str, str]:
        return f"OFFER#{offer_id}", "CODES"

    def derive_keys(self) -> None:
        if self.offer_id is not None:
            self.pk, self.sk = self.key(self.offer_id)

    @classmethod
    def ref(cls, offer_id: str) -> CodeGeneration:
        """A key-only instance, for updates inside a `Transaction`."""
        return cls(offer_id=offer_id)

    @classmethod
    def for_offer(cls, offer_id: str) -> int:
        """Codes generated so far for the offer (0 before the first)."""
        item = cls.get_or_none(*cls.key(offer_id))
        return item.generated if item is not None else 0

    @classmethod
    def of_offer(cls, offer_id: str) -> CodeGeneration | None:
        """The offer's counts as stored now (None before its first code)."""
        return cls.get_or_none(*cls.key(offer_id))

    @property
    def live(self) -> int:
        """Codes of the offer issued or still to be issued: generated and not retired."""
        return self.generated - self.retired

    def retired_by(self, version: int) -> int:
        """How many codes campaign version `version` retired (as far as stored)."""
        return self.retired_in_version if self.retired_version == version else 0

    def retire(self, by: int, version: int, at: datetime) -> tuple[list[Action], Condition]:
        """Count `by` more codes retired by `version`; refused unless both counts are still
        the ones this item was read with (another writer added or retired codes)."""
        if by < 0:
            raise ValueError(f"counts are non-negative, got by={by}")
        actions: list[Action] = [
            CodeGeneration.retired.set(self.retired + by),
            CodeGeneration.retired_version.set(version),
            CodeGeneration.retired_in_version.set(self.retired_by(version) + by),
            CodeGeneration.updated_at.set(at),
        ]
        retired = CodeGeneration.retired == self.retired
        if self.retired == 0:
            retired = CodeGeneration.retired.does_not_exist() | retired
        return actions, (CodeGeneration.generated == self.generated) & retired

    @staticmethod
    def advance(
        offer_id: str, campaign_id: str, expected: int, by: int, at: datetime
    ) -> tuple[list[Action], Condition]:
        """Move the count from `expected` to ``expected + by``; refused if it is not
        `expected` any more (another writer got there first). Creates the item at 0."""
        if expected < 0 or by < 0:
            raise ValueError(f"counts are non-negative, got expected={expected}, by={by}")
        actions: list[Action] = [
            CodeGeneration.generated.set(expected + by),
            CodeGeneration.offer_id.set(offer_id),
            CodeGeneration.campaign_id.set(campaign_id),
            CodeGeneration.updated_at.set(at),
        ]
        current = CodeGeneration.generated == expected
        if expected == 0:
            current = CodeGeneration.generated.does_not_exist() | current
        return actions, current


def get_campaign(campaign_id: str) -> Campaign | None:
    return Campaign.get_or_none(*Campaign.key(campaign_id))


def get_campaign_file(campaign_id: str, version: int) -> dict[str, Any] | None:
    """The file of version `version` of the campaign, as published (JSON), or None."""
    item = CampaignVersion.get_or_none(*CampaignVersion.key(campaign_id, version))
    if item is None:
        return None
    document: dict[str, Any] = item.config
    return document


def get_code(code: str) -> Code | None:
    """The code as typed (any case), or None."""
    return Code.get_or_none(*Code.key(code))


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
