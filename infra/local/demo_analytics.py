"""`make demo`'s last act: a storefront's conversion events, then the campaign's KPIs.

A fortnight of the store opening as a storefront would track it: a few hundred visitor
sessions arriving through ads, a newsletter and social posts (or directly), viewing the
offer, filling carts, checking out and buying, sent to ``POST /v1/events`` in batches.
One batch goes twice (a storefront retrying after a timeout) and one event is malformed;
the act checks the replay counted once and the bad event was refused by its index. Then
it reads the campaign's stats (``GET /v1/campaigns/store-opening-2027/stats``) and checks
them against what it sent, figure by figure, prints them, and writes the HTML report.

Like the other acts it is a client only: what it knows of the events it knows because it
made them.
"""

from __future__ import annotations

import functools
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from infra.local.demo import Demo

ROOT: Final = Path(__file__).resolve().parents[2]
REPORT: Final = ROOT / "reports" / "demo.html"
CAMPAIGN: Final = "store-opening-2027"
# The opening runs 2027-05-01 10:00 to 2027-05-16 00:00 in Tokyo; the act's clock is
# the last evening, so every event is in the past.
ANALYTICS_NOW: Final = datetime(2027, 5, 15, 13, 0, tzinfo=UTC)
FIRST_DAY: Final = datetime(2027, 5, 1, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo
SESSIONS: Final = 200
# Under the 500 a request may carry, so the first batch has room for a malformed event.
BATCH: Final = 480
CHANNELS: Final = (
    ("google", "cpc"),
    ("newsletter", "email"),
    ("instagram", "social"),
    None,
    None,
)


@dataclass
class Sent:
    events: list[dict[str, Any]] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)
    converted: set[str] = field(default_factory=set)
    sales: int = 0
    funnel: list[set[str]] = field(default_factory=lambda: [set(), set(), set(), set()])


