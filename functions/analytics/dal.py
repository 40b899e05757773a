"""Analytics data access: counting an event exactly once, the stream and the archive.

`Counters.count` is the consumer's whole job for one record. Its order is what makes a
retry harmless (see `functions.analytics.models`): first what is keyed by the event
itself (its touch, its order facts, the channel of a credit), each a put that is the
same put when done twice; last one transaction with the event's `SeenEvent`, its
session's state and every counter it moves. A replayed event finds its `SeenEvent` and
changes nothing.

`EventStream` puts records on Kinesis, `Archive` puts archive lines on Firehose: both
retry what the service refused (throttling) with exponential backoff, and say which
records still failed, never dropping one silently.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from pynamodb.exceptions import PutError

from functions.analytics import logic
from functions.analytics.logic import Attribution, Session, Touch
from functions.analytics.models import (
    CampaignCustomer,
    CreditChannel,
    CustomerChannel,
    DailyAmounts,
    DailyBreakdown,
    DailyCounter,
    OrderFact,
    SeenEvent,
    SessionState,
    VisitorTouch,
)
from functions.analytics.records import TrackedEvent, pseudonym
from functions.campaigns.models import get_campaign
from functions.core import aws
from functions.core.clock import local_date
from functions.core.models import Transaction, TransactionCancelled
from functions.core.models.keys import day_key

__all__ = [
    "Archive",
    "CampaignZones",
    "Counters",
    "EventStream",
    "Outcome",
    "SessionContended",
]

# Replays come from Kinesis (24 h retention) and SQS redrives (days): a month is ample.
SEEN_FOR: Final = timedelta(days=35)
SESSION_FOR: Final = timedelta(days=2)
TOUCH_FOR: Final = timedelta(milliseconds=logic.LOOKBACK_MS) + timedelta(days=2)
CHANNEL_FOR: Final = timedelta(days=400)
ORDER_FOR: Final = timedelta(days=400)
ZONE_TTL_SECONDS: Final = 300.0

_TOTAL: Final = "TOTAL"
# The events that say an order belongs to their campaign. Not a post-purchase code: it
# is for the next order, not a sign that this one was the campaign's.
_TYING: Final = frozenset(
    {"purchase", "redemption", "claim_submitted", "cashback_credited", "cashback_reversed"}
)


class SessionContended(Exception):
    """The session's state changed between its read and the counting write: only two
    deliveries of one shard at once do that; the record is retried."""


@dataclass(frozen=True)
class Outcome:
    counted: bool
    reason: str = ""


class CampaignZones:
    """Each campaign's timezone (None: no such campaign), kept a few minutes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._zones: dict[str, tuple[str | None, float]] = {}
        self._lock = threading.Lock()

    def zone(self, campaign_id: str) -> str | None:
        now = self._clock()
        with self._lock:
            cached = self._zones.get(campaign_id)
        if cached is not None and now - cached[1] < ZONE_TTL_SECONDS:
            return cached[0]
        item = get_campaign(campaign_id)
        zone = item.timezone if item is not None else None
        with self._lock:
            self._zones[campaign_id] = (zone, now)
        return zone


@dataclass
class _Parts:
    """The counter moves of one event, gathered before its one transaction."""

    counters: dict[tuple[str, date], dict[str, int]] = field(default_factory=dict)
    amounts: dict[tuple[str, date, str], dict[str, int]] = field(default_factory=dict)
    breakdowns: list[tuple[str, date, str, str, int, int, str]] = field(default_factory=list)

    def count(self, campaign_id: str, day: date, deltas: dict[str, int]) -> None:
        moved = self.counters.setdefault((campaign_id, day), {})
        for name, delta in deltas.items():
            moved[name] = moved.get(name, 0) + delta

    def add(self, campaign_id: str, day: date, currency: str, **sums: int) -> None:
        moved = self.amounts.setdefault((campaign_id, day, currency), {})
        for name, delta in sums.items():
            moved[name] = moved.get(name, 0) + delta


