"""The wallet's rules, pure: no AWS, no PynamoDB (the import test checks it).

- when a lot becomes available and when it expires (`availability`), and on which local
  days its customer is warned before it expires (`CASHBACK_REMINDER_DAYS`,
  `days_before_expiry`, `reminder_window`);
- what a purchase earns in a campaign, or why nothing (`earning_for`, `Outcome`);
- what a refund takes back: each lot keeps ``floor(earned * (total - refunded) / total)``
  of what it earned, on the order's cumulative refunded total (`kept`, `reversal`), so
  refunds in steps take back exactly what one refund of their sum does; what a refund
  of items is worth (`refund_of_items`); how a lot gives the reversal back
  (`split_reversal`);
- which lots a spend draws on, the one expiring first first (`allocate_spend`), and how
  money becoming available first pays what the customer owes (`settle_owed`);
- the audit's arithmetic over balances, lots, entries and spends (`audit_differences`);
- canonical fingerprints of bodies (a replay with another body is a conflict) and the
  opaque page tokens of the wallet's entries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final, cast

from pydantic import ValidationError

from functions.campaigns.config import CampaignConfig
from functions.campaigns.rewards import Cart, LineItem, reward_for
from functions.core.clock import deadline_after_days, format_instant, local_date
from functions.core.vocabulary import SalesChannel
from functions.wallet.errors import InvalidPageToken, UnknownRefundItem

__all__ = [
    "CASHBACK_REMINDER_DAYS",
    "MAX_LOTS_PER_SPEND",
    "AuditReport",
    "BalanceFacts",
    "Earning",
    "EntryFacts",
    "LotFacts",
    "Outcome",
    "PurchaseInput",
    "PurchaseLine",
    "RefundInput",
    "ReversalSplit",
    "SpendFacts",
    "SpendableLot",
    "allocate_spend",
    "audit_differences",
    "availability",
    "cart_of",
    "days_before_expiry",
    "decode_page_token",
    "earning_for",
    "encode_page_token",
    "kept",
    "next_move",
    "purchase_fingerprint",
    "refund_fingerprint",
    "refund_of_items",
    "reminder_window",
    "reversal",
    "settle_owed",
    "spendable_total",
    "split_reversal",
]

# A spend is one transaction: its spend item, the balance, its entry and marker, and one
# update per lot it draws on; DynamoDB takes at most 100 items. A cancel touches the
# same items.
MAX_LOTS_PER_SPEND: Final = 96


# -- the facts the store hands over ---------------------------------------------------


@dataclass(frozen=True)
class PurchaseLine:
    sku: str
    category: str | None
    quantity: int
    unit_price: int


@dataclass(frozen=True)
class PurchaseInput:
    order_id: str
    customer_id: str
    channel: str  # "online" | "in_store"
    placed_at: datetime
    currency: str
    items: tuple[PurchaseLine, ...]
    total: int


@dataclass(frozen=True)
class RefundInput:
    """A refund by amount (``amount``, ``currency``) or by items (``items``: (sku,
    quantity) pairs, worth what those units cost as bought); items win when both are
    given."""

    refund_id: str
    amount: int | None
    currency: str | None
    items: tuple[tuple[str, int], ...] | None  # (sku, quantity) refunded


@dataclass(frozen=True)
class AuditReport:
    customer_id: str
    ok: bool
    differences: tuple[str, ...]  # human lines, one per mismatch


# -- availability ---------------------------------------------------------------------


def availability(
    origin: datetime,
    credited_at: datetime,
    *,
    pending_days: int,
    expires_after_days: int | None,
    tz: str,
) -> tuple[datetime, datetime | None]:
    """When a lot credited at `credited_at` for a fact of `origin` (the purchase's
    ``placedAt``, the claim's approval) becomes available, and when it expires.

    ``pending_days = d >= 1``: at the start of the d-th local day after `origin`'s local
    day (`deadline_after_days(origin, d - 1, tz)`); ``d = 0``: at `origin`. Never before
    the credit itself: a fact recorded after its pending period is available at once.
    It expires ``expires_after_days = e`` local days after it became available, at the
    start of the local day after the e-th (None: never).
    """
    due = origin if pending_days == 0 else deadline_after_days(origin, pending_days - 1, tz)
    available_at = max(due, credited_at)
    if expires_after_days is None:
        return available_at, None
    return available_at, deadline_after_days(available_at, expires_after_days - 1, tz)


# -- reminders before expiry ----------------------------------------------------------

# The local days before its expiry on which a lot's customer is warned that its remainder
# will expire (`CashbackExpiring`): a week ahead, and on its last day.
CASHBACK_REMINDER_DAYS: Final = (7, 1)
# How far a zone's offset may move between two instants a week apart (a DST change, the
# odd shift of a zone's standard time): `reminder_window` is that much wider each side.
_OFFSET_SHIFT: Final = timedelta(hours=3)


def days_before_expiry(expires_at: datetime, now: datetime, tz: str) -> int:
    """How many local days of `tz` `now` is before `expires_at`: the local date of the
    expiry minus today's. An expiry is the start of a local day (`availability`), so 1
    means today is the last day to spend it, 7 that a week is left."""
    return (local_date(expires_at, tz) - local_date(now, tz)).days


def reminder_window(now: datetime, days_before: int) -> tuple[datetime, datetime]:
    """Instants bounding every expiry that is `days_before` local days after `now` in some
    time zone, whichever it is (lots of many zones share the expiry index).

    Two instants `d` local dates apart are more than ``d - 1`` and less than ``d + 1``
    days apart on the local clock, which differs from elapsed time only by the zone's
    offset changes in between."""
    return (
        now + timedelta(days=days_before - 1) - _OFFSET_SHIFT,
        now + timedelta(days=days_before + 1) + _OFFSET_SHIFT,
    )


# -- earning --------------------------------------------------------------------------


class Outcome(StrEnum):
    """What a purchase earned in a campaign; every value but ``credited`` is a reason."""

    CREDITED = "credited"
    BELOW_MIN_PURCHASE = "below_min_purchase"
    NOT_ELIGIBLE = "not_eligible"
    WRONG_CHANNEL = "wrong_channel"
    CURRENCY_MISMATCH = "currency_mismatch"
    OUTSIDE_WINDOW = "outside_window"
    BUDGET_EXHAUSTED = "budget_exhausted"
    LIMIT_REACHED = "limit_reached"
    NO_REWARD = "no_reward"


@dataclass(frozen=True)
class Earning:
    outcome: Outcome
    amount: int = 0  # minor units of the purchase's currency; 0 unless credited

    @property
    def credits(self) -> bool:
        return self.outcome is Outcome.CREDITED


def cart_of(purchase: PurchaseInput) -> Cart | None:
    """The purchase as a cart for the campaigns' rules; None when it is not one they can
    read (the API validates purchases to the same limits, so only a caller skipping it
    gets here)."""
    try:
        return Cart(
            currency=purchase.currency,
            items=tuple(
                LineItem(
                    sku=line.sku,
                    category=line.category,
                    quantity=line.quantity,
                    unitPrice=line.unit_price,
                )
                for line in purchase.items
            ),
        )
    except ValidationError:
        return None


def earning_for(config: CampaignConfig, purchase: PurchaseInput, cart: Cart | None) -> Earning:
    """What `purchase` earns in the cashback campaign `config`, before its budget and the
    customer's limit (those are the transaction's to decide).

    The checks, first refusal wins: the currency, the window (``placedAt``), then the
    campaign's own rules (channel, eligible lines, minimum) and the amount.
    """
    if purchase.currency != config.currency:
        return Earning(Outcome.CURRENCY_MISMATCH)
    if not config.window.contains(purchase.placed_at):
        return Earning(Outcome.OUTSIDE_WINDOW)
    if cart is None:
        return Earning(Outcome.NOT_ELIGIBLE)
    quote = reward_for(config, cart, cast(SalesChannel, purchase.channel))
    if quote.reasons:
        return Earning(Outcome(quote.reasons[0]))
    if quote.amount.amount <= 0:
        # A percentage of a small subtotal rounds down to nothing.
        return Earning(Outcome.NO_REWARD)
    return Earning(Outcome.CREDITED, quote.amount.amount)


# -- refunds --------------------------------------------------------------------------


def kept(earned: int, total: int, refunded: int) -> int:
    """What a lot that earned `earned` on an order of `total` keeps once `refunded` of the
    order is refunded: ``floor(earned * (total - refunded) / total)``.

    Rounding down means a refund never leaves the customer a unit the formula does not
    give; an order of total 0 has nothing to refund, so its lots keep everything.
    """
    if total <= 0:
        return earned
    refunded = min(max(refunded, 0), total)
    return earned * (total - refunded) // total


def reversal(earned: int, total: int, refunded_before: int, refunded_after: int) -> int:
    """What a refund moving the order's refunded total from `refunded_before` to
    `refunded_after` takes back from a lot: what it kept before minus what it keeps after.

    Summed over an order's refunds this telescopes to ``earned - kept(final)``, so the
    steps never matter.
    """
    return kept(earned, total, refunded_before) - kept(earned, total, refunded_after)


def refund_of_items(
    order_id: str,
    lines: Sequence[PurchaseLine],
    refunded_items: Mapping[str, int],
    items: Sequence[tuple[str, int]],
) -> tuple[int, dict[str, int]]:
    """The amount of refunding `items` ((sku, quantity), a sku may repeat) of an order of
    `lines` of which `refunded_items` (sku -> quantity) were refunded before, and the
    refunded quantities after.

    Units are priced as bought; a sku bought on several lines is refunded from its first
    line on. `UnknownRefundItem` for a sku the order does not hold that many more of.
    """
    wanted: dict[str, int] = {}
    for sku, quantity in items:
        wanted[sku] = wanted.get(sku, 0) + quantity
    after = dict(refunded_items)
    amount = 0
    for sku, quantity in wanted.items():
        bought = [(line.unit_price, line.quantity) for line in lines if line.sku == sku]
        done = refunded_items.get(sku, 0)
        refundable = sum(units for _, units in bought) - done
        if not bought or quantity > refundable:
            raise UnknownRefundItem(order_id, sku, refundable=max(refundable, 0))
        amount += _price_of_units(bought, skip=done, take=quantity)
        after[sku] = done + quantity
    return amount, after


def _price_of_units(lines: Sequence[tuple[int, int]], *, skip: int, take: int) -> int:
    price = 0
    for unit_price, units in lines:
        skipped = min(skip, units)
        skip -= skipped
        taken = min(take, units - skipped)
        take -= taken
        price += taken * unit_price
    return price


@dataclass(frozen=True)
class ReversalSplit:
    """How a lot gives back a reversal: from what remains, set against what expired (the
    customer never had it), and the rest owed (it was spent)."""

    from_remaining: int
    waived: int
    owed: int


def split_reversal(amount: int, *, remaining: int, expired_unwaived: int) -> ReversalSplit:
    from_remaining = min(amount, max(remaining, 0))
    left = amount - from_remaining
    waived = min(left, max(expired_unwaived, 0))
    return ReversalSplit(from_remaining, waived, left - waived)


# -- spending and owing ---------------------------------------------------------------


@dataclass(frozen=True)
class SpendableLot:
    lot_id: str
    campaign_id: str
    remaining: int
    expires_at: datetime | None


def _spendable(lots: Iterable[SpendableLot], now: datetime) -> list[SpendableLot]:
    usable = [
        lot
        for lot in lots
        if lot.remaining > 0 and (lot.expires_at is None or lot.expires_at > now)
    ]
    # Expiring first first; lots that never expire last; ties by lot id, so two
    # processes allocating the same state draw the same lots.
    return sorted(
        usable,
        key=lambda lot: (lot.expires_at is None, lot.expires_at or now, lot.lot_id),
    )


def spendable_total(lots: Iterable[SpendableLot], now: datetime) -> int:
    """What can be spent at `now`: the remainders of available lots not past their expiry
    (a lot past it is the sweep's to expire, even before the sweep has run)."""
    return sum(lot.remaining for lot in _spendable(lots, now))


def allocate_spend(
    amount: int, lots: Iterable[SpendableLot], now: datetime
) -> list[tuple[SpendableLot, int]] | None:
    """The draws covering `amount`, the lot expiring first first; None if the spendable
    lots do not cover it."""
    if amount <= 0:
        raise ValueError(f"a spend is positive, got {amount}")
    draws: list[tuple[SpendableLot, int]] = []
    left = amount
    for lot in _spendable(lots, now):
        if left == 0:
            break
        take = min(left, lot.remaining)
        draws.append((lot, take))
        left -= take
    return None if left > 0 else draws


def settle_owed(owed: int, amounts: Sequence[int]) -> list[int]:
    """Of each amount becoming available, in order, how much first pays what is owed."""
    left = max(owed, 0)
    settled: list[int] = []
    for amount in amounts:
        part = min(left, max(amount, 0))
        settled.append(part)
        left -= part
    return settled


def next_move(moments: Iterable[tuple[datetime, int]]) -> tuple[datetime, int] | None:
    """The earliest instant of (instant, amount) pairs with a positive amount, and the
    total due then."""
    due: dict[datetime, int] = defaultdict(int)
    for instant, amount in moments:
        if amount > 0:
            due[instant] += amount
    if not due:
        return None
    first = min(due)
    return first, due[first]


# -- fingerprints and page tokens -----------------------------------------------------


def _digest(document: Any) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def purchase_fingerprint(purchase: PurchaseInput) -> str:
    """A digest of everything a purchase says (the order of its lines included: refunds
    of items price units line by line)."""
    return _digest(
        {
            "customerId": purchase.customer_id,
            "channel": purchase.channel,
            "placedAt": format_instant(purchase.placed_at),
            "currency": purchase.currency,
            "items": [
                [line.sku, line.category, line.quantity, line.unit_price] for line in purchase.items
            ],
            "total": purchase.total,
        }
    )


def refund_fingerprint(refund: RefundInput) -> str:
    return _digest(
        {
            "amount": refund.amount,
            "currency": refund.currency,
            "items": [list(item) for item in refund.items] if refund.items is not None else None,
        }
    )


def encode_page_token(customer_id: str, currency: str, last_key: str) -> str:
    document = json.dumps({"c": customer_id, "cur": currency, "k": last_key}, ensure_ascii=False)
    return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")


def decode_page_token(
    token: str, *, customer_id: str, currency: str | None, prefix: str
) -> tuple[str, str]:
    """The currency and the last key of the page a token follows; `InvalidPageToken`
    unless this wallet handed it out for this customer (and this currency, when one is
    asked for)."""
    try:
        padded = token + "=" * (-len(token) % 4)
        document = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode())
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidPageToken() from None
    if not isinstance(document, dict):
        raise InvalidPageToken()
    key, token_currency = document.get("k"), document.get("cur")
    if (
        document.get("c") != customer_id
        or not isinstance(token_currency, str)
        or (currency is not None and token_currency != currency)
        or not isinstance(key, str)
        or not key.startswith(prefix)
    ):
        raise InvalidPageToken()
    return token_currency, key


