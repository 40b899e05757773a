"""A campaign's KPIs from its daily counters: the formulas of `docs/metrics.md`, pure.

`Totals.of` sums the counter items of a date range; `kpis` turns the sums into the
stats body's figures. Rates are floats from 0 to 1 (0 when nothing was there to
divide); money is integer minor units in the campaign's currency, and an average of
money rounds down to the minor unit, as percentage rewards do (DESIGN), so a figure
never claims a fraction of a yen. Amounts recorded in another currency than the
campaign's are left out of its money figures (and listed under ``otherCurrencies``):
mixing currencies is an error, never a conversion at some rate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from functions.analytics.logic import FUNNEL, FUNNEL_COUNTERS
from functions.analytics.models import DailyAmounts, DailyBreakdown, DailyCounter

__all__ = ["Totals", "kpis", "rate"]


def rate(part: int, whole: int) -> float:
    return part / whole if whole > 0 else 0.0


@dataclass
class Totals:
    """Sums over a date range of one campaign's counters."""

    counters: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    amounts: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    # (dimension, value, currency) -> (count, amount)
    breakdowns: dict[tuple[str, str, str], tuple[int, int]] = field(default_factory=dict)
    days: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        counters: Iterable[DailyCounter],
        amounts: Iterable[DailyAmounts],
        breakdowns: Iterable[DailyBreakdown],
    ) -> Totals:
        totals = cls()
        for counter in counters:
            day = totals.days.setdefault(counter.day, {})
            for name in DailyCounter.COUNTERS:
                value = getattr(counter, name) or 0
                totals.counters[name] += value
                day[name] = day.get(name, 0) + value
        for item in amounts:
            sums = totals.amounts.setdefault(item.currency, {})
            day = totals.days.setdefault(item.day, {})
            for name in DailyAmounts.SUMS:
                value = getattr(item, name) or 0
                sums[name] = sums.get(name, 0) + value
                day[f"{name}:{item.currency}"] = day.get(f"{name}:{item.currency}", 0) + value
        for part in breakdowns:
            key = (part.dimension, part.value, part.currency or "")
            count, amount = totals.breakdowns.get(key, (0, 0))
            totals.breakdowns[key] = (count + (part.total or 0), amount + (part.amount or 0))
        return totals


def _money(amount: int | None, currency: str) -> dict[str, Any] | None:
    return None if amount is None else {"amount": amount, "currency": currency}


def kpis(totals: Totals, currency: str) -> dict[str, Any]:
    """The stats body's figures (every key of DESIGN but ``budgetUsed`` and ``goals``,
    which come from the campaign itself)."""
    c = totals.counters
    own = totals.amounts.get(currency, {})
    sales, discounts, rewards = (
        own.get("sales", 0),
        own.get("discounts", 0),
        own.get("rewards_paid", 0),
    )
    orders, new_customers = c["orders"], c["new_customers"]
    decided = c["claims_approved"] + c["claims_rejected"]
    first_step = c[FUNNEL_COUNTERS[0]]
    return {
        "impressions": c["offer_views"],
        "sessions": c["sessions"],
        "conversions": c["conversions"],
        "conversionRate": rate(c["conversions"], c["sessions"]),
        "codesIssued": c["codes_issued"],
        "redemptions": c["redemptions"] - c["redemptions_rolled_back"],
        "redemptionRate": rate(c["redemptions"] - c["redemptions_rolled_back"], c["codes_issued"]),
        "claimsSubmitted": c["claims_submitted"],
        "claimsApproved": c["claims_approved"],
        "claimsRejected": c["claims_rejected"],
        "approvalRate": rate(c["claims_approved"], decided),
        "rewardsPaid": _money(rewards, currency),
        "discounts": _money(discounts, currency),
        "totalSales": _money(sales, currency),
        "orders": orders,
        "averageOrderValue": _money(sales // orders if orders else None, currency),
        "newCustomers": new_customers,
        "costPerAcquisition": _money(
            (discounts + rewards) // new_customers if new_customers else None, currency
        ),
        "bounceRate": rate(c["bounces"], c["sessions"]),
        "pagesPerSession": rate(c["page_views"], c["sessions"]),
        "averageSessionSeconds": rate(c["session_ms"], c["sessions"]) / 1000,
        "funnel": [
            {"step": step, "sessions": c[name], "rate": rate(c[name], first_step)}
            for step, name in zip(FUNNEL, FUNNEL_COUNTERS, strict=True)
        ],
        "attribution": _attribution(totals, currency),
        "otherCurrencies": {
            code: {name: sums.get(name, 0) for name in DailyAmounts.SUMS}
            for code, sums in sorted(totals.amounts.items())
            if code != currency
        },
        "days": _days(totals, currency),
    }


def _attribution(totals: Totals, currency: str) -> dict[str, list[dict[str, Any]]]:
    rewards = {
        value: amount
        for (dimension, value, code), (_, amount) in totals.breakdowns.items()
        if dimension == "rewards" and code == currency
    }
    models: dict[str, list[dict[str, Any]]] = {}
    for model, dimension in (("lastTouch", "last_touch"), ("firstTouch", "first_touch")):
        conversions = {
            value: count
            for (kind, value, _), (count, _) in totals.breakdowns.items()
            if kind == dimension
        }
        channels = set(conversions) | (set(rewards) if model == "lastTouch" else set())
        rows = []
        for channel in channels:
            row: dict[str, Any] = {"channel": channel, "conversions": conversions.get(channel, 0)}
            if model == "lastTouch":
                row["rewardsPaid"] = {"amount": rewards.get(channel, 0), "currency": currency}
            rows.append(row)
        rows.sort(key=lambda row: (-row["conversions"], row["channel"]))
        models[model] = rows
    return models


def _days(totals: Totals, currency: str) -> list[dict[str, Any]]:
    return [
        {
            "date": day,
            "sessions": figures.get("sessions", 0),
            "conversions": figures.get("conversions", 0),
            "sales": {"amount": figures.get(f"sales:{currency}", 0), "currency": currency},
            "rewardsPaid": {
                "amount": figures.get(f"rewards_paid:{currency}", 0),
                "currency": currency,
            },
            "discounts": {"amount": figures.get(f"discounts:{currency}", 0), "currency": currency},
        }
        for day, figures in sorted(totals.days.items())
    ]
