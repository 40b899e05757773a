"""The cashback ledger and balances on moto: idempotent entries, no overdraft, due work."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from functions.core.models import TransactionCancelled
from functions.core.money import Money
from functions.wallet.models import (
    AVAILABLE,
    PENDING,
    LedgerEntry,
    get_balance,
    record_entry,
)

T0 = datetime(2027, 3, 10, 5, 0, tzinfo=UTC)


def entry(
    entry_id: str,
    kind: str,
    amount: int,
    bucket: str,
    *,
    customer_id: str = "cust-1",
    at: datetime = T0,
    **extra: Any,
) -> LedgerEntry:
    return LedgerEntry(
        entry_id=entry_id,
        customer_id=customer_id,
        kind=kind,
        amount=Money(amount=amount, currency="JPY"),
        bucket=bucket,
        recorded_at=at,
        **extra,
    )


def balance() -> tuple[int, int]:
    found = get_balance("cust-1", "JPY")
    assert found is not None
    return found.pending_amount, found.available_amount


def test_credit_is_recorded_once_whatever_the_retries(tables: list[str]) -> None:
    credit = entry(
        "credit#clm_1",
        "credit",
        1000,
        PENDING,
        claim_id="clm_1",
        campaign_id="spring",
        available_at=T0 + timedelta(days=30),
    )
    assert record_entry(credit, pending=1000) is True
    # A retry a second later: a different recordedAt, the same deterministic id.
    retry = entry("credit#clm_1", "credit", 1000, PENDING, at=T0 + timedelta(seconds=1))
    assert record_entry(retry, pending=1000) is False
    assert balance() == (1000, 0)
    assert [e.entry_id for e in LedgerEntry.history("cust-1")] == ["credit#clm_1"]
    found = LedgerEntry.find("cust-1", "credit#clm_1")
    assert found is not None
    assert found.amount == Money(amount=1000, currency="JPY")
    assert found.claim_id == "clm_1"
    assert found.sk == "ENTRY#2027-03-10T05:00:00.000000Z#credit#clm_1"
    assert LedgerEntry.find("cust-1", "credit#clm_2") is None


def test_spend_never_overdraws(tables: list[str]) -> None:
    record_entry(entry("credit#clm_1", "credit", 1000, AVAILABLE), available=1000)
    with pytest.raises(TransactionCancelled) as cancelled:
        record_entry(entry("spend#order-1", "spend", -1500, AVAILABLE), available=-1500)
    assert cancelled.value.reasons == {"balance": "ConditionalCheckFailed"}
    assert LedgerEntry.find("cust-1", "spend#order-1") is None  # nothing half-written
    assert record_entry(entry("spend#order-1", "spend", -1000, AVAILABLE), available=-1000)
    assert balance() == (0, 0)
    with pytest.raises(TransactionCancelled):
        record_entry(entry("spend#order-2", "spend", -1, AVAILABLE), available=-1)


def test_spend_without_any_balance_is_refused(tables: list[str]) -> None:
    with pytest.raises(TransactionCancelled) as cancelled:
        record_entry(entry("spend#order-1", "spend", -1, AVAILABLE), available=-1)
    assert cancelled.value.failed("balance")
    assert get_balance("cust-1", "JPY") is None


def test_release_moves_pending_to_available(tables: list[str]) -> None:
    record_entry(entry("credit#clm_1", "credit", 1000, PENDING), pending=1000)
    release = entry(
        "release#credit#clm_1",
        "release",
        1000,
        AVAILABLE,
        related_entry_id="credit#clm_1",
        expires_at=T0 + timedelta(days=365),
    )
    assert record_entry(release, pending=-1000, available=1000)
    assert balance() == (0, 1000)
    # Releasing more than is pending is refused.
    with pytest.raises(TransactionCancelled):
        record_entry(entry("release#x", "release", 1, AVAILABLE), pending=-1, available=1)


def test_adjustment_may_take_available_negative(tables: list[str]) -> None:
    record_entry(entry("credit#clm_1", "credit", 1000, AVAILABLE), available=1000)
    record_entry(entry("spend#order-1", "spend", -1000, AVAILABLE), available=-1000)
    refund = entry("adjust#refund-1", "adjust", -400, AVAILABLE, refund_id="refund-1")
    assert record_entry(refund, available=-400, allow_negative_available=True)
    assert balance() == (0, -400)


def test_history_is_newest_first_and_per_customer(tables: list[str]) -> None:
    for n in range(3):
        at = T0 + timedelta(hours=n)
        record_entry(entry(f"credit#clm_{n}", "credit", 100, PENDING, at=at), pending=100)
    record_entry(entry("credit#x", "credit", 100, PENDING, customer_id="cust-2"), pending=100)
    ids = [e.entry_id for e in LedgerEntry.history("cust-1")]
    assert ids == ["credit#clm_2", "credit#clm_1", "credit#clm_0"]
    assert [e.entry_id for e in LedgerEntry.history("cust-1", limit=1)] == ["credit#clm_2"]


def test_due_work_by_day(tables: list[str]) -> None:
    day = date(2027, 4, 9)
    morning = datetime(2027, 4, 9, 1, 0, tzinfo=UTC)
    evening = datetime(2027, 4, 9, 20, 0, tzinfo=UTC)
    for n, (customer, at) in enumerate([("cust-1", morning), ("cust-2", evening)]):
        credit = entry(f"credit#c{n}", "credit", 100, PENDING, customer_id=customer)
        credit.available_at = at
        record_entry(credit, pending=100)
    # Available at once: due for expiry instead, not for release.
    now_credit = entry("credit#now", "credit", 100, AVAILABLE, expires_at=evening)
    record_entry(now_credit, available=100)
    spend = entry("spend#o", "spend", -50, AVAILABLE, expires_at=evening)
    record_entry(spend, available=-50)  # negative entries never expire

    noon = datetime(2027, 4, 9, 12, 0, tzinfo=UTC)
    due_now = [(e.customer_id, e.entry_id) for e in LedgerEntry.due("release", day, noon)]
    assert due_now == [("cust-1", "credit#c0")]
    due_today = LedgerEntry.due("release", day, datetime(2027, 4, 10, tzinfo=UTC))
    assert [e.entry_id for e in due_today] == ["credit#c0", "credit#c1"]
    expiring = LedgerEntry.due("expire", day, datetime(2027, 4, 10, tzinfo=UTC))
    assert [e.entry_id for e in expiring] == ["credit#now"]
    assert list(LedgerEntry.due("release", date(2027, 4, 8), noon)) == []


def test_balances_are_per_currency(tables: list[str]) -> None:
    record_entry(entry("credit#a", "credit", 100, AVAILABLE), available=100)
    usd = LedgerEntry(
        entry_id="credit#b",
        customer_id="cust-1",
        kind="credit",
        amount=Money(amount=250, currency="USD"),
        bucket=AVAILABLE,
        recorded_at=T0,
    )
    record_entry(usd, available=250)
    jpy, dollars = get_balance("cust-1", "JPY"), get_balance("cust-1", "USD")
    assert jpy is not None and dollars is not None
    assert jpy.available == Money(amount=100, currency="JPY")
    assert dollars.available == Money(amount=250, currency="USD")
    assert dollars.pending == Money(amount=0, currency="USD")
