"""The wallet's rules under concurrency: threads racing on in-process moto.

moto is given one request at a time (as the local cloud's gate does), so every race a
read-then-write could lose is exercised at the granularity of DynamoDB calls, and only
the transactions' conditions can keep the counts right.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import Any

import pytest

from functions.core.money import Money
from functions.wallet.dal import RefundInput, WalletStore
from functions.wallet.errors import WalletError
from functions.wallet.models import Lot, order_lot_id
from tests.unit.wallet.wallet_support import (
    CASHBACK,
    PLACED,
    assert_audited,
    at,
    aws_env,
    cashback,
    publish,
    purchase,
    serialised_moto,
    tables,
    used,
)

__all__ = ["aws_env", "serialised_moto", "tables"]

pytestmark = pytest.mark.usefixtures("serialised_moto")


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call at once (a thread each); domain refusals are returned, not raised."""

    def attempt(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except WalletError as refused:
            return refused

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(attempt, calls))


def kinds(results: list[Any]) -> Counter[str]:
    return Counter(r.code if isinstance(r, WalletError) else "ok" for r in results)


def test_twenty_spends_against_a_balance_covering_five(tables: list[str]) -> None:
    publish(cashback(cashback={"pending_days": 0}))
    store = WalletStore()
    store.record_purchase(purchase(price=5000), now=PLACED)  # 500 available
    results = race(
        [
            partial(store.spend, "cust-1", f"buy-{n}", Money.of(100, "JPY"), now=PLACED)
            for n in range(20)
        ]
    )
    assert kinds(results) == {"ok": 5, "insufficient_balance": 15}
    view = store.wallet("cust-1", currency=None, page_token=None, limit=100)
    assert view.available.amount == 0
    assert sorted(r.available_after.amount for r in results if not isinstance(r, WalletError)) == [
        0,
        100,
        200,
        300,
        400,
    ]
    assert_audited(store, "cust-1")


def test_thirty_purchases_against_a_budget_covering_ten(tables: list[str]) -> None:
    publish(cashback(budget={"amount": 10_000}))
    store = WalletStore()
    results = race(
        [
            partial(store.record_purchase, purchase(f"ord-{n}", f"cust-{n}"), now=PLACED)
            for n in range(30)
        ]
    )
    outcomes = Counter(r.earnings[0].outcome for r in results if not isinstance(r, WalletError))
    assert outcomes == {"credited": 10, "budget_exhausted": 20}
    assert used() == (10_000, 10)
    assert_audited(store, *(f"cust-{n}" for n in range(30)))


def test_one_customers_purchases_racing_for_a_per_customer_limit(tables: list[str]) -> None:
    publish(cashback(limits={"per_customer": 3}))
    store = WalletStore()
    results = race(
        [partial(store.record_purchase, purchase(f"ord-{n}"), now=PLACED) for n in range(8)]
    )
    outcomes = Counter(r.earnings[0].outcome for r in results if not isinstance(r, WalletError))
    assert outcomes == {"credited": 3, "limit_reached": 5}
    assert used() == (3000, 3)
    assert_audited(store, "cust-1")


def test_the_same_purchase_sent_ten_times_at_once_is_one_purchase(tables: list[str]) -> None:
    publish(cashback())
    publish(cashback(id="zz-second"))
    store = WalletStore()
    results = race([lambda: store.record_purchase(purchase(), now=PLACED) for _ in range(10)])
    assert Counter(r.new for r in results if not isinstance(r, WalletError)) == {
        True: 1,
        False: 9,
    }
    assert {r.earnings for r in results if not isinstance(r, WalletError)} == {results[0].earnings}
    assert used() == (1000, 1)
    assert used("zz-second") == (1000, 1)
    assert_audited(store, "cust-1")


def test_refunds_racing_on_one_order_take_back_what_their_sum_does(tables: list[str]) -> None:
    publish(cashback())
    store = WalletStore()
    store.record_purchase(purchase(price=9999), now=PLACED)  # earns 999
    results = race(
        [
            partial(store.refund, "ord-1", RefundInput(f"rf-{n}", 1111, "JPY", None), now=PLACED)
            for n in range(9)
        ]
        + [
            lambda: store.refund("ord-1", RefundInput("rf-0", 1111, "JPY", None), now=PLACED)
            for _ in range(3)
        ]
    )
    assert kinds(results) == {"ok": 12}
    refunds = {r.refund_id: r for r in results if not isinstance(r, WalletError)}
    assert sorted(r.refunded_total.amount for r in refunds.values()) == [
        1111 * n for n in range(1, 10)
    ]
    assert sum(r.reversals[0].reversed.amount for r in refunds.values()) == 999
    assert used() == (0, 0)
    stored = Lot.get(*Lot.key("cust-1", "JPY", order_lot_id("ord-1", CASHBACK["id"])))
    assert (stored.remaining, stored.reversed) == (0, 999)
    assert_audited(store, "cust-1")


def test_sweeps_racing_move_each_lot_once(tables: list[str]) -> None:
    publish(cashback())
    store = WalletStore(sweep_lookback_days=5)
    for n in range(4):
        store.record_purchase(purchase(f"ord-{n}"), now=PLACED)
    reports = race([lambda: store.sweep(now=at(4)) for _ in range(4)])
    assert sum(r.released for r in reports if not isinstance(r, WalletError)) == 4
    assert store.wallet("cust-1", currency=None, page_token=None).available.amount == 4000
    assert_audited(store, "cust-1")


def test_spends_and_cancels_racing(tables: list[str]) -> None:
    publish(cashback(cashback={"pending_days": 0}))
    store = WalletStore()
    store.record_purchase(purchase(price=3000), now=PLACED)  # 300 available
    store.spend("cust-1", "buy-0", Money.of(300, "JPY"), now=PLACED)
    results = race(
        [lambda: store.cancel_spend("cust-1", "buy-0", now=at(hours=1)) for _ in range(5)]
        + [
            partial(store.spend, "cust-1", f"buy-{n}", Money.of(100, "JPY"), now=at(hours=1))
            for n in range(1, 6)
        ]
    )
    cancels = [r for r in results[:5] if not isinstance(r, WalletError)]
    assert Counter(c.new for c in cancels) == {True: 1, False: 4}
    spent = [r for r in results[5:] if not isinstance(r, WalletError)]
    # Whatever the order, no more is spent than the cancel gave back.
    assert len(spent) <= 3
    view = store.wallet("cust-1", currency=None, page_token=None, limit=100)
    assert view.available.amount == 300 - 100 * len(spent)
    assert_audited(store, "cust-1")


def test_a_late_credit_during_a_release_keeps_the_books(tables: list[str]) -> None:
    publish(cashback(cashback={"pending_days": 1}))
    store = WalletStore(sweep_lookback_days=3)
    for n in range(3):
        store.record_purchase(purchase(f"ord-{n}"), now=PLACED)
    later = at(2)
    results: list[Any] = race(
        [lambda: store.sweep(now=later)]
        + [
            partial(
                store.record_purchase,
                purchase(f"late-{n}", placed_at=later),
                now=later + timedelta(seconds=n),
            )
            for n in range(3)
        ]
    )
    assert not any(isinstance(r, WalletError) for r in results)
    assert_audited(store, "cust-1")
