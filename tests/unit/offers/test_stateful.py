"""Validate, redeem, roll back and republish in any order, on in-process moto.

A Hypothesis state machine drives the offers API and the campaign loader with random
sequences and keeps a model of what should stand: the redemptions not rolled back. After
every step the stored counters (each offer's total, each customer's uses, the budget's
amount and count) must equal what those redemptions add up to, and no redemption may
take a counter past the limit in force when it was made. Validation, asked before each
redemption, must foresee its outcome. Republishing uploads a new version of the campaign
file (other limits, other discounts) and hands the loader the S3 notification, as S3
would; the loader must publish a budget right at what is used and refuse one below it.

The limits are small (a few redemptions reach them) and the budget moves in steps of
100 against discounts of 300 to 500, so sequences land on every cap, exactly on it and
one past it.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, replace
from typing import Any, ClassVar
from urllib.parse import quote_plus

import boto3
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from functions.campaigns.dal import CampaignFiles, CampaignStore, MarketersTopic
from functions.campaigns.handlers.loader import Loader
from functions.campaigns.models import Campaign, Offer
from functions.core.clock import frozen_at
from functions.core.events import InMemoryPublisher
from functions.core.tables import CAMPAIGNS
from functions.offers.dal import CampaignCache, OfferStore
from functions.offers.handlers import api
from functions.offers.models import CustomerUsage
from tests.support.aws import aws_env, tables
from tests.support.tables import create_table_request
from tests.unit.offers.api_calls import OPEN, redeem, roll_back, validate

__all__ = ["aws_env", "tables"]

BUCKET = "rebates-campaigns-stateful"
CAMPAIGN_ID = "checkout-2027"
# Offer id -> its shared code, as typed at checkout.
CODES = {"FIVE": "FIVE-OFF", "THREE": "THREE-OFF"}
CUSTOMERS = ("cust-1", "cust-2")
# Uploads per sequence after the first: a loader run costs a dozen AWS calls, and left to
# itself the machine would spend most of its steps republishing.
MAX_REPUBLISHES = 3
# How a republish of the budget sets it: freshly drawn; with room for exactly one more
# of the cheapest discount, or one yen short of it; or right at (and one below) what is
# already used, where the loader must publish (and refuse).
BUDGET_CHANGES = (
    "drawn",
    "room_for_one_more",
    "one_unit_short_of_one_more",
    "exactly_what_is_used",
    "amount_below_what_is_used",
    "count_below_what_is_used",
)

# A fixed, derandomized run: the same sequences on every machine, nothing read from or
# written to the example database, well under the suite's time budget. No shrinking:
# on moto it would take minutes; a failure prints its whole sequence of steps instead.
SETTINGS = settings(
    max_examples=8,
    stateful_step_count=20,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    # Steps call moto; on a loaded CI machine drawing between them can look slow.
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Terms:
    """What one version of the campaign file sets."""

    discount: dict[str, int]
    max_total: dict[str, int]
    per_customer: dict[str, int]
    budget_amount: int
    max_rewards: int


terms_strategy = st.builds(
    Terms,
    discount=st.fixed_dictionaries({offer: st.sampled_from([300, 400, 500]) for offer in CODES}),
    max_total=st.fixed_dictionaries({offer: st.integers(1, 4) for offer in CODES}),
    per_customer=st.fixed_dictionaries({offer: st.integers(1, 3) for offer in CODES}),
    budget_amount=st.integers(5, 30).map(lambda hundreds: hundreds * 100),
    max_rewards=st.integers(1, 8),
)


def campaign_file(terms: Terms) -> dict[str, Any]:
    return {
        "id": CAMPAIGN_ID,
        "name": "Checkout week",
        "kind": "offer",
        "currency": "JPY",
        "timezone": "Asia/Tokyo",
        "starts_at": "2027-05-01T10:00:00+09:00",
        "ends_at": "2027-05-16T00:00:00+09:00",
        "budget": {"amount": terms.budget_amount, "max_rewards": terms.max_rewards},
        "eligibility": {"channels": ["online", "in_store"]},
        "offers": [
            {
                "id": offer_id,
                "channel": "both",
                "discount": {"amount": terms.discount[offer_id]},
                "codes": {"mode": "shared", "code": code.lower()},
                "usage": {
                    "max_total": terms.max_total[offer_id],
                    "per_customer": terms.per_customer[offer_id],
                },
            }
            for offer_id, code in CODES.items()
        ],
    }


class Shop:
    """The bucket, the loader, and a fresh Campaigns table for each sequence."""

    def __init__(self) -> None:
        self.s3 = boto3.client("s3")
        self.s3.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"}
        )
        # Versioned, as the stack's bucket is: every upload is a revision of its own.
        self.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        topic = boto3.client("sns").create_topic(Name="marketers")["TopicArn"]
        self.loader = Loader(
            files=CampaignFiles(BUCKET),
            store=CampaignStore(),
            events=InMemoryPublisher(),
            marketers=MarketersTopic(topic),
        )
        self.dynamodb = boto3.client("dynamodb")
        self.files = itertools.count(1)

    def reset(self) -> str:
        """Empty the Campaigns table and the API's cache; the key of a new campaign file."""
        self.dynamodb.delete_table(TableName=CAMPAIGNS.default_name)
        request = create_table_request(CAMPAIGNS, CAMPAIGNS.default_name)
        # No stream (nothing here reads it): moto copies the whole table, stream records
        # included, for every item of a transaction, and the records pile up.
        request.pop("StreamSpecification", None)
        self.dynamodb.create_table(**request)
        api.store.campaigns.clear()
        return f"campaigns/checkout-{next(self.files)}.json"

    def upload(self, key: str, terms: Terms) -> str:
        """Upload the campaign file and deliver its notification; the loader's outcome."""
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(campaign_file(terms)))
        record = {
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": BUCKET}, "object": {"key": quote_plus(key)}},
        }
        (result,) = self.loader.handle({"Records": [record]})["results"]
        return str(result["outcome"])