class Counters:
    """Counts tracked events into the analytics table (see the module docstring)."""

    def __init__(self, zones: CampaignZones, pseudonym_key: Callable[[], bytes]) -> None:
        self._zones = zones
        self._key = pseudonym_key
        # The sessions this invocation wrote, as written: a session's events come in
        # order on one shard, so the next one needs no read. Kept for one batch only
        # (`forget_sessions`): another invocation may have moved a session since, and
        # the version condition would then refuse the write and cost a retry.
        self._sessions: dict[tuple[str, str], SessionState] = {}

    def forget_sessions(self) -> None:
        self._sessions.clear()

    def customer_key(self, customer_id: str | None) -> str | None:
        return pseudonym(customer_id, self._key()) if customer_id else None

    def count(self, event: TrackedEvent, *, now: datetime) -> Outcome:
        # No read of the event's `SeenEvent` first: the counting transaction's condition
        # is what refuses a replay, and what comes before it is harmless to repeat. On
        # the local cloud and in AWS alike a call saved per event is most of the cost.
        customer_key = self.customer_key(event.customer_id)
        if event.from_storefront and event.anonymous_id and event.channel:
            self._touch(event, now)
        zone = self._zones.zone(event.campaign_id) if event.campaign_id else None
        self._order_facts(event, customer_key, zone, now)
        if event.campaign_id is None or zone is None:
            # Archived, and a touch or an order fact, but no campaign's to count.
            return Outcome(
                False, "no_campaign" if event.campaign_id is None else "unknown_campaign"
            )
        day = local_date(event.occurred_at, zone)
        parts = _Parts()
        session: tuple[SessionState, int | None] | None = None
        if event.from_storefront:
            session = self._storefront(event, day, customer_key, parts, now)
        else:
            self._domain(event, day, customer_key, parts, now)
        if not self._commit(event, parts, session, now):
            return Outcome(False, "replayed")
        return Outcome(True)

    # -- storefront ---------------------------------------------------------------

    def _touch(self, event: TrackedEvent, now: datetime) -> None:
        assert event.anonymous_id is not None and event.channel is not None
        VisitorTouch(
            anonymous_id=event.anonymous_id,
            at_ms=event.occurred_ms,
            event_id=event.event_id,
            channel=event.channel,
            expires_at=now + TOUCH_FOR,
        ).save()

    def _storefront(
        self,
        event: TrackedEvent,
        day: date,
        customer_key: str | None,
        parts: _Parts,
        now: datetime,
    ) -> tuple[SessionState, int | None] | None:
        campaign_id = event.campaign_id
        assert campaign_id is not None
        if event.session_id is None:
            return None
        key = (event.session_id, campaign_id)
        stored = self._sessions.get(key) or SessionState.find(*key)
        step = logic.advance(_session_of(stored), event, day)
        parts.count(campaign_id, step.session.day, step.session_day)
        parts.count(campaign_id, day, step.event_day)
        if step.converted:
            attribution = self._attribution(event)
            for dimension, channel in (
                ("last_touch", attribution.last_touch),
                ("first_touch", attribution.first_touch),
            ):
                parts.breakdowns.append((campaign_id, day, dimension, channel, 1, 0, ""))
            if customer_key is not None:
                self._remember_channel(customer_key, campaign_id, attribution, event, now)
        if event.type == "purchase" and event.order_id is None and event.value is not None:
            # An order of its own (DESIGN): no other event can name it.
            assert event.currency is not None
            parts.count(campaign_id, day, {"orders": 1})
            parts.add(campaign_id, day, event.currency, sales=event.value)
        state = _state_of(step.session, event, now)
        return state, stored.version if stored is not None else None

    def _attribution(self, event: TrackedEvent) -> Attribution:
        if event.anonymous_id is None:
            return logic.attribute([], event.occurred_ms)
        touches = VisitorTouch.within(
            event.anonymous_id, event.occurred_ms - logic.LOOKBACK_MS, event.occurred_ms
        )
        return logic.attribute(
            [Touch(t.at_ms, t.event_id, t.channel) for t in touches], event.occurred_ms
        )

    def _remember_channel(
        self,
        customer_key: str,
        campaign_id: str,
        attribution: Attribution,
        event: TrackedEvent,
        now: datetime,
    ) -> None:
        try:
            CustomerChannel(
                customer_key=customer_key,
                campaign_id=campaign_id,
                channel=attribution.last_touch,
                at_ms=event.occurred_ms,
                expires_at=now + CHANNEL_FOR,
            ).save(condition=CustomerChannel.older_than(event.occurred_ms))
        except PutError as error:
            if not _refused(error):
                raise

    # -- domain -------------------------------------------------------------------

    def _domain(
        self,
        event: TrackedEvent,
        day: date,
        customer_key: str | None,
        parts: _Parts,
        now: datetime,
    ) -> None:
        campaign_id = event.campaign_id
        assert campaign_id is not None
        counter = logic.DOMAIN_COUNTERS.get(event.type)
        if counter is not None:
            parts.count(campaign_id, day, {counter: 1})
        if event.value is None or event.currency is None:
            return
        if event.type == "redemption":
            parts.add(campaign_id, day, event.currency, discounts=event.value)
        elif event.type == "redemption_rolled_back":
            parts.add(campaign_id, day, event.currency, discounts=-event.value)
        elif event.type in ("cashback_credited", "cashback_reversed"):
            sign = 1 if event.type == "cashback_credited" else -1
            credit_id = event.event_id if event.credit_id is None else event.credit_id
            channel = self._credit_channel(credit_id, campaign_id, customer_key, now)
            parts.add(campaign_id, day, event.currency, rewards_paid=sign * event.value)
            parts.breakdowns.append(
                (campaign_id, day, "rewards", channel, 0, sign * event.value, event.currency)
            )

    def _credit_channel(
        self, credit_id: str, campaign_id: str, customer_key: str | None, now: datetime
    ) -> str:
        decided = CreditChannel.get_or_none(*CreditChannel.key(credit_id), consistent_read=True)
        if decided is not None:
            return decided.channel
        remembered = (
            CustomerChannel.get_or_none(
                *CustomerChannel.key(customer_key, campaign_id), consistent_read=True
            )
            if customer_key is not None
            else None
        )
        channel = remembered.channel if remembered is not None else logic.UNATTRIBUTED
        try:
            CreditChannel(
                entry_id=credit_id,
                campaign_id=campaign_id,
                channel=channel,
                expires_at=now + CHANNEL_FOR,
            ).save(condition=CreditChannel.first_time())
        except PutError as error:
            if not _refused(error):
                raise
            # The credit and a reversal decided at once: the stored decision holds.
            stored = CreditChannel.get_or_none(*CreditChannel.key(credit_id), consistent_read=True)
            if stored is not None:
                return stored.channel
        return channel

    # -- orders -------------------------------------------------------------------

    def _order_facts(
        self, event: TrackedEvent, customer_key: str | None, zone: str | None, now: datetime
    ) -> None:
        """Record what `event` says of its order, then count the order into each
        campaign it belongs to whose sales do not hold it yet."""
        if event.order_id is None:
            return
        total = _order_total(event)
        tie = event.campaign_id if zone is not None and event.type in _TYING else None
        if total is None and tie is None:
            return
        if total is not None:
            amount, currency = total
            self._put_fact(
                OrderFact(
                    order_id=event.order_id,
                    fact=_TOTAL,
                    amount=amount,
                    currency=currency,
                    at_ms=event.occurred_ms,
                    customer_key=customer_key,
                    expires_at=now + ORDER_FOR,
                )
            )
        if tie is not None:
            self._put_fact(
                OrderFact(
                    order_id=event.order_id,
                    fact=f"TIE#{tie}",
                    customer_key=customer_key,
                    expires_at=now + ORDER_FOR,
                )
            )
        facts = {fact.fact: fact for fact in OrderFact.of(event.order_id)}
        stored_total = facts.get(_TOTAL)
        if stored_total is None:
            return
        for name, fact in facts.items():
            if not name.startswith("TIE#"):
                continue
            campaign_id = name.removeprefix("TIE#")
            if f"COUNTED#{campaign_id}" in facts:
                continue
            campaign_zone = zone if campaign_id == event.campaign_id else None
            campaign_zone = campaign_zone or self._zones.zone(campaign_id)
            if campaign_zone is None:
                continue
            buyer = stored_total.customer_key or fact.customer_key
            self._count_order(
                event.order_id, campaign_id, campaign_zone, total=stored_total, buyer=buyer, now=now
            )

    def _put_fact(self, fact: OrderFact) -> None:
        try:
            fact.save(condition=OrderFact.first_time())
        except PutError as error:
            if not _refused(error):
                raise

    def _count_order(
        self,
        order_id: str,
        campaign_id: str,
        zone: str,
        *,
        total: OrderFact,
        buyer: str | None,
        now: datetime,
    ) -> None:
        assert total.at_ms is not None and total.amount is not None and total.currency is not None
        day = local_date(datetime.fromtimestamp(total.at_ms / 1000, UTC), zone)
        if buyer is not None:
            # Before the order's own count: a retry after a crash between the two still
            # finds the order uncounted and comes back here.
            first = Transaction()
            first.put(
                "customer",
                CampaignCustomer(
                    campaign_id=campaign_id, customer_key=buyer, order_id=order_id, day=day_key(day)
                ),
                condition=CampaignCustomer.first_time(),
            )
            first.update(
                "counter",
                DailyCounter.ref(campaign_id, day),
                DailyCounter.increment(campaign_id, day, new_customers=1),
            )
            _commit_once(first, "customer")
        counted = Transaction()
        counted.put(
            "counted",
            OrderFact(order_id=order_id, fact=f"COUNTED#{campaign_id}", expires_at=now + ORDER_FOR),
            condition=OrderFact.first_time(),
        )
        counted.update(
            "counter",
            DailyCounter.ref(campaign_id, day),
            DailyCounter.increment(campaign_id, day, orders=1),
        )
        counted.update(
            "amounts",
            DailyAmounts.ref(campaign_id, day, total.currency),
            DailyAmounts.increment(campaign_id, day, total.currency, sales=total.amount),
        )
        _commit_once(counted, "counted")

    # -- the counting transaction -----------------------------------------------------

    def _commit(
        self,
        event: TrackedEvent,
        parts: _Parts,
        session: tuple[SessionState, int | None] | None,
        now: datetime,
    ) -> bool:
        """Count the event; False: it was counted before (a replay)."""
        transaction = Transaction()
        transaction.put(
            "seen",
            SeenEvent(
                event_id=event.event_id,
                event_type=event.type,
                seen_at=now,
                expires_at=now + SEEN_FOR,
            ),
            condition=SeenEvent.first_time(),
        )
        if session is not None:
            state, version = session
            transaction.put("session", state, condition=SessionState.unchanged_since(version))
        for index, ((campaign_id, day), deltas) in enumerate(parts.counters.items()):
            moved = {name: delta for name, delta in deltas.items() if delta}
            if moved:
                transaction.update(
                    f"counter{index}",
                    DailyCounter.ref(campaign_id, day),
                    DailyCounter.increment(campaign_id, day, **moved),
                )
        for index, ((campaign_id, day, currency), sums) in enumerate(parts.amounts.items()):
            transaction.update(
                f"amounts{index}",
                DailyAmounts.ref(campaign_id, day, currency),
                DailyAmounts.increment(campaign_id, day, currency, **sums),
            )
        for index, (campaign_id, day, dimension, value, by, amount, currency) in enumerate(
            parts.breakdowns
        ):
            transaction.update(
                f"breakdown{index}",
                DailyBreakdown.ref(campaign_id, day, dimension, value, currency),
                DailyBreakdown.increment(
                    campaign_id, day, dimension, value, by=by, amount=amount, currency=currency
                ),
            )
        try:
            transaction.commit()
        except TransactionCancelled as cancelled:
            if session is not None:
                self._sessions.pop((session[0].session_id, session[0].campaign_id), None)
            if cancelled.failed("seen"):
                return False
            if cancelled.failed("session"):
                raise SessionContended(event.session_id or "") from cancelled
            raise
        except Exception:
            if session is not None:
                self._sessions.pop((session[0].session_id, session[0].campaign_id), None)
            raise
        if session is not None:
            self._sessions[(session[0].session_id, session[0].campaign_id)] = session[0]
        return True