def _storefront_traffic(seed: int = 2027) -> Sent:
    """Sessions of returning and new visitors, each a walk down the funnel."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible demo, no secret
    sent = Sent()
    visitors = [f"anon-{n:04d}" for n in range(130)]
    for n in range(SESSIONS):
        session = f"sess-{n:04d}"
        visitor = rng.choice(visitors)
        start = FIRST_DAY + timedelta(minutes=rng.randrange(0, 14 * 24 * 60))
        channel = rng.choice(CHANNELS)
        at = start

        event = functools.partial(_event, sent, session, visitor)

        utm = {"utm": {"source": channel[0], "medium": channel[1]}} if channel else {}
        event("page_view", at=at, **utm)
        sent.sessions.add(session)
        for _ in range(rng.choice((0, 0, 1, 2))):
            at += timedelta(seconds=rng.randrange(20, 180))
            event("page_view", at=at)
        if rng.random() < 0.7:
            at += timedelta(seconds=rng.randrange(10, 120))
            event("offer_view", at=at, offerId="OPENING-WEB15")
            sent.funnel[0].add(session)
            steps = ("add_to_cart", "checkout", "purchase")
            for position, kind in enumerate(steps, start=1):
                if rng.random() >= (0.55, 0.7, 0.8)[position - 1]:
                    break
                at += timedelta(seconds=rng.randrange(30, 600))
                if kind == "purchase":
                    value = rng.choice((8000, 12000, 18000, 24000))
                    event(
                        "purchase",
                        at=at,
                        orderId=f"web-{n:04d}",
                        customerId=f"cust-{visitor}",
                        value={"amount": value, "currency": "JPY"},
                    )
                    sent.converted.add(session)
                    sent.sales += value
                else:
                    event(kind, at=at)
                sent.funnel[position].add(session)
    return sent


def _event(
    sent: Sent, session: str, visitor: str, kind: str, *, at: datetime, **extra: Any
) -> None:
    sent.events.append(
        {
            "eventId": f"{session}-{len(sent.events)}",
            "type": kind,
            "occurredAt": at.isoformat().replace("+00:00", "Z"),
            "sessionId": session,
            "anonymousId": visitor,
            "campaignId": CAMPAIGN,
            **extra,
        }
    )


def _yen(money: dict[str, Any] | None) -> str:
    return "-" if not money else f"¥{money['amount']:,}"


def act_analytics(demo: Demo) -> None:
    print("\n== Analytics: the storefront tracks conversions, the marketer reads the KPIs ==")
    http = demo.http
    offset = int((ANALYTICS_NOW - datetime.now(UTC)).total_seconds())
    http.call("POST", "/_local/clock", {"offsetSeconds": offset}, key=False)
    sent = _storefront_traffic()
    # As a storefront sends them: in the order they happened.
    sent.events.sort(key=lambda event: event["occurredAt"])
    bad = {**sent.events[0], "eventId": "bad-1", "value": {"amount": 12.5, "currency": "JPY"}}
    batches = [sent.events[i : i + BATCH] for i in range(0, len(sent.events), BATCH)]
    accepted = 0
    refused: list[dict[str, Any]] = []
    for number, batch in enumerate(batches):
        body = [*batch, bad] if number == 0 else batch
        status, answer = http.call("POST", "/v1/events", {"events": body})
        if status != 202:
            demo.check(f"storefront: a batch of events is accepted ({status} {answer})", False)
        accepted += answer["accepted"]
        refused += answer["rejected"]
    # The first batch again, as a storefront retrying after a timeout would.
    _, again = http.call("POST", "/v1/events", {"events": batches[0]})
    demo.check(
        f"storefront: {accepted} events in {len(batches)} batches (up to {BATCH} each, one "
        f"PutRecords each); the malformed one refused by index: {refused}",
        accepted == len(sent.events)
        and [(r["index"], r["reason"]) for r in refused] == [(len(batches[0]), "float_money")],
    )
    started = time.perf_counter()
    http.call("POST", "/_local/drain", {"timeoutSeconds": 300}, key=False, timeout=330)
    drained = time.perf_counter() - started
    print(f"  (the stream consumer counted and archived them in {drained:.0f} s)")
    status, stats = http.call(
        "GET", f"/v1/campaigns/{CAMPAIGN}/stats?from=2027-05-01&to=2027-05-15"
    )
    demo.check(f"marketer: the stats of the opening fortnight ({status})", status == 200)
    funnel = [step["sessions"] for step in stats["funnel"]]
    demo.check(
        f"the counters are exact, the resent batch counted once: {stats['sessions']} "
        f"sessions, {stats['conversions']} conversions (one per session), funnel {funnel}",
        stats["sessions"] == len(sent.sessions)
        and stats["conversions"] == len(sent.converted)
        and funnel == [len(step) for step in sent.funnel]
        and again.get("accepted") == len(batches[0]),
    )
    demo.check(
        f"sales count every order once: {_yen(stats['totalSales'])} from the storefront's "
        f"{len(sent.converted)} orders and the earlier acts' redemptions",
        stats["totalSales"]["amount"] >= sent.sales,
    )
    _report(demo, stats)
    demo.summary.append(f"report: {REPORT.relative_to(ROOT)} (open it in a browser)")
    http.call("POST", "/_local/clock", {"offsetSeconds": 0}, key=False)


def _report(demo: Demo, stats: dict[str, Any]) -> None:
    """The marketer's `rebates report`: the same stats, the archive read by DuckDB, the
    terminal tables and the HTML; the SQL's funnel and attribution must be the
    counters'."""
    from rich.console import Console

    from cli.report import print_report, read_archive
    from cli.report_html import write_report
    from cli.target import local_target

    target = local_target()
    figures = read_archive(target, stats, engine="duckdb", console=Console(stderr=True))
    print_report(stats, figures, Console(width=110), name="Store opening 2027")
    sql_funnel = [step.sessions for step in sorted(figures.funnel, key=lambda s: s.position)]
    counted = {
        (model, row["channel"]): row["conversions"]
        for model, key in (("last_touch", "lastTouch"), ("first_touch", "firstTouch"))
        for row in stats["attribution"][key]
    }
    queried = {(row.model, row.channel): row.conversions for row in figures.attribution}
    demo.check(
        f"the SQL over the archive ({figures.source}) gives the counters' funnel {sql_funnel}",
        sql_funnel == [step["sessions"] for step in stats["funnel"]],
    )
    moved = sum(abs(queried.get(key, 0) - counted.get(key, 0)) for key in counted | queried) // 2
    demo.check(
        "attribution: both credit every conversion once under each model; "
        f"{moved} credit(s) differ between counters and SQL (a visitor's touch in another "
        "session, on another shard, counted after the conversion: docs/metrics.md)",
        sum(v for (m, _), v in counted.items() if m == "last_touch") == stats["conversions"]
        and sum(v for (m, _), v in queried.items() if m == "last_touch") == stats["conversions"],
    )
    written = write_report(stats, figures, REPORT, name="Store opening 2027")
    print(f"  the HTML report with its charts: {written} (open it in a browser)")
