"""Codes, issues, usage and redemptions on moto, and the redemption transaction itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.campaigns.budget import BudgetLimits, release, reservation
from functions.campaigns.models import Campaign, Code, Offer, get_campaign, get_code, get_offer
from functions.core.models import Transaction, TransactionCancelled
from functions.core.money import Money
from functions.offers.models import (
    REDEEMED,
    ROLLED_BACK,
    CodeIssue,
    CustomerUsage,
    OrderRedemption,
    Redemption,
    get_redemption,
)
from tests.support.tables import refused_by_condition
from tests.unit.data.factories import make_campaign, make_offer, publish

T0 = datetime(2027, 3, 2, tzinfo=UTC)
CAMPAIGN = "spring-trail-2027"


def make_code(code: str, mode: str = "unique", **extra: Any) -> Code:
    fields: dict[str, Any] = {
        "code": code,
        "offer_id": "TRAIL10",
        "campaign_id": CAMPAIGN,
        "mode": mode,
        "max_uses": 1 if mode == "unique" else None,
        "created_at": T0,
    }
    fields.update(extra)
    return Code(**fields)


def test_code_lookup_is_case_insensitive(tables: list[str]) -> None:
    make_code("trail-abc").save()
    code = get_code("Trail-ABC")
    assert code is not None
    assert (code.pk, code.code) == ("CODE#TRAIL-ABC", "TRAIL-ABC")
    assert get_code("TRAIL-XYZ") is None


def test_unissued_unique_codes_form_a_sparse_pool(tables: list[str]) -> None:
    for name in ("TRAIL-C", "TRAIL-A", "TRAIL-B"):
        make_code(name).save()
    make_code("TRAIL10", mode="shared").save()  # shared codes are never in the pool
    assert [c.code for c in Code.pool("TRAIL10")] == ["TRAIL-A", "TRAIL-B", "TRAIL-C"]
    assert [c.code for c in Code.pool("TRAIL10", start_after="trail-a")] == ["TRAIL-B", "TRAIL-C"]


def issue(customer_id: str, code: str) -> None:
    transaction = Transaction()
    transaction.put(
        "issue",
        CodeIssue(
            customer_id=customer_id,
            offer_id="TRAIL10",
            campaign_id=CAMPAIGN,
            code=code,
            mode="unique",
            channel="online",
            issued_at=T0,
            expires_at=T0 + timedelta(days=30),
        ),
        condition=CodeIssue.pk.does_not_exist(),
    )
    transaction.update("code", Code.ref(code), *Code.issue(customer_id, T0))
    transaction.update("offer", Offer.ref("TRAIL10"), [Offer.codes_issued.add(1)])
    transaction.commit()


def test_issuing_a_code_is_once_per_customer_and_takes_it_out_of_the_pool(
    tables: list[str],
) -> None:
    make_offer().save()
    for name in ("TRAIL-A", "TRAIL-B"):
        make_code(name).save()
    issue("cust-1", "TRAIL-A")
    found = CodeIssue.find("cust-1", "TRAIL10")
    assert found is not None
    assert (found.pk, found.sk, found.code) == ("CUSTOMER#cust-1", "ISSUE#TRAIL10", "TRAIL-A")
    assert [c.code for c in Code.pool("TRAIL10")] == ["TRAIL-B"]
    code = get_code("TRAIL-A")
    assert code is not None
    assert code.issued_to == "cust-1"
    assert code.gsi1pk is None

    # Asking again: the issue record refuses, nothing else changes.
    with pytest.raises(TransactionCancelled) as again:
        issue("cust-1", "TRAIL-B")
    assert again.value.failed("issue")
    assert [c.code for c in Code.pool("TRAIL10")] == ["TRAIL-B"]

    # Another customer racing for an already issued code: the code refuses.
    with pytest.raises(TransactionCancelled) as race:
        issue("cust-2", "TRAIL-A")
    assert race.value.failed("code")
    assert CodeIssue.find("cust-2", "TRAIL10") is None
    offer = get_offer("TRAIL10")
    assert offer is not None
    assert offer.codes_issued == 1


# -- the redemption transaction -------------------------------------------------------


def setup_campaign(*, budget: int = 5000, max_rewards: int = 10, max_total: int = 3) -> None:
    publish(make_campaign(budget_amount=budget, budget_max_rewards=max_rewards))
    make_offer(max_total=max_total, per_customer=1, code_mode="shared").save()
    make_code("TRAIL10", mode="shared", max_uses=None).save()


def redeem(
    customer_id: str,
    order_id: str,
    *,
    code: str = "TRAIL10",
    discount: int = 1000,
    per_customer: int | None = 1,
    budget: int | None = 5000,
    max_rewards: int | None = 10,
) -> str:
    """What the offers logic will do at checkout: five limits, one transaction."""
    redemption_id = f"rdm_{customer_id}_{order_id}"
    transaction = Transaction()
    transaction.update("code", Code.ref(code), *Code.use())
    transaction.update(
        "customer_usage",
        CustomerUsage.ref(customer_id, "TRAIL10"),
        *CustomerUsage.use(customer_id, "TRAIL10", per_customer, T0),
    )
    transaction.update("offer", Offer.ref("TRAIL10"), *Offer.use_total())
    transaction.update(
        "budget",
        Campaign.ref(CAMPAIGN),
        *reservation(discount, 1, limits=BudgetLimits(budget, max_rewards)),
    )
    transaction.put(
        "redemption",
        Redemption(
            redemption_id=redemption_id,
            code=code,
            offer_id="TRAIL10",
            campaign_id=CAMPAIGN,
            customer_id=customer_id,
            order_id=order_id,
            channel="online",
            discount=Money(amount=discount, currency="JPY"),
            cart_total=Money(amount=12000, currency="JPY"),
            redeemed_at=T0,
        ),
        condition=Redemption.pk.does_not_exist(),
    )
    transaction.put(
        "order_guard",
        OrderRedemption(order_id=order_id, code=code, redemption_id=redemption_id, created_at=T0),
        condition=OrderRedemption.pk.does_not_exist(),
    )
    transaction.commit()
    return redemption_id


def roll_back(redemption: Redemption, discount: int = 1000) -> None:
    transaction = Transaction()
    transaction.update(
        "redemption",
        Redemption(redemption_id=redemption.redemption_id),
        *Redemption.roll_back("payment_failed", T0 + timedelta(minutes=5)),
    )
    transaction.update("code", Code.ref(redemption.code), *Code.release())
    transaction.update(
        "customer_usage",
        CustomerUsage.ref(redemption.customer_id, redemption.offer_id),
        *CustomerUsage.release(T0),
    )
    transaction.update("offer", Offer.ref(redemption.offer_id), *Offer.release_total())
    transaction.update("budget", Campaign.ref(CAMPAIGN), *release(discount, 1))
    transaction.delete(
        "order_guard",
        OrderRedemption(order_id=redemption.order_id, code=redemption.code),
        condition=OrderRedemption.owned_by(redemption.redemption_id),
    )
    transaction.commit()


def counters() -> tuple[int, int, int]:
    offer, campaign, code = get_offer("TRAIL10"), get_campaign(CAMPAIGN), get_code("TRAIL10")
    assert offer is not None and campaign is not None and code is not None
    return offer.redemptions_count, campaign.budget_used_amount, code.uses


def test_redemption_succeeds_under_every_limit(tables: list[str]) -> None:
    setup_campaign()
    redemption_id = redeem("cust-1", "order-1")
    redemption = get_redemption(redemption_id)
    assert redemption is not None
    assert redemption.status == REDEEMED
    assert redemption.discount == Money(amount=1000, currency="JPY")
    assert redemption.gsi1pk == "CAMPAIGN#spring-trail-2027#REDEMPTIONS"
    assert counters() == (1, 1000, 1)
    usage = CustomerUsage.get_or_none(*CustomerUsage.key("cust-1", "TRAIL10"))
    assert usage is not None
    assert (usage.uses, usage.offer_id, usage.customer_id) == (1, "TRAIL10", "cust-1")
    guard = OrderRedemption.find("order-1", "trail10")
    assert guard is not None
    assert guard.redemption_id == redemption_id
    assert [r.redemption_id for r in Redemption.for_campaign(CAMPAIGN)] == [redemption_id]


def test_per_customer_limit_cancels_with_its_reason(tables: list[str]) -> None:
    setup_campaign()
    redeem("cust-1", "order-1")
    with pytest.raises(TransactionCancelled) as cancelled:
        redeem("cust-1", "order-2")
    assert cancelled.value.reasons == {"customer_usage": "ConditionalCheckFailed"}
    assert counters() == (1, 1000, 1)  # nothing of the second attempt was written
    assert get_redemption("rdm_cust-1_order-2") is None


def test_offer_total_limit_cancels_with_its_reason(tables: list[str]) -> None:
    setup_campaign(max_total=2)
    redeem("cust-1", "order-1")
    redeem("cust-2", "order-2")
    with pytest.raises(TransactionCancelled) as cancelled:
        redeem("cust-3", "order-3")
    assert cancelled.value.failed("offer")
    assert not cancelled.value.failed("budget")
    assert counters() == (2, 2000, 2)


def test_budget_cap_cancels_with_its_reason(tables: list[str]) -> None:
    setup_campaign(budget=2500)
    redeem("cust-1", "order-1", budget=2500)
    redeem("cust-2", "order-2", budget=2500)
    with pytest.raises(TransactionCancelled) as cancelled:
        redeem("cust-3", "order-3", budget=2500)  # 2000 + 1000 > 2500
    assert cancelled.value.reasons == {"budget": "ConditionalCheckFailed"}
    assert counters() == (2, 2000, 2)
    redeem("cust-3", "order-3", budget=2500, discount=500)  # exactly to the cap
    assert counters() == (3, 2500, 3)


def test_unique_code_is_used_once(tables: list[str]) -> None:
    setup_campaign()
    make_code("TRAIL-U1", issued_to="cust-1", max_uses=1).save()
    redeem("cust-1", "order-1", code="TRAIL-U1")
    with pytest.raises(TransactionCancelled) as cancelled:
        redeem("cust-2", "order-2", code="TRAIL-U1", per_customer=None)
    assert cancelled.value.reasons == {"code": "ConditionalCheckFailed"}


def test_unknown_code_cancels_instead_of_creating_it(tables: list[str]) -> None:
    setup_campaign()
    with pytest.raises(TransactionCancelled) as cancelled:
        redeem("cust-1", "order-1", code="NOPE")
    assert cancelled.value.failed("code")
    assert get_code("NOPE") is None


def test_same_order_and_code_redeem_once(tables: list[str]) -> None:
    setup_campaign()
    redeem("cust-1", "order-1", per_customer=None)
    with pytest.raises(TransactionCancelled) as cancelled:
        redeem("cust-2", "order-1", per_customer=None)
    assert cancelled.value.failed("order_guard")
    assert counters() == (1, 1000, 1)


def test_rollback_releases_everything_exactly_once(tables: list[str]) -> None:
    setup_campaign()
    redemption_id = redeem("cust-1", "order-1")
    redemption = get_redemption(redemption_id)
    assert redemption is not None
    roll_back(redemption)
    assert counters() == (0, 0, 0)
    rolled = get_redemption(redemption_id)
    assert rolled is not None
    assert (rolled.status, rolled.rollback_reason) == (ROLLED_BACK, "payment_failed")
    assert OrderRedemption.find("order-1", "TRAIL10") is None

    with pytest.raises(TransactionCancelled) as again:
        roll_back(redemption)
    assert again.value.failed("redemption")
    assert counters() == (0, 0, 0)

    # The order may redeem the code again, under a new redemption.
    redeem("cust-1", "order-1b")
    assert counters() == (1, 1000, 1)


def test_labels_follow_items_whatever_the_call_order(tables: list[str]) -> None:
    # PynamoDB groups items by kind before sending; the labels must follow them.
    setup_campaign(max_total=0)
    transaction = Transaction()
    transaction.update("offer", Offer.ref("TRAIL10"), *Offer.use_total())
    transaction.put(
        "guard",
        OrderRedemption(order_id="o", code="TRAIL10", redemption_id="r", created_at=T0),
        condition=OrderRedemption.pk.does_not_exist(),
    )
    transaction.condition_check(
        "campaign_exists", Campaign, *Campaign.key(CAMPAIGN), condition=Campaign.pk.exists()
    )
    transaction.condition_check("code_missing", Code, *Code.key("NOPE"), condition=Code.pk.exists())
    with pytest.raises(TransactionCancelled) as cancelled:
        transaction.commit()
    assert cancelled.value.reasons == {
        "code_missing": "ConditionalCheckFailed",
        "offer": "ConditionalCheckFailed",
    }


def test_single_item_writes_respect_their_conditions(tables: list[str]) -> None:
    setup_campaign()
    with refused_by_condition():
        make_code("TRAIL10", mode="shared").save(condition=Code.pk.does_not_exist())


def test_transaction_rejects_reused_labels_and_empty_commits() -> None:
    transaction = Transaction()
    with pytest.raises(ValueError, match="empty"):
        transaction.commit()
    transaction.update("x", Offer.ref("A"), [Offer.codes_issued.add(1)])
    with pytest.raises(ValueError, match="duplicate"):
        transaction.update("x", Offer.ref("B"), [Offer.codes_issued.add(1)])