# -- audit ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BalanceFacts:
    currency: str
    pending: int
    available: int
    owed: int


@dataclass(frozen=True)
class LotFacts:
    lot_id: str
    campaign_id: str
    currency: str
    state: str
    earned: int
    remaining: int
    spent: int
    settled: int
    reversed: int
    expired: int
    waived: int
    owed: int


@dataclass(frozen=True)
class EntryFacts:
    entry_id: str
    currency: str
    pending_delta: int
    available_delta: int
    owed_delta: int


@dataclass(frozen=True)
class SpendFacts:
    order_id: str
    active: bool  # not cancelled
    draws: tuple[tuple[str, int], ...]  # (lot id, amount)


_BUCKETS: Final = ("pending", "available", "owed")


def audit_differences(
    balances: Sequence[BalanceFacts],
    lots: Sequence[LotFacts],
    entries: Sequence[EntryFacts],
    spends: Sequence[SpendFacts],
) -> list[str]:
    """Every way the ledger disagrees with itself, one line each (none: it agrees).

    Per currency, the entries' deltas sum to each balance, the lots' remainders to
    ``pending`` (pending lots) and ``available`` (the others), and what lots were charged
    as owed minus what settled owed to ``owed``. Per lot, its parts sum to what it earned
    and none is negative; per lot, what active spends drew equals its ``spent``. No entry
    id appears twice and no balance is negative.
    """
    differences: list[str] = []
    held = {balance.currency: balance for balance in balances}
    currencies = sorted(
        set(held) | {lot.currency for lot in lots} | {entry.currency for entry in entries}
    )
    for currency in currencies:
        balance = held.get(currency) or BalanceFacts(currency, 0, 0, 0)
        stored = {"pending": balance.pending, "available": balance.available, "owed": balance.owed}
        for bucket in _BUCKETS:
            if stored[bucket] < 0:
                differences.append(
                    f"{currency} {bucket}: the balance is negative ({stored[bucket]})"
                )
        in_currency = [entry for entry in entries if entry.currency == currency]
        from_entries = {
            "pending": sum(entry.pending_delta for entry in in_currency),
            "available": sum(entry.available_delta for entry in in_currency),
            "owed": sum(entry.owed_delta for entry in in_currency),
        }
        currency_lots = [lot for lot in lots if lot.currency == currency]
        from_lots = {
            "pending": sum(lot.remaining for lot in currency_lots if lot.state == "pending"),
            "available": sum(lot.remaining for lot in currency_lots if lot.state != "pending"),
            "owed": sum(lot.owed for lot in currency_lots)
            - sum(lot.settled for lot in currency_lots),
        }
        for bucket in _BUCKETS:
            for source, total in (("the entries", from_entries), ("the lots", from_lots)):
                if total[bucket] != stored[bucket]:
                    differences.append(
                        f"{currency} {bucket}: the balance is {stored[bucket]}, {source} sum "
                        f"to {total[bucket]} (difference {stored[bucket] - total[bucket]})"
                    )
    drawn: dict[str, int] = defaultdict(int)
    for spend in spends:
        if spend.active:
            for lot_id, amount in spend.draws:
                drawn[lot_id] += amount
    for lot in lots:
        differences += _lot_differences(lot, drawn.get(lot.lot_id, 0))
    seen: set[str] = set()
    for entry in entries:
        if entry.entry_id in seen:
            differences.append(f"entry {entry.entry_id} is recorded twice")
        seen.add(entry.entry_id)
    return differences