def _session_of(stored: SessionState | None) -> Session | None:
    if stored is None:
        return None
    return Session(
        day=date.fromisoformat(stored.day),
        first_ms=stored.first_ms,
        last_ms=stored.last_ms,
        page_views=stored.page_views,
        funnel_step=stored.funnel_step,
        anchor_ms=stored.anchor_ms,
        reached_ms=stored.reached_ms,
        converted=bool(stored.converted),
        version=stored.version,
    )


def _state_of(session: Session, event: TrackedEvent, now: datetime) -> SessionState:
    assert event.session_id is not None and event.campaign_id is not None
    return SessionState(
        session_id=event.session_id,
        campaign_id=event.campaign_id,
        day=day_key(session.day),
        first_ms=session.first_ms,
        last_ms=session.last_ms,
        page_views=session.page_views,
        funnel_step=session.funnel_step,
        anchor_ms=session.anchor_ms,
        reached_ms=session.reached_ms,
        converted=int(session.converted),
        version=(session.version or 0) + 1,
        expires_at=now + SESSION_FOR,
    )


def _order_total(event: TrackedEvent) -> tuple[int, str] | None:
    if event.currency is None:
        return None
    if event.type == "redemption" and event.order_total is not None:
        return event.order_total, event.currency
    if event.type in ("purchase", "purchase_recorded") and event.value is not None:
        return event.value, event.currency
    return None


