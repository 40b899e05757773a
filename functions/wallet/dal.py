"""The wallet's reads and writes: `WalletStore`, on the Wallet table and the campaigns'.

Every change of money is one TransactWriteItems, all of it or none, and every rule holds
under retries and concurrency because DynamoDB's conditions decide, never a read:

- a credit (`record_purchase`, one transaction per campaign; `credit` for claims) puts
  the lot, the entry and its marker and moves the balance; a purchase's credit also
  reserves the campaign's budget (`functions.campaigns.budget.reserve`, capped, on the
  caps and the campaign version decided with), counts the customer's reward under
  ``limits.per_customer`` and records the earning on the purchase (the first credit to
  commit carries the purchase itself, so a purchase earning once costs one read and one
  transaction). The marker's ``attribute_not_exists`` makes a second credit of the same
  order and campaign, or claim, fail as a whole;
- a spend is one consistent Query (the currency's balance and lots) and one transaction:
  the spend item (once per order), the balance on its version and ``available >=
  amount``, and each lot drawn on its version and remainder;
- a refund is first counted on the purchase (conditional on the refunds counted so far,
  so refunds are ordered and each knows the cumulative total before it), then each lot
  it concerns is reversed in its own transaction, idempotent by its entry id and by its
  step of the refund's plan; `functions.campaigns.budget.release_in` gives the amount
  (and the reward, when reversed whole) back to the campaign in that transaction;
- the sweep moves each due lot in its own transaction, on the lot's state and version,
  then warns of each lot expiring on a reminder day (`logic.CASHBACK_REMINDER_DAYS`)
  with one conditional update of the lot, once per day (`Lot.remind`); the outbox
  publishes the warning from that change.

Balances and lots carry a version every change is conditional on, so each entry records
the exact balance it left and two writers can never both act on the same state. A
transaction refused because something moved meanwhile (a version, a TransactionConflict,
throttling) is tried again on a fresh read, with jittered backoff; one still refused after
`_MAX_ATTEMPTS` is `Contended` (429).

Purchases read the list of active campaigns (one Query of the Campaigns index) every
time, through `CashbackCampaigns`, which keeps each version's parsed file for good: a
campaign missing from a cached list would silently earn nothing. A credit is conditional
on the campaign version it was decided with, so no earning is decided on a stale file. A
credit only adds to the balance, so it is written without reading the balance first
(`Balance.add_blind`): a purchase earning in one campaign costs that Query and one
transaction; the balance is read only when money credited available at once must first
pay what the customer owes.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from functions.campaigns import budget
from functions.campaigns.budget import BudgetLimits
from functions.campaigns.config import CampaignConfig
from functions.campaigns.models import Campaign, get_campaign, list_campaigns
from functions.campaigns.published import PublishedFiles
from functions.campaigns.rewards import Cart
from functions.campaigns.states import ACTIVE
from functions.core.clock import instant_key
from functions.core.models import Transaction, TransactionCancelled
from functions.core.money import Money
from functions.core.observability import logger
from functions.wallet import logic
from functions.wallet.audit import audit
from functions.wallet.errors import (
    Contended,
    CurrencyNotHeld,
    CurrencyRequired,
    InsufficientBalance,
    OrderNotFound,
    PurchaseConflict,
    RefundConflict,
    RefundCurrencyMismatch,
    RefundExceedsTotal,
    SpendConflict,
    SpendNotFound,
    TooManyLots,
)
from functions.wallet.logic import (
    MAX_LOTS_PER_SPEND,
    AuditReport,
    Outcome,
    PurchaseInput,
    PurchaseLine,
    RefundInput,
    SpendableLot,
)
from functions.wallet.models import (
    AVAILABLE,
    BALANCE_PREFIX,
    CANCELLED,
    CLOSED,
    DUE_EXPIRE,
    DUE_RELEASE,
    ENTRIES_END,
    ENTRY_PREFIX,
    EXPIRED,
    PENDING,
    PLANNED,
    REVERSED,
    SPENT,
    Balance,
    LedgerEntry,
    LedgerEntryId,
    Lot,
    LotPart,
    Purchase,
    PurchaseItem,
    Refund,
    RefundItem,
    RewardCount,
    Spend,
    SweepMark,
    cancel_entry_id,
    claim_lot_id,
    credit_entry_id,
    currency_items,
    customer_partition,
    expire_entry_id,
    order_items,
    order_lot_id,
    partition_items,
    release_entry_id,
    reverse_entry_id,
    spend_entry_id,
    wallet_item,
)

__all__ = [
    "CAMPAIGN_TTL",
    "AuditReport",
    "CampaignEarning",
    "CancelOutcome",
    "CashbackCampaign",
    "CashbackCampaigns",
    "CreditOutcome",
    "CreditRequest",
    "LotDraw",
    "LotReversal",
    "NextMove",
    "PurchaseInput",
    "PurchaseLine",
    "PurchaseOutcome",
    "RefundInput",
    "RefundOutcome",
    "SpendOutcome",
    "SweepReport",
    "WalletEntryView",
    "WalletStore",
    "WalletView",
]

# How long a container trusts a campaign read by id (the claims credit: only its
# cashback section and time zone are used).
CAMPAIGN_TTL: Final = timedelta(seconds=30)
# Attempts of one change refused because something moved meanwhile, and the backoff.
_MAX_ATTEMPTS: Final = 8
_FIRST_BACKOFF_SECONDS: Final = 0.005
_MAX_BACKOFF_SECONDS: Final = 0.2
_TRANSIENT: Final = frozenset({"TransactionConflict", "ThrottlingError"})
# The earning of a purchase decided but whose credit has not committed yet.
_CREDITING: Final = "crediting"
# Without a watermark (the first run), how far back the sweep looks for due lots.
FIRST_SWEEP_LOOKBACK_DAYS: Final = 400
# The due index is eventually consistent: a day counts as completed only this long after
# it ended, so a lot written just before midnight is still found by the next run.
_INDEX_SETTLING: Final = timedelta(hours=1)
# Days before the watermark every run scans again (an empty day costs one Query): a lot
# the index showed late, or written due on a day already completed (the local cloud's
# clock moved back after a run), is moved all the same.
_RESCAN: Final = timedelta(days=7)


# -- the interface's values -----------------------------------------------------------


@dataclass(frozen=True)
class CampaignEarning:
    campaign_id: str
    outcome: str  # "credited" or a reason code
    amount: Money | None
    lot_id: str | None
    available_at: datetime | None


@dataclass(frozen=True)
class PurchaseOutcome:
    order_id: str
    customer_id: str
    new: bool  # False: the same order recorded before
    earnings: tuple[CampaignEarning, ...]


@dataclass(frozen=True)
class LotReversal:
    """What a refund took back from one lot: `reversed` is all of it (what the lot kept
    before minus what it keeps after), `owed` the part of it already spent, now owed."""

    lot_id: str
    campaign_id: str
    reversed: Money
    owed: Money


@dataclass(frozen=True)
class RefundOutcome:
    order_id: str
    refund_id: str
    amount: Money
    refunded_total: Money  # the order's refunded total once this refund counted
    new: bool
    reversals: tuple[LotReversal, ...]


@dataclass(frozen=True)
class LotDraw:
    lot_id: str
    campaign_id: str
    amount: Money


@dataclass(frozen=True)
class SpendOutcome:
    spend_id: str
    order_id: str
    amount: Money
    lots: tuple[LotDraw, ...]
    available_after: Money
    new: bool


@dataclass(frozen=True)
class CancelOutcome:
    spend_id: str
    order_id: str
    amount: Money
    new: bool  # False: cancelled before


@dataclass(frozen=True)
class CreditRequest:
    customer_id: str
    campaign_id: str
    claim_id: str
    amount: Money
    approved_at: datetime


@dataclass(frozen=True)
class CreditOutcome:
    lot_id: str
    entry_id: str
    amount: Money
    available_at: datetime
    expires_at: datetime | None
    new: bool


@dataclass(frozen=True)
class SweepReport:
    released: int
    released_amount: dict[str, int]
    expired: int
    expired_amount: dict[str, int]
    lag_seconds: float | None
    # Lots whose customer this run warned of their expiry, and what they would lose.
    reminded: int = 0
    reminded_amount: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class NextMove:
    at: datetime
    amount: Money


@dataclass(frozen=True)
class WalletEntryView:
    entry_id: str
    kind: str
    amount: Money
    recorded_at: datetime
    campaign_id: str | None
    order_id: str | None
    claim_id: str | None
    refund_id: str | None
    lots: tuple[LotDraw, ...]


@dataclass(frozen=True)
class WalletView:
    customer_id: str
    available: Money
    pending: Money
    owed: Money
    next_release: NextMove | None
    next_expiry: NextMove | None
    entries: tuple[WalletEntryView, ...]
    next_token: str | None


# -- campaigns, cached per container --------------------------------------------------


@dataclass(frozen=True)
class CashbackCampaign:
    """A campaign as published: its file, version, status and budget caps."""

    config: CampaignConfig
    version: int
    status: str
    limits: BudgetLimits

    @property
    def campaign_id(self) -> str:
        return self.config.id


class CashbackCampaigns:
    """The active cashback campaigns, and campaigns by id, each kept for `ttl` (monotonic
    time); the file of each version is immutable, so it is read and parsed once."""

    def __init__(
        self, ttl: timedelta = CAMPAIGN_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl.total_seconds()
        self._clock = clock
        self._active: tuple[tuple[CashbackCampaign, ...], float] | None = None
        self._by_id: dict[str, tuple[CashbackCampaign | None, float]] = {}
        self._files = PublishedFiles()
        self._lock = threading.Lock()

    def moment(self) -> float:
        """Now on the cache's clock: mark a request's start with it, for `active`."""
        return self._clock()

    def active(self, since: float | None = None) -> tuple[CashbackCampaign, ...]:
        """The active cashback campaigns: the copy if it is younger than the ttl (and,
        given `since`, was read at `since` or later), else read again now."""
        with self._lock:
            cached = self._active
        if cached is not None:
            campaigns, loaded_at = cached
            fresh_enough = self._clock() - loaded_at < self._ttl
            if fresh_enough and (since is None or loaded_at >= since):
                return campaigns
        read_at = self._clock()
        campaigns = tuple(
            self._live(item) for item in list_campaigns(ACTIVE) if item.kind == "cashback"
        )
        with self._lock:
            self._active = (campaigns, read_at)
        return campaigns

    def get(self, campaign_id: str) -> CashbackCampaign | None:
        """The campaign of any kind and status (None: there is none), cached."""
        with self._lock:
            cached = self._by_id.get(campaign_id)
        if cached is not None and self._clock() - cached[1] < self._ttl:
            return cached[0]
        return self.fresh(campaign_id)

    def fresh(self, campaign_id: str) -> CashbackCampaign | None:
        """The campaign as the table holds it now."""
        read_at = self._clock()
        item = get_campaign(campaign_id)
        campaign = self._live(item) if item is not None else None
        with self._lock:
            self._by_id[campaign_id] = (campaign, read_at)
        return campaign

    def _live(self, item: Campaign) -> CashbackCampaign:
        return CashbackCampaign(
            config=self._file(item.campaign_id, item.version),
            version=item.version,
            status=item.status,
            limits=BudgetLimits(item.budget_amount, item.budget_max_rewards),
        )

    def _file(self, campaign_id: str, version: int) -> CampaignConfig:
        return self._files.file(campaign_id, version)

    def clear(self) -> None:
        with self._lock:
            self._active = None
            self._by_id.clear()
            self._files.clear()


# -- helpers --------------------------------------------------------------------------


def _commit_lot_move(
    lot: Lot,
    lot_change: tuple[list[Action], Condition | None],
    balance_change: tuple[list[Action], Condition | None],
    entry: LedgerEntry,
) -> bool:
    """One transaction: the lot's change, its balance's and the entry with its marker.

    False, writing nothing, when what was read before it has moved since (the caller
    reads again and decides anew); any other refusal is raised."""
    transaction = Transaction()
    transaction.update("lot", Lot.ref(lot.customer_id, lot.currency, lot.lot_id), *lot_change)
    transaction.update("balance", Balance.ref(lot.customer_id, lot.currency), *balance_change)
    _put_entry(transaction, entry)
    try:
        transaction.commit()
    except TransactionCancelled as cancelled:
        if not _moved(cancelled, "lot", "balance", "marker"):
            raise
        return False
    return True


def _backoff(attempt: int) -> None:
    ceiling = min(_MAX_BACKOFF_SECONDS, _FIRST_BACKOFF_SECONDS * 2**attempt)
    time.sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter, not a secret


def _transient(cancelled: TransactionCancelled) -> bool:
    return bool(set(cancelled.reasons.values()) & _TRANSIENT)


def _moved(cancelled: TransactionCancelled, *labels: str) -> bool:
    """Refused only because state read before the write moved (or DynamoDB was busy):
    worth trying again on a fresh read."""
    return _transient(cancelled) or any(cancelled.failed(label) for label in labels)


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _balance(customer_id: str, currency: str) -> Balance:
    stored = Balance.get_or_none(*Balance.key(customer_id, currency))
    return stored if stored is not None else Balance.empty(customer_id, currency)


def _entry(
    kind: str,
    entry_id: str,
    amount: Money,
    at: datetime,
    *,
    after: Balance | None,
    customer_id: str | None = None,
    pending: int = 0,
    available: int = 0,
    owed: int = 0,
    settled: int = 0,
    lots: Iterable[LotPart] = (),
    lot: Lot | None = None,
    order_id: str | None = None,
    refund_id: str | None = None,
) -> LedgerEntry:
    """An entry of `kind` moving the balance by the deltas, to `after` when the write is
    conditional on the balance read (None: a credit written without reading it); `lot`
    names a single-lot entry's lot (its id, campaign, source and instants go on the
    entry, for the events)."""
    owner = after.customer_id if after is not None else customer_id
    assert owner is not None
    fields: dict[str, Any] = {
        "entry_id": entry_id,
        "customer_id": owner,
        "kind": kind,
        "amount": amount,
        "pending_delta": pending,
        "available_delta": available,
        "owed_delta": owed,
        "settled": settled,
        "lots": list(lots),
        "recorded_at": at,
    }
    if after is not None:
        fields |= {
            "pending_after": after.money(after.pending),
            "available_after": after.money(after.available),
            "owed_after": after.money(after.owed),
        }
    if lot is not None:
        fields |= {
            "lot_id": lot.lot_id,
            "campaign_id": lot.campaign_id,
            "order_id": lot.order_id,
            "claim_id": lot.claim_id,
            "available_at": lot.available_at,
            "expires_at": lot.expires_at,
        }
    if order_id is not None:
        fields["order_id"] = order_id
    if refund_id is not None:
        fields["refund_id"] = refund_id
    return LedgerEntry(**fields)


def _put_entry(transaction: Transaction, entry: LedgerEntry) -> None:
    transaction.put("entry", entry, condition=LedgerEntry.pk.does_not_exist())
    transaction.put("marker", entry.marker(), condition=LedgerEntryId.pk.does_not_exist())


def _part(lot: Lot, amount: int, **extra: int) -> LotPart:
    return LotPart(
        lot_id=lot.lot_id,
        campaign_id=lot.campaign_id,
        amount=amount,
        **{name: value for name, value in extra.items() if value},
    )


def _draws(parts: Iterable[LotPart], currency: str) -> tuple[LotDraw, ...]:
    return tuple(LotDraw(p.lot_id, p.campaign_id, Money.of(p.amount, currency)) for p in parts)


def _lot_label(lot_id: str) -> str:
    return f"lot:{lot_id}"


# -- purchases, as they are being recorded --------------------------------------------


@dataclass
class _Decision:
    """A crediting earning, read back from its record, as credited at `now`."""

    amount: int
    lot_id: str
    available_at: datetime
    expires_at: datetime | None
    timezone: str
    version: int
    per_customer: int | None
    limits: BudgetLimits

    @classmethod
    def of(cls, earning: Mapping[str, Any], placed_at: datetime, now: datetime) -> _Decision:
        # Availability is worked out at the credit's own time: a credit a crash delayed
        # (finished by a replay days later) is never written already due.
        available_at, expires_at = logic.availability(
            placed_at,
            now,
            pending_days=int(earning["pendingDays"]),
            expires_after_days=_optional_int(earning.get("expiresAfterDays")),
            tz=earning["timezone"],
        )
        return cls(
            amount=int(earning["amount"]),
            lot_id=earning["lotId"],
            available_at=available_at,
            expires_at=expires_at,
            timezone=earning["timezone"],
            version=int(earning["campaignVersion"]),
            per_customer=_optional_int(earning.get("perCustomer")),
            limits=BudgetLimits(
                _optional_int(earning.get("budgetAmount")),
                _optional_int(earning.get("budgetMaxRewards")),
            ),
        )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _with_limits(earning: Mapping[str, Any], limits: BudgetLimits) -> dict[str, Any]:
    updated = {k: v for k, v in earning.items() if k not in ("budgetAmount", "budgetMaxRewards")}
    if limits.amount is not None:
        updated["budgetAmount"] = limits.amount
    if limits.max_rewards is not None:
        updated["budgetMaxRewards"] = limits.max_rewards
    return updated


def _earning_record(
    campaign: CashbackCampaign, purchase: PurchaseInput, cart: Cart | None
) -> dict[str, Any]:
    """What `purchase` earns in `campaign`: a reason, or ``crediting`` with all its credit
    needs (the availability rule, the caps and the version it was decided on)."""
    config = campaign.config
    earning = logic.earning_for(config, purchase, cart)
    if not earning.credits:
        return {"outcome": earning.outcome.value}
    cashback = config.cashback
    record: dict[str, Any] = {
        "outcome": _CREDITING,
        "amount": earning.amount,
        "lotId": order_lot_id(purchase.order_id, config.id),
        "campaignVersion": campaign.version,
        "pendingDays": cashback.pending_days if cashback is not None else 0,
        "timezone": config.timezone,
    }
    if cashback is not None and cashback.expires_after_days is not None:
        record["expiresAfterDays"] = cashback.expires_after_days
    if config.limits.per_customer is not None:
        record["perCustomer"] = config.limits.per_customer
    return _with_limits(record, campaign.limits)


def _credited(decision: _Decision) -> dict[str, Any]:
    record: dict[str, Any] = {
        "outcome": Outcome.CREDITED.value,
        "amount": decision.amount,
        "lotId": decision.lot_id,
        "availableAt": instant_key(decision.available_at),
    }
    if decision.expires_at is not None:
        record["expiresAt"] = instant_key(decision.expires_at)
    return record


@dataclass
class _Order:
    """A purchase being recorded or finished: its facts and its earnings so far.

    ``written`` is False until the purchase item is stored; until then its earnings may
    still be decided again, and the next credit to commit carries the item.
    """

    order_id: str
    customer_id: str
    currency: str
    placed_at: datetime
    earnings: dict[str, dict[str, Any]]
    written: bool
    purchase: PurchaseInput | None = None
    fingerprint: str | None = None
    recorded_at: datetime | None = None

    @classmethod
    def stored(cls, item: Purchase) -> _Order:
        return cls(
            item.order_id,
            item.customer_id,
            item.currency,
            item.placed_at,
            item.earnings_dict(),
            written=True,
        )

    def crediting(self) -> list[str]:
        return sorted(c for c, e in self.earnings.items() if e["outcome"] == _CREDITING)

    def item(self, earnings: Mapping[str, Mapping[str, Any]] | None = None) -> Purchase:
        """The purchase item to store, with `earnings` (default: the order's own)."""
        purchase = self.purchase
        assert purchase is not None and self.fingerprint is not None
        return Purchase(
            order_id=purchase.order_id,
            customer_id=purchase.customer_id,
            channel=purchase.channel,
            placed_at=purchase.placed_at,
            currency=purchase.currency,
            items=[
                PurchaseItem(
                    sku=line.sku,
                    category=line.category,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                )
                for line in purchase.items
            ],
            total=purchase.total,
            refunded=0,
            refunds=0,
            refunded_items={},
            earnings={c: dict(e) for c, e in (earnings or self.earnings).items()},
            fingerprint=self.fingerprint,
            recorded_at=self.recorded_at,
        )

    def outcome(self, *, new: bool) -> PurchaseOutcome:
        return PurchaseOutcome(
            order_id=self.order_id,
            customer_id=self.customer_id,
            new=new,
            earnings=tuple(
                _campaign_earning(campaign_id, self.earnings[campaign_id], self.currency)
                for campaign_id in sorted(self.earnings)
            ),
        )


def _campaign_earning(
    campaign_id: str, earning: Mapping[str, Any], currency: str
) -> CampaignEarning:
    if earning["outcome"] != Outcome.CREDITED.value:
        return CampaignEarning(campaign_id, earning["outcome"], None, None, None)
    return CampaignEarning(
        campaign_id,
        earning["outcome"],
        Money.of(int(earning["amount"]), currency),
        earning["lotId"],
        _instant(earning["availableAt"]),
    )


class _PurchaseExists(Exception):
    """The purchase was stored meanwhile (a replay, or a request racing this one)."""


# -- the store ------------------------------------------------------------------------


class WalletStore:
    """The wallet domain's reads and writes; `campaigns` is the container's cache.

    `default_currency` is the currency of an empty wallet read without one;
    `sweep_lookback_days` how far back the first sweep (no watermark yet) looks.
    """

    def __init__(
        self,
        campaigns: CashbackCampaigns | None = None,
        *,
        default_currency: str = "JPY",
        sweep_lookback_days: int = FIRST_SWEEP_LOOKBACK_DAYS,
    ) -> None:
        self.campaigns = campaigns or CashbackCampaigns()
        self.default_currency = default_currency
        self.sweep_lookback_days = sweep_lookback_days

    # -- purchases ----------------------------------------------------------------------

    def record_purchase(self, purchase: PurchaseInput, *, now: datetime) -> PurchaseOutcome:
        """Record `purchase` once and credit what it earns in every active cashback
        campaign, one transaction per campaign; the same order again returns what it
        earned (finishing any credit a crash left undone), another body for it is
        `PurchaseConflict`."""
        fingerprint = logic.purchase_fingerprint(purchase)
        order = _Order(
            purchase.order_id,
            purchase.customer_id,
            purchase.currency,
            purchase.placed_at,
            self._decide(purchase),
            written=False,
            purchase=purchase,
            fingerprint=fingerprint,
            recorded_at=now,
        )
        try:
            self._credit_all(order, now)
            if not order.written:
                self._put_purchase(order)
        except _PurchaseExists:
            return self._replay(purchase.order_id, fingerprint, now)
        return order.outcome(new=True)

    def _decide(self, purchase: PurchaseInput) -> dict[str, dict[str, Any]]:
        # The active list is read for every purchase: a campaign missing from a cached
        # copy would earn nothing, with no refusal to confirm, and the purchase's
        # earnings are recorded for good. The files stay cached (immutable per version).
        cart = logic.cart_of(purchase)
        campaigns = self.campaigns.active(since=self.campaigns.moment())
        return {c.campaign_id: _earning_record(c, purchase, cart) for c in campaigns}

    def _put_purchase(self, order: _Order) -> None:
        transaction = Transaction()
        transaction.put("purchase", order.item(), condition=Purchase.pk.does_not_exist())
        try:
            transaction.commit()
        except TransactionCancelled as cancelled:
            if cancelled.failed("purchase"):
                raise _PurchaseExists() from None
            raise
        order.written = True

    def _replay(self, order_id: str, fingerprint: str, now: datetime) -> PurchaseOutcome:
        stored = Purchase.get_or_none(*Purchase.key(order_id))
        if stored is None:
            # Only a put that committed makes a purchase exist, and nothing deletes one.
            raise RuntimeError(f"purchase {order_id} refused as existing, but is not stored")
        if stored.fingerprint != fingerprint:
            raise PurchaseConflict(order_id)
        order = _Order.stored(stored)
        self._credit_all(order, now)
        return order.outcome(new=False)

    def _finish(self, stored: Purchase, now: datetime) -> None:
        """Commit the credits of a stored purchase that a crash left deciding."""
        order = _Order.stored(stored)
        if order.crediting():
            self._credit_all(order, now)

    def _credit_all(self, order: _Order, now: datetime) -> None:
        balance: Balance | None = None  # not read unless a credit needs it (see _new_lot)
        for campaign_id in order.crediting():
            balance = self._credit_order(order, campaign_id, balance, now)

    def _credit_order(
        self, order: _Order, campaign_id: str, balance: Balance | None, now: datetime
    ) -> Balance | None:
        """Credit one campaign's earning of `order`; returns the balance as it now stands
        (None: not known, not needed so far). The earning ends credited, refused or
        (before the purchase is stored) dropped."""
        for attempt in range(_MAX_ATTEMPTS):
            earning = order.earnings.get(campaign_id)
            if earning is None or earning["outcome"] != _CREDITING:
                return balance
            decision = _Decision.of(earning, order.placed_at, now)
            lot, entry, balance_update, after = _new_lot(
                order.customer_id,
                order.currency,
                balance,
                lot_id=decision.lot_id,
                campaign_id=campaign_id,
                amount=decision.amount,
                available_at=decision.available_at,
                expires_at=decision.expires_at,
                timezone=decision.timezone,
                now=now,
                order_id=order.order_id,
            )
            transaction = Transaction()
            only_if = None
            if not order.written:
                # Refused if a republish or an archive came between the read and this.
                only_if = (Campaign.version == decision.version) & (Campaign.status == ACTIVE)
            budget.reserve(
                transaction,
                campaign_id,
                decision.amount,
                1,
                limits=decision.limits,
                only_if=only_if,
            )
            transaction.update(
                "rewards",
                RewardCount.ref(order.customer_id, campaign_id),
                *RewardCount.one_more(order.customer_id, campaign_id, decision.per_customer, now),
            )
            transaction.put("lot", lot, condition=Lot.pk.does_not_exist())
            _put_entry(transaction, entry)
            transaction.update(
                "balance", Balance.ref(order.customer_id, order.currency), *balance_update
            )
            final = _credited(decision)
            if order.written:
                transaction.update(
                    "purchase",
                    Purchase.ref(order.order_id),
                    *Purchase.settle_earning(campaign_id, final),
                )
            else:
                transaction.put(
                    "purchase",
                    order.item({**order.earnings, campaign_id: final}),
                    condition=Purchase.pk.does_not_exist(),
                )
            try:
                transaction.commit()
            except TransactionCancelled as cancelled:
                if any(cancelled.failed(label) for label in ("purchase", "lot", "marker")):
                    if not order.written:
                        raise _PurchaseExists() from None
                    # Another request finished this earning: take what it stored.
                    self._reload_earning(order, campaign_id)
                    return None
                if cancelled.failed(budget.LABEL) and self._campaign_changed(
                    order, campaign_id, decision
                ):
                    continue
                if cancelled.failed("rewards"):
                    self._refuse(order, campaign_id, Outcome.LIMIT_REACHED)
                    return balance
                if cancelled.failed(budget.LABEL):
                    self._refuse(order, campaign_id, Outcome.BUDGET_EXHAUSTED)
                    return balance
                if not _moved(cancelled, "balance"):
                    raise
                _backoff(attempt)
                balance = _balance(order.customer_id, order.currency)
                continue
            order.earnings[campaign_id] = final
            order.written = True
            return after
        raise Contended("Too many changes to this wallet at once; retry shortly.")

    def _campaign_changed(self, order: _Order, campaign_id: str, decision: _Decision) -> bool:
        """After the budget refused: whether the campaign moved since the decision (then
        the earning is updated to it and True returned, to try again)."""
        fresh = self.campaigns.fresh(campaign_id)
        if not order.written:
            if fresh is None or fresh.status != ACTIVE or fresh.config.kind != "cashback":
                # No longer an active cashback campaign: the purchase does not earn in it.
                order.earnings.pop(campaign_id, None)
                return True
            if fresh.version != decision.version:
                purchase = order.purchase
                assert purchase is not None
                order.earnings[campaign_id] = _earning_record(
                    fresh, purchase, logic.cart_of(purchase)
                )
                return True
        if fresh is not None and fresh.limits != decision.limits:
            order.earnings[campaign_id] = _with_limits(order.earnings[campaign_id], fresh.limits)
            return True
        return False

    def _refuse(self, order: _Order, campaign_id: str, reason: Outcome) -> None:
        refusal = {"outcome": reason.value}
        if not order.written:
            order.earnings[campaign_id] = refusal
            return
        transaction = Transaction()
        transaction.update(
            "purchase", Purchase.ref(order.order_id), *Purchase.settle_earning(campaign_id, refusal)
        )
        try:
            transaction.commit()
        except TransactionCancelled as cancelled:
            if not cancelled.failed("purchase"):
                raise
            # Another request settled it first: what it stored stands.
            self._reload_earning(order, campaign_id)
            return
        order.earnings[campaign_id] = refusal

    def _reload_earning(self, order: _Order, campaign_id: str) -> None:
        stored = Purchase.get_or_none(*Purchase.key(order.order_id))
        if stored is not None:
            order.earnings = stored.earnings_dict()

    # -- claims -------------------------------------------------------------------------

    def credit(self, request: CreditRequest, *, now: datetime) -> CreditOutcome:
        """Credit an approved rebate claim's reward, once per claim id (the claims
        workflow reserved the budget and checked the customer's limit)."""
        if request.amount.amount <= 0:
            raise ValueError(f"a credit is positive, got {request.amount}")
        campaign = self.campaigns.get(request.campaign_id)
        cashback = campaign.config.cashback if campaign is not None else None
        timezone = campaign.config.timezone if campaign is not None else "UTC"
        available_at, expires_at = logic.availability(
            request.approved_at,
            now,
            pending_days=cashback.pending_days if cashback is not None else 0,
            expires_after_days=cashback.expires_after_days if cashback is not None else None,
            tz=timezone,
        )
        lot_id = claim_lot_id(request.claim_id)
        currency = request.amount.currency
        balance: Balance | None = None  # not read unless a credit needs it (see _new_lot)
        for attempt in range(_MAX_ATTEMPTS):
            lot, entry, balance_update, _ = _new_lot(
                request.customer_id,
                currency,
                balance,
                lot_id=lot_id,
                campaign_id=request.campaign_id,
                amount=request.amount.amount,
                available_at=available_at,
                expires_at=expires_at,
                timezone=timezone,
                now=now,
                claim_id=request.claim_id,
            )
            transaction = Transaction()
            transaction.put("lot", lot, condition=Lot.pk.does_not_exist())
            _put_entry(transaction, entry)
            transaction.update(
                "balance", Balance.ref(request.customer_id, currency), *balance_update
            )
            try:
                transaction.commit()
            except TransactionCancelled as cancelled:
                if cancelled.failed("lot") or cancelled.failed("marker"):
                    stored = Lot.get_or_none(*Lot.key(request.customer_id, currency, lot_id))
                    if stored is None:
                        raise
                    return CreditOutcome(
                        lot_id=lot_id,
                        entry_id=credit_entry_id(lot_id),
                        amount=Money.of(stored.earned, currency),
                        available_at=stored.available_at,
                        expires_at=stored.expires_at,
                        new=False,
                    )
                if not _moved(cancelled, "balance"):
                    raise
                _backoff(attempt)
                balance = _balance(request.customer_id, currency)
                continue
            return CreditOutcome(
                lot_id=lot_id,
                entry_id=entry.entry_id,
                amount=request.amount,
                available_at=lot.available_at,
                expires_at=lot.expires_at,
                new=True,
            )
        raise Contended("Too many changes to this wallet at once; retry shortly.")

    # -- refunds ------------------------------------------------------------------------

    def refund(self, order_id: str, refund: RefundInput, *, now: datetime) -> RefundOutcome:
        """Record a refund once and reverse what each lot the order earned no longer
        keeps; the same refund again finishes any lot left undone and returns the same."""
        fingerprint = logic.refund_fingerprint(refund)
        for attempt in range(_MAX_ATTEMPTS):
            purchase, refunds = order_items(order_id)
            if purchase is None:
                raise OrderNotFound(order_id)
            existing = next((r for r in refunds if r.refund_id == refund.refund_id), None)
            if existing is not None:
                if existing.fingerprint != fingerprint:
                    raise RefundConflict(order_id, refund.refund_id)
                return self._apply_refund(purchase, existing, now, new=False)
            if _Order.stored(purchase).crediting():
                # Reversals are computed over every lot the order earned: finish them first.
                self._finish(purchase, now)
                continue
            item, refunded_items = self._refund_item(purchase, refund, fingerprint, now)
            transaction = Transaction()
            transaction.put("refund", item, condition=Refund.pk.does_not_exist())
            transaction.update(
                "purchase",
                Purchase.ref(order_id),
                *purchase.refund_actions(item.amount.amount, refunded_items),
            )
            try:
                transaction.commit()
            except TransactionCancelled as cancelled:
                # Recorded meanwhile, or another refund counted first: read again.
                if not _moved(cancelled, "refund", "purchase"):
                    raise
                _backoff(attempt)
                continue
            return self._apply_refund(purchase, item, now, new=True)
        raise Contended("Too many refunds of this order at once; retry shortly.")

    @staticmethod
    def _refund_amount(purchase: Purchase, refund: RefundInput) -> tuple[int, dict[str, int]]:
        if refund.currency is not None and refund.currency != purchase.currency:
            raise RefundCurrencyMismatch(
                purchase.order_id, expected=purchase.currency, given=refund.currency
            )
        refunded_items = purchase.refunded_items_dict()
        if refund.items is not None:
            lines = [
                PurchaseLine(item.sku, item.category, item.quantity, item.unit_price)
                for item in purchase.items
            ]
            return logic.refund_of_items(purchase.order_id, lines, refunded_items, refund.items)
        if refund.amount is None:
            raise ValueError("a refund needs an amount or items")
        return refund.amount, refunded_items

    def _refund_item(
        self, purchase: Purchase, refund: RefundInput, fingerprint: str, now: datetime
    ) -> tuple[Refund, dict[str, int]]:
        """The refund to record, with its plan, and the order's refunded items after it."""
        amount, refunded_items = self._refund_amount(purchase, refund)
        if amount < 0:
            raise ValueError(f"a refund is not negative, got {amount}")
        if amount > purchase.total - purchase.refunded:
            raise RefundExceedsTotal(
                purchase.order_id, total=purchase.total, refunded=purchase.refunded, amount=amount
            )
        before, after = purchase.refunded, purchase.refunded + amount
        plan: dict[str, dict[str, Any]] = {}
        for campaign_id, earning in sorted(purchase.earnings_dict().items()):
            if earning["outcome"] != Outcome.CREDITED.value:
                continue
            earned = int(earning["amount"])
            taken = logic.reversal(earned, purchase.total, before, after)
            if taken > 0:
                plan[earning["lotId"]] = {
                    "campaignId": campaign_id,
                    "amount": taken,
                    # Reversed whole: the campaign gets the reward back, not just the money.
                    "whole": logic.kept(earned, purchase.total, after) == 0,
                    "state": PLANNED,
                }
        item = Refund(
            refund_id=refund.refund_id,
            order_id=purchase.order_id,
            customer_id=purchase.customer_id,
            amount=Money.of(amount, purchase.currency),
            items=(
                [RefundItem(sku=sku, quantity=quantity) for sku, quantity in refund.items]
                if refund.items is not None
                else None
            ),
            refunded_before=before,
            refunded_after=after,
            plan=plan,
            fingerprint=fingerprint,
            recorded_at=now,
        )
        return item, refunded_items

    def _apply_refund(
        self, purchase: Purchase, refund: Refund, now: datetime, *, new: bool
    ) -> RefundOutcome:
        plan = refund.plan_dict()
        todo = [lot_id for lot_id in sorted(plan) if plan[lot_id]["state"] == PLANNED]
        if todo:
            balance, lots = currency_items(purchase.customer_id, purchase.currency)
            state = _CurrencyState(
                balance or Balance.empty(purchase.customer_id, purchase.currency),
                {lot.lot_id: lot for lot in lots},
            )
            for lot_id in todo:
                plan[lot_id] = self._reverse_lot(
                    purchase, refund, lot_id=lot_id, step=plan[lot_id], state=state, now=now
                )
        currency = purchase.currency
        return RefundOutcome(
            order_id=purchase.order_id,
            refund_id=refund.refund_id,
            amount=refund.amount,
            refunded_total=Money.of(refund.refunded_after, currency),
            new=new,
            reversals=tuple(
                LotReversal(
                    lot_id=lot_id,
                    campaign_id=step["campaignId"],
                    reversed=Money.of(int(step["amount"]), currency),
                    owed=Money.of(int(step.get("owed", 0)), currency),
                )
                for lot_id, step in sorted(plan.items())
            ),
        )

    def _reverse_lot(
        self,
        purchase: Purchase,
        refund: Refund,
        *,
        lot_id: str,
        step: Mapping[str, Any],
        state: _CurrencyState,
        now: datetime,
    ) -> dict[str, Any]:
        amount, whole, campaign_id = int(step["amount"]), bool(step["whole"]), step["campaignId"]
        for attempt in range(_MAX_ATTEMPTS):
            lot = state.lots.get(lot_id)
            if lot is None:
                raise LookupError(f"order {purchase.order_id} earned lot {lot_id}, not stored")
            split = logic.split_reversal(
                amount, remaining=lot.remaining, expired_unwaived=lot.expired - lot.waived
            )
            taken = split.from_remaining
            pending_lot = lot.state == PENDING
            closes = pending_lot and lot.remaining - taken == 0
            lot_actions, lot_condition, moved = lot.change(
                state=CLOSED if closes else None,
                remaining=-taken,
                reversed=taken,
                waived=split.waived,
                owed=split.owed,
            )
            pending = -taken if pending_lot else 0
            available = 0 if pending_lot else -taken
            balance_actions, balance_condition, after = state.balance.change(
                now, pending=pending, available=available, owed=split.owed
            )
            entry = _entry(
                "reverse",
                reverse_entry_id(refund.refund_id, lot_id),
                Money.of(amount, after.currency),
                now,
                after=after,
                lots=[_part(lot, amount)],
                lot=lot,
                refund_id=refund.refund_id,
                pending=pending,
                available=available,
                owed=split.owed,
            )
            done = {
                **step,
                "state": REVERSED,
                "fromRemaining": taken,
                "waived": split.waived,
                "owed": split.owed,
            }
            transaction = Transaction()
            transaction.update(
                "lot", Lot.ref(lot.customer_id, lot.currency, lot_id), lot_actions, lot_condition
            )
            transaction.update(
                "balance",
                Balance.ref(lot.customer_id, lot.currency),
                balance_actions,
                balance_condition,
            )
            _put_entry(transaction, entry)
            budget.release_in(transaction, campaign_id, amount, 1 if whole else 0)
            if whole:
                transaction.update(
                    "rewards",
                    RewardCount.ref(lot.customer_id, campaign_id),
                    *RewardCount.one_fewer(now),
                )
            transaction.update(
                "refund",
                Refund.ref(refund.order_id, refund.refund_id),
                *Refund.reverse_step(lot_id, done),
            )
            try:
                transaction.commit()
            except TransactionCancelled as cancelled:
                if cancelled.failed("marker") or cancelled.failed("refund"):
                    stored = Refund.get_or_none(*Refund.key(refund.order_id, refund.refund_id))
                    if stored is not None and stored.plan_dict()[lot_id]["state"] == REVERSED:
                        state.reload(purchase.customer_id, purchase.currency)
                        return stored.plan_dict()[lot_id]
                    raise
                if not _moved(cancelled, "lot", "balance"):
                    raise
                _backoff(attempt)
                state.reload(purchase.customer_id, purchase.currency)
                continue
            state.balance = after
            state.lots[lot_id] = moved
            return done
        raise Contended("Too many changes to this wallet at once; retry shortly.")

    # -- spending -----------------------------------------------------------------------

    def spend(
        self, customer_id: str, order_id: str, amount: Money, *, now: datetime
    ) -> SpendOutcome:
        """Spend available cashback on an order, once per order: one Query and one
        transaction drawing on the lots expiring first."""
        if amount.amount <= 0:
            raise ValueError(f"a spend is positive, got {amount}")
        currency = amount.currency
        for attempt in range(_MAX_ATTEMPTS):
            balance, lots = currency_items(customer_id, currency)
            spendable = [_spendable(lot) for lot in lots if lot.state == AVAILABLE]
            draws = (
                logic.allocate_spend(amount.amount, spendable, now) if balance is not None else None
            )
            if balance is None or draws is None:
                previous = self._spent_before(customer_id, order_id, amount)
                if previous is not None:
                    return previous
                if balance is None:
                    raise CurrencyNotHeld(customer_id, currency)
                raise InsufficientBalance(
                    customer_id,
                    available=logic.spendable_total(spendable, now),
                    amount=amount.amount,
                    currency=currency,
                )
            if len(draws) > MAX_LOTS_PER_SPEND:
                covered = sum(take for _, take in draws[:MAX_LOTS_PER_SPEND])
                raise TooManyLots(
                    customer_id, lots=len(draws), most=MAX_LOTS_PER_SPEND, covered=covered
                )
            by_id = {lot.lot_id: lot for lot in lots}
            balance_actions, balance_condition, after = balance.change(
                now, available=-amount.amount
            )
            parts = [_part(by_id[lot.lot_id], take) for lot, take in draws]
            spend = Spend(
                customer_id=customer_id,
                order_id=order_id,
                amount=amount,
                lots=parts,
                state=SPENT,
                available_after=after.money(after.available),
                spent_at=now,
            )
            entry = _entry(
                "spend",
                spend_entry_id(order_id),
                Money.of(amount.amount, after.currency),
                now,
                after=after,
                available=-amount.amount,
                lots=parts,
                order_id=order_id,
            )
            transaction = Transaction()
            transaction.put("spend", spend, condition=Spend.pk.does_not_exist())
            transaction.update(
                "balance", Balance.ref(customer_id, currency), balance_actions, balance_condition
            )
            _put_entry(transaction, entry)
            for lot, take in draws:
                stored = by_id[lot.lot_id]
                transaction.update(
                    _lot_label(lot.lot_id),
                    Lot.ref(customer_id, currency, lot.lot_id),
                    *stored.change(remaining=-take, spent=take)[:2],
                )
            try:
                transaction.commit()
            except TransactionCancelled as cancelled:
                if cancelled.failed("spend") or cancelled.failed("marker"):
                    previous = self._spent_before(customer_id, order_id, amount)
                    if previous is not None:
                        return previous
                if not _moved(
                    cancelled, "balance", *(_lot_label(drawn.lot_id) for drawn, _ in draws)
                ):
                    raise
                _backoff(attempt)
                continue
            return SpendOutcome(
                spend_id=spend.spend_id,
                order_id=order_id,
                amount=amount,
                lots=_draws(parts, currency),
                available_after=spend.available_after,
                new=True,
            )
        raise Contended("Too many spends from this wallet at once; retry shortly.")

    @staticmethod
    def _spent_before(customer_id: str, order_id: str, amount: Money) -> SpendOutcome | None:
        stored = Spend.find(customer_id, order_id)
        if stored is None:
            return None
        if stored.amount != amount:
            raise SpendConflict(customer_id, order_id)
        return SpendOutcome(
            spend_id=stored.spend_id,
            order_id=order_id,
            amount=stored.amount,
            lots=_draws(stored.lots, stored.amount.currency),
            available_after=stored.available_after,
            new=False,
        )

    def cancel_spend(self, customer_id: str, order_id: str, *, now: datetime) -> CancelOutcome:
        """Return a spend to the lots it drew from, exactly once. What returns to a lot
        whose expiry has passed expires at once (recorded on the cancel entry, as
        ``expired`` of that lot's part); what returns first pays what is owed."""
        for attempt in range(_MAX_ATTEMPTS):
            spend = Spend.find(customer_id, order_id)
            if spend is None:
                raise SpendNotFound(customer_id, order_id)
            if spend.state == CANCELLED:
                return CancelOutcome(spend.spend_id, order_id, spend.amount, new=False)
            currency = spend.amount.currency
            stored_balance, lots = currency_items(customer_id, currency)
            balance = stored_balance or Balance.empty(customer_id, currency)
            by_id = {lot.lot_id: lot for lot in lots}
            returns: list[tuple[Lot, int, int]] = []  # lot, drawn, expiring at once
            for part in spend.lots:
                lot = by_id[part.lot_id]
                past = lot.state == EXPIRED or (
                    lot.expires_at is not None and lot.expires_at <= now
                )
                returns.append((lot, part.amount, part.amount if past else 0))
            settles = logic.settle_owed(balance.owed, [drawn - gone for _, drawn, gone in returns])
            settled = sum(settles)
            back = sum(drawn - gone for _, drawn, gone in returns)
            balance_actions, balance_condition, after = balance.change(
                now, available=back - settled, owed=-settled
            )
            parts = [
                _part(lot, drawn, expired=gone, settled=paid)
                for (lot, drawn, gone), paid in zip(returns, settles, strict=True)
            ]
            entry = _entry(
                "cancel",
                cancel_entry_id(order_id),
                Money.of(spend.amount.amount, after.currency),
                now,
                after=after,
                available=back - settled,
                owed=-settled,
                settled=settled,
                lots=parts,
                order_id=order_id,
            )
            transaction = Transaction()
            transaction.update(
                "spend",
                Spend(customer_id=customer_id, order_id=order_id),
                [Spend.state.set(CANCELLED), Spend.cancelled_at.set(now)],
                condition=Spend.state == SPENT,
            )
            transaction.update(
                "balance", Balance.ref(customer_id, currency), balance_actions, balance_condition
            )
            _put_entry(transaction, entry)
            for (lot, drawn, gone), paid in zip(returns, settles, strict=True):
                transaction.update(
                    _lot_label(lot.lot_id),
                    Lot.ref(customer_id, currency, lot.lot_id),
                    *lot.change(
                        remaining=drawn - gone - paid, spent=-drawn, expired=gone, settled=paid
                    )[:2],
                )
            try:
                transaction.commit()
            except TransactionCancelled as cancelled:
                lot_labels = [_lot_label(lot.lot_id) for lot, _, _ in returns]
                if not _moved(cancelled, "spend", "marker", "balance", *lot_labels):
                    raise
                _backoff(attempt)
                continue
            return CancelOutcome(spend.spend_id, order_id, spend.amount, new=True)
        raise Contended("Too many changes to this wallet at once; retry shortly.")

    # -- the sweep ----------------------------------------------------------------------

    def sweep(self, *, now: datetime) -> SweepReport:
        """Release every pending lot due at or before `now`, then expire every available
        lot past its expiry, scanning each UTC day from a week before the watermark (the
        last day completed) to today; then warn of the lots expiring a reminder day from
        today (`_remind_expiring`). Safe to run twice or at once: every move is
        conditional on the lot's state and version, every warning on its day being
        unmarked."""
        today = now.astimezone(UTC).date()
        completed = SweepMark.current()
        if completed is None:
            first = today - timedelta(days=self.sweep_lookback_days)
        else:
            # From the watermark, or from today if the clock was moved back behind it,
            # and a few days more: whatever a run missed there is found again.
            first = min(completed + timedelta(days=1), today) - _RESCAN
        days = [first + timedelta(days=n) for n in range((today - first).days + 1)]
        tally = _Tally(now)
        # A day with a lot left unmoved (contention) is not completed: the next run
        # scans it again.
        unfinished: date | None = None
        for day in days:
            for snapshot in list(Lot.due(DUE_RELEASE, day, now)):
                if not self._release(snapshot, now, tally):
                    unfinished = min(unfinished or day, day)
        for day in days:
            for snapshot in list(Lot.due(DUE_EXPIRE, day, now)):
                if not self._expire(snapshot, now, tally):
                    unfinished = min(unfinished or day, day)
        through = (now - _INDEX_SETTLING).astimezone(UTC).date() - timedelta(days=1)
        if unfinished is not None:
            through = min(through, unfinished - timedelta(days=1))
        if completed is None or through > completed:
            SweepMark.advance(through, now)
        self._remind_expiring(now, tally)
        return tally.report()

    def _remind_expiring(self, now: datetime, tally: _Tally) -> None:
        """Warn of every available lot whose expiry is one of `logic.CASHBACK_REMINDER_DAYS`
        local days from today, in its campaign's zone.

        A reminder day is a local day, so it has no watermark: every run of the day looks
        again (the expiry index, bounded to the instants that can be that many local days
        away in any zone, without the lots already warned), and the lot's condition lets
        one warning per day through. A day the sweep never ran on is not warned late."""
        for days_before in logic.CASHBACK_REMINDER_DAYS:
            after, before = logic.reminder_window(now, days_before)
            day, last = after.astimezone(UTC).date(), before.astimezone(UTC).date()
            while day <= last:
                for snapshot in Lot.expiring(day, after, before, not_reminded=days_before):
                    self._remind(snapshot, days_before, now, tally)
                day += timedelta(days=1)

    def _remind(self, snapshot: Lot, days_before: int, now: datetime, tally: _Tally) -> bool:
        """Mark one lot's customer warned `days_before` local days ahead if that is today
        in the lot's zone (UTC when the lot does not know it); False when it is not, was
        done already, or nothing is left to expire."""
        expires_at = snapshot.expires_at
        if snapshot.state != AVAILABLE or snapshot.remaining <= 0 or expires_at is None:
            return False
        tz = snapshot.timezone or "UTC"
        if logic.days_before_expiry(expires_at, now, tz) != days_before:
            return False
        lot = Lot.ref(snapshot.customer_id, snapshot.currency, snapshot.lot_id)
        actions, condition = Lot.remind(days_before, now)
        for attempt in range(_MAX_ATTEMPTS):
            try:
                lot.update(actions, condition=condition)
            except UpdateError as error:
                if error.cause_response_code == "ConditionalCheckFailedException":
                    return False
                # A spend or a refund of the lot's customer is committing at that moment.
                if error.cause_response_code != "TransactionConflictException":
                    raise
                _backoff(attempt)
                continue
            # The update returns the lot as stored: what it holds at the warning.
            tally.reminded(lot.currency, lot.remaining)
            return True
        # The next run, a quarter of an hour later on the same local day, tries again.
        logger.warning("lot not reminded for contention", extra={"lotId": snapshot.lot_id})
        return False

    def _release(self, snapshot: Lot, now: datetime, tally: _Tally) -> bool:
        """Release one due lot (then expire it at once if its expiry passed too); False
        if it could not be moved for contention."""
        lot: Lot | None = snapshot
        for attempt in range(_MAX_ATTEMPTS):
            if lot is None or lot.state != PENDING or lot.remaining <= 0:
                return True
            if lot.available_at > now:
                return True
            balance = _balance(lot.customer_id, lot.currency)
            amount = lot.remaining
            settled = logic.settle_owed(balance.owed, [amount])[0]
            lot_actions, lot_condition, _ = lot.change(
                state=AVAILABLE, remaining=-settled, settled=settled
            )
            balance_actions, balance_condition, after = balance.change(
                now, pending=-amount, available=amount - settled, owed=-settled
            )
            entry = _entry(
                "release",
                release_entry_id(lot.lot_id),
                Money.of(amount, after.currency),
                now,
                after=after,
                settled=settled,
                lots=[_part(lot, amount, settled=settled)],
                lot=lot,
                pending=-amount,
                available=amount - settled,
                owed=-settled,
            )
            moved = _commit_lot_move(
                lot, (lot_actions, lot_condition), (balance_actions, balance_condition), entry
            )
            if not moved:
                _backoff(attempt)
                lot = Lot.get_or_none(*Lot.key(lot.customer_id, lot.currency, lot.lot_id))
                continue
            tally.released(lot.currency, amount, lot.available_at)
            if lot.expires_at is not None and lot.expires_at <= now:
                # Released late enough to be past its expiry too; the index may not show
                # it yet, so it is expired now rather than left to the next run.
                fresh = Lot.get_or_none(*Lot.key(lot.customer_id, lot.currency, lot.lot_id))
                if fresh is not None:
                    return self._expire(fresh, now, tally)
            return True
        logger.warning("lot not released for contention", extra={"lotId": snapshot.lot_id})
        return False

    def _expire(self, snapshot: Lot, now: datetime, tally: _Tally) -> bool:
        lot: Lot | None = snapshot
        for attempt in range(_MAX_ATTEMPTS):
            if lot is None or lot.state != AVAILABLE or lot.remaining <= 0:
                return True
            if lot.expires_at is None or lot.expires_at > now:
                return True
            balance = _balance(lot.customer_id, lot.currency)
            amount = lot.remaining
            lot_actions, lot_condition, _ = lot.change(
                state=EXPIRED, remaining=-amount, expired=amount
            )
            balance_actions, balance_condition, after = balance.change(now, available=-amount)
            entry = _entry(
                "expire",
                expire_entry_id(lot.lot_id),
                Money.of(amount, after.currency),
                now,
                after=after,
                available=-amount,
                lots=[_part(lot, amount)],
                lot=lot,
            )
            moved = _commit_lot_move(
                lot, (lot_actions, lot_condition), (balance_actions, balance_condition), entry
            )
            if not moved:
                _backoff(attempt)
                lot = Lot.get_or_none(*Lot.key(lot.customer_id, lot.currency, lot.lot_id))
                continue
            tally.expired(lot.currency, amount, lot.expires_at)
            return True
        logger.warning("lot not expired for contention", extra={"lotId": snapshot.lot_id})
        return False

    # -- reading ------------------------------------------------------------------------

    def wallet(
        self,
        customer_id: str,
        *,
        currency: str | None,
        page_token: str | None,
        limit: int = 50,
    ) -> WalletView:
        """Balances, the next release and expiry, and a page of entries newest first.

        The first page is one Query (balances, lots, then entries, which sort after
        them); later pages read the currency's balance and lots, then entries after the
        token's key. An unknown customer has an empty wallet."""
        limit = max(1, limit)
        pk = customer_partition(customer_id)
        balances: dict[str, Balance] = {}
        lots: list[Lot] = []
        entries: list[LedgerEntry] = []
        if page_token is not None:
            currency, last_key = logic.decode_page_token(
                page_token, customer_id=customer_id, currency=currency, prefix=ENTRY_PREFIX
            )
            balance, lots = currency_items(customer_id, currency)
            if balance is not None:
                balances[currency] = balance
            raw_items = partition_items(
                pk,
                LedgerEntry.sk.between(ENTRY_PREFIX, ENTRIES_END),
                start_after={"pk": {"S": pk}, "sk": {"S": last_key}},
                page_size=limit + 1,
            )
        else:
            raw_items = partition_items(
                pk, LedgerEntry.sk.between(BALANCE_PREFIX, ENTRIES_END), page_size=limit + 100
            )
        more = False
        for raw in raw_items:
            item = wallet_item(raw)
            if isinstance(item, Balance):
                balances[item.currency] = item
            elif isinstance(item, Lot):
                lots.append(item)
            elif isinstance(item, LedgerEntry):
                if currency is None:
                    currency = self._currency_of(customer_id, balances)
                if item.currency != currency:
                    continue
                if len(entries) == limit:
                    more = True
                    break
                entries.append(item)
        if currency is None:
            currency = self._currency_of(customer_id, balances)
        balance = balances.get(currency) or Balance.empty(customer_id, currency)
        mine = [lot for lot in lots if lot.currency == currency]
        release = logic.next_move(
            (lot.available_at, lot.remaining) for lot in mine if lot.state == PENDING
        )
        expiry = logic.next_move(
            (lot.expires_at, lot.remaining)
            for lot in mine
            if lot.state == AVAILABLE and lot.expires_at is not None
        )
        return WalletView(
            customer_id=customer_id,
            available=balance.money(balance.available),
            pending=balance.money(balance.pending),
            owed=balance.money(balance.owed),
            next_release=NextMove(release[0], balance.money(release[1])) if release else None,
            next_expiry=NextMove(expiry[0], balance.money(expiry[1])) if expiry else None,
            entries=tuple(_entry_view(entry) for entry in entries),
            next_token=(
                logic.encode_page_token(customer_id, currency, entries[-1].sk)
                if more and entries
                else None
            ),
        )

    def _currency_of(self, customer_id: str, balances: Mapping[str, Balance]) -> str:
        if len(balances) > 1:
            raise CurrencyRequired(customer_id, tuple(sorted(balances)))
        return next(iter(balances), self.default_currency)

    def audit(self, customer_id: str) -> AuditReport:
        """Whether the customer's entries, lots and balances agree (`functions.wallet.audit`)."""
        return audit(customer_id)


# -- pieces of the store --------------------------------------------------------------


@dataclass
class _CurrencyState:
    """A customer's balance and lots in one currency, as last read or written."""

    balance: Balance
    lots: dict[str, Lot]

    def reload(self, customer_id: str, currency: str) -> None:
        balance, lots = currency_items(customer_id, currency)
        self.balance = balance or Balance.empty(customer_id, currency)
        self.lots = {lot.lot_id: lot for lot in lots}


def _spendable(lot: Lot) -> SpendableLot:
    return SpendableLot(lot.lot_id, lot.campaign_id, lot.remaining, lot.expires_at)


def _new_lot(
    customer_id: str,
    currency: str,
    balance: Balance | None,
    *,
    lot_id: str,
    campaign_id: str,
    amount: int,
    available_at: datetime,
    expires_at: datetime | None,
    timezone: str,
    now: datetime,
    order_id: str | None = None,
    claim_id: str | None = None,
) -> tuple[Lot, LedgerEntry, tuple[list[Action], Condition | None], Balance | None]:
    """A new lot of `amount`, pending until `available_at` or available at once (then it
    first pays what is owed), its credit entry, the balance's update and the balance it
    leaves.

    With `balance` None the balance is not read first: a credit only adds, so it needs no
    version (it bumps it, so a writer that read the balance before still notices). One
    available at once is then conditional on nothing being owed (`Balance.add_blind`);
    refused, the caller reads the balance and settles what is owed. The entry of such a
    credit records no balance after it (no event of a credit needs one).
    """
    at_once = available_at <= now
    settled = logic.settle_owed(balance.owed, [amount])[0] if at_once and balance else 0
    lot = Lot(
        lot_id=lot_id,
        customer_id=customer_id,
        campaign_id=campaign_id,
        currency=currency,
        source="order" if order_id is not None else "claim",
        order_id=order_id,
        claim_id=claim_id,
        state=AVAILABLE if at_once else PENDING,
        earned=amount,
        remaining=amount - settled,
        settled=settled,
        credited_at=now,
        available_at=available_at,
        expires_at=expires_at,
        timezone=timezone,
        version=1,
    )
    pending, available, owed = (0, amount - settled, -settled) if at_once else (amount, 0, 0)
    after: Balance | None = None
    if balance is None:
        actions, condition = Balance.add_blind(
            customer_id, currency, now, pending=pending, available=available
        )
    else:
        actions, versioned, after = balance.change(
            now, pending=pending, available=available, owed=owed
        )
        condition = versioned
    entry = _entry(
        "credit",
        credit_entry_id(lot_id),
        Money.of(amount, currency),
        now,
        after=after,
        customer_id=customer_id,
        settled=settled,
        lots=[_part(lot, amount, settled=settled)],
        lot=lot,
        pending=pending,
        available=available,
        owed=owed,
    )
    return lot, entry, (actions, condition), after


def _entry_view(entry: LedgerEntry) -> WalletEntryView:
    return WalletEntryView(
        entry_id=entry.entry_id,
        kind=entry.kind,
        amount=entry.amount,
        recorded_at=entry.recorded_at,
        campaign_id=entry.campaign_id,
        order_id=entry.order_id,
        claim_id=entry.claim_id,
        refund_id=entry.refund_id,
        lots=_draws(entry.lots, entry.currency),
    )


class _Tally:
    def __init__(self, now: datetime) -> None:
        self._now = now
        self.released_count = 0
        self.expired_count = 0
        self.released_amount: dict[str, int] = {}
        self.expired_amount: dict[str, int] = {}
        self.reminded_count = 0
        self.reminded_amount: dict[str, int] = {}
        self.lag: float | None = None

    def _late(self, due: datetime) -> None:
        lag = (self._now - due).total_seconds()
        self.lag = lag if self.lag is None else max(self.lag, lag)

    def released(self, currency: str, amount: int, due: datetime) -> None:
        self.released_count += 1
        self.released_amount[currency] = self.released_amount.get(currency, 0) + amount
        self._late(due)

    def expired(self, currency: str, amount: int, due: datetime | None) -> None:
        self.expired_count += 1
        self.expired_amount[currency] = self.expired_amount.get(currency, 0) + amount
        if due is not None:
            self._late(due)

    def reminded(self, currency: str, amount: int) -> None:
        self.reminded_count += 1
        self.reminded_amount[currency] = self.reminded_amount.get(currency, 0) + amount

    def report(self) -> SweepReport:
        return SweepReport(
            released=self.released_count,
            released_amount=dict(self.released_amount),
            expired=self.expired_count,
            expired_amount=dict(self.expired_amount),
            lag_seconds=self.lag,
            reminded=self.reminded_count,
            reminded_amount=dict(self.reminded_amount),
        )
