"""Claims, duplicate guards and claim counts on moto: the documented access patterns."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from functions.claims.models import (
    Claim,
    CustomerClaimCount,
    DuplicateGuard,
    PurchaseItem,
    PurchaseMap,
    TimelineEntry,
    acquire_guard,
    get_claim,
)
from functions.core.models import Transaction, TransactionCancelled
from functions.core.money import Money
from tests.support.tables import refused_by_condition

T0 = datetime(2027, 3, 5, 3, 0, tzinfo=UTC)
CAMPAIGN = "spring-trail-2027"


def make_claim(claim_id: str, customer_id: str = "cust-1", minutes: int = 0) -> Claim:
    submitted = T0 + timedelta(minutes=minutes)
    return Claim(
        claim_id=claim_id,
        campaign_id=CAMPAIGN,
        customer_id=customer_id,
        purchase=PurchaseMap(
            retailer="Trail Store Shibuya",
            receipt_number="R-0001",
            purchased_at=T0 - timedelta(days=2),
            currency="JPY",
            total=12000,
            items=[PurchaseItem(sku="TRAIL-01", quantity=1, unit_price=12000)],
        ),
        receipt_key="receipts/cust-1/r.jpg",
        timeline=[TimelineEntry(at=submitted, status="submitted")],
        submitted_at=submitted,
        updated_at=submitted,
    )


def test_claim_round_trip(tables: list[str]) -> None:
    make_claim("clm_1").save(condition=Claim.pk.does_not_exist())
    claim = get_claim("clm_1")
    assert claim is not None
    assert (claim.pk, claim.sk, claim.status) == ("CLAIM#clm_1", "META", "submitted")
    assert claim.purchase.total == 12000
    assert claim.purchase.order_id is None
    assert claim.purchase.items[0].unit_price == 12000
    assert claim.purchase.purchased_at == T0 - timedelta(days=2)
    assert [e.status for e in claim.timeline] == ["submitted"]
    assert claim.reward is None
    assert claim.reasons == []
    with refused_by_condition():
        make_claim("clm_1").save(condition=Claim.pk.does_not_exist())


def test_customer_claims_newest_first(tables: list[str]) -> None:
    for n, claim_id in enumerate(["clm_a", "clm_b", "clm_c"]):
        make_claim(claim_id, minutes=n).save()
    make_claim("clm_other", customer_id="cust-2").save()
    assert [c.claim_id for c in Claim.for_customer("cust-1")] == ["clm_c", "clm_b", "clm_a"]
    recent = Claim.for_customer("cust-1", since=T0 + timedelta(minutes=1), newest_first=False)
    assert [c.claim_id for c in recent] == ["clm_b", "clm_c"]


def test_transition_moves_the_claim_into_the_review_queue_once(tables: list[str]) -> None:
    make_claim("clm_1").save()
    make_claim("clm_2", minutes=1).save()
    at = T0 + timedelta(minutes=5)
    for claim_id in ("clm_2", "clm_1"):
        actions, condition = Claim.transition(
            "in_review", at, from_statuses=("submitted", "verifying"), note="over 2000"
        )
        Claim.ref(claim_id).update(
            [
                *actions,
                Claim.reward.set(Money(amount=2500, currency="JPY")),
                Claim.task_token.set("token-" + claim_id),
                Claim.reasons.set(["needs_review"]),
            ],
            condition,
        )
    queue = list(Claim.with_status("in_review"))
    assert [c.claim_id for c in queue] == ["clm_1", "clm_2"]  # by submission time
    assert list(Claim.with_status("submitted")) == []
    claim = get_claim("clm_1")
    assert claim is not None
    assert [(e.status, e.note) for e in claim.timeline] == [
        ("submitted", None),
        ("in_review", "over 2000"),
    ]
    assert claim.reward == Money(amount=2500, currency="JPY")
    assert claim.updated_at == at

    # A second decision for the same claim is refused by the status condition.
    Claim.ref("clm_1").update(*Claim.transition("approved", at, from_statuses=("in_review",)))
    with refused_by_condition():
        Claim.ref("clm_1").update(*Claim.transition("rejected", at, from_statuses=("in_review",)))
    claim = get_claim("clm_1")
    assert claim is not None
    assert claim.status == "approved"
    assert [c.claim_id for c in Claim.with_status("approved")] == ["clm_1"]


def test_transition_refuses_unknown_statuses() -> None:
    with pytest.raises(ValueError, match="unknown claim status"):
        Claim.transition("paid", T0, from_statuses=("approved",))


def receipt_guard(
    claim_id: str, retailer: str = "trail store", number: str = "R-1"
) -> DuplicateGuard:
    return DuplicateGuard.for_receipt(
        campaign_id=CAMPAIGN,
        retailer=retailer,
        receipt_number=number,
        purchase_date=date(2027, 3, 3),
        claim_id=claim_id,
        at=T0,
    )


def test_receipt_guard_points_duplicates_to_the_first_claim(tables: list[str]) -> None:
    assert acquire_guard(receipt_guard("clm_1")) == "clm_1"
    assert acquire_guard(receipt_guard("clm_1")) == "clm_1"  # a retried step: still its own
    assert acquire_guard(receipt_guard("clm_2")) == "clm_1"  # the duplicate
    assert acquire_guard(receipt_guard("clm_3", number="R-2")) == "clm_3"
    guard = receipt_guard("x")
    assert guard.pk == "DUP#spring-trail-2027#RECEIPT#trail store#R-1#2027-03-03"


def test_receipt_guard_keys_cannot_be_confused_by_separators(tables: list[str]) -> None:
    assert acquire_guard(receipt_guard("clm_1", retailer="a#b", number="c")) == "clm_1"
    assert acquire_guard(receipt_guard("clm_2", retailer="a", number="b#c")) == "clm_2"


def test_image_guard(tables: list[str]) -> None:
    digest = "AB" * 32

    def guard(claim_id: str, campaign_id: str = CAMPAIGN) -> DuplicateGuard:
        return DuplicateGuard.for_image(
            campaign_id=campaign_id, sha256=digest, claim_id=claim_id, at=T0
        )

    assert acquire_guard(guard("clm_1")) == "clm_1"
    assert acquire_guard(guard("clm_2")) == "clm_1"
    # Another campaign may accept the same receipt once.
    assert acquire_guard(guard("clm_3", campaign_id="autumn")) == "clm_3"
    assert guard("x").pk == f"DUP#{CAMPAIGN}#IMAGE#{digest.lower()}"


def count(claim_id: str, limit: int | None) -> None:
    transaction = Transaction()
    transaction.update(
        "count",
        CustomerClaimCount.ref("cust-1", CAMPAIGN),
        *CustomerClaimCount.count_claim(
            claim_id, limit, T0, customer_id="cust-1", campaign_id=CAMPAIGN
        ),
    )
    transaction.commit()


def counted() -> set[str]:
    item = CustomerClaimCount.get_or_none(*CustomerClaimCount.key("cust-1", CAMPAIGN))
    assert item is not None
    return set(item.claim_ids)


def test_claim_count_limit_is_idempotent_per_claim(tables: list[str]) -> None:
    count("clm_1", 2)
    count("clm_1", 2)  # a retry does not count twice
    count("clm_2", 2)
    assert counted() == {"clm_1", "clm_2"}
    count("clm_2", 2)  # a retry at the limit is still accepted
    with pytest.raises(TransactionCancelled) as cancelled:
        count("clm_3", 2)
    assert cancelled.value.failed("count")
    item = CustomerClaimCount.get_or_none(*CustomerClaimCount.key("cust-1", CAMPAIGN))
    assert item is not None
    assert item.claims_counted == 2

    # A rejected claim gives its place back.
    CustomerClaimCount.ref("cust-1", CAMPAIGN).update(CustomerClaimCount.release_claim("clm_1", T0))
    count("clm_3", 2)
    assert counted() == {"clm_2", "clm_3"}


def test_claim_count_without_limit(tables: list[str]) -> None:
    for n in range(4):
        count(f"clm_{n}", None)
    assert len(counted()) == 4