def _refused(error: PutError) -> bool:
    cause = getattr(error, "cause_response_code", None)
    return cause == "ConditionalCheckFailedException"


def _commit_once(transaction: Transaction, label: str) -> None:
    try:
        transaction.commit()
    except TransactionCancelled as cancelled:
        if not cancelled.failed(label):
            raise


# -- Kinesis and Firehose -------------------------------------------------------------

# Backoff between retries of what a batch call refused: 50, 100, 200 ms.
RETRY_DELAYS: Final = (0.05, 0.1, 0.2)


class EventStream:
    """PutRecords onto the events stream: one call per batch of up to 500."""

    def __init__(
        self,
        stream_name: str,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.stream_name = stream_name
        self._client = client
        self._sleep = sleep

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else aws.client("kinesis")

    def put(self, events: Sequence[TrackedEvent]) -> list[int]:
        """Put `events`; the positions of those still refused after the retries."""
        pending = list(range(len(events)))
        client = self.client
        for delay in (*RETRY_DELAYS, None):
            if not pending:
                break
            answer = client.put_records(
                StreamName=self.stream_name,
                Records=[
                    {"Data": events[i].to_stream(), "PartitionKey": events[i].partition_key}
                    for i in pending
                ],
            )
            if not answer.get("FailedRecordCount"):
                return []
            pending = [
                position
                for position, result in zip(pending, answer["Records"], strict=True)
                if "ErrorCode" in result
            ]
            if delay is not None and pending:
                self._sleep(delay)
        return pending


# Firehose PutRecordBatch: 500 records and 4 MiB per call.
FIREHOSE_MAX_RECORDS: Final = 500
FIREHOSE_MAX_BYTES: Final = 4 * 1024 * 1024


class ArchiveRefused(RuntimeError):
    """Firehose kept refusing some lines: the batch is retried by its event source."""


class Archive:
    """Archive lines to the Firehose delivery stream that writes `events/dt=.../`."""

    def __init__(
        self,
        delivery_stream: str,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.delivery_stream = delivery_stream
        self._client = client
        self._sleep = sleep

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else aws.client("firehose")

    def write(self, lines: Sequence[bytes]) -> None:
        for chunk in _chunks(lines):
            self._write_chunk(chunk)

    def _write_chunk(self, lines: list[bytes]) -> None:
        pending = lines
        client = self.client
        for delay in (*RETRY_DELAYS, None):
            answer = client.put_record_batch(
                DeliveryStreamName=self.delivery_stream,
                Records=[{"Data": line} for line in pending],
            )
            if not answer.get("FailedPutCount"):
                return
            pending = [
                line
                for line, result in zip(pending, answer["RequestResponses"], strict=True)
                if "ErrorCode" in result
            ]
            if delay is not None:
                self._sleep(delay)
        raise ArchiveRefused(f"{len(pending)} archive line(s) refused by Firehose")


def _chunks(lines: Sequence[bytes]) -> list[list[bytes]]:
    chunks: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and (
            len(current) == FIREHOSE_MAX_RECORDS or size + len(line) > FIREHOSE_MAX_BYTES
        ):
            chunks.append(current)
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        chunks.append(current)
    return chunks
