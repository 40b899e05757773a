"""Offers on the Campaigns table: the campaign cache, code issuance, redemption, rollback.

The limits hold under any concurrency because DynamoDB decides them, never a read:

- a redemption is one TransactWriteItems (`OfferStore.redeem`): ``ADD`` one use to the
  code (unique codes; a shared code has no cap of its own), the customer's usage, the
  offer's total, and the discount and one reward to the campaign's budget, each under
  its limit's condition, plus the conditional puts of the redemption and of its
  (order, code) guard. Either all of it happens or none; a refusal names the item, which
  names the reason;
- a rollback is the mirror transaction (`OfferStore.roll_back`), conditional on the
  redemption still being ``redeemed``, so its counters are released exactly once;
- a code goes to one customer through a conditional update in the same transaction as
  the customer's issue record (`OfferStore.issue_code`), whether the customer asked for
  it or a purchase issued it (the issue then names the order);
- a reminder is marked on the customer's issue at most once per local day: ``ADD`` of the
  day to the issue's set, conditional on it not being there yet and on the customer
  having no use of the offer counted (`OfferStore.mark_reminder`).

A redemption costs two AWS calls when the campaign is cached (a GetItem of the code, the
transaction): the campaign is kept per container for `CAMPAIGN_TTL`, and the transaction's
condition that the campaign's version is the one cached makes a stale entry cancel the
write (then the entry is reloaded and the redemption tried again) instead of applying an
old version's rules. Events are not published here: the table's stream feeds the offers
outbox (`functions.offers.outbox`), so an event can never be lost between a committed
redemption and a failed PutEvents.

Transactions that touch the same items at once (one shared code at a sale's start) may
be cancelled with ``TransactionConflict``; they are retried with jittered backoff, and a
redemption still contended after that is a 429 the storefront retries.
"""

from __future__ import annotations

import functools
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, TypeVar

from functions.campaigns import budget
from functions.campaigns.budget import BudgetLimits
from functions.campaigns.codes import ALPHABET
from functions.campaigns.config import CampaignConfig
from functions.campaigns.models import (
    Campaign,
    Code,
    Offer,
    get_campaign,
    get_code,
    get_offer,
    list_campaigns,
    list_offers,
)
from functions.campaigns.published import PublishedFiles
from functions.campaigns.states import ACTIVE
from functions.core.ids import new_id
from functions.core.models import Transaction, TransactionCancelled
from functions.core.money import Money
from functions.offers.errors import (
    CodesExhausted,
    Contended,
    Missing,
    NotFoundError,
    Refused,
)
from functions.offers.logic import (
    CodeFacts,
    CustomerOffers,
    DueReminder,
    LiveCampaign,
    OfferFacts,
    Refusal,
    is_current_code,
    issue_refusal,
    reminder_due,
)
from functions.offers.models import (
    REDEEMED,
    ROLLED_BACK,
    CodeIssue,
    CustomerUsage,
    OrderRedemption,
    Redemption,
    Reminder,
    get_redemption,
)

__all__ = [
    "CAMPAIGN_TTL",
    "CampaignCache",
    "IssueOutcome",
    "OfferStore",
    "RedemptionRequest",
    "ReminderReport",
    "RollbackOutcome",
    "StaleCampaign",
]

# How long a container trusts its copy of a campaign. A republish is seen within this
# time by the listing; redemptions never act on a stale copy (see above), and no route
# refuses on one: a refusal is decided again on the table's campaign (`read_since`).
CAMPAIGN_TTL: Final = timedelta(seconds=30)
# Attempts of one transaction cancelled by TransactionConflict or throttling, and the
# first backoff (doubled each time, with full jitter).
_MAX_ATTEMPTS: Final = 5
_FIRST_BACKOFF_SECONDS: Final = 0.01
_TRANSIENT: Final = frozenset({"TransactionConflict", "ThrottlingError"})
# Unissued codes fetched per pool query, and pool queries before giving up on contention.
_POOL_PAGE: Final = 10
_POOL_ROUNDS: Final = 5
# Holders whose uses are read in one BatchGetItem (its limit).
_USAGE_BATCH: Final = 100

