"""Campaigns, their versions and offers on moto: the documented access patterns."""

from __future__ import annotations

from datetime import timedelta

import pytest

from functions.campaigns import budget
from functions.campaigns.budget import BudgetLimits
from functions.campaigns.models import (
    Campaign,
    CampaignVersion,
    Discount,
    Offer,
    get_campaign,
    get_campaign_file,
    get_offer,
    list_campaigns,
    list_offers,
)
from functions.campaigns.states import ACTIVE, ARCHIVED
from functions.core.models import Transaction, TransactionCancelled
from tests.support.tables import refused_by_condition
from tests.unit.data.factories import T0, make_campaign, make_offer, publish


def test_publish_then_get_by_id(tables: list[str]) -> None:
    publish(make_campaign())
    campaign = get_campaign("spring-trail-2027")
    assert campaign is not None
    assert (campaign.pk, campaign.sk) == ("CAMPAIGN#spring-trail-2027", "META")
    assert get_campaign_file("spring-trail-2027", 1) == {
        "id": "spring-trail-2027",
        "reward": {"fixed": 1000},
        "v": 1,
    }
    assert get_campaign_file("spring-trail-2027", 2) is None
    # The file lives on the version item only: the item redemptions write stays small.
    assert "config" not in campaign.attribute_values
    assert campaign.starts_at == T0
    assert campaign.budget_used_amount == 0
    assert campaign.budget_used_count == 0
    assert get_campaign("nope") is None


def test_list_active_campaigns_by_start(tables: list[str]) -> None:
    publish(make_campaign("later", starts_at=T0 + timedelta(days=5)))
    publish(make_campaign("sooner"))
    publish(make_campaign("gone", status=ARCHIVED))
    assert [c.campaign_id for c in list_campaigns(ACTIVE)] == ["sooner", "later"]
    assert [c.campaign_id for c in list_campaigns(ARCHIVED)] == ["gone"]


def test_archiving_moves_the_campaign_between_status_partitions(tables: list[str]) -> None:
    publish(make_campaign())
    campaign = Campaign.ref("spring-trail-2027")
    campaign.update(actions=campaign.status_actions(ARCHIVED, T0))
    assert list(list_campaigns(ACTIVE)) == []
    [archived] = list_campaigns(ARCHIVED)
    assert archived.archived_at == T0


def test_republish_keeps_counters_and_history(tables: list[str]) -> None:
    publish(make_campaign(version=1))
    Campaign.ref("spring-trail-2027").update(
        *budget.reservation(1000, 1, limits=BudgetLimits(5000, 3))
    )
    publish(make_campaign(version=2, name="Renamed", budget_amount=9000))
    campaign = get_campaign("spring-trail-2027")
    assert campaign is not None
    assert (campaign.version, campaign.name, campaign.budget_amount) == (2, "Renamed", 9000)
    assert (campaign.budget_used_amount, campaign.budget_used_count) == (1000, 1)
    versions = list(CampaignVersion.list_versions("spring-trail-2027"))
    assert [v.version for v in versions] == [2, 1]
    assert versions[1].config["v"] == 1
    assert versions[0].sk == "VERSION#000002"


def test_stale_or_repeated_publish_is_refused(tables: list[str]) -> None:
    publish(make_campaign(version=2))
    with pytest.raises(TransactionCancelled) as repeated:
        publish(make_campaign(version=2))
    assert repeated.value.failed("version")
    with pytest.raises(TransactionCancelled) as stale:
        publish(make_campaign(version=1))
    assert stale.value.failed("campaign")
    assert not stale.value.failed("version")
    campaign = get_campaign("spring-trail-2027")
    assert campaign is not None
    assert campaign.version == 2


def test_optional_fields_are_removed_on_republish(tables: list[str]) -> None:
    publish(make_campaign(version=1))
    publish(make_campaign(version=2, budget_amount=None, budget_max_rewards=None))
    campaign = get_campaign("spring-trail-2027")
    assert campaign is not None
    assert campaign.budget_amount is None
    assert campaign.budget_max_rewards is None


def test_budget_reservation_never_exceeds_the_cap(tables: list[str]) -> None:
    publish(make_campaign())  # 5000 JPY, 3 rewards
    ref = Campaign.ref("spring-trail-2027")
    ref.update(*budget.reservation(3000, 1, limits=BudgetLimits(5000, 3)))
    ref.update(*budget.reservation(2000, 1, limits=BudgetLimits(5000, 3)))
    with refused_by_condition():
        ref.update(*budget.reservation(1, 1, limits=BudgetLimits(5000, 3)))
    campaign = get_campaign("spring-trail-2027")
    assert campaign is not None
    assert (campaign.budget_used_amount, campaign.budget_used_count) == (5000, 2)
    ref.update(*budget.release(2000, 1))
    with refused_by_condition():
        ref.update(*budget.release(4000, 1))  # more than was used