@dataclass(frozen=True)
class Standing:
    """A redemption not rolled back."""

    customer_id: str
    offer_id: str
    discount: int


class Checkout(RuleBasedStateMachine):
    shop: ClassVar[Shop]
    redemptions = Bundle("redemptions")

    def __init__(self) -> None:
        super().__init__()
        self.key = self.shop.reset()
        self.terms = Terms({}, {}, {}, 0, 0)
        self.version = 0
        # The terms of the version the API's campaign cache holds (None: nothing cached).
        # Validation quotes from it (discount, per_customer); a redemption decides on the
        # stored version, reloading the cache when it finds it stale.
        self.cached: Terms | None = None
        self.standing: dict[str, Standing] = {}
        self.orders = itertools.count(1)
        self.republished = 0

    # -- the model ---------------------------------------------------------------------

    def total(self, offer_id: str) -> int:
        return sum(1 for one in self.standing.values() if one.offer_id == offer_id)

    def uses(self, customer_id: str, offer_id: str) -> int:
        return sum(
            1
            for one in self.standing.values()
            if (one.customer_id, one.offer_id) == (customer_id, offer_id)
        )

    def budget(self) -> tuple[int, int]:
        return sum(one.discount for one in self.standing.values()), len(self.standing)

    def refusals(self, customer_id: str, offer_id: str, read: Terms) -> list[str]:
        """The counted limits a redemption would break now, in validation's order.

        `read` is the version the decision reads the discount and the per-customer limit
        from; the offer's total and the budget are always compared with the stored caps.
        """
        reasons = []
        if self.uses(customer_id, offer_id) >= read.per_customer[offer_id]:
            reasons.append("customer_limit_reached")
        if self.total(offer_id) >= self.terms.max_total[offer_id]:
            reasons.append("offer_limit_reached")
        amount, count = self.budget()
        if (
            amount + read.discount[offer_id] > self.terms.budget_amount
            or count + 1 > self.terms.max_rewards
        ):
            reasons.append("budget_exhausted")
        return reasons

    # -- steps -------------------------------------------------------------------------

    @initialize(terms=terms_strategy)
    def publish_the_first_version(self, terms: Terms) -> None:
        assert self.shop.upload(self.key, terms) == "published"
        self.terms, self.version = terms, 1

    @rule(
        target=redemptions,
        customer_id=st.sampled_from(CUSTOMERS),
        offer_id=st.sampled_from(list(CODES)),
    )
    def validate_then_redeem(self, customer_id: str, offer_id: str) -> Any:
        code = CODES[offer_id]
        if self.cached is None:
            self.cached = self.terms  # the first read loads the stored version
        quoted = self.refusals(customer_id, offer_id, self.cached)
        assert validate(code, customer_id) == {
            "valid": not quoted,
            "discount": {
                "amount": 0 if quoted else self.cached.discount[offer_id],
                "currency": "JPY",
            },
            "reasons": quoted,
        }

        expected = self.refusals(customer_id, offer_id, self.terms)
        answer = redeem(code, customer_id, f"order-{next(self.orders)}")
        self.cached = self.terms  # a stale cache was reloaded on the way
        if expected:
            assert answer.status == 409, (expected, self.terms, self.budget(), answer.body)
            assert answer.error_code in expected, (expected, answer.body)
            return multiple()
        assert answer.status == 201, (self.terms, self.budget(), answer.body)
        discount = self.terms.discount[offer_id]
        assert answer.body["discount"] == {"amount": discount, "currency": "JPY"}
        redemption_id = str(answer.body["redemptionId"])
        self.standing[redemption_id] = Standing(customer_id, offer_id, discount)
        # The redemption took no counter past the limit in force.
        assert self.total(offer_id) <= self.terms.max_total[offer_id]
        assert self.uses(customer_id, offer_id) <= self.terms.per_customer[offer_id]
        return redemption_id

    @rule(redemption_id=consumes(redemptions), retried=st.booleans())
    def roll_back(self, redemption_id: str, retried: bool) -> None:
        answer = roll_back(redemption_id)
        assert answer.status == 200, answer.body
        assert answer.body["alreadyRolledBack"] is False
        del self.standing[redemption_id]
        if retried:
            # The storefront retries (without an Idempotency-Key): released only once.
            again = roll_back(redemption_id)
            assert again.status == 200, again.body
            assert again.body["alreadyRolledBack"] is True
            assert again.body["rolledBackAt"] == answer.body["rolledBackAt"]

    @precondition(lambda self: self.republished < MAX_REPUBLISHES)
    @rule(terms=terms_strategy)
    def republish_the_offers(self, terms: Terms) -> None:
        # The budget stays: its own condition (the caps it was decided with) cannot then
        # notice a redemption decided on an older version of the offers.
        self.republish(
            replace(
                terms, budget_amount=self.terms.budget_amount, max_rewards=self.terms.max_rewards
            )
        )

    @precondition(lambda self: self.republished < MAX_REPUBLISHES)
    @rule(terms=terms_strategy, budget=st.sampled_from(BUDGET_CHANGES))
    def republish_the_budget(self, terms: Terms, budget: str) -> None:
        used_amount, used_count = self.budget()
        cheapest = min(terms.discount.values())
        if budget == "room_for_one_more":
            terms = replace(terms, budget_amount=used_amount + cheapest, max_rewards=used_count + 1)
        elif budget == "one_unit_short_of_one_more":
            terms = replace(
                terms, budget_amount=used_amount + cheapest - 1, max_rewards=used_count + 1
            )
        elif budget == "exactly_what_is_used" and used_count:
            terms = replace(terms, budget_amount=used_amount, max_rewards=used_count)
        elif budget == "amount_below_what_is_used" and used_count:
            terms = replace(
                terms, budget_amount=used_amount - 1, max_rewards=max(terms.max_rewards, used_count)
            )
        elif budget == "count_below_what_is_used" and used_count > 1:
            terms = replace(
                terms,
                budget_amount=max(terms.budget_amount, used_amount),
                max_rewards=used_count - 1,
            )
        self.republish(terms)

    def republish(self, terms: Terms) -> None:
        """Upload `terms` as the campaign file: the loader publishes them as the next
        version, finds them unchanged, or refuses a budget below what is used."""
        self.republished += 1
        used_amount, used_count = self.budget()
        outcome = self.shop.upload(self.key, terms)
        if terms.budget_amount < used_amount or terms.max_rewards < used_count:
            assert outcome == "rejected", (terms, self.budget())
        elif terms == self.terms:
            assert outcome == "unchanged"
        else:
            assert outcome == "published", (terms, self.budget())
            self.terms = terms
            self.version += 1

    # -- what must always hold ---------------------------------------------------------

    @invariant()
    def the_counters_are_the_standing_redemptions_within_the_budget(self) -> None:
        stored = Stored.read(self.shop.dynamodb)
        assert stored.version == self.version
        assert stored.offer_totals == {offer_id: self.total(offer_id) for offer_id in CODES}
        assert stored.customer_uses == {
            (customer_id, offer_id): self.uses(customer_id, offer_id)
            for customer_id in CUSTOMERS
            for offer_id in CODES
        }
        assert stored.budget_used == self.budget()
        amount, count = stored.budget_used
        assert amount <= self.terms.budget_amount and count <= self.terms.max_rewards