def _lot_differences(lot: LotFacts, drawn: int) -> list[str]:
    differences: list[str] = []
    parts = {
        "remaining": lot.remaining,
        "spent": lot.spent,
        "settled": lot.settled,
        "reversed": lot.reversed,
        "expired": lot.expired,
        "waived": lot.waived,
        "owed": lot.owed,
    }
    for name, value in parts.items():
        if value < 0:
            differences.append(f"lot {lot.lot_id}: {name} is negative ({value})")
    total = lot.remaining + lot.spent + lot.settled + lot.reversed + lot.expired
    if total != lot.earned:
        differences.append(
            f"lot {lot.lot_id}: earned {lot.earned}, but remaining {lot.remaining} + spent "
            f"{lot.spent} + settled {lot.settled} + reversed {lot.reversed} + expired "
            f"{lot.expired} = {total}"
        )
    if lot.waived > lot.expired:
        differences.append(f"lot {lot.lot_id}: waived {lot.waived} exceeds expired {lot.expired}")
    if lot.state in ("expired", "closed") and lot.remaining != 0:
        differences.append(f"lot {lot.lot_id}: {lot.state} with {lot.remaining} remaining")
    if drawn != lot.spent:
        differences.append(f"lot {lot.lot_id}: spent {lot.spent}, but spends drew {drawn}")
    return differences