def test_budget_reservation_refuses_a_stale_limit(tables: list[str]) -> None:
    publish(make_campaign())
    publish(make_campaign(version=2, budget_amount=1000))
    # The caller read 5000 before the republish lowered it to 1000.
    with refused_by_condition():
        Campaign.ref("spring-trail-2027").update(
            *budget.reservation(3000, 1, limits=BudgetLimits(5000, 3))
        )


def test_budget_reservation_needs_the_campaign(tables: list[str]) -> None:
    transaction = Transaction()
    transaction.update(
        "budget",
        Campaign.ref("missing"),
        *budget.reservation(1, 1, limits=BudgetLimits(None, None)),
    )
    with pytest.raises(TransactionCancelled) as cancelled:
        transaction.commit()
    assert cancelled.value.failed("budget")
    assert get_campaign("missing") is None


def test_offer_round_trip_and_listing(tables: list[str]) -> None:
    make_offer().save(condition=Offer.pk.does_not_exist())
    make_offer("TRAIL20", discount=Discount(amount=500)).save()
    make_offer("OTHER", campaign_id="other-campaign").save()
    offer = get_offer("TRAIL10")
    assert offer is not None
    assert offer.discount.percentage == 10
    assert offer.discount.max == 2000
    assert offer.discount.amount is None
    assert offer.reminders_days_before_expiry == [3, 1]
    assert {o.offer_id for o in list_offers(ACTIVE)} == {"TRAIL10", "TRAIL20", "OTHER"}
    mine = list_offers(ACTIVE, campaign_id="spring-trail-2027")
    assert [o.offer_id for o in mine] == ["TRAIL10", "TRAIL20"]


def test_offer_ids_are_global(tables: list[str]) -> None:
    make_offer().save(condition=Offer.pk.does_not_exist())
    with refused_by_condition():
        make_offer(campaign_id="another").save(condition=Offer.pk.does_not_exist())


def test_offer_total_stops_at_max_total(tables: list[str]) -> None:
    make_offer(max_total=2).save()
    ref = Offer.ref("TRAIL10")
    ref.update(*Offer.use_total())
    ref.update(*Offer.use_total())
    with refused_by_condition():
        ref.update(*Offer.use_total())
    ref.update(*Offer.release_total())
    ref.update(*Offer.use_total())
    offer = get_offer("TRAIL10")
    assert offer is not None
    assert offer.redemptions_count == 2


def test_offer_without_max_total_is_unbounded(tables: list[str]) -> None:
    make_offer(max_total=None).save()
    for _ in range(5):
        Offer.ref("TRAIL10").update(*Offer.use_total())
    offer = get_offer("TRAIL10")
    assert offer is not None
    assert offer.redemptions_count == 5


def test_publish_with_offers_is_atomic_and_keeps_offer_counters(tables: list[str]) -> None:
    publish(make_campaign(version=1), [make_offer(), make_offer("TRAIL20")])
    Offer.ref("TRAIL10").update(*Offer.use_total())
    publish(
        make_campaign(version=2),
        [make_offer(max_total=9, discount=Discount(amount=700)), make_offer("TRAIL20")],
    )
    offer = get_offer("TRAIL10")
    assert offer is not None
    assert (offer.max_total, offer.redemptions_count) == (9, 1)
    assert (offer.discount.amount, offer.discount.percentage) == (700, None)
    assert [o.offer_id for o in list_offers(campaign_id="spring-trail-2027")] == [
        "TRAIL10",
        "TRAIL20",
    ]


def test_publish_refuses_an_offer_id_of_another_campaign(tables: list[str]) -> None:
    publish(make_campaign("first"), [make_offer(campaign_id="first")])
    with pytest.raises(TransactionCancelled) as cancelled:
        publish(make_campaign("second"), [make_offer(campaign_id="second")])
    assert cancelled.value.reasons == {"offer:TRAIL10": "ConditionalCheckFailed"}
    assert get_campaign("second") is None  # nothing of the refused publish was written
    with pytest.raises(ValueError, match="not of"):
        publish(make_campaign("third"), [make_offer(campaign_id="first")])