T = TypeVar("T")


def _retrying(attempt: Callable[[], T]) -> T:
    """Run `attempt`, again after a transient cancellation; 429 if it never gets through.

    A cancellation with any refused condition is final (the refusal is the answer), even
    if another item of it also conflicted.
    """
    for tries in range(1, _MAX_ATTEMPTS + 1):
        try:
            return attempt()
        except TransactionCancelled as cancelled:
            reasons = set(cancelled.reasons.values())
            if not reasons & _TRANSIENT or "ConditionalCheckFailed" in reasons:
                raise
        if tries < _MAX_ATTEMPTS:
            time.sleep(random.uniform(0, _FIRST_BACKOFF_SECONDS * 2**tries))  # noqa: S311
    raise Contended("Too many requests are changing this offer at once; retry shortly.")


# -- campaigns, cached per container ---------------------------------------------------


@dataclass(frozen=True)
class _Cached:
    campaign: LiveCampaign
    loaded_at: float


class CampaignCache:
    """Campaigns by id, each kept for `ttl` (monotonic time), reloaded on demand.

    A reload reads the small campaign item (state, version, limits); the file of each
    version is immutable, so it is read and parsed once per container and version.
    """

    def __init__(
        self, ttl: timedelta = CAMPAIGN_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl.total_seconds()
        self._clock = clock
        self._entries: dict[str, _Cached] = {}
        self._files = PublishedFiles()
        self._lock = threading.Lock()

    def get(self, campaign_id: str) -> LiveCampaign | None:
        with self._lock:
            entry = self._entries.get(campaign_id)
        if entry is not None and self._clock() - entry.loaded_at < self._ttl:
            return entry.campaign
        return self.reload(campaign_id)

    def moment(self) -> float:
        """Now on the cache's clock: mark a request's start with it, for `read_since`."""
        return self._clock()

    def read_since(self, campaign_id: str, moment: float) -> LiveCampaign | None:
        """The campaign as the table held it at `moment` or later: the copy if it was read
        since (by this request, or another meanwhile), else read again now.

        What a refusal is decided on: a copy from before a republish or a re-upload would
        refuse a new offer as archived, or an uploaded-again campaign as archived, for the
        rest of its `ttl`, while a fresh copy costs the refusing request nothing more.
        """
        with self._lock:
            entry = self._entries.get(campaign_id)
        if entry is not None and entry.loaded_at >= moment:
            return entry.campaign
        return self.reload(campaign_id)

    def reload(self, campaign_id: str) -> LiveCampaign | None:
        # Timed from before the read: the copy is at least as old as the read's start.
        read_at = self._clock()
        item = get_campaign(campaign_id)
        if item is None:
            with self._lock:
                self._entries.pop(campaign_id, None)
            return None
        campaign = self.live(item)
        with self._lock:
            self._entries[campaign_id] = _Cached(campaign, read_at)
        return campaign

    def live(self, item: Campaign) -> LiveCampaign:
        """The campaign `item` with its version's file."""
        return LiveCampaign(
            config=self._file(item.campaign_id, item.version),
            version=item.version,
            status=item.status,
            budget_amount=item.budget_amount,
            budget_max_rewards=item.budget_max_rewards,
        )

    def _file(self, campaign_id: str, version: int) -> CampaignConfig:
        return self._files.file(campaign_id, version)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._files.clear()


# -- redemption -----------------------------------------------------------------------


@dataclass(frozen=True)
class RedemptionRequest:
    code: CodeFacts
    campaign: LiveCampaign
    customer_id: str
    order_id: str
    channel: str
    store_id: str | None
    discount: Money
    cart_total: Money
    at: datetime


@dataclass(frozen=True)
class IssueOutcome:
    issue: CodeIssue
    # False: the customer's code from before (asked again, or by a request racing this).
    new: bool
    # What the customer is told now. The issue record keeps what it was given under, but
    # a republish may since have replaced the offer's shared code or moved the campaign's
    # end: these are the current campaign's.
    code: str
    expires_at: datetime


@dataclass
class ReminderReport:
    """What one reminder sweep did."""

    # Offers with a reminder due today, and the codes whose reminder this run marked.
    offers: int = 0
    reminded: int = 0
    # False: told to stop before it was done; the next run marks the rest.
    complete: bool = True


@dataclass(frozen=True)
class RollbackOutcome:
    redemption: Redemption
    already: bool


class StaleCampaign(Exception):
    """The cached campaign is not the stored one any more: reload and decide again."""


class OfferStore:
    """The offers domain's reads and writes; `campaigns` is the container's cache."""

    def __init__(self, campaigns: CampaignCache | None = None) -> None:
        self.campaigns = campaigns or CampaignCache()

    # -- campaigns and offers to show -------------------------------------------------

    def campaign(self, campaign_id: str) -> LiveCampaign:
        """The campaign (cached); `NotFoundError` when there is none."""
        campaign = self.campaigns.get(campaign_id)
        if campaign is None:
            raise NotFoundError(Missing.CAMPAIGN, {"campaignId": campaign_id})
        return campaign

    def campaigns_with_status(self, status: str) -> list[LiveCampaign]:
        """Every campaign with `status`, soonest start first, each with its file."""
        return [self.campaigns.live(item) for item in list_campaigns(status)]

    def offer(self, offer_id: str) -> OfferFacts:
        """The offer's state as stored now; `NotFoundError` when there is none."""
        item = get_offer(offer_id)
        if item is None:
            raise NotFoundError(Missing.OFFER, {"offerId": offer_id})
        return _offer_facts(item)

    def active_offers(self) -> list[tuple[OfferFacts, LiveCampaign | None]]:
        """Every active offer with its campaign (None: the campaign is gone)."""
        return [
            (_offer_facts(item), self.campaigns.get(item.campaign_id))
            for item in list_offers(ACTIVE)
        ]

    def customer_offers(self, customer_id: str | None, offer_ids: list[str]) -> CustomerOffers:
        """The customer's issued codes and uses of these offers (one batch read each)."""
        if customer_id is None or not offer_ids:
            return CustomerOffers(customer_id, {}, {})
        issues = CodeIssue.batch_get([CodeIssue.key(customer_id, o) for o in offer_ids])
        usages = CustomerUsage.batch_get([CustomerUsage.key(customer_id, o) for o in offer_ids])
        return CustomerOffers(
            customer_id,
            issued={issue.offer_id: issue.code for issue in issues},
            uses={usage.offer_id: usage.uses for usage in usages},
        )

    # -- codes ----------------------------------------------------------------------

    def code(self, code: str) -> CodeFacts:
        """The code as stored (the caller normalised it); `NotFoundError` when unknown."""
        item = get_code(code)
        if item is None:
            raise NotFoundError(Missing.CODE, {"code": code})
        return CodeFacts(
            code=item.code,
            offer_id=item.offer_id,
            campaign_id=item.campaign_id,
            mode=item.mode,
            issued_to=item.issued_to,
            uses=item.uses,
            max_uses=item.max_uses,
            retired=item.retired_at is not None,
        )

    def campaign_of(self, code: CodeFacts) -> LiveCampaign:
        campaign = self.campaigns.get(code.campaign_id)
        if campaign is not None and not code.retired and not _gives_out(campaign, code):
            # A live code the cached copy does not know is likely newer than the copy (a
            # version added its offer or its shared code): read the campaign again rather
            # than refuse the code for the rest of the cache's life.
            campaign = self.campaigns.reload(code.campaign_id)
        if campaign is None:
            # A code outlives nothing: codes are only written for a published campaign.
            raise NotFoundError(Missing.CODE, {"code": code.code})
        return campaign

    def issue_code(
        self,
        offer: OfferFacts,
        customer_id: str,
        expires_at: datetime,
        at: datetime,
        *,
        order_id: str | None = None,
    ) -> IssueOutcome:
        """The customer's code for `offer`: the one issued before, else a new one (unique
        mode: an unissued code from the pool; shared: the offer's code), expiring at
        `expires_at` (the campaign's end now, whenever it was issued). `order_id`: the
        purchase a new code is issued after; a code held before keeps its own."""
        existing = CodeIssue.find(customer_id, offer.offer_id)
        if existing is not None:
            return _issued_before(existing, offer, expires_at)
        new_issue = functools.partial(
            CodeIssue,
            customer_id=customer_id,
            offer_id=offer.offer_id,
            campaign_id=offer.campaign_id,
            mode=offer.code_mode,
            channel=offer.channel,
            issued_at=at,
            expires_at=expires_at,
            order_id=order_id,
        )
        if offer.code_mode == "shared":
            return self._issue(offer, new_issue(code=offer.shared_code or ""))
        for _ in range(_POOL_ROUNDS):
            for candidate in self._pool_candidates(offer):
                try:
                    return self._issue(offer, new_issue(code=candidate))
                except _CodeTaken:
                    continue
        raise Contended("Too many customers are being given this offer's codes; retry shortly.")

    def _pool_candidates(self, offer: OfferFacts) -> list[str]:
        """A page of unissued codes from a random point of the pool (from its start when
        nothing lies after it), so concurrent issuers rarely race for the same code."""
        start = f"{offer.code_prefix or ''}-{''.join(random.choices(ALPHABET, k=8))}"  # noqa: S311
        page = [c.code for c in Code.pool(offer.offer_id, start_after=start, limit=_POOL_PAGE)]
        if not page:
            page = [c.code for c in Code.pool(offer.offer_id, limit=_POOL_PAGE)]
        if not page:
            raise CodesExhausted(offer.offer_id)
        return page

    def _issue(self, offer: OfferFacts, issue: CodeIssue) -> IssueOutcome:
        code, customer_id = issue.code, issue.customer_id
        expires_at, at = issue.expires_at, issue.issued_at

        def attempt() -> IssueOutcome:
            transaction = Transaction()
            transaction.put("issue", issue, condition=CodeIssue.pk.does_not_exist())
            if offer.code_mode == "unique":
                transaction.update("code", Code.ref(code), *Code.issue(customer_id, at))
            transaction.update(
                "offer",
                Offer.ref(offer.offer_id),
                [Offer.codes_issued.add(1)],
                condition=Offer.status == ACTIVE,
            )
            transaction.commit()
            return IssueOutcome(issue, new=True, code=code, expires_at=expires_at)

        try:
            return _retrying(attempt)
        except TransactionCancelled as cancelled:
            if cancelled.failed("issue"):
                # The same customer asked twice at once: the other request issued it.
                existing = CodeIssue.find(customer_id, offer.offer_id)
                if existing is not None:
                    return _issued_before(existing, offer, expires_at)
            if cancelled.failed("offer"):
                raise Refused(Refusal.OFFER_ARCHIVED, {"offerId": offer.offer_id}) from None
            if cancelled.failed("code"):
                raise _CodeTaken(code) from None
            raise

    # -- reminders --------------------------------------------------------------------

    def send_reminders(
        self, now: datetime, *, should_stop: Callable[[], bool] = lambda: False
    ) -> ReminderReport:
        """Mark today's reminder on every unused code of each live offer that has one due
        today (`reminder_due`); the outbox announces each as `OfferExpiring`.

        Per offer: one query of its holders (gsi1), one BatchGetItem of their uses per
        hundred, and a transaction per reminder, skipping those the index already shows
        marked today. `should_stop` is asked before each mark: when it answers True the
        report says incomplete, and a later run marks the rest (each mark stands alone).
        """
        report = ReminderReport()
        for campaign in self.campaigns_with_status(ACTIVE):
            for offer_config in campaign.config.offers:
                due = reminder_due(campaign.config, offer_config, now)
                if due is None:
                    continue
                offer = get_offer(offer_config.id)
                facts = _offer_facts(offer) if offer is not None else None
                if facts is None or issue_refusal(facts, campaign, now) is not None:
                    continue
                report.offers += 1
                for issue in self._unused_unreminded(facts.offer_id, due):
                    if should_stop():
                        report.complete = False
                        return report
                    if issue.mode != facts.code_mode:
                        # Given under a version with the other mode: that code is retired.
                        continue
                    code = _issued_before(issue, facts, due.expires_at).code
                    if self.mark_reminder(issue, due, code=code, at=now):
                        report.reminded += 1
        return report

    def _unused_unreminded(self, offer_id: str, due: DueReminder) -> Iterator[CodeIssue]:
        """The offer's holders not yet reminded on `due`'s day and with no use counted."""
        day = due.day.isoformat()
        pending = (issue for issue in CodeIssue.holders(offer_id) if not issue.reminded_on(day))
        for chunk in _chunks(pending, _USAGE_BATCH):
            keys = [CustomerUsage.key(issue.customer_id, offer_id) for issue in chunk]
            used = {usage.customer_id for usage in CustomerUsage.batch_get(keys) if usage.uses}
            yield from (issue for issue in chunk if issue.customer_id not in used)

    def mark_reminder(self, issue: CodeIssue, due: DueReminder, *, code: str, at: datetime) -> bool:
        """Mark `due` on the customer's issue, telling them `code`; False when its day was
        marked already, or the customer has used the offer meanwhile."""
        reminder = Reminder(
            day=due.day.isoformat(),
            days_before=due.days_before,
            expires_at=due.expires_at,
            code=code,
            at=at,
        )

        def attempt() -> bool:
            transaction = Transaction()
            transaction.update(
                "issue",
                CodeIssue.ref(issue.customer_id, issue.offer_id),
                *CodeIssue.remind(reminder),
            )
            transaction.condition_check(
                "usage",
                CustomerUsage,
                *CustomerUsage.key(issue.customer_id, issue.offer_id),
                condition=CustomerUsage.unused(),
            )
            transaction.commit()
            return True

        try:
            return _retrying(attempt)
        except TransactionCancelled as cancelled:
            if cancelled.failed("issue") or cancelled.failed("usage"):
                return False
            raise

    # -- redemption -------------------------------------------------------------------

    def counted_refusals(
        self, code: CodeFacts, campaign: LiveCampaign, customer_id: str, discount: Money
    ) -> list[Refusal]:
        """What the counters would refuse now: a snapshot for validation, which a
        concurrent redemption may change (only `redeem`'s transaction decides)."""
        reasons: list[Refusal] = []
        if code.max_uses is not None and code.uses >= code.max_uses:
            reasons.append(Refusal.CODE_USED_UP)
        offer_config = campaign.offer(code.offer_id)
        per_customer = offer_config.usage.per_customer if offer_config else None
        if per_customer is not None:
            usage = CustomerUsage.get_or_none(*CustomerUsage.key(customer_id, code.offer_id))
            if usage is not None and usage.uses >= per_customer:
                reasons.append(Refusal.CUSTOMER_LIMIT_REACHED)
        offer = get_offer(code.offer_id)
        max_total = offer.max_total if offer is not None else None
        if offer is not None and max_total is not None and offer.redemptions_count >= max_total:
            reasons.append(Refusal.OFFER_LIMIT_REACHED)
        stored = get_campaign(code.campaign_id)
        if stored is not None and budget.would_exceed(stored, discount.amount):
            reasons.append(Refusal.BUDGET_EXHAUSTED)
        return reasons

    def redeem(self, request: RedemptionRequest) -> Redemption:
        """Count the redemption against every limit at once and store it.

        Raises `Refused` (a counted limit or the budget, or the campaign or offer archived
        meanwhile), or `StaleCampaign` when the campaign was republished since it was
        cached (the caller reloads and decides again).
        """
        offer_config = request.campaign.offer(request.code.offer_id)
        per_customer = offer_config.usage.per_customer if offer_config else None
        redemption = Redemption(
            redemption_id=new_id("red"),
            code=request.code.code,
            code_mode=request.code.mode,
            offer_id=request.code.offer_id,
            campaign_id=request.code.campaign_id,
            customer_id=request.customer_id,
            order_id=request.order_id,
            channel=request.channel,
            store_id=request.store_id,
            discount=request.discount,
            cart_total=request.cart_total,
            status=REDEEMED,
            redeemed_at=request.at,
        )
        campaign = request.campaign
        code_actions, code_ok = Code.use()
        if request.code.mode == "unique":
            code_ok &= Code.issued_to == request.customer_id

        def attempt() -> Redemption:
            transaction = Transaction()
            transaction.put(
                "order", _order_guard(redemption), condition=OrderRedemption.pk.does_not_exist()
            )
            if request.code.mode == "unique":
                # A shared code has no cap of its own (the offer's max_total bounds it):
                # counting its uses would make one item every redemption writes.
                transaction.update("code", Code.ref(redemption.code), code_actions, code_ok)
            transaction.update(
                "customer",
                CustomerUsage.ref(request.customer_id, redemption.offer_id),
                *CustomerUsage.use(
                    request.customer_id, redemption.offer_id, per_customer, request.at
                ),
            )
            offer_actions, offer_ok = Offer.use_total()
            transaction.update(
                "offer",
                Offer.ref(redemption.offer_id),
                offer_actions,
                offer_ok & (Offer.status == ACTIVE) & (Offer.campaign_id == redemption.campaign_id),
            )
            budget.reserve(
                transaction,
                redemption.campaign_id,
                request.discount.amount,
                limits=BudgetLimits(campaign.budget_amount, campaign.budget_max_rewards),
                only_if=(Campaign.version == campaign.version) & (Campaign.status == ACTIVE),
            )
            transaction.put("redemption", redemption, condition=Redemption.pk.does_not_exist())
            transaction.commit()
            return redemption

        try:
            return _retrying(attempt)
        except TransactionCancelled as cancelled:
            raise self._redemption_refusal(cancelled, request) from None

    def _redemption_refusal(
        self, cancelled: TransactionCancelled, request: RedemptionRequest
    ) -> Exception:
        """Why the transaction was refused, read back from the items it names."""
        code = request.code
        if cancelled.failed("order"):
            return _already_redeemed(request)
        changed = _campaign_changed(request) if cancelled.failed(budget.LABEL) else None
        if changed is not None:
            return changed
        limits = (
            ("code", Refusal.CODE_USED_UP, {"code": code.code}),
            (
                "customer",
                Refusal.CUSTOMER_LIMIT_REACHED,
                {"customerId": request.customer_id, "offerId": code.offer_id},
            ),
        )
        for label, reason, details in limits:
            if cancelled.failed(label):
                return Refused(reason, details)
        if cancelled.failed("offer"):
            return _offer_refusal(code)
        if cancelled.failed(budget.LABEL):
            return Refused(
                Refusal.BUDGET_EXHAUSTED,
                {"campaignId": code.campaign_id, "discount": request.discount.model_dump()},
            )
        return cancelled

    # -- rollback ---------------------------------------------------------------------

    def roll_back(self, redemption_id: str, reason: str, at: datetime) -> RollbackOutcome:
        """Release everything the redemption counted, once; `NotFoundError` for an
        unknown id."""
        redemption = get_redemption(redemption_id)
        if redemption is None:
            raise NotFoundError(Missing.REDEMPTION, {"redemptionId": redemption_id})
        if redemption.status == ROLLED_BACK:
            return RollbackOutcome(redemption, already=True)

        def attempt() -> Redemption:
            transaction = Transaction()
            transaction.update(
                "redemption",
                Redemption(redemption_id=redemption_id),
                *Redemption.roll_back(reason, at),
            )
            if redemption.code_mode == "unique":
                transaction.update("code", Code.ref(redemption.code), *Code.release())
            transaction.update(
                "customer",
                CustomerUsage.ref(redemption.customer_id, redemption.offer_id),
                *CustomerUsage.release(at),
            )
            transaction.update("offer", Offer.ref(redemption.offer_id), *Offer.release_total())
            budget.release_in(transaction, redemption.campaign_id, redemption.discount.amount)
            transaction.delete(
                "order",
                _order_guard(redemption),
                condition=OrderRedemption.owned_by(redemption.redemption_id),
            )
            transaction.commit()
            redemption.status = ROLLED_BACK
            redemption.rolled_back_at = at
            redemption.rollback_reason = reason
            return redemption

        try:
            return RollbackOutcome(_retrying(attempt), already=False)
        except TransactionCancelled as cancelled:
            if cancelled.failed("redemption"):
                # Another rollback of the same redemption got there first.
                current = get_redemption(redemption_id)
                if current is not None and current.status == ROLLED_BACK:
                    return RollbackOutcome(current, already=True)
            raise


class _CodeTaken(Exception):
    """Another customer was given this pool code first (or it was retired); try the next
    one."""


def _gives_out(campaign: LiveCampaign, code: CodeFacts) -> bool:
    offer = campaign.offer(code.offer_id)
    return offer is not None and is_current_code(offer, code)


def _issued_before(issue: CodeIssue, offer: OfferFacts, expires_at: datetime) -> IssueOutcome:
    """The customer's earlier issue, told as the offer stands now: a shared offer's code is
    the one it has now (a replaced one is retired), a unique code stays the customer's."""
    code = issue.code
    if offer.code_mode == "shared" and offer.shared_code:
        code = offer.shared_code
    return IssueOutcome(issue, new=False, code=code, expires_at=expires_at)


def _already_redeemed(request: RedemptionRequest) -> Exception:
    guard = OrderRedemption.find(request.order_id, request.code.code)
    details = {"orderId": request.order_id, "code": request.code.code}
    if guard is not None:
        details["redemptionId"] = guard.redemption_id
    return Refused(Refusal.ALREADY_REDEEMED, details)


def _campaign_changed(request: RedemptionRequest) -> Exception | None:
    """A republish or an archive since the campaign was cached, else None (the budget)."""
    stored = get_campaign(request.code.campaign_id)
    if stored is None or stored.version != request.campaign.version:
        return StaleCampaign()
    if stored.status != ACTIVE:
        return Refused(Refusal.CAMPAIGN_ARCHIVED, {"campaignId": stored.campaign_id})
    return None


def _offer_refusal(code: CodeFacts) -> Exception:
    offer = get_offer(code.offer_id)
    if offer is None or offer.status != ACTIVE or offer.campaign_id != code.campaign_id:
        return Refused(Refusal.OFFER_ARCHIVED, {"offerId": code.offer_id})
    return Refused(
        Refusal.OFFER_LIMIT_REACHED, {"offerId": code.offer_id, "maxTotal": offer.max_total}
    )


def _order_guard(redemption: Redemption) -> OrderRedemption:
    return OrderRedemption(
        order_id=redemption.order_id,
        code=redemption.code,
        redemption_id=redemption.redemption_id,
        created_at=redemption.redeemed_at,
    )


def _offer_facts(item: Offer) -> OfferFacts:
    return OfferFacts(
        offer_id=item.offer_id,
        campaign_id=item.campaign_id,
        status=item.status,
        channel=item.channel,
        code_mode=item.code_mode,
        shared_code=item.shared_code,
        code_prefix=item.code_prefix,
        max_total=item.max_total,
        per_customer=item.per_customer,
        redemptions_count=item.redemptions_count,
        issue_after_purchase=item.issue_after_purchase,
    )


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