@dataclass(frozen=True)
class Stored:
    """The counters as the Campaigns table holds them, read in one call (the invariant
    runs after every step: a call per item would dominate the run)."""

    version: int
    offer_totals: dict[str, int]
    customer_uses: dict[tuple[str, str], int]
    budget_used: tuple[int, int]

    @classmethod
    def read(cls, dynamodb: Any) -> Stored:
        pairs = [(customer, offer) for customer in CUSTOMERS for offer in CODES]
        keys = [
            Campaign.key(CAMPAIGN_ID),
            *[Offer.key(offer) for offer in CODES],
            *[CustomerUsage.key(*pair) for pair in pairs],
        ]
        table, pk, sk = CAMPAIGNS.default_name, CAMPAIGNS.partition_key, CAMPAIGNS.sort_key
        request = {
            "Keys": [{pk: {"S": hash_key}, sk: {"S": range_key}} for hash_key, range_key in keys],
            "ConsistentRead": True,
        }
        response = dynamodb.batch_get_item(RequestItems={table: request})
        assert not response.get("UnprocessedKeys")
        items = {(item[pk]["S"], item[sk]["S"]): item for item in response["Responses"][table]}
        campaign = Campaign.from_raw_data(items[Campaign.key(CAMPAIGN_ID)])
        totals = {
            offer: Offer.from_raw_data(items[Offer.key(offer)]).redemptions_count for offer in CODES
        }
        uses = {}
        for pair in pairs:
            item = items.get(CustomerUsage.key(*pair))
            uses[pair] = 0 if item is None else CustomerUsage.from_raw_data(item).uses
        return cls(
            version=campaign.version,
            offer_totals=totals,
            customer_uses=uses,
            budget_used=(campaign.budget_used_amount, campaign.budget_used_count),
        )


def test_validate_redeem_roll_back_and_republish_in_any_order(
    tables: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cache that never expires on its own (its clock stands still), so that what
    # validation reads after a republish depends only on the sequence, never on timing.
    monkeypatch.setattr(api, "store", OfferStore(CampaignCache(clock=lambda: 0.0)))
    Checkout.shop = Shop()
    with frozen_at(OPEN):
        run_state_machine_as_test(Checkout, settings=SETTINGS)
